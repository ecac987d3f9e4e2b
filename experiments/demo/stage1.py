# stage1: the demo's shared first stage. The whole detector (ResNet-18, FPN, SOLOv2
# kernel, category and mask-feature branches) learns from scratch to find and classify
# the objects from their boxes alone (projection loss, as `box`). Every demo variant
# starts from this checkpoint (experiments/registry.yaml: init_from: stage1) and trains
# 1500 more iterations with its own mask losses, so the variants differ only in those.
# Why two stages: from scratch, the classifier needs ~2500 iterations before masks
# matter for AP; training that part once instead of five times keeps the demo within
# its 20-minute budget on 2 cores (see experiments/demo/README.md).
_base_ = ['./box.py']

max_iters = 2500
train_cfg = dict(max_iters=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', T_max=max_iters, eta_min=1e-5, by_epoch=False, begin=0, end=max_iters),
]
