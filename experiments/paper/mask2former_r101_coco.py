# Mask2Former R101 + APro, COCO 2017, 50 epochs (paper: 38.0 / 63.6 / 38.7).
_base_ = ['./_mask2former_base.py']
model = dict(backbone=dict(depth=101, init_cfg=dict(checkpoint='weights/resnet101-cd907fc2.pth')))
