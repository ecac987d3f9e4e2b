"""The package stands alone: built as a wheel and installed outside the checkout (next to the dependencies already
installed here), ``apro list`` and ``apro report`` work on a registry and a results folder anywhere; the schemas
come from the package's own data, nothing from the checkout."""
import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A scratch venv holding the wheel of this checkout; the other dependencies are this venv's (on the path
    after the wheel, their .pth files unread, so this checkout's editable install is not seen)."""
    tmp = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp / "dist")], check=True, cwd=tmp, env={**os.environ, "MAX_JOBS": "2"}, timeout=1200)
    wheel = next((tmp / "dist").glob("apro_suite-*.whl"))
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = Path(subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()"
                                "['purelib'])"], capture_output=True, text=True, check=True).stdout.strip())
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
                   check=True, timeout=300)
    (site / "zz_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv, tmp


def _apro(venv: Path, cwd: Path, *args):
    return subprocess.run([str(venv / "bin" / "python"), "-m", "apro", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_the_installed_package_is_the_wheel(installed):
    venv, tmp = installed
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import apro, apro.resources as r; "
                            "print(apro.__file__); print(sorted(r.schema('registry')['properties']))"],
                           cwd=tmp, capture_output=True, text=True, check=True).stdout.splitlines()
    assert str(ROOT) not in where[0] and "site-packages" in where[0]
    assert "ablations" in where[1]


@pytest.mark.slow
def test_list_and_report_outside_the_checkout(installed):
    venv, tmp = installed
    work = tmp / "elsewhere"
    (work / "experiments").mkdir(parents=True)
    # a workspace of its own: the registry (with its configs) beside the results
    for rel in ("experiments/registry.yaml", "experiments/demo", "experiments/semantic", "experiments/paper",
                "experiments/ablation"):
        src = ROOT / rel
        subprocess.run(["cp", "-r", str(src), str(work / rel)], check=True)
    metrics = work / "results" / "smoke" / "box" / "seed0" / "metrics.json"
    metrics.parent.mkdir(parents=True)
    metrics.write_text(json.dumps({"AP": 12.5, "AP50": 30.0, "AP75": 10.0}))

    listed = _apro(venv, work, "list", "--suite", "smoke")
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert "box" in listed.stdout and "smoke (" in listed.stdout
    report = _apro(venv, work, "report", "--suite", "smoke")
    assert report.returncode == 0, report.stderr[-2000:]
    md = (work / "reports" / "smoke" / "summary.md").read_text()
    assert "| box | SOLOv2 |" in md and "12.5" in md

    # no registry where it runs and none in a checkout: the error says to pass one
    nowhere = _apro(venv, tmp, "list")
    assert nowhere.returncode == 2 and "pass --registry" in nowhere.stderr
    given = _apro(venv, tmp, "list", "--suite", "smoke", "--registry", work / "experiments" / "registry.yaml")
    assert given.returncode == 0 and "box" in given.stdout
