"""Built-in synthetic COCO-format dataset for box-supervised instance segmentation.

Every image is a textured, cluttered scene with a few non-convex objects of six
shape classes (ring, crescent, star, L-shape, U-shape, blob). It is made so that
a box is a weak proxy for its mask, as in real photos:

* the shapes are non-convex and arbitrarily rotated, so on average they fill
  about half of their tight box (see the table below ``CATEGORIES``): taking
  the box as the mask gives a mean IoU of ~0.47;
* every object has its own colour and texture (noise, stripes, mottling or a
  gradient); its base colour differs from the mean of the canvas under it by at
  least ``contrast_range[0]`` and at most ``contrast_range[1]``, so colour
  affinities carry information locally without making the task trivial;
* the background is not flat: a colour gradient, low-frequency colour noise,
  fine texture, and unannotated clutter (strokes, rectangles, ellipses) drawn
  with the same colour and texture distribution as the objects, so colour alone
  does not separate objects from background globally;
* objects occlude each other (later ones on top) and may be cut by the image
  border; the annotated masks are the visible parts;
* sizes span ``size_range`` (a fraction of the image side), log-uniformly;
* a fixed share of the images (``empty_fraction``) has no objects at all.

Occlusion control: an object is placed only if it leaves every object already
placed with at least ``min_visible_fraction`` of its full area and at least
``min_area`` pixels visible, and itself has that much inside the image;
otherwise it is re-placed (up to ``_PLACEMENT_TRIES`` times) or dropped before
it is drawn. So no instance falls below the visibility threshold, and no drawn
object of a shape class is left unannotated.

Determinism: image ``i`` of split ``s`` is rendered from its own
``numpy.random.Generator(PCG64(SeedSequence([seed, s, 0, i])))``; the choice of
empty images uses one generator per block of ``_EMPTY_BLOCK`` images. Images
therefore do not depend on each other or on how many are generated, and can
be rendered in parallel. PNGs are written by Pillow with a fixed compression
level and no metadata; the json with sorted keys and fixed separators. So the
same arguments give byte-identical files (on the same zlib).

Output layout (``file_name`` in the json is relative to the split folder)::

    <out>/train/000000.png ...      <out>/annotations/instances_train.json
    <out>/val/000000.png ...        <out>/annotations/instances_val.json

The output appears atomically: everything is written into a hidden sibling
folder ``.<name>.<pid>.partial`` that is renamed to ``<out>`` at the end.
"""
from __future__ import annotations

import colorsys
import math
import os
import sys
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from scipy import ndimage

from apro.io import atomic_folder, write_png

from .coco_io import dump_coco_json, mask_annotation

__all__ = ["CATEGORIES", "GENERATOR_VERSION", "SyntheticConfig", "render_image",
           "generate"]

GENERATOR_VERSION = 1

CATEGORIES: List[Dict[str, Any]] = [
    {"id": 1, "name": "ring", "supercategory": "shape"},
    {"id": 2, "name": "crescent", "supercategory": "shape"},
    {"id": 3, "name": "star", "supercategory": "shape"},
    {"id": 4, "name": "l_shape", "supercategory": "shape"},
    {"id": 5, "name": "u_shape", "supercategory": "shape"},
    {"id": 6, "name": "blob", "supercategory": "shape"},
]

# How much of its box each class fills, from the definitions in
# ``_sample_shape`` (upright, unoccluded; parameters uniform in their ranges):
#   ring      pi/4 * (1 - r_in^2), r_in in [0.45, 0.7]        0.40 .. 0.63
#   crescent  unit disc minus a disc of radius 0.8..1 offset 0.35..0.6,
#             over its (narrower) box                          ~0.42
#   star      5..8 points, inner radius 0.35..0.55: area n r_in sin(pi/n)
#             over a box of side ~2                            ~0.3 .. 0.5
#   l_shape   2f - f^2, arm thickness f in [0.3, 0.5]         0.51 .. 0.75
#   u_shape   1 - (1 - 2f)(1 - g), f in [0.2, 0.35], g in [0.25, 0.45]  0.55 .. 0.83
#   blob      radius 1 + sum_k a_k cos(k theta + phi_k), k = 2..5, scaled to
#             max radius 1: below a disc's pi/4                ~0.6
# A uniformly random rotation leaves the round classes unchanged and grows a
# square box by E[(|cos t| + |sin t|)^2] = 1 + 2/pi ~= 1.64, so L and U fill
# ~0.65 / 1.64 and ~0.70 / 1.64 ~= 0.4 .. 0.45 on average. Expected mean over
# the six classes ~0.47, far from a box (1) and below the pi/4 ~= 0.785 of an
# ellipse inscribed in its box. Occlusion and the image border change it a
# little either way.

