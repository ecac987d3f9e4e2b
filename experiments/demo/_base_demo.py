# Demo suite: SOLOv2 on the built-in synthetic dataset (128x128, 6 classes),
# a small ResNet-18 trained from scratch on 2 CPU cores in two stages:
#   stage1.py  shared: the detector learns from the boxes alone (2500 iterations)
#   variants   each starts from stage 1's final checkpoint (registry: init_from)
#              and trains 1500 more iterations with its own mask losses.
# Variants (files next to this one) set the mask head and its losses.
# `apro train` overrides data_root, the seed, and optionally max_iters.
_base_ = ['mmdet::_base_/default_runtime.py']

custom_imports = dict(imports=['apro.models.box_solov2'], allow_failed_imports=False)

data_root = 'data/synthetic/'
classes = ('ring', 'crescent', 'star', 'l_shape', 'u_shape', 'blob')
max_iters = 1500
batch_size = 8
norm_gn = dict(type='GN', num_groups=16, requires_grad=True)

model = dict(
    type='SOLOv2',
    data_preprocessor=dict(
        type='DetDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_mask=False,
        pad_size_divisor=32),
    backbone=dict(
        type='ResNet',
        depth=18,
        base_channels=32,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        frozen_stages=-1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=False,
        style='pytorch',
        init_cfg=None),
    neck=dict(
        type='FPN',
        in_channels=[32, 64, 128, 256],
        out_channels=64,
        start_level=0,
        num_outs=4),
    mask_head=dict(
        type='SOLOV2Head',
        num_classes=len(classes),
        in_channels=64,
        feat_channels=64,
        stacked_convs=2,
        # FPN P2..P5 (strides 4..32); sqrt(box area) of the objects: 10..92 px
        strides=[8, 8, 16, 32],
        scale_ranges=((1, 28), (14, 56), (28, 112), (56, 256)),
        pos_scale=0.2,
        num_grids=[16, 12, 8, 6],
        cls_down_index=0,
        norm_cfg=norm_gn,
        mask_feature_head=dict(
            feat_channels=64,
            start_level=0,
            end_level=3,
            out_channels=64,
            mask_stride=4,
            norm_cfg=norm_gn),
        loss_mask=dict(type='DiceLoss', use_sigmoid=True, loss_weight=3.0),
        loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0)),
    test_cfg=dict(
        nms_pre=500,
        score_thr=0.1,
        mask_thr=0.5,
        filter_thr=0.05,
        kernel='gaussian',
        sigma=2.0,
        max_per_img=100))

# ---------------------------------------------------------------- data
dataset_type = 'CocoDataset'
backend_args = None
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=(128, 128), keep_ratio=True),
    # the shape classes are invariant to flips ('diagonal' = both axes, a 180-degree rotation)
    dict(type='RandomFlip', prob=0.75, direction=['horizontal', 'vertical', 'diagonal']),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='Resize', scale=(128, 128), keep_ratio=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=batch_size,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    batch_sampler=None,
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo=dict(classes=classes),
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='train/'),
        # keep the ~10% images without objects: they are negatives for the classifier
        filter_cfg=dict(filter_empty_gt=False, min_size=0),
        pipeline=train_pipeline,
        backend_args=backend_args))
test_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo=dict(classes=classes),
        ann_file='annotations/instances_val.json',
        data_prefix=dict(img='val/'),
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=backend_args))
test_evaluator = dict(
    type='CocoMetric',
    ann_file=data_root + 'annotations/instances_val.json',
    metric='segm',
    format_only=False,
    backend_args=backend_args)
test_cfg = dict(type='TestLoop')
val_dataloader = None
val_evaluator = None
val_cfg = None

# ---------------------------------------------------------------- schedule
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=10 ** 9)
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05),
    paramwise_cfg=dict(norm_decay_mult=0.0),
    clip_grad=dict(max_norm=10, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', T_max=max_iters, eta_min=1e-5, by_epoch=False, begin=0, end=max_iters),
]

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=20),
    checkpoint=dict(type='CheckpointHook', interval=250, by_epoch=False, max_keep_ckpts=1, save_last=True),
    visualization=dict(type='DetVisualizationHook', draw=False))
log_processor = dict(type='LogProcessor', window_size=20, by_epoch=False)
randomness = dict(seed=0, deterministic=False)
