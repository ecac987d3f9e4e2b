"""The paper heads against the APro release's code (CircleRadon/APro at 8251a9e, "O:" paths).

(That their parameters are the release's, name for name and shape for shape, is checked by the
strict loading of stand-in release checkpoints in tests/models/test_checkpoints.py.)

* the box masks at a loss size are the release's ``GenerateBoxMask`` + ``mmcv.imrescale`` (both run here
  as the release runs them, on numpy);
* SOLOv2's loss layout: per-level sizes, the < 10-pixel filter;
* Mask2Former's GP and LP: normalised by the total box area, GP against the prediction resized down
  and up through the GP grid (O:mmdet/models/dense_heads/box2mask_head.py:291-313), recomputed here
  step by step from the release's code with the project's ops.
"""
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("mmdet")
pytest.importorskip("mmcv.ops")

import mmcv  # noqa: E402
from mmdet.registry import MODELS  # noqa: E402
from mmdet.utils import register_all_modules  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402
from mmengine.structures import InstanceData  # noqa: E402

import apro.models.box_solov2  # noqa: E402,F401  (registers the plugin modules)
import apro.models.mask2former_apro  # noqa: E402,F401
from apro.losses.box import release_box_masks  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
register_all_modules(init_default_scope=False)


@pytest.fixture(autouse=True)
def _scope():
    init_default_scope("mmdet")


def _paper(name):
    return Config.fromfile(str(ROOT / "experiments" / "paper" / name))


def _release_box_mask(box, height, width, stride):
    """GenerateBoxMask (O:mmdet/datasets/pipelines/loading.py:652-663) then the head's mmcv.imrescale (O:SH:436)."""
    mask = np.zeros((height, width), dtype=np.uint8)
    rx0, ry0, rx1, ry1 = np.asarray(box, dtype=np.float32).round().astype(np.int32)
    mask[ry0:ry1 + 1, rx0:rx1 + 1] = 1
    return mmcv.imrescale(mask, scale=1.0 / stride)


