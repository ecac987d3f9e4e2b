"""Dense / point / scribble labels from instance masks (apro.data.sparse_labels).

References are written from the protocol: dense labels are built here by
painting masks in order; sparse labels must lie inside their regions, carry
their region's class, be connected strokes, and be byte-identical for one seed.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from apro import cli
from apro.data import sparse_labels as L


def _disk(h, w, cy, cx, r):
    yy, xx = np.mgrid[:h, :w]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def _rect(h, w, y0, y1, x0, x1):
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


def _scene():
    h, w = 48, 64
    return (h, w), [(3, _rect(h, w, 5, 30, 5, 40)), (1, _disk(h, w, 20, 30, 8)), (6, _rect(h, w, 35, 45, 45, 60))]


def test_semantic_label_paints_masks_in_order():
    shape, inst = _scene()
    lab = L.semantic_label(shape, inst)
    ref = np.zeros(shape, np.uint8)
    ref[inst[0][1]] = 3
    ref[inst[1][1]] = 1  # later instance on top
    ref[inst[2][1]] = 6
    np.testing.assert_array_equal(lab, ref)
    with pytest.raises(L.SparseLabelError, match="category id 255"):
        L.semantic_label(shape, [(255, inst[0][1])])


@pytest.mark.parametrize("seed", range(6))
def test_points_lie_inside_their_regions_one_per_instance(seed):
    shape, inst = _scene()
    cfg = L.SparseLabelConfig(bg_points=4, margin=2)
    full = L.semantic_label(shape, inst)
    pts = L.point_label(full, inst, np.random.default_rng(seed), cfg)
    labelled = pts != L.IGNORE_INDEX
    # every labelled pixel carries the dense class of that pixel
    np.testing.assert_array_equal(pts[labelled], full[labelled])
    # one single-pixel point per visible instance (all have a deep interior here), and 4 background points
    for cat in (1, 3, 6):
        assert int((pts == cat).sum()) == 1
        (y,), (x,) = np.nonzero(pts == cat)
        region = full == cat
        # at least `margin` pixels from the region's boundary (chessboard distance, image border outside)
        assert region[max(0, y - 2):y + 3, max(0, x - 2):x + 3].all() and 2 <= y < shape[0] - 2 and 2 <= x < shape[1] - 2
    assert 1 <= int((pts == 0).sum()) <= 4  # draws may coincide


def test_point_radius_and_thin_regions_fall_back_to_the_deepest_pixel():
    h, w = 20, 20
    line = _rect(h, w, 10, 11, 2, 18)  # one pixel thick: no interior at margin 2
    full = L.semantic_label((h, w), [(2, line)])
    pts = L.point_label(full, [(2, line)], np.random.default_rng(0), L.SparseLabelConfig(bg_points=0, margin=2,
                                                                                          point_radius=1))
    assert ((pts == 2) <= line).all() and (pts == 2).any()
    assert ((pts != L.IGNORE_INDEX) <= line).all()


@pytest.mark.parametrize("seed", range(6))
def test_scribbles_are_thin_connected_strokes_inside_their_regions(seed):
    shape, inst = _scene()
    cfg = L.SparseLabelConfig(bg_scribbles=2, margin=2)
    full = L.semantic_label(shape, inst)
    scr = L.scribble_label(full, inst, np.random.default_rng(seed), cfg)
    labelled = scr != L.IGNORE_INDEX
    np.testing.assert_array_equal(scr[labelled], full[labelled])
    for cat in (1, 3, 6):
        stroke = scr == cat
        assert stroke.sum() >= 3, "an instance with a deep interior gets a stroke longer than a point"
        # one 8-connected piece, inside the region shrunk by the margin
        _, n = ndimage.label(stroke, structure=np.ones((3, 3)))
        assert n == 1
        inner = ndimage.binary_erosion(full == cat, np.ones((3, 3)), iterations=2, border_value=0)
        assert (stroke <= inner).all()
        # thin: far fewer pixels than the region
        assert stroke.sum() < 0.5 * (full == cat).sum()
    assert (scr == 0).any()


def test_skeleton_is_thin_and_keeps_lines():
    # a one-pixel line is its own skeleton; a 5-pixel-thick bar thins to a line along its middle
    line = _rect(20, 30, 10, 11, 3, 27)
    np.testing.assert_array_equal(L._skeleton(line), line)
    bar = L._skeleton(_rect(20, 30, 8, 13, 3, 27))
    assert bar.any() and (bar.sum(axis=0) <= 1).all() and set(np.nonzero(bar)[0]) <= {9, 10, 11}
    assert bar[:, 8:22].sum(axis=0).min() == 1  # unbroken away from the ends


@pytest.mark.parametrize("seed", range(4))
def test_a_ring_gets_a_curved_stroke_along_it(seed):
    # protocol 2: an instance's scribble follows its skeleton, so a ring gets an arc, far longer
    # than any straight chord that stays inside the ring shrunk by the margin
    h = w = 48
    ring = _disk(h, w, 24, 24, 16) & ~_disk(h, w, 24, 24, 9)
    full = L.semantic_label((h, w), [(1, ring)])
    cfg = L.SparseLabelConfig(bg_scribbles=0, margin=1, max_length=1.0)
    stroke = L.scribble_label(full, [(1, ring)], np.random.default_rng(seed), cfg) == 1
    inner = ndimage.binary_erosion(ring, np.ones((3, 3)), iterations=1, border_value=0)
    assert (stroke <= inner).all()
    _, n = ndimage.label(stroke, structure=np.ones((3, 3)))
    assert n == 1
    assert stroke.sum() >= 30  # the longest chord inside the shrunk ring (radii 10..15): 2 * sqrt(15^2 - 10^2) = 22.4
    # an arc: it spans both axes
    ys, xs = np.nonzero(stroke)
    assert np.ptp(ys) >= 8 and np.ptp(xs) >= 8


def test_same_seed_same_labels_other_seed_other_points():
    shape, inst = _scene()
    a = L.sparse_labels(shape, inst, np.random.default_rng(7))
    b = L.sparse_labels(shape, inst, np.random.default_rng(7))
    c = L.sparse_labels(shape, inst, np.random.default_rng(8))
    for k in L.KINDS:
        np.testing.assert_array_equal(a[k], b[k])
    assert not np.array_equal(a["point"], c["point"])


def _coco(tmp_path, shape, inst, n_images=3):
    from pycocotools import mask as mask_util

    root = tmp_path / "data"
    (root / "annotations").mkdir(parents=True)
    (root / "train").mkdir()
    (root / "val").mkdir()
    for split in ("train", "val"):
        images, anns = [], []
        for i in range(n_images):
            Image.fromarray(np.zeros(shape + (3,), np.uint8)).save(root / split / f"{i:06d}.png")
            images.append({"id": i + 1, "file_name": f"{i:06d}.png", "height": shape[0], "width": shape[1]})
            for cat, m in inst[: i + 1]:
                rle = mask_util.encode(np.asfortranarray(m.astype(np.uint8)))
                rle["counts"] = rle["counts"].decode("ascii")
                anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": cat, "segmentation": rle,
                             "iscrowd": 0})
        (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(
            {"images": images, "annotations": anns, "categories": [{"id": c, "name": str(c)} for c in range(1, 7)]}))
    return root


def test_make_sparse_labels_writes_pngs_deterministically(tmp_path):
    shape, inst = _scene()
    root = _coco(tmp_path, shape, inst)
    s = L.make_sparse_labels(root, tmp_path / "out1", seed=3)
    L.make_sparse_labels(root, tmp_path / "out2", seed=3)
    for split in ("train", "val"):
        for kind in L.KINDS:
            for i in range(3):
                p1 = tmp_path / "out1" / split / kind / f"{i:06d}.png"
                assert p1.read_bytes() == (tmp_path / "out2" / split / kind / f"{i:06d}.png").read_bytes()
        # image 2 holds all three instances: its dense label is the painted reference
        full = np.array(Image.open(tmp_path / "out1" / split / "full" / "000002.png"))
        np.testing.assert_array_equal(full, L.semantic_label(shape, inst))
        assert Image.open(tmp_path / "out1" / split / "point" / "000000.png").mode == "L"
    meta = json.loads((tmp_path / "out1" / "labels.json").read_text())
    assert meta["seed"] == 3 and meta["ignore_index"] == 255 and meta["splits"]["train"]["images"] == 3
    assert s["splits"]["val"]["labelled_fraction"]["full"] == 1.0
    assert not list(tmp_path.glob(".out1*")), "no partial folder is left behind"


def test_make_sparse_labels_bad_input_names_the_file(tmp_path):
    with pytest.raises(L.SparseLabelError, match="instances_train.json: not found"):
        L.make_sparse_labels(tmp_path, tmp_path / "out")
    shape, inst = _scene()
    root = _coco(tmp_path, shape, inst, n_images=1)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "x").write_text("")
    with pytest.raises(L.SparseLabelError, match="not empty"):
        L.make_sparse_labels(root, tmp_path / "out")
    with pytest.raises(L.SparseLabelError, match="margin"):
        L.SparseLabelConfig(margin=-1)
    assert cli.main(["make-sparse-labels", "--data-root", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")]) == 2
