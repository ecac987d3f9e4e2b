# Mask2Former Swin-T + APro, COCO 2017, 50 epochs (not in the paper's model zoo); the release's
# configs/apro_box2mask/box2mask_swin-t-p4-w7-224_lsj_8x2_50e_coco.py: R50 COCO with the Swin-T
# backbone and its parameter groups, lr 1e-4. The Swin-L COCO entry inherits it, as in the release.
_base_ = ['./_mask2former_base.py', './_swin_t.py']
model = dict(backbone={{_base_.swin_t_backbone}}, panoptic_head=dict(in_channels=[96, 192, 384, 768]), init_cfg=None)
optim_wrapper = dict(optimizer=dict(lr=1e-4),
                     paramwise_cfg=dict(custom_keys={{_base_.swin_t_custom_keys}}, norm_decay_mult=0.0))
