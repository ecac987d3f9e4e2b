"""This suite's half of the side-by-side check: the paper config's model on the check's batch.

The same quantities :mod:`apro.crosscheck.release_side` computes in the release's venv, from this
suite's paper config and the release's weights converted by ``apro convert-checkpoint``: every loss
of the training forward, the gradient of every parameter, the test-mode predictions rescaled to the
original images, and the config's train and test pipelines on the photos with the same random
choices. Results have the release side's layout (:mod:`apro.crosscheck.compare` reads both).
"""
from __future__ import annotations

from typing import Dict, List

import numpy as np


def load_config(config: str):
    """The paper config as the check builds it: no ImageNet weights, stochastic depth off (as the release side)."""
    from mmengine.config import Config

    cfg = Config.fromfile(config)
    cfg.model.backbone.pop("init_cfg", None)  # every weight comes from the converted checkpoint
    if "drop_path_rate" in cfg.model.backbone:
        cfg.model.backbone.drop_path_rate = 0.0
    return cfg


def build_model(cfg, checkpoint: str):
    """The config's model with the converted release weights, loaded strictly."""
    import torch

    from apro.evaluate import build_model as build

    model = build(cfg)
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)["state_dict"]
    model.load_state_dict(state, strict=True)
    return model


def data_samples(batch: dict) -> list:
    """mmdet 3.x data samples of the check's batch: the boxes, labels, box masks (``GenerateBoxMask`` on the
    image, padded to the batch as the data preprocessor or the pipeline pads them) and image metas."""
    from mmdet.structures import DetDataSample
    from mmdet.structures.bbox import HorizontalBoxes
    from mmengine.structures import InstanceData

    from apro.data.transforms import GenerateBoxMask

    hp, wp = batch["batch_input_shape"]
    samples = []
    for k, im in enumerate(batch["images"]):
        pad = tuple(im["pad_shape"]) if batch["framework"] == "SOLOv2" else (hp, wp)
        s = DetDataSample(metainfo=dict(img_id=k, img_path=im["name"], ori_shape=tuple(im["ori_shape"]),
                                        img_shape=tuple(im["img_shape"]), pad_shape=pad, batch_input_shape=(hp, wp),
                                        scale_factor=tuple(im["scale_factor"]), flip=False, flip_direction=None))
        boxes = HorizontalBoxes(im["boxes"].clone())
        drawn = GenerateBoxMask()(dict(img=np.zeros((*im["img_shape"], 3), np.uint8), gt_bboxes=boxes))
        s.gt_instances = InstanceData(bboxes=boxes, labels=im["labels"].clone(),
                                      masks=drawn["gt_masks"].pad((hp, wp), pad_val=0))
        samples.append(s)
    return samples


def losses_and_grads(model, batch: dict):
    """Every loss of the training forward (float64), the total the optimiser sees, and every parameter's gradient."""
    model.train()
    model.zero_grad(set_to_none=True)
    losses = model.loss(batch["inputs"].clone(), data_samples(batch))
    total, _ = model.parse_losses(losses)
    total.backward()
    values = {k: float(sum(v).detach().double() if isinstance(v, (list, tuple)) else v.detach().double())
              for k, v in losses.items()}
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    return values, float(total.detach()), grads


def predictions(model, batch: dict) -> List[dict]:
    """Per image: labels, scores and masks at the original size (bits packed along the width)."""
    import torch

    model.eval()
    with torch.no_grad():
        out = model.predict(batch["inputs"].clone(), data_samples(batch), rescale=True)
    per_image = []
    for sample, im in zip(out, batch["images"]):
        pred = sample.pred_instances
        h0, w0 = im["ori_shape"]
        masks = pred.masks.cpu().numpy().astype(bool).reshape(-1, h0, w0)
        per_image.append({"labels": pred.labels.cpu().to(torch.int64), "scores": pred.scores.cpu().double(),
                          "masks": torch.from_numpy(np.packbits(masks, axis=-1)), "shape": [h0, w0]})
    return per_image


