"""Train a model of the suite (``apro train``): an mmdet config (instance segmentation) or an mmseg
config (the semantic suite), told apart by the config's ``default_scope``.

Builds an mmengine ``Runner`` from the config with the data root and the seed set (an mmseg config
also reads its labels from ``label_root``), trains with checkpointing (the last checkpoint is kept),
resumes from the last checkpoint in ``work_dir`` when there is one (a killed job picks up where it
stopped; otherwise ``init_from`` gives the starting weights) and, on completion, writes
``<work_dir>/done.json`` atomically, naming the final checkpoint. A work dir with a valid
``done.json`` is left alone; one left by a run of other settings is moved aside
(:func:`apro.runs.prepare_work_dir`).
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Optional, Tuple

from apro import runs
from apro.io import file_sha256, write_json_atomic
from apro.runs import DONE_FILE, RunError, TrainError, init_checkpoint, read_done


def run_training(cfg, work_dir: os.PathLike, prog: str = "apro train",
                 init_from: Optional[os.PathLike] = None) -> Tuple[Path, float, Optional[str]]:
    """Runs mmengine's ``Runner`` on ``cfg`` in ``work_dir``: resumes from the work dir's
    last checkpoint when there is one, else starts from ``init_from``'s weights (or from
    scratch). Returns (final checkpoint, wall seconds of this run, checkpoint resumed from)."""
    from apro.checkpoints import allow_checkpoint_types, load_checkpoint_file, message_hub_hook

    work = Path(work_dir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    cfg.work_dir = str(work)
    # every checkpoint loaded weights-only (mmengine's loads too), every one saved so that it loads so
    allow_checkpoint_types()
    cfg.custom_hooks = [*cfg.get("custom_hooks", []), message_hub_hook()]
    last = work / "last_checkpoint"
    resumed_from = last.read_text().strip() if last.is_file() else None
    if resumed_from:
        # resume=True with load_from=None: mmengine resumes from <work_dir>/last_checkpoint
        print(f"{prog}: resuming from {resumed_from}", flush=True)
        load_checkpoint_file(resumed_from, "checkpoint to resume from")  # a refused file is named before mmengine
        cfg.resume, cfg.load_from = True, None
    elif init_from is not None:
        # weights only: the schedule, optimiser state and iteration count start afresh
        cfg.resume, cfg.load_from = False, str(init_checkpoint(init_from))
    else:
        cfg.resume, cfg.load_from = False, None

    from mmengine.runner import Runner

    runs.distribute_on_cpus(cfg)
    t0 = time.time()
    Runner.from_cfg(cfg).train()
    wall = time.time() - t0
    if runs.rank_and_world()[0] != 0:  # rank 0 saves the checkpoints and reports
        return None, wall, resumed_from
    ckpt = work / f"iter_{int(cfg.train_cfg.max_iters)}.pth"
    if not ckpt.is_file() and last.is_file():
        ckpt = Path(last.read_text().strip())
    if not ckpt.is_file():
        raise RunError(f"training finished but no checkpoint was found in {work}")
    return ckpt, wall, resumed_from


def versions(semantic: bool) -> dict:
    """The versions recorded with a training or evaluation."""
    import mmcv
    import mmengine
    import torch

    if semantic:
        import mmseg

        return {"torch": torch.__version__, "mmseg": mmseg.__version__, "mmcv": mmcv.__version__,
                "mmengine": mmengine.__version__}
    import mmdet

    return {"torch": torch.__version__, "mmdet": mmdet.__version__, "mmcv": mmcv.__version__,
            "mmengine": mmengine.__version__}


def train(config: str, work_dir: str, data_root: str, seed: int = 0, max_iters: Optional[int] = None,
          threads: Optional[int] = 1, init_from: Optional[str] = None, label_root: Optional[str] = None) -> dict:
    """Trains (or resumes) and returns the contents of ``<work_dir>/done.json``."""
    threads = runs.set_threads(threads)
    cfg = runs.load_config(config, data_root, seed, label_root=label_root)  # checks the config and the data
    semantic = runs.is_semantic(cfg)
    init = None if init_from is None else init_checkpoint(init_from)  # also checks it early
    if semantic:
        labels = Path(label_root) / "train" / cfg.get("labels", "full")
        data = runs.semantic_data(data_root, labels)
    else:
        data = runs.instance_data(data_root)
    # a work dir of other settings is moved aside, not resumed (rank 0 decides under torchrun)
    runs.prepare_work_dir(work_dir, runs.fingerprint(config, data, seed, max_iters, init), "apro train")
    done = read_done(work_dir)
    if done is not None:
        print(f"apro train: {work_dir} is already complete ({done['checkpoint']}); nothing to do", flush=True)
        return done
    if max_iters is not None:
        runs.set_max_iters(cfg, max_iters)
    ckpt, wall, resumed_from = run_training(cfg, work_dir, "apro train", init)
    rank, world = runs.rank_and_world()
    if rank != 0:  # one done.json, rank 0's
        return {"rank": rank, "world_size": world, "wall_s": round(wall, 1)}
    done = {"checkpoint": str(ckpt), "checkpoint_sha256": file_sha256(ckpt), "config": str(Path(config).resolve()),
            "config_sha256": file_sha256(config)}
    if semantic:
        done.update(labels=cfg.get("labels", "full"), label_root=str(Path(label_root).resolve()))
    done.update({
        "seed": int(seed),
        "max_iters": int(cfg.train_cfg.max_iters),
        "threads": threads,
        "processes": world,
        "wall_s": round(wall, 1),  # of this invocation (after a resume: of the resumed part)
        "resumed_from": resumed_from,
        "init_from": None if init is None else str(init),
        "versions": versions(semantic),
        "hardware": runs.hardware(),
    })
    write_json_atomic(Path(work_dir) / DONE_FILE, done)
    print(f"apro train: done in {wall:.0f} s; checkpoint {ckpt}", flush=True)
    return done


__all__ = ["TrainError", "run_training", "train", "versions"]
