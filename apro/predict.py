"""Masks predicted on any images (``apro predict``).

    apro predict CONFIG CHECKPOINT IMAGE_OR_FOLDER ... --out DIR [--score-thr 0.3] [--limit N]

CHECKPOINT is a ``.pth`` this suite loads (weights-only: :mod:`apro.checkpoints`), a training's work dir or
its ``done.json``, or a converted released checkpoint. Inference and drawing are mmdetection's own
(``DetInferencer`` builds the model and the config's test pipeline, its ``DetLocalVisualizer`` draws); per
image this writes, atomically:

* ``<stem>.json``: a COCO instance file of the one image (``images``, ``categories`` = the config's classes
  with ids 1..N in their order, ``annotations`` with ``segmentation`` as RLE, ``bbox`` of the mask, ``area``,
  ``score``), the predictions scoring at least ``--score-thr`` (an empty mask is no instance);
* ``<stem>.png``: the image with those masks, boxes and class names drawn over it;

and ``figures.json``, the list of overlays with a caption each (the HTML report shows it). Progress is
printed every few images, with the time left.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Iterable, List, Optional, Sequence

from apro.errors import InputError
from apro.io import atomic_file, write_json_atomic, write_png

#: the suffixes taken from a folder
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
#: mmdet's DetInferencer's default for what it draws and saves
SCORE_THR = 0.3


class PredictError(InputError):
    """A bad argument of ``apro predict``."""


def image_files(paths: Iterable[str], limit: Optional[int] = None) -> List[Path]:
    """The images named: files as given, folders' images sorted by name; each checked readable."""
    from apro.data.checks import image_size

    found: List[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found += sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())
        elif p.is_file():
            found.append(p)
        else:
            raise PredictError(f"{p}: no such file or folder (expected images, or folders of them)")
    if not found:
        raise PredictError(f"{', '.join(map(str, paths))}: no images (expected files ending in "
                           f"{', '.join(IMAGE_SUFFIXES)})")
    found = found[:limit] if limit else found
    stems = {}
    for f in found:
        try:
            image_size(f)
        except Exception as exc:  # PIL raises many kinds for a file that is not an image
            raise PredictError(f"{f}: unreadable ({type(exc).__name__}: {exc}); expected an image file") from None
        if f.stem in stems:
            raise PredictError(f"{f} and {stems[f.stem]}: two images of one name; the outputs are named by it")
        stems[f.stem] = f
    return found


def coco_prediction(path: Path, height: int, width: int, classes: Sequence[str], pred, score_thr: float) -> dict:
    """The COCO instance file of one image's predictions: those scoring at least ``score_thr`` (and with a
    non-empty mask)."""
    import numpy as np

    from apro.data.coco_io import mask_annotation

    inst = pred.pred_instances
    masks = inst.masks.cpu().numpy().astype(np.uint8)
    annotations = []
    for i in (inst.scores >= score_thr).nonzero().flatten().tolist():
        if masks[i].any():
            ann = mask_annotation(masks[i], len(annotations) + 1, 1, int(inst.labels[i]) + 1)
            annotations.append({**ann, "score": round(float(inst.scores[i]), 5)})
    return {"images": [{"id": 1, "file_name": path.name, "height": height, "width": width}],
            "categories": [{"id": i + 1, "name": c} for i, c in enumerate(classes)],
            "annotations": annotations}


def _inferencer(config: str, checkpoint: Path):
    """mmdet's DetInferencer on the config and the checkpoint, the config's classes its names."""
    import torch
    from mmdet.apis import DetInferencer

    from apro.checkpoints import allow_checkpoint_types
    from apro.data.checks import config_classes
    from apro.runs import is_semantic, load_config

    cfg = load_config(config)
    if is_semantic(cfg):
        raise PredictError(f"config {config} is an mmseg config; apro predict takes an instance-segmentation "
                           "(mmdet) config, e.g. one apro custom-configs wrote")
    classes, _ = config_classes(cfg)
    allow_checkpoint_types()  # mmengine's load of the checkpoint is weights-only too
    inferencer = DetInferencer(model=cfg, weights=str(checkpoint), device="cuda" if torch.cuda.is_available()
                               else "cpu", show_progress=False)
    if classes is not None:
        meta = {**(inferencer.model.dataset_meta or {}), "classes": tuple(classes)}
        inferencer.model.dataset_meta = inferencer.visualizer.dataset_meta = meta
    return inferencer, tuple(inferencer.model.dataset_meta["classes"])


def predict(config: str, checkpoint: str, images: Sequence[str], out: str, score_thr: float = SCORE_THR,
            limit: Optional[int] = None, threads: Optional[int] = 1, model_name: Optional[str] = None) -> dict:
    """Writes the predictions and overlays of ``images`` into ``out``; returns the manifest (figures.json)."""
    import mmcv

    from apro import runs

    if not 0.0 <= score_thr <= 1.0:
        raise PredictError(f"--score-thr {score_thr}: expected a number in [0, 1]")
    runs.set_threads(threads)
    files = image_files(images, limit)
    ckpt = runs.trained_checkpoint(Path(checkpoint).parent if Path(checkpoint).name == runs.DONE_FILE
                                   else checkpoint)
    inferencer, classes = _inferencer(config, ckpt)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    figures, t0 = [], time.time()
    for n, path in enumerate(files, 1):
        pred = inferencer(str(path), return_datasamples=True, no_save_vis=True, no_save_pred=True)["predictions"][0]
        rgb = mmcv.imread(str(path), channel_order="rgb")
        coco = coco_prediction(path, rgb.shape[0], rgb.shape[1], classes, pred, score_thr)
        write_json_atomic(folder / f"{path.stem}.json", coco)
        inferencer.visualizer.add_datasample(path.stem, rgb, data_sample=pred, draw_gt=False, show=False,
                                             pred_score_thr=score_thr)
        with atomic_file(folder / f"{path.stem}.png", suffix=".png") as tmp:
            write_png(tmp, inferencer.visualizer.get_image())
        shown = ", ".join(sorted({classes[a["category_id"] - 1] for a in coco["annotations"]})) or "none"
        figures.append({"file": f"{path.stem}.png", "kind": "prediction", "image_id": path.name,
                        "caption": f"{path.name}: the {len(coco['annotations'])} instance(s) "
                                   f"{model_name or Path(config).stem} predicts with a score of at least "
                                   f"{score_thr} (classes: {shown}); masks, their boxes and scores drawn by "
                                   f"mmdetection's DetLocalVisualizer."})
        spent = time.time() - t0
        if n == len(files) or n % 10 == 0 or n == 1:
            print(f"apro predict: {n}/{len(files)} images ({spent / n:.2f} s per image, about "
                  f"{spent / n * (len(files) - n) / 60:.0f} min left)", flush=True)
    manifest = {"config": str(Path(config).resolve()), "checkpoint": str(ckpt), "score_thr": score_thr,
                "classes": list(classes), "model_name": model_name, "figures": figures}
    write_json_atomic(folder / "figures.json", manifest)
    return manifest
