# SOLOv2 R101 + APro, Pascal VOC (aug), 36 epochs (paper: 40.5 / 67.9 / 42.6).
_base_ = ['./solov2_r50_voc.py']
model = dict(backbone=dict(depth=101, init_cfg=dict(checkpoint='weights/resnet101-63fe2227.pth')))
