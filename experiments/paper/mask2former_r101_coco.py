# Mask2Former R101 + APro, COCO 2017, 50 epochs (paper: 38.0 / 63.6 / 38.7); the release's
# configs/apro_box2mask/box2mask_r101_lsj_8x2_50e_coco.py (lr 1e-4).
_base_ = ['./_mask2former_base.py']
model = dict(backbone=dict(depth=101, init_cfg=dict(checkpoint='weights/resnet101-b641f3a9.pth')))
