"""Tests of the box-supervised SOLOv2 plugin (apro.models) and the demo configs.

Small and CPU-only: the models are the demo configs' (ResNet-18 at 128x128),
the data a handful of synthetic images.
"""
import copy
import glob
import math
import os

import numpy as np
import pytest
import torch

pytest.importorskip("mmdet")
pytest.importorskip("mmcv.ops")

from mmdet.registry import DATASETS, MODELS  # noqa: E402
from mmdet.structures.mask import BitmapMasks  # noqa: E402
from mmdet.utils import register_all_modules  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.dataset import pseudo_collate  # noqa: E402
from mmengine.optim import OptimWrapper  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402

import apro.models.box_solov2  # noqa: E402,F401  (registers the plugin modules)
import apro.models.mask2former_apro  # noqa: E402,F401
from apro.data.synthetic import generate  # noqa: E402
from apro.losses import box as box_losses  # noqa: E402
from apro.models.box_solov2 import BoxSOLOV2Head  # noqa: E402
from apro.runs import load_config  # noqa: E402

pytestmark = pytest.mark.filterwarnings(
    "ignore::UserWarning", "ignore::DeprecationWarning",
    "ignore:__array__ implementation doesn't accept a copy keyword")

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEMO = os.path.join(REPO, "experiments", "demo")
VARIANTS = {"box": ("BoxSOLOV2Head", set()), "box_lp": ("BoxSOLOV2Head", {"lp"}),
            "box_gp": ("BoxSOLOV2Head", {"gp"}), "box_gp_lp": ("BoxSOLOV2Head", {"gp", "lp"}),
            "mask": ("SOLOV2Head", None)}

register_all_modules(init_default_scope=False)


@pytest.fixture(autouse=True)
def _scope():
    init_default_scope("mmdet")
    yield


def _config(name):
    return Config.fromfile(os.path.join(DEMO, f"{name}.py"))


def _model(name, **head_overrides):
    cfg = _config(name)
    cfg.model.mask_head.update(head_overrides)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic") / "shapes"
    generate(out, num_train=10, num_val=2, image_size=128, seed=5, empty_fraction=0.5, progress_every=0)
    return str(out)


@pytest.fixture(scope="module")
def train_samples(data_root):
    """(non-empty samples, empty samples) through the box configs' train pipeline."""
    init_default_scope("mmdet")
    cfg = load_config(os.path.join(DEMO, "box_gp_lp.py"), data_root, seed=0)
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    samples = [dataset[i] for i in range(len(dataset))]
    full = [s for s in samples if len(s["data_samples"].gt_instances) > 0]
    empty = [s for s in samples if len(s["data_samples"].gt_instances) == 0]
    assert full and empty
    return full, empty


def test_demo_configs_are_the_five_variants():
    names = sorted(os.path.splitext(os.path.basename(p))[0] for p in glob.glob(os.path.join(DEMO, "*.py"))
                   if not os.path.basename(p).startswith("_"))
    assert names == sorted([*VARIANTS, "stage1"])  # stage1: the shared first stage (box.py, longer)


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_head_builds_from_each_demo_config(name):
    head_type, terms = VARIANTS[name]
    cfg = _config(name)
    assert cfg.custom_imports["imports"] == ["apro.models.box_solov2"]  # the module registering BoxSOLOv2
    assert cfg.model.backbone.depth == 18 and cfg.model.backbone.init_cfg is None
    model = MODELS.build(cfg.model)
    assert type(model.mask_head).__name__ == head_type
    if terms is not None:
        head = model.mask_head
        assert isinstance(head, BoxSOLOV2Head)
        assert head.loss_proj_cfg["loss_weight"] == 3.0
        assert (head.loss_gp_cfg is not None) == ("gp" in terms)
        assert (head.loss_lp_cfg is not None) == ("lp" in terms)
        if "gp" in terms:
            assert head.loss_gp_cfg["loss_weight"] == 2.0 and tuple(head.loss_gp_cfg["zetas"]) == (0.01, 0.07)
        if "lp" in terms:
            lp = head.loss_lp_cfg
            assert (lp["loss_weight"], lp["kernel_size"], lp["zeta"], lp["iterations"]) == (1.0, 5, 0.15, 20)
        # box-supervised variants never load the GT masks
        loads = [t for t in cfg.train_dataloader.dataset.pipeline if t["type"] == "LoadAnnotations"]
        assert loads and all(t.get("with_mask") is False for t in loads)