_SPLIT_CODES = {"train": 0, "val": 1}
_KIND_IMAGE = 0
_KIND_EMPTY_BLOCK = 1
_EMPTY_BLOCK = 10
_PLACEMENT_TRIES = 25
_SUPERSAMPLE = 4


class SyntheticConfig:
    """Scene parameters (all have defaults; ``generate`` passes them through).

    image_size: (height, width) in pixels.
    max_instances: upper end of the uniform number of objects tried per
        non-empty image (1..max_instances; some may be dropped by occlusion).
    size_range: object extent (longer side before rotation) as a fraction of
        the shorter image side, sampled log-uniformly.
    empty_fraction: share of images with no objects, stratified per block of
        10 images (round(10 * empty_fraction) empty images in every block).
    min_area: minimum visible pixels of an instance.
    min_visible_fraction: minimum visible share of an instance's full area.
    contrast_range: (low, high) L2 distance (RGB in [0, 1]) between an
        object's base colour and the mean colour of the canvas it covers: high
        enough that colour affinities help, capped so it is not trivial.
    clutter_range: (min, max) number of unannotated clutter items.
    class_hue_width: None (default): every object's hue is drawn from the whole
        hue circle, so only shape tells the classes apart. A width in (0, 1]:
        an object of category k (1..6) takes its hue from a band of that width
        (a fraction of the circle) centred at (k - 1) / 6, so colour hints at
        the class, as pretrained features make recognition easy in real data
        (the semantic demo); the clutter keeps any hue.
    """

    def __init__(self, image_size: Union[int, Sequence[int]] = 128, *, max_instances: int = 6,
                 size_range: Tuple[float, float] = (0.18, 0.6), empty_fraction: float = 0.1,
                 min_area: int = 30, min_visible_fraction: float = 0.35,
                 contrast_range: Tuple[float, float] = (0.2, 0.6),
                 clutter_range: Tuple[int, int] = (4, 12), class_hue_width: Optional[float] = None):
        if isinstance(image_size, (int, np.integer)):
            hw = (int(image_size), int(image_size))
        else:
            hw = tuple(int(v) for v in image_size)
        if len(hw) != 2 or min(hw) < 16:
            raise ValueError(f"image_size: expected an int or (height, width), each >= 16; got {image_size!r}")
        if not (0 < size_range[0] <= size_range[1] <= 1.5):
            raise ValueError(f"size_range: expected 0 < low <= high <= 1.5; got {size_range!r}")
        if not (0.0 <= empty_fraction <= 1.0):
            raise ValueError(f"empty_fraction: expected a value in [0, 1]; got {empty_fraction!r}")
        if max_instances < 1:
            raise ValueError(f"max_instances: expected >= 1; got {max_instances!r}")
        if not (0.0 <= min_visible_fraction <= 1.0):
            raise ValueError(f"min_visible_fraction: expected a value in [0, 1]; got {min_visible_fraction!r}")
        if not (0.0 <= contrast_range[0] <= contrast_range[1]):
            raise ValueError(f"contrast_range: expected 0 <= low <= high; got {contrast_range!r}")
        if clutter_range[0] < 0 or clutter_range[1] < clutter_range[0]:
            raise ValueError(f"clutter_range: expected 0 <= min <= max; got {clutter_range!r}")
        if class_hue_width is not None and not (0.0 < float(class_hue_width) <= 1.0):
            raise ValueError(f"class_hue_width: expected None or a value in (0, 1]; got {class_hue_width!r}")
        self.image_size = hw
        self.max_instances = int(max_instances)
        self.size_range = (float(size_range[0]), float(size_range[1]))
        self.empty_fraction = float(empty_fraction)
        self.min_area = int(min_area)
        self.min_visible_fraction = float(min_visible_fraction)
        self.contrast_range = (float(contrast_range[0]), float(contrast_range[1]))
        self.clutter_range = (int(clutter_range[0]), int(clutter_range[1]))
        self.class_hue_width = None if class_hue_width is None else float(class_hue_width)

    def as_dict(self) -> Dict[str, Any]:
        return {"image_size": list(self.image_size), "max_instances": self.max_instances,
                "size_range": list(self.size_range), "empty_fraction": self.empty_fraction,
                "min_area": self.min_area, "min_visible_fraction": self.min_visible_fraction,
                "contrast_range": list(self.contrast_range), "clutter_range": list(self.clutter_range),
                "class_hue_width": self.class_hue_width}


