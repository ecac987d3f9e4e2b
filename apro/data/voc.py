"""Pascal VOC 2012 + SBD -> the augmented instance-segmentation set in COCO json.

    python -m apro.data.voc --voc VOCdevkit/VOC2012 --sbd benchmark_RELEASE/dataset --out data/voc

Splits (the usual "VOC aug" instance set, 10,582 train / 1,449 val images):
train = (SBD train + SBD val + VOC seg train) - VOC seg val, val = VOC seg val.
Instances: from SBD ``inst/<id>.mat`` (``GTinst.Segmentation`` instance ids,
``GTinst.Categories`` class 1..20) where SBD has the image, else from VOC's
``SegmentationObject`` PNG (palette index = instance id, 255 = void) with the
class taken from ``SegmentationClass`` (the majority class under the instance).
Writes ``<out>/{train,val}/<id>.jpg`` (hard links where possible) and
``<out>/annotations/instances_{train,val}.json`` (RLE masks), each atomically,
and checks the image counts (``--expect-train``/``--expect-val``).
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from apro import layout

CLASSES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
           "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor")
EXPECTED = {"train": 10582, "val": 1449}


class VOCError(ValueError):
    """Missing or malformed VOC / SBD input."""


def _ids(path: Path) -> List[str]:
    if not path.is_file():
        raise VOCError(f"{path}: split list not found (expected one image id per line)")
    return [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]


def splits(voc: Path, sbd: Path) -> Dict[str, List[str]]:
    voc_train = _ids(voc / "ImageSets" / "Segmentation" / "train.txt")
    voc_val = _ids(voc / "ImageSets" / "Segmentation" / "val.txt")
    sbd_ids = _ids(sbd / "train.txt") + _ids(sbd / "val.txt")
    held_out = set(voc_val)
    train = sorted(set(sbd_ids + voc_train) - held_out)
    return {"train": train, "val": sorted(voc_val)}


def _read_png(path: Path) -> np.ndarray:
    from PIL import Image

    if not path.is_file():
        raise VOCError(f"{path}: annotation PNG not found")
    with Image.open(path) as im:
        if im.mode != "P":
            raise VOCError(f"{path}: expected a palette (mode P) PNG as VOC ships, got mode {im.mode}")
        return np.array(im)


def instances_voc(voc: Path, image_id: str) -> List[tuple]:
    """[(class 1..20, HxW bool mask)] from VOC's SegmentationObject + SegmentationClass PNGs."""
    obj = _read_png(voc / "SegmentationObject" / f"{image_id}.png")
    cls = _read_png(voc / "SegmentationClass" / f"{image_id}.png")
    if obj.shape != cls.shape:
        raise VOCError(f"{image_id}: SegmentationObject {obj.shape} and SegmentationClass {cls.shape} differ")
    out = []
    for k in sorted(int(v) for v in np.unique(obj) if 0 < v < 255):
        mask = obj == k
        labels = cls[mask]
        labels = labels[(labels > 0) & (labels < 255)]
        if labels.size:
            out.append((int(np.bincount(labels).argmax()), mask))
    return out


def instances_sbd(sbd: Path, image_id: str) -> List[tuple]:
    """[(class 1..20, HxW bool mask)] from SBD's inst/<id>.mat."""
    from scipy.io import loadmat

    path = sbd / "inst" / f"{image_id}.mat"
    if not path.is_file():
        raise VOCError(f"{path}: SBD instance file not found")
    gt = loadmat(str(path), squeeze_me=True, struct_as_record=False)["GTinst"]
    seg = np.asarray(gt.Segmentation)
    cats = np.atleast_1d(np.asarray(gt.Categories)).astype(int)
    return [(int(c), seg == k + 1) for k, c in enumerate(cats) if (seg == k + 1).any()]


def _annotation(mask: np.ndarray, cls: int, ann_id: int, image_id: int) -> dict:
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    ys, xs = np.nonzero(mask)
    x0, y0 = float(xs.min()), float(ys.min())
    return {"id": ann_id, "image_id": image_id, "category_id": cls, "iscrowd": 0,
            "area": float(mask.sum()), "bbox": [x0, y0, float(xs.max()) + 1 - x0, float(ys.max()) + 1 - y0],
            "segmentation": {"size": list(rle["size"]), "counts": rle["counts"].decode("ascii")}}


def _place(src: Path, dst: Path) -> None:
    if dst.exists():
        return
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def convert(voc: os.PathLike, sbd: os.PathLike, out: os.PathLike,
            expect: Optional[Dict[str, int]] = None, progress: int = 1000) -> Dict[str, dict]:
    from apro.io import write_json_atomic

    voc, sbd, out = Path(voc), Path(sbd), Path(out)
    sbd_ids = set(_ids(sbd / "train.txt") + _ids(sbd / "val.txt"))
    expect = EXPECTED if expect is None else expect
    summary = {}
    for split, ids in splits(voc, sbd).items():
        if expect.get(split) is not None and len(ids) != expect[split]:
            raise VOCError(f"{split}: {len(ids)} images from the split lists of {voc} and {sbd}, "
                           f"expected {expect[split]}; are both datasets complete?")
        (out / split).mkdir(parents=True, exist_ok=True)
        images, anns = [], []
        for n, name in enumerate(ids, 1):
            jpg = voc / "JPEGImages" / f"{name}.jpg"
            if not jpg.is_file():
                raise VOCError(f"{jpg}: image not found (listed in the {split} split)")
            use_sbd = split == "train" and name in sbd_ids
            insts = instances_sbd(sbd, name) if use_sbd else instances_voc(voc, name)
            from PIL import Image

            with Image.open(jpg) as im:
                w, h = im.size
            image_id = n
            images.append({"id": image_id, "file_name": f"{name}.jpg", "width": w, "height": h})
            for cls, mask in insts:
                if mask.shape != (h, w):
                    raise VOCError(f"{name}: mask {mask.shape} does not match image {(h, w)}")
                if not 1 <= cls <= len(CLASSES):
                    raise VOCError(f"{name}: class id {cls} out of 1..{len(CLASSES)}")
                anns.append(_annotation(mask, cls, len(anns) + 1, image_id))
            _place(jpg, out / split / f"{name}.jpg")
            if progress and n % progress == 0:
                print(f"voc {split}: {n}/{len(ids)} images", flush=True)
        data = {"images": images, "annotations": anns,
                "categories": [{"id": i + 1, "name": c} for i, c in enumerate(CLASSES)]}
        write_json_atomic(out / "annotations" / f"instances_{split}.json", data)
        summary[split] = {"images": len(images), "instances": len(anns)}
        print(f"voc {split}: {len(images)} images, {len(anns)} instances", flush=True)
    return summary


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m apro.data.voc", description=__doc__.split("\n\n")[0])
    p.add_argument("--voc", required=True, help="the VOC2012 folder (JPEGImages/, SegmentationObject/, ...)")
    p.add_argument("--sbd", required=True, help="SBD's dataset/ folder (inst/, train.txt, val.txt)")
    p.add_argument("--out", required=True, help=f"output dataset folder, e.g. {layout.data_dir('voc')}")
    p.add_argument("--expect-train", type=int, default=EXPECTED["train"])
    p.add_argument("--expect-val", type=int, default=EXPECTED["val"])
    args = p.parse_args(argv)
    try:
        convert(args.voc, args.sbd, args.out, {"train": args.expect_train, "val": args.expect_val})
    except VOCError as exc:
        print(f"apro.data.voc: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
