"""The side-by-side check with this suite on both sides (CI cannot build the release's venv).

A paper model's weights are written in the release's layout (the names of tests/release_layout.py, read off
the release's code), converted back with ``apro convert-checkpoint`` and run on the check's batch next to
the original model: every figure must be exactly equal. A changed loss weight, or a weight transposed in
the release-layout file, must make the same comparison fail and name what differs.
"""
from pathlib import Path

import pytest
import torch

pytest.importorskip("mmdet")
pytest.importorskip("mmcv.ops")

from release_layout import release_checkpoint_shapes  # noqa: E402

from apro.checkpoints import convert_checkpoint, rename  # noqa: E402
from apro.crosscheck import compare, suite_side  # noqa: E402
from apro.crosscheck.batch import make_batch  # noqa: E402
from apro.crosscheck.run import entry_classes, photo_specs, pipeline_choices, write_photos  # noqa: E402
from apro.evaluate import build_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CONFIG = str(ROOT / "experiments" / "paper" / "solov2_r50_voc.py")
SIZE, SYNTHETIC = (96, 128), (64, 96)  # small inputs: the full R50 model runs in seconds


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("roundtrip")
    cfg = suite_side.load_config(CONFIG)
    cfg.model.test_cfg.update(score_thr=0.3, mask_thr=0.5)  # detections from an untrained model
    torch.manual_seed(0)
    model = build_model(cfg)
    model.init_weights()
    with torch.no_grad():
        model.mask_head.conv_cls.bias.fill_(1.0)  # scores above the threshold
    release_names = {rename(k, cfg.model.type): k for k in release_checkpoint_shapes(model, cfg.model.type, 20)}
    assert set(release_names) == set(model.state_dict())
    state = {release_names[k]: v.clone() for k, v in model.state_dict().items()}
    batch = make_batch("SOLOv2", entry_classes(cfg), input_size=SIZE, synthetic_size=SYNTHETIC)
    spec = {**pipeline_choices("SOLOv2"), "photos": photo_specs(tmp / "photos", entry_classes(cfg), 0)}
    write_photos(spec["photos"], 0)
    release = _as_release(suite_side.results(cfg, model, batch, spec, noise_floor=False), release_names)
    return tmp, cfg, release, state, batch, spec


def _as_release(res: dict, release_names: dict) -> dict:
    """One side's results under the release's names (parameters and loss terms)."""
    loss_names = {v: k for k, v in compare.LOSS_NAMES["SOLOv2"].items()}
    return {**res, "grads": {release_names[k]: v for k, v in res["grads"].items()},
            "losses": {loss_names[k]: v for k, v in res["losses"].items()}}


def _converted(tmp: Path, state: dict, name: str) -> str:
    src, out = tmp / f"{name}.pth", tmp / f"{name}.converted.pth"
    torch.save({"state_dict": state, "meta": {"mmcv_version": "1.6.0"}}, src)
    convert_checkpoint(CONFIG, str(src), str(out))
    return str(out)


def _compare(setup, cfg, checkpoint):
    _, _, release, _, batch, spec = setup
    ours = suite_side.results(cfg, suite_side.build_model(cfg, checkpoint), batch, spec, noise_floor=False)
    parts = compare.compare_all(release, ours, "SOLOv2", cfg.model.type, [im["name"] for im in batch["images"]])
    return parts, compare.problems_of(parts)


def test_converted_round_trip_is_exact(setup):
    tmp, cfg, _, state, _, _ = setup
    parts, problems = _compare(setup, cfg, _converted(tmp, state, "same"))
    assert problems == [] and compare.verdict(parts) == "parity"
    assert parts["losses"]["max_rel_diff"] == 0.0 and len(parts["losses"]["terms"]) == 4
    assert parts["grads"]["min_cos"] == pytest.approx(1.0, abs=1e-12) and parts["grads"]["max_rel_norm_diff"] == 0.0
    preds = parts["predictions"]
    assert preds["release"] > 0 and preds["within"] == preds["release"] == preds["ours"]
    assert parts["pipelines"]["max_input_abs"] == 0.0 and parts["pipelines"]["box_mask_pixels"] == 0


def test_a_changed_loss_weight_is_named(setup):
    tmp, cfg, _, state, _, _ = setup
    changed = cfg.copy()
    changed.model.mask_head.loss_gp.loss_weight = 2.2
    parts, problems = _compare(setup, changed, _converted(tmp, state, "weight"))
    assert compare.verdict(parts) == "differs"
    assert any(p.startswith("losses: loss loss_global (loss_gp)") for p in problems), problems
    assert not any("loss_boxpro" in p or "loss_cate" in p for p in problems)  # only the GP term moved


def test_a_transposed_weight_fails_the_comparison(setup):
    tmp, cfg, _, state, _, _ = setup
    key = "bbox_head.solo_kernel.weight"  # 256 x 256 x 1 x 1: the transpose still loads
    transposed = {**state, key: state[key].transpose(0, 1).contiguous()}
    parts, problems = _compare(setup, cfg, _converted(tmp, transposed, "transposed"))
    assert compare.verdict(parts) == "differs"
    assert any(p.startswith("losses: loss loss_boxpro") for p in problems), problems
    assert any(p.startswith("grads: gradient of bbox_head.") for p in problems), problems