# --------------------------------------------------------------------------- colours and textures

def _hsv(rng: np.random.Generator, s: Tuple[float, float], v: Tuple[float, float],
         hue: Tuple[float, float] = (0.0, 1.0)) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(rng.uniform(*hue) % 1.0, rng.uniform(*s), rng.uniform(*v)), np.float32)


def _object_colour(rng: np.random.Generator, hue: Tuple[float, float] = (0.0, 1.0)) -> np.ndarray:
    return _hsv(rng, (0.2, 0.9), (0.25, 0.95), hue)


def _class_hue(cfg: "SyntheticConfig", cat: int) -> Tuple[float, float]:
    """Hue range of an object of category index ``cat`` (0-based)."""
    if cfg.class_hue_width is None:
        return (0.0, 1.0)
    centre = cat / len(CATEGORIES)
    return (centre - cfg.class_hue_width / 2, centre + cfg.class_hue_width / 2)


def _smooth_noise(rng: np.random.Generator, h: int, w: int, sigma: float) -> np.ndarray:
    """Zero-mean, unit-std Gaussian-filtered noise of shape (h, w)."""
    n = ndimage.gaussian_filter(rng.standard_normal((h, w)).astype(np.float32), sigma, mode="wrap")
    return n / (n.std() + 1e-6)


