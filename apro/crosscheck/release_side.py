"""The release's half of the side-by-side check. Runs in the release's venv, never in this suite's.

    <venv>/bin/python release_side.py SPEC.json        (apro.crosscheck.run starts it)

It imports only the release's stack (its mmdet 2.25 fork, mmcv-full 1.6, its ``apro`` package with
the GP/MST op) and the standard library, numpy and torch; nothing of this suite. From SPEC (JSON):

* builds the model of the release config ``config`` (backbone without ImageNet weights, stochastic
  depth off), seeds it, initialises it with the release's own ``init_weights``;
* trains it on the check's batch (``batch``, written by :mod:`apro.crosscheck.batch`) with AdamW,
  ``steps`` steps and then on (up to ``max_steps``) until every image has a detection: scores pass the
  entry's test thresholds and masks are not empty (the best step's weights are kept);
* saves it as the release's runner does (``checkpoint``: mmcv 1.x's ``save_checkpoint`` through an
  ``EpochBasedRunner`` with the meta ``tools/train.py`` gives it, optimiser included);
* at those weights, on the same batch: every loss of the training forward, the gradient of every
  parameter, and the test-mode predictions (``simple_test``, rescaled to the original images);
* runs the config's train and test pipelines on the photos (``pipeline``) with their random
  choices fixed: resize scale, flip, crop offset;

and writes everything to ``results`` (tensors, lists and numbers: ``torch.load(weights_only=True)``).
Progress goes to stderr.
"""
import contextlib
import json
import os
import sys
import time


def log(msg):
    print(f"[release] {msg}", file=sys.stderr, flush=True)


def build_model(spec):
    import logging

    import numpy as np
    import torch
    from mmcv import Config
    from mmcv.utils import get_logger
    from mmdet.models import build_detector

    get_logger("mmcv", log_level=logging.ERROR)  # init_weights logs every parameter at INFO

    cfg = Config.fromfile(os.path.join(spec["release"], spec["config"]))
    cfg.model.backbone.init_cfg = None  # the check starts from its own seeded weights
    cfg.model.pop("pretrained", None)
    if "drop_path_rate" in cfg.model.backbone:
        cfg.model.backbone.drop_path_rate = 0.0  # stochastic depth draws differ between stacks: off
    torch.manual_seed(spec["seed"])
    np.random.seed(spec["seed"])
    model = build_detector(cfg.model, train_cfg=cfg.get("train_cfg"), test_cfg=cfg.get("test_cfg"))
    model.init_weights()
    model.CLASSES = tuple(spec["classes"])  # as train_detector sets it from the dataset
    return cfg, model


def model_inputs(batch, framework):
    """The release's forward_train / simple_test arguments for the check's batch."""
    import numpy as np
    import torch
    from mmdet.datasets.pipelines.loading import GenerateBoxMask

    hp, wp = batch["batch_input_shape"]
    metas, boxes, labels, masks = [], [], [], []
    for im in batch["images"]:
        h, w = im["img_shape"]
        # SOLOv2 pads each image to a multiple of 32; Box2Mask's LSJ pads every image to one size
        ph, pw = im["pad_shape"] if framework == "SOLOv2" else (hp, wp)
        sx, sy = im["scale_factor"]
        metas.append(dict(filename=im["name"], ori_filename=im["name"], ori_shape=(*im["ori_shape"], 3),
                          img_shape=(h, w, 3), pad_shape=(ph, pw, 3), batch_input_shape=(hp, wp),
                          scale_factor=np.array([sx, sy, sx, sy], dtype=np.float32), flip=False,
                          flip_direction=None))
        bb = im["boxes"].numpy().astype(np.float32)
        # the release's box masks: GenerateBoxMask on the image, padded with the image (Pad: masks 0)
        res = GenerateBoxMask()(dict(gt_bboxes=bb, img=np.zeros((h, w, 3), np.uint8), mask_fields=[]))
        masks.append(res["gt_masks"].pad((ph, pw), pad_val=0))
        boxes.append(torch.from_numpy(bb))
        labels.append(im["labels"].clone())
    return dict(img=batch["inputs"].clone(), img_metas=metas, gt_bboxes=boxes, gt_labels=labels, gt_masks=masks)


def train_forward(model, inputs):
    losses = model.forward_train(**inputs)
    loss, _ = model._parse_losses(losses)
    return losses, loss


