"""apro convert-checkpoint: the release's checkpoints (mmdet 2.25) load strictly into this suite's models.

Offline: for each of the ten model-zoo entries a stand-in checkpoint is made with exactly the release's
parameter names and shapes (tests/release_layout.py says how each part is derived from the release's
code), every tensor filled with its own number; it must convert and load strictly into the entry's
built model, each number landing where the renaming says. Checkpoints of the wrong entry, truncated
files and non-checkpoints fail with messages that name the problem. The transformer layers, whose
module layout changed between mmcv 1.x and mmdet 3.x, are checked by computing one layer's output
both ways.
"""
from pathlib import Path

import pytest
import torch

pytest.importorskip("mmdet")
pytest.importorskip("mmcv.ops")

from apro.checkpoints import CheckpointError, build_model, convert_checkpoint, convert_state_dict, read_state_dict, \
    rename  # noqa: E402
from apro.registry import load_registry  # noqa: E402
from release_layout import DECODER_LAYER, ENCODER_LAYER, build_release_layer, release_checkpoint_shapes  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
REGISTRY = load_registry()
RELEASED = [e.name for e in REGISTRY.experiments_in("released")]


def _config(name: str) -> str:
    return str(REGISTRY.experiments[name].config_path())


def _num_classes(name: str) -> int:
    return 20 if REGISTRY.experiments[name].dataset == "voc" else 80


def _stand_in(shapes: dict) -> dict:
    """Tensor i holds the value i everywhere (a stride-0 view: no memory for the large models)."""
    return {k: torch.full((), float(i)).expand(s) for i, (k, s) in enumerate(shapes.items())}


def test_the_released_suite_is_the_model_zoo():
    assert len(RELEASED) == 10
    assert {e.name for e in REGISTRY.experiments_in("released")} == \
        {e.name for e in REGISTRY.experiments_in("paper") if e.paper}


@pytest.mark.parametrize("name", RELEASED)
def test_release_checkpoint_converts_and_loads_strictly(name):
    model, model_type = build_model(_config(name))
    state = _stand_in(release_checkpoint_shapes(model, model_type, _num_classes(name)))
    converted = convert_state_dict(state, model, model_type, source=name)
    assert set(converted) == set(model.state_dict())
    loaded = model.state_dict()
    for key, value in state.items():  # every tensor arrived under its new name with its own value
        got = loaded[rename(key, model_type)]
        assert float(got.flatten()[0]) == float(value.flatten()[0]), key
    renamed = {k for k in state if rename(k, model_type) != k}
    assert renamed, "the release's layout differs somewhere"


def test_checkpoint_of_another_entry_fails_naming_the_keys():
    model, model_type = build_model(_config("solov2_r50_coco"))
    voc = _stand_in(release_checkpoint_shapes(*build_model(_config("solov2_r50_voc")), 20))
    with pytest.raises(CheckpointError, match=r"shapes differ.*mask_head\.conv_cls\.weight \(20, 256, 3, 3\) vs "
                                              r"\(80, 256, 3, 3\)"):
        convert_state_dict(voc, model, model_type, source="solov2_voc_r50_36epoch.pth")
    r101, r101_type = build_model(_config("solov2_r101_coco"))
    with pytest.raises(CheckpointError, match=r"model keys missing from the checkpoint: backbone\.layer3\.10\."):
        convert_state_dict(_stand_in(release_checkpoint_shapes(model, model_type, 80)), r101, r101_type, source="x")
    m2f, m2f_type = build_model(_config("mask2former_r50_coco"))
    with pytest.raises(CheckpointError, match=r"checkpoint keys the model does not have: bbox_head\."):
        convert_state_dict(_stand_in(release_checkpoint_shapes(model, model_type, 80)), m2f, m2f_type, source="x")


def test_truncated_and_non_checkpoint_files_fail_clearly(tmp_path):
    good = tmp_path / "good.pth"
    torch.save({"state_dict": {"a": torch.zeros(3)}, "meta": {"epoch": 36}}, good)
    assert set(read_state_dict(good)) == {"a"}
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(good.read_bytes()[:-200])
    with pytest.raises(CheckpointError, match=r"truncated.pth: not a readable torch checkpoint"):
        read_state_dict(truncated)
    text = tmp_path / "notes.pth"
    text.write_text("solov2_voc_r50_36epoch")
    with pytest.raises(CheckpointError, match=r"notes.pth: not a readable torch checkpoint"):
        read_state_dict(text)
    listing = tmp_path / "list.pth"
    torch.save([1, 2, 3], listing)
    with pytest.raises(CheckpointError, match=r"list.pth: not a model checkpoint .*got list"):
        read_state_dict(listing)
    with pytest.raises(CheckpointError, match="no such file"):
        read_state_dict(tmp_path / "missing.pth")


