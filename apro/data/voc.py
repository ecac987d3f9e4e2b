"""Pascal VOC 2012 + SBD: the augmented instance set in COCO json, and the semantic paper setting.

    apro prepare-voc --voc VOCdevkit/VOC2012 --sbd benchmark_RELEASE/dataset --out data/voc
    apro fetch {scribblesup|points} --sources experiments/semantic/voc_sources.yaml --out FILE
    apro convert-voc-labels --scribblesup ZIP --points JSON --sources YAML --out DIR
    apro prepare-voc-semantic --voc-tar TAR --sbd-tgz TGZ --sparse DIR --out data/voc_aug

Splits, for both (the usual "VOC aug" set, :data:`EXPECTED`: 10,582 / 1,449
images; :func:`augmented_split`): train (``train_aug``) = (SBD train + SBD val
+ VOC seg train) - VOC seg val, val = VOC seg val. Classes: :data:`VOC_CLASSES`
(0 background, 1..20 in the usual VOC order).

Instances (:func:`convert`): from SBD ``inst/<id>.mat`` (``GTinst.Segmentation``
instance ids, ``GTinst.Categories`` class 1..20) where SBD has the image, else
from VOC's ``SegmentationObject`` PNG (palette index = instance id, 255 = void)
with the class taken from ``SegmentationClass`` (the majority class under the
instance). Writes ``<out>/{train,val}/<id>.jpg`` (hard links where possible)
and ``<out>/annotations/instances_{train,val}.json`` (RLE masks), each
atomically, and checks the image counts (``expect``).

Point and scribble labels (:func:`fetch_label_source`,
:func:`convert_sparse_labels`): ``fetch_label_source`` downloads one source of
``voc_sources.yaml`` (or copies it, for a ``file://`` URL) and checks its
sha256; a source whose checksum is not recorded, or a download with another
checksum, fails naming it (and prints the computed checksum).
``convert_sparse_labels`` writes ``DIR/scribble/<stem>.png`` and
``DIR/point/<stem>.png``: the VOC class index on the annotated pixels, 255
elsewhere. Scribbles are the ScribbleSup polylines rasterised
``scribble_width`` pixels wide; points are single pixels (or squares of
``point_radius``). Image sizes come from the XML (scribbles) and from the
scribble file of the same image (points; images without one are skipped and
counted).

The semantic layout (:func:`layout_semantic`) reads the VOC 2012 trainval tar
and the SBD tgz as downloaded (no unpacking) and writes the training layout of
the paper configs (experiments/semantic/paper_voc_*.py) into ``DIR``:
``JPEGImages/`` (VOC 2012's), ``SegmentationClassAug/`` (SBD's ``cls/*.mat``
as PNG class ids, overwritten by VOC 2012's own ``SegmentationClass`` where it
has one; 255 = void), ``ImageSets/Segmentation/{train_aug,val}.txt`` and
``train_aug_{point,scribble}.txt`` (the train_aug ids with a sparse label),
``labels/train/{point,scribble}/`` (``convert_sparse_labels``' PNGs of the
train_aug ids), and the folders ``apro train`` reads for a semantic config
(``--data-root DIR --label-root DIR/labels``): ``train`` and ``val`` (links to
``JPEGImages``) and ``labels/{train,val}/full`` (links to
``SegmentationClassAug``). Written into a hidden sibling folder, renamed into
place when complete.
"""
from __future__ import annotations

import io
import json
import os
import re
import shutil
import tarfile
import tempfile
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from apro.data.sparse_labels import IGNORE_INDEX
from apro.errors import InputError
from apro.io import atomic_folder, write_json_atomic, write_png, write_text_atomic

#: class index -> name: 0 background, 1..20 the VOC object classes
VOC_CLASSES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
               "tvmonitor")
#: the 20 object classes (COCO category ids 1..20 of the instance set)
CLASSES = VOC_CLASSES[1:]
#: image counts of the augmented set (train = train_aug)
EXPECTED = {"train": 10582, "val": 1449}
#: where the public point / scribble label sources are listed (URL, sha256, rasterisation settings)
SOURCES_FILE = Path(__file__).resolve().parents[2] / "experiments" / "semantic" / "voc_sources.yaml"
#: the same counts under the semantic layout's split names
LAYOUT_EXPECTED = {"train_aug": EXPECTED["train"], "val": EXPECTED["val"]}
SPARSE_KINDS = ("point", "scribble")
# ScribbleSup tags that differ from the VOC class names
_ALIASES = {"bkg": "background", "bg": "background", "dining table": "diningtable", "potted plant": "pottedplant",
            "tv/monitor": "tvmonitor", "tv": "tvmonitor", "motorcycle": "motorbike", "airplane": "aeroplane",
            # the short names TEL's loader maps the scribble tags with (TreeEnergyLoss
            # lib/datasets/loader/voc2012_loader.py, semseg_class_names)
            "plane": "aeroplane", "bike": "bicycle", "table": "diningtable", "plant": "pottedplant",
            "monitor": "tvmonitor"}
