"""Semantic, point and scribble labels from instance masks (``apro make-sparse-labels``).

    apro make-sparse-labels data/synthetic_seg --out data/semantic/synthetic_seg [--seed 0]

For every image of a COCO-format dataset (``annotations/instances_<split>.json``
and ``<split>/<file_name>``) it writes three single-channel PNGs, one per kind,
under ``OUT/<split>/<kind>/<stem>.png``:

* ``full``: the dense semantic label: the category id of the instance covering
  the pixel (instances later in the json win where masks overlap), 0 for
  background. Every pixel is labelled.
* ``point``: the same class ids on a few pixels, 255 (``IGNORE_INDEX``)
  elsewhere. Protocol: one point per instance, drawn uniformly among the
  instance's pixels at least ``margin`` pixels from its boundary (the deepest
  pixel when none is), plus ``bg_points`` background points drawn the same way
  from the background. A point is a single pixel, or a (2r+1)^2 square with
  ``point_radius`` r > 0, clipped to its region.
* ``scribble``: one stroke per instance plus ``bg_scribbles`` background
  strokes, 255 elsewhere. An instance's stroke follows its shape, as an
  annotator's scribble does: it is a connected piece of the skeleton
  (Zhang-Suen thinning) of the instance's region shrunk by ``margin`` pixels
  (of the region itself where nothing is left), grown along the skeleton
  from a skeleton pixel drawn uniformly, up to ``max_length`` / 2 times the
  image side (in 8-connected steps) each way; where the straight line through
  that pixel along the region's principal axis, followed both ways inside the
  shrunk region, is longer (compact shapes: a disk's skeleton is a dot), the
  stroke is that line. A background stroke is a
  straight line through a background point drawn as above, in a random
  direction, followed both ways while it stays inside the shrunk background,
  at most ``max_length`` times the image side in total. Strokes are one
  pixel wide (``scribble_width`` widens them, still clipped to the region),
  connected, and never cross a region boundary. (Protocol 1 drew instance
  strokes as straight lines along the principal axis: thin or curved shapes,
  rings above all, got a few pixels and the labels were 75% background.)

Every labelled pixel of ``point`` and ``scribble`` carries the class of the
``full`` label at that pixel (tests check this). Determinism: image ``i`` of a
split uses its own generator seeded from ``(seed, split, i)``; PNGs are
written by Pillow with fixed settings, so the same input and seed give the
same bytes. The output folder appears atomically (written to a hidden sibling
folder, renamed at the end), with ``labels.json`` describing the protocol and
the counts.
"""
from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from apro.errors import InputError
from apro.io import atomic_folder, write_json_atomic, write_png

IGNORE_INDEX = 255
KINDS = ("full", "point", "scribble")
SPLITS = ("train", "val")
_SPLIT_CODES = {"train": 0, "val": 1}
PROTOCOL_VERSION = 2

__all__ = ["IGNORE_INDEX", "KINDS", "SparseLabelConfig", "semantic_label", "point_label", "scribble_label",
           "sparse_labels", "make_sparse_labels"]


class SparseLabelError(InputError):
    """Bad input: names the file or argument and what was expected."""


class SparseLabelConfig:
    """Parameters of the point / scribble protocol (see the module docstring)."""

    def __init__(self, *, bg_points: int = 3, bg_scribbles: int = 2, margin: int = 2, point_radius: int = 0,
                 scribble_width: int = 1, max_length: float = 0.5):
        for name, value, lo in (("bg_points", bg_points, 0), ("bg_scribbles", bg_scribbles, 0),
                                ("margin", margin, 0), ("point_radius", point_radius, 0),
                                ("scribble_width", scribble_width, 1)):
            if not isinstance(value, (int, np.integer)) or value < lo:
                raise SparseLabelError(f"{name}: expected an integer >= {lo}, got {value!r}")
        if not (isinstance(max_length, (int, float)) and 0 < max_length <= 4):
            raise SparseLabelError(f"max_length: expected a fraction of the image side in (0, 4], got {max_length!r}")
        self.bg_points, self.bg_scribbles, self.margin = int(bg_points), int(bg_scribbles), int(margin)
        self.point_radius, self.scribble_width, self.max_length = int(point_radius), int(scribble_width), \
            float(max_length)

    def as_dict(self) -> Dict[str, Any]:
        return dict(bg_points=self.bg_points, bg_scribbles=self.bg_scribbles, margin=self.margin,
                    point_radius=self.point_radius, scribble_width=self.scribble_width, max_length=self.max_length)


