# Box-supervised SOLOv2 + APro (projection 3, GP 2, LP 1), the paper's SOLOv2 model zoo.
# Inherits mmdet's SOLOv2 R50 multi-scale 3x (36 epochs) config: SGD lr 0.01, momentum 0.9,
# wd 1e-4, grad clip 35, warm-up 500 iters (1/3), LR x0.1 at epochs 27 and 33, 8 GPUs x 2
# images, train scales (1333, 640..800) + flip, test (1333, 800). Written as iterations
# (one epoch = ceil(images / 16) iterations) so `apro train` can resume and scale it.
# Children set: data_root, classes, iters_per_epoch, the backbone and the LP kernel.
_base_ = ['mmdet::solov2/solov2_r50_fpn_ms-3x_coco.py']

custom_imports = dict(imports=['apro.models'], allow_failed_imports=False)
# torchrun sets WORLD_SIZE: one process per GPU inside a job (workflow/rules/paper.smk)
world_size = '{{$WORLD_SIZE:1}}'
launcher = 'pytorch' if int(world_size) > 1 else 'none'

data_root = 'data/coco/'
num_classes = 80
iters_per_epoch = 7330  # COCO train2017, 117,266 images with objects / 16
epochs = 36
max_iters = iters_per_epoch * epochs
lp_kernel_size = 3  # 3x3 on COCO, 5x5 on VOC (as the original)
batch_size = 2  # per GPU; 8 GPUs -> 16

model = dict(
    type='BoxSOLOv2',
    backbone=dict(init_cfg=dict(type='Pretrained', checkpoint='weights/resnet50-0676ba61.pth')),
    mask_head=dict(
        type='BoxSOLOV2Head',
        num_classes=num_classes,
        loss_proj=dict(loss_weight=3.0),
        loss_gp=dict(loss_weight=2.0, zetas=(0.01, 0.07)),
        loss_lp=dict(loss_weight=1.0, kernel_size=lp_kernel_size, zeta=0.15, iterations=20),
        pairwise_warmup_iters=0))

# ---------------------------------------------------------------- data (boxes only)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=False),
    dict(type='RandomChoiceResize',
         scales=[(1333, 800), (1333, 768), (1333, 736), (1333, 704), (1333, 672), (1333, 640)],
         keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(1333, 800), keep_ratio=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=batch_size,
    num_workers=2,
    sampler=dict(_delete_=True, type='InfiniteSampler', shuffle=True),
    dataset=dict(
        data_root=data_root,
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='train/'),
        pipeline=train_pipeline))
test_dataloader = dict(
    batch_size=1,
    dataset=dict(
        data_root=data_root,
        ann_file='annotations/instances_val.json',
        data_prefix=dict(img='val/'),
        test_mode=True,
        pipeline=test_pipeline))
test_evaluator = dict(
    _delete_=True,
    type='CocoMetric',
    ann_file=data_root + 'annotations/instances_val.json',
    metric='segm',
    format_only=False)
# evaluation is the workflow's own job (apro evaluate)
val_dataloader = None
val_evaluator = None
val_cfg = None

# ---------------------------------------------------------------- schedule (36 epochs as iterations)
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters, val_interval=10 ** 9)
param_scheduler = [
    dict(type='LinearLR', start_factor=1.0 / 3, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters,
         milestones=[iters_per_epoch * 27, iters_per_epoch * 33], gamma=0.1),
]
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=iters_per_epoch, max_keep_ckpts=3,
                    save_last=True),
    logger=dict(type='LoggerHook', interval=50))
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=False)
auto_scale_lr = dict(enable=False, base_batch_size=16)
