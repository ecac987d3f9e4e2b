"""The release itself, next to this suite: one SOLOv2 and one Mask2Former entry through ``apro crosscheck``.

Needs the release's venv (``make original-env ORIGINAL=<clone of CircleRadon/APro>``, a few minutes and
GitHub): at $APRO_ORIGINAL_VENV, else .venv-original/ in the repository. Skipped, with that reason,
where it does not exist (CI). Takes about 5 minutes on 2 cores.
"""
import os
from pathlib import Path

import pytest

from apro import layout
from apro.crosscheck.original_env import OriginalEnvError, check_venv

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("APRO_ORIGINAL_VENV", ROOT / layout.original_venv()))


def _venv_or_skip():
    try:
        check_venv(VENV, imports=True)
    except OriginalEnvError as exc:
        pytest.skip(f"the release's venv is not built here ({exc})".splitlines()[0])


@pytest.mark.slow
@pytest.mark.parametrize("entry", ["solov2_r50_voc", "mask2former_r50_voc"])
def test_release_and_suite_agree(entry, tmp_path):
    _venv_or_skip()
    from apro.crosscheck.run import crosscheck_entry

    result = crosscheck_entry(entry, VENV, tmp_path, threads=2)
    assert result["problems"] == [], result["problems"]
    assert result["verdict"] == "parity"
    parts = result["parts"]
    assert parts["load"]["strict"] and parts["predictions"]["release"] > 0
    assert parts["pipelines"]["box_mask_pixels"] == 0