def _train_step(model, samples):
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.0))
    model.train()
    return model.train_step(pseudo_collate(copy.deepcopy(samples)), optim)


def test_box_gp_lp_training_step_with_an_empty_image(train_samples):
    full, empty = train_samples
    model = _model("box_gp_lp")
    log_vars = _train_step(model, [full[0], empty[0], full[1]])
    assert {"loss", "loss_proj", "loss_gp", "loss_lp", "loss_cls"} <= set(log_vars)
    for key, value in log_vars.items():
        assert math.isfinite(float(value)), key
    assert float(log_vars["loss_proj"]) > 0
    assert float(log_vars["loss_gp"]) > 0 and float(log_vars["loss_lp"]) > 0

    only_empty = _train_step(model, [empty[0]])
    assert all(math.isfinite(float(v)) for v in only_empty.values())
    assert float(only_empty["loss_proj"]) == 0.0 and float(only_empty["loss_gp"]) == 0.0


def test_loss_terms_switch_off(train_samples):
    full, _ = train_samples
    log_vars = _train_step(_model("box"), [full[0]])
    assert "loss_gp" not in log_vars and "loss_lp" not in log_vars and "loss_proj" in log_vars


def _manual_samples(train_samples, mask_fn):
    """Copies of two training samples with GT masks set by ``mask_fn(k, h, w)``."""
    full, empty = train_samples
    out = []
    for s in (full[0], empty[0], full[1]):
        s = copy.deepcopy(s)
        gt = s["data_samples"].gt_instances
        h, w = s["inputs"].shape[-2:]
        gt.masks = BitmapMasks(mask_fn(len(gt), h, w), h, w)
        out.append(s)
    return out


def test_mask_targets_ignore_gt_masks(train_samples):
    model = _model("box_gp_lp")
    model.train()
    rng = np.random.default_rng(0)
    losses = []
    for fn in (lambda k, h, w: np.zeros((k, h, w), np.uint8),
               lambda k, h, w: np.ones((k, h, w), np.uint8),
               lambda k, h, w: (rng.random((k, h, w)) > 0.5).astype(np.uint8)):
        data = model.data_preprocessor(pseudo_collate(_manual_samples(train_samples, fn)), True)
        with torch.no_grad():
            losses.append({k: float(v) for k, v in model(**data, mode="loss").items()})
    assert losses[0] == losses[1] == losses[2]


def test_projection_loss_zero_iff_prediction_is_the_box():
    boxes = torch.tensor([[2.0, 3.0, 10.0, 14.0], [0.0, 0.0, 16.0, 16.0], [5.0, 5.0, 7.0, 6.0]])
    box = box_losses.box_masks_from_boxes(boxes, 16, 16)[:, None]
    assert box[0, 0].sum() == 8 * 11 and box[1, 0].sum() == 256 and box[2, 0].sum() == 2
    assert torch.allclose(box_losses.projection_loss(box, box), torch.zeros(3), atol=1e-4)  # dice eps
    # a prediction inside the box that covers every row and column projects onto the box
    cross = torch.zeros_like(box)
    cross[0, 0, 3:14, 5] = 1
    cross[0, 0, 8, 2:10] = 1
    assert float(box_losses.projection_loss(cross[:1], box[:1])) < 1e-4
    # anything else is penalised
    shifted = torch.roll(box, shifts=3, dims=3)
    assert (box_losses.projection_loss(shifted[:1], box[:1]) > 0.05).all()
    assert (box_losses.projection_loss(0.5 * box, box) > 0.05).all()
    assert (box_losses.projection_loss(torch.zeros_like(box), box) > 0.9).all()


