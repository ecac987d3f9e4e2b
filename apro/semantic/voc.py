"""Pascal VOC 2012 point and scribble labels of the paper setting.

    python -m apro.semantic.voc fetch {scribblesup|points} --sources experiments/semantic/voc_sources.yaml --out FILE
    python -m apro.semantic.voc convert --scribblesup ZIP --points JSON --sources YAML --out DIR
    python -m apro.semantic.voc layout --voc-tar TAR --sbd-tgz TGZ --sparse DIR --out data/voc_aug

``fetch`` downloads one source of ``voc_sources.yaml`` (or copies it, for a
``file://`` URL) and checks its sha256; a source whose checksum is not
recorded, or a download with another checksum, fails naming it (and prints
the computed checksum). ``convert`` writes ``DIR/scribble/<stem>.png`` and
``DIR/point/<stem>.png``: the VOC class index (0 background, 1..20 in the
usual VOC order) on the annotated pixels, 255 elsewhere. Scribbles are the
ScribbleSup polylines rasterised ``scribble_width`` pixels wide; points are
single pixels (or squares of ``point_radius``). Image sizes come from the XML
(scribbles) and from the scribble file of the same image (points; images
without one are skipped and counted).

``layout`` (:func:`layout_semantic`) reads the VOC 2012 trainval tar and the
SBD tgz as downloaded (no unpacking) and writes the semantic training layout
of the paper configs (experiments/semantic/paper_voc_*.py) into ``DIR``:
``JPEGImages/`` (VOC 2012's), ``SegmentationClassAug/`` (SBD's ``cls/*.mat``
as PNG class ids, overwritten by VOC 2012's own ``SegmentationClass`` where it
has one; 255 = void), ``ImageSets/Segmentation/{train_aug,val}.txt`` (train_aug
= SBD train + SBD val + VOC train - VOC val, 10,582 ids; val = VOC val, 1,449)
and ``train_aug_{point,scribble}.txt`` (the train_aug ids with a sparse label),
``labels/train/{point,scribble}/`` (``convert``'s PNGs of the train_aug ids),
and the folders ``apro train-semantic`` reads (``--data-root DIR --label-root
DIR/labels``): ``train`` and ``val`` (links to ``JPEGImages``) and
``labels/{train,val}/full`` (links to ``SegmentationClassAug``). Written into a
hidden sibling folder, renamed into place when complete.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import sys
import tarfile
import tempfile
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from apro import layout

IGNORE_INDEX = 255
VOC_CLASSES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
               "tvmonitor")
# ScribbleSup tags that differ from the VOC class names
_ALIASES = {"bkg": "background", "bg": "background", "dining table": "diningtable", "potted plant": "pottedplant",
            "tv/monitor": "tvmonitor", "tv": "tvmonitor", "motorcycle": "motorbike", "airplane": "aeroplane",
            # the short names TEL's loader maps the scribble tags with (TreeEnergyLoss
            # lib/datasets/loader/voc2012_loader.py, semseg_class_names)
            "plane": "aeroplane", "bike": "bicycle", "table": "diningtable", "plant": "pottedplant",
            "monitor": "tvmonitor"}


class VocLabelError(ValueError):
    """Bad input: names the file and what was expected."""


def load_sources(path: os.PathLike) -> dict:
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        sources = data["sources"]
        for name in ("scribblesup", "points"):
            sources[name]["url"]
    except (OSError, TypeError, KeyError, yaml.YAMLError) as exc:
        raise VocLabelError(f"{path}: expected a YAML file with sources.scribblesup.url and sources.points.url "
                            f"(and their sha256); {type(exc).__name__}: {exc}") from None
    return data


def fetch(source: str, sources_file: os.PathLike, out: os.PathLike) -> str:
    """Downloads ``source`` to ``out`` (atomically, :func:`apro.downloads.fetch`) once its sha256 matches
    the recorded one; a source without a recorded sha256 is downloaded aside only to report its checksum."""
    from apro.downloads import FetchError
    from apro.downloads import fetch as download

    spec = load_sources(sources_file)["sources"].get(source)
    if spec is None:
        raise VocLabelError(f"{sources_file}: no source {source!r} (expected scribblesup or points)")
    want = spec.get("sha256")
    try:
        if want:
            download(spec["url"], out, want, what=f"label source {source}")
            return str(out)
        with tempfile.TemporaryDirectory() as tmp:  # nothing is kept without a recorded checksum
            got = download(spec["url"], Path(tmp) / source, None, what=f"label source {source}")
    except FetchError as exc:
        raise VocLabelError(f"{sources_file}: sources.{source} ({spec['url']}): {exc}") from None
    raise VocLabelError(f"{sources_file}: sources.{source}.sha256 is not set; the download of {spec['url']} "
                        f"has sha256 {got}: check the file and record its checksum there")


def class_index(tag: str, where: str) -> int:
    name = _ALIASES.get(tag.strip().lower(), tag.strip().lower())
    if name not in VOC_CLASSES:
        raise VocLabelError(f"{where}: unknown class {tag!r}; expected one of {', '.join(VOC_CLASSES)}")
    return VOC_CLASSES.index(name)


def _line(out: np.ndarray, p0, p1, value: int, width: int) -> None:
    r = width // 2
    n = int(max(abs(p1[0] - p0[0]), abs(p1[1] - p0[1]))) * 2 + 1
    for t in np.linspace(0.0, 1.0, n):
        x = int(round(p0[0] + t * (p1[0] - p0[0])))
        y = int(round(p0[1] + t * (p1[1] - p0[1])))
        out[max(0, y - r):y + r + 1, max(0, x - r):x + r + 1] = value


def scribble_png(xml_text: str, where: str, width: int = 3) -> Tuple[str, np.ndarray]:
    """(image stem, label) of one ScribbleSup XML file; later scribbles are drawn over earlier ones."""
    try:
        root = ET.fromstring(xml_text)
        stem = Path(root.findtext("filename").strip()).stem
        h, w = int(root.find("size").findtext("height")), int(root.find("size").findtext("width"))
        polygons = [(p.findtext("tag"), [(float(q.findtext("X")), float(q.findtext("Y"))) for q in p.findall("point")])
                    for p in root.findall("polygon")]
    except (ET.ParseError, AttributeError, TypeError, ValueError) as exc:
        raise VocLabelError(f"{where}: expected a ScribbleSup XML file (filename, size/width+height, polygon/tag "
                            f"and polygon/point/X+Y); {type(exc).__name__}: {exc}") from None
    out = np.full((h, w), IGNORE_INDEX, np.uint8)
    for tag, pts in polygons:
        c = class_index(tag or "", where)
        pts = [(min(max(x, 0), w - 1), min(max(y, 0), h - 1)) for x, y in pts]
        for a, b in zip(pts, pts[1:] if len(pts) > 1 else pts):
            _line(out, a, b, c, width)
    return stem, out


def _save(array: np.ndarray, path: Path) -> None:
    from PIL import Image

    Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8)).save(path, format="PNG", compress_level=6)


def convert(scribblesup: os.PathLike, points: os.PathLike, out_dir: os.PathLike, scribble_width: int = 3,
            point_radius: int = 0) -> Dict[str, int]:
    """Writes ``out_dir/{scribble,point}/<stem>.png`` (atomically: a hidden folder renamed at the end)."""
    out = Path(out_dir).resolve()
    tmp = out.parent / f".{out.name}.{os.getpid()}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "scribble").mkdir(parents=True)
    (tmp / "point").mkdir()
    sizes: Dict[str, Tuple[int, int]] = {}
    counts = {"scribble": 0, "point": 0, "point_skipped": 0}
    try:
        try:
            zf = zipfile.ZipFile(scribblesup)
        except (OSError, zipfile.BadZipFile) as exc:
            raise VocLabelError(f"{scribblesup}: expected the ScribbleSup zip of XML files ({exc})") from None
        with zf:
            for name in sorted(n for n in zf.namelist() if n.lower().endswith(".xml")):
                stem, lab = scribble_png(zf.read(name).decode("utf-8", "replace"), f"{scribblesup}:{name}",
                                         scribble_width)
                sizes[stem] = lab.shape
                _save(lab, tmp / "scribble" / f"{stem}.png")
                counts["scribble"] += 1
        try:
            clicks = json.loads(Path(points).read_text(encoding="utf-8"))
            if not isinstance(clicks, dict):
                raise ValueError("top level is not an object")
        except (OSError, ValueError) as exc:
            raise VocLabelError(f"{points}: expected a JSON object {{image stem: [{{cls, x, y}}, ...]}} ({exc})") \
                from None
        for stem in sorted(clicks):
            if stem not in sizes:
                counts["point_skipped"] += 1
                continue
            lab = np.full(sizes[stem], IGNORE_INDEX, np.uint8)
            for k, c in enumerate(clicks[stem]):
                try:
                    cls, x, y = int(c["cls"]), int(round(float(c["x"]))), int(round(float(c["y"])))
                except (KeyError, TypeError, ValueError):
                    raise VocLabelError(f"{points}: {stem}[{k}]: expected an object with cls, x, y") from None
                if not 0 <= cls < len(VOC_CLASSES):
                    raise VocLabelError(f"{points}: {stem}[{k}]: cls {cls} outside 0..{len(VOC_CLASSES) - 1}")
                if 0 <= y < lab.shape[0] and 0 <= x < lab.shape[1]:
                    r = point_radius
                    lab[max(0, y - r):y + r + 1, max(0, x - r):x + r + 1] = cls
            _save(lab, tmp / "point" / f"{stem}.png")
            counts["point"] += 1
        from apro.io import write_json_atomic

        write_json_atomic(tmp / "labels.json", {"scribblesup": str(scribblesup), "points": str(points),
                                                "scribble_width": scribble_width, "point_radius": point_radius,
                                                "ignore_index": IGNORE_INDEX, "classes": list(VOC_CLASSES), **counts})
        if out.exists():
            shutil.rmtree(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return counts


# ---------------------------------------------------------------- semantic layout of VOC 2012 + SBD
#: image counts of the augmented set (the VOC 2012 trainval tar + SBD's benchmark.tgz)
LAYOUT_EXPECTED = {"train_aug": 10582, "val": 1449}
SPARSE_KINDS = ("point", "scribble")
_VOC_MEMBER = re.compile(r"(?:^|/)VOC2012/(JPEGImages|SegmentationClass|ImageSets/Segmentation)/([^/]+)$")
_SBD_MEMBER = re.compile(r"(?:^|/)dataset/(?:cls/([^/]+)\.mat|(train|val)\.txt)$")


def _open_tar(path: os.PathLike, what: str) -> tarfile.TarFile:
    if not Path(path).is_file():
        raise VocLabelError(f"{path}: not found (expected {what})")
    try:
        return tarfile.open(path, mode="r|*")  # one pass, no seeking (the tgz is read once)
    except (OSError, tarfile.TarError) as exc:
        raise VocLabelError(f"{path}: not a (compressed) tar archive; expected {what} ({exc})") from None


def _ids_of(data: bytes) -> List[str]:
    return [ln.strip() for ln in data.decode("utf-8", "replace").splitlines() if ln.strip()]


def _check_classes(lab: np.ndarray, where: str) -> np.ndarray:
    bad = sorted(set(np.unique(lab).tolist()) - set(range(len(VOC_CLASSES))) - {IGNORE_INDEX})
    if bad:
        raise VocLabelError(f"{where}: class ids {bad[:5]} outside 0..{len(VOC_CLASSES) - 1} and {IGNORE_INDEX}")
    return lab.astype(np.uint8)


def _sbd_mask(data: bytes, where: str) -> np.ndarray:
    from scipy.io import loadmat

    try:
        seg = np.asarray(loadmat(io.BytesIO(data), squeeze_me=True, struct_as_record=False)["GTcls"].Segmentation)
        if seg.ndim != 2:
            raise ValueError(f"GTcls.Segmentation has shape {seg.shape}")
    except Exception as exc:  # noqa: BLE001 (scipy raises many kinds for a bad file)
        raise VocLabelError(f"{where}: expected an SBD cls .mat file with GTcls.Segmentation (an HxW array of "
                            f"class ids); {type(exc).__name__}: {exc}") from None
    return _check_classes(seg, where)


def _voc_mask(data: bytes, where: str) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            mode, lab = im.mode, np.array(im)
    except OSError as exc:
        raise VocLabelError(f"{where}: not a readable PNG ({exc})") from None
    if mode != "P":
        raise VocLabelError(f"{where}: expected a palette (mode P) PNG as VOC ships, got mode {mode}")
    return _check_classes(lab, where)


def _size(path: Path) -> Tuple[int, int]:
    """(height, width) of an image file (reads the header only)."""
    from PIL import Image

    with Image.open(path) as im:
        return im.size[1], im.size[0]


def _first(items, n: int = 3) -> str:
    items = sorted(items)
    return ", ".join(items[:n]) + (f" (and {len(items) - n} more)" if len(items) > n else "")


def layout_semantic(voc_tar: os.PathLike, sbd_tgz: os.PathLike, out_dir: os.PathLike,
                    sparse_dir: Optional[os.PathLike] = None,
                    expect: Optional[Dict[str, int]] = None) -> Dict[str, int]:
    """VOC 2012 tar + SBD tgz (+ the sparse labels of :func:`convert`) -> the semantic layout (module doc).

    ``expect``: ``{"train_aug": n, "val": m}`` image counts to check (:data:`LAYOUT_EXPECTED` for the
    real archives; None checks none). Returns the counts (also written to ``out_dir/layout.json``).
    """
    out = Path(out_dir).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.{os.getpid()}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    masks, images = tmp / "SegmentationClassAug", tmp / "JPEGImages"
    lists = tmp / "ImageSets" / "Segmentation"
    for d in (masks, images, lists, tmp / "labels" / "train", tmp / "labels" / "val"):
        d.mkdir(parents=True)
    try:
        # SBD: cls/<id>.mat -> SegmentationClassAug/<id>.png, and its train / val lists
        sbd_lists: Dict[str, List[str]] = {}
        sbd_ids = set()
        with _open_tar(sbd_tgz, "SBD's benchmark.tgz (benchmark_RELEASE/dataset/{cls/*.mat,train.txt,val.txt})") as tf:
            for m in tf:
                hit = _SBD_MEMBER.search(m.name) if m.isfile() else None
                if hit is None:
                    continue
                data = tf.extractfile(m).read()
                if hit.group(1):
                    _save(_sbd_mask(data, f"{sbd_tgz}:{m.name}"), masks / f"{hit.group(1)}.png")
                    sbd_ids.add(hit.group(1))
                else:
                    sbd_lists[hit.group(2)] = _ids_of(data)
        missing = [f"dataset/{s}.txt" for s in ("train", "val") if s not in sbd_lists]
        if missing or not sbd_ids:
            what = ", ".join(missing + ([] if sbd_ids else ["dataset/cls/*.mat"]))
            raise VocLabelError(f"{sbd_tgz}: no {what} in the archive; expected SBD's benchmark.tgz "
                                "(benchmark_RELEASE/dataset/...)")
        # VOC 2012: JPEGImages as they are, SegmentationClass (over SBD's masks), the segmentation lists
        voc_lists: Dict[str, List[str]] = {}
        jpegs, voc_masks = set(), set()
        with _open_tar(voc_tar, "the VOC 2012 trainval tar (VOCdevkit/VOC2012/...)") as tf:
            for m in tf:
                hit = _VOC_MEMBER.search(m.name) if m.isfile() else None
                if hit is None:
                    continue
                folder, name = hit.groups()
                stem, ext = os.path.splitext(name)
                if folder == "JPEGImages" and ext.lower() == ".jpg":
                    with tf.extractfile(m) as src, open(images / name, "wb") as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)
                    jpegs.add(stem)
                elif folder == "SegmentationClass" and ext.lower() == ".png":
                    _save(_voc_mask(tf.extractfile(m).read(), f"{voc_tar}:{m.name}"), masks / name)
                    voc_masks.add(stem)
                elif folder == "ImageSets/Segmentation" and name in ("train.txt", "val.txt"):
                    voc_lists[stem] = _ids_of(tf.extractfile(m).read())
        missing = [f"VOC2012/ImageSets/Segmentation/{s}.txt" for s in ("train", "val") if s not in voc_lists]
        if missing or not jpegs:
            what = ", ".join(missing + ([] if jpegs else ["VOC2012/JPEGImages/*.jpg"]))
            raise VocLabelError(f"{voc_tar}: no {what} in the archive; expected the VOC 2012 trainval tar "
                                "(VOCtrainval_11-May-2012.tar: VOCdevkit/VOC2012/...)")
        # the augmented split (as apro.data.voc and TEL's VOC2012Loader)
        val = sorted(set(voc_lists["val"]))
        train = sorted(set(sbd_lists["train"] + sbd_lists["val"] + voc_lists["train"]) - set(val))
        for ids, split in ((train, "train_aug"), (val, "val")):
            if expect is not None and split in expect and len(ids) != expect[split]:
                raise VocLabelError(f"{voc_tar} + {sbd_tgz}: {len(ids)} {split} images, expected {expect[split]} "
                                    "(the VOC 2012 trainval tar and SBD's benchmark.tgz); another release?")
        no_jpeg = set(train + val) - jpegs
        if no_jpeg:
            raise VocLabelError(f"{voc_tar}: {len(no_jpeg)} image(s) of the train_aug / val lists have no "
                                f"VOC2012/JPEGImages/<id>.jpg: {_first(no_jpeg)}")
        no_mask = (set(train) - sbd_ids - voc_masks) | (set(val) - voc_masks)
        if no_mask:
            raise VocLabelError(f"{voc_tar} + {sbd_tgz}: {len(no_mask)} image(s) have no class mask (VOC 2012 "
                                f"SegmentationClass/<id>.png or, for train_aug, SBD cls/<id>.mat): {_first(no_mask)}")
        sizes = {}
        for stem in train + val:
            sizes[stem] = _size(images / f"{stem}.jpg")
            got = _size(masks / f"{stem}.png")
            if got != sizes[stem]:
                src = f"{voc_tar}:SegmentationClass" if stem in voc_masks else f"{sbd_tgz}:cls"
                raise VocLabelError(f"{src}/{stem}: mask {got[1]}x{got[0]}, image {sizes[stem][1]}x{sizes[stem][0]}")
        keep = set(train + val)
        for png in masks.iterdir():  # SBD masks outside both splits (none in the real archives)
            if png.stem not in keep:
                png.unlink()
        from apro.io import write_json_atomic, write_text_atomic

        write_text_atomic(lists / "train_aug.txt", "".join(f"{s}\n" for s in train))
        write_text_atomic(lists / "val.txt", "".join(f"{s}\n" for s in val))
        counts = {"train_aug": len(train), "val": len(val), "jpeg": len(jpegs), "sbd_masks": len(sbd_ids),
                  "voc_masks": len(voc_masks)}
        # the sparse labels of the train_aug images (convert's output)
        if sparse_dir is not None:
            in_train = set(train)
            for kind in SPARSE_KINDS:
                src = Path(sparse_dir) / kind
                if not src.is_dir():
                    raise VocLabelError(f"{src}: not found (expected the {kind} PNGs of `python -m "
                                        f"apro.semantic.voc convert`: {sparse_dir}/{{point,scribble}}/<id>.png)")
                dst = tmp / "labels" / "train" / kind
                dst.mkdir()
                have = []
                for png in sorted(src.glob("*.png")):
                    if png.stem not in in_train:
                        continue
                    got = _size(png)
                    if got != sizes[png.stem]:
                        raise VocLabelError(f"{png}: {got[1]}x{got[0]}, but the image {png.stem}.jpg is "
                                            f"{sizes[png.stem][1]}x{sizes[png.stem][0]}")
                    shutil.copyfile(png, dst / png.name)
                    have.append(png.stem)
                if not have:
                    raise VocLabelError(f"{src}: no {kind} label of a train_aug image (expected <id>.png files "
                                        f"named like {train[0]}.png)")
                write_text_atomic(lists / f"train_aug_{kind}.txt", "".join(f"{s}\n" for s in have))
                counts[kind] = len(have)
                counts[f"{kind}_missing"] = len(train) - len(have)
        # the folders apro train-semantic reads: <data-root>/{train,val}, <label-root>/{train,val}/full
        for link, target in (("train", "JPEGImages"), ("val", "JPEGImages"),
                             ("labels/train/full", "../../SegmentationClassAug"),
                             ("labels/val/full", "../../SegmentationClassAug")):
            os.symlink(target, tmp / link, target_is_directory=True)
        write_json_atomic(tmp / "layout.json", {"voc_tar": str(voc_tar), "sbd_tgz": str(sbd_tgz),
                                                "sparse_dir": None if sparse_dir is None else str(sparse_dir),
                                                "ignore_index": IGNORE_INDEX, "classes": list(VOC_CLASSES),
                                                **counts})
        if out.is_symlink() or out.is_file():
            out.unlink()
        elif out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return counts


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m apro.semantic.voc", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fetch", help="download one source and check its sha256")
    f.add_argument("source", choices=["scribblesup", "points"])
    f.add_argument("--sources", required=True, help="experiments/semantic/voc_sources.yaml")
    f.add_argument("--out", required=True)
    c = sub.add_parser("convert", help="ScribbleSup zip + point JSON -> label PNGs")
    c.add_argument("--scribblesup", required=True)
    c.add_argument("--points", required=True)
    c.add_argument("--sources", default=None, help="voc_sources.yaml (scribble_width, point_radius)")
    c.add_argument("--out", required=True)
    lay = sub.add_parser("layout", help="VOC 2012 tar + SBD tgz (+ sparse labels) -> the semantic training layout")
    lay.add_argument("--voc-tar", required=True, help="VOCtrainval_11-May-2012.tar")
    lay.add_argument("--sbd-tgz", required=True, help="SBD's benchmark.tgz")
    lay.add_argument("--sparse", default=None, help="convert's output folder ({point,scribble}/<id>.png)")
    lay.add_argument("--out", required=True, help=f"output folder, e.g. {layout.data_dir('voc_aug')}")
    lay.add_argument("--expect-train", type=int, default=LAYOUT_EXPECTED["train_aug"],
                     help=f"train_aug images to expect (default {LAYOUT_EXPECTED['train_aug']}; 0: do not check)")
    lay.add_argument("--expect-val", type=int, default=LAYOUT_EXPECTED["val"],
                     help=f"val images to expect (default {LAYOUT_EXPECTED['val']}; 0: do not check)")
    a = p.parse_args(argv)
    try:
        if a.cmd == "fetch":
            print(f"voc fetch: {fetch(a.source, a.sources, a.out)}")
        elif a.cmd == "layout":
            expect = {k: v for k, v in (("train_aug", a.expect_train), ("val", a.expect_val)) if v}
            counts = layout_semantic(a.voc_tar, a.sbd_tgz, a.out, a.sparse, expect)
            print(f"voc layout: {counts} -> {a.out}")
        else:
            spec = load_sources(a.sources) if a.sources else {}
            counts = convert(a.scribblesup, a.points, a.out, int(spec.get("scribble_width", 3)),
                             int(spec.get("point_radius", 0)))
            print(f"voc convert: {counts} -> {a.out}")
    except (VocLabelError, OSError) as exc:
        print(f"apro.semantic.voc: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
