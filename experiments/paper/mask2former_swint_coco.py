# Mask2Former Swin-T + APro, COCO 2017 (not in the paper's model zoo; Box2Mask's Swin-T recipe):
# 8 GPUs x 4 images, AdamW lr 2e-4, 184,376 iters (50 epochs at batch 32), LR x0.1 at 163,890 and 177,546.
_base_ = ['./_mask2former_base.py']
depths = [2, 2, 6, 2]
batch_size = 4
max_iters = 184376
model = dict(
    backbone=dict(
        _delete_=True,
        type='SwinTransformer',
        embed_dims=96,
        depths=depths,
        num_heads=[3, 6, 12, 24],
        window_size=7,
        mlp_ratio=4,
        qkv_bias=True,
        qk_scale=None,
        drop_rate=0.,
        attn_drop_rate=0.,
        drop_path_rate=0.3,
        patch_norm=True,
        out_indices=(0, 1, 2, 3),
        with_cp=False,
        convert_weights=True,
        frozen_stages=-1,
        init_cfg=dict(type='Pretrained', checkpoint='weights/swin_tiny_patch4_window7_224.pth')),
    panoptic_head=dict(in_channels=[96, 192, 384, 768]),
    init_cfg=None)
train_dataloader = dict(batch_size=batch_size)
auto_scale_lr = dict(enable=False, base_batch_size=8 * batch_size)  # the total batch: 8 GPUs x 4
backbone_norm_multi = dict(lr_mult=0.1, decay_mult=0.0)
custom_keys = {
    'backbone': dict(lr_mult=0.1, decay_mult=1.0),
    'backbone.patch_embed.norm': backbone_norm_multi,
    'backbone.norm': backbone_norm_multi,
    'absolute_pos_embed': backbone_norm_multi,
    'relative_position_bias_table': backbone_norm_multi,
    'query_embed': dict(lr_mult=1.0, decay_mult=0.0),
    'query_feat': dict(lr_mult=1.0, decay_mult=0.0),
    'level_embed': dict(lr_mult=1.0, decay_mult=0.0),
}
custom_keys.update({f'backbone.stages.{s}.blocks.{b}.norm': backbone_norm_multi
                    for s, n in enumerate(depths) for b in range(n)})
custom_keys.update({f'backbone.stages.{s}.downsample.norm': backbone_norm_multi for s in range(len(depths) - 1)})
optim_wrapper = dict(optimizer=dict(lr=0.0002), paramwise_cfg=dict(custom_keys=custom_keys, norm_decay_mult=0.0))
train_cfg = dict(max_iters=max_iters)
param_scheduler = dict(end=max_iters, milestones=[163890, 177546])
