"""apro report's model-zoo metafiles: one per entry, mmdetection's convention, valid against the schema."""
from __future__ import annotations

import copy
import hashlib
import json
import re
from pathlib import Path

import pytest
import yaml

from apro import layout, registry as reg, report, stats
from apro.report import metafiles

HARDWARE = {"cpu": "Intel(R) Xeon(R) Platinum 8480+", "cores": 112, "avx512": True,
            "gpus": ["NVIDIA H100 80GB HBM3"] * 4, "machine": "x86_64"}


def _load(path: Path) -> dict:
    data = yaml.safe_load(path.read_text())
    metafiles.validate(data, str(path))
    return data


def _json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def _run(root: Path, suite: str, name: str, seed: int, ap: float, train_s: float = None) -> str:
    """A finished fake run: its checkpoint, done.json, metrics.json (and the records its training and evaluation
    wrote of themselves, with ``train_s``); returns the checkpoint's sha256."""
    ckpt = root / layout.work_dir(suite, name, seed) / "iter_10.pth"
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    ckpt.write_bytes(f"weights of {name} seed {seed}".encode())
    _json(root / layout.done_file(suite, name, seed), {
        "checkpoint": str(ckpt.relative_to(root)), "config_sha256": "ab" * 32, "wall_s": 3600.0 + seed,
        "hardware": HARDWARE})
    _json(root / layout.metrics_file(suite, name, seed),
          {"AP": ap, "AP50": ap + 27, "AP75": ap + 1, "seed": seed, "config_sha256": "ab" * 32, "wall_s": 60.0})
    if train_s is not None:
        _json(root / layout.run_record(layout.work_dir(suite, name, seed)),
              {"status": "done", "wall_s": train_s, "peak_rss_mb": 20480.0, "cpu_s": train_s})
        _json(root / layout.run_record(layout.metrics_file(suite, name, seed)), {"status": "done", "wall_s": 60.0})
    return hashlib.sha256(ckpt.read_bytes()).hexdigest()


def test_paper_suite_without_results_writes_a_valid_metafile_per_entry(tmp_path):
    registry = reg.load_registry()
    paths = report.write_report(registry, "paper", tmp_path, seeds=[0, 1, 2])
    folder = paths["metafiles"]
    assert folder == tmp_path / layout.metafiles_dir("paper")
    entries = [e.name for e in registry.experiments_in("paper") if e.paper]
    assert len(entries) == 10 and sorted(p.name for p in folder.iterdir()) == sorted(entries)
    for name in entries:
        data = _load(tmp_path / layout.metafile("paper", name))
        model = data["Models"][0]
        assert model["Name"] == name and model["In Collection"] == data["Collections"][0]["Name"]
        assert data["Collections"][0]["Paper"]["URL"] == "https://arxiv.org/abs/2310.10533"
        paper = registry.experiment(name).paper
        assert model["Results"][0]["Metrics"] == {"mask AP": paper["AP"], "mask AP50": paper["AP50"],
                                                  "mask AP75": paper["AP75"]}
        assert set(model["Results"][1]["Metrics"].values()) == {"not run"}
        rep = model["Reproduction"]
        assert rep["Seeds"] == [0, 1, 2] and rep["Verdict"] == "not run" and rep["Verdict Rule"] == stats.VERDICT_RULE
        assert [r["Seed"] for r in rep["Runs"]] == [0, 1, 2]
        assert {r["Status"] for r in rep["Runs"]} == {"not run"}
        assert {r["Checkpoint SHA256"] for r in rep["Runs"]} == {"not run"}
        assert rep["Reproduced"]["mask AP"] == {"n": 0, "mean": "not run", "std": "not run",
                                                "Per Seed": [{"Seed": k, "Value": "not run"} for k in (0, 1, 2)]}
        assert model["Metadata"]["Training Memory (GB)"] == "not run"
        assert model["Weights"].startswith("https://huggingface.co/CircleRadon/APro/")
        assert re.fullmatch(r"[0-9a-f]{40}|unknown", rep["Git Commit"])
        assert rep["Config SHA256"] == hashlib.sha256(
            registry.experiment(name).config_path().read_bytes()).hexdigest()
    text = (tmp_path / layout.metafile("paper", "solov2_r50_voc")).read_text()
    assert text.startswith("# Model-zoo entry solov2_r50_voc of suite paper") and "&id" not in text
    # a suite without paper numbers: an empty folder (the report rule's directory output)
    demo = report.write_report(registry, "demo", tmp_path)["metafiles"]
    assert demo.is_dir() and not list(demo.iterdir())


