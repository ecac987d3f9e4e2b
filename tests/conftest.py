"""Shared pytest setup: import paths, seeding, hypothesis profile, markers, and the fixtures several
areas use (a benchmark script as a module, a shrunk paper config, Snakemake runs and their plans)."""
import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(TESTS_DIR)
# ``import reference`` from the test modules, and ``import apro`` without an install.
for _p in (TESTS_DIR, REPO_ROOT):
    if _p not in sys.path:
        sys.path.insert(0, _p)

try:
    from hypothesis import HealthCheck, settings

    settings.register_profile(
        "apro",
        derandomize=True,  # seeded: the same examples on every run, no database needed
        deadline=None,
        max_examples=60,
        database=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    settings.register_profile("apro-thorough", parent=settings.get_profile("apro"), max_examples=400)
    settings.load_profile(os.environ.get("APRO_HYPOTHESIS_PROFILE", "apro"))
except ImportError:  # pragma: no cover - hypothesis is a test dependency
    pass


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: slower test (seconds); deselect with -m 'not slow'")


@pytest.fixture(autouse=True)
def _seed_everything():
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    yield


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def benchmark_script():
    """``benchmark_script("ops")``: a script of benchmarks/ imported as a module (they are scripts, not a package)."""
    import importlib.util

    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, os.path.join(REPO_ROOT, "benchmarks", f"{name}.py"))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture
def shrink_paper_config():
    """``shrink_paper_config(cfg)``: a paper config (SOLOv2 or Mask2Former) with tiny widths, for one CPU step."""
    from shrunk import shrink

    return shrink


def _snakemake_env() -> dict:
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return env


def _snakemake(*args: str, directory=None, timeout: float = 600) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", *args]
    if directory is not None:
        cmd += ["--directory", str(directory)]
    return subprocess.run(cmd, cwd=REPO_ROOT, env=_snakemake_env(), capture_output=True, text=True, timeout=timeout)


def _planned(out: str) -> dict:
    table = out.split("Job stats:", 1)[1]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", table, re.M)}


@pytest.fixture
def snakemake():
    """``snakemake(*args, directory=None, timeout=600)``: the workflow run from the repository root with
    this interpreter (``--directory`` for a temporary working folder); returns the CompletedProcess."""
    pytest.importorskip("snakemake")
    return _snakemake


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """The smoke suite run once with two training seeds (`--cores 2`): (its working folder, the
    CompletedProcess, the wall seconds). tests/workflow/test_workflow.py checks it end to end;
    tests/workflow/test_slurm.py compares a run through Slurm with it."""
    pytest.importorskip("snakemake")
    folder = tmp_path_factory.mktemp("smoke")
    t0 = time.time()
    # 44 trainings and evaluations: minutes on an idle 2-core machine, more on a shared one
    proc = _snakemake("--cores", "2", "--config", "suite=smoke", "seeds=0,1", directory=folder, timeout=2400)
    return folder, proc, time.time() - t0


@pytest.fixture
def snakemake_env():
    """The environment of the workflow's runs: this interpreter's bin/ first on PATH, torch's full checkpoint loads."""
    return _snakemake_env()


@pytest.fixture
def planned():
    """``planned(output)``: the job counts of a dry run's 'Job stats' table."""
    return _planned