def test_convert_checkpoint_writes_a_file_that_loads(tmp_path):
    """The whole command on a real file (SOLOv2 R50 VOC): strict load, atomic write, meta."""
    from mmengine.runner import load_checkpoint

    model, model_type = build_model(_config("solov2_r50_voc"))
    shapes = release_checkpoint_shapes(model, model_type, 20)
    src = tmp_path / "solov2_voc_r50_36epoch.pth"
    torch.manual_seed(0)
    torch.save({"meta": {"mmdet_version": "2.25.0"},
                "state_dict": {k: torch.randn(s) if len(s) else torch.zeros(()) for k, s in shapes.items()}}, src)
    out = tmp_path / "converted" / "checkpoint.pth"
    meta = convert_checkpoint(_config("solov2_r50_voc"), str(src), str(out))
    assert meta["model_type"] == "BoxSOLOv2" and len(meta["source_sha256"]) == 64
    assert [p.name for p in out.parent.iterdir()] == ["checkpoint.pth"]  # no temporary left
    fresh, _ = build_model(_config("solov2_r50_voc"))
    load_checkpoint(fresh, str(out), map_location="cpu", strict=True, logger="silent")
    want = torch.load(src, weights_only=True)["state_dict"]["bbox_head.solo_mask.weight"]
    assert torch.equal(fresh.mask_head.mask_feature_head.conv_pred.weight, want)


def _copy_converted(release_layer, new_layer, prefix):
    state = {rename(prefix + k, "BoxMask2Former")[len(prefix):]: v for k, v in release_layer.state_dict().items()}
    new_layer.load_state_dict(state, strict=True)


def test_decoder_layer_output_is_the_release_layers():
    """mmcv 1.x's decoder layer (cross-attn, norm, self-attn, norm, FFN, norm) vs mmdet 3.x's, converted weights."""
    from mmdet.models.layers.transformer import Mask2FormerTransformerDecoderLayer

    torch.manual_seed(0)
    dims = dict(embed_dims=32, num_heads=4, feedforward_channels=64)
    old = build_release_layer(DECODER_LAYER, **dims).eval()
    for p in old.parameters():  # non-trivial norms and biases
        torch.nn.init.normal_(p, std=0.2)
    new = Mask2FormerTransformerDecoderLayer(
        self_attn_cfg=dict(embed_dims=32, num_heads=4, dropout=0.0, batch_first=True),
        cross_attn_cfg=dict(embed_dims=32, num_heads=4, dropout=0.0, batch_first=True),
        ffn_cfg=dict(embed_dims=32, feedforward_channels=64, num_fcs=2, ffn_drop=0.0,
                     act_cfg=dict(type="ReLU", inplace=True))).eval()
    _copy_converted(old, new, "panoptic_head.transformer_decoder.layers.0.")
    q, k, qpos, kpos = (torch.randn(2, n, 32) for n in (5, 12, 5, 12))
    mask = torch.rand(2 * 4, 5, 12) > 0.7  # the mask-attention mask of Mask2Former, True = blocked
    mask[..., 0] = False
    with torch.no_grad():
        # the release's call (O:mmdet/models/dense_heads/box2mask_head.py:375-384): (L, B, C), attn_masks=[cross, self]
        want = old(query=q.transpose(0, 1), key=k.transpose(0, 1), value=k.transpose(0, 1),
                   query_pos=qpos.transpose(0, 1), key_pos=kpos.transpose(0, 1), attn_masks=[mask, None],
                   query_key_padding_mask=None, key_padding_mask=None).transpose(0, 1)
        got = new(query=q, key=k, value=k, query_pos=qpos, key_pos=kpos, cross_attn_mask=mask,
                  query_key_padding_mask=None, key_padding_mask=None)
    assert torch.allclose(got, want, atol=1e-5)


def test_encoder_layer_output_is_the_release_layers():
    """mmcv 1.x's deformable encoder layer (self-attn, norm, FFN, norm) vs mmdet 3.x's, converted weights."""
    from mmdet.models.layers.transformer import DeformableDetrTransformerEncoderLayer

    torch.manual_seed(0)
    old = build_release_layer(ENCODER_LAYER, embed_dims=32, num_heads=4, feedforward_channels=64).eval()
    for p in old.parameters():
        torch.nn.init.normal_(p, std=0.2)
    new = DeformableDetrTransformerEncoderLayer(
        self_attn_cfg=dict(embed_dims=32, num_heads=4, num_levels=3, num_points=4, dropout=0.0, batch_first=True),
        ffn_cfg=dict(embed_dims=32, feedforward_channels=64, num_fcs=2, ffn_drop=0.0,
                     act_cfg=dict(type="ReLU", inplace=True))).eval()
    _copy_converted(old, new, "panoptic_head.pixel_decoder.encoder.layers.0.")
    shapes = torch.tensor([[6, 8], [3, 4], [2, 2]])
    start = torch.cat([shapes.new_zeros(1), shapes.prod(1).cumsum(0)[:-1]])
    n = int(shapes.prod(1).sum())
    q, pos = torch.randn(2, n, 32), torch.randn(2, n, 32)
    ref = torch.rand(2, n, 3, 2)
    with torch.no_grad():
        want = old(query=q.transpose(0, 1), key=None, value=None, query_pos=pos.transpose(0, 1),
                   reference_points=ref, spatial_shapes=shapes, level_start_index=start).transpose(0, 1)
        got = new(query=q, query_pos=pos, key_padding_mask=None, reference_points=ref, spatial_shapes=shapes,
                  level_start_index=start)
    assert torch.allclose(got, want, atol=1e-5)
