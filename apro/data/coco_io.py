"""Reading, validating and writing COCO instance-segmentation json files.

``load_coco_annotations`` is the one place that reads an ``instances_*.json``:
it checks the structure the rest of the suite relies on and raises a
``ValueError`` that names the file and what is wrong, instead of a ``KeyError``
deep inside training or evaluation. ``dump_coco_json`` writes such a file
deterministically (sorted keys, fixed separators) and atomically.
``mask_to_rle`` / ``mask_annotation`` are the one encoder of binary masks
(datasets' annotations, evaluation's predictions).
"""
from __future__ import annotations

import json
import numbers
import os
from typing import Any, Dict

import numpy as np

from apro.io import write_text_atomic

__all__ = ["load_coco_annotations", "dump_coco_json", "mask_to_rle", "mask_annotation", "REQUIRED_TOP_LEVEL_KEYS",
           "REQUIRED_IMAGE_KEYS", "REQUIRED_ANNOTATION_KEYS", "REQUIRED_CATEGORY_KEYS"]

REQUIRED_TOP_LEVEL_KEYS = ("images", "annotations", "categories")
REQUIRED_IMAGE_KEYS = ("id", "file_name", "height", "width")
REQUIRED_ANNOTATION_KEYS = ("id", "image_id", "category_id", "bbox", "area", "iscrowd", "segmentation")
REQUIRED_CATEGORY_KEYS = ("id", "name")


def _is_number(x: Any) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def _is_int(x: Any) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def _check_entries(path: str, data: Dict[str, Any], key: str, required: tuple) -> Dict[Any, dict]:
    """Checks that every entry of ``data[key]`` is an object with the required
    keys and a unique integer ``id``; returns them by id."""
    by_id: Dict[Any, dict] = {}
    singular = key[:-1]
    for i, entry in enumerate(data[key]):
        if not isinstance(entry, dict):
            raise ValueError(f"{path}: {key}[{i}] must be a JSON object, got {type(entry).__name__}")
        missing = [k for k in required if k not in entry]
        if missing:
            ident = f" (id {entry['id']!r})" if "id" in entry else ""
            raise ValueError(
                f"{path}: {key}[{i}]{ident} is missing required key(s) {', '.join(map(repr, missing))}; "
                f"every {singular} needs {', '.join(required)}")
        if not _is_int(entry["id"]):
            raise ValueError(f"{path}: {key}[{i}] has id {entry['id']!r}; expected an integer")
        if entry["id"] in by_id:
            raise ValueError(f"{path}: {key}[{i}] repeats id {entry['id']}; ids must be unique within {key}")
        by_id[entry["id"]] = entry
    return by_id


def load_coco_annotations(path: str | os.PathLike) -> Dict[str, Any]:
    """Reads and validates a COCO instance json; returns the parsed dict.

    Raises ``ValueError`` naming ``path`` and the problem when the file is
    missing or unreadable, is not valid JSON, lacks ``images``/``annotations``/
    ``categories`` (each a list), or has an image, category or annotation that
    lacks a required key, has a malformed ``bbox`` (4 numbers, w and h >= 0),
    ``area``, ``iscrowd`` or ``segmentation``, or refers to an unknown image or
    category id.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        what = "is a directory, expected a COCO json file" if os.path.isdir(path) else "does not exist"
        raise ValueError(f"{path}: annotation file {what}")
    try:
        with open(path, "r", encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})") from e
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: cannot read annotation file ({e})") from e

    if not isinstance(data, dict):
        raise ValueError(f"{path}: top level must be a JSON object with keys "
                         f"{', '.join(REQUIRED_TOP_LEVEL_KEYS)}, got {type(data).__name__}")
    missing = [k for k in REQUIRED_TOP_LEVEL_KEYS if k not in data]
    if missing:
        raise ValueError(f"{path}: missing required top-level key(s) {', '.join(map(repr, missing))}; "
                         f"a COCO instance file needs {', '.join(REQUIRED_TOP_LEVEL_KEYS)}")
    for k in REQUIRED_TOP_LEVEL_KEYS:
        if not isinstance(data[k], list):
            raise ValueError(f"{path}: '{k}' must be a list, got {type(data[k]).__name__}")

    images = _check_entries(path, data, "images", REQUIRED_IMAGE_KEYS)
    categories = _check_entries(path, data, "categories", REQUIRED_CATEGORY_KEYS)
    _check_entries(path, data, "annotations", REQUIRED_ANNOTATION_KEYS)

    for i, ann in enumerate(data["annotations"]):
        where = f"{path}: annotations[{i}] (id {ann['id']})"
        if ann["image_id"] not in images:
            raise ValueError(f"{where} refers to image_id {ann['image_id']!r}, which is not in 'images'")
        if ann["category_id"] not in categories:
            raise ValueError(f"{where} refers to category_id {ann['category_id']!r}, which is not in 'categories'")
        bbox = ann["bbox"]
        if (not isinstance(bbox, list) or len(bbox) != 4 or not all(_is_number(v) for v in bbox)
                or bbox[2] < 0 or bbox[3] < 0):
            raise ValueError(f"{where} has bbox {bbox!r}; expected [x, y, width, height], 4 numbers with "
                             "width and height >= 0")
        if not _is_number(ann["area"]) or ann["area"] < 0:
            raise ValueError(f"{where} has area {ann['area']!r}; expected a number >= 0")
        if ann["iscrowd"] not in (0, 1):
            raise ValueError(f"{where} has iscrowd {ann['iscrowd']!r}; expected 0 or 1")
        seg = ann["segmentation"]
        if isinstance(seg, dict):
            if "counts" not in seg or "size" not in seg:
                raise ValueError(f"{where} has an RLE segmentation without 'counts' and 'size'")
        elif not isinstance(seg, list):
            raise ValueError(f"{where} has segmentation of type {type(seg).__name__}; expected an RLE object "
                             "{'size': [h, w], 'counts': ...} or a list of polygons")
    return data


def dump_coco_json(data: Dict[str, Any], path: str | os.PathLike) -> None:
    """Writes ``data`` as JSON with sorted keys and fixed separators (same
    data -> same bytes), through a temporary file renamed into place."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    write_text_atomic(path, text + "\n")


def mask_to_rle(mask: np.ndarray) -> Dict[str, Any]:
    """The COCO RLE of a binary ``(H, W)`` mask: ``{"size": [H, W], "counts": <ascii str>}`` (pycocotools')."""
    from pycocotools import mask as mask_util

    rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def mask_annotation(mask: np.ndarray, ann_id: int, image_id: int, category_id: int) -> Dict[str, Any]:
    """A COCO instance annotation of a non-empty binary mask: its RLE, area and tight
    ``[x, y, width, height]`` box (floats, whole pixels), ``iscrowd`` 0."""
    ys, xs = np.nonzero(mask)
    x0, y0 = int(xs.min()), int(ys.min())
    bbox = [float(x0), float(y0), float(xs.max() - x0 + 1), float(ys.max() - y0 + 1)]
    return {"id": ann_id, "image_id": image_id, "category_id": category_id, "segmentation": mask_to_rle(mask),
            "area": float(mask.sum()), "bbox": bbox, "iscrowd": 0}
