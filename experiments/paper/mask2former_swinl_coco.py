# Mask2Former Swin-L (ImageNet-22k, 384) + APro, COCO 2017, 50 epochs (paper: 41.0 / 68.3 / 41.9).
# Box2Mask's Swin-L config: the Swin-T recipe (batch 32, lr 2e-4, 184,376 iters) with Swin-L.
_base_ = ['./mask2former_swint_coco.py']
depths = [2, 2, 18, 2]
model = dict(
    backbone=dict(
        pretrain_img_size=384,
        embed_dims=192,
        depths=depths,
        num_heads=[6, 12, 24, 48],
        window_size=12,
        init_cfg=dict(checkpoint='weights/swin_large_patch4_window12_384_22k.pth')),
    panoptic_head=dict(num_queries=100, in_channels=[192, 384, 768, 1536]))
backbone_norm_multi = dict(lr_mult=0.1, decay_mult=0.0)
custom_keys = {f'backbone.stages.{s}.blocks.{b}.norm': backbone_norm_multi
               for s, n in enumerate(depths) for b in range(n)}
optim_wrapper = dict(paramwise_cfg=dict(custom_keys=custom_keys))
