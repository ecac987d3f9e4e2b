# SOLOv2 R101 + APro, COCO 2017, 36 epochs (paper: 34.3 / 57.0 / 35.3).
_base_ = ['./_solov2_base.py']
model = dict(backbone=dict(depth=101, init_cfg=dict(checkpoint='weights/resnet101-63fe2227.pth')))
