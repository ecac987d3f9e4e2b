"""Offline tests of the paper suite's data, weights, report status and dry runs (tiny stand-ins)."""
import hashlib
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
PAPER = ["solov2_r50_voc", "solov2_r101_voc", "solov2_r50_coco", "solov2_r101_coco", "mask2former_r50_voc",
         "mask2former_r101_voc", "mask2former_swinl_voc", "mask2former_r50_coco", "mask2former_r101_coco",
         "mask2former_swinl_coco", "mask2former_swint_coco", "mask2former_swint_voc"]


def _png(path, arr):
    from PIL import Image

    im = Image.fromarray(arr.astype(np.uint8), mode="P")
    im.putpalette([v for i in range(256) for v in (i, 255 - i, (7 * i) % 256)])
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path)


def _jpg(path, h, w):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((h, w, 3), 100, np.uint8)).save(path)


@pytest.fixture
def voc_sbd(tmp_path):
    """VOC2012: seg train {a, b}, val {c}; SBD train {a, d}, val {c} (c is held out of train)."""
    voc, sbd = tmp_path / "VOC2012", tmp_path / "sbd"
    (voc / "ImageSets" / "Segmentation").mkdir(parents=True)
    (voc / "ImageSets" / "Segmentation" / "train.txt").write_text("a\nb\n")
    (voc / "ImageSets" / "Segmentation" / "val.txt").write_text("c\n")
    sbd.mkdir()
    (sbd / "train.txt").write_text("a\nd\n")
    (sbd / "val.txt").write_text("c\n")
    for name in "abcd":
        _jpg(voc / "JPEGImages" / f"{name}.jpg", 20, 30)
    # VOC PNGs of b and c: two instances; instance 2 has a void border (255)
    obj = np.zeros((20, 30)); cls = np.zeros((20, 30))
    obj[2:6, 3:10] = 1; cls[2:6, 3:10] = 15          # person
    obj[10:18, 12:28] = 2; cls[10:18, 12:28] = 7     # car
    obj[9, 12:28] = 255; cls[9, 12:28] = 255
    for name in "bc":
        _png(voc / "SegmentationObject" / f"{name}.png", obj)
        _png(voc / "SegmentationClass" / f"{name}.png", cls)
    # SBD .mat of a and d: one dog instance each
    from scipy.io import savemat

    seg = np.zeros((20, 30), np.uint8); seg[5:15, 5:25] = 1
    (sbd / "inst").mkdir()
    for name in "ad":
        savemat(str(sbd / "inst" / f"{name}.mat"),
                {"GTinst": {"Segmentation": seg, "Categories": np.array([[12]], np.uint8),
                            "Boundaries": np.zeros((1, 1), object)}})
    return voc, sbd


def test_voc_converter(voc_sbd, tmp_path):
    from apro.data.coco_io import load_coco_annotations
    from apro.data.voc import convert

    voc, sbd = voc_sbd
    out = tmp_path / "data" / "voc"
    summary = convert(voc, sbd, out, expect={"train": 3, "val": 1}, progress=0)
    assert summary == {"train": {"images": 3, "instances": 4}, "val": {"images": 1, "instances": 2}}
    train = json.loads((out / "annotations" / "instances_train.json").read_text())
    names = {im["id"]: im["file_name"] for im in train["images"]}
    assert sorted(names.values()) == ["a.jpg", "b.jpg", "d.jpg"]
    by_image = {}
    for a in train["annotations"]:
        by_image.setdefault(names[a["image_id"]], []).append(a)
    assert [(a["category_id"], a["bbox"], a["area"]) for a in by_image["a.jpg"]] == [(12, [5, 5, 20, 10], 200)]
    b = sorted(by_image["b.jpg"], key=lambda a: a["category_id"])
    assert [(a["category_id"], a["bbox"], a["area"]) for a in b] == [(7, [12, 10, 16, 8], 128), (15, [3, 2, 7, 4], 28)]
    assert len(train["categories"]) == 20 and train["categories"][14]["name"] == "person"
    assert (out / "train" / "d.jpg").is_file() and (out / "val" / "c.jpg").is_file()
    load_coco_annotations(out / "annotations" / "instances_val.json")  # the project's own validator