def _texture(rng: np.random.Generator, base: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """A colour field (h, w, 3) around ``base`` with one of four textures;
    ``ys``/``xs`` are the absolute pixel coordinates of the region."""
    h, w = ys.shape[0], xs.shape[0]
    kind = rng.integers(4)
    other = np.clip(base + rng.uniform(-0.18, 0.18, 3).astype(np.float32), 0, 1)
    Y, X = np.meshgrid(ys.astype(np.float32), xs.astype(np.float32), indexing="ij")
    if kind == 0:  # stripes
        phi, period, amp = rng.uniform(0, math.pi), rng.uniform(3, 9), rng.uniform(0.4, 1.0)
        t = 0.5 + 0.5 * amp * np.sin(2 * math.pi * (X * math.cos(phi) + Y * math.sin(phi)) / period
                                     + rng.uniform(0, 2 * math.pi))
    elif kind == 1:  # mottled
        t = np.clip(0.5 + 0.35 * _smooth_noise(rng, h, w, rng.uniform(1.0, 3.0)), 0, 1)
    elif kind == 2:  # gradient
        phi = rng.uniform(0, 2 * math.pi)
        p = X * math.cos(phi) + Y * math.sin(phi)
        t = (p - p.min()) / (np.ptp(p) + 1e-6)
    else:  # plain with noise
        t = np.full((h, w), 0.5, np.float32)
    field = base[None, None] * (1 - t[..., None]) + other[None, None] * t[..., None]
    sigma = rng.uniform(0.01, 0.05)
    field = field + sigma * rng.standard_normal((h, w, 1)).astype(np.float32) \
        + 0.4 * sigma * rng.standard_normal((h, w, 3)).astype(np.float32)
    return field.astype(np.float32)


def _rbf_weights(n: int, k: int) -> np.ndarray:
    """(n, k) normalised Gaussian weights that smoothly interpolate k grid
    values over n pixels."""
    pos = (np.arange(n, dtype=np.float32) + 0.5) * (k / n)
    wts = np.exp(-0.5 * ((pos[:, None] - (np.arange(k, dtype=np.float32) + 0.5)[None, :]) / 0.7) ** 2)
    return (wts / wts.sum(axis=1, keepdims=True)).astype(np.float32)


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    c1 = _hsv(rng, (0.05, 0.6), (0.2, 0.9))
    c2 = np.clip(c1 + rng.uniform(-0.35, 0.35, 3).astype(np.float32), 0, 1)
    phi = rng.uniform(0, 2 * math.pi)
    Y, X = np.meshgrid(np.arange(h, dtype=np.float32), np.arange(w, dtype=np.float32), indexing="ij")
    p = X * math.cos(phi) + Y * math.sin(phi)
    t = ((p - p.min()) / (np.ptp(p) + 1e-6))[..., None]
    img = c1[None, None] * (1 - t) + c2[None, None] * t
    # low-frequency colour variation
    g = rng.standard_normal((4, 4, 3)).astype(np.float32) * rng.uniform(0.03, 0.08)
    img = img + np.einsum("yi,ijc,xj->yxc", _rbf_weights(h, 4), g, _rbf_weights(w, 4))
    # fine texture
    if rng.uniform() < 0.5:
        img = img + rng.uniform(0.03, 0.07) * _smooth_noise(rng, h, w, rng.uniform(0.7, 1.5))[..., None]
    if rng.uniform() < 0.3:
        period, phi2 = rng.uniform(4, 12), rng.uniform(0, math.pi)
        img = img + rng.uniform(0.02, 0.05) * np.sin(
            2 * math.pi * (X * math.cos(phi2) + Y * math.sin(phi2)) / period)[..., None]
    return img.astype(np.float32)


# --------------------------------------------------------------------------- shapes

def _in_polygon(u: np.ndarray, v: np.ndarray, verts: Sequence[Tuple[float, float]]) -> np.ndarray:
    """Even-odd point-in-polygon test, vectorised over the points."""
    inside = np.zeros(u.shape, bool)
    n = len(verts)
    for k in range(n):
        x1, y1 = verts[k]
        x2, y2 = verts[(k + 1) % n]
        if y1 == y2:
            continue
        crosses = (y1 > v) != (y2 > v)
        x_at = (x2 - x1) * (v - y1) / (y2 - y1) + x1
        inside ^= crosses & (u < x_at)
    return inside


def _sample_shape(rng: np.random.Generator, name: str):
    """Returns ``inside(u, v)`` for a shape of class ``name`` inside [-1, 1]^2."""
    if name == "ring":
        r_in = rng.uniform(0.45, 0.7)
        return lambda u, v: (u * u + v * v <= 1.0) & (u * u + v * v >= r_in * r_in)
    if name == "crescent":
        rc, d = rng.uniform(0.8, 1.0), rng.uniform(0.35, 0.6)
        return lambda u, v: (u * u + v * v <= 1.0) & ((u - d) ** 2 + v * v > rc * rc)
    if name == "star":
        n = int(rng.integers(5, 9))
        r_in = rng.uniform(0.35, 0.55)
        a0 = rng.uniform(0, 2 * math.pi)
        verts = [((1.0 if k % 2 == 0 else r_in) * math.cos(a0 + k * math.pi / n),
                  (1.0 if k % 2 == 0 else r_in) * math.sin(a0 + k * math.pi / n)) for k in range(2 * n)]
        return lambda u, v: _in_polygon(u, v, verts)
    if name == "l_shape":
        f = rng.uniform(0.3, 0.5)
        t = -1 + 2 * f
        verts = [(-1, -1), (1, -1), (1, t), (t, t), (t, 1), (-1, 1)]
        return lambda u, v: _in_polygon(u, v, verts)
    if name == "u_shape":
        f, g = rng.uniform(0.2, 0.35), rng.uniform(0.25, 0.45)
        a, b = -1 + 2 * f, 1 - 2 * f
        c = -1 + 2 * g
        verts = [(-1, -1), (1, -1), (1, 1), (b, 1), (b, c), (a, c), (a, 1), (-1, 1)]
        return lambda u, v: _in_polygon(u, v, verts)
    if name == "blob":
        ks = np.arange(2, 6)
        amps = rng.uniform(0.08, 0.3, ks.size) * rng.uniform(0.6, 1.0)
        phases = rng.uniform(0, 2 * math.pi, ks.size)
        theta = np.linspace(0, 2 * math.pi, 720, endpoint=False)
        rmax = float(np.max(1 + (amps[:, None] * np.cos(ks[:, None] * theta + phases[:, None])).sum(0)))

        def inside(u, v):
            th = np.arctan2(v, u)
            r = 1 + (amps[:, None, None] * np.cos(ks[:, None, None] * th + phases[:, None, None])).sum(0)
            return u * u + v * v <= (r / rmax) ** 2
        return inside
    if name == "ellipse":
        return lambda u, v: u * u + v * v <= 1.0
    if name == "rectangle":
        return lambda u, v: (np.abs(u) <= 1.0) & (np.abs(v) <= 1.0)
    raise ValueError(f"unknown shape {name!r}")


def _rasterise(inside, cx: float, cy: float, ax: float, ay: float, angle: float, ss: int = _SUPERSAMPLE):
    """Supersampled coverage of a shape placed at (cx, cy) with half-extents
    (ax, ay) and rotation ``angle``. Returns (alpha, y0, x0) where ``alpha``
    covers the whole shape (not clipped to the image) and starts at pixel
    (y0, x0), which may be negative."""
    r = math.hypot(ax, ay)
    x0, x1 = int(math.floor(cx - r)), int(math.ceil(cx + r))
    y0, y1 = int(math.floor(cy - r)), int(math.ceil(cy + r))
    h, w = y1 - y0, x1 - x0
    sub = (np.arange(ss, dtype=np.float64) + 0.5) / ss
    ys = (y0 + np.arange(h)[:, None] + sub[None, :]).reshape(-1) - cy
    xs = (x0 + np.arange(w)[:, None] + sub[None, :]).reshape(-1) - cx
    Y, X = np.meshgrid(ys, xs, indexing="ij")
    c, s = math.cos(angle), math.sin(angle)
    u = (X * c + Y * s) / ax
    v = (-X * s + Y * c) / ay
    cov = inside(u, v).reshape(h, ss, w, ss).mean(axis=(1, 3)).astype(np.float32)
    return cov, y0, x0


def _clip(alpha: np.ndarray, y0: int, x0: int, h: int, w: int):
    """The part of a placed ``alpha`` inside an (h, w) image: (crop, slices)."""
    ya, xa = max(y0, 0), max(x0, 0)
    yb, xb = min(y0 + alpha.shape[0], h), min(x0 + alpha.shape[1], w)
    if ya >= yb or xa >= xb:
        return None, None
    return alpha[ya - y0:yb - y0, xa - x0:xb - x0], (slice(ya, yb), slice(xa, xb))


def _stroke(rng: np.random.Generator, h: int, w: int):
    """Alpha (h, w) of a random polyline with width 1..3.5 px (anti-aliased)."""
    n = int(rng.integers(2, 5))
    pts = [np.array([rng.uniform(-0.1, 1.1) * w, rng.uniform(-0.1, 1.1) * h])]
    for _ in range(n):
        step = rng.uniform(0.15, 0.5) * min(h, w)
        a = rng.uniform(0, 2 * math.pi)
        pts.append(pts[-1] + step * np.array([math.cos(a), math.sin(a)]))
    width = rng.uniform(1.0, 3.5)
    Y, X = np.meshgrid(np.arange(h) + 0.5, np.arange(w) + 0.5, indexing="ij")
    dist = np.full((h, w), np.inf)
    for p, q in zip(pts[:-1], pts[1:]):
        d = q - p
        t = np.clip(((X - p[0]) * d[0] + (Y - p[1]) * d[1]) / (d @ d + 1e-9), 0, 1)
        dist = np.minimum(dist, np.hypot(X - p[0] - t * d[0], Y - p[1] - t * d[1]))
    return np.clip(width / 2 - dist + 0.5, 0, 1).astype(np.float32)


# --------------------------------------------------------------------------- one image

def render_image(rng: np.random.Generator, cfg: SyntheticConfig, empty: bool = False
                 ) -> Tuple[np.ndarray, List[Tuple[int, np.ndarray]]]:
    """Renders one scene. Returns the uint8 (H, W, 3) image and a list of
    (category_id, visible mask as bool (H, W)) in drawing order."""
    h, w = cfg.image_size
    canvas = _background(rng, h, w)

    # unannotated clutter, with the objects' colour and texture distribution
    for _ in range(int(rng.integers(cfg.clutter_range[0], cfg.clutter_range[1] + 1))):
        if rng.uniform() < 0.45:
            full = _stroke(rng, h, w)
            ys, xs = np.nonzero(full)
            if ys.size == 0:
                continue
            sl = (slice(int(ys.min()), int(ys.max()) + 1), slice(int(xs.min()), int(xs.max()) + 1))
            alpha = full[sl]
        else:
            kind = "ellipse" if rng.uniform() < 0.5 else "rectangle"
            size = math.exp(rng.uniform(math.log(0.05), math.log(0.35))) * min(h, w)
            ax = size / 2
            ay = ax * rng.uniform(0.3, 1.0)
            full, y0, x0 = _rasterise(_sample_shape(rng, kind), rng.uniform(0, w), rng.uniform(0, h),
                                      ax, ay, rng.uniform(0, math.pi), ss=2)
            alpha, sl = _clip(full, y0, x0, h, w)
            if alpha is None:
                continue
        alpha = alpha * rng.uniform(0.5, 1.0)
        tex = _texture(rng, _object_colour(rng), np.arange(sl[0].start, sl[0].stop),
                       np.arange(sl[1].start, sl[1].stop))
        canvas[sl] = canvas[sl] * (1 - alpha[..., None]) + tex * alpha[..., None]

    ids = np.zeros((h, w), np.int32)  # 0 = background, k = k-th kept object
    kept: List[Tuple[int, int]] = []  # (category_id, required visible pixels)
    n_try = 0 if empty else int(rng.integers(1, cfg.max_instances + 1))
    names = [c["name"] for c in CATEGORIES]
    lo, hi = math.log(cfg.size_range[0]), math.log(cfg.size_range[1])
    for _ in range(n_try):
        cat = int(rng.integers(len(CATEGORIES)))
        inside = _sample_shape(rng, names[cat])
        for _attempt in range(_PLACEMENT_TRIES):
            extent = math.exp(rng.uniform(lo, hi)) * min(h, w)
            aspect = rng.uniform(0.7, 1.0)
            ax, ay = (extent / 2, extent / 2 * aspect) if rng.uniform() < 0.5 else (extent / 2 * aspect, extent / 2)
            full, y0, x0 = _rasterise(inside, rng.uniform(0, w), rng.uniform(0, h), ax, ay,
                                      rng.uniform(0, 2 * math.pi))
            full_area = int((full >= 0.5).sum())
            need = max(cfg.min_area, int(math.ceil(cfg.min_visible_fraction * full_area)))
            alpha, sl = _clip(full, y0, x0, h, w)
            if alpha is None or full_area == 0:
                continue
            cover = alpha >= 0.5
            if int(cover.sum()) < need:
                continue
            # would it push an earlier object below its threshold?
            hit = np.bincount(ids[sl][cover], minlength=len(kept) + 1)
            ok = True
            for k, (_, need_k) in enumerate(kept, start=1):
                if hit[k] and int((ids == k).sum()) - int(hit[k]) < need_k:
                    ok = False
                    break
            if not ok:
                continue
            # colour with enough contrast to what it covers
            under = canvas[sl][cover].mean(axis=0)
            best, best_miss = None, math.inf
            for _c in range(40):
                col = _object_colour(rng, _class_hue(cfg, cat))
                d = float(np.linalg.norm(col - under))
                miss = max(cfg.contrast_range[0] - d, d - cfg.contrast_range[1], 0.0)
                if miss < best_miss:
                    best, best_miss = col, miss
                if miss == 0.0:
                    break
            tex = _texture(rng, best, np.arange(sl[0].start, sl[0].stop), np.arange(sl[1].start, sl[1].stop))
            canvas[sl] = canvas[sl] * (1 - alpha[..., None]) + tex * alpha[..., None]
            kept.append((cat + 1, need))
            ids[sl][cover] = len(kept)
            break

    # global illumination and sensor noise
    phi = rng.uniform(0, 2 * math.pi)
    Y, X = np.meshgrid(np.linspace(-1, 1, h, dtype=np.float32), np.linspace(-1, 1, w, dtype=np.float32),
                       indexing="ij")
    canvas = canvas * (1 + rng.uniform(0.0, 0.15) * (X * math.cos(phi) + Y * math.sin(phi)))[..., None]
    canvas = canvas + 0.012 * rng.standard_normal(canvas.shape).astype(np.float32)
    image = np.clip(np.rint(canvas * 255.0), 0, 255).astype(np.uint8)

    instances = []
    for k, (cat_id, need) in enumerate(kept, start=1):
        m = ids == k
        assert int(m.sum()) >= need, "placement check must keep every instance above its threshold"
        instances.append((cat_id, m))
    return image, instances


# --------------------------------------------------------------------------- dataset

def _image_rng(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, _SPLIT_CODES[split], _KIND_IMAGE,
                                                                       index])))


