"""The semantic suite in the report and the paper-setting VOC rules (offline, with stand-ins)."""
from __future__ import annotations

import csv
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from apro import registry as reg, report
from apro.data import voc

ROOT = Path(__file__).resolve().parents[2]


def _metrics(root, suite, name, miou, seed=0):
    p = root / reg.metrics_file(suite, name, seed)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps({"mIoU": miou, "aAcc": 90.0, "seed": seed, "wall_s": 3.0}))


def test_report_has_miou_rows_and_semantic_gain(tmp_path):
    for name, v in (("sem_point", 30.0), ("sem_point_gp_lp", 36.5), ("sem_scribble", 40.0), ("sem_full", 70.0)):
        _metrics(tmp_path, "demo", name, v)
    paths = report.write_report(reg.load_registry(), "demo", tmp_path)
    with open(paths["csv"], newline="") as f:
        rows = {r["experiment"]: r for r in csv.DictReader(f)}
    assert rows["sem_point"]["mIoU"] == "30.0" and rows["sem_point"]["AP"] == ""
    assert rows["sem_point"]["supervision"] == "point"
    md = paths["md"].read_text()
    assert "paired by seed: **+6.5 (single run) mIoU** (30.0 -> 36.5); dense labels (sem_full): 70.0 (single run)" in md
    assert "scribble labels: not available yet (sem_scribble_gp_lp not run)" in md


def _standins(tmp_path):
    xml = ("<annotation><filename>2007_000032.jpg</filename><size><width>20</width><height>10</height></size>"
           "<polygon><tag>aeroplane</tag><point><X>2</X><Y>2</Y></point><point><X>8</X><Y>2</Y></point></polygon>"
           "<polygon><tag>bkg</tag><point><X>15</X><Y>8</Y></point></polygon></annotation>")
    z = tmp_path / "scribblesup"
    with zipfile.ZipFile(z, "w") as f:
        f.writestr("pascal_2012/2007_000032.xml", xml)
    pts = tmp_path / "points"
    pts.write_text(json.dumps({"2007_000032": [{"cls": 15, "x": 4, "y": 5}], "2007_999999": [{"cls": 1, "x": 0, "y": 0}]}))
    return z, pts


def test_voc_convert_standins(tmp_path):
    z, pts = _standins(tmp_path)
    counts = voc.convert_sparse_labels(z, pts, tmp_path / "out", scribble_width=1)
    assert counts == {"scribble": 1, "point": 1, "point_skipped": 1}
    s = np.array(Image.open(tmp_path / "out" / "scribble" / "2007_000032.png"))
    ref = np.full((10, 20), 255, np.uint8)
    ref[2, 2:9] = 1  # aeroplane = VOC class 1, the stroke from (2, 2) to (8, 2)
    ref[8, 15] = 0   # background click-scribble
    np.testing.assert_array_equal(s, ref)
    p = np.array(Image.open(tmp_path / "out" / "point" / "2007_000032.png"))
    assert p[5, 4] == 15 and (p != 255).sum() == 1
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as f:
        f.writestr("x.xml", "<annotation><filename>a.jpg</filename></annotation>")
    with pytest.raises(voc.VOCError, match="bad.zip:x.xml: expected a ScribbleSup XML"):
        voc.convert_sparse_labels(bad, pts, tmp_path / "out2")


def test_voc_fetch_checks_sha256(tmp_path):
    src = tmp_path / "points.json"
    src.write_text("{}")
    from apro.io import file_sha256

    good = file_sha256(src)
    for sha, ok in ((good, True), ("0" * 64, False), (None, False)):
        sources = tmp_path / "sources.yaml"
        sources.write_text(json.dumps({"sources": {"scribblesup": {"url": "file:///nowhere", "sha256": None},
                                                   "points": {"url": src.as_uri(), "sha256": sha}}}))
        out = tmp_path / "dl" / "points"
        if ok:
            voc.fetch_label_source("points", sources, out)
            assert out.read_text() == "{}"
        else:
            with pytest.raises(voc.VOCError, match="sha256"):
                voc.fetch_label_source("points", sources, tmp_path / "dl2" / "points")
            assert not (tmp_path / "dl2" / "points").exists()


@pytest.mark.workflow
def test_voc_rules_dry_run(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--cores", "1", "-n",
                           "--config", "suite=smoke", "experiments=sem_point", "--", "data/semantic/voc_aug/train"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "voc_fetch" in out and "voc_sparse_labels" in out