def train_steps(model, inputs, steps, max_steps, lr, framework):
    """At least ``steps`` AdamW steps on the batch, then more (up to ``max_steps``) until every image has a
    detection; the weights (and optimiser state) of the step with the most images with detections are kept.
    Returns the optimiser and that step's number."""
    import copy

    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    best = None
    for i in range(1, max_steps + 1):
        t = time.time()
        model.train()
        optimizer.zero_grad(set_to_none=True)
        _, loss = train_forward(model, inputs)
        loss.backward()
        optimizer.step()
        counts = [len(p["labels"]) for p in predictions(model, inputs, framework)]
        log(f"train step {i}: loss {loss.item():.4f}, detections {counts} ({time.time() - t:.1f} s)")
        if i < steps:
            continue
        key = (sum(c > 0 for c in counts), sum(counts))
        if best is None or key > best[0]:
            best = (key, i, copy.deepcopy(model.state_dict()), copy.deepcopy(optimizer.state_dict()))
        if key[0] == len(counts):
            break
    _, step, state, opt_state = best
    model.load_state_dict(state)
    optimizer.load_state_dict(opt_state)
    log(f"kept the weights of step {step}")
    return optimizer, step


def save_release_checkpoint(model, optimizer, cfg, spec, step):
    """Saved as the release's ``tools/train.py`` + ``EpochBasedRunner`` save a training checkpoint."""
    import mmcv
    import mmdet
    from mmcv.runner import EpochBasedRunner
    from mmcv.utils import get_logger
    from mmdet.utils import collect_env

    env_info = "\n".join(f"{k}: {v}" for k, v in collect_env().items())
    meta = dict(env_info=env_info, config=cfg.pretty_text, seed=spec["seed"],
                exp_name=os.path.basename(spec["config"]), mmdet_version=mmdet.__version__, CLASSES=model.CLASSES)
    out = os.path.dirname(os.path.abspath(spec["checkpoint"]))
    runner = EpochBasedRunner(model, optimizer=optimizer, work_dir=out, logger=get_logger("crosscheck"), meta=meta)
    runner._epoch, runner._iter = step, step
    runner.meta.setdefault("hook_msgs", {})["last_ckpt"] = spec["checkpoint"]  # as CheckpointHook records it
    name = os.path.basename(spec["checkpoint"])
    runner.save_checkpoint(out, filename_tmpl=name, save_optimizer=True, create_symlink=False)
    log(f"saved {spec['checkpoint']} (mmcv {mmcv.__version__} save_checkpoint)")


def losses_and_grads(model, inputs):
    model.train()
    model.zero_grad(set_to_none=True)
    losses, loss = train_forward(model, inputs)
    loss.backward()
    values = {}
    for k, v in losses.items():
        v = sum(v) if isinstance(v, (list, tuple)) else v
        values[k] = float(v.detach().double())
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    return values, float(loss.detach()), grads