_VOC_MEMBER = re.compile(r"(?:^|/)VOC2012/(JPEGImages|SegmentationClass|ImageSets/Segmentation)/([^/]+)$")
_SBD_MEMBER = re.compile(r"(?:^|/)dataset/(?:cls/([^/]+)\.mat|(train|val)\.txt)$")


class VOCError(InputError):
    """Missing or malformed VOC / SBD / label-source input: names the file and what was expected."""


# ---------------------------------------------------------------- shared: splits, masks, sizes

def augmented_split(voc_train: Sequence[str], voc_val: Sequence[str], sbd_train: Sequence[str],
                    sbd_val: Sequence[str]) -> Dict[str, List[str]]:
    """The augmented split (as TEL's VOC2012Loader): ``train`` = (SBD train + SBD val + VOC train) - VOC val,
    ``val`` = VOC val; sorted ids."""
    val = sorted(set(voc_val))
    train = sorted(set(list(sbd_train) + list(sbd_val) + list(voc_train)) - set(val))
    return {"train": train, "val": val}


def _parse_ids(text: str) -> List[str]:
    return [ln.strip() for ln in text.splitlines() if ln.strip()]


def _ids(path: Path) -> List[str]:
    if not path.is_file():
        raise VOCError(f"{path}: split list not found (expected one image id per line)")
    return _parse_ids(path.read_text())


