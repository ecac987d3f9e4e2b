"""Checks of the project's setup files: pins, Makefile steps, CI script, workflow plan, CLI."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

try:
    import tomllib
except ImportError:  # Python 3.10
    from pip._vendor import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]


def _pyproject() -> dict:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)


def _exact_pins(requirements) -> dict[str, str]:
    pins = {}
    for req in requirements:
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([A-Za-z0-9_.+\-]+)", req.strip())
        if m:
            pins[m.group(1).lower()] = m.group(2)
    return pins


def test_environment_yml_has_the_pins_of_pyproject():
    """Every exact pin in pyproject.toml appears in environment.yml (pip list or the
    documented manual steps), and environment.yml pins nothing differently."""
    project = _pyproject()["project"]
    pins = _exact_pins(project["dependencies"] + project["optional-dependencies"]["test"])
    assert {"torch", "mmcv", "mmdet", "mmengine"} <= set(pins)
    env_text = (ROOT / "environment.yml").read_text()
    found = {m.group(1).lower(): m.group(2) for m in re.finditer(r"([A-Za-z][A-Za-z0-9_.\-]*)==([0-9][A-Za-z0-9_.+\-]*)", env_text)}
    for name, version in pins.items():
        assert found.get(name) == version, f"environment.yml: expected {name}=={version}, found {found.get(name)}"
    assert "python=3.11" in env_text
    assert "--no-build-isolation" in env_text


def _dry_run_setup(venv: Path, *targets: str) -> str:
    proc = subprocess.run(
        ["make", "-n", *targets, f"VENV={venv}", f"PYTHON={sys.executable}"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )
    return proc.stdout


@pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")
def test_make_setup_from_nothing_runs_the_steps_in_order(tmp_path):
    """From an empty venv path, `make setup` creates the venv, installs torch before
    compiling mmcv with its ops (no build isolation), then the rest, then apro._C."""
    out = _dry_run_setup(tmp_path / "venv", "setup")
    lines = out.splitlines()

    def first(pattern: str) -> int:
        for i, line in enumerate(lines):
            if re.search(pattern, line):
                return i
        raise AssertionError(f"`make -n setup` never runs a line matching {pattern!r}:\n{out}")

    venv = first(r"-m venv ")
    torch = first(r"pip .*install .*'torch==2\.13\.0'")
    mmcv = first(r"MMCV_WITH_OPS=1 FORCE_CUDA=0 .*pip .*install .*--no-build-isolation .*'mmcv==2\.1\.0'")
    deps = first(r"pip .*install .*-r .*apro-pins\.txt")
    ops = first(r"pip .*install .*--no-build-isolation --no-deps -e \.")
    assert venv < torch < mmcv < deps < ops
    assert "torchvision" not in out and "--no-cache-dir" not in out


@pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")
def test_second_make_setup_makes_no_pip_call(tmp_path):
    """Once every step has left its stamp (newer than its inputs), `make setup`
    runs no pip at all; only a missing apro/_C*.so brings back the ops step."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(sys.executable)
    first = _dry_run_setup(venv, "setup")
    assert "-m venv" not in first  # the venv exists: it is not created again
    stamps = re.findall(r"^touch (\S+)$", first, re.M)
    assert len(stamps) == 5, first
    later = time.time() + 60  # newer than any source file
    for i, stamp in enumerate(stamps):
        Path(stamp).touch()
        os.utime(stamp, (later + i, later + i))
    again = _dry_run_setup(venv, "setup")
    if list((ROOT / "apro").glob("_C*.so")):
        assert "pip" not in again and "touch" not in again, again
    else:
        assert again.count(" pip ") == 1 and "--no-deps -e ." in again, again


def test_ci_run_is_executable_strict_and_runs_make_test():
    ci = ROOT / ".ci" / "run"
    assert os.access(ci, os.X_OK), ".ci/run must be executable"
    text = ci.read_text()
    assert text.startswith("#!/usr/bin/env bash") or text.startswith("#!/bin/bash")
    assert "set -euo pipefail" in text
    commands = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    assert commands[-1] == "make test"
    subprocess.run(["bash", "-n", str(ci)], check=True)


