# Box-supervised Mask2Former + APro (projection 5, GP 1, LP 1 on every decoder layer): the paper's
# Mask2Former model zoo, as the APro release's Box2Mask configs (CircleRadon/APro
# configs/apro_box2mask/box2mask_r50_lsj_8x2_50e_coco.py and its siblings; every value with its file
# and line: experiments/paper/original_recipes.yaml). mmdet's Mask2Former R50 instance config gives
# the network (100 queries, 9 decoder layers, MSDeformAttn pixel decoder), AdamW wd 0.05 with the
# backbone at lr x0.1, grad clip 0.01 and the 368,750-iteration COCO schedule, all as the release;
# the supervision is boxes only, matched with a classification (2.0) + box-projection (5.0) cost.
# Deviations: experiments/paper/DEVIATIONS.md.
# Children set: data_root, classes, the backbone, lr, the GP zetas and (VOC) the schedule.
_base_ = ['mmdet::mask2former/mask2former_r50_8xb2-lsj-50e_coco.py']

custom_imports = dict(imports=['apro.models.mask2former_apro', 'apro.data.transforms'], allow_failed_imports=False)
# torchrun sets WORLD_SIZE: one process per GPU inside a job (workflow/rules/train.smk)
world_size = '{{$WORLD_SIZE:1}}'
launcher = 'pytorch' if int(world_size) > 1 else 'none'

data_root = 'data/coco/'
num_classes = 80
image_size = (1024, 1024)
batch_size = 4  # per GPU, as the release (samples_per_gpu=4)
# The release states no GPU count; 4 x 4 = 16 images per step is the batch its schedules count
# epochs with (33,065 iterations = 50 x 10,582 / 16), so this suite trains on 4 GPUs.
num_gpus = 4
max_iters = 368750
# the release pads with 128 before normalising (pad_cfg img=(128, 128, 128)): the pipeline pads
# (KeepShapePad: img_shape stays the image's, as mmdet 2.x's Pad left it)
pad_val = dict(img=(128, 128, 128), masks=0, seg=255)

# the box masks arrive padded from the pipeline, with the images
data_preprocessor = dict(pad_mask=False, batch_augments=None)
model = dict(
    type='BoxMask2Former',
    data_preprocessor=data_preprocessor,
    backbone=dict(init_cfg=dict(type='Pretrained', checkpoint='weights/resnet50-11ad3fa6.pth')),
    panoptic_head=dict(
        type='BoxMask2FormerHead',
        num_things_classes=num_classes,
        num_stuff_classes=0,
        loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=2.0, reduction='mean',
                      class_weight=[1.0] * num_classes + [0.1]),
        loss_proj=dict(loss_weight=5.0),
        loss_gp=dict(loss_weight=1.0, zetas=(0.03, 0.03), size=96),
        loss_lp=dict(loss_weight=1.0, kernel_size=5, zeta=0.15, iterations=20)),
    panoptic_fusion_head=dict(num_things_classes=num_classes, num_stuff_classes=0),
    train_cfg=dict(
        assigner=dict(
            type='HungarianAssigner',
            match_costs=[
                dict(type='ClassificationCost', weight=2.0),
                dict(type='BoxMatchingCost', weight=5.0, pred_act=True, eps=1.0),
            ])),
    test_cfg=dict(panoptic_on=False, semantic_on=False, instance_on=True, max_per_image=100, iou_thr=0.8,
                  filter_low_score=True))

# ---------------------------------------------------------------- data (boxes only, large-scale jitter)
train_pipeline = [
    dict(type='LoadImageFromFile', to_float32=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=False),
    dict(type='GenerateBoxMask'),  # box masks on the image, flipped, resized, cropped and padded with it
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomResize', scale=image_size, ratio_range=(0.1, 2.0), resize_type='Resize', keep_ratio=True),
    # the boxes are recomputed from the cropped box masks, as the release's
    dict(type='RandomCrop', crop_size=image_size, crop_type='absolute', recompute_bbox=True,
         allow_negative_crop=True),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1e-5, 1e-5), by_box=True, by_mask=False),
    dict(type='KeepShapePad', size=image_size, pad_val=pad_val),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),  # uint8, resized before any float conversion, as the release's test
    dict(type='Resize', scale=(1333, 800), keep_ratio=True),
    dict(type='KeepShapePad', size_divisor=32, pad_val=pad_val),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=batch_size,
    dataset=dict(
        data_root=data_root,
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='train/'),
        pipeline=train_pipeline))
test_dataloader = dict(
    _delete_=True,
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='CocoDataset',
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

# ---------------------------------------------------------------- schedule (50 COCO epochs)
optim_wrapper = dict(optimizer=dict(lr=1e-4))
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters, val_interval=10 ** 9)
param_scheduler = dict(type='MultiStepLR', begin=0, end=max_iters, by_epoch=False,
                       milestones=[327778, 355092], gamma=0.1)
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=5000, max_keep_ckpts=3, save_last=True))
auto_scale_lr = dict(enable=False, base_batch_size=num_gpus * batch_size)
