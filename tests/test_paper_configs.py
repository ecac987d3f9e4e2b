"""Every paper config builds its model and runs one training step on CPU at reduced size.

The reduction (64 px images, narrow backbones and heads, few queries) is
applied here, never in the configs; what is checked is that the config's own
model type, head, losses and matching run end to end, and that the hyper-
parameters the configs promise are the ones they hold.
"""
import glob
from pathlib import Path

import pytest
import torch

mmdet = pytest.importorskip("mmdet")

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = sorted(Path(p).name for p in glob.glob(str(ROOT / "experiments" / "paper" / "[!_]*.py")))
SIZE = 64


def _load(name):
    from mmengine.config import Config

    return Config.fromfile(str(ROOT / "experiments" / "paper" / name))


def _shrink(cfg):
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
        h.mask_feature_head.update(feat_channels=16, out_channels=16,
                                   norm_cfg=dict(type="GN", num_groups=4, requires_grad=True))
        h.loss_lp.iterations = 2
    else:
        m.data_preprocessor.batch_augments[0].size = (SIZE, SIZE)
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


def _batch(num_classes):
    from mmdet.testing import demo_mm_inputs

    torch.manual_seed(0)
    return demo_mm_inputs(batch_size=2, image_shapes=[(3, SIZE, SIZE), (3, SIZE, 56)], num_items=[2, 1],
                          num_classes=num_classes, with_mask=False)


@pytest.mark.parametrize("name", CONFIGS)
def test_config_trains_one_step(name):
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules

    register_all_modules()
    import apro.models  # noqa: F401  (what custom_imports loads)

    cfg = _shrink(_load(name))
    assert cfg.custom_imports["imports"] == ["apro.models"]
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
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    opt.zero_grad()
    total.backward()
    grads = [p.grad for p in model.backbone.parameters() if p.requires_grad and p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    opt.step()


def test_paper_hyper_parameters():
    """The values of the issue / original configs (written out here, not read from the configs)."""
    seen = {}
    for name in CONFIGS:
        cfg = _load(name)
        seen[name] = cfg
        assert cfg.custom_imports["imports"] == ["apro.models"]
        assert cfg.launcher == "none"  # without torchrun
        voc = "voc" in name
        n_cls = 20 if voc else 80
        assert cfg.train_dataloader.dataset.data_root == ("data/voc/" if voc else "data/coco/")
        assert cfg.test_evaluator.ann_file.endswith(("data/voc/" if voc else "data/coco/")
                                                    + "annotations/instances_val.json")
        if name.startswith("solov2"):
            h = cfg.model.mask_head
            assert cfg.model.type == "BoxSOLOv2" and h.num_classes == n_cls
            assert (h.loss_proj.loss_weight, h.loss_gp.loss_weight, h.loss_lp.loss_weight) == (3.0, 2.0, 1.0)
            assert tuple(h.loss_gp.zetas) == (0.01, 0.07)
            assert h.loss_lp.kernel_size == (5 if voc else 3) and h.loss_lp.zeta == 0.15
            assert cfg.optim_wrapper.optimizer.type == "SGD" and cfg.optim_wrapper.optimizer.lr == 0.01
            per_epoch = -(-(10582 if voc else 117266) // 16)
            assert cfg.train_cfg.max_iters == 36 * per_epoch
            assert cfg.param_scheduler[-1].milestones == [27 * per_epoch, 33 * per_epoch]
            assert cfg.train_dataloader.batch_size == 2
        else:
            h = cfg.model.panoptic_head
            assert cfg.model.type == "BoxMask2Former" and h.type == "BoxMask2FormerHead"
            assert h.num_things_classes == n_cls and h.num_queries == 100
            assert (h.loss_proj.loss_weight, h.loss_gp.loss_weight, h.loss_lp.loss_weight) == (5.0, 1.0, 1.0)
            assert h.loss_gp.size == 96
            costs = [c.type for c in cfg.model.train_cfg.assigner.match_costs]
            assert costs == ["ClassificationCost", "BoxProjectionCost"]
            assert cfg.optim_wrapper.optimizer.type == "AdamW"
            assert cfg.optim_wrapper.clip_grad.max_norm == 0.01
    zetas = {n: tuple(seen[n].model.panoptic_head.loss_gp.zetas) for n in seen if n.startswith("mask2former")}
    assert zetas == {"mask2former_r50_voc.py": (0.02, 0.03), "mask2former_r101_voc.py": (0.03, 0.03),
                     "mask2former_swinl_voc.py": (0.03,), "mask2former_r50_coco.py": (0.03, 0.03),
                     "mask2former_r101_coco.py": (0.03, 0.03), "mask2former_swinl_coco.py": (0.03, 0.03),
                     "mask2former_swint_coco.py": (0.03, 0.03)}
    assert seen["mask2former_r50_voc.py"].train_cfg.max_iters == 33065
    assert seen["mask2former_r50_coco.py"].train_cfg.max_iters == 368750


def test_box_projection_cost_matches_definition():
    from mmengine.structures import InstanceData

    from apro.models.mask2former_apro import BoxProjectionCost

    torch.manual_seed(0)
    pred = torch.randn(3, 8, 10)
    box = torch.zeros(2, 8, 10)
    box[0, 2:5, 3:9] = 1
    box[1, 0:8, 0:2] = 1
    cost = BoxProjectionCost(weight=5.0, eps=1.0)(InstanceData(masks=pred), InstanceData(masks=box))
    p = pred.sigmoid()
    for i in range(3):
        for j in range(2):
            want = 0.0
            for dim in (1, 2):  # projections onto x and y
                a, b = p[i].amax(dim=dim - 1), box[j].amax(dim=dim - 1)
                want += 1 - (2 * (a * b).sum() + 1) / (a.sum() + b.sum() + 1)
            assert cost[i, j].item() == pytest.approx(5.0 * float(want), rel=1e-5)
    with pytest.raises(ValueError, match="same size"):
        BoxProjectionCost()(InstanceData(masks=pred), InstanceData(masks=box[:, :4]))
