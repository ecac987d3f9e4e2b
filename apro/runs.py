"""The run policy every trainer follows (``apro train``, ``apro train-semantic``, either under torchrun).

A training's work dir holds ``apro_run.json``, the fingerprint of what decides its result: the
config and the local files it inherits (by content), the training data, the seed, the number of
iterations and the starting weights. :func:`prepare_work_dir` keeps a work dir for a resume only
when its fingerprint is the same; a work dir of other settings is renamed to
``<work_dir>.stale-<time>`` (kept, never deleted) and training starts afresh, instead of resuming
(or reporting) a run of other settings.

Under torchrun every rank calls it: rank 0 decides (moves, writes the fingerprint), the other
ranks wait until the work dir holds this run's fingerprint, so no rank renames a folder another
one is using.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Iterable, Optional, Union

from apro.io import file_sha256, write_json_atomic

RUN_FILE = "apro_run.json"
#: how long a rank other than 0 waits for rank 0's decision (seconds)
RANK_WAIT_S = 600.0


class RunError(RuntimeError):
    """A work dir that cannot be prepared; names the folder and what was expected."""


def tree_sha256(folders: Iterable[Union[str, os.PathLike]]) -> str:
    """sha256 of the files under ``folders`` (relative names and sizes: cheap, and a regenerated
    label folder of other content changes it in practice)."""
    h = hashlib.sha256()
    for folder in folders:
        root = Path(folder)
        for p in sorted(root.rglob("*")):
            if p.is_file():
                h.update(f"{p.relative_to(root)}\0{p.stat().st_size}\n".encode())
    return h.hexdigest()


def fingerprint(config: Union[str, os.PathLike], data: dict, seed: int, max_iters: Optional[int],
                init_checkpoint: Optional[Union[str, os.PathLike]] = None) -> dict:
    """What decides a training's result. ``data``: name -> digest of the training data."""
    from apro.registry import config_files

    files = config_files(config)  # the config first, then its bases; by content, so a moved checkout still resumes
    return {
        "config_files": [f.name for f in files],
        "config_sha256": [file_sha256(f) for f in files],
        **data,
        "seed": int(seed),
        "max_iters": max_iters,
        "init_sha256": None if init_checkpoint is None else file_sha256(init_checkpoint),
    }


def _rank() -> tuple[int, int]:
    return int(os.environ.get("RANK", "0") or 0), int(os.environ.get("WORLD_SIZE", "1") or 1)


def _read_run(work: Path) -> Optional[dict]:
    try:
        return json.loads((work / RUN_FILE).read_text())
    except (OSError, ValueError):
        return None


def prepare_work_dir(work_dir: Union[str, os.PathLike], run: dict, prog: str = "apro train",
                     wait_s: float = RANK_WAIT_S) -> Optional[Path]:
    """Keeps ``work_dir`` for a resume only if it holds this ``run``; else moves it aside (rank 0).

    Returns the new name of a moved work dir, else None. Ranks other than 0 return None once
    rank 0 has written this run's fingerprint; after ``wait_s`` they fail with :class:`RunError`.
    """
    work = Path(work_dir)
    rank, world = _rank()
    if world > 1 and rank != 0:
        deadline = time.monotonic() + wait_s
        while _read_run(work) != run:
            if time.monotonic() > deadline:
                raise RunError(f"{prog}: rank {rank} waited {wait_s:.0f} s for rank 0 to prepare {work} "
                               f"({RUN_FILE} with this run's settings); is rank 0 running?")
            time.sleep(0.2)
        return None
    moved = None
    previous = _read_run(work) if (work / RUN_FILE).is_file() else None
    if (work / RUN_FILE).is_file() and previous != run:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        moved = work.with_name(f"{work.name}.stale-{stamp}")
        n = 1
        while moved.exists():
            n += 1
            moved = work.with_name(f"{work.name}.stale-{stamp}-{n}")
        os.replace(work, moved)
        changed = sorted(k for k in run if not previous or previous.get(k) != run[k])
        print(f"{prog}: {work} holds a run with other settings ({', '.join(changed)} changed); "
              f"moved it to {moved} and starting afresh", file=sys.stderr, flush=True)
    write_json_atomic(work / RUN_FILE, run)
    return moved


def instance_data(data_root: Union[str, os.PathLike]) -> dict:
    """The training data of an mmdet run: its annotation file."""
    return {"train_annotations_sha256": file_sha256(Path(data_root) / "annotations" / "instances_train.json")}


def semantic_data(data_root: Union[str, os.PathLike], train_labels: Union[str, os.PathLike]) -> dict:
    """The training data of an mmseg run: its images and the label folder it trains on."""
    return {"train_images_sha256": tree_sha256([Path(data_root) / "train"]),
            "train_labels_sha256": tree_sha256([train_labels])}