def test_voc_converter_errors(voc_sbd, tmp_path):
    from apro.data.voc import VOCError, convert

    voc, sbd = voc_sbd
    with pytest.raises(VOCError, match="expected 10582"):
        convert(voc, sbd, tmp_path / "o1", progress=0)
    (voc / "SegmentationClass" / "c.png").unlink()
    with pytest.raises(VOCError, match="SegmentationClass.*c.png"):
        convert(voc, sbd, tmp_path / "o2", expect={}, progress=0)


def test_fetch_checks_checksum(tmp_path):
    from apro.weights import FetchError, fetch

    src = tmp_path / "src.bin"
    src.write_bytes(b"weights stand-in")
    sha = hashlib.sha256(b"weights stand-in").hexdigest()
    out = tmp_path / "weights" / "w.pth"
    assert fetch(src.as_uri(), out, sha[:8]) == sha and out.read_bytes() == b"weights stand-in"
    # a published prefix (torch.hub's names): checked, and the full digest recorded and enforced after
    assert (out.parent / "w.pth.sha256").read_text().split()[0] == sha
    out.write_bytes(b"weights stand-ix")  # another file whose digest may share the prefix: the record catches it
    with pytest.raises(FetchError, match="corrupt"):
        fetch(src.as_uri(), out, hashlib.sha256(b"weights stand-ix").hexdigest()[:8])
    bad = tmp_path / "bad.pth"
    with pytest.raises(FetchError, match="expected 00000000"):
        fetch(src.as_uri(), bad, "00000000")
    assert not bad.exists() and not list(tmp_path.glob(".bad.pth.*"))  # nothing half-written
    with pytest.raises(FetchError, match=f"place it at {tmp_path / 'x.pth'}"):
        fetch((tmp_path / "missing").as_uri(), tmp_path / "x.pth", sha)
    # no published checksum: recorded on first fetch, enforced afterwards
    u = tmp_path / "u.pth"
    fetch(src.as_uri(), u, None)
    assert (tmp_path / "u.pth.sha256").read_text().split()[0] == sha
    u.write_bytes(b"tampered")
    with pytest.raises(FetchError, match="corrupt"):
        fetch(src.as_uri(), u, None)


def test_weights_named_by_configs_are_known():
    from apro import weights

    # the files the release's configs name (experiments/paper/original_recipes.yaml gives the lines)
    want = {"solov2_r50_voc": "resnet50-11ad3fa6.pth", "solov2_r101_coco": "resnet101-b641f3a9.pth",
            "mask2former_r50_coco": "resnet50-11ad3fa6.pth", "mask2former_r101_voc": "resnet101-b641f3a9.pth",
            "mask2former_swint_coco": "swin_tiny_patch4_window7_224.pth",
            "mask2former_swinl_voc": "swin_large_patch4_window12_384_22k.pth"}
    for name in PAPER:
        files = weights.weights_in_config(ROOT / "experiments" / "paper" / f"{name}.py")
        assert len(files) >= 1 and all(f.split("/", 1)[1] in weights.WEIGHTS for f in files), name
        if name in want:
            assert files[-1] == f"weights/{want[name]}" or f"weights/{want[name]}" in files
    for spec in weights.WEIGHTS.values():
        assert spec["url"].startswith("https://")


def test_prepare_coco_layout_and_counts(tmp_path):
    from apro.data.coco_download import DataError, prepare_coco

    dl = tmp_path / "downloads"
    dl.mkdir()
    ann = {"train": ([1, 2], 3), "val": ([1], 1)}
    for split, (ids, n_ann) in ann.items():
        with zipfile.ZipFile(dl / f"{split}2017.zip", "w") as z:
            for i in ids:
                z.writestr(f"{split}2017/{i:012d}.jpg", b"jpg")
    with zipfile.ZipFile(dl / "annotations_trainval2017.zip", "w") as z:
        for split, (ids, n_ann) in ann.items():
            z.writestr(f"annotations/instances_{split}2017.json", json.dumps(
                {"images": [{"id": i} for i in ids], "annotations": [{"id": k} for k in range(n_ann)]}))
    expect = {"train": {"images": 2, "instances": 3}, "val": {"images": 1, "instances": 1}}
    out = tmp_path / "data" / "coco"
    assert prepare_coco(dl, out, expect) == expect
    assert sorted(p.name for p in out.iterdir()) == ["annotations", "train", "val"]
    assert (out / "annotations" / "instances_val.json").is_file() and len(list((out / "train").iterdir())) == 2
    with pytest.raises(DataError, match="expected 5000"):
        prepare_coco(dl, tmp_path / "c2", {**expect, "val": {"images": 5000, "instances": 1}})
    assert not (tmp_path / "c2").exists()
    (dl / "val2017.zip").unlink()
    with pytest.raises(DataError, match="val2017.zip: missing; download http://images.cocodataset.org"):
        prepare_coco(dl, tmp_path / "c3", expect)


