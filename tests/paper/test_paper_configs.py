"""Every paper config builds its model, runs one training step and one inference on CPU at reduced size.

The reduction (64 px images, narrow backbones and heads, few queries) is
applied here, never in the configs; what is checked is that the config's own
model type, head, losses and matching run end to end. The hyper-parameters
are checked against the release in tests/paper/test_paper_recipes.py; the heads'
parameter shapes and loss details against the release's code here.
"""
import glob
import importlib
from pathlib import Path

import pytest
import torch

mmdet = pytest.importorskip("mmdet")

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted(Path(p).name for p in glob.glob(str(ROOT / "experiments" / "paper" / "[!_]*.py")))
SIZE = 64


def _load(name):
    from mmengine.config import Config

    return Config.fromfile(str(ROOT / "experiments" / "paper" / name))


def _batch(num_classes):
    from mmdet.testing import demo_mm_inputs

    torch.manual_seed(0)
    return demo_mm_inputs(batch_size=2, image_shapes=[(3, SIZE, SIZE), (3, SIZE, 56)], num_items=[2, 1],
                          num_classes=num_classes, with_mask=False)


@pytest.mark.parametrize("name", CONFIGS)
def test_config_trains_one_step(name, shrink_paper_config):
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules

    register_all_modules()
    cfg = shrink_paper_config(_load(name))
    for module in cfg.custom_imports["imports"]:  # registers the model, as mmengine does
        importlib.import_module(module)
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.train()
    num_classes = 20 if "voc" in name else 80
    data = model.data_preprocessor(_batch(num_classes), training=True)
    for s in data["data_samples"]:
        assert "masks" not in s.gt_instances  # box supervision only
    losses = model.loss(data["inputs"], data["data_samples"])
    wanted = {"loss_cls", "loss_proj", "loss_gp", "loss_lp"}
    assert wanted <= set(losses)
    if cfg.model.type == "BoxMask2Former":  # every decoder prediction has its own losses
        assert {f"d{i}.{k}" for i in range(2) for k in wanted} <= set(losses)
    total = sum(v for v in losses.values())
    assert torch.isfinite(total)
    # the config's own optimiser, parameter groups and gradient clipping
    from mmengine.optim import build_optim_wrapper

    optim = build_optim_wrapper(model, cfg.optim_wrapper)
    if cfg.model.type == "BoxSOLOv2":  # the release: no weight decay on norm layers (norm_decay_mult=0)
        decay = {id(p): g["weight_decay"] for g in optim.optimizer.param_groups for p in g["params"]}
        head = model.mask_head
        assert decay[id(head.kernel_convs[0].gn.weight)] == 0.0
        assert decay[id(head.conv_kernel.weight)] == cfg.optim_wrapper.optimizer.weight_decay
    optim.backward(total)
    grads = [p.grad for p in model.backbone.parameters() if p.requires_grad and p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    optim.step()  # clips to the config's max_norm, then AdamW
    model.eval()
    with torch.no_grad():
        results = model.predict(data["inputs"], data["data_samples"])
    assert len(results) == 2
    for r, s in zip(results, data["data_samples"]):
        masks = r.pred_instances.masks
        assert masks.dim() == 3 and tuple(masks.shape[-2:]) == tuple(s.metainfo["ori_shape"][:2])


def test_paper_hyper_parameters():
    """What the suite adds around the release's recipes: data layout, launcher, plugin and matching."""
    for name in CONFIGS:
        cfg = _load(name)
        plugin = "apro.models.mask2former_apro" if name.startswith("mask2former") else "apro.models.box_solov2"
        assert cfg.custom_imports["imports"] == [plugin, "apro.data.transforms"]
        assert cfg.launcher == "none"  # without torchrun
        voc = "voc" in name
        assert cfg.train_dataloader.dataset.data_root == ("data/voc/" if voc else "data/coco/")
        assert cfg.test_evaluator.ann_file.endswith(("data/voc/" if voc else "data/coco/")
                                                    + "annotations/instances_val.json")
        assert cfg.train_cfg.type == "IterBasedTrainLoop" and cfg.val_cfg is None
        if name.startswith("solov2"):
            assert cfg.model.type == "BoxSOLOv2" and cfg.model.mask_head.type == "BoxSOLOV2Head"
            assert cfg.train_cfg.max_iters == 36 * cfg.iters_per_epoch
            assert cfg.iters_per_epoch == -(-(10582 if voc else 117266) // (cfg.num_gpus * cfg.batch_size))
        else:
            h = cfg.model.panoptic_head
            assert cfg.model.type == "BoxMask2Former" and h.type == "BoxMask2FormerHead"
            costs = [c.type for c in cfg.model.train_cfg.assigner.match_costs]
            assert costs == ["ClassificationCost", "BoxMatchingCost"]
            assert cfg.model.data_preprocessor.batch_augments is None  # padded (with 128) by the pipeline


def test_box_matching_cost_matches_the_release():
    """The release's BoxMatchingCost (match_cost.py:386-426): dice with squared denominators."""
    from mmengine.structures import InstanceData

    from apro.models.mask2former_apro import BoxMatchingCost

    torch.manual_seed(0)
    pred = torch.randn(3, 8, 10)
    box = torch.zeros(2, 8, 10)
    box[0, 2:5, 3:9] = 1
    box[1, 0:8, 0:2] = 1
    cost = BoxMatchingCost(weight=5.0, pred_act=True, eps=1.0)(InstanceData(masks=pred), InstanceData(masks=box))
    p = pred.sigmoid()
    for i in range(3):
        for j in range(2):
            want = 0.0
            for dim in (0, 1):  # max over x (a column profile) and over y (a row profile)
                a, b = p[i].amax(dim=dim), box[j].amax(dim=dim)
                want += 1 - (2 * (a * b).sum() + 1) / ((a * a).sum() + (b * b).sum() + 1)
            assert cost[i, j].item() == pytest.approx(5.0 * float(want), rel=1e-5)
    with pytest.raises(ValueError, match="same size"):
        BoxMatchingCost()(InstanceData(masks=pred), InstanceData(masks=box[:, :4]))