def _rng(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), _SPLIT_CODES[split], 7, index])))


# ---------------------------------------------------------------- per image

def semantic_label(shape: Tuple[int, int], instances: Sequence[Tuple[int, np.ndarray]]) -> np.ndarray:
    """``(H, W)`` uint8 class ids: 0 background, ``cat_id`` inside each mask (later instances on top)."""
    label = np.zeros(shape, np.uint8)
    for cat_id, mask in instances:
        if not 0 < int(cat_id) < IGNORE_INDEX:
            raise SparseLabelError(f"category id {cat_id}: expected 1..{IGNORE_INDEX - 1} (0 is background)")
        label[np.asarray(mask, bool)] = int(cat_id)
    return label


def _interior(region: np.ndarray, margin: int) -> np.ndarray:
    """Pixels of ``region`` at least ``margin`` pixels (chessboard) from any pixel outside it."""
    from scipy import ndimage

    if margin == 0:
        return region.copy()
    # the image border counts as outside, so points stay off the frame as well
    return ndimage.binary_erosion(region, structure=np.ones((3, 3), bool), iterations=margin, border_value=0)


def _pick(rng: np.random.Generator, region: np.ndarray, margin: int) -> Optional[Tuple[int, int]]:
    """A pixel drawn uniformly from the region's interior; its deepest pixel if the interior is empty."""
    from scipy import ndimage

    inner = _interior(region, margin)
    ys, xs = np.nonzero(inner)
    if len(ys):
        k = int(rng.integers(len(ys)))
        return int(ys[k]), int(xs[k])
    if not region.any():
        return None
    depth = ndimage.distance_transform_cdt(np.pad(region, 1), metric="chessboard")[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(depth)), depth.shape)  # first deepest pixel: deterministic
    return int(y), int(x)


def _regions(label: np.ndarray, instances: Sequence[Tuple[int, np.ndarray]]) -> List[Tuple[int, np.ndarray]]:
    """The visible part of every instance in ``label`` (class, mask), skipping fully hidden ones."""
    out = []
    for i, (cat_id, mask) in enumerate(instances):
        visible = np.asarray(mask, bool).copy()
        for _, later in instances[i + 1:]:
            visible &= ~np.asarray(later, bool)
        if visible.any():
            out.append((int(cat_id), visible))
    return out


def _stamp(out: np.ndarray, region: np.ndarray, y: int, x: int, radius: int, value: int) -> None:
    y0, y1 = max(0, y - radius), min(out.shape[0], y + radius + 1)
    x0, x1 = max(0, x - radius), min(out.shape[1], x + radius + 1)
    window = region[y0:y1, x0:x1]
    out[y0:y1, x0:x1][window] = value


def point_label(label: np.ndarray, instances: Sequence[Tuple[int, np.ndarray]], rng: np.random.Generator,
                cfg: SparseLabelConfig) -> np.ndarray:
    out = np.full(label.shape, IGNORE_INDEX, np.uint8)
    for cat_id, region in _regions(label, instances):
        p = _pick(rng, region, cfg.margin)
        if p is not None:
            _stamp(out, region, *p, cfg.point_radius, cat_id)
    background = label == 0
    for _ in range(cfg.bg_points if background.any() else 0):
        p = _pick(rng, background, cfg.margin)
        _stamp(out, background, *p, cfg.point_radius, 0)
    return out


def _skeleton(region: np.ndarray) -> np.ndarray:
    """Zhang-Suen thinning of a boolean mask: a one-pixel-wide, 8-connected medial line of each part."""
    img = np.pad(region, 1).astype(np.uint8)
    while True:
        changed = False
        for step in (0, 1):
            c = img[1:-1, 1:-1]
            # neighbours p2..p9, clockwise from north
            n = [img[:-2, 1:-1], img[:-2, 2:], img[1:-1, 2:], img[2:, 2:],
                 img[2:, 1:-1], img[2:, :-2], img[1:-1, :-2], img[:-2, :-2]]
            count = sum(n)
            transitions = sum(((n[i] == 0) & (n[(i + 1) % 8] == 1)) for i in range(8))
            p2, p4, p6, p8 = n[0], n[2], n[4], n[6]
            if step == 0:
                side = (p2 * p4 * p6 == 0) & (p4 * p6 * p8 == 0)
            else:
                side = (p2 * p4 * p8 == 0) & (p2 * p6 * p8 == 0)
            drop = (c == 1) & (count >= 2) & (count <= 6) & (transitions == 1) & side
            if drop.any():
                c[drop] = 0
                changed = True
        if not changed:
            return img[1:-1, 1:-1].astype(bool)


