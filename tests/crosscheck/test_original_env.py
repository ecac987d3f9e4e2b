"""The release's venv (apro original-env) and the check's bad input: one clear error each, exit 2, nothing
written under reports/crosscheck/. The build itself needs GitHub and minutes, so CI runs none of it; the
real check runs in tests/crosscheck/test_release_parity.py where the venv exists."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from apro.crosscheck import original_env
from apro.crosscheck.original_env import OriginalEnvError, apply_edits, check_release, check_venv
from apro.errors import InputError, RunFailed

ROOT = Path(__file__).resolve().parents[2]


def _apro(*args, cwd):
    return subprocess.run([sys.executable, "-m", "apro", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


def _git(cwd, *args):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                   env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
                        "GIT_COMMITTER_EMAIL": "t@t", "PATH": "/usr/bin:/bin"})


def test_a_folder_that_is_not_a_clone(tmp_path):
    with pytest.raises(OriginalEnvError, match="not a git repository"):
        check_release(tmp_path)
    with pytest.raises(OriginalEnvError, match="no such folder"):
        check_release(tmp_path / "missing")
    assert issubclass(OriginalEnvError, InputError)  # exit code 2


def test_a_clone_without_the_release_commit(tmp_path):
    _git(tmp_path, "init", "-q")
    (tmp_path / "README.md").write_text("not the release\n")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-q", "-m", "x")
    with pytest.raises(OriginalEnvError, match=f"commit {original_env.RELEASE_COMMIT} is not in this repository"):
        check_release(tmp_path)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True).stdout.strip()
    with pytest.raises(OriginalEnvError, match=r"lacks \['apro/apro.py'"):  # a commit of another project
        check_release(tmp_path, commit=head)


def test_every_edit_must_match_once(tmp_path):
    cu = tmp_path / "apro" / "gp_cuda" / "mst"
    cu.mkdir(parents=True)
    (cu / "mst.cu").write_text("#include <THC/THC.h>\n")
    (tmp_path / "apro" / "gp_cuda" / "gp_process").mkdir()
    (tmp_path / "apro" / "gp_cuda" / "gp_process" / "gp_process.cu").write_text("")
    with pytest.raises(RunFailed, match=r"gp_process\.cu: the edit 'CPU build"):
        apply_edits(tmp_path)


def test_the_edits_are_the_release_build_notes():
    """Each edit says why; the release files it touches exist in the release (names checked at build time)."""
    assert all(e["why"] and e["old"] != e["new"] for e in original_env.EDITS)
    files = {e["file"] for e in original_env.EDITS}
    assert files == {"mmcv:setup.py", "apro/gp_cuda/gp_process/gp_process.cu", "apro/gp_cuda/mst/mst.cu"}
    assert original_env.PINS["numpy"].startswith("1.23") and original_env.PINS["torch"] == "2.13.0"


def test_a_missing_or_stale_venv(tmp_path):
    with pytest.raises(OriginalEnvError, match="no release venv.*make original-env ORIGINAL="):
        check_venv(tmp_path)
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "python").write_text("")
    (tmp_path / original_env.RECORD).write_text(json.dumps({"commit": "0" * 40, "pins": {}, "mmcv_sdist": {}}))
    with pytest.raises(OriginalEnvError, match="another commit"):
        check_venv(tmp_path)


def test_a_venv_whose_release_does_not_import(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    (venv / original_env.RECORD).write_text(json.dumps({"commit": original_env.RELEASE_COMMIT,
                                                        "pins": original_env.PINS,
                                                        "mmcv_sdist": original_env.MMCV_SDIST}))
    check_venv(venv)  # the record alone looks complete
    with pytest.raises(OriginalEnvError, match="the release does not import in this venv"):
        check_venv(venv, imports=True)


def test_cli_bad_input_exits_2_and_writes_nothing(tmp_path):
    r = _apro("original-env", "--original", str(tmp_path), "--venv", str(tmp_path / "v"), cwd=tmp_path)
    assert r.returncode == 2 and "not a git repository" in r.stderr
    assert not (tmp_path / "v").exists()
    r = _apro("crosscheck", "no_such_entry", "--results-root", str(tmp_path), cwd=tmp_path)
    assert r.returncode == 2 and "the release has no config for them" in r.stderr
    r = _apro("crosscheck", "solov2_r50_voc", "--venv", str(tmp_path / "none"), "--results-root", str(tmp_path),
              cwd=tmp_path)
    assert r.returncode == 2 and "no release venv" in r.stderr
    r = _apro("crosscheck-report", "solov2_r50_voc", "--results-root", str(tmp_path), cwd=tmp_path)
    assert r.returncode == 2 and "no crosscheck result for ['solov2_r50_voc']" in r.stderr
    assert not (tmp_path / "reports").exists() and not (tmp_path / "results").exists()
