"""The Snakemake workflow: plans, the smoke suite end to end, resume after a kill, bad input.

The real runs work in a temporary folder (``--directory``), so they never touch
the repository's data/, results/ or reports/.
"""
from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

pytest.importorskip("snakemake")

ROOT = Path(__file__).resolve().parents[2]
DEMO = ["box", "box_lp", "box_gp", "box_gp_lp", "mask"]
# the semantic experiments of the demo and smoke suites (DeepLabV3+, mIoU)
SEMANTIC = ["sem_point", "sem_point_gp_lp", "sem_scribble", "sem_scribble_gp_lp", "sem_full"]

pytestmark = pytest.mark.workflow


# ---------------------------------------------------------------- plans (dry runs)

def test_plain_dry_run_plans_the_demo_suite(snakemake, planned):
    """`snakemake --cores 2 -n` with no other argument: the shared stage 1 and the five demo
    trainings started from it, the five semantic trainings, their evaluations and the reports
    (plus the ops benchmark)."""
    proc = snakemake("--cores", "2", "-n", "--forceall", "--nolock", "-p")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    plan = planned(out)
    from apro.registry import load_registry

    demo = load_registry().experiments_in("demo")
    instance = [e for e in demo if e.task == "instance"]
    assert [e.name for e in instance] == ["stage1"] + DEMO and [e.name for e in demo[len(instance):]] == SEMANTIC
    # one rule per stage: every training and every evaluation, instance or semantic
    assert plan["train"] == plan["evaluate"] == len(demo) and plan["report"] == 1, plan
    assert plan["make_sparse_labels"] == 1, plan
    # synthetic (instance) and synthetic_seg (semantic, colour hints at the class)
    assert plan["make_data"] == 2 and plan["validate_data"] == 2 and plan["all"] == 1, plan
    assert plan.get("benchmark_ops") == 1 and plan.get("html_report") == 1, plan
    # the rules name the run; `apro` reads its paths from the registry (tests/workflow/test_run_policy.py)
    # stage 1 runs alone (the others wait for it), so it takes both cores (registry: threads)
    assert "apro train stage1 --suite demo --seed 0 --threads 2 --registry experiments/registry.yaml >" in out, out
    for name in DEMO + SEMANTIC:  # mask, the odd one of five on 2 cores, runs alone with 2 threads (registry: threads)
        threads = 2 if name == "mask" else 1
        assert f"apro train {name} --suite demo --seed 0 --threads {threads} --registry experiments/registry.yaml >" \
            in out, out
        assert f"apro evaluate {name} --suite demo --seed 0 --threads 1 --registry experiments/registry.yaml >" in out
    assert "make-data --out data/synthetic --num-train 2000 --num-val 100 --image-size 128 --seed 0 --overwrite" in out
    assert ("make-data --out data/synthetic_seg --num-train 2000 --num-val 100 --image-size 80 --seed 0"
            " --class-hue-width 0.1 --overwrite") in out
    assert "visualize --data-root data/synthetic --out reports/demo/figures --images 2 --model box_gp_lp --suite demo" \
           " --seed 0" in out
    assert "report --suite demo" in out
    assert "reports/demo/results.csv" in out and "reports/demo/summary.md" in out
    assert "--max-iters" not in out  # the demo runs the configs' own schedules


