"""A checkpoint never runs code: every file the suite loads goes through torch's weights-only unpickler with a
small allow-list (apro.checkpoints). A crafted checkpoint, whose unpickling would create a marker file, is refused
by every command that takes a checkpoint, naming the file and the type; the marker never appears. Checkpoints
shaped like the release's and this suite's own training checkpoints still load."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("mmdet")

from apro import checkpoints  # noqa: E402
from apro.checkpoints import CheckpointError, load_checkpoint_file, read_state_dict  # noqa: E402
from apro.data.synthetic import generate  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "experiments" / "demo" / "box.py"
PAPER = ROOT / "experiments" / "paper" / "solov2_r50_voc.py"


class _Crafted:
    """Pickled as a call of open (io.open): unpickling it without the weights-only unpickler creates ``marker``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _craft(path: Path, marker: Path) -> Path:
    torch.save({"state_dict": {"w": torch.zeros(2)}, "meta": {"config": "x = 1", "note": _Crafted(marker)}}, path)
    return path


def _apro(*args, cwd=ROOT, env=None):
    return subprocess.run([sys.executable, "-m", "apro", *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=600, env={**os.environ, **(env or {})})


def _refused(proc, path: Path, marker: Path):
    assert proc.returncode == 2, proc.stdout[-1500:] + proc.stderr[-1500:]
    assert f"{path}: refused to load" in proc.stderr and "io.open" in proc.stderr, proc.stderr[-1500:]
    assert not marker.exists()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("safe") / "data"
    generate(out, num_train=4, num_val=2, image_size=64, seed=1, empty_fraction=0.0, progress_every=0)
    return out


def test_the_crafted_file_would_run_its_code(tmp_path):
    """The test's own premise: loaded the unsafe way, the crafted file creates its marker."""
    marker = tmp_path / "marker"
    torch.load(_craft(tmp_path / "c.pth", marker), weights_only=False)
    assert marker.exists()


def test_the_loader_refuses_it_naming_file_and_type(tmp_path):
    marker = tmp_path / "marker"
    path = _craft(tmp_path / "c.pth", marker)
    with pytest.raises(CheckpointError, match=r"c\.pth: refused to load this checkpoint: it refers to io\.open"):
        load_checkpoint_file(path)
    with pytest.raises(CheckpointError, match="refused to load"):
        read_state_dict(path)
    assert not marker.exists()


def test_convert_checkpoint_refuses(tmp_path):
    marker, out = tmp_path / "marker", tmp_path / "converted.pth"
    path = _craft(tmp_path / "released.pth", marker)
    _refused(_apro("convert-checkpoint", PAPER, path, "--out", out), path, marker)
    assert not out.exists()


def test_evaluate_refuses(tmp_path, data):
    marker, out = tmp_path / "marker", tmp_path / "metrics.json"
    path = _craft(tmp_path / "model.pth", marker)
    _refused(_apro("evaluate", DEMO, path, "--data-root", data, "--out", out), path, marker)
    assert not out.exists()


def test_train_init_from_refuses_even_with_torchs_switch_set(tmp_path, data):
    """TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD would turn weights-only off for mmengine's loads: the suite ignores it."""
    marker = tmp_path / "marker"
    path = _craft(tmp_path / "start.pth", marker)
    proc = _apro("train", DEMO, "--work-dir", tmp_path / "w", "--data-root", data, "--max-iters", 1,
                 "--init-from", path, env={"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"})
    _refused(proc, path, marker)
    assert "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD is ignored" in proc.stderr


def test_visualize_refuses(tmp_path, data):
    marker = tmp_path / "marker"
    work = tmp_path / "trained"
    work.mkdir()
    path = _craft(work / "iter_1.pth", marker)
    (work / "done.json").write_text(json.dumps({"checkpoint": str(path)}))
    _refused(_apro("visualize", "--data-root", data, "--out", tmp_path / "figs", "--images", 1, "--no-photo",
                   "--config", DEMO, "--work-dir", work), path, marker)


def test_resume_refuses_a_planted_checkpoint_and_resumes_its_own(tmp_path, data):
    """A work dir of this run whose last checkpoint was replaced: the resume names it and runs nothing; this
    suite's own checkpoint (no global outside the allow-list) resumes."""
    work = tmp_path / "w"
    args = ("train", DEMO, "--work-dir", work, "--data-root", data, "--max-iters", 2, "--threads", 1)
    assert _apro(*args).returncode == 0
    done = json.loads((work / "done.json").read_text())
    own = Path(done["checkpoint"])
    assert torch.serialization.get_unsafe_globals_in_checkpoint(str(own)) == []
    assert load_checkpoint_file(own)["meta"]["iter"] == 2
    (work / "done.json").unlink()
    assert _apro(*args).returncode == 0  # resumed from its own last checkpoint
    assert json.loads((work / "done.json").read_text())["resumed_from"] == str(own)

    (work / "done.json").unlink()
    marker = tmp_path / "marker"
    saved = own.read_bytes()
    _craft(own, marker)
    _refused(_apro(*args), own, marker)
    own.write_bytes(saved)


def test_release_shaped_checkpoints_load(tmp_path):
    """The release's files: mmcv 1.x's meta (config text, class names, numpy values) beside the weights and
    the optimiser state, as its runner saves them."""
    meta = {"config": "model = dict(type='BoxSOLOv2')", "CLASSES": ("person", "chair"), "mmcv_version": "1.6.0",
            "seed": np.int64(7), "hook_msgs": {"best_score": np.float64(0.384), "last_ckpt": "epoch_36.pth"},
            "scales": np.array([[1333, 800], [1333, 640]]), "dtype": np.dtype("float32")}
    state = {"bbox_head.solo_mask.weight": torch.randn(4, 4, 1, 1)}
    opt = {"state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.zeros(4)}},
           "param_groups": [{"lr": 1e-4, "betas": (0.9, 0.999), "amsgrad": False, "params": [0]}]}
    path = tmp_path / "released.pth"
    torch.save({"meta": meta, "state_dict": state, "optimizer": opt}, path)
    loaded = load_checkpoint_file(path)
    assert loaded["meta"]["hook_msgs"]["best_score"] == pytest.approx(0.384)
    assert np.array_equal(loaded["meta"]["scales"], meta["scales"])
    assert torch.equal(read_state_dict(path)["bbox_head.solo_mask.weight"], state["bbox_head.solo_mask.weight"])


def test_the_allow_list_is_numpy_values_only():
    names = {t[1] if isinstance(t, tuple) else f"{t.__module__}.{t.__qualname__}" for t in checkpoints.allowed_types()}
    assert all(n.startswith("numpy") for n in names), names
    assert "numpy.core.multiarray.scalar" in names and "numpy._core.multiarray.scalar" in names
