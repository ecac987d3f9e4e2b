"""apro report: tables and summary pages from whatever results exist."""
from __future__ import annotations

import csv
import json
import os
import re
from pathlib import Path

import pytest

from apro import layout, registry as reg, report, stats
from apro.errors import InputError
from apro.io import write_text_atomic

REQUIRED_COLUMNS = ["experiment", "task", "framework", "backbone", "dataset", "supervision", "variant", "AP", "AP50",
                    "AP75"]


def _metrics(root: Path, suite: str, name: str, ap: float, ap50: float, ap75: float, seed: int = 0) -> None:
    path = root / reg.metrics_file(suite, name, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"AP": ap, "AP50": ap50, "AP75": ap75, "seed": seed, "wall_s": 3.0}))


def _record(root: Path, output: str, seconds: float, rss: float = 512.0, status: str = "done", **extra) -> None:
    """What a step writes of itself beside ``output`` (apro.runs.recorded)."""
    path = root / layout.run_record(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"step": "x", "status": status, "start": "2026-12-07T10:00:00+00:00",
                                "wall_s": seconds, "peak_rss_mb": rss, "cpu_s": seconds * 0.9, **extra}))


def _rows(path: Path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture
def results(tmp_path):
    """Results of three demo experiments (box_lp and box_gp not run) and the records of their steps."""
    _metrics(tmp_path, "demo", "box", 20.0, 45.5, 17.25)
    _metrics(tmp_path, "demo", "box_gp_lp", 23.5, 47.0, 22.0)
    _metrics(tmp_path, "demo", "mask", 30.0, 55.0, 31.0)
    _record(tmp_path, layout.data_dir("synthetic"), 12.0)
    _record(tmp_path, layout.sparse_labels_dir("synthetic_seg"), 7.0)
    for name, s in (("box", 250.0), ("box_gp_lp", 400.0), ("mask", 240.0)):
        _record(tmp_path, layout.work_dir("demo", name, 0), s, rss=1500.0)
        _record(tmp_path, layout.metrics_file("demo", name, 0), 20.0)
    return tmp_path


def test_report_tables_gain_and_wall_times(results):
    paths = report.write_report(reg.load_registry(), "demo", results)
    assert paths["csv"] == results / "reports" / "demo" / "results.csv"
    rows = _rows(paths["csv"])
    assert list(rows[0])[:len(REQUIRED_COLUMNS)] == REQUIRED_COLUMNS
    by_name = {r["experiment"]: r for r in rows}
    assert list(by_name)[:6] == ["stage1", "box", "box_lp", "box_gp", "box_gp_lp", "mask"]
    assert by_name["box"]["AP"] == "20.0" and by_name["box"]["AP75"] == "17.25" and by_name["box"]["status"] == "done"
    assert by_name["box_lp"]["AP"] == "" and by_name["box_lp"]["status"] == "not run"
    assert by_name["box_gp_lp"]["variant"] == "box+gp+lp" and by_name["mask"]["supervision"] == "mask"
    assert by_name["box"]["dataset"] == "synthetic" and by_name["box"]["framework"] == "SOLOv2"
    assert by_name["box"]["seed"] == "0" and len(rows) == len(by_name)  # one run per experiment: seed 0

    md = paths["md"].read_text()
    assert "paired by seed: **+3.5 (single run) mask AP** (20.0 -> 23.5); AP50 +1.5, AP75 +4.8" in md
    assert "fully supervised upper bound (mask): 30.0 (single run) mask AP" in md
    assert "| box | SOLOv2 | ResNet-18 | synthetic | box | box | 1500 iters | 20.0 (single run) | 45.5 | 17.2 |" in md
    assert "| box_lp |" in md and "**not run**" in md
    assert "| train box_gp_lp.seed0 | done | 0:06:40 | 1500 | 0:06:00 | results/demo/box_gp_lp/seed0/train.run.json |" \
        in md  # from the step's own record
    assert "| make_data synthetic | done | 12.0 s |" in md
    assert "| make_sparse_labels synthetic_seg | done | 7.0 s |" in md  # the semantic labels' step
    html = paths["html"].read_text()
    assert html.startswith("<!DOCTYPE html>") and "<b>+3.5 (single run) mask AP</b>" in html and "<table>" in html
    leftovers = [p for p in paths["csv"].parent.iterdir() if p.name.startswith(".")]
    assert not leftovers, leftovers


def test_report_with_no_results_lists_everything_as_not_run(tmp_path):
    paths = report.write_report(reg.load_registry(), "demo", tmp_path)
    rows = _rows(paths["csv"])
    wanted = [e.name for e in reg.load_registry().experiments_in("demo")]
    assert [r["experiment"] for r in rows] == wanted and {r["status"] for r in rows} == {"not run"}
    md = paths["md"].read_text()
    assert "not available yet (box, box_gp_lp not run)" in md
    assert "point labels: not available yet (sem_point, sem_point_gp_lp not run)" in md
    assert "No step has recorded itself yet" in md


def test_report_of_the_paper_suite_shows_the_paper_numbers(tmp_path):
    paths = report.write_report(reg.load_registry(), "paper", tmp_path)
    rows = {r["experiment"]: r for r in _rows(paths["csv"])}
    assert len(rows) == len(reg.load_registry().experiments_in("paper"))
    assert (rows["solov2_r50_voc"]["paper_AP"], rows["solov2_r50_voc"]["paper_AP50"],
            rows["solov2_r50_voc"]["paper_AP75"]) == ("38.4", "65.4", "39.8")
    assert rows["mask2former_swinl_coco"]["paper_AP"] == "41.0"
    assert all(r["AP"] == "" for r in rows.values())
    assert all(r["status"] == ("not run" if r["config"] else "not runnable (no config yet)") for r in rows.values())
    assert "Not available: suite paper has no pair" in paths["md"].read_text()


def test_unreadable_metrics_do_not_break_the_report(results):
    (results / reg.metrics_file("demo", "box", 0)).write_text("{\"AP\": 1")
    paths = report.write_report(reg.load_registry(), "demo", results)
    box = {r["experiment"]: r for r in _rows(paths["csv"])}["box"]
    assert box["status"] == "unreadable metrics" and box["AP"] == ""
    assert "metrics.json" in paths["md"].read_text()


def test_a_step_without_a_record_has_no_time_made_up(tmp_path):
    """Times come only from the steps' own records: done.json's and metrics.json's wall times are not read."""
    _metrics(tmp_path, "smoke", "box", 0.0, 0.0, 0.0)
    done = tmp_path / reg.done_file("smoke", "box", 0)
    done.parent.mkdir(parents=True)
    done.write_text(json.dumps({"checkpoint": "x.pth", "wall_s": 7.5}))
    _record(tmp_path, layout.metrics_file("smoke", "box", 0), 3.0, rss=800.0)
    paths = report.write_report(reg.load_registry(), "smoke", tmp_path, out_dir=tmp_path / "out")
    md = paths["md"].read_text()
    assert "| train box.seed0 |" not in md
    assert "| evaluate box.seed0 | done | 3.0 s | 800 | 2.7 s | results/smoke/box/seed0/metrics.run.json |" in md
    assert paths["csv"].parent == tmp_path / "out"


def test_atomic_write_keeps_the_old_file_when_interrupted(tmp_path, monkeypatch):
    target = tmp_path / "results.csv"
    target.write_text("old\n")

    def boom(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        write_text_atomic(target, "new\n")
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.csv"]


def test_write_summary_for_the_cli(results, monkeypatch):
    """What `apro report` calls: defaults relative to the current folder, one line to print, InputErrors."""
    monkeypatch.chdir(results)
    written = report.write_summary("demo")
    total = len(reg.load_registry().experiments_in("demo"))
    assert written.done == 3 and written.total == total
    assert f"suite demo: 3/{total} experiments with results -> reports/demo/results.csv" in str(written)
    assert written.paths["md"] == Path("reports/demo/summary.md") and written.paths["md"].is_file()
    with pytest.raises(report.ReportError, match="--suite nope: unknown suite 'nope'") as err:
        report.write_summary("nope")
    assert isinstance(err.value, InputError)
    with pytest.raises(report.ReportError, match="missing.yaml: registry file not found"):
        report.write_summary("demo", registry_path=results / "missing.yaml")
    with pytest.raises(report.ReportError, match="--results-root .*nowhere: expected an existing folder"):
        report.write_summary("demo", results_root=results / "nowhere")
    (results / "afile").write_text("")
    with pytest.raises(report.ReportError, match="afile: expected a folder"):
        report.write_summary("demo", out_dir=results / "afile")


def test_paper_table_gives_reproduced_minus_paper_and_a_status_per_entry(tmp_path):
    registry = reg.load_registry()
    paper = registry.experiment("solov2_r50_voc").paper  # 38.4 / 65.4 / 39.8 in the original README
    _metrics(tmp_path, "paper", "solov2_r50_voc", 37.0, 66.0, 39.8)
    # a training that failed, and one that started and has not ended (running, or killed)
    _record(tmp_path, layout.work_dir("paper", "mask2former_r50_voc", 0), 50.0, status="failed",
            error="RunError: no checkpoint")
    _record(tmp_path, layout.work_dir("paper", "mask2former_r101_voc", 0), 0.0, status="running")
    paths = report.write_report(registry, "paper", tmp_path)
    rows = {r["experiment"]: r for r in _rows(paths["csv"])}
    done = rows["solov2_r50_voc"]
    assert done["status"] == "done"
    assert [float(done[f"diff_{m}"]) for m in ("AP", "AP50", "AP75")] == pytest.approx(
        [37.0 - paper["AP"], 66.0 - paper["AP50"], 39.8 - paper["AP75"]])
    assert rows["mask2former_r50_voc"]["status"] == "failed" and rows["mask2former_r50_voc"]["diff_AP"] == ""
    assert rows["mask2former_r101_voc"]["status"] == "not finished (running, or stopped)"
    assert rows["solov2_r101_voc"]["status"] == "not run"
    md = paths["md"].read_text()
    assert "AP - paper" in md and "| -1.4 | single run |" in md and f"Verdict: {stats.VERDICT_RULE}." in md


def test_summary_and_index_share_one_results_table(results):
    registry = reg.load_registry()
    summary = report.write_report(registry, "demo", results)["html"].read_text()
    index = report.write_html_report("demo", registry, results).paths["html"].read_text()
    table = re.search(r"<table>.*?</table>", summary).group(0)
    assert "<th>AP</th>" in table and table in index
    gain = re.search(r"<p>SOLOv2 [^\n]*mask AP</b>[^\n]*?</p>|<li>SOLOv2 [^\n]*?mask AP</b>.*?</li>", summary).group(0)
    assert gain in index


def test_render_escapes_text_and_keeps_inline_markup():
    from apro.report.render import Page, Section, Table, Text, html, markdown

    page = Page("a <b>", [Text("intro"), Section("S", [Text("**x** `<y>` [l](f.csv) & z"),
                                                       Table(["h|"], [["1|2"]])], anchor="s")])
    out = html(page)
    assert "<h1>a &lt;b&gt;</h1>" in out and '<nav><a href="#s">S</a></nav>\n<h2 id="s">S</h2>' in out
    assert '<p><b>x</b> <code>&lt;y&gt;</code> <a href="f.csv">l</a> &amp; z</p>' in out
    md = markdown(page)
    assert md.startswith("# a <b>\n\nintro\n\n## S\n\n**x** `<y>` [l](f.csv) & z\n") and "| 1\\|2 |" in md


def _semantic(root: Path, suite: str, name: str, miou: float, seed: int) -> None:
    path = root / reg.metrics_file(suite, name, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"mIoU": miou, "aAcc": 90.0, "seed": seed, "wall_s": 3.0}))


