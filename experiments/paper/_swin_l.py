# The Swin-L (ImageNet-22k, 384) changes of the release's Swin-L configs to the Swin-T backbone they
# inherit (configs/apro_box2mask/box2mask_swin-l-p4-w12-384-lsj_8x1_50e_{coco,voc}.py:2-15). The
# parameter groups stay Swin-T's: the release does not recompute them for Swin-L's depths.
swin_l_backbone = dict(
    pretrain_img_size=384,
    embed_dims=192,
    depths=[2, 2, 18, 2],
    num_heads=[6, 12, 24, 48],
    window_size=12,
    init_cfg=dict(checkpoint='weights/swin_large_patch4_window12_384_22k.pth'))
swin_l_in_channels = [192, 384, 768, 1536]