def test_gp_lp_losses_zero_at_the_propagated_target():
    torch.manual_seed(0)
    images = torch.rand(2, 3, 12, 10)
    index = torch.tensor([0, 0, 1])
    box = torch.ones(3, 1, 12, 10)
    # a constant map is a fixed point of both normalised propagations
    const = torch.full((3, 1, 12, 10), 0.7)
    assert torch.allclose(box_losses.gp_loss(const, box, images, index), torch.zeros(3), atol=1e-5)
    assert torch.allclose(box_losses.lp_loss(const, box, images, index), torch.zeros(3), atol=1e-5)
    # a prediction equal to its (constant) target has zero loss; any other prediction not
    pred = torch.rand(3, 1, 12, 10, requires_grad=True)
    box2 = box_losses.box_masks_from_boxes(torch.tensor([[1.0, 1, 8, 9]] * 3), 12, 10)[:, None]
    for targets in (box_losses.gp_soft_targets(pred, images, index),
                    box_losses.lp_soft_targets(pred, images, box2, index)):
        assert not targets.requires_grad
        assert torch.allclose(box_losses.masked_l1_loss(targets, targets, box2), torch.zeros(3))
        loss = box_losses.masked_l1_loss(pred, targets, box2)
        assert (loss > 0).all()
        loss.sum().backward()
        assert pred.grad is not None and torch.isfinite(pred.grad).all()
        pred.grad = None


def test_gp_lp_share_the_image_across_instances():
    """Instances of one image get the same targets alone or batched with another image's."""
    torch.manual_seed(1)
    images = torch.rand(2, 3, 9, 11)
    pred = torch.rand(3, 1, 9, 11)
    box = torch.ones(3, 1, 9, 11)
    index = torch.tensor([1, 0, 1])
    gp_all = box_losses.gp_soft_targets(pred, images, index)
    lp_all = box_losses.lp_soft_targets(pred, images, box, index)
    gp_one = box_losses.gp_soft_targets(pred[[0, 2]], images[1:], torch.tensor([0, 0]))
    lp_one = box_losses.lp_soft_targets(pred[[0, 2]], images[1:], box[[0, 2]], torch.tensor([0, 0]))
    assert torch.allclose(gp_all[[0, 2]], gp_one, atol=1e-6)
    assert torch.allclose(lp_all[[0, 2]], lp_one, atol=1e-6)


def test_pairwise_warmup_ramps_with_the_iteration():
    from mmengine.logging import MessageHub

    head = _model("box_gp_lp", pairwise_warmup_iters=100).mask_head
    hub = MessageHub.get_current_instance()
    hub.update_info("iter", 0)
    assert head._pairwise_factor() == pytest.approx(0.01)
    hub.update_info("iter", 49)
    assert head._pairwise_factor() == pytest.approx(0.5)
    hub.update_info("iter", 500)
    assert head._pairwise_factor() == 1.0
    hub.update_info("iter", 0)
    assert _model("box_gp_lp", pairwise_warmup_iters=0).mask_head._pairwise_factor() == 1.0


