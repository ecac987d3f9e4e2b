"""The public archives of the paper's datasets (download + checksum) and the COCO 2017 layout.

    apro fetch VOCtrainval_11-May-2012.tar --out downloads/VOCtrainval_11-May-2012.tar
    apro prepare-coco --downloads downloads --out data/coco

Checksums are the MD5s the dataset pages (and torchvision's dataset classes)
publish. A missing archive that cannot be downloaded (no network, moved URL)
fails with the URL and the path to place it at by hand. ``prepare-coco`` unpacks
train2017 -> ``<out>/train/``, val2017 -> ``<out>/val/``, the instance json ->
``<out>/annotations/instances_{train,val}.json`` and checks the image and
instance counts.
"""
from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Dict, Optional

from apro.downloads import fetch
from apro.errors import InputError
from apro.io import atomic_folder

ARCHIVES: Dict[str, Dict[str, str]] = {
    "VOCtrainval_11-May-2012.tar": {
        "url": "http://host.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar",
        "md5": "6cd6e144f989b92b3379bac3b3de84fd"},
    "benchmark.tgz": {  # SBD
        "url": "http://www.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/semantic_contours/benchmark.tgz",
        "md5": "82b4d87ceb2ed10f6038a1cba92111cb"},
    "train2017.zip": {"url": "http://images.cocodataset.org/zips/train2017.zip",
                      "md5": "cced6f7f71b7629ddf16f17bbcfab6b2"},
    "val2017.zip": {"url": "http://images.cocodataset.org/zips/val2017.zip",
                    "md5": "442b8da7639aecaf257c1dceb8ba8c80"},
    "annotations_trainval2017.zip": {"url": "http://images.cocodataset.org/annotations/annotations_trainval2017.zip",
                                     "md5": "f4bbac642086de4f52a3fdda2de5fa2c"},
}
#: images / instances of COCO 2017 (instances json, crowd regions included)
COCO_EXPECTED = {"train": {"images": 118287, "instances": 860001}, "val": {"images": 5000, "instances": 36781}}


class DataError(InputError):
    """A missing, corrupt or incomplete dataset archive."""


def fetch_archive(name: str, out: os.PathLike, url: Optional[str] = None) -> str:
    if name not in ARCHIVES:
        raise DataError(f"unknown archive {name!r}; known: {', '.join(ARCHIVES)}")
    spec = ARCHIVES[name]
    return fetch(url or spec["url"], out, spec["md5"], "md5", what=f"dataset archive {name}")


def _check_counts(path: Path, split: str, expect: Optional[Dict[str, int]]) -> Dict[str, int]:
    data = json.loads(path.read_text())
    got = {"images": len(data.get("images", [])), "instances": len(data.get("annotations", []))}
    if expect is not None and got != expect:
        raise DataError(f"{path}: {got['images']} images / {got['instances']} instances, expected "
                        f"{expect['images']} / {expect['instances']} for COCO 2017 {split}")
    return got


def prepare_coco(downloads: os.PathLike, out: os.PathLike,
                 expect: Optional[Dict[str, Dict[str, int]]] = COCO_EXPECTED) -> Dict[str, Dict[str, int]]:
    """Unpacks the three COCO 2017 archives of ``downloads`` into ``out`` (built in a temporary folder)."""
    downloads, out = Path(downloads), Path(out)
    for name in ("train2017.zip", "val2017.zip", "annotations_trainval2017.zip"):
        if not (downloads / name).is_file():
            raise DataError(f"{downloads / name}: missing; download {ARCHIVES[name]['url']} to that path "
                            f"(or run the workflow's fetch_archive rule)")
    with atomic_folder(out, overwrite=True) as tmp:
        for name in ("train2017.zip", "val2017.zip", "annotations_trainval2017.zip"):
            with zipfile.ZipFile(downloads / name) as z:
                z.extractall(tmp)
        (tmp / "train2017").rename(tmp / "train")
        (tmp / "val2017").rename(tmp / "val")
        ann = tmp / "annotations"
        summary = {}
        for split in ("train", "val"):
            (ann / f"instances_{split}2017.json").rename(ann / f"instances_{split}.json")
            summary[split] = _check_counts(ann / f"instances_{split}.json", split,
                                           None if expect is None else expect[split])
            n_files = sum(1 for _ in (tmp / split).iterdir())
            if n_files != summary[split]["images"]:
                raise DataError(f"{split}: {n_files} image files but {summary[split]['images']} images listed")
    return summary