def _fix_randomness(pipeline, choices: dict) -> None:
    """Replaces the random draws of the pipeline's transforms by the check's fixed choices."""
    for t in pipeline.transforms:
        name = type(t).__name__
        if name == "RandomChoiceResize":
            scale = tuple(choices["train_scale"])
            t._random_select = lambda scale=scale, t=t: (scale, list(map(tuple, t.scales)).index(scale))
        elif name == "RandomResize":
            t._random_scale = lambda scale=tuple(choices["train_scale"]): scale
        elif name == "RandomFlip":
            t._choose_direction = lambda flip=choices["flip"]: "horizontal" if flip else None
        elif name == "RandomCrop":
            oh, ow = choices["crop_offset"]
            t._rand_offset = lambda margin, oh=oh, ow=ow: (min(oh, margin[0]), min(ow, margin[1]))


def run_pipelines(cfg, model, spec: dict) -> Dict[str, dict]:
    """The config's train and test pipelines on each photo (random choices fixed), through the model's data
    preprocessor: the tensor, boxes, labels and box masks (as the heads draw them) each stack feeds its model."""
    import torch
    from mmengine.dataset import Compose
    from mmengine.registry import init_default_scope

    init_default_scope(cfg.get("default_scope", "mmdet"))
    out: Dict[str, dict] = {}
    for photo in spec["photos"]:
        entry = {}
        for kind in ("train", "test"):
            steps = cfg.train_pipeline if kind == "train" else cfg.test_dataloader.dataset.pipeline
            pipeline = Compose(steps)
            _fix_randomness(pipeline, spec)
            results = dict(img_path=photo["file"], img_id=0, ori_shape=(photo["height"], photo["width"]))
            if kind == "train":
                results["instances"] = [{"bbox": [float(v) for v in b], "bbox_label": int(l), "ignore_flag": 0}
                                        for b, l in zip(photo["boxes"], photo["labels"])]
            packed = pipeline(results)
            data = model.data_preprocessor({"inputs": [packed["inputs"]], "data_samples": [packed["data_samples"]]},
                                           training=kind == "train")
            sample = data["data_samples"][0]
            meta = sample.metainfo
            entry[kind] = {"img": data["inputs"][0].float(),
                           "meta": {"img_shape": list(meta["img_shape"][:2]),
                                    "pad_shape": list(data["inputs"].shape[-2:]),
                                    "scale_factor": [float(v) for v in np.asarray(meta["scale_factor"]).ravel()],
                                    "flip": bool(meta.get("flip", False))}}
            if kind == "train":  # the box masks as the heads take them: the pipeline's, padded to the input
                gt = sample.gt_instances
                boxes = gt.bboxes.tensor if hasattr(gt.bboxes, "tensor") else gt.bboxes
                masks = gt.masks.pad(tuple(data["inputs"].shape[-2:]), pad_val=0).masks.astype(bool)
                entry[kind].update(boxes=boxes.float().reshape(-1, 4), labels=gt.labels.long(),
                                   box_masks=torch.from_numpy(np.packbits(masks, axis=-1)),
                                   box_masks_shape=list(masks.shape))
        out[photo["name"]] = entry
    return out


def float64_grads(model, batch: dict) -> dict:
    """Every parameter's gradient with the model and the inputs in float64 (the soft targets of the compiled
    ops stay float32 constants): against the float32 gradients, each gradient's float32 resolution."""
    import copy

    model64 = copy.deepcopy(model).double()
    return losses_and_grads(model64, dict(batch, inputs=batch["inputs"].double()))[2]


def results(cfg, model, batch: dict, pipeline_spec: dict, noise_floor: bool = True) -> dict:
    """Everything the release side writes, computed here: ``losses``, ``total_loss``, ``grads``,
    ``predictions`` and ``pipelines`` (this suite's names); with ``noise_floor``, also ``grads_float64``."""
    losses, total, grads = losses_and_grads(model, batch)
    out = {"losses": losses, "total_loss": total, "grads": grads, "predictions": predictions(model, batch),
           "pipelines": run_pipelines(cfg, model, pipeline_spec)}
    if noise_floor:
        out["grads_float64"] = float64_grads(model, batch)
    return out
