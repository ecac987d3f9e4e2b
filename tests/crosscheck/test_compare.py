"""The comparison of the side-by-side check (apro.crosscheck.compare) on hand-made results: every figure it
reports, and each way it must fail, naming the term, parameter, image or photo."""
import math

import numpy as np
import pytest
import torch

from apro.crosscheck import compare


def test_losses_equal_and_named_differences():
    release = {"loss_cate": 0.5, "loss_boxpro": 2.0, "loss_global": 0.1, "loss_local": 0.2}
    ours = {"loss_cls": 0.5, "loss_proj": 2.0, "loss_gp": 0.1, "loss_lp": 0.2}
    same = compare.compare_losses(release, ours, "SOLOv2")
    assert same["problems"] == [] and same["max_rel_diff"] == 0.0 and len(same["terms"]) == 4

    off = compare.compare_losses(release, {**ours, "loss_gp": 0.1 * (1 + 2e-4)}, "SOLOv2")
    assert off["worst_term"] == "loss_global" and off["max_rel_diff"] == pytest.approx(2e-4, rel=1e-3)
    assert len(off["problems"]) == 1 and "loss loss_global (loss_gp)" in off["problems"][0]
    within = compare.compare_losses(release, {**ours, "loss_gp": 0.1 * (1 + 5e-5)}, "SOLOv2")
    assert within["problems"] == []  # the tolerance is 1e-4

    missing = compare.compare_losses({**release, "loss_extra": 1.0}, {**ours, "loss_mine": 1.0}, "SOLOv2")
    assert any("loss loss_extra" in p for p in missing["problems"])
    assert any("loss loss_mine: only this suite" in p for p in missing["problems"])


def test_mask2former_layer_prefixes_map():
    assert compare.our_loss_name("d3.loss_project", "Mask2Former") == "d3.loss_proj"
    assert compare.our_loss_name("loss_global", "Mask2Former") == "loss_gp"
    assert compare.our_loss_name("loss_dice", "Mask2Former") is None


def test_gradients_cosine_norm_and_names():
    g = {"a.w": torch.tensor([1.0, 2.0, 3.0]), "b.w": torch.zeros(2), "c.w": torch.tensor([[1.0, 0.0], [0.0, 1.0]])}
    ident = compare.compare_grads(g, {k: v.clone() for k, v in g.items()}, lambda k: k)
    assert ident["problems"] == [] and ident["min_cos"] == pytest.approx(1.0) and ident["max_rel_norm_diff"] == 0.0

    renamed = compare.compare_grads({"x.a.w": g["a.w"]}, {"a.w": g["a.w"]}, lambda k: k[2:])
    assert renamed["problems"] == [] and renamed["parameters"] == 1

    transposed = {**g, "c.w": torch.tensor([[1.0, 1.0], [0.0, 0.0]])}  # another direction, same norm
    bad = compare.compare_grads(g, transposed, lambda k: k)
    assert bad["outside"] == 1 and "gradient of c.w" in bad["problems"][0]
    assert bad["min_cos"] == pytest.approx(0.5)

    scaled = compare.compare_grads(g, {**g, "a.w": g["a.w"] * 1.01}, lambda k: k)
    assert scaled["max_rel_norm_diff"] == pytest.approx(0.01 / 1.01) and "gradient of a.w" in scaled["problems"][0]

    one_sided = compare.compare_grads(g, {k: v for k, v in g.items() if k != "b.w"}, lambda k: k)
    assert any("gradient of b.w" in p and "has none" in p for p in one_sided["problems"])


def _packed(masks):
    masks = np.asarray(masks, bool)
    return torch.from_numpy(np.packbits(masks, axis=-1)), list(masks.shape[-2:])


def _dets(labels, scores, masks):
    packed, shape = _packed(masks)
    return {"labels": torch.tensor(labels), "scores": torch.tensor(scores, dtype=torch.float64), "masks": packed,
            "shape": shape}


def test_detections_matched_by_label_and_iou():
    m = np.zeros((3, 10, 13), bool)
    m[0, 1:4, 1:5] = True
    m[1, 5:9, 2:12] = True
    m[2, 0:2, 10:13] = True
    release = _dets([1, 2, 1], [0.9, 0.8, 0.3], m)
    # this suite's order differs; one mask lost a pixel; scores equal
    m2 = m[[2, 0, 1]].copy()
    m2[2, 5, 2] = False
    ours = _dets([1, 1, 2], [0.3, 0.9, 0.8], m2)
    r = compare.compare_predictions([release], [ours], ["img"])
    row = r["images"][0]
    assert row["matched"] == 3 and row["min_iou"] == pytest.approx(39 / 40)
    assert row["within"] == 2 and r["within"] == 2
    assert "1 of 3 matched detections outside" in r["problems"][0]

    fewer = compare.compare_predictions([release], [_dets([1], [0.9], m[:1])], ["img"])
    assert "release 3 detections" in fewer["problems"][0] and "this suite 1" in fewer["problems"][0]

    relabelled = compare.compare_predictions([release], [_dets([1, 0, 1], [0.9, 0.8, 0.3], m)], ["img"])
    assert relabelled["images"][0]["matched"] == 2  # a label never matches another label