def test_dry_run_of_part_of_a_suite(tmp_path, snakemake, planned):
    proc = snakemake("--cores", "2", "-n", "-p", "--config", "suite=smoke", "experiments=box,box_gp_lp",
                     directory=tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    plan = planned(out)
    # the shared stage 1 the two start from is planned too, though not asked for
    assert plan["train"] == 3 and plan["evaluate"] == 2 and plan["report"] == 1, plan
    assert "apro train stage1 --suite smoke --seed 0 --threads 2" in out, out


@pytest.mark.parametrize("seeds", ["seeds=0,1", "seeds=[0,1]"])  # the second: Snakemake hands ['0', '1']
def test_seeds_as_a_list_or_separated_by_commas(tmp_path, snakemake, planned, seeds):
    proc = snakemake("--cores", "2", "-n", "--config", "suite=smoke", "experiments=box", seeds, directory=tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert planned(out)["train"] == 4  # box and its shared stage 1, each for seeds 0 and 1


@pytest.mark.parametrize("config, expected", [
    # the paper suite is runnable (tests/paper/test_paper_data.py plans it); a wrong name in it fails clearly
    (["suite=paper", "experiments=nope"], [r"nope not in suite 'paper'", "solov2_r50_voc"]),
    (["suite=nope"], [r"unknown suite 'nope'", "known suites: demo, smoke, "]),
    (["experiments=box,nope"], [r"nope not in suite 'demo'", "stage1, box, box_lp, box_gp, box_gp_lp, mask"]),
    (["train_threads=0"], [r"Error validating config", "train_threads"]),
])
def test_bad_suite_experiment_or_config_fails_with_a_clear_message(tmp_path, config, expected, snakemake):
    proc = snakemake("--cores", "2", "-n", "--config", *config, directory=tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    for pattern in expected:
        assert re.search(pattern, out), f"{pattern!r} not in:\n{out}"
    assert "Traceback (most recent call last)" not in out


def test_unknown_experiment_target_names_the_known_ones(tmp_path, snakemake):
    proc = snakemake("--cores", "2", "-n", "results/smoke/nope/seed0/metrics.json", "--config", "suite=smoke",
                     directory=tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "known experiments of smoke: stage1, box, box_lp" in out, out


# ---------------------------------------------------------------- real runs

@pytest.mark.slow
def test_smoke_suite_end_to_end(smoke_run, snakemake):
    """Every stage on tiny data with two training seeds: data, validation, every training (5 iterations) and
    evaluation once per seed (the shared stage1 too), the report with mean ± std over the seeds."""
    tmp_path, proc, wall = smoke_run
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    print(f"smoke suite: {wall:.0f} s")

    report = tmp_path / "reports" / "smoke"
    with open(report / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    # one row per run: each experiment with seeds 0 and 1
    assert [(r["experiment"], r["seed"]) for r in rows] == [(n, k) for n in ["stage1"] + DEMO + SEMANTIC
                                                            for k in ("0", "1")]
    sem_rows, rows = rows[2 * (1 + len(DEMO)):], rows[:2 * (1 + len(DEMO))]
    for r in sem_rows:  # semantic rows: mIoU, no AP
        assert r["status"] == "done" and r["dataset"] == "synthetic_tiny" and r["AP"] == ""
        assert 0.0 <= float(r["mIoU"]) <= 100.0
    required = ["experiment", "task", "framework", "backbone", "dataset", "supervision", "variant", "AP", "AP50",
                "AP75"]
    assert list(rows[0])[:len(required)] == required
    for r in rows:
        assert r["status"] == "done" and r["dataset"] == "synthetic_tiny" and r["schedule"] == "5 iters"
        assert 0.0 <= float(r["AP"]) <= 100.0
    md = (report / "summary.md").read_text()
    assert "## APro gain" in md and "minus `box` (box), paired by seed: **" in md and "(95%, n=2)" in md
    assert "(n=2) |" in md  # the table: mean ± std over the two seeds
    assert "## Wall time per step" in md  # from each step's own record (*.run.json), not Snakemake's files
    for name in DEMO + SEMANTIC:
        for seed in (0, 1):
            assert f"| train {name}.seed{seed} | done |" in md and f"| evaluate {name}.seed{seed} | done |" in md
    assert (report / "metafiles").is_dir()  # the smoke suite has no model-zoo entry: empty
    assert (report / "summary.html").read_text().startswith("<!DOCTYPE html>")

    for seed in (0, 1):
        runs = tmp_path / "results" / "smoke"
        stage1 = json.loads((runs / "stage1" / f"seed{seed}" / "train" / "done.json").read_text())
        assert stage1["threads"] == 2 and stage1["init_from"] is None and stage1["seed"] == seed
        for name in DEMO:
            metrics = json.loads((runs / name / f"seed{seed}" / "metrics.json").read_text())
            assert {"AP", "AP50", "AP75", "config_sha256"} <= set(metrics) and metrics["seed"] == seed
            done = json.loads((runs / name / f"seed{seed}" / "train" / "done.json").read_text())
            assert done["max_iters"] == 5 and done["threads"] == (2 if name == "mask" else 1) and done["seed"] == seed
            assert done["init_from"] == stage1["checkpoint"]  # started from the shared stage's run of its seed
            record = json.loads((runs / name / f"seed{seed}" / "metrics.run.json").read_text())
            assert record["status"] == "done" and record["wall_s"] > 0 and record["peak_rss_mb"] > 0
            for stage in ("train", "evaluate"):
                bench = tmp_path / "results" / "benchmarks" / "smoke" / f"{name}.seed{seed}.{stage}.tsv"
                assert bench.read_text().startswith("s\th:m:s\tmax_rss")
                assert (tmp_path / "results" / "logs" / "smoke" / f"{name}.seed{seed}.{stage}.log").is_file()
    # no temporary or partial file is left anywhere
    leftovers = [p for p in tmp_path.rglob("*") if ".snakemake" not in p.parts
                 and (p.name.endswith((".tmp", ".partial")) or ".partial" in p.name)]
    assert not leftovers, leftovers

    again = snakemake("--cores", "2", "--config", "suite=smoke", "seeds=0,1", directory=tmp_path)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr, again.stdout + again.stderr


def _resume_registry(tmp_path: Path, max_iters: int) -> Path:
    """A registry with one small experiment that checkpoints every 2 iterations."""
    config = tmp_path / "box_ckpt2.py"
    config.write_text(f"_base_ = [{str(ROOT / 'experiments' / 'demo' / 'box.py')!r}]\n"
                      "default_hooks = dict(checkpoint=dict(interval=2))\n")
    registry = {
        "version": 1,
        "datasets": {"synthetic_tiny": {"kind": "synthetic", "description": "tiny", "num_train": 16,
                                        "num_val": 8, "image_size": 64, "seed": 0}},
        "suites": {"resume": {"description": "resume test", "overrides": {"max_iters": max_iters}}},
        "experiments": [{"name": "box", "suites": ["resume"], "task": "instance", "framework": "SOLOv2",
                         "backbone": "ResNet-18",
                         "dataset": "synthetic_tiny", "supervision": "box", "variant": "box",
                         "config": str(config), "iters": max_iters, "paper": None}],
    }
    path = tmp_path / "registry.yaml"
    path.write_text(yaml.safe_dump(registry))
    return path


@pytest.mark.slow
def test_killed_training_resumes_from_its_last_checkpoint(tmp_path, snakemake_env):
    registry = _resume_registry(tmp_path, max_iters=40)
    run = tmp_path / "run"
    run.mkdir()
    cmd = [sys.executable, "-m", "snakemake", "--cores", "1", "--config", "suite=resume", f"registry={registry}",
           "--directory", str(run)]
    work = run / "results" / "resume" / "box" / "seed0" / "train"
    with open(tmp_path / "first.log", "w") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=snakemake_env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            deadline = time.time() + 300
            while not (work / "last_checkpoint").exists() and proc.poll() is None and time.time() < deadline:
                time.sleep(0.1)
            assert (work / "last_checkpoint").exists(), (tmp_path / "first.log").read_text()
            os.killpg(proc.pid, signal.SIGTERM)  # like Ctrl-C or a scheduler's preemption: the whole group
            proc.wait(120)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode != 0
    first_ckpt = Path((work / "last_checkpoint").read_text().strip())
    first_iter = int(re.search(r"iter_(\d+)\.pth", first_ckpt.name).group(1))
    assert first_iter < 40
    # nothing looks finished, and the work dir with its checkpoint survived
    assert not (work / "done.json").exists()
    assert not (run / "results" / "resume" / "box" / "seed0" / "metrics.json").exists()
    assert first_ckpt.is_file()

    second = subprocess.run(cmd, cwd=ROOT, env=snakemake_env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stdout + second.stderr
    train_log = (run / "results" / "logs" / "resume" / "box.seed0.train.log").read_text()
    assert f"Auto resumed from the latest checkpoint {first_ckpt}" in train_log, train_log
    assert f"resumed epoch: 0, iter: {first_iter}" in train_log, train_log
    done = json.loads((work / "done.json").read_text())
    assert done["max_iters"] == 40 and done["checkpoint"].endswith("iter_40.pth")
    assert (run / "reports" / "resume" / "results.csv").is_file()


def test_corrupt_annotation_file_stops_the_workflow_naming_it(tmp_path, snakemake):
    """A dataset already in place whose annotation file is broken: validate_data fails and says which file."""
    sys.path.insert(0, str(ROOT))
    from apro.data.synthetic import generate

    data = tmp_path / "data" / "synthetic_tiny"
    generate(data, num_train=4, num_val=2, image_size=32, progress_every=0)
    bad = data / "annotations" / "instances_val.json"
    bad.write_text('{"images": [], "annotations": [')
    proc = snakemake("--cores", "2", "--config", "suite=smoke", "experiments=box", directory=tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "Error in rule validate_data" in out, out
    log = (tmp_path / "results" / "logs" / "data" / "synthetic_tiny.validate_data.log").read_text()
    assert "data/synthetic_tiny/annotations/instances_val.json: not valid JSON" in log, log
    assert not (tmp_path / "results" / "data" / "synthetic_tiny" / "validated.json").exists()
    assert not (tmp_path / "results" / "smoke" / "box" / "seed0" / "train").exists()  # no training started


def test_cli_train_names_a_missing_annotation_file(tmp_path, snakemake_env):
    sys.path.insert(0, str(ROOT))
    from apro.data.synthetic import generate

    data = tmp_path / "data"
    generate(data, num_train=2, num_val=2, image_size=32, progress_every=0)
    (data / "annotations" / "instances_train.json").unlink()
    proc = subprocess.run([sys.executable, "-m", "apro", "train", str(ROOT / "experiments/demo/box.py"),
                           "--work-dir", str(tmp_path / "work"), "--data-root", str(data)],
                          cwd=ROOT, env=snakemake_env, capture_output=True, text=True)
    assert proc.returncode == 2
    assert f"{data}/annotations/instances_train.json: annotation file does not exist" in proc.stderr, proc.stderr
    assert not (tmp_path / "work").exists()
