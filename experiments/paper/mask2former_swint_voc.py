# Mask2Former Swin-T + APro, Pascal VOC (aug), 50 epochs (not in the paper's model zoo); the release's
# configs/apro_box2mask/box2mask_swin-t-p4-w7-224_lsj_8x2_50e_voc.py: R50 VOC (33,065 iterations,
# GP zetas 0.02 / 0.03) with the Swin-T backbone and its parameter groups, lr 5e-5. The Swin-L VOC
# entry inherits it, as in the release.
_base_ = ['./mask2former_r50_voc.py', './_swin_t.py']
model = dict(backbone={{_base_.swin_t_backbone}}, panoptic_head=dict(in_channels=[96, 192, 384, 768]), init_cfg=None)
optim_wrapper = dict(optimizer=dict(lr=5e-5),
                     paramwise_cfg=dict(custom_keys={{_base_.swin_t_custom_keys}}, norm_decay_mult=0.0))
