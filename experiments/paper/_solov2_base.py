# Box-supervised SOLOv2 + APro (projection 3, GP 2, LP 1): the paper's SOLOv2 model zoo, as the APro
# release's configs (CircleRadon/APro configs/apro_boxsolov2/box_solov2_coco_r50_fpn_3x.py and its
# siblings; every value with its file and line: experiments/paper/original_recipes.yaml).
# mmdet's SOLOv2 3x config gives the parts the release shares with it (ResNet + FPN, grids, scales,
# focal loss, multi-scale train / (1333, 800) test pipeline); everything the release sets
# differently is set here. 36 epochs are written as iterations (one epoch = ceil(images / total
# batch)) so `apro train` can resume and scale them; deviations: experiments/paper/DEVIATIONS.md.
# Children set: data_root, classes, num_gpus and the epoch length, lr, the warm-up ratio, the
# backbone, the LP kernel and mask_thr.
_base_ = ['mmdet::solov2/solov2_r50_fpn_ms-3x_coco.py']

custom_imports = dict(imports=['apro.models.box_solov2', 'apro.data.transforms'], allow_failed_imports=False)
# torchrun sets WORLD_SIZE: one process per GPU inside a job (workflow/rules/train.smk)
world_size = '{{$WORLD_SIZE:1}}'
launcher = 'pytorch' if int(world_size) > 1 else 'none'

data_root = 'data/coco/'
num_classes = 80
num_gpus = 8  # device_ids = range(8); experiments/registry.yaml gives the workflow the same count
batch_size = 2  # per GPU
iters_per_epoch = 7330  # COCO train2017 with objects, 117,266 images / (8 x 2)
epochs = 36
max_iters = iters_per_epoch * epochs

model = dict(
    type='BoxSOLOv2',
    backbone=dict(init_cfg=dict(type='Pretrained', checkpoint='weights/resnet50-11ad3fa6.pth')),
    mask_head=dict(
        type='BoxSOLOV2Head',
        num_classes=num_classes,
        # the release's head: 256-channel towers, a 1x1 kernel conv, a norm- and bias-free mask branch
        feat_channels=256,
        conv_kernel_size=1,
        mask_feature_head=dict(type='AProMaskFeatModule', feat_channels=256, out_channels=256, norm_cfg=None),
        loss_proj=dict(loss_weight=3.0),
        loss_gp=dict(loss_weight=2.0, zetas=(0.01, 0.07)),
        loss_lp=dict(loss_weight=1.0, kernel_size=3, zeta=0.15, iterations=20),
        loss_strides=(4, 4, 8, 16, 16),
        min_box_pixels=10,
        pairwise_warmup_iters=0),
    test_cfg=dict(score_thr=0.05, mask_thr=0.45, filter_thr=0.025))

# ---------------------------------------------------------------- data (boxes only)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=False),
    dict(type='GenerateBoxMask'),  # box masks on the image, resized and flipped with it (the head reads them)
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

# ---------------------------------------------------------------- optimisation and schedule
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.1),
    paramwise_cfg=dict(norm_decay_mult=0.0, bypass_duplicate=True),
    clip_grad=dict(max_norm=1, norm_type=2))
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters, val_interval=10 ** 9)
# linear warm-up over 2000 iterations from warmup_ratio x lr, then x0.1 at epochs 27 and 33
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=2000),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters,
         milestones=[iters_per_epoch * 27, iters_per_epoch * 33], gamma=0.1),
]
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=iters_per_epoch, max_keep_ckpts=3,
                    save_last=True),
    logger=dict(type='LoggerHook', interval=50))
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=False)
auto_scale_lr = dict(enable=False, base_batch_size=num_gpus * batch_size)