def test_metafile_holds_the_numbers_of_made_up_results(tmp_path):
    registry = reg.load_registry()
    sha0 = _run(tmp_path, "paper", "solov2_r50_voc", 0, 38.0, train_s=7200.0)
    _run(tmp_path, "paper", "solov2_r50_voc", 1, 38.6)  # no records: no times (done.json's are not read)
    # the release's checkpoint, converted and evaluated by the released suite
    conv = tmp_path / layout.converted_checkpoint("released", "solov2_r50_voc")
    conv.parent.mkdir(parents=True, exist_ok=True)
    conv.write_bytes(b"converted release")
    _json(tmp_path / layout.metrics_file("released", "solov2_r50_voc", 0), {"AP": 38.3, "AP50": 65.1, "AP75": 39.9})
    report.write_report(registry, "paper", tmp_path, seeds=[0, 1, 2])
    model = _load(tmp_path / layout.metafile("paper", "solov2_r50_voc"))["Models"][0]
    rep = model["Reproduction"]
    ap = rep["Reproduced"]["mask AP"]
    assert ap["n"] == 2 and ap["mean"] == pytest.approx(38.3) and ap["std"] == pytest.approx(0.424, abs=1e-3)
    assert ap["Per Seed"] == [{"Seed": 0, "Value": 38.0}, {"Seed": 1, "Value": 38.6}, {"Seed": 2, "Value": "not run"}]
    assert rep["Difference"]["mask AP"] == pytest.approx(-0.1) and rep["Verdict"] == "reproduced"
    assert model["Results"][1]["Metrics"]["mask AP"] == pytest.approx(38.3)
    assert model["Results"][1]["Source"] == "suite paper: mean over 2 of 3 runs (seeds 0, 1, 2)"
    r0, r1, r2 = rep["Runs"]
    assert r0["Status"] == "done" and r0["Metrics"]["mask AP"] == 38.0 and r0["Checkpoint SHA256"] == sha0[:8]
    assert r0["Config SHA256"] == "ab" * 32 and r0["Hardware"] == HARDWARE
    assert r0["Train"] == {"Wall Time (s)": 7200.0, "Peak Memory (MB)": 20480.0, "Source": "train.run.json"}
    assert r0["Evaluate"] == {"Wall Time (s)": 60.0, "Peak Memory (MB)": "not recorded", "Source": "metrics.run.json"}
    assert r1["Train"] == "not recorded" and r1["Evaluate"] == "not recorded"
    assert r2["Status"] == "not run" and r2["Train"] == "not run" and r2["Checkpoint SHA256"] == "not run"
    assert model["Metadata"]["Training Memory (GB)"] == 20.0
    assert model["Metadata"]["Training Resources"] == "4x NVIDIA H100 80GB HBM3"
    released = rep["Released Checkpoint"]
    assert released["Status"] == "done" and released["Metrics"]["mask AP"] == 38.3
    assert released["Checkpoint SHA256"] == hashlib.sha256(b"converted release").hexdigest()[:8]
    # the released suite's own metafile: the converted checkpoint is each run's, nothing was trained
    report.write_report(registry, "released", tmp_path, seeds=[0])
    own = _load(tmp_path / layout.metafile("released", "solov2_r50_voc"))["Models"][0]
    run = own["Reproduction"]["Runs"][0]
    assert run["Checkpoint SHA256"] == released["Checkpoint SHA256"]
    assert run["Train"] == "not trained (released checkpoint)"
    assert own["Reproduction"]["Verdict"] == "single run" and own["Metadata"]["Training Memory (GB)"] == \
        "not trained (released checkpoint)"


def test_a_schema_violation_fails(tmp_path, monkeypatch):
    registry = reg.load_registry()
    rows = report.collect(registry, "paper", tmp_path)
    exp = registry.experiment("solov2_r50_voc")
    good = metafiles.metafile_data(registry, "paper", exp, rows, tmp_path, [0], "unknown")
    metafiles.validate(good)
    for breaks in (lambda d: d["Models"][0]["Results"][1]["Metrics"].update({"mask AP": "n/a"}),
                   lambda d: d["Models"][0]["Reproduction"].pop("Git Commit"),
                   lambda d: d["Models"][0]["Reproduction"]["Runs"][0].update({"Checkpoint SHA256": "xyz"}),
                   lambda d: d.update({"Extra": 1})):
        bad = copy.deepcopy(good)
        breaks(bad)
        with pytest.raises(metafiles.MetafileError, match="does not match the metafile schema"):
            metafiles.validate(bad)
    # on write: nothing is written when the data does not match
    broken = copy.deepcopy(good)
    broken["Models"][0]["Weights"] = "ftp://nowhere"
    monkeypatch.setattr(metafiles, "metafile_data", lambda *a, **k: broken)
    with pytest.raises(report.ReportError, match="Models/0/Weights"):
        report.write_report(registry, "paper", tmp_path)
    assert not (tmp_path / layout.metafile("paper", "solov2_r50_voc")).exists()


def test_stale_metafiles_are_removed(tmp_path):
    registry = reg.load_registry()
    stale = tmp_path / layout.metafile("paper", "gone_entry")
    stale.parent.mkdir(parents=True)
    stale.write_text("Models: []\n")
    report.write_report(registry, "paper", tmp_path)
    assert not stale.parent.exists() and (tmp_path / layout.metafile("paper", "solov2_r50_voc")).is_file()


def test_the_html_report_links_every_metafile(tmp_path):
    out = tmp_path / "reports" / "paper"
    report.write_summary("paper", None, tmp_path, out)
    report.write_html_report("paper", None, tmp_path, out)
    page = (out / "index.html").read_text()
    entries = [e.name for e in metafiles.entries(reg.load_registry(), "paper")]
    assert entries and all(f'href="metafiles/{name}/metafile.yml"' in page for name in entries)
