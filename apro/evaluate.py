"""Evaluate a trained mmdet model on the validation split (``apro evaluate``).

    python -m apro.evaluate CONFIG CHECKPOINT --data-root DATA --out metrics.json
                            [--seed 0] [--threads 1]

Runs inference on the config's test dataset (the val split under
``--data-root``) and computes COCO mask AP / AP50 / AP75 with pycocotools
(``COCOeval``, ``iouType='segm'``) against the split's annotation file.
Writes ``metrics.json`` atomically: AP, AP50, AP75 (percent), the seed, the
sha256 of the config file, package versions and the wall time, plus a
class-agnostic mask-quality diagnostic (``diagnostics``: for every GT instance
the best IoU of any predicted mask; mean and share >= 0.5 / 0.75).
``CHECKPOINT`` may also be a training work dir with a ``done.json``.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import time
from pathlib import Path
from typing import List, Optional, Sequence

from apro.io import file_sha256, write_json_atomic
from apro.train import DONE_FILE, TrainError, load_config, set_threads


def _resolve_checkpoint(checkpoint: str) -> Path:
    path = Path(checkpoint)
    if path.is_dir():
        done = path / DONE_FILE
        if not done.is_file():
            raise TrainError(f"checkpoint {checkpoint}: a folder without {DONE_FILE} (training not finished?)")
        path = Path(json.loads(done.read_text())["checkpoint"])
    if not path.is_file():
        raise TrainError(f"checkpoint {checkpoint}: no such file (expected a .pth from apro train)")
    return path


def build_model(cfg):
    """The (untrained) mmdet model of a loaded config, with mmdet's and the config's plugin modules registered."""
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.registry import init_default_scope
    from mmengine.utils import import_modules_from_strings

    register_all_modules(init_default_scope=False)
    init_default_scope(cfg.get("default_scope", "mmdet"))
    if cfg.get("custom_imports"):
        import_modules_from_strings(**cfg.custom_imports)
    return MODELS.build(cfg.model)


def predict(cfg, checkpoint: Path) -> tuple[list, "object"]:
    """Runs the model over ``cfg.test_dataloader``; returns COCO results and the dataset."""
    import numpy as np
    import torch
    from mmengine.dataset import pseudo_collate
    from mmengine.runner import load_checkpoint
    from pycocotools import mask as mask_util

    from mmdet.registry import DATASETS

    model = build_model(cfg)
    load_checkpoint(model, str(checkpoint), map_location="cpu", logger="silent")
    if torch.cuda.is_available():  # the data preprocessor moves each batch to the model's device
        model = model.cuda()
    model.eval()
    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    cat_ids = list(dataset.cat_ids)
    batch_size = int(cfg.test_dataloader.get("batch_size", 1))
    results: List[dict] = []
    n = len(dataset)
    t0 = time.time()
    with torch.no_grad():
        for start in range(0, n, batch_size):
            batch = pseudo_collate([dataset[i] for i in range(start, min(n, start + batch_size))])
            for sample in model.test_step(batch):
                pred = sample.pred_instances
                masks = pred.masks.cpu().numpy().astype(np.uint8)
                scores = pred.scores.cpu().numpy()
                labels = pred.labels.cpu().numpy()
                for mask, score, label in zip(masks, scores, labels):
                    rle = mask_util.encode(np.asfortranarray(mask))
                    rle["counts"] = rle["counts"].decode("ascii")
                    results.append({"image_id": int(sample.img_id), "category_id": int(cat_ids[int(label)]),
                                    "segmentation": rle, "score": float(score)})
            done = min(n, start + batch_size)
            if done == n or (done // batch_size) % 5 == 0:
                spent = time.time() - t0
                print(f"apro evaluate: {done}/{n} images ({spent:.0f} s, {spent / done:.2f} s per image, "
                      f"about {spent / done * (n - done) / 60:.0f} min left)", flush=True)
    return results, dataset


def coco_segm_ap(ann_file: str, results: list) -> dict:
    """COCO mask AP, AP50, AP75 (percent) of ``results`` against ``ann_file``."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(ann_file)
    if not results:
        return {"AP": 0.0, "AP50": 0.0, "AP75": 0.0, "num_detections": 0}
    dt = gt.loadRes(results)
    ev = COCOeval(gt, dt, iouType="segm")
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    stats = [max(0.0, float(s)) * 100.0 for s in ev.stats[:3]]
    return {"AP": round(stats[0], 3), "AP50": round(stats[1], 3), "AP75": round(stats[2], 3),
            "num_detections": len(results)}


