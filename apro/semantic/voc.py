"""Pascal VOC 2012 point and scribble labels of the paper setting.

    python -m apro.semantic.voc fetch {scribblesup|points} --sources experiments/semantic/voc_sources.yaml --out FILE
    python -m apro.semantic.voc convert --scribblesup ZIP --points JSON --sources YAML --out DIR

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
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import sys
import tempfile
import urllib.request
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

IGNORE_INDEX = 255
VOC_CLASSES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
               "tvmonitor")
# ScribbleSup tags that differ from the VOC class names
_ALIASES = {"bkg": "background", "bg": "background", "dining table": "diningtable", "potted plant": "pottedplant",
            "tv/monitor": "tvmonitor", "tv": "tvmonitor", "motorcycle": "motorbike", "airplane": "aeroplane"}


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


def sha256_of(path: os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch(source: str, sources_file: os.PathLike, out: os.PathLike) -> str:
    """Downloads ``source`` to ``out`` (atomically) once its sha256 matches the recorded one."""
    spec = load_sources(sources_file)["sources"].get(source)
    if spec is None:
        raise VocLabelError(f"{sources_file}: no source {source!r} (expected scribblesup or points)")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".partial")
    os.close(fd)
    try:
        with urllib.request.urlopen(spec["url"], timeout=120) as r, open(tmp, "wb") as f:
            shutil.copyfileobj(r, f)
        got = sha256_of(tmp)
        want = spec.get("sha256")
        if not want:
            raise VocLabelError(f"{sources_file}: sources.{source}.sha256 is not set; the download of {spec['url']} "
                                f"has sha256 {got}: check the file and record its checksum there")
        if got != want:
            raise VocLabelError(f"{spec['url']}: sha256 {got} does not match sources.{source}.sha256 {want} "
                                f"in {sources_file}")
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return str(out)


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
    a = p.parse_args(argv)
    try:
        if a.cmd == "fetch":
            print(f"voc fetch: {fetch(a.source, a.sources, a.out)}")
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
