# The Swin-T backbone of the release's Swin configs and its parameter groups
# (configs/apro_box2mask/box2mask_swin-t-p4-w7-224_lsj_8x2_50e_{coco,voc}.py:2-53): the backbone at
# lr x0.1; its norms, position embeddings and the query / level embeddings without weight decay.
# Inherited beside a Mask2Former entry by the Swin-T configs (and through them by the Swin-L ones).
swin_t_depths = [2, 2, 6, 2]
swin_t_backbone = dict(
    _delete_=True,
    type='SwinTransformer',
    embed_dims=96,
    depths=swin_t_depths,
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
    init_cfg=dict(type='Pretrained', checkpoint='weights/swin_tiny_patch4_window7_224.pth'))
swin_norm_multi = dict(lr_mult=0.1, decay_mult=0.0)
swin_t_custom_keys = {
    'backbone': dict(lr_mult=0.1, decay_mult=1.0),
    'backbone.patch_embed.norm': swin_norm_multi,
    'backbone.norm': swin_norm_multi,
    'absolute_pos_embed': swin_norm_multi,
    'relative_position_bias_table': swin_norm_multi,
    'query_embed': dict(lr_mult=1.0, decay_mult=0.0),
    'query_feat': dict(lr_mult=1.0, decay_mult=0.0),
    'level_embed': dict(lr_mult=1.0, decay_mult=0.0),
}
swin_t_custom_keys.update({f'backbone.stages.{s}.blocks.{b}.norm': swin_norm_multi
                           for s, n in enumerate(swin_t_depths) for b in range(n)})
swin_t_custom_keys.update({f'backbone.stages.{s}.downsample.norm': swin_norm_multi
                           for s in range(len(swin_t_depths) - 1)})
