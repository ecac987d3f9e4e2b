"""Train an mmdet model of the suite (``apro train``).

    python -m apro.train CONFIG --work-dir DIR --data-root DATA [--seed 0]
                         [--max-iters N] [--threads 1] [--init-from CKPT]

Builds an mmengine ``Runner`` from the config with the data root and the seed
set, trains with checkpointing (the last checkpoint is kept), resumes from the
last checkpoint in ``--work-dir`` when there is one (a killed job picks up
where it stopped; otherwise ``--init-from`` gives the starting weights) and,
on completion, writes ``<work-dir>/done.json`` (via a temporary file and
``os.replace``) naming the final checkpoint. A work dir with a valid
``done.json`` is left alone.

The number of CPU threads is ``--threads`` (default: the ``APRO_THREADS``
environment variable, else 1).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Optional, Sequence, Tuple

from apro import runs
from apro.io import file_sha256, write_json_atomic
from apro.runs import RunError

DONE_FILE = "done.json"


class TrainError(Exception):
    """A user-facing error (bad argument or input file)."""


def set_threads(threads: Optional[int]) -> int:
    """Sets the number of torch/OpenMP threads; returns it."""
    if threads is None:
        env = os.environ.get("APRO_THREADS", "1")
        try:
            threads = int(env)
        except ValueError:
            raise TrainError(f"APRO_THREADS={env!r}: expected a positive integer") from None
    if threads < 1:
        raise TrainError(f"--threads: expected a positive integer, got {threads}")
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    import torch

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set in this process
        pass
    return threads


def _check_data_root(data_root: str, splits: Sequence[str] = ("train", "val")) -> Path:
    root = Path(data_root)
    missing = [p for split in splits for p in (f"annotations/instances_{split}.json", split)
               if not (root / p).exists()]
    if missing:
        raise TrainError(f"--data-root {data_root}: expected a COCO-format dataset folder with "
                         f"{', '.join(s + '/' for s in splits)} and annotations/instances_<split>.json; "
                         f"missing {', '.join(missing)}")
    return root


def load_config(config: str, data_root: Optional[str] = None, seed: Optional[int] = None,
                splits: Sequence[str] = ("train", "val")):
    """Loads an mmdet config and points every dataset/evaluator at ``data_root``
    (which must hold ``splits``)."""
    from mmengine.config import Config

    if not Path(config).is_file():
        raise TrainError(f"config {config}: no such file (expected an mmdet config, e.g. experiments/demo/box.py)")
    cfg = Config.fromfile(config)
    if data_root is not None:
        root = str(_check_data_root(data_root, splits).resolve()) + os.sep
        cfg.data_root = root
        for key in ("train_dataloader", "val_dataloader", "test_dataloader"):
            loader = cfg.get(key)
            if loader is not None and loader.get("dataset") is not None:
                loader.dataset.data_root = root
        for key in ("val_evaluator", "test_evaluator"):
            ev = cfg.get(key)
            if ev is not None and ev.get("ann_file"):
                ev.ann_file = os.path.join(root, "annotations", os.path.basename(ev.ann_file))
    if seed is not None:
        cfg.randomness = dict(seed=int(seed), deterministic=False)
    return cfg


def _set_max_iters(cfg, max_iters: int) -> None:
    """Shortens/lengthens the schedule, scaling the LR schedule and the pairwise warm-ups with it
    (SOLOv2's ``mask_head.pairwise_warmup_iters``, the semantic segmentor's ``apro_loss.warmup_iters``)."""
    if max_iters < 1:
        raise TrainError(f"--max-iters: expected a positive integer, got {max_iters}")
    old = int(cfg.train_cfg.max_iters)
    cfg.train_cfg.max_iters = int(max_iters)
    ratio = max_iters / old
    for sched in cfg.get("param_scheduler", []) or []:
        if sched.get("by_epoch", True):
            continue
        for key in ("end", "T_max"):
            if key in sched and sched[key] is not None:
                sched[key] = int(max_iters) if sched[key] >= old else min(int(sched[key]), int(max_iters))
        if "milestones" in sched:
            sched["milestones"] = [max(1, int(round(m * ratio))) for m in sched["milestones"]]
    model = cfg.get("model", {})
    for owner, key in ((model.get("mask_head"), "pairwise_warmup_iters"), (model.get("apro_loss"), "warmup_iters")):
        if owner and owner.get(key):
            owner[key] = max(1, int(round(owner[key] * ratio)))
    ckpt = cfg.default_hooks.get("checkpoint")
    if ckpt is not None and ckpt.get("interval", 1) > max_iters:
        ckpt.interval = int(max_iters)


def read_done(work_dir: os.PathLike) -> Optional[dict]:
    """The completion marker of ``work_dir`` if it is valid (its checkpoint exists)."""
    path = Path(work_dir) / DONE_FILE
    try:
        done = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    ckpt = done.get("checkpoint")
    if not ckpt or not Path(ckpt).is_file():
        return None
    return done


def init_checkpoint(init_from: os.PathLike) -> Path:
    """The checkpoint named by ``--init-from``: a ``.pth`` file, or the ``done.json``
    of a finished training (its final checkpoint)."""
    path = Path(init_from)
    if path.suffix == ".json":
        done = read_done(path.parent) if path.name == DONE_FILE else None
        if done is None:
            raise TrainError(f"--init-from {init_from}: expected the done.json of a finished training "
                             "(naming an existing checkpoint)")
        path = Path(done["checkpoint"])
    if not path.is_file():
        raise TrainError(f"--init-from {init_from}: no such checkpoint file")
    return path.resolve()


def run_training(cfg, work_dir: os.PathLike, prog: str = "apro train",
                 init_from: Optional[os.PathLike] = None) -> Tuple[Path, float, Optional[str]]:
    """Runs mmengine's ``Runner`` on ``cfg`` in ``work_dir``: resumes from the work dir's
    last checkpoint when there is one, else starts from ``init_from``'s weights (or from
    scratch). Returns (final checkpoint, wall seconds of this run, checkpoint resumed from)."""
    work = Path(work_dir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    cfg.work_dir = str(work)
    last = work / "last_checkpoint"
    resumed_from = last.read_text().strip() if last.is_file() else None
    if resumed_from:
        # resume=True with load_from=None: mmengine resumes from <work_dir>/last_checkpoint
        print(f"{prog}: resuming from {resumed_from}", flush=True)
        cfg.resume, cfg.load_from = True, None
    elif init_from is not None:
        # weights only: the schedule, optimiser state and iteration count start afresh
        cfg.resume, cfg.load_from = False, str(init_checkpoint(init_from))
    else:
        cfg.resume, cfg.load_from = False, None

    from mmengine.runner import Runner

    t0 = time.time()
    Runner.from_cfg(cfg).train()
    wall = time.time() - t0
    ckpt = work / f"iter_{int(cfg.train_cfg.max_iters)}.pth"
    if not ckpt.is_file() and last.is_file():
        ckpt = Path(last.read_text().strip())
    if not ckpt.is_file():
        raise TrainError(f"training finished but no checkpoint was found in {work}")
    return ckpt, wall, resumed_from


def train(config: str, work_dir: str, data_root: str, seed: int = 0, max_iters: Optional[int] = None,
          threads: Optional[int] = 1, init_from: Optional[str] = None) -> dict:
    """Trains (or resumes) and returns the contents of ``<work_dir>/done.json``."""
    os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")  # mmengine checkpoints hold non-tensors
    threads = set_threads(threads)
    cfg = load_config(config, data_root, seed)  # checks the config and the data root
    init = None if init_from is None else init_checkpoint(init_from)  # also checks it early
    # a work dir of other settings is moved aside, not resumed (rank 0 decides under torchrun)
    runs.prepare_work_dir(work_dir, runs.fingerprint(config, runs.instance_data(data_root), seed, max_iters, init),
                          "apro train")
    done = read_done(work_dir)
    if done is not None:
        print(f"apro train: {work_dir} is already complete ({done['checkpoint']}); nothing to do", flush=True)
        return done
    if max_iters is not None:
        _set_max_iters(cfg, max_iters)
    ckpt, wall, resumed_from = run_training(cfg, work_dir, "apro train", init)
    import mmdet
    import torch

    done = {
        "checkpoint": str(ckpt),
        "config": str(Path(config).resolve()),
        "config_sha256": file_sha256(config),
        "seed": int(seed),
        "max_iters": int(cfg.train_cfg.max_iters),
        "threads": threads,
        "wall_s": round(wall, 1),  # of this invocation (after a resume: of the resumed part)
        "resumed_from": resumed_from,
        "init_from": None if init is None else str(init),
        "versions": {"torch": torch.__version__, "mmdet": mmdet.__version__},
    }
    write_json_atomic(Path(work_dir) / DONE_FILE, done)
    print(f"apro train: done in {wall:.0f} s; checkpoint {ckpt}", flush=True)
    return done


def build_parser(parser: Optional[argparse.ArgumentParser] = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="apro train", description=__doc__.split("\n\n")[0])
    parser.add_argument("config", help="mmdet config file, e.g. experiments/demo/box_gp_lp.py")
    parser.add_argument("--work-dir", required=True, help="output folder (checkpoints, logs, done.json)")
    parser.add_argument("--data-root", required=True, help="COCO-format dataset folder (train/, val/, annotations/)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--max-iters", type=int, default=None, help="override the config's number of iterations")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for torch (default: $APRO_THREADS, else 1)")
    parser.add_argument("--init-from", default=None,
                        help="checkpoint (.pth, or the done.json of a finished training) whose model weights "
                             "start this training; its optimiser state and iteration count are not used")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        train(args.config, args.work_dir, args.data_root, seed=args.seed, max_iters=args.max_iters,
              threads=args.threads, init_from=args.init_from)
    except TrainError as exc:
        print(f"apro train: error: {exc}", file=sys.stderr)
        return 2
    except RunError as exc:  # a rank that waited in vain for rank 0
        print(f"apro train: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
