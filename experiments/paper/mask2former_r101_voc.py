# Mask2Former R101 + APro, Pascal VOC (aug), 50 epochs (paper: 43.6 / 72.0 / 45.7); GP zetas 0.03/0.03.
_base_ = ['./mask2former_r50_voc.py']
model = dict(
    backbone=dict(depth=101, init_cfg=dict(checkpoint='weights/resnet101-cd907fc2.pth')),
    panoptic_head=dict(loss_gp=dict(zetas=(0.03, 0.03))))
