# Mask2Former R50 + APro, COCO 2017, 50 epochs (paper: 36.1 / 62.0 / 36.7); the release's
# configs/apro_box2mask/box2mask_r50_lsj_8x2_50e_coco.py (lr 5e-5).
_base_ = ['./_mask2former_base.py']
optim_wrapper = dict(optimizer=dict(lr=5e-5))
