"""What a COCO instance dataset must hold before a training starts (``apro validate-data``, and every
``apro train`` / ``apro evaluate`` of an mmdet config).

:func:`check_split` reads one ``annotations/instances_<split>.json`` (:func:`apro.data.coco_io.load_coco_annotations`
checks its structure) and every image it lists, and sorts what it finds in two kinds:

Errors (the run stops before any training, each naming the file, the image or annotation id and what was
expected):

* an annotation of a category the file does not declare (coco_io), two categories of one name (mmdet maps
  classes by name);
* an image missing or unreadable, or of another size than its entry says (boxes and masks are in the entry's
  pixels);
* an RLE mask whose size is not its image's;
* an empty split (no images), a training split without one usable annotation;
* with a config: categories the config's classes do not hold, or more classes than its head has outputs
  (mmdet would drop those annotations silently).

Warnings, counted per reason in ``validated.json`` and the suite's report, for annotations mmdet's
``CocoDataset`` drops itself (``parse_data_info``: no overlap with the image, width or height under one
pixel, ``area <= 0``) and boxes that reach outside the image (kept; the box mask and the resize cut them at
the border). A single class is a dataset like any other.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from apro.data.coco_io import load_coco_annotations

#: reason -> what happens to such an annotation (the warnings)
DROPPED = {
    "box_outside_image": "dropped (mmdet's CocoDataset keeps no box without overlap with its image)",
    "box_under_one_pixel": "dropped (mmdet's CocoDataset keeps no box under 1 pixel wide or high)",
    "area_not_positive": "dropped (mmdet's CocoDataset keeps no annotation with area <= 0: set area to the "
                         "box's or the mask's)",
}
KEPT = {"box_crosses_border": "kept, cut at the image's border"}
EFFECTS = {**DROPPED, **KEPT}
#: EXIF orientations that swap width and height (the image loaders apply them)
_TRANSPOSED = (5, 6, 7, 8)
#: how many examples each error and warning lists
SHOWN = 5


@dataclasses.dataclass
class SplitCheck:
    """What :func:`check_split` found in one split."""
    split: str
    annotation_file: str
    images: int = 0
    annotations: int = 0
    usable: int = 0  # annotations mmdet keeps
    with_masks: int = 0  # of the usable ones, those with a segmentation
    images_with_usable: set = dataclasses.field(default_factory=set)  # ids of images holding a usable one
    categories: List[str] = dataclasses.field(default_factory=list)
    errors: List[str] = dataclasses.field(default_factory=list)
    warnings: Dict[str, List[str]] = dataclasses.field(default_factory=dict)  # reason -> examples

    @property
    def masks(self) -> str:
        """'all', 'some' or 'none' of the usable annotations have a mask ('all' of none)."""
        if self.with_masks == self.usable:
            return "all"
        return "some" if self.with_masks else "none"

    def warn(self, reason: str, example: str) -> None:
        self.warnings.setdefault(reason, []).append(example)

    def summary(self) -> dict:
        return {"annotation_file": self.annotation_file, "images": self.images, "annotations": self.annotations,
                "usable_annotations": self.usable,
                "images_with_usable": len(self.images_with_usable), "categories": len(self.categories),
                "masks": self.masks,
                "dropped": {reason: len(found) for reason, found in self.warnings.items() if reason in DROPPED},
                "warnings": {reason: {"count": len(found), "effect": EFFECTS[reason], "examples": found[:SHOWN]}
                             for reason, found in self.warnings.items()}}


def image_size(path: Path) -> tuple:
    """(width, height) as the image loaders see it (EXIF orientation applied); raises OSError if unreadable."""
    from PIL import Image

    with Image.open(path) as im:
        im.verify()  # reads the whole file's structure: a truncated or non-image file fails here
    with Image.open(path) as im:
        width, height = im.size
        orientation = im.getexif().get(0x0112, 1)
    return (height, width) if orientation in _TRANSPOSED else (width, height)


def _check_images(check: SplitCheck, images: Sequence[dict], image_dir: Path, ann_file: str, read: bool) -> None:
    for im in images:
        path = image_dir / im["file_name"]
        where = f"{ann_file}: image id {im['id']} ({path})"
        if not path.is_file():
            check.errors.append(f"{where}: missing; expected the image file the entry names")
            continue
        if not read:
            continue
        try:
            size = image_size(path)
        except Exception as exc:  # PIL raises many kinds for a file that is not an image
            check.errors.append(f"{where}: unreadable ({type(exc).__name__}: {exc}); expected a JPEG or PNG image")
            continue
        if size != (im["width"], im["height"]):
            check.errors.append(f"{where}: the file is {size[0]}x{size[1]} but the entry says "
                                f"{im['width']}x{im['height']} (width x height); boxes and masks are in the entry's "
                                "pixels")


def _check_annotation(check: SplitCheck, ann: dict, image: dict, ann_file: str) -> None:
    where = f"{ann_file}: annotation id {ann['id']} (image id {ann['image_id']})"
    x, y, w, h = ann["bbox"]
    width, height = image["width"], image["height"]
    if w < 1 or h < 1:  # (before the overlap: a zero-width box has none either)
        check.warn("box_under_one_pixel", f"{where}: bbox {ann['bbox']} is under 1 pixel wide or high")
        return
    if max(0, min(x + w, width) - max(x, 0)) * max(0, min(y + h, height) - max(y, 0)) == 0:
        check.warn("box_outside_image", f"{where}: bbox {ann['bbox']} has no overlap with the {width}x{height} image")
        return
    if ann["area"] <= 0:
        check.warn("area_not_positive", f"{where}: area {ann['area']}")
        return
    if x < 0 or y < 0 or x + w > width or y + h > height:
        check.warn("box_crosses_border", f"{where}: bbox {ann['bbox']} reaches outside the {width}x{height} image")
    check.usable += 1
    check.images_with_usable.add(ann["image_id"])
    seg = ann["segmentation"]
    if isinstance(seg, dict):
        if list(seg["size"]) != [height, width]:
            check.errors.append(f"{where}: RLE mask of size {list(seg['size'])} (height, width); expected its "
                                f"image's [{height}, {width}]")
        check.with_masks += 1
    elif seg:  # polygons; [] means no mask
        check.with_masks += 1


def check_split(data_root: os.PathLike, split: str, train: bool = False, read_images: bool = True) -> SplitCheck:
    """Checks ``<data_root>/annotations/instances_<split>.json`` and the images under ``<data_root>/<split>/``.

    Structural problems of the json raise ``ValueError`` (coco_io); everything else is collected in the
    returned :class:`SplitCheck`. ``train``: the split is trained on (it must keep an annotation);
    ``read_images``: open every image (else only check that it exists: ``apro validate-data`` reads them once)."""
    root = Path(data_root)
    ann_file = str(root / "annotations" / f"instances_{split}.json")
    data = load_coco_annotations(ann_file)
    check = SplitCheck(split=split, annotation_file=ann_file, images=len(data["images"]),
                       annotations=len(data["annotations"]), categories=[c["name"] for c in data["categories"]])
    seen: Dict[str, int] = {}
    for cat in data["categories"]:
        if cat["name"] in seen:
            check.errors.append(f"{ann_file}: categories {seen[cat['name']]} and {cat['id']} are both named "
                                f"{cat['name']!r}; expected one name per category (mmdet maps classes by name)")
        seen.setdefault(cat["name"], cat["id"])
    if not data["images"]:
        check.errors.append(f"{ann_file}: the {split} split is empty (no images); expected at least one image")
        return check
    _check_images(check, data["images"], root / split, ann_file, read_images)
    images = {im["id"]: im for im in data["images"]}
    for ann in data["annotations"]:
        _check_annotation(check, ann, images[ann["image_id"]], ann_file)
    if train and check.usable == 0:
        check.errors.append(f"{ann_file}: none of its {check.annotations} annotations is usable for training "
                            f"({_reasons(check)}); expected at least one box inside its image")
    return check


def _reasons(check: SplitCheck) -> str:
    found = {reason: len(v) for reason, v in check.warnings.items() if reason in DROPPED}
    return ", ".join(f"{n} {reason}" for reason, n in found.items()) or "there are none"


def config_classes(cfg) -> tuple:
    """(class names, number of class outputs) of an mmdet config: the training dataset's ``metainfo.classes``
    (None when the config leaves them to the dataset) and the head's ``num_classes`` (SOLOv2) or
    ``num_things_classes`` (Mask2Former) (None for another head)."""
    loader = cfg.get("train_dataloader") or cfg.get("test_dataloader") or {}
    classes = ((loader.get("dataset") or {}).get("metainfo") or {}).get("classes")
    model = cfg.get("model") or {}
    heads = [model.get("mask_head") or {}, model.get("bbox_head") or {}, model.get("panoptic_head") or {}]
    outputs = next((h.get(key) for h in heads for key in ("num_classes", "num_things_classes") if h.get(key)), None)
    return (None if classes is None else tuple(classes)), outputs


def check_classes(check: SplitCheck, classes: Optional[Sequence[str]], outputs: Optional[int],
                  config: str) -> None:
    """Errors when the dataset's categories do not fit the config's classes and class outputs."""
    names = list(classes) if classes is not None else check.categories
    if outputs is not None and len(names) > outputs:
        where = "classes" if classes is not None else f"categories of {check.annotation_file}"
        check.errors.append(f"config {config}: its head has {outputs} class outputs but there are {len(names)} "
                            f"{where}; expected at most {outputs} (set the head's num_classes, or use "
                            "`apro custom-configs`, which sets every place from the annotation file)")
    if classes is not None:
        outside = [c for c in check.categories if c not in classes]
        if outside:
            shown = ", ".join(map(repr, outside[:10])) + (f" and {len(outside) - 10} more" if len(outside) > 10 else "")
            check.errors.append(f"{check.annotation_file}: categories {shown} are not among the {len(classes)} "
                                f"classes of config {config}; mmdet would drop their annotations silently; expected "
                                "the config's classes to name every category (or `apro custom-configs`)")


def raise_errors(checks: Sequence[SplitCheck], error_type=ValueError) -> None:
    """Raises ``error_type`` listing every error of ``checks`` (the first of each kind in full)."""
    errors = [e for c in checks for e in c.errors]
    if errors:
        more = f"\n  ... and {len(errors) - 2 * SHOWN} more" if len(errors) > 2 * SHOWN else ""
        raise error_type(f"{len(errors)} problem(s) in the dataset:\n  - "
                         + "\n  - ".join(errors[:2 * SHOWN]) + more)


def warning_lines(checks: Sequence[SplitCheck]) -> List[str]:
    """One line per warning reason and split: the count, the effect and the first example."""
    lines = []
    for c in checks:
        for reason, found in c.warnings.items():
            lines.append(f"{c.split}: {len(found)} annotation(s) {reason}: {EFFECTS[reason]}; "
                         f"e.g. {found[0]}")
    return lines
