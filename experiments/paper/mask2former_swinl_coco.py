# Mask2Former Swin-L (ImageNet-22k, 384) + APro, COCO 2017, 50 epochs (paper: 41.0 / 68.3 / 41.9); the
# release's configs/apro_box2mask/box2mask_swin-l-p4-w12-384-lsj_8x1_50e_coco.py: Swin-T COCO (lr 1e-4,
# 368,750 iterations, Swin-T's parameter groups) with the Swin-L backbone.
_base_ = ['./mask2former_swint_coco.py', './_swin_l.py']
model = dict(backbone={{_base_.swin_l_backbone}},
             panoptic_head=dict(num_queries=100, in_channels={{_base_.swin_l_in_channels}}))
