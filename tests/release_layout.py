"""The parameter layout of the APro release's models (mmdet 2.25 + mmcv 1.x), for stand-in checkpoints.

Written from the release's code (CircleRadon/APro at 8251a9e, "O:" paths), not from this suite's
converter:

* the SOLOv2 head: ``release_solov2_head_shapes`` follows ``BoxSOLOv2Head._init_layers``
  (O:mmdet/models/dense_heads/box_solov2_head.py:68-161) line by line;
* the Mask2Former transformer layers: mmcv still ships mmcv 1.x's ``BaseTransformerLayer`` (the class
  the release's ``DetrTransformerEncoder`` / ``DetrTransformerDecoderLayer`` build on,
  O:mmdet/models/utils/transformer.py:408-533), so the release's layers are built here from the
  release config's layer dicts (O:configs/apro_box2mask/box2mask_r50_lsj_8x2_50e_voc.py:36-92) and
  their names and shapes read off; the decoder's ``post_norm`` is mmdet 2.25's (O:...transformer.py:503);
* the Mask2Former head's own tensors follow ``Box2MaskHead.__init__`` (O:.../box2mask_head.py:83-93);
* modules whose code is the same in mmdet 2.25 and 3.3 (ResNet, Swin, FPN, the pixel decoder's
  convolutions and level embedding: O:mmdet/models/plugins/msdeformattn_pixel_decoder.py:80-131) keep
  their names and shapes, so those entries are read off the model built here.
"""
from __future__ import annotations

from typing import Dict, Tuple

Shapes = Dict[str, Tuple[int, ...]]

#: O:configs/apro_box2mask/box2mask_r50_lsj_8x2_50e_voc.py:39-59 (pixel decoder encoder layer)
ENCODER_LAYER = dict(
    attn_cfgs=dict(type="MultiScaleDeformableAttention", embed_dims=256, num_heads=8, num_levels=3, num_points=4,
                   im2col_step=64, dropout=0.0, batch_first=False, norm_cfg=None, init_cfg=None),
    ffn_cfgs=dict(type="FFN", embed_dims=256, feedforward_channels=1024, num_fcs=2, ffn_drop=0.0,
                  act_cfg=dict(type="ReLU", inplace=True)),
    operation_order=("self_attn", "norm", "ffn", "norm"))
ENCODER_LAYERS = 6  # O:...voc.py:38
#: O:configs/apro_box2mask/box2mask_r50_lsj_8x2_50e_voc.py:72-91 (transformer decoder layer)
DECODER_LAYER = dict(
    attn_cfgs=dict(type="MultiheadAttention", embed_dims=256, num_heads=8, attn_drop=0.0, proj_drop=0.0,
                   dropout_layer=None, batch_first=False),
    ffn_cfgs=dict(embed_dims=256, feedforward_channels=2048, num_fcs=2, act_cfg=dict(type="ReLU", inplace=True),
                  ffn_drop=0.0, dropout_layer=None, add_identity=True),
    feedforward_channels=2048,
    operation_order=("cross_attn", "norm", "self_attn", "norm", "ffn", "norm"))
DECODER_LAYERS = 9  # O:...voc.py:70


def build_release_layer(cfg: dict, **dims):
    """mmcv 1.x's BaseTransformerLayer from one of the release's layer dicts (dims override the widths)."""
    import copy

    import mmcv.ops  # noqa: F401  (registers MultiScaleDeformableAttention)
    from mmcv.cnn.bricks.transformer import BaseTransformerLayer

    cfg = copy.deepcopy(cfg)
    for part in ("attn_cfgs", "ffn_cfgs"):
        cfg[part].update({k: v for k, v in dims.items() if k in cfg[part]})
    if "feedforward_channels" in cfg and "feedforward_channels" in dims:
        cfg["feedforward_channels"] = dims["feedforward_channels"]
    return BaseTransformerLayer(**cfg)


