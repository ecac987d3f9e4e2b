# box: box-supervised SOLOv2, projection loss only (no pairwise term).
_base_ = ['./_base_demo.py']

# GT masks are never loaded: the training targets come from the boxes.
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=False),
    dict(type='Resize', scale=(128, 128), keep_ratio=True),
    dict(type='RandomFlip', prob=0.75, direction=['horizontal', 'vertical', 'diagonal']),
    dict(type='PackDetInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

model = dict(
    type='BoxSOLOv2',
    mask_head=dict(
        type='BoxSOLOV2Head',
        loss_proj=dict(loss_weight=3.0),
        loss_gp=None,
        loss_lp=None,
        # the pairwise weights ramp up linearly over the first 10% of the schedule (as BoxInst's
        # pairwise term): stage 1's masks are box-like at first, and a full-weight LP from
        # iteration 0 can drive them to collapse
        pairwise_warmup_iters=150,
        # the demo's loss layout, pinned (the head's defaults are the APro release's): every level
        # at the mask-feature grid, boxes rasterised by cell centre, no small-box filter
        loss_strides=None,
        min_box_pixels=0))