def _principal_angle(region: np.ndarray) -> float:
    ys, xs = np.nonzero(region)
    if len(ys) < 2:
        return 0.0
    cov = np.cov(np.stack([xs, ys]).astype(np.float64))
    evals, evecs = np.linalg.eigh(cov)
    vx, vy = evecs[:, int(np.argmax(evals))]
    return math.atan2(vy, vx)


def _instance_stroke(region: np.ndarray, rng: np.random.Generator, margin: int, max_len: float) -> np.ndarray:
    """A connected piece of the skeleton of ``region`` (shrunk by ``margin`` where that leaves anything),
    or the straight line along the region's principal axis through the same start pixel where that is longer
    (a compact shape's skeleton is little more than a dot)."""
    from scipy import ndimage

    inner = _interior(region, margin)
    area = inner if inner.any() else region
    skel = _skeleton(area)
    ys, xs = np.nonzero(skel)
    stroke = np.zeros_like(region)
    if not len(ys):
        return stroke
    k = int(rng.integers(len(ys)))
    stroke[ys[k], xs[k]] = True
    for _ in range(int(max_len / 2)):  # grow along the skeleton, one 8-connected step at a time
        grown = ndimage.binary_dilation(stroke, structure=np.ones((3, 3), bool)) & skel
        if (grown == stroke).all():
            break
        stroke = grown
    line = _stroke(area, int(ys[k]), int(xs[k]), _principal_angle(region), max_len)
    if len(line) > int(stroke.sum()):
        stroke[:] = False
        stroke[tuple(np.array(line).T)] = True
    return stroke


def _stroke(inner: np.ndarray, y: int, x: int, angle: float, max_len: float) -> List[Tuple[int, int]]:
    """Pixels of a line through (y, x) at ``angle``, followed both ways while inside ``inner``."""
    dx, dy = math.cos(angle), math.sin(angle)
    pixels = [(y, x)]
    half = max_len / 2.0
    for sign in (1.0, -1.0):
        t = 0.5
        while t <= half:
            py, px = int(round(y + sign * t * dy)), int(round(x + sign * t * dx))
            if not (0 <= py < inner.shape[0] and 0 <= px < inner.shape[1]) or not inner[py, px]:
                break
            if pixels[-1] != (py, px):
                pixels.append((py, px))
            t += 0.5
    return pixels