def release_solov2_head_shapes(num_classes: int, in_channels: int = 256, seg_feat_channels: int = 256,
                               stacked_convs: int = 4) -> Shapes:
    """The parameter shapes of the release's BoxSOLOv2Head._init_layers (O:SH:68-161), by its names."""
    c, e = in_channels, seg_feat_channels
    shapes: Shapes = {}
    # mask feature: level 0 one conv; level i, i convs + upsampling; coordinates into level 3 (O:SH:79-128);
    # ConvModule(norm_cfg=self.norm_cfg=None, bias=False): a weight only
    shapes["feature_convs.0.conv0.conv.weight"] = (e, c, 3, 3)
    for i in range(1, 4):
        for j in range(i):
            cin = (c + 2 if i == 3 else c) if j == 0 else e
            shapes[f"feature_convs.{i}.conv{j}.conv.weight"] = (e, cin, 3, 3)
    # kernel and category towers: GN(32), bias=False (O:SH:130-153)
    for i in range(stacked_convs):
        shapes[f"kernel_convs.{i}.conv.weight"] = (e, c + 2 if i == 0 else e, 3, 3)
        shapes[f"cate_convs.{i}.conv.weight"] = (e, c if i == 0 else e, 3, 3)
        for tower in ("kernel_convs", "cate_convs"):
            shapes[f"{tower}.{i}.gn.weight"] = (e,)
            shapes[f"{tower}.{i}.gn.bias"] = (e,)
    shapes["solo_cate.weight"], shapes["solo_cate.bias"] = (num_classes, e, 3, 3), (num_classes,)  # O:SH:155
    shapes["solo_kernel.weight"], shapes["solo_kernel.bias"] = (e, e, 1, 1), (e,)  # O:SH:158
    shapes["solo_mask.weight"], shapes["solo_mask.bias"] = (e, e, 1, 1), (e,)  # O:SH:160
    return shapes


def _same_code(model, prefixes) -> Shapes:
    return {k: tuple(v.shape) for k, v in model.state_dict().items() if k.startswith(prefixes)}


def release_checkpoint_shapes(model, model_type: str, num_classes: int) -> Shapes:
    """Names and shapes of the release's checkpoint of the entry whose (built) model is ``model``."""
    if model_type == "BoxSOLOv2":
        shapes = _same_code(model, ("backbone.", "neck."))
        shapes.update({f"bbox_head.{k}": v for k, v in release_solov2_head_shapes(num_classes).items()})
        return shapes
    head = "panoptic_head."
    shapes = _same_code(model, ("backbone.", head + "pixel_decoder.input_convs.", head + "pixel_decoder.level_encoding.",
                                head + "pixel_decoder.lateral_convs.", head + "pixel_decoder.output_convs.",
                                head + "pixel_decoder.mask_feature."))
    for name, cfg, n in (("pixel_decoder.encoder", ENCODER_LAYER, ENCODER_LAYERS),
                         ("transformer_decoder", DECODER_LAYER, DECODER_LAYERS)):
        layer = {k: tuple(v.shape) for k, v in build_release_layer(cfg).state_dict().items()}
        for i in range(n):
            shapes.update({f"{head}{name}.layers.{i}.{k}": v for k, v in layer.items()})
    feat, queries = 256, 100  # O:...voc.py:21, 25
    shapes.update({f"{head}transformer_decoder.post_norm.weight": (feat,),
                   f"{head}transformer_decoder.post_norm.bias": (feat,),
                   f"{head}query_embed.weight": (queries, feat), f"{head}query_feat.weight": (queries, feat),
                   f"{head}level_embed.weight": (3, feat),
                   f"{head}cls_embed.weight": (num_classes + 1, feat), f"{head}cls_embed.bias": (num_classes + 1,)})
    for i in (0, 2, 4):  # Linear, ReLU, Linear, ReLU, Linear (O:.../box2mask_head.py:90-93)
        shapes[f"{head}mask_embed.{i}.weight"] = (feat, feat)
        shapes[f"{head}mask_embed.{i}.bias"] = (feat,)
    return shapes