def _palette_png(src: Union[Path, bytes], where: str) -> np.ndarray:
    """The index array of a palette (mode P) PNG as VOC ships them: a file, or the bytes of one."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(src) if isinstance(src, bytes) else src) as im:
            mode, lab = im.mode, np.array(im)
    except OSError as exc:
        raise VOCError(f"{where}: not a readable PNG ({exc})") from None
    if mode != "P":
        raise VOCError(f"{where}: expected a palette (mode P) PNG as VOC ships, got mode {mode}")
    return lab


def _size(path: Path) -> Tuple[int, int]:
    """(height, width) of an image file (reads the header only)."""
    from PIL import Image

    with Image.open(path) as im:
        return im.size[1], im.size[0]


# ---------------------------------------------------------------- the instance set (COCO json)

def splits(voc: Path, sbd: Path) -> Dict[str, List[str]]:
    return augmented_split(_ids(voc / "ImageSets" / "Segmentation" / "train.txt"),
                           _ids(voc / "ImageSets" / "Segmentation" / "val.txt"),
                           _ids(sbd / "train.txt"), _ids(sbd / "val.txt"))


def _read_png(path: Path) -> np.ndarray:
    if not path.is_file():
        raise VOCError(f"{path}: annotation PNG not found")
    return _palette_png(path, str(path))


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


def _place(src: Path, dst: Path) -> None:
    if dst.exists():
        return
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def convert(voc: os.PathLike, sbd: os.PathLike, out: os.PathLike,
            expect: Optional[Dict[str, int]] = None, progress: int = 1000) -> Dict[str, dict]:
    """VOC 2012 + SBD folders -> the instance set in COCO json (module doc); returns the counts per split."""
    from apro.data.coco_io import mask_annotation

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
            h, w = _size(jpg)
            image_id = n
            images.append({"id": image_id, "file_name": f"{name}.jpg", "width": w, "height": h})
            for cls, mask in insts:
                if mask.shape != (h, w):
                    raise VOCError(f"{name}: mask {mask.shape} does not match image {(h, w)}")
                if not 1 <= cls <= len(CLASSES):
                    raise VOCError(f"{name}: class id {cls} out of 1..{len(CLASSES)}")
                anns.append(mask_annotation(mask, len(anns) + 1, image_id, cls))
            _place(jpg, out / split / f"{name}.jpg")
            if progress and n % progress == 0:
                print(f"voc {split}: {n}/{len(ids)} images", flush=True)
        data = {"images": images, "annotations": anns,
                "categories": [{"id": i + 1, "name": c} for i, c in enumerate(CLASSES)]}
        write_json_atomic(out / "annotations" / f"instances_{split}.json", data)
        summary[split] = {"images": len(images), "instances": len(anns)}
        print(f"voc {split}: {len(images)} images, {len(anns)} instances", flush=True)
    return summary


# ---------------------------------------------------------------- point and scribble labels

def load_sources(path: os.PathLike) -> dict:
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        sources = data["sources"]
        for name in ("scribblesup", "points"):
            sources[name]["url"]
    except (OSError, TypeError, KeyError, yaml.YAMLError) as exc:
        raise VOCError(f"{path}: expected a YAML file with sources.scribblesup.url and sources.points.url "
                       f"(and their sha256); {type(exc).__name__}: {exc}") from None
    return data


def fetch_label_source(source: str, sources_file: os.PathLike, out: os.PathLike) -> str:
    """Downloads ``source`` to ``out`` (atomically, :func:`apro.downloads.fetch`) once its sha256 matches
    the recorded one; a source without a recorded sha256 is downloaded aside only to report its checksum."""
    from apro.downloads import FetchError
    from apro.downloads import fetch as download

    spec = load_sources(sources_file)["sources"].get(source)
    if spec is None:
        raise VOCError(f"{sources_file}: no source {source!r} (expected scribblesup or points)")
    want = spec.get("sha256")
    try:
        if want:
            download(spec["url"], out, want, what=f"label source {source}")
            return str(out)
        with tempfile.TemporaryDirectory() as tmp:  # nothing is kept without a recorded checksum
            got = download(spec["url"], Path(tmp) / source, None, what=f"label source {source}")
    except FetchError as exc:
        raise VOCError(f"{sources_file}: sources.{source} ({spec['url']}): {exc}") from None
    raise VOCError(f"{sources_file}: sources.{source}.sha256 is not set; the download of {spec['url']} "
                   f"has sha256 {got}: check the file and record its checksum there")


def class_index(tag: str, where: str) -> int:
    name = _ALIASES.get(tag.strip().lower(), tag.strip().lower())
    if name not in VOC_CLASSES:
        raise VOCError(f"{where}: unknown class {tag!r}; expected one of {', '.join(VOC_CLASSES)}")
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
        raise VOCError(f"{where}: expected a ScribbleSup XML file (filename, size/width+height, polygon/tag "
                       f"and polygon/point/X+Y); {type(exc).__name__}: {exc}") from None
    out = np.full((h, w), IGNORE_INDEX, np.uint8)
    for tag, pts in polygons:
        c = class_index(tag or "", where)
        pts = [(min(max(x, 0), w - 1), min(max(y, 0), h - 1)) for x, y in pts]
        for a, b in zip(pts, pts[1:] if len(pts) > 1 else pts):
            _line(out, a, b, c, width)
    return stem, out


def convert_sparse_labels(scribblesup: os.PathLike, points: os.PathLike, out_dir: os.PathLike,
                          scribble_width: int = 3, point_radius: int = 0) -> Dict[str, int]:
    """Writes ``out_dir/{scribble,point}/<stem>.png`` (atomically: a hidden folder renamed at the end)."""
    out = Path(out_dir).resolve()
    sizes: Dict[str, Tuple[int, int]] = {}
    counts = {"scribble": 0, "point": 0, "point_skipped": 0}
    with atomic_folder(out, overwrite=True) as tmp:
        (tmp / "scribble").mkdir()
        (tmp / "point").mkdir()
        try:
            zf = zipfile.ZipFile(scribblesup)
        except (OSError, zipfile.BadZipFile) as exc:
            raise VOCError(f"{scribblesup}: expected the ScribbleSup zip of XML files ({exc})") from None
        with zf:
            for name in sorted(n for n in zf.namelist() if n.lower().endswith(".xml")):
                stem, lab = scribble_png(zf.read(name).decode("utf-8", "replace"), f"{scribblesup}:{name}",
                                         scribble_width)
                sizes[stem] = lab.shape
                write_png(tmp / "scribble" / f"{stem}.png", lab)
                counts["scribble"] += 1
        try:
            clicks = json.loads(Path(points).read_text(encoding="utf-8"))
            if not isinstance(clicks, dict):
                raise ValueError("top level is not an object")
        except (OSError, ValueError) as exc:
            raise VOCError(f"{points}: expected a JSON object {{image stem: [{{cls, x, y}}, ...]}} ({exc})") \
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
                    raise VOCError(f"{points}: {stem}[{k}]: expected an object with cls, x, y") from None
                if not 0 <= cls < len(VOC_CLASSES):
                    raise VOCError(f"{points}: {stem}[{k}]: cls {cls} outside 0..{len(VOC_CLASSES) - 1}")
                if 0 <= y < lab.shape[0] and 0 <= x < lab.shape[1]:
                    r = point_radius
                    lab[max(0, y - r):y + r + 1, max(0, x - r):x + r + 1] = cls
            write_png(tmp / "point" / f"{stem}.png", lab)
            counts["point"] += 1
        write_json_atomic(tmp / "labels.json", {"scribblesup": str(scribblesup), "points": str(points),
                                                "scribble_width": scribble_width, "point_radius": point_radius,
                                                "ignore_index": IGNORE_INDEX, "classes": list(VOC_CLASSES), **counts})
    return counts


# ---------------------------------------------------------------- the semantic layout of VOC 2012 + SBD

def _open_tar(path: os.PathLike, what: str) -> tarfile.TarFile:
    if not Path(path).is_file():
        raise VOCError(f"{path}: not found (expected {what})")
    try:
        return tarfile.open(path, mode="r|*")  # one pass, no seeking (the tgz is read once)
    except (OSError, tarfile.TarError) as exc:
        raise VOCError(f"{path}: not a (compressed) tar archive; expected {what} ({exc})") from None


def _ids_of(data: bytes) -> List[str]:
    return _parse_ids(data.decode("utf-8", "replace"))


def _check_classes(lab: np.ndarray, where: str) -> np.ndarray:
    bad = sorted(set(np.unique(lab).tolist()) - set(range(len(VOC_CLASSES))) - {IGNORE_INDEX})
    if bad:
        raise VOCError(f"{where}: class ids {bad[:5]} outside 0..{len(VOC_CLASSES) - 1} and {IGNORE_INDEX}")
    return lab.astype(np.uint8)


def _sbd_mask(data: bytes, where: str) -> np.ndarray:
    from scipy.io import loadmat

    try:
        seg = np.asarray(loadmat(io.BytesIO(data), squeeze_me=True, struct_as_record=False)["GTcls"].Segmentation)
        if seg.ndim != 2:
            raise ValueError(f"GTcls.Segmentation has shape {seg.shape}")
    except Exception as exc:  # noqa: BLE001 (scipy raises many kinds for a bad file)
        raise VOCError(f"{where}: expected an SBD cls .mat file with GTcls.Segmentation (an HxW array of "
                       f"class ids); {type(exc).__name__}: {exc}") from None
    return _check_classes(seg, where)


def _voc_mask(data: bytes, where: str) -> np.ndarray:
    return _check_classes(_palette_png(data, where), where)


def _first(items, n: int = 3) -> str:
    items = sorted(items)
    return ", ".join(items[:n]) + (f" (and {len(items) - n} more)" if len(items) > n else "")


def layout_semantic(voc_tar: os.PathLike, sbd_tgz: os.PathLike, out_dir: os.PathLike,
                    sparse_dir: Optional[os.PathLike] = None,
                    expect: Optional[Dict[str, int]] = None) -> Dict[str, int]:
    """VOC 2012 tar + SBD tgz (+ the sparse labels of :func:`convert_sparse_labels`) -> the semantic layout
    (module doc).

    ``expect``: ``{"train_aug": n, "val": m}`` image counts to check (:data:`LAYOUT_EXPECTED` for the
    real archives; None checks none). Returns the counts (also written to ``out_dir/layout.json``).
    """
    out = Path(out_dir).resolve()
    with atomic_folder(out, overwrite=True) as tmp:
        masks, images = tmp / "SegmentationClassAug", tmp / "JPEGImages"
        lists = tmp / "ImageSets" / "Segmentation"
        for d in (masks, images, lists, tmp / "labels" / "train", tmp / "labels" / "val"):
            d.mkdir(parents=True)
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
                    write_png(masks / f"{hit.group(1)}.png", _sbd_mask(data, f"{sbd_tgz}:{m.name}"))
                    sbd_ids.add(hit.group(1))
                else:
                    sbd_lists[hit.group(2)] = _ids_of(data)
        missing = [f"dataset/{s}.txt" for s in ("train", "val") if s not in sbd_lists]
        if missing or not sbd_ids:
            what = ", ".join(missing + ([] if sbd_ids else ["dataset/cls/*.mat"]))
            raise VOCError(f"{sbd_tgz}: no {what} in the archive; expected SBD's benchmark.tgz "
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
                    write_png(masks / name, _voc_mask(tf.extractfile(m).read(), f"{voc_tar}:{m.name}"))
                    voc_masks.add(stem)
                elif folder == "ImageSets/Segmentation" and name in ("train.txt", "val.txt"):
                    voc_lists[stem] = _ids_of(tf.extractfile(m).read())
        missing = [f"VOC2012/ImageSets/Segmentation/{s}.txt" for s in ("train", "val") if s not in voc_lists]
        if missing or not jpegs:
            what = ", ".join(missing + ([] if jpegs else ["VOC2012/JPEGImages/*.jpg"]))
            raise VOCError(f"{voc_tar}: no {what} in the archive; expected the VOC 2012 trainval tar "
                           "(VOCtrainval_11-May-2012.tar: VOCdevkit/VOC2012/...)")
        split = augmented_split(voc_lists["train"], voc_lists["val"], sbd_lists["train"], sbd_lists["val"])
        train, val = split["train"], split["val"]
        for ids, name in ((train, "train_aug"), (val, "val")):
            if expect is not None and name in expect and len(ids) != expect[name]:
                raise VOCError(f"{voc_tar} + {sbd_tgz}: {len(ids)} {name} images, expected {expect[name]} "
                               "(the VOC 2012 trainval tar and SBD's benchmark.tgz); another release?")
        no_jpeg = set(train + val) - jpegs
        if no_jpeg:
            raise VOCError(f"{voc_tar}: {len(no_jpeg)} image(s) of the train_aug / val lists have no "
                           f"VOC2012/JPEGImages/<id>.jpg: {_first(no_jpeg)}")
        no_mask = (set(train) - sbd_ids - voc_masks) | (set(val) - voc_masks)
        if no_mask:
            raise VOCError(f"{voc_tar} + {sbd_tgz}: {len(no_mask)} image(s) have no class mask (VOC 2012 "
                           f"SegmentationClass/<id>.png or, for train_aug, SBD cls/<id>.mat): {_first(no_mask)}")
        sizes = {}
        for stem in train + val:
            sizes[stem] = _size(images / f"{stem}.jpg")
            got = _size(masks / f"{stem}.png")
            if got != sizes[stem]:
                src = f"{voc_tar}:SegmentationClass" if stem in voc_masks else f"{sbd_tgz}:cls"
                raise VOCError(f"{src}/{stem}: mask {got[1]}x{got[0]}, image {sizes[stem][1]}x{sizes[stem][0]}")
        keep = set(train + val)
        for png in masks.iterdir():  # SBD masks outside both splits (none in the real archives)
            if png.stem not in keep:
                png.unlink()
        write_text_atomic(lists / "train_aug.txt", "".join(f"{s}\n" for s in train))
        write_text_atomic(lists / "val.txt", "".join(f"{s}\n" for s in val))
        counts = {"train_aug": len(train), "val": len(val), "jpeg": len(jpegs), "sbd_masks": len(sbd_ids),
                  "voc_masks": len(voc_masks)}
        # the sparse labels of the train_aug images (convert_sparse_labels' output)
        if sparse_dir is not None:
            in_train = set(train)
            for kind in SPARSE_KINDS:
                src = Path(sparse_dir) / kind
                if not src.is_dir():
                    raise VOCError(f"{src}: not found (expected the {kind} PNGs of `apro convert-voc-labels`: "
                                   f"{sparse_dir}/{{point,scribble}}/<id>.png)")
                dst = tmp / "labels" / "train" / kind
                dst.mkdir()
                have = []
                for png in sorted(src.glob("*.png")):
                    if png.stem not in in_train:
                        continue
                    got = _size(png)
                    if got != sizes[png.stem]:
                        raise VOCError(f"{png}: {got[1]}x{got[0]}, but the image {png.stem}.jpg is "
                                       f"{sizes[png.stem][1]}x{sizes[png.stem][0]}")
                    shutil.copyfile(png, dst / png.name)
                    have.append(png.stem)
                if not have:
                    raise VOCError(f"{src}: no {kind} label of a train_aug image (expected <id>.png files "
                                   f"named like {train[0]}.png)")
                write_text_atomic(lists / f"train_aug_{kind}.txt", "".join(f"{s}\n" for s in have))
                counts[kind] = len(have)
                counts[f"{kind}_missing"] = len(train) - len(have)
        # the folders apro train reads: <data-root>/{train,val}, <label-root>/{train,val}/full
        for link, target in (("train", "JPEGImages"), ("val", "JPEGImages"),
                             ("labels/train/full", "../../SegmentationClassAug"),
                             ("labels/val/full", "../../SegmentationClassAug")):
            os.symlink(target, tmp / link, target_is_directory=True)
        write_json_atomic(tmp / "layout.json", {"voc_tar": str(voc_tar), "sbd_tgz": str(sbd_tgz),
                                                "sparse_dir": None if sparse_dir is None else str(sparse_dir),
                                                "ignore_index": IGNORE_INDEX, "classes": list(VOC_CLASSES),
                                                **counts})
    return counts


# ---------------------------------------------------------------- command lines