def test_paper_report_statuses(tmp_path):
    from apro import registry as reg
    from apro.report import collect, write_report

    r = reg.load_registry()
    out = tmp_path / reg.metrics_file("paper", "solov2_r50_voc", 0)
    out.parent.mkdir(parents=True)
    out.write_text(json.dumps({"AP": 37.4, "AP50": 65.0, "AP75": 40.0, "seed": 0}))
    record = tmp_path / reg.run_record(reg.work_dir("paper", "mask2former_r50_coco", 0))  # a training that failed
    record.parent.mkdir(parents=True)
    record.write_text(json.dumps({"status": "failed", "error": "RunError: out of memory"}))
    rows = {row["experiment"]: row for row in collect(r, "paper", tmp_path)}
    assert rows["solov2_r50_voc"]["status"] == "done" and rows["solov2_r50_voc"]["paper_AP"] == 38.4
    assert rows["solov2_r50_voc"]["AP"] == 37.4
    assert rows["mask2former_r50_coco"]["status"] == "failed"
    assert rows["solov2_r101_coco"]["status"] == "not run"
    paths = write_report(r, "paper", tmp_path, tmp_path / "reports" / "paper")
    md = paths["md"].read_text()
    assert "failed" in md and "38.4" in md and "37.4" in md


@pytest.mark.parametrize("profile", [None, "slurm"])
def test_paper_dry_run_plans_every_job(tmp_path, profile):
    if profile == "slurm":
        pytest.importorskip("snakemake_executor_plugin_slurm")
    cmd = [sys.executable, "-m", "snakemake", "-n", "-p", "--directory", str(tmp_path),
           "--config", "suite=paper", "experiments=" + ",".join(PAPER)]
    cmd += ["--profile", str(ROOT / "workflow" / "profiles" / "slurm")] if profile else ["--cores", "2"]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    text = out.stdout + out.stderr
    for name in PAPER:
        assert f"results/paper/{name}/seed0/train/done.json" in text and f"results/paper/{name}/seed0/metrics.json" in text
    counts = {ln.split()[0]: int(ln.split()[1]) for ln in text.splitlines()
              if len(ln.split()) == 2 and ln.split()[1].isdigit()}
    assert counts["train"] == len(PAPER) and counts["evaluate"] == len(PAPER)
    # torchrun gets each entry's GPU count (the release's: SOLOv2 VOC 4, COCO 8; Mask2Former 4), devices of its
    # own from the machine's pool, one thread a process; its evaluation takes one GPU
    for name, gpus in (("solov2_r50_voc", 4), ("solov2_r101_coco", 8), ("mask2former_swinl_coco", 4)):
        assert re.search(rf"apro with-gpus {gpus} -- \S+ -m torch.distributed.run --standalone --nproc_per_node={gpus}"
                         rf" -m apro train {name} --suite paper --seed 0 --threads 1 ", text), name
        assert re.search(rf"apro with-gpus 1 -- \S+apro evaluate {name} --suite paper --seed 0 --threads \d+ ", text), name
    # resnet50-11ad3fa6, resnet101-b641f3a9 (the release's two ImageNet files) and the two Swin releases
    assert counts["fetch_weights"] == 4 and counts["prepare_voc"] == 1 and counts["prepare_coco"] == 1