def best_iou_per_instance(ann_file: str, results: list) -> dict:
    """Class- and score-agnostic mask quality: for every GT instance, the best IoU of any predicted mask
    of its image. A diagnostic next to AP (which also needs the right class and a good ranking)."""
    from pycocotools import mask as mask_util
    from pycocotools.coco import COCO

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(ann_file)
    by_image: dict = {}
    for r in results:
        by_image.setdefault(r["image_id"], []).append(r["segmentation"])
    best = []
    for img_id in gt.getImgIds():
        anns = gt.loadAnns(gt.getAnnIds(imgIds=img_id, iscrowd=False))
        if not anns:
            continue
        dets = by_image.get(img_id, [])
        if not dets:
            best.extend([0.0] * len(anns))
            continue
        gts = [gt.annToRLE(a) for a in anns]
        ious = mask_util.iou(dets, gts, [0] * len(gts))  # (num_dets, num_gts)
        best.extend(float(v) for v in ious.max(axis=0))
    n = max(1, len(best))
    return {"best_iou_mean": round(sum(best) / n, 4), "best_iou_ge50": round(sum(b >= 0.5 for b in best) / n, 4),
            "best_iou_ge75": round(sum(b >= 0.75 for b in best) / n, 4), "num_instances": len(best)}


def evaluate(config: str, checkpoint: str, data_root: str, out: str, seed: int = 0,
             threads: Optional[int] = 1) -> dict:
    os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    threads = set_threads(threads)
    t0 = time.time()
    ckpt = _resolve_checkpoint(checkpoint)
    cfg = load_config(config, data_root, seed, splits=("val",))
    import torch

    torch.manual_seed(seed)
    results, dataset = predict(cfg, ckpt)
    metrics = coco_segm_ap(dataset.ann_file, results)
    metrics["diagnostics"] = best_iou_per_instance(dataset.ann_file, results)

    import mmcv
    import mmdet
    import mmengine

    record = {
        **metrics,
        "seed": int(seed),
        "config": str(Path(config).resolve()),
        "config_sha256": file_sha256(config),
        "checkpoint": str(ckpt),
        "num_images": len(dataset),
        "versions": {"torch": torch.__version__, "mmdet": mmdet.__version__, "mmcv": mmcv.__version__,
                     "mmengine": mmengine.__version__},
        "threads": threads,
        "wall_s": round(time.time() - t0, 1),
    }
    write_json_atomic(out, record)
    print(f"apro evaluate: mask AP {record['AP']:.1f}  AP50 {record['AP50']:.1f}  AP75 {record['AP75']:.1f} "
          f"-> {out}", flush=True)
    return record


def build_parser(parser: Optional[argparse.ArgumentParser] = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="apro evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("config", help="mmdet config file used for training")
    parser.add_argument("checkpoint", help="checkpoint (.pth) or the training work dir holding done.json")
    parser.add_argument("--data-root", required=True, help="COCO-format dataset folder (val/, annotations/)")
    parser.add_argument("--out", required=True, help="metrics JSON to write")
    parser.add_argument("--seed", type=int, default=0, help="seed recorded with the metrics (default 0)")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for torch (default: $APRO_THREADS, else 1)")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        evaluate(args.config, args.checkpoint, args.data_root, args.out, seed=args.seed, threads=args.threads)
    except TrainError as exc:
        print(f"apro evaluate: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