def _draw(out: np.ndarray, region: np.ndarray, pixels, width: int, value: int) -> None:
    for y, x in pixels:
        _stamp(out, region, int(y), int(x), width // 2, value)


def scribble_label(label: np.ndarray, instances: Sequence[Tuple[int, np.ndarray]], rng: np.random.Generator,
                   cfg: SparseLabelConfig) -> np.ndarray:
    out = np.full(label.shape, IGNORE_INDEX, np.uint8)
    max_len = cfg.max_length * max(label.shape)
    for cat_id, region in _regions(label, instances):
        stroke = _instance_stroke(region, rng, cfg.margin, max_len)
        _draw(out, region, zip(*np.nonzero(stroke)), cfg.scribble_width, cat_id)
    background = label == 0
    for _ in range(cfg.bg_scribbles if background.any() else 0):
        p = _pick(rng, background, cfg.margin)
        inner = _interior(background, cfg.margin)
        inner[p] = True  # the fallback (deepest) pixel may lie outside a too-thin interior
        angle = float(rng.uniform(0.0, math.pi))
        _draw(out, background, _stroke(inner, p[0], p[1], angle, max_len), cfg.scribble_width, 0)
    return out


def sparse_labels(shape: Tuple[int, int], instances: Sequence[Tuple[int, np.ndarray]], rng: np.random.Generator,
                  cfg: Optional[SparseLabelConfig] = None) -> Dict[str, np.ndarray]:
    """``{"full", "point", "scribble"}`` label maps of one image (points drawn before scribbles)."""
    cfg = cfg or SparseLabelConfig()
    full = semantic_label(shape, instances)
    return {"full": full, "point": point_label(full, instances, rng, cfg),
            "scribble": scribble_label(full, instances, rng, cfg)}


# ---------------------------------------------------------------- datasets

def _load_split(data_root: Path, split: str) -> Tuple[dict, Dict[int, list]]:
    ann = data_root / "annotations" / f"instances_{split}.json"
    if not ann.is_file():
        raise SparseLabelError(f"{ann}: not found (expected a COCO-format dataset folder with "
                               f"annotations/instances_{split}.json, e.g. from apro make-data)")
    try:
        data = json.loads(ann.read_text(encoding="utf-8"))
        images = data["images"]
        by_image: Dict[int, list] = {int(im["id"]): [] for im in images}
        for a in data.get("annotations", []):
            by_image[int(a["image_id"])].append(a)
    except (ValueError, KeyError, TypeError) as exc:
        raise SparseLabelError(f"{ann}: not a COCO instances file with 'images' and 'annotations' "
                               f"whose image_id refer to listed images ({type(exc).__name__}: {exc})") from None
    return data, by_image


def _decode(ann: dict, h: int, w: int, where: str) -> np.ndarray:
    from pycocotools import mask as mask_util

    seg = ann.get("segmentation")
    try:
        if isinstance(seg, list):  # polygons
            rle = mask_util.merge(mask_util.frPyObjects(seg, h, w))
        elif isinstance(seg, dict) and isinstance(seg.get("counts"), list):
            rle = mask_util.frPyObjects(seg, h, w)
        else:
            rle = dict(seg, counts=seg["counts"].encode("ascii") if isinstance(seg["counts"], str) else seg["counts"])
        return mask_util.decode(rle).astype(bool)
    except Exception as exc:  # noqa: BLE001  (pycocotools raises plain Exceptions)
        raise SparseLabelError(f"{where}: annotation {ann.get('id')}: cannot decode its segmentation "
                               f"(expected polygons or RLE of a {h}x{w} image): {exc}") from None


def make_sparse_labels(data_root: Union[str, os.PathLike], out_dir: Union[str, os.PathLike], seed: int = 0,
                       splits: Sequence[str] = SPLITS, cfg: Optional[SparseLabelConfig] = None,
                       overwrite: bool = False) -> Dict[str, Any]:
    """Writes ``out_dir/<split>/<kind>/<stem>.png`` for every image; returns the summary (also ``labels.json``)."""
    cfg = cfg or SparseLabelConfig()
    root = Path(data_root)
    if not root.is_dir():
        raise SparseLabelError(f"data root {root}: not a folder (expected a COCO-format dataset folder)")
    for split in splits:
        if split not in _SPLIT_CODES:
            raise SparseLabelError(f"split {split!r}: expected one of {', '.join(SPLITS)}")
    out = Path(out_dir).resolve()
    t0 = time.monotonic()
    summary: Dict[str, Any] = {"protocol_version": PROTOCOL_VERSION, "data_root": str(root.resolve()),
                               "seed": int(seed), "ignore_index": IGNORE_INDEX, "config": cfg.as_dict(),
                               "kinds": list(KINDS), "splits": {}}
    with atomic_folder(out, overwrite, error=SparseLabelError) as tmp:
        for split in splits:
            data, by_image = _load_split(root, split)
            for kind in KINDS:
                (tmp / split / kind).mkdir(parents=True)
            counts = {k: 0 for k in KINDS}
            classes = sorted({int(c["id"]) for c in data.get("categories", [])})
            for index, im in enumerate(data["images"]):
                h, w = int(im["height"]), int(im["width"])
                where = f"{root}/annotations/instances_{split}.json"
                instances = [(int(a["category_id"]), _decode(a, h, w, where)) for a in by_image[int(im["id"])]]
                labels = sparse_labels((h, w), instances, _rng(seed, split, index), cfg)
                stem = Path(im["file_name"]).stem
                for kind, lab in labels.items():
                    write_png(tmp / split / kind / f"{stem}.png", lab)
                    counts[kind] += int((lab != IGNORE_INDEX).sum())
            n_pixels = sum(int(im["height"]) * int(im["width"]) for im in data["images"])
            summary["splits"][split] = {
                "images": len(data["images"]), "classes": [0] + classes,
                "labelled_fraction": {k: round(v / max(n_pixels, 1), 6) for k, v in counts.items()}}
        write_json_atomic(tmp / "labels.json", summary)
    summary["seconds"] = round(time.monotonic() - t0, 2)
    return summary
