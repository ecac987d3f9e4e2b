# SOLOv2 R101 + APro, Pascal VOC (aug), 36 epochs (paper: 40.5 / 67.9 / 42.6); the release's
# configs/apro_boxsolov2/box_solov2_voc_r101_fpn_3x.py: R50 VOC with ResNet-101.
_base_ = ['./solov2_r50_voc.py']
model = dict(backbone=dict(depth=101, init_cfg=dict(checkpoint='weights/resnet101-b641f3a9.pth')))