def _is_empty(seed: int, split: str, index: int, empty_fraction: float) -> bool:
    """Stratified: round(_EMPTY_BLOCK * empty_fraction) empty images at random
    positions in every block of _EMPTY_BLOCK consecutive images."""
    n_empty = int(round(_EMPTY_BLOCK * empty_fraction))
    if n_empty == 0:
        return False
    block, pos = divmod(index, _EMPTY_BLOCK)
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, _SPLIT_CODES[split],
                                                                      _KIND_EMPTY_BLOCK, block])))
    return pos in set(rng.permutation(_EMPTY_BLOCK)[:n_empty].tolist())


def _write_split(root: str, split: str, n: int, seed: int, cfg: SyntheticConfig, progress_every: int,
                 t_start: float) -> Dict[str, Any]:
    img_dir = os.path.join(root, split)
    os.makedirs(img_dir)
    h, w = cfg.image_size
    images, annotations = [], []
    for i in range(n):
        image, instances = render_image(_image_rng(seed, split, i), cfg,
                                        empty=_is_empty(seed, split, i, cfg.empty_fraction))
        file_name = f"{i:06d}.png"
        write_png(os.path.join(img_dir, file_name), image)
        image_id = i + 1
        images.append({"id": image_id, "file_name": file_name, "height": h, "width": w})
        for cat_id, m in instances:
            annotations.append(mask_annotation(m, len(annotations) + 1, image_id, cat_id))
        if progress_every and ((i + 1) % progress_every == 0 or i + 1 == n):
            print(f"make-data: {split} {i + 1}/{n} images, {len(annotations)} instances "
                  f"({time.monotonic() - t_start:.1f} s)", file=sys.stderr, flush=True)
    data = {
        "info": {"description": "APro synthetic shapes (apro.data.synthetic)", "split": split, "seed": seed,
                 "generator_version": GENERATOR_VERSION, "config": cfg.as_dict()},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [dict(c) for c in CATEGORIES],
    }
    ann_path = os.path.join(root, "annotations", f"instances_{split}.json")
    dump_coco_json(data, ann_path)
    return {"images": len(images), "instances": len(annotations),
            "empty_images": len(images) - len({a["image_id"] for a in annotations})}


