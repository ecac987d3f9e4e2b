"""The workflow through a real Slurm (a one-node cluster on this machine, tests/slurm_cluster.py) with the repo's
profile, as a user runs it: the smoke suite's jobs all run as Slurm jobs and give the local run's metrics, and a
job that fails fails the workflow with its log shown. Skips where Slurm is not installed or not root (CI has it)."""
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import slurm_cluster

pytestmark = [pytest.mark.slow, pytest.mark.skipif(slurm_cluster.missing() is not None,
                                                   reason=f"no Slurm cluster here: {slurm_cluster.missing()}")]
ROOT = Path(__file__).resolve().parents[2]
TEST_CLUSTER_ARGS = slurm_cluster.snakemake_args(ROOT / "workflow" / "profiles" / "slurm")


@pytest.fixture(scope="module")
def cluster():
    with slurm_cluster.one_node_cluster() as env:
        yield env


def _snakemake(env, *args, timeout):
    return subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def _slurm_ids(out: str) -> set:
    return set(re.findall(r"has been submitted with SLURM jobid (\d+)", out))


def test_a_failing_job_fails_the_workflow_with_its_log(cluster, tmp_path):
    (tmp_path / "Snakefile").write_text(
        'rule all:\n    input: "ok.txt", "bad.txt"\n'
        'rule ok:\n    output: "ok.txt"\n    shell: "echo job $SLURM_JOB_ID > {output}"\n'
        'rule bad:\n    output: "bad.txt"\n    log: "bad.log"\n    shell: "echo about to fail > {log}; exit 3"\n')
    t0 = time.time()
    proc = _snakemake(cluster, "-s", str(tmp_path / "Snakefile"), "--directory", str(tmp_path), *TEST_CLUSTER_ARGS,
                      timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "Error in rule bad" in out and "about to fail" in out  # the job's own log, shown
    assert re.match(r"job \d+$", (tmp_path / "ok.txt").read_text().strip())  # the other job ran under Slurm
    assert len(_slurm_ids(out)) >= 2 and time.time() - t0 < 300


#: the smoke suite's APro variants, one a task: every rule of the suite runs (data, labels, the shared stage1,
#: instance and semantic trainings and evaluations, figures, reports), in half the time of all eleven
SLURM_EXPERIMENTS = "box_gp_lp,sem_point_gp_lp"


def test_smoke_suite_through_slurm_equals_the_local_run(cluster, tmp_path, smoke_run):
    """Every job of the smoke suite's APro variants (seed 0) is a Slurm job, and the metrics equal the local run's."""
    local, proc, _ = smoke_run
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    t0 = time.time()
    proc = _snakemake(cluster, "--directory", str(tmp_path / "slurm"), *TEST_CLUSTER_ARGS,
                      "--config", "suite=smoke", "seeds=0", f"experiments={SLURM_EXPERIMENTS}", timeout=2400)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-5000:]
    print(f"smoke suite through Slurm: {time.time() - t0:.0f} s, {len(_slurm_ids(out))} Slurm jobs")
    jobs = int(re.search(r"^total\s+(\d+)", out, re.M).group(1))  # the plan's job count ...
    localrules = len(re.findall(r"^localrule ", out, re.M))  # ... of which `all` runs in Snakemake itself
    assert len(_slurm_ids(out)) == jobs - localrules >= 10
    assert {m.group(1) for m in re.finditer(r"^rule (\w+):", out, re.M)} >= {
        "make_data", "validate_data", "make_sparse_labels", "train", "evaluate", "report", "visualize", "html_report"}
    metrics = sorted(p.relative_to(tmp_path / "slurm") for p in (tmp_path / "slurm").glob("results/**/metrics.json"))
    assert [m.parts[2] for m in metrics] == SLURM_EXPERIMENTS.split(",")
    for rel in metrics:
        a, b = json.loads((local / rel).read_text()), json.loads((tmp_path / "slurm" / rel).read_text())
        same = {k for k in a if k not in ("checkpoint", "config", "wall_s")}  # paths and times
        assert {k: a[k] for k in same} == {k: b.get(k) for k in same}, rel
