# Mask2Former Swin-L + APro, Pascal VOC (aug), 50 epochs (paper: 49.6 / 77.6 / 53.1); the release's
# configs/apro_box2mask/box2mask_swin-l-p4-w12-384-lsj_8x1_50e_voc.py: Swin-T VOC (lr 5e-5, 33,065
# iterations) with the Swin-L backbone and GP zetas 0.03 / 0.03. The file spells the second zeta
# `zata_gh`, which the head's **kwargs swallow, so the inherited zeta_gh = 0.03 and both GP passes run.
_base_ = ['./mask2former_swint_voc.py', './_swin_l.py']
model = dict(backbone={{_base_.swin_l_backbone}},
             panoptic_head=dict(num_queries=100, in_channels={{_base_.swin_l_in_channels}},
                                loss_gp=dict(zetas=(0.03, 0.03))))