def test_cli_module_does_not_import_the_compiled_ops():
    """`apro build-ops` must work before apro._C exists: importing the CLI loads neither the ops nor torch."""
    probe = "import sys, apro.cli; print(sorted(m for m in sys.modules if m in ('apro._C', 'apro.ops', 'torch')))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def _fake_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / "apro").mkdir(parents=True)
    (repo / "apro" / "__init__.py").write_text("")
    (repo / "benchmarks").mkdir()
    return repo


def test_cli_build_ops_inplace_writes_marker(tmp_path):
    """build-ops runs the build from the repo root, imports apro._C in a fresh
    interpreter and writes the marker (JSON with .so path and torch version)."""
    pytest.importorskip("torch")
    from apro import cli

    repo = _fake_repo(tmp_path)
    # A stand-in for setup.py: `setup.py build_ext --inplace` writes an importable apro._C.
    (repo / "setup.py").write_text(textwrap.dedent("""
        import sys
        assert sys.argv[1:] == ["build_ext", "--inplace"], sys.argv
        open("apro/_C.py", "w").write("OK = True\\n")
    """))
    marker = tmp_path / "results" / "ops" / "build.done"
    rc = cli.main(["--repo", str(repo), "build-ops", "--inplace", "--marker", str(marker)])
    assert rc == 0
    info = json.loads(marker.read_text())
    assert Path(info["so"]) == repo / "apro" / "_C.py"
    import torch

    assert info["torch"] == torch.__version__
    assert not list(marker.parent.glob("*.tmp"))


def test_cli_build_ops_failure_leaves_no_marker(tmp_path, capsys):
    from apro import cli

    repo = _fake_repo(tmp_path)
    (repo / "setup.py").write_text("raise SystemExit(3)\n")
    marker = tmp_path / "build.done"
    rc = cli.main(["--repo", str(repo), "build-ops", "--inplace", "--marker", str(marker)])
    assert rc == 1 and not marker.exists()  # a build that failed: a failed run
    assert "exit 3" in capsys.readouterr().err


def test_cli_bench_ops_passes_arguments_to_benchmark_main(tmp_path):
    from apro import cli

    repo = _fake_repo(tmp_path)
    (repo / "setup.py").write_text("")
    (repo / "benchmarks" / "ops.py").write_text(textwrap.dedent("""
        import argparse
        def main(argv=None):
            p = argparse.ArgumentParser()
            p.add_argument("--out", required=True)
            args = p.parse_args(argv)
            open(args.out, "w").write("op,ms\\n")
            return 0
        if __name__ == "__main__":
            raise SystemExit(main())
    """))
    out = tmp_path / "ops.csv"
    assert cli.main(["--repo", str(repo), "bench-ops", "--out", str(out)]) == 0
    assert out.read_text() == "op,ms\n"


def test_cli_bench_ops_names_the_missing_script(tmp_path, capsys):
    from apro import cli

    repo = _fake_repo(tmp_path)
    (repo / "setup.py").write_text("")
    assert cli.main(["--repo", str(repo), "bench-ops"]) == 2
    err = capsys.readouterr().err
    assert str(repo / "benchmarks" / "ops.py") in err and "not found" in err


@pytest.mark.workflow
def test_snakemake_dry_run_plans_build_and_benchmark_of_ops():
    """`snakemake -n` from the repo root with the workflow profile plans build_ops
    and benchmark_ops, both through the apro CLI."""
    pytest.importorskip("snakemake")
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--forceall", "--nolock",
         "--workflow-profile", "workflow/profiles/default"],
        cwd=ROOT, capture_output=True, text=True,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    for rule in ("all", "build_ops", "benchmark_ops"):
        assert re.search(rf"^\s*{rule}\s+1\s*$", out, re.M), f"{rule} not planned once:\n{out}"
    # printshellcmds comes from the profile: the commands are shown.
    assert "Using workflow specific profile workflow/profiles/default" in out, out
    assert "build-ops --quiet --marker results/ops/build.done" in out, out
    assert "bench-ops --out reports/benchmarks/ops.csv" in out, out
