"""Evaluate a trained model on the validation split (``apro evaluate``).

An mmdet config: runs inference on the config's test dataset (the val split under ``data_root``)
and computes COCO mask AP / AP50 / AP75 with pycocotools (``COCOeval``, ``iouType='segm'``) against
the split's annotation file (where not every annotation has a mask: the box AP of the predicted masks'
boxes, ``iou_type: bbox`` in metrics.json), plus a class-agnostic mask-quality diagnostic (``diagnostics``: for
every GT instance the best IoU of any predicted mask; mean and share >= 0.5 / 0.75).

An mmseg config (the semantic suite): mIoU, aAcc and mAcc with mmseg's ``IoUMetric`` (percent, over
the classes present in the val split) against the dense labels ``<label_root>/val/full``.

Writes ``metrics.json`` atomically: the metrics, the seed, the sha256 of the config file, package
versions and the wall time. ``checkpoint`` may also be a training work dir with a ``done.json``.
"""
from __future__ import annotations

import contextlib
import io
import tempfile
import time
from pathlib import Path
from typing import List, Optional

from apro import runs
from apro.io import file_sha256, write_json_atomic
from apro.runs import TrainError


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
    from mmdet.registry import DATASETS

    from apro.data.coco_io import mask_to_rle

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
                    results.append({"image_id": int(sample.img_id), "category_id": int(cat_ids[int(label)]),
                                    "segmentation": mask_to_rle(mask), "score": float(score)})
            done = min(n, start + batch_size)
            if done == n or (done // batch_size) % 5 == 0:
                spent = time.time() - t0
                print(f"apro evaluate: {done}/{n} images ({spent:.0f} s, {spent / done:.2f} s per image, "
                      f"about {spent / done * (n - done) / 60:.0f} min left)", flush=True)
    return results, dataset


def coco_ap(ann_file: str, results: list, iou_type: str = "segm") -> dict:
    """COCO mask AP, AP50, AP75 (percent) of ``results`` against ``ann_file``; with ``iou_type="bbox"`` the box
    AP of the predicted masks' boxes (pycocotools takes them from the masks)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(ann_file)
    if not results:
        return {"AP": 0.0, "AP50": 0.0, "AP75": 0.0, "num_detections": 0}
    dt = gt.loadRes(results)
    ev = COCOeval(gt, dt, iouType=iou_type)
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


def _evaluate_instances(cfg, ckpt: Path, seed: int) -> tuple[dict, int]:
    import torch

    from apro.data.checks import check_split

    torch.manual_seed(seed)
    results, dataset = predict(cfg, ckpt)
    masks = check_split(Path(dataset.ann_file).parent.parent, "val", read_images=False).masks
    if masks != "all":  # masks missing from some or all annotations: the boxes are what can be scored
        print(f"apro evaluate: {dataset.ann_file} has masks on {masks} of its annotations: box AP of the "
              "predicted masks' boxes instead of mask AP", flush=True)
        return {**coco_ap(dataset.ann_file, results, "bbox"), "iou_type": "bbox", "val_masks": masks}, \
            len(dataset)
    metrics = coco_ap(dataset.ann_file, results)
    metrics["diagnostics"] = best_iou_per_instance(dataset.ann_file, results)
    return {**metrics, "iou_type": "segm", "val_masks": masks}, len(dataset)


def _evaluate_semantic(cfg, ckpt: Path, config: str) -> dict:
    cfg.train_dataloader, cfg.train_cfg, cfg.optim_wrapper, cfg.param_scheduler = None, None, None, None
    cfg.load_from, cfg.resume = str(ckpt), False
    from mmengine.runner import Runner

    with tempfile.TemporaryDirectory(prefix="apro-eval-") as tmp:  # mmengine's logs of the test run
        cfg.work_dir = tmp
        metrics = Runner.from_cfg(cfg).test()
    if "mIoU" not in metrics:
        raise TrainError(f"config {config}: the test evaluator returned {sorted(metrics)}; expected mIoU "
                         "(test_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU']))")
    return {key: round(float(metrics.get(key, float("nan"))), 3) for key in ("mIoU", "aAcc", "mAcc")}


def evaluate(config: str, checkpoint: str, data_root: str, out: str, seed: int = 0,
             threads: Optional[int] = 1, label_root: Optional[str] = None) -> dict:
    from apro.train import versions

    threads = runs.set_threads(threads)
    t0 = time.time()
    ckpt = runs.trained_checkpoint(checkpoint)
    cfg = runs.load_config(config, data_root, seed, splits=("val",), label_root=label_root)
    semantic = runs.is_semantic(cfg)
    if semantic:
        record = _evaluate_semantic(cfg, ckpt, config)
        record.update(seed=int(seed), config=str(Path(config).resolve()), config_sha256=file_sha256(config),
                      checkpoint=str(ckpt))
    else:
        metrics, num_images = _evaluate_instances(cfg, ckpt, seed)
        record = {**metrics, "seed": int(seed), "config": str(Path(config).resolve()),
                  "config_sha256": file_sha256(config), "checkpoint": str(ckpt), "num_images": num_images}
    record.update(versions=versions(semantic), threads=threads, wall_s=round(time.time() - t0, 1))
    write_json_atomic(out, record)
    if semantic:
        print(f"apro evaluate: mIoU {record['mIoU']:.1f}  aAcc {record['aAcc']:.1f} -> {out}", flush=True)
    else:
        kind = "box" if record["iou_type"] == "bbox" else "mask"
        print(f"apro evaluate: {kind} AP {record['AP']:.1f}  AP50 {record['AP50']:.1f}  AP75 {record['AP75']:.1f} "
              f"-> {out}", flush=True)
    return record