def test_seeds_give_mean_std_and_paired_gain_intervals(tmp_path):
    """Three seeds of box / box_gp_lp (a clear gain), two of the point pair (a gain whose interval covers 0)."""
    for seed, (box, apro) in enumerate(((20.0, 23.5), (21.0, 24.6), (22.0, 25.4))):
        _metrics(tmp_path, "demo", "box", box, 45.0, 17.0, seed)
        _metrics(tmp_path, "demo", "box_gp_lp", apro, 47.0, 22.0, seed)
    _metrics(tmp_path, "demo", "mask", 30.0, 55.0, 31.0, 0)
    _metrics(tmp_path, "demo", "mask", 31.0, 55.0, 31.0, 1)
    for seed, (base, apro) in enumerate(((30.0, 33.5), (31.0, 35.5))):
        _semantic(tmp_path, "demo", "sem_point", base, seed)
        _semantic(tmp_path, "demo", "sem_point_gp_lp", apro, seed)
    paths = report.write_report(reg.load_registry(), "demo", tmp_path, seeds=[0, 1, 2])
    rows = _rows(paths["csv"])
    assert [(r["experiment"], r["seed"]) for r in rows if r["experiment"] == "box"] == [("box", "0"), ("box", "1"),
                                                                                      ("box", "2")]
    assert len(rows) == 3 * len(reg.load_registry().experiments_in("demo"))
    by_run = {(r["experiment"], r["seed"]): r for r in rows}
    assert by_run[("box_gp_lp", "1")]["AP"] == "24.6" and by_run[("mask", "2")]["status"] == "not run"
    md = paths["md"].read_text()
    assert "| box | SOLOv2 | ResNet-18 | synthetic | box | box | 1500 iters | 21.0 ± 1.0 (n=3) |" in md
    assert "| mask |" in md and "30.5 ± 0.7 (n=2)" in md and "**done (seeds 0, 1); not run (seed 2)**" in md
    gain = stats.paired_difference({0: 23.5, 1: 24.6, 2: 25.4}, {0: 20.0, 1: 21.0, 2: 22.0})
    assert gain["distinguishable"] and stats.format_gain(gain) == "+3.5 [+3.3, +3.7] (95%, n=3)"
    assert "paired by seed: **+3.5 [+3.3, +3.7] (95%, n=3) mask AP** (21.0 -> 24.5, means)" in md
    # two seeds, differences 3.5 and 4.5: the t interval (1 degree of freedom) covers 0
    assert ("paired by seed: **+4.0 [-2.4, +10.4] (95%, n=2): not distinguishable from 0 mIoU** "
            "(30.5 -> 34.5, means)") in md
    assert "(single run)" not in md.split("## Mask AP")[0]  # every gain has an interval
    assert "training seeds 0, 1, 2" in md
    assert "| train box.seed2 |" not in md  # no records: nothing made up