def test_empty_masks_counted():
    m = np.zeros((2, 4, 9), bool)
    m[0, :2, :3] = True
    r = compare.compare_predictions([_dets([0, 1], [0.5, 0.4], m)], [_dets([0], [0.5], m[:1])], ["x"])
    assert r["images"][0]["release_empty"] == 1 and "(1 empty masks)" in r["problems"][0]


def _pipe(img, boxes, labels, masks, flip=True):
    packed, _ = _packed(masks)
    meta = {"img_shape": list(img.shape[-2:]), "pad_shape": list(img.shape[-2:]), "scale_factor": [1.5, 1.5],
            "flip": flip}
    return {"train": {"img": img, "boxes": boxes, "labels": labels, "box_masks": packed,
                      "box_masks_shape": list(np.asarray(masks).shape), "meta": meta},
            "test": {"img": img, "meta": dict(meta)}}


def test_pipelines_inputs_boxes_masks_and_metas():
    img = torch.rand(3, 8, 12)
    boxes = torch.tensor([[1.0, 1.0, 5.0, 6.0]])
    masks = np.zeros((1, 8, 12), bool)
    masks[0, 1:7, 1:6] = True
    base = {"voc": _pipe(img, boxes, torch.tensor([3]), masks)}
    same = compare.compare_pipelines(base, {"voc": _pipe(img.clone(), boxes.clone(), torch.tensor([3]), masks)})
    assert same["problems"] == [] and same["max_input_abs"] == 0.0 and same["box_mask_pixels"] == 0

    moved = masks.copy()
    moved[0, :, 6] = True  # one more column
    other = {"voc": _pipe(img + 0.01, boxes + 0.5, torch.tensor([4]), moved, flip=False)}
    r = compare.compare_pipelines(base, other)
    text = "\n".join(r["problems"])
    for expected in ("train pipeline on voc: inputs differ by up to 0.01", "boxes differ by up to 0.5 px",
                     "labels [3] vs [4]", "box masks differ in 8 pixels (1 of 1 instances)", "flip True vs False"):
        assert expected in text, expected
    assert r["box_mask_pixels"] == 8


def test_verdict_and_problem_list():
    parts = {"losses": {"problems": []}, "grads": {"problems": ["gradient of x"]}}
    assert compare.verdict(parts) == "differs"
    assert compare.problems_of(parts) == ["grads: gradient of x"]
    assert compare.verdict({"losses": {"problems": []}}) == "parity"
    assert math.isnan(compare.compare_grads({}, {}, lambda k: k)["min_cos"])


def test_no_detections_at_all_make_the_check_incomplete():
    def empty():
        return _dets([], [], np.zeros((0, 4, 9), bool))

    m = np.zeros((1, 4, 9), bool)
    m[0, 1:3, 2:5] = True
    one = compare.compare_predictions([empty(), _dets([0], [0.5], m)], [empty(), _dets([0], [0.5], m)], ["a", "b"])
    assert one["empty_images"] == ["a"] and one["compared"] and compare.verdict({"predictions": one}) == "parity"
    none = compare.compare_predictions([empty()], [empty()], ["a"])
    assert none["problems"] == [] and not none["compared"]
    assert compare.verdict({"predictions": none}) == "incomplete"


def test_a_gradient_passes_within_its_float32_resolution():
    """A bias gradient summed over every pixel cancels: this suite's own float32 and float64 gradients then
    differ by more than 1e-3, and the release's may differ as much, but no more than twice that."""
    g = {"bias": torch.tensor([1.0, 2.0, 3.0])}
    off = {"bias": g["bias"] * 1.004}  # 4e-3 / 1.004 apart
    no_floor = compare.compare_grads(g, off, lambda k: k)
    assert no_floor["outside"] == 1
    resolved = compare.compare_grads(g, off, lambda k: k, {"bias": g["bias"] * 1.007})  # ours: 3e-3 from float64
    assert resolved["outside"] == 0 and resolved["within_by_noise"] == 1 and resolved["problems"] == []
    assert resolved["worst"][0]["noise_rel_norm_diff"] == pytest.approx(0.003 / 1.007, rel=1e-4)  # float32 products
    sharp = compare.compare_grads(g, off, lambda k: k, {"bias": off["bias"] * 1.0001})  # ours resolved to 1e-4
    assert sharp["outside"] == 1 and "float32 resolution 1.00e-04" in sharp["problems"][0]