def test_release_box_masks_are_generate_box_mask_then_imrescale():
    rng = np.random.default_rng(0)
    h, w = 96, 160
    boxes = []
    for _ in range(60):
        x0, y0 = rng.uniform(0, w - 2), rng.uniform(0, h - 2)
        boxes.append([x0, y0, rng.uniform(x0 + 0.5, w), rng.uniform(y0 + 0.5, h)])
    boxes += [[2.5, 3.5, 9.5, 10.5], [0, 0, w, h], [17.0, 30.0, 18.0, 31.0], [40.2, 8.7, 41.4, 60.0]]
    t = torch.tensor(boxes, dtype=torch.float32)
    for stride in (1, 4, 8, 16):  # 1: the input's own size (Mask2Former's matching), no resize
        got = release_box_masks(t, h, w, (h // stride, w // stride))
        for k, box in enumerate(boxes):
            want = _release_box_mask(box, h, w, stride)
            assert np.array_equal(got[k].numpy().astype(np.uint8), want), (stride, box)
    assert torch.equal(release_box_masks(t, h, w), release_box_masks(t, h, w, (h, w)))  # the default size
    assert release_box_masks(t[:0], h, w, (24, 40)).shape == (0, 24, 40)


def _small_solov2_head(**kw):
    cfg = dict(type="BoxSOLOV2Head", num_classes=3, in_channels=8, feat_channels=8, stacked_convs=1,
               strides=[8, 16, 32], scale_ranges=((1, 32), (16, 64), (32, 128)), num_grids=[8, 6, 4],
               norm_cfg=dict(type="GN", num_groups=4, requires_grad=True), conv_kernel_size=1,
               mask_feature_head=dict(type="AProMaskFeatModule", feat_channels=8, start_level=0, end_level=2,
                                      out_channels=8, mask_stride=4, norm_cfg=None),
               loss_strides=(4, 8, 16))
    cfg.update(kw)
    return MODELS.build(cfg)


def test_solov2_targets_at_each_levels_loss_size_and_small_boxes_dropped():
    head = _small_solov2_head()
    assert head.loss_sizes(32, 48) == [(32, 48), (16, 24), (8, 12)]
    gt = InstanceData(labels=torch.tensor([0, 1, 2, 1]),
                      bboxes=torch.tensor([[10.0, 12.0, 30.0, 30.0],      # sqrt(area) 19: level 0
                                           [40.0, 20.0, 90.0, 70.0],      # 50: levels 1 and 2
                                           [20.0, 10.0, 120.0, 110.0],    # 100: level 2
                                           [60.0, 60.0, 62.4, 62.4]]))    # a 3 x 3-pixel box mask: 9 < 10
    targets, labels, _, pos = head._get_targets_single(gt, featmap_sizes=(32, 48))
    assert [tuple(t.shape[1:]) for t in targets] == [(32, 48), (16, 24), (8, 12)]
    assert all(t[k].sum() > 0 for t in targets for k in range(len(t)))
    # the box of level 0, as the release draws and shrinks it
    want = _release_box_mask([10.0, 12.0, 30.0, 30.0], 128, 192, 4)
    assert np.array_equal(targets[0][0].numpy(), want)
    tiny_cells = [i for i in pos[0] if labels[0].flatten()[i] == 1]
    assert tiny_cells == []  # the 3 x 3 box is no positive (O:SH:416)
    keep_all = _small_solov2_head(min_box_pixels=0)
    _, labels0, _, pos0 = keep_all._get_targets_single(gt, featmap_sizes=(32, 48))
    assert any(labels0[0].flatten()[i] == 1 for i in pos0[0])


def test_solov2_loss_runs_per_level_and_matches_a_per_level_recomputation():
    """The pooled loss equals the release's: per level at its size, all positives' terms averaged (O:SH:322-348)."""
    from apro.losses.box import gp_soft_targets, lp_soft_targets, masked_l1_loss, projection_loss

    torch.manual_seed(0)
    head = _small_solov2_head()
    head.init_weights()
    feats = [torch.randn(1, 8, 32 // 2 ** i, 48 // 2 ** i) for i in range(3)]
    inputs = torch.randn(1, 3, 128, 192)
    gt = InstanceData(labels=torch.tensor([0, 2]), bboxes=torch.tensor([[10.0, 12.0, 30.0, 30.0],
                                                                       [20.0, 10.0, 120.0, 110.0]]))
    kernels, cls, mask_feats = head(feats)
    losses = head.loss_by_feat(kernels, cls, mask_feats, [gt], [dict()], batch_inputs=inputs)
    targets, _, _, pos = head._get_targets_single(gt, featmap_sizes=mask_feats.shape[-2:])
    proj, gp, lp = [], [], []
    for lvl, size in enumerate(head.loss_sizes(*mask_feats.shape[-2:])):
        if not pos[lvl]:
            continue
        k = kernels[lvl][0].reshape(8, -1)[:, pos[lvl]].t().reshape(-1, 8, 1, 1)
        p = F.interpolate(F.conv2d(mask_feats, k), size=size, mode="bilinear", align_corners=False)
        p = p.permute(1, 0, 2, 3).sigmoid()
        box = targets[lvl][:, None].float()
        guide = F.interpolate(inputs, size=size, mode="bilinear", align_corners=False)
        idx = torch.zeros(len(p), dtype=torch.int64)
        proj.append(projection_loss(p, box))
        gp.append(masked_l1_loss(p, gp_soft_targets(p, guide, idx, (0.01, 0.07)), box))
        lp.append(masked_l1_loss(p, lp_soft_targets(p, guide, box, idx, 5, 0.15, 20), box))
    assert len(proj) == 3  # box 0 on levels 0 and 1, box 1 on level 2: three loss sizes
    for name, w, parts in (("loss_proj", 3.0, proj), ("loss_gp", 2.0, gp), ("loss_lp", 1.0, lp)):
        assert float(losses[name]) == pytest.approx(w * float(torch.cat(parts).mean()), rel=1e-5), name


def _small_mask2former(shrink):
    return MODELS.build(shrink(_paper("mask2former_r50_voc.py")).model)


def test_mask2former_gp_lp_normalised_by_total_box_area(shrink_paper_config):
    """One decoder layer's GP and LP terms against the release's loss_single (O:MH:291-313), step by step."""
    from apro.losses.box import gp_soft_targets, lp_soft_targets
    from apro.ops import minimum_spanning_tree

    torch.manual_seed(0)
    model = _small_mask2former(shrink_paper_config)
    head = model.panoptic_head
    pred_size, in_size, gp = 16, 64, head.loss_gp_cfg["size"]
    inputs = torch.randn(2, 3, in_size, in_size)
    boxes = [torch.tensor([[4.0, 6.0, 40.0, 50.0], [30.0, 2.0, 60.0, 20.0]]), torch.tensor([[10.0, 10.0, 33.3, 58.7]])]
    gts = [InstanceData(labels=torch.tensor([1, 4])[:len(b)], bboxes=b,
                        masks=release_box_masks(b, in_size, in_size, (in_size, in_size))) for b in boxes]
    cls = torch.randn(2, head.num_queries, head.num_classes + 1)
    preds = torch.randn(2, head.num_queries, pred_size, pred_size, requires_grad=True)
    metas = [dict(batch_input_shape=(in_size, in_size), img_shape=(in_size, in_size))] * 2
    guides = head._guides(inputs, (pred_size, pred_size))
    losses = head._loss_by_feat_single(cls, preds, gts, metas, guides)

    # the release: matched predictions and their full-resolution box masks, then its loss lines
    _, _, mask_targets, mask_weights, _ = head.get_targets([cls[0], cls[1]], [preds[0], preds[1]], gts, metas)
    matched = preds[torch.stack(mask_weights) > 0]
    box = F.interpolate(torch.cat(mask_targets)[:, None].float(), (pred_size, pred_size), mode="bilinear",
                        align_corners=False)  # O:MH:292
    p = matched.sigmoid()[:, None]  # O:MH:293
    image_index = torch.tensor([0, 0, 1])
    norm_img = F.interpolate(inputs, (pred_size, pred_size), mode="bilinear", align_corners=False)  # O:MH:235
    lp_soft = lp_soft_targets(p, norm_img, box, image_index, 5, 0.15, head.loss_lp_cfg["iterations"])
    box_regions = box.sum()  # O:MH:300
    want_lp = ((p - lp_soft).abs() * box).sum() / box_regions  # O:MH:299-301
    img96 = F.interpolate(norm_img, (gp, gp), mode="bilinear", align_corners=False)  # O:MH:271, 304
    p96 = F.interpolate(p, (gp, gp), mode="bilinear", align_corners=False)  # O:MH:305
    soft = gp_soft_targets(p96, img96, image_index, tuple(head.loss_gp_cfg["zetas"]),
                           tree=minimum_spanning_tree(img96))  # O:MH:307-308
    soft = F.interpolate(soft, (pred_size, pred_size), mode="bilinear", align_corners=False)  # O:MH:309
    scaled = F.interpolate(p96, (pred_size, pred_size), mode="bilinear", align_corners=False)  # O:MH:310
    want_gp = ((soft - scaled).abs() * box).sum() / box_regions  # O:MH:312-313
    assert float(losses["loss_lp"]) == pytest.approx(float(want_lp), rel=1e-5)
    assert float(losses["loss_gp"]) == pytest.approx(float(want_gp), rel=1e-5)
    # a per-instance mean would differ: the boxes have different areas
    per_instance = (((p - lp_soft).abs() * box).sum((1, 2, 3)) / box.sum((1, 2, 3))).mean()
    assert abs(float(per_instance) - float(want_lp)) > 1e-4
    # GP's gradient reaches the prediction through the down- and up-sampling
    preds.grad = None
    losses["loss_gp"].backward()
    assert preds.grad is not None and preds.grad.abs().sum() > 0


def test_release_box_masks_stop_at_the_image_border():
    """GenerateBoxMask draws on the image (O:LOAD:654-658), which the Pad then extends with zeros: a box that
    reaches the image's right or bottom edge does not reach into the padding."""
    h, w, pad_h, pad_w = 60, 90, 64, 96
    boxes = [[50.0, 40.0, 90.0, 60.0], [0.0, 0.0, 89.6, 59.5], [10.2, 3.7, 40.5, 33.3]]
    t = torch.tensor(boxes)
    for stride in (1, 4, 8):
        got = release_box_masks(t, pad_h, pad_w, (pad_h // stride, pad_w // stride), image_shape=(h, w))
        for k, box in enumerate(boxes):
            mask = np.zeros((h, w), dtype=np.uint8)
            rx0, ry0, rx1, ry1 = np.asarray(box, dtype=np.float32).round().astype(np.int32)
            mask[ry0:ry1 + 1, rx0:rx1 + 1] = 1
            want = mmcv.imrescale(mmcv.impad(mask, shape=(pad_h, pad_w), pad_val=0), scale=1.0 / stride)
            assert np.array_equal(got[k].numpy().astype(np.uint8), want), (stride, box)


def test_generate_box_mask_transform_is_the_releases():
    from mmdet.structures.bbox import HorizontalBoxes

    from apro.data.transforms import GenerateBoxMask

    boxes = np.array([[2.5, 3.5, 9.5, 10.5], [0.0, 0.0, 20.0, 16.0], [11.2, 7.7, 12.4, 8.2]], np.float32)
    out = GenerateBoxMask()(dict(img=np.zeros((16, 20, 3), np.uint8), gt_bboxes=HorizontalBoxes(boxes)))
    for k, box in enumerate(boxes):
        assert np.array_equal(out["gt_masks"].masks[k], _release_box_mask(box, 16, 20, 1)), box


def test_keep_shape_pad_keeps_the_image_size():
    from apro.data.transforms import GenerateBoxMask, KeepShapePad

    res = GenerateBoxMask()(dict(img=np.zeros((30, 50, 3), np.uint8), gt_bboxes=np.array([[1.0, 2.0, 49.0, 29.0]])))
    res["img_shape"] = (30, 50)
    res = KeepShapePad(size_divisor=32, pad_val=dict(img=128, masks=0))(res)
    assert res["img_shape"] == (30, 50) and tuple(res["pad_shape"][:2]) == (32, 64)
    assert res["img"][31, 63, 0] == 128 and res["gt_masks"].masks.shape == (1, 32, 64)
    assert res["gt_masks"].masks[0, 30:].sum() == 0 and res["gt_masks"].masks[0, :, 50:].sum() == 0


def test_solov2_cells_claimed_twice_go_to_the_last_instance():
    """The release keeps one positive per grid cell: the last instance that claims it (O:SH:435-443)."""
    head = _small_solov2_head()
    gt = InstanceData(labels=torch.tensor([0, 2]),
                      bboxes=torch.tensor([[40.0, 40.0, 64.0, 64.0], [42.0, 41.0, 62.0, 63.0]]))  # same cells
    targets, labels, flags, pos = head._get_targets_single(gt, featmap_sizes=(32, 48))
    assert pos[0] == sorted(set(pos[0])) and len(pos[0]) == int(flags[0].sum()) == len(targets[0])
    assert all(labels[0].flatten()[i] == 2 for i in pos[0])
    want = _release_box_mask([42.0, 41.0, 62.0, 63.0], 128, 192, 4)
    assert all(np.array_equal(t.numpy(), want) for t in targets[0])


def test_solov2_cell_bounds_use_the_releases_arithmetic():
    """(c - h) / H // (1 / grid) in float32, as the release (O:SH:425): at 0.35 of 256 px on a 40-cell grid
    the top cell is 13, where (c - h) / H * grid rounds to 14."""
    head = _small_solov2_head(num_grids=[40, 6, 4], scale_ranges=((1, 64), (64, 128), (128, 256)))
    # centre 93.5 px, half height 0.5 * 39 * 0.2 = 3.9: (93.5 - 3.9) / 256 = 0.35
    gt = InstanceData(labels=torch.tensor([1]), bboxes=torch.tensor([[131.0, 74.0, 170.0, 113.0]]))
    _, labels, _, pos = head._get_targets_single(gt, featmap_sizes=(64, 80))
    rows = sorted({i // 40 for i in pos[0]})
    assert rows == [13, 14, 15] and int((93.5 - 3.9) / 256 * 40 // 1) == 14  # the other rounding: [14, 15]


def test_solov2_targets_from_pipeline_masks_equal_the_drawn_ones():
    from mmdet.structures.mask import BitmapMasks

    head = _small_solov2_head()
    boxes = torch.tensor([[10.0, 12.0, 30.0, 30.0], [40.0, 20.0, 90.0, 70.0], [100.4, 60.0, 150.0, 96.0]])
    drawn = head._get_targets_single(InstanceData(labels=torch.tensor([0, 1, 2]), bboxes=boxes),
                                     featmap_sizes=(32, 48), img_shape=(96, 150))
    masks = np.zeros((3, 96, 150), np.uint8)  # GenerateBoxMask on the 96 x 150 image; the preprocessor pads
    for k, (x0, y0, x1, y1) in enumerate(boxes.round().int().tolist()):
        masks[k, y0:y1 + 1, x0:x1 + 1] = 1
    gt = InstanceData(labels=torch.tensor([0, 1, 2]), bboxes=boxes,
                      masks=BitmapMasks(masks, 96, 150).pad((128, 192), pad_val=0))
    given = head._get_targets_single(gt, featmap_sizes=(32, 48), img_shape=(96, 150))
    for a, b in zip(drawn, given):
        for x, y in zip(a, b):
            assert (x == y) if isinstance(x, list) else torch.equal(x, y)
    ring = masks.copy()
    ring[1, 30:40, 50:60] = 0  # not a box: instance masks must never reach a box head
    gt.masks = BitmapMasks(ring, 96, 150)
    with pytest.raises(ValueError, match="expected box masks"):
        head._get_targets_single(gt, featmap_sizes=(32, 48), img_shape=(96, 150))


def test_mask2former_test_pipeline_keeps_the_resized_shape(tmp_path):
    """Predictions are cropped to img_shape before they are rescaled: the 128-padding stays out of it."""
    import cv2
    from mmengine.dataset import Compose

    import apro.data.transforms  # noqa: F401

    path = tmp_path / "photo.png"
    cv2.imwrite(str(path), np.full((375, 500, 3), 50, np.uint8))
    out = Compose(_paper("mask2former_r50_voc.py").test_pipeline)(dict(img_path=str(path), img_id=0))
    meta = out["data_samples"].metainfo
    assert meta["img_shape"] == (800, 1067) and tuple(out["inputs"].shape[-2:]) == (800, 1088)
    assert int(out["inputs"][0, 0, -1]) == 128  # padded before normalising


@pytest.mark.parametrize("terms", [{}, dict(loss_tree=dict(loss_weight=2.0))])
def test_solov2_mask_terms_compile_into_one_graph(terms):
    """The head's APro terms (projection, GP, LP; the tree filter) through the ops: fullgraph=True fails
    on any graph break, and the compiled terms equal the eager ones (benchmarks/compile_breaks.py lists
    the breaks of the whole loss, all in target assignment)."""
    head = _small_solov2_head(**terms)
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 1, 32, 48, generator=gen, requires_grad=True)
    box = torch.zeros(3, 1, 32, 48)
    box[0, :, 4:20, 5:30] = box[1, :, 10:30, 2:40] = box[2, :, 0:12, 20:48] = 1
    index, inputs = torch.tensor([0, 1, 1]), torch.randn(2, 3, 128, 192, generator=gen)
    torch._dynamo.reset()
    compiled = torch.compile(head._mask_terms, fullgraph=True, backend="aot_eager")
    got, want = compiled(logits, box, index, inputs), head._mask_terms(logits, box, index, inputs)
    assert set(got) == set(want) == {"proj", "gp", "lp"} | ({"tree"} if terms else set())
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=1e-6, atol=1e-7)
    sum(got.values()).sum().backward()
    assert logits.grad is not None and bool(logits.grad.abs().sum() > 0)