def test_train_resume_and_evaluate_smoke(data_root, tmp_path, monkeypatch):
    """apro.train: 2 iterations, done.json, resume from the last checkpoint; apro.evaluate: metrics.json."""
    import json

    from apro import cli, runs
    from apro import train as train_mod

    config = os.path.join(DEMO, "box_gp_lp.py")
    work = tmp_path / "work"
    assert cli.main(["train", config, "--work-dir", str(work), "--data-root", data_root, "--max-iters", "2",
                     "--threads", "1"]) == 0
    done = json.loads((work / "done.json").read_text())
    assert done["max_iters"] == 2 and os.path.isfile(done["checkpoint"])
    assert runs.read_done(work) == done
    # a finished work dir is left alone; without the marker, training resumes from the last checkpoint
    assert train_mod.train(config, str(work), data_root, max_iters=2)["checkpoint"] == done["checkpoint"]
    (work / "done.json").unlink()
    again = train_mod.train(config, str(work), data_root, max_iters=2)
    assert again["checkpoint"] == done["checkpoint"] and (work / "done.json").is_file()
    assert done["resumed_from"] is None and again["resumed_from"].endswith("iter_2.pth")

    out = tmp_path / "metrics.json"
    assert cli.main(["evaluate", config, str(work), "--data-root", data_root, "--out", str(out), "--seed", "3"]) == 0
    metrics = json.loads(out.read_text())
    for key in ("AP", "AP50", "AP75"):
        assert 0.0 <= metrics[key] <= 100.0
    assert metrics["seed"] == 3 and len(metrics["config_sha256"]) == 64
    assert 0.0 <= metrics["diagnostics"]["best_iou_mean"] <= 1.0
    assert set(metrics["versions"]) == {"torch", "mmdet", "mmcv", "mmengine"}
    assert not list(tmp_path.glob("**/*.tmp"))


def test_init_from_starts_with_the_other_runs_weights_and_a_fresh_schedule(data_root, tmp_path, monkeypatch):
    """--init-from: the weights of another run's final checkpoint (given as its done.json), but
    iteration 0 and a new optimiser; a resume from the run's own checkpoint takes precedence."""
    import json

    import torch

    from apro import cli, runs
    from apro import train as train_mod
    from apro.checkpoints import load_checkpoint_file

    first = tmp_path / "first"
    base = train_mod.train(os.path.join(DEMO, "box.py"), str(first), data_root, max_iters=2)
    # a variant with a zero learning rate: its weights can only come from the starting checkpoint
    frozen = tmp_path / "frozen.py"
    frozen.write_text(f"_base_ = [{os.path.join(DEMO, 'box_gp_lp.py')!r}]\n"
                      "optim_wrapper = dict(optimizer=dict(lr=0.0))\n")
    second = tmp_path / "second"
    done = train_mod.train(str(frozen), str(second), data_root, max_iters=1, init_from=str(first / "done.json"))
    assert done["init_from"] == base["checkpoint"] and done["checkpoint"].endswith("iter_1.pth")
    start = load_checkpoint_file(base["checkpoint"])  # this suite's own checkpoints load weights-only
    end = load_checkpoint_file(done["checkpoint"])
    assert end["meta"]["iter"] == 1  # counted from 0, not from the other run's 2
    weights = [k for k, v in start["state_dict"].items() if v.is_floating_point() and "running" not in k]
    assert weights and all(torch.equal(start["state_dict"][k], end["state_dict"][k]) for k in weights)

    assert cli.main(["train", str(frozen), "--work-dir", str(tmp_path / "w"), "--data-root", data_root,
                     "--init-from", str(tmp_path / "nope.pth")]) == 2
    bad = tmp_path / "done.json"
    bad.write_text(json.dumps({"checkpoint": str(tmp_path / "gone.pth")}))
    with pytest.raises(runs.TrainError, match="done.json of a finished training"):
        runs.init_checkpoint(bad)


def test_cli_errors_name_the_argument(tmp_path, capsys):
    from apro import cli

    assert cli.main(["train", os.path.join(DEMO, "box.py"), "--work-dir", str(tmp_path / "w"),
                     "--data-root", str(tmp_path / "missing")]) == 2
    assert "--data-root" in capsys.readouterr().err
    assert cli.main(["train", str(tmp_path / "nope.py"), "--work-dir", str(tmp_path / "w"),
                     "--data-root", str(tmp_path)]) == 2
    assert "nope.py: no such file" in capsys.readouterr().err