def predictions(model, inputs, framework):
    """Per image: labels, scores and masks at the original size (bits packed along the width)."""
    import numpy as np
    import torch

    model.eval()
    with torch.no_grad():
        out = model.simple_test(inputs["img"], inputs["img_metas"], rescale=True)
    per_image = []
    for res, meta in zip(out, inputs["img_metas"]):
        if framework == "SOLOv2":  # format_results: per class boxes, (per class masks, per class scores)
            bbox_results, (mask_results, score_results) = res
            scores_of = [np.asarray([float(s) for s in score_results[c]], np.float64) for c in range(len(mask_results))]
        else:  # MaskFormer.simple_test with no stuff classes: (per class boxes with scores, per class masks)
            bbox_results, mask_results = res["ins_results"] if isinstance(res, dict) else res
            scores_of = [np.asarray(bbox_results[c][:, 4], np.float64) for c in range(len(mask_results))]
        h0, w0 = meta["ori_shape"][:2]
        labels, scores, masks = [], [], []
        for c, cls_masks in enumerate(mask_results):
            for m, s in zip(cls_masks, scores_of[c]):
                m = m.numpy() if hasattr(m, "numpy") else np.asarray(m)
                labels.append(c)
                scores.append(s)
                masks.append(np.asarray(m, dtype=bool).reshape(h0, w0))
        packed = np.packbits(np.stack(masks), axis=-1) if masks else np.zeros((0, h0, (w0 + 7) // 8), np.uint8)
        per_image.append({"labels": torch.tensor(labels, dtype=torch.int64),
                          "scores": torch.tensor(scores, dtype=torch.float64),
                          "masks": torch.from_numpy(packed), "shape": [int(h0), int(w0)]})
    return per_image


@contextlib.contextmanager
def fixed_randint(values):
    """``np.random.randint`` returns ``values`` in turn (the crop offsets), each checked against its range."""
    import numpy as np

    real, queue = np.random.randint, list(values)

    def fake(low, high=None, *args, **kwargs):
        if not queue:
            return real(low, high, *args, **kwargs)
        v = queue.pop(0)
        lo, hi = (0, low) if high is None else (low, high)
        return min(max(v, lo), hi - 1)  # an offset beyond the margin is the largest the crop allows

    np.random.randint = fake
    try:
        yield
    finally:
        np.random.randint = real


def run_pipelines(cfg, spec):
    """The train and test pipelines of the config on each photo, random choices fixed (spec['pipeline'])."""
    import numpy as np
    import torch
    from mmdet.datasets.pipelines import Compose

    p = spec["pipeline"]
    out = {}
    for photo in p["photos"]:
        entry = {}
        for kind in ("train", "test"):
            pipeline = Compose(cfg.data[kind].pipeline)
            results = dict(img_info=dict(filename=photo["file"], height=photo["height"], width=photo["width"]),
                           img_prefix=None, seg_prefix=None, proposal_file=None,
                           bbox_fields=[], mask_fields=[], seg_fields=[])
            if kind == "train":
                results["ann_info"] = dict(bboxes=np.asarray(photo["boxes"], np.float32).reshape(-1, 4),
                                           labels=np.asarray(photo["labels"], np.int64),
                                           bboxes_ignore=np.zeros((0, 4), np.float32))
                results["scale"] = tuple(p["train_scale"])  # Resize: the scale it would draw
                results["flip"], results["flip_direction"] = p["flip"], "horizontal"
            with fixed_randint(p["crop_offset"]):
                res = pipeline(results)
            if kind == "train":
                meta = res["img_metas"].data
                masks = res["gt_masks"].data.masks if "gt_masks" in res else np.zeros((0, 1, 1), np.uint8)
                entry[kind] = {"img": res["img"].data.float(), "boxes": res["gt_bboxes"].data.float(),
                               "labels": res["gt_labels"].data.long(),
                               "box_masks": torch.from_numpy(np.packbits(masks.astype(bool), axis=-1)),
                               "box_masks_shape": list(masks.shape)}
            else:
                meta = res["img_metas"][0].data
                entry[kind] = {"img": res["img"][0].float()}
            entry[kind]["meta"] = {"img_shape": list(meta["img_shape"][:2]), "pad_shape": list(meta["pad_shape"][:2]),
                                   "scale_factor": [float(v) for v in np.asarray(meta["scale_factor"]).ravel()],
                                   "flip": bool(meta.get("flip", False))}
        out[photo["name"]] = entry
    return out


def main(argv):
    if len(argv) != 2:
        print("usage: release_side.py SPEC.json", file=sys.stderr)
        return 2
    with open(argv[1]) as f:
        spec = json.load(f)
    here = os.path.dirname(os.path.abspath(__file__))  # this file's folder: nothing of this suite is imported
    sys.path[:] = [spec["release"]] + [q for q in sys.path if os.path.abspath(q or ".") != here]
    import torch

    torch.set_num_threads(int(spec.get("threads", 1)))
    started = time.time()
    batch = torch.load(spec["batch"], weights_only=True)
    cfg, model = build_model(spec)
    log(f"built {type(model).__name__} from {spec['config']} ({sum(p.numel() for p in model.parameters())} parameters)")
    inputs = model_inputs(batch, batch["framework"])
    optimizer, step = train_steps(model, inputs, spec["steps"], spec["max_steps"], spec["lr"], batch["framework"])
    save_release_checkpoint(model, optimizer, cfg, spec, step)
    losses, total, grads = losses_and_grads(model, inputs)
    log(f"losses at the saved weights: total {total:.6f}")
    preds = predictions(model, inputs, batch["framework"])
    log(f"predictions: {[len(p['labels']) for p in preds]} per image")
    pipelines = run_pipelines(cfg, spec)
    import mmcv
    import mmdet
    import numpy

    results = {"steps": step, "losses": losses, "total_loss": total, "grads": grads, "predictions": preds,
               "pipelines": pipelines,
               "versions": {"torch": str(torch.__version__), "mmcv": mmcv.__version__, "mmdet": mmdet.__version__,
                            "numpy": numpy.__version__, "python": sys.version.split()[0]},
               "seconds": time.time() - started}
    tmp = spec["results"] + ".part"
    torch.save(results, tmp)
    os.replace(tmp, spec["results"])
    log(f"wrote {spec['results']} in {time.time() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
