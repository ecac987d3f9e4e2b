"""Train and evaluate the mmseg models of the semantic suite.

    apro train-semantic CONFIG --work-dir DIR --data-root DATA --label-root LABELS
                        [--seed 0] [--max-iters N] [--threads 1]
    apro evaluate-semantic CONFIG CHECKPOINT --data-root DATA --label-root LABELS --out metrics.json

``DATA`` holds the images (``train/``, ``val/``; the synthetic COCO dataset of
``apro make-data``), ``LABELS`` the label PNGs of ``apro make-sparse-labels``
(``<split>/{full,point,scribble}/<stem>.png``, 255 = unlabelled). Training
reads ``LABELS/train/<labels>`` where ``labels`` is the config's variable
(``full``, ``point`` or ``scribble``); evaluation always reads the dense
``LABELS/val/full`` and computes mIoU with mmseg's ``IoUMetric`` (percent, over
the classes present in the val split).

Training works as ``apro train`` (resume from the last checkpoint, an atomic
``done.json`` on completion, a completed work dir is left alone);
``metrics.json`` holds mIoU, aAcc, mAcc, the seed, the config's sha256, the
package versions and the wall time.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional, Sequence

from apro import layout, runs
from apro.io import file_sha256, write_json_atomic
from apro.runs import RunError
from apro.train import (
    DONE_FILE,
    TrainError,
    _set_max_iters,
    read_done,
    run_training,
    set_threads,
)

KINDS = ("full", "point", "scribble")


def _check_dirs(data_root: str, label_root: str, splits: Sequence[str], kinds: Sequence[str]) -> None:
    missing = [f"{data_root}/{s}" for s in splits if not (Path(data_root) / s).is_dir()]
    missing += [f"{label_root}/{s}/{k}" for s in splits for k in kinds if not (Path(label_root) / s / k).is_dir()]
    if missing:
        raise TrainError(f"--data-root {data_root} / --label-root {label_root}: expected image folders <data-root>/"
                         f"<split>/ and label folders <label-root>/<split>/<kind>/ (apro make-sparse-labels); "
                         f"missing {', '.join(missing)}")


def load_semantic_config(config: str, data_root: str, label_root: str, seed: Optional[int] = None,
                         splits: Sequence[str] = ("train", "val")):
    """The mmseg config with every dataset pointed at ``data_root`` / ``label_root``."""
    from mmengine.config import Config

    if not Path(config).is_file():
        raise TrainError(f"config {config}: no such file (expected an mmseg config, e.g. experiments/semantic/point.py)")
    cfg = Config.fromfile(config)
    kind = cfg.get("labels", "full")
    if kind not in KINDS:
        raise TrainError(f"config {config}: labels = {kind!r}; expected one of {', '.join(KINDS)}")
    _check_dirs(data_root, label_root, splits, sorted({kind, "full"} if "train" in splits else {"full"}))
    root = str(Path(data_root).resolve()) + os.sep
    labels = Path(label_root).resolve()
    cfg.data_root = root
    for key, split, k in (("train_dataloader", "train", kind), ("val_dataloader", "val", "full"),
                          ("test_dataloader", "val", "full")):
        loader = cfg.get(key)
        if loader is not None and loader.get("dataset") is not None:
            loader.dataset.data_root = root
            loader.dataset.data_prefix = dict(img_path=split, seg_map_path=str(labels / split / k))
    if seed is not None:
        cfg.randomness = dict(seed=int(seed), deterministic=False)
    return cfg


def _versions() -> dict:
    import mmcv
    import mmengine
    import mmseg
    import torch

    return {"torch": torch.__version__, "mmseg": mmseg.__version__, "mmcv": mmcv.__version__,
            "mmengine": mmengine.__version__}


def train(config: str, work_dir: str, data_root: str, label_root: str, seed: int = 0,
          max_iters: Optional[int] = None, threads: Optional[int] = 1) -> dict:
    os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")  # mmengine checkpoints hold non-tensors
    threads = set_threads(threads)
    cfg = load_semantic_config(config, data_root, label_root, seed, splits=("train",))  # checks the folders
    labels = Path(label_root) / "train" / cfg.get("labels", "full")
    # a work dir of other settings is moved aside, not resumed (rank 0 decides under torchrun)
    runs.prepare_work_dir(work_dir, runs.fingerprint(config, runs.semantic_data(data_root, labels), seed, max_iters),
                          "apro train-semantic")
    done = read_done(work_dir)
    if done is not None:
        print(f"apro train-semantic: {work_dir} is already complete ({done['checkpoint']}); nothing to do", flush=True)
        return done
    if max_iters is not None:
        _set_max_iters(cfg, max_iters)
    ckpt, wall, resumed_from = run_training(cfg, work_dir, "apro train-semantic")
    total = int(cfg.train_cfg.max_iters)
    done = {"checkpoint": str(ckpt), "config": str(Path(config).resolve()), "config_sha256": file_sha256(config),
            "labels": cfg.get("labels", "full"), "label_root": str(Path(label_root).resolve()), "seed": int(seed),
            "max_iters": total, "threads": threads, "wall_s": round(wall, 1), "resumed_from": resumed_from,
            "versions": _versions()}
    write_json_atomic(Path(work_dir) / DONE_FILE, done)
    print(f"apro train-semantic: done in {wall:.0f} s; checkpoint {ckpt}", flush=True)
    return done


def evaluate(config: str, checkpoint: str, data_root: str, label_root: str, out: str, seed: int = 0,
             threads: Optional[int] = 1) -> dict:
    from apro.evaluate import _resolve_checkpoint

    os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    threads = set_threads(threads)
    t0 = time.time()
    ckpt = _resolve_checkpoint(checkpoint)
    cfg = load_semantic_config(config, data_root, label_root, seed, splits=("val",))
    cfg.train_dataloader, cfg.train_cfg, cfg.optim_wrapper, cfg.param_scheduler = None, None, None, None
    cfg.load_from, cfg.resume = str(ckpt), False
    from mmengine.runner import Runner

    with tempfile.TemporaryDirectory(prefix="apro-eval-") as tmp:  # mmengine's logs of the test run
        cfg.work_dir = tmp
        metrics = Runner.from_cfg(cfg).test()
    if "mIoU" not in metrics:
        raise TrainError(f"config {config}: the test evaluator returned {sorted(metrics)}; expected mIoU "
                         "(test_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU']))")
    record = {"mIoU": round(float(metrics["mIoU"]), 3), "aAcc": round(float(metrics.get("aAcc", float("nan"))), 3),
              "mAcc": round(float(metrics.get("mAcc", float("nan"))), 3), "seed": int(seed),
              "config": str(Path(config).resolve()), "config_sha256": file_sha256(config), "checkpoint": str(ckpt),
              "versions": _versions(), "threads": threads, "wall_s": round(time.time() - t0, 1)}
    write_json_atomic(out, record)
    print(f"apro evaluate-semantic: mIoU {record['mIoU']:.1f}  aAcc {record['aAcc']:.1f} -> {out}", flush=True)
    return record


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-root", required=True, help=f"image folder with train/ and val/ (e.g. {layout.data_dir('synthetic_seg')})")
    p.add_argument("--label-root", required=True,
                   help="label folder of apro make-sparse-labels (<split>/{full,point,scribble}/)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: $APRO_THREADS, else 1)")


def build_train_parser(parser: Optional[argparse.ArgumentParser] = None) -> argparse.ArgumentParser:
    p = parser or argparse.ArgumentParser(prog="apro train-semantic", description="Train an mmseg config of the suite.")
    p.add_argument("config", help="mmseg config, e.g. experiments/semantic/point_gp_lp.py")
    p.add_argument("--work-dir", required=True, help="output folder (checkpoints, logs, done.json)")
    p.add_argument("--max-iters", type=int, default=None, help="override the config's number of iterations")
    _common(p)
    return p


def build_eval_parser(parser: Optional[argparse.ArgumentParser] = None) -> argparse.ArgumentParser:
    p = parser or argparse.ArgumentParser(prog="apro evaluate-semantic",
                                          description="mIoU of a trained mmseg model on the val split.")
    p.add_argument("config", help="mmseg config used for training")
    p.add_argument("checkpoint", help="checkpoint (.pth) or the training work dir holding done.json")
    p.add_argument("--out", required=True, help="metrics JSON to write")
    _common(p)
    return p


def train_main(argv: Optional[Sequence[str]] = None) -> int:
    a = build_train_parser().parse_args(argv)
    try:
        train(a.config, a.work_dir, a.data_root, a.label_root, a.seed, a.max_iters, a.threads)
    except TrainError as exc:
        print(f"apro train-semantic: error: {exc}", file=sys.stderr)
        return 2
    except RunError as exc:  # a rank that waited in vain for rank 0
        print(f"apro train-semantic: error: {exc}", file=sys.stderr)
        return 1
    return 0


def evaluate_main(argv: Optional[Sequence[str]] = None) -> int:
    a = build_eval_parser().parse_args(argv)
    try:
        evaluate(a.config, a.checkpoint, a.data_root, a.label_root, a.out, a.seed, a.threads)
    except TrainError as exc:
        print(f"apro evaluate-semantic: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    cmd, rest = (sys.argv[1], sys.argv[2:]) if len(sys.argv) > 1 else ("", [])
    if cmd not in ("train", "evaluate"):
        print("usage: python -m apro.semantic.run {train|evaluate} ...", file=sys.stderr)
        sys.exit(2)
    sys.exit(train_main(rest) if cmd == "train" else evaluate_main(rest))
