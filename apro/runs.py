"""The run policy of every training and evaluation (``apro train`` / ``apro evaluate``, mmdet or mmseg,
alone or under torchrun): thread settings, config and data-root checks, the schedule override,
checkpoint resolution and the stale-work-dir rule.

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

import contextlib
import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Iterable, Optional, Sequence, Union

from apro import layout
from apro.errors import InputError, RunFailed
from apro.io import file_sha256, write_json_atomic

RUN_FILE = "apro_run.json"
#: a finished training's marker: the final checkpoint, the settings, the wall time
DONE_FILE = "done.json"

#: how long a rank other than 0 waits for rank 0's decision (seconds)
RANK_WAIT_S = 600.0


class TrainError(InputError):
    """A bad argument or input of a training or evaluation (config, data root, checkpoint)."""


class RunError(RunFailed):
    """A work dir that cannot be prepared, or a training that left no checkpoint."""


def set_threads(threads: Optional[int]) -> int:
    """Sets the number of torch/OpenMP threads (``None``: ``$APRO_THREADS``, else 1); returns it."""
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


def hardware() -> dict:
    """The machine a run ran on: CPU model, cores, AVX-512 or not (training speed differs ~3x between the
    kinds of this project's CPU machines), and the GPUs torch sees."""
    cpu, avx512 = "unknown", False
    try:
        text = Path("/proc/cpuinfo").read_text()
        cpu = next((ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("model name")), cpu)
        avx512 = "avx512f" in text
    except OSError:
        pass
    import platform

    import torch

    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    return {"cpu": cpu, "cores": os.cpu_count(), "avx512": avx512, "gpus": gpus, "machine": platform.machine()}


def is_semantic(cfg) -> bool:
    """Whether a loaded config is an mmseg one (the semantic suite) rather than mmdet."""
    return cfg.get("default_scope", "mmdet") == "mmseg"


def validate_instance_data(data_root: Union[str, os.PathLike], splits: Sequence[str] = ("train", "val"),
                           cfg=None, config: str = "", read_images: bool = True) -> dict:
    """Checks ``<data_root>/annotations/instances_<split>.json`` and the images under ``<data_root>/<split>/``
    (:mod:`apro.data.checks`; with ``cfg``, also that its classes hold the categories); returns counts per split,
    with the annotations mmdet drops counted per reason (printed as warnings).

    Raises TrainError listing every error found.
    """
    from apro.data import checks

    root = Path(data_root)
    if not root.is_dir():
        raise TrainError(f"--data-root {root}: no such folder (expected train/, val/ and annotations/ in COCO format; "
                         "`apro make-data` writes the synthetic one)")
    found = []
    for split in splits:
        try:
            check = checks.check_split(root, split, train=split == "train", read_images=read_images)
        except ValueError as exc:
            raise TrainError(f"--data-root {root}: bad annotation file: {exc}") from None
        if cfg is not None:
            checks.check_classes(check, *checks.config_classes(cfg), config)
        found.append(check)
    checks.raise_errors(found, TrainError)
    for line in checks.warning_lines(found):
        print(f"warning: {line}", file=sys.stderr, flush=True)
    return {"data_root": str(root), "splits": {c.split: c.summary() for c in found}}


def _point_instance_config(cfg, root: str) -> None:
    cfg.data_root = root
    for key in ("train_dataloader", "val_dataloader", "test_dataloader"):
        loader = cfg.get(key)
        if loader is not None and loader.get("dataset") is not None:
            loader.dataset.data_root = root
    for key in ("val_evaluator", "test_evaluator"):
        ev = cfg.get(key)
        if ev is not None and ev.get("ann_file"):
            ev.ann_file = os.path.join(root, "annotations", os.path.basename(ev.ann_file))


def _point_semantic_config(cfg, config: str, data_root: str, label_root: Optional[str],
                           splits: Sequence[str]) -> None:
    from apro.data.sparse_labels import KINDS  # the label folders of apro make-sparse-labels

    kind = cfg.get("labels", "full")
    if kind not in KINDS:
        raise TrainError(f"config {config}: labels = {kind!r}; expected one of {', '.join(KINDS)}")
    if label_root is None:
        raise TrainError(f"config {config} is an mmseg config: --label-root is required "
                         "(the label folder of apro make-sparse-labels)")
    kinds = sorted({kind, "full"} if "train" in splits else {"full"})
    missing = [f"{data_root}/{s}" for s in splits if not (Path(data_root) / s).is_dir()]
    missing += [f"{label_root}/{s}/{k}" for s in splits for k in kinds if not (Path(label_root) / s / k).is_dir()]
    if missing:
        raise TrainError(f"--data-root {data_root} / --label-root {label_root}: expected image folders <data-root>/"
                         f"<split>/ and label folders <label-root>/<split>/<kind>/ (apro make-sparse-labels); "
                         f"missing {', '.join(missing)}")
    root = str(Path(data_root).resolve()) + os.sep
    labels = Path(label_root).resolve()
    cfg.data_root = root
    for key, split, k in (("train_dataloader", "train", kind), ("val_dataloader", "val", "full"),
                          ("test_dataloader", "val", "full")):
        loader = cfg.get(key)
        if loader is not None and loader.get("dataset") is not None:
            loader.dataset.data_root = root
            loader.dataset.data_prefix = dict(img_path=split, seg_map_path=str(labels / split / k))


def load_config(config: str, data_root: Optional[str] = None, seed: Optional[int] = None,
                splits: Optional[Sequence[str]] = None, label_root: Optional[str] = None):
    """Loads an mmdet or mmseg config and points every dataset and evaluator at ``data_root``
    (an mmseg config also reads its labels from ``label_root``). ``data_root`` must hold ``splits``;
    default: what a training reads (mmdet: train and val; mmseg: train)."""
    from mmengine.config import Config

    if not Path(config).is_file():
        raise TrainError(f"config {config}: no such file (expected an mmdet or mmseg config, "
                         "e.g. experiments/demo/box.py or experiments/semantic/point.py)")
    cfg = Config.fromfile(config)
    if data_root is not None:
        if is_semantic(cfg):
            _point_semantic_config(cfg, config, data_root, label_root, splits or ("train",))
        else:
            validate_instance_data(data_root, splits or ("train", "val"), cfg, config, read_images=False)
            _point_instance_config(cfg, str(Path(data_root).resolve()) + os.sep)
    if seed is not None:
        cfg.randomness = dict(seed=int(seed), deterministic=False)
    return cfg


def set_max_iters(cfg, max_iters: int) -> None:
    """Shortens/lengthens the schedule, scaling the LR schedule and the pairwise warm-ups with it
    (SOLOv2's ``mask_head.pairwise_warmup_iters``, the semantic segmentor's ``apro_loss.warmup_iters``)."""
    if max_iters < 1:
        raise TrainError(f"--max-iters: expected a positive integer, got {max_iters}")
    old = int(cfg.train_cfg.max_iters)
    cfg.train_cfg.max_iters = int(max_iters)
    ratio = max_iters / old
    schedulers = cfg.get("param_scheduler") or []
    for sched in [schedulers] if isinstance(schedulers, dict) else schedulers:  # one scheduler, or a list
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
    from apro.checkpoints import load_checkpoint_file

    load_checkpoint_file(path, "--init-from checkpoint")  # weights-only: a file holding code is refused here
    return path.resolve()


def trained_checkpoint(checkpoint: os.PathLike) -> Path:
    """The checkpoint to evaluate: a ``.pth`` file, or a training work dir holding ``done.json``."""
    path = Path(checkpoint)
    if path.is_dir():
        done = path / DONE_FILE
        if not done.is_file():
            raise TrainError(f"checkpoint {checkpoint}: a folder without {DONE_FILE} (training not finished?)")
        path = Path(json.loads(done.read_text())["checkpoint"])
    if not path.is_file():
        raise TrainError(f"checkpoint {checkpoint}: no such file (expected a .pth from apro train)")
    from apro.checkpoints import load_checkpoint_file

    load_checkpoint_file(path, "checkpoint")  # weights-only: a file holding code is refused before mmengine reads it
    return path


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


def rank_and_world() -> tuple[int, int]:
    """This process's rank and the number of processes (torchrun's RANK and WORLD_SIZE; 0 and 1 without)."""
    return int(os.environ.get("RANK", "0") or 0), int(os.environ.get("WORLD_SIZE", "1") or 1)


def distribute_on_cpus(cfg) -> None:
    """Readies ``cfg`` for torchrun on CPU processes (no CUDA): mmengine's pytorch launcher assumes GPUs
    (``torch.cuda.set_device``, DDP with ``device_ids=[LOCAL_RANK]``). Starts the gloo process group here,
    which mmengine then finds initialised, and wraps the model in DDP without device ids."""
    import torch
    import torch.distributed as dist

    if cfg.get("launcher", "none") == "none" or torch.cuda.is_available():
        return
    cfg.env_cfg = {**cfg.get("env_cfg", {}), "dist_cfg": {**cfg.get("env_cfg", {}).get("dist_cfg", {}),
                                                            "backend": "gloo"}}
    if not dist.is_initialized():
        dist.init_process_group("gloo")
    wrapper = dict(cfg.get("model_wrapper_cfg") or {})
    wrapper.setdefault("type", "MMDistributedDataParallel")
    wrapper.setdefault("broadcast_buffers", False)
    wrapper.setdefault("find_unused_parameters", cfg.get("find_unused_parameters", False))
    cfg.model_wrapper_cfg = {**wrapper, "device_ids": None}


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
    rank, world = rank_and_world()
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


# ---------------------------------------------------------------- what a step records of itself

RUNNING, DONE, FAILED = "running", "done", "failed"


def _usage() -> tuple:
    """(peak resident memory in MB, CPU seconds) of this process and its children so far."""
    import resource

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    peak_kb = max(own.ru_maxrss, kids.ru_maxrss)  # kilobytes on Linux
    return round(peak_kb / 1024, 1), round(own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime, 1)


@contextlib.contextmanager
def recorded(output: Union[str, os.PathLike], step: str, argv: Optional[Sequence[str]] = None):
    """Writes ``apro.layout.run_record(output)`` (atomically) when ``step`` starts (status ``running``) and when
    it ends (``done``, or ``failed`` with the error): start and end times, wall time, peak memory and CPU time
    of the process and its children, the command line. The reports read these, not the workflow's logs. Under
    torchrun only rank 0 writes."""
    from datetime import datetime, timezone

    if rank_and_world()[0] != 0:
        yield
        return
    path = Path(layout.run_record(str(output)))
    record = {"step": step, "output": str(output), "status": RUNNING,
              "argv": list(sys.argv if argv is None else argv), "host": os.uname().nodename,
              "start": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    write_json_atomic(path, record)
    t0 = time.time()
    status, error = DONE, None
    try:
        yield
    except BaseException as exc:
        status, error = FAILED, f"{type(exc).__name__}: {exc}"
        raise
    finally:
        peak, cpu = _usage()
        record.update(status=status, end=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                      wall_s=round(time.time() - t0, 1), peak_rss_mb=peak, cpu_s=cpu)
        if error:
            record["error"] = error[-2000:]
        write_json_atomic(path, record)
