"""benchmarks/demo_step.py: a real training step of a registry experiment, timed, with the
share of APro's ops found by the profiler (on the smoke suite's tiny data)."""
import subprocess
import sys

import pytest

pytest.importorskip("mmseg")


@pytest.fixture
def tiny_data(tmp_path, monkeypatch):
    """data/synthetic_tiny and its sparse labels in a scratch working directory (the smoke suite's)."""
    monkeypatch.chdir(tmp_path)
    apro = [sys.executable, "-m", "apro"]
    subprocess.run(apro + ["make-data", "--out", "data/synthetic_tiny", "--num-train", "8", "--num-val", "2",
                           "--image-size", "64"], check=True, capture_output=True)
    subprocess.run(apro + ["make-sparse-labels", "--data-root", "data/synthetic_tiny",
                           "--out", "data/semantic/synthetic_tiny"], check=True, capture_output=True)
    return tmp_path


def test_step_time_and_op_shares(tiny_data, benchmark_script):
    ds = benchmark_script("demo_step")
    with_terms = ds.measure("sem_point_gp_lp", iters=2, warmup=0, profiled=1, suite="smoke")
    plain = ds.measure("sem_point", iters=2, warmup=0, profiled=1, suite="smoke")
    assert with_terms["sec_per_iter"] > 0 and plain["sec_per_iter"] > 0
    # GP builds a tree per image and LP runs on every step past the loss's warm-up of 0 iterations
    assert with_terms["gp_pct"] > 0 and with_terms["lp_pct"] > 0 and with_terms["tree_pct"] > 0
    assert with_terms["gp_pct"] + with_terms["lp_pct"] + with_terms["tree_pct"] < 100
    assert plain["gp_pct"] == plain["lp_pct"] == plain["tree_pct"] == 0.0


def test_table(tmp_path, benchmark_script):
    ds = benchmark_script("demo_step")
    row = {"experiment": "box", "threads": 1, "sec_per_iter": 0.5, "tree_pct": 1.0, "gp_pct": 2.0, "lp_pct": 3.0,
           "tree_filter_pct": 0.0, "machine": "AMD EPYC (AVX2)"}
    ds.write_table([row], tmp_path / "t.csv", "python benchmarks/demo_step.py --iters 1")
    assert (tmp_path / "t.csv").read_text().splitlines()[1] == 'box,1,0.5,1.0,2.0,3.0,0.0,"AMD EPYC (AVX2)"'
    md = (tmp_path / "t.md").read_text()
    assert "`python benchmarks/demo_step.py --iters 1`" in md and "| box | 1 | 0.5 | 1.0% | 2.0% | 3.0% | 0.0% |" in md