def test_paper_table_shows_the_released_checkpoints(tmp_path):
    """The paper table's released columns: done where the released suite evaluated the checkpoint, failed
    where its conversion left a log and no checkpoint, not run elsewhere (and absent for the Swin-T rows)."""
    from apro import registry as reg
    from apro.report import collect, write_report

    r = reg.load_registry()
    out = tmp_path / reg.metrics_file("released", "mask2former_r50_voc", 0)
    out.parent.mkdir(parents=True)
    out.write_text(json.dumps({"AP": 42.1, "AP50": 70.2, "AP75": 44.0, "seed": 0}))
    record = tmp_path / reg.run_record(reg.converted_checkpoint("released", "solov2_r50_coco"))  # a failed conversion
    record.parent.mkdir(parents=True)
    record.write_text(json.dumps({"status": "failed", "error": "CheckpointError: shapes differ"}))
    rows = {row["experiment"]: row for row in collect(r, "paper", tmp_path)}
    assert rows["mask2former_r50_voc"]["released_status"] == "done"
    assert rows["mask2former_r50_voc"]["released_AP"] == 42.1 and rows["mask2former_r50_voc"]["AP"] is None
    assert rows["solov2_r50_coco"]["released_status"] == "failed"
    assert rows["solov2_r101_voc"]["released_status"] == "not run"
    assert rows["mask2former_swint_coco"]["released_status"] is None  # not in the model zoo
    md = write_report(r, "paper", tmp_path, tmp_path / "reports" / "paper")["md"].read_text()
    assert "released AP" in md
    line = next(ln for ln in md.splitlines() if ln.startswith("| mask2former_r50_voc "))
    assert "42.1" in line and "42.3" in line  # released beside the paper's
    # the released suite's own page: its rows are the released checkpoints
    own = {row["experiment"]: row for row in collect(r, "released", tmp_path)}
    assert own["mask2former_r50_voc"]["status"] == "done" and own["solov2_r50_coco"]["status"] == "failed"


def test_released_dry_run_fetches_converts_and_evaluates_each_entry(tmp_path):
    cmd = [sys.executable, "-m", "snakemake", "-n", "-p", "--directory", str(tmp_path), "--cores", "2",
           "--config", "suite=released"]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    text = out.stdout + out.stderr
    counts = {ln.split()[0]: int(ln.split()[1]) for ln in text.splitlines()
              if len(ln.split()) == 2 and ln.split()[1].isdigit()}
    assert counts["fetch_weights"] == 10 and counts["convert_released"] == 10 and counts["evaluate"] == 10
    assert "train" not in counts  # nothing is trained
    assert re.search(r"convert-checkpoint \S*experiments/paper/solov2_r50_voc\.py "
                     r"weights/released/solov2_voc_r50_36epoch\.pth --out results/released/solov2_r50_voc/"
                     r"checkpoint\.pth", text)
    assert "apro evaluate mask2former_swinl_coco --suite released --seed 0 " in text


def test_released_checkpoints_are_fetched_and_their_sha256_recorded(tmp_path, monkeypatch):
    """No checksum is published: the first download records it, a changed file fails after."""
    from apro import cli, weights
    from apro.weights import FetchError

    assert all(weights.WEIGHTS[e.released]["url"].startswith("https://huggingface.co/CircleRadon/APro/resolve/main/")
               and weights.WEIGHTS[e.released]["sha256"] is None
               for e in __import__("apro.registry").registry.load_registry().experiments_in("released"))
    src = tmp_path / "release.pth"
    src.write_bytes(b"a released checkpoint")
    name = "released/solov2_voc_r50_36epoch.pth"
    monkeypatch.setitem(weights.WEIGHTS, name, {"url": src.as_uri(), "sha256": None})
    out = tmp_path / "weights" / name
    assert cli.main(["fetch", name, "--out", str(out)]) == 0
    assert (out.parent / (out.name + ".sha256")).read_text().split()[0] == hashlib.sha256(src.read_bytes()).hexdigest()
    src.write_bytes(b"another file")
    out.unlink()
    with pytest.raises(FetchError, match="corrupt"):
        weights.fetch(src.as_uri(), out, None)
    monkeypatch.setitem(weights.WEIGHTS, name, {"url": "http://127.0.0.1:9/none.pth", "sha256": None})
    assert cli.main(["fetch", name, "--out", str(tmp_path / "x.pth")]) == 1  # no network: a failed run, a clear error
