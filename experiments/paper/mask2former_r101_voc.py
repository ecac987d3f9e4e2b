# Mask2Former R101 + APro, Pascal VOC (aug), 50 epochs (paper: 43.6 / 72.0 / 45.7); the release's
# configs/apro_box2mask/box2mask_r101_lsj_8x2_50e_voc.py: R50 VOC with ResNet-101, GP zetas 0.03 / 0.03.
_base_ = ['./mask2former_r50_voc.py']
model = dict(
    backbone=dict(depth=101, init_cfg=dict(checkpoint='weights/resnet101-b641f3a9.pth')),
    panoptic_head=dict(loss_gp=dict(zetas=(0.03, 0.03))))
