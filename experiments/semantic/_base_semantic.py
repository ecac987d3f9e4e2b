# Semantic part of the demo: DeepLabV3+ (mmseg 1.x) on the built-in synthetic shapes as a
# semantic dataset (synthetic_seg: background + 6 classes, 2000 train images at 80 px, colour
# hinting at the class), a small ResNet-18 (widths 16..128) trained from scratch on CPU for
# 2500 iterations, with point / scribble / dense labels.
# Variants (files next to this one) set `labels` and `model.apro_loss`.
# `apro train` overrides data_root, the label folders (data/semantic/<dataset>/
# <split>/<labels>), the seed, and optionally max_iters.
_base_ = ['mmseg::_base_/default_runtime.py']

custom_imports = dict(imports=['apro.models.segmentor'], allow_failed_imports=False)

data_root = 'data/synthetic_seg/'
labels = 'full'  # training labels: full, point or scribble (evaluation always uses full)
max_iters = 2500
batch_size = 8
crop = 80
norm_cfg = dict(type='BN', requires_grad=True)

model = dict(
    type='AProEncoderDecoder',
    apro_loss=None,
    data_preprocessor=dict(
        type='SegDataPreProcessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_val=0,
        seg_pad_val=255,
        size_divisor=8),
    backbone=dict(
        type='ResNetV1c',
        depth=18,
        stem_channels=16,
        base_channels=16,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        # output stride 8, as DeepLabV3+ in the paper setting
        dilations=(1, 1, 2, 4),
        strides=(1, 2, 1, 1),
        norm_cfg=norm_cfg,
        norm_eval=False,
        style='pytorch',
        contract_dilation=True),
    decode_head=dict(
        type='DepthwiseSeparableASPPHead',
        in_channels=128,
        in_index=3,
        channels=32,
        # ASPP rates scaled to a 10x10 feature map (6/12/18 at 512 px)
        dilations=(1, 2, 4, 6),
        c1_in_channels=16,
        c1_channels=8,
        dropout_ratio=0.1,
        num_classes=7,
        norm_cfg=norm_cfg,
        align_corners=False,
        ignore_index=255,
        loss_decode=dict(type='PartialCrossEntropyLoss', loss_weight=1.0)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))

dataset_type = 'SyntheticSegDataset'
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=False),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=False),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=batch_size,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        # seg_map_path: set by apro train to <label-root>/train/<labels>
        data_prefix=dict(img_path='train', seg_map_path='labels/train/' + labels),
        pipeline=train_pipeline))
test_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='val', seg_map_path='labels/val/full'),
        pipeline=test_pipeline))
test_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
val_dataloader = None
val_cfg = None
val_evaluator = None
test_cfg = dict(type='TestLoop')

optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=2e-3, weight_decay=1e-4))
param_scheduler = [dict(type='PolyLR', eta_min=1e-5, power=0.9, begin=0, end=max_iters, by_epoch=False)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters)
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=25, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=250, max_keep_ckpts=1),  # resumable
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook', draw=False))
log_processor = dict(by_epoch=False)