def test_one_seed_says_single_run(results):
    md = report.write_report(reg.load_registry(), "demo", results, seeds=[0])["md"].read_text()
    assert "**+3.5 (single run) mask AP**" in md and "| 20.0 (single run) |" in md
    assert "[" not in md.split("## APro gain")[1].split("Each gain")[0]  # no interval with one run


def test_a_seed_that_is_not_run_reads_not_run(results):
    """The fixture's runs are seed 0; reporting seeds 1 and 2 finds none of them."""
    paths = report.write_report(reg.load_registry(), "demo", results, seeds=[1, 2])
    assert {r["status"] for r in _rows(paths["csv"])} == {"not run"}
    assert "not available yet (box, box_gp_lp not run)" in paths["md"].read_text()
    with pytest.raises(report.ReportError, match="--seeds"):
        report.write_report(reg.load_registry(), "demo", results, seeds=[-1])


def test_paper_table_gives_the_verdict_over_seeds(tmp_path):
    registry = reg.load_registry()
    for seed, (a, b) in enumerate(((38.0, 40.0), (38.6, 40.2))):
        _metrics(tmp_path, "paper", "solov2_r50_voc", a, 65.0, 40.0, seed)  # paper 38.4: within 2 std
        _metrics(tmp_path, "paper", "mask2former_r50_voc", b, 68.0, 42.0, seed)  # paper 42.3: 2.2 below
    _metrics(tmp_path, "paper", "solov2_r101_voc", 40.0, 67.0, 42.0, 0)  # one run of two
    md = report.write_report(registry, "paper", tmp_path, seeds=[0, 1])["md"].read_text()
    line = {ln.split(" | ")[0][2:]: ln for ln in md.splitlines() if ln.startswith("| ")}
    assert "| 38.3 ± 0.4 (n=2) |" in line["solov2_r50_voc"] and "| 38.4 | 65.4 | 39.8 | -0.1 | reproduced |" \
        in line["solov2_r50_voc"]
    assert "| -2.2 | not reproduced |" in line["mask2former_r50_voc"]
    assert "| 40.0 (single run) |" in line["solov2_r101_voc"] and "| single run |" in line["solov2_r101_voc"]
    assert "| not run | **not run** |" in line["solov2_r50_coco"]
    assert f"Verdict: {stats.VERDICT_RULE}." in md
