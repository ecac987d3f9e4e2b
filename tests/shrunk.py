"""Paper configs shrunk for CPU tests: tiny widths (:func:`shrink`), and as a recipe file of their own with small
images (:func:`write_small_recipe`, the custom suite's tests)."""
from pathlib import Path


def shrink(cfg):
    """Tiny widths and image size for a CPU step (test-only overrides)."""
    m = cfg.model
    bb = m.backbone
    bb.init_cfg = None
    if bb.type == "ResNet":
        bb.base_channels = 8
        bb.stem_channels = 8
        in_channels = [32, 64, 128, 256]
    else:  # Swin: keep depths and heads, narrow the embedding (head dim 4)
        bb.embed_dims = 4 * bb.num_heads[0]
        bb.pretrain_img_size = 224
        in_channels = [bb.embed_dims * 2 ** i for i in range(4)]
    if m.type == "BoxSOLOv2":
        m.neck.in_channels = in_channels
        m.neck.out_channels = 16
        h = m.mask_head
        h.in_channels, h.feat_channels, h.stacked_convs = 16, 16, 1
        h.norm_cfg = dict(type="GN", num_groups=4, requires_grad=True)
        h.mask_feature_head.update(feat_channels=16, out_channels=16)  # the release's has no norm
        h.loss_lp.iterations = 2
    else:
        h = m.panoptic_head
        h.in_channels = in_channels
        h.feat_channels = h.out_channels = 16
        h.num_queries = 5
        pd = h.pixel_decoder
        pd.norm_cfg = dict(type="GN", num_groups=4)
        pd.encoder.num_layers = 1
        pd.encoder.layer_cfg.self_attn_cfg.update(embed_dims=16, num_heads=2)
        pd.encoder.layer_cfg.ffn_cfg.update(embed_dims=16, feedforward_channels=32)
        pd.positional_encoding.num_feats = 8
        h.positional_encoding.num_feats = 8
        td = h.transformer_decoder.layer_cfg
        td.self_attn_cfg.update(embed_dims=16, num_heads=2)
        td.cross_attn_cfg.update(embed_dims=16, num_heads=2)
        td.ffn_cfg.update(embed_dims=16, feedforward_channels=32)
        h.transformer_decoder.num_layers = 2  # losses on 3 predictions: the query init + 2 layers
        h.loss_gp.size = 24
        h.loss_lp.iterations = 2
    return cfg


#: small pipelines (images fit 160 x 120) per model type, with the paper pipelines' transforms otherwise
_SMALL = {
    "BoxSOLOv2": {
        "train": [dict(type="LoadImageFromFile"), dict(type="LoadAnnotations", with_bbox=True, with_mask=False),
                  dict(type="GenerateBoxMask"), dict(type="Resize", scale=(160, 120), keep_ratio=True),
                  dict(type="RandomFlip", prob=0.5), dict(type="PackDetInputs")],
        "test": [dict(type="LoadImageFromFile"), dict(type="Resize", scale=(160, 120), keep_ratio=True),
                 dict(type="PackDetInputs", meta_keys=("img_id", "img_path", "ori_shape", "img_shape",
                                                       "scale_factor"))]},
    "BoxMask2Former": {
        "train": [dict(type="LoadImageFromFile", to_float32=True),
                  dict(type="LoadAnnotations", with_bbox=True, with_mask=False), dict(type="GenerateBoxMask"),
                  dict(type="Resize", scale=(160, 120), keep_ratio=True),
                  dict(type="KeepShapePad", size=(160, 160), pad_val=dict(img=(128, 128, 128))),
                  dict(type="PackDetInputs")],
        "test": [dict(type="LoadImageFromFile"), dict(type="Resize", scale=(160, 120), keep_ratio=True),
                 dict(type="KeepShapePad", size_divisor=32, pad_val=dict(img=(128, 128, 128))),
                 dict(type="PackDetInputs", meta_keys=("img_id", "img_path", "ori_shape", "img_shape",
                                                       "scale_factor"))]},
}


def write_small_recipe(paper: Path, out: Path) -> Path:
    """``paper`` shrunk, with small images, no data loader workers and every score kept at test time: one
    config file (mmengine's dump) to start the custom suite from."""
    from mmengine.config import Config

    cfg = shrink(Config.fromfile(str(paper)))
    small = _SMALL[cfg.model.type]
    for loader, split in ((cfg.train_dataloader, "train"), (cfg.test_dataloader, "test")):
        loader.dataset.pipeline = small[split]
        loader.num_workers, loader.persistent_workers = 0, False
    if cfg.model.type == "BoxSOLOv2":  # a few iterations score low and mask little: keep what there is
        cfg.model.test_cfg.update(score_thr=0.0, filter_thr=0.0, mask_thr=0.5, max_per_img=10)
    else:  # mmdet takes the top max_per_image of queries x classes: 5 queries of 1 class hold 5
        cfg.model.test_cfg.max_per_image = cfg.model.panoptic_head.num_queries
    cfg.dump(str(out))
    return out