def generate(out_dir: Union[str, os.PathLike], *, num_train: int = 400, num_val: int = 100,
             image_size: Union[int, Sequence[int]] = 128, seed: int = 0, overwrite: bool = False,
             progress_every: int = 100, **scene: Any) -> Dict[str, Any]:
    """Writes the synthetic COCO dataset to ``out_dir`` and returns its paths and counts.

    ``scene`` takes the other ``SyntheticConfig`` parameters (max_instances,
    size_range, empty_fraction, min_area, min_visible_fraction, contrast_range,
    clutter_range). ``progress_every``: a line to stderr every that many
    images (0: silent). Raises ``FileExistsError`` if ``out_dir`` exists and is
    not an empty folder, unless ``overwrite`` is true.
    """
    if int(num_train) < 0 or int(num_val) < 0:
        raise ValueError(f"num_train/num_val: expected counts >= 0; got {num_train!r}/{num_val!r}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed: expected an integer >= 0; got {seed!r}")
    cfg = SyntheticConfig(image_size, **scene)
    out_dir = os.path.abspath(os.fspath(out_dir))
    if os.path.lexists(out_dir):
        if not os.path.isdir(out_dir) or os.path.islink(out_dir):
            raise FileExistsError(f"{out_dir}: exists and is not a folder; remove it or choose another out_dir")
    t0 = time.monotonic()
    with atomic_folder(out_dir, overwrite) as tmp:  # an existing folder is only removed once the new one is complete
        os.makedirs(os.path.join(tmp, "annotations"))
        counts = {}
        for split, n in (("train", int(num_train)), ("val", int(num_val))):
            counts[split] = _write_split(str(tmp), split, n, int(seed), cfg, progress_every, t0)
    seconds = time.monotonic() - t0
    if progress_every:
        print(f"make-data: wrote {out_dir} in {seconds:.1f} s", file=sys.stderr, flush=True)
    result: Dict[str, Any] = {"out_dir": out_dir, "seed": int(seed), "image_size": list(cfg.image_size),
                              "categories": [c["name"] for c in CATEGORIES], "seconds": seconds}
    for split in ("train", "val"):
        result[split] = {"image_dir": os.path.join(out_dir, split),
                         "ann_file": os.path.join(out_dir, "annotations", f"instances_{split}.json"),
                         **counts[split]}
    return result
