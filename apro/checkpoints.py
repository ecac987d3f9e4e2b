"""The APro release's checkpoints (mmdet 2.25) as this suite's modules (mmdet 3.3), loaded strictly.

    apro convert-checkpoint CONFIG RELEASED.pth --out CONVERTED.pth

The release's model zoo (its README) was trained and saved with mmdetection
2.25. Its parameters have the shapes of this suite's paper models (the heads
follow the release, ``experiments/paper/DEVIATIONS.md``); what differs is
where some of them live:

* SOLOv2: the release's ``bbox_head`` is this suite's ``mask_head`` with
  mmdet 3.x's names (``feature_convs`` -> ``mask_feature_head.convs_all_levels``,
  ``solo_mask`` -> ``mask_feature_head.conv_pred``, ``cate_convs`` ->
  ``cls_convs``, ``solo_cate`` -> ``conv_cls``, ``solo_kernel`` ->
  ``conv_kernel``);
* Mask2Former: mmcv 1.x built the transformer layers as ``BaseTransformerLayer``
  with ``attentions.<i>`` / ``ffns.<i>`` in the layer's operation order (encoder:
  self-attention, norm, FFN, norm; decoder: cross-attention, norm,
  self-attention, norm, FFN, norm); mmdet 3.x names them ``self_attn``,
  ``cross_attn`` and ``ffn``. Norms, the backbone (ResNet, Swin), the FPN and
  the pixel decoder's convolutions keep their names.

Every key of the release must map to a key of the model built from CONFIG,
every model key must be covered, and every shape must agree; anything else is
a :class:`CheckpointError` that lists the offending keys. The converted file
holds ``state_dict`` and ``meta`` (source file, its sha256, the config) and is
written atomically.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Dict, List, Mapping, Sequence, Tuple

from apro.errors import InputError
from apro.io import atomic_file, file_sha256

#: (pattern, replacement) applied in turn to every key of a release checkpoint, per detector type
RULES: Dict[str, List[Tuple[str, str]]] = {
    "BoxSOLOv2": [
        (r"^bbox_head\.feature_convs\.", "mask_head.mask_feature_head.convs_all_levels."),
        (r"^bbox_head\.solo_mask\.", "mask_head.mask_feature_head.conv_pred."),
        (r"^bbox_head\.cate_convs\.", "mask_head.cls_convs."),
        (r"^bbox_head\.solo_cate\.", "mask_head.conv_cls."),
        (r"^bbox_head\.solo_kernel\.", "mask_head.conv_kernel."),
        (r"^bbox_head\.", "mask_head."),
    ],
    "BoxMask2Former": [
        (r"^(panoptic_head\.pixel_decoder\.encoder\.layers\.\d+)\.attentions\.0\.", r"\1.self_attn."),
        (r"^(panoptic_head\.pixel_decoder\.encoder\.layers\.\d+)\.ffns\.0\.", r"\1.ffn."),
        (r"^(panoptic_head\.transformer_decoder\.layers\.\d+)\.attentions\.0\.", r"\1.cross_attn."),
        (r"^(panoptic_head\.transformer_decoder\.layers\.\d+)\.attentions\.1\.", r"\1.self_attn."),
        (r"^(panoptic_head\.transformer_decoder\.layers\.\d+)\.ffns\.0\.", r"\1.ffn."),
    ],
}
_SHOWN = 12  # offending keys listed per kind


class CheckpointError(InputError):
    """A checkpoint that cannot be read or does not fit the model; names the file and the keys."""


def rename(key: str, model_type: str) -> str:
    """The name of the release's parameter ``key`` in this suite's ``model_type`` model (first rule that fits)."""
    for pattern, repl in RULES[model_type]:
        new, n = re.subn(pattern, repl, key)
        if n:
            return new
    return key


def read_state_dict(path: os.PathLike) -> Mapping[str, "object"]:
    """The tensors of a torch checkpoint (``state_dict`` of an mmdet file, or a bare state dict)."""
    import pickle
    import zipfile

    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file (expected a released .pth checkpoint)")
    try:
        # the release's files pickle mmcv's meta (config text, numpy values): not loadable with weights_only
        obj = torch.load(path, map_location="cpu", weights_only=False)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError, OSError) as exc:
        raise CheckpointError(f"{path}: not a readable torch checkpoint (truncated, or not a .pth file): "
                              f"{type(exc).__name__}: {exc}") from None
    state = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: not a model checkpoint (expected a dict of tensors, or a dict with "
                              f"'state_dict'; got {type(obj).__name__})")
    return state


def _listed(keys: Sequence[str]) -> str:
    keys = sorted(keys)
    more = f" ... and {len(keys) - _SHOWN} more" if len(keys) > _SHOWN else ""
    return ", ".join(keys[:_SHOWN]) + more


def convert_state_dict(state: Mapping[str, "object"], model, model_type: str, source: str = "checkpoint") -> dict:
    """``state`` renamed for ``model``; raises :class:`CheckpointError` unless it covers the model exactly."""
    if model_type not in RULES:
        raise CheckpointError(f"{source}: no conversion for model type {model_type!r}; known: {sorted(RULES)}")
    wanted = model.state_dict()
    out: dict = {}
    for key, value in state.items():
        new = rename(key, model_type)
        if new in out:
            raise CheckpointError(f"{source}: keys map to the same parameter {new}")
        out[new] = value
    missing = [k for k in wanted if k not in out]
    unexpected = [k for k in out if k not in wanted]
    shapes = [f"{k} {tuple(out[k].shape)} vs {tuple(wanted[k].shape)}" for k in wanted
              if k in out and tuple(out[k].shape) != tuple(wanted[k].shape)]
    problems = []
    if missing:
        problems.append(f"{len(missing)} model keys missing from the checkpoint: {_listed(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} checkpoint keys the model does not have: {_listed(unexpected)}")
    if shapes:
        problems.append(f"{len(shapes)} shapes differ (checkpoint vs model): {_listed(shapes)}")
    if problems:
        raise CheckpointError(f"{source} does not fit the {model_type} of this config (a checkpoint of another "
                              f"entry?): " + "; ".join(problems))
    model.load_state_dict(out, strict=True)
    return out


def build_model(config: str):
    """The (untrained) model of an mmdet config file and its type (``apro.evaluate.build_model``)."""
    from mmengine.config import Config

    from apro.evaluate import build_model as build

    if not Path(config).is_file():
        raise CheckpointError(f"config {config}: no such file (expected an experiments/paper/*.py config)")
    cfg = Config.fromfile(config)
    cfg.model.get("backbone", {}).pop("init_cfg", None)  # the checkpoint holds every weight
    return build(cfg), cfg.model.type


def convert_checkpoint(config: str, source: str, out: str) -> dict:
    """Converts the release's ``source`` for ``config``'s model, loads it strictly, writes ``out``."""
    import torch


    model, model_type = build_model(config)
    state = convert_state_dict(read_state_dict(source), model, model_type, source=str(source))
    meta = {"converted_from": str(Path(source).resolve()), "source_sha256": file_sha256(source),
            "config": str(Path(config).resolve()), "model_type": model_type, "num_tensors": len(state)}
    with atomic_file(out) as tmp:
        torch.save({"state_dict": state, "meta": meta}, str(tmp))
    print(f"apro convert-checkpoint: {len(state)} tensors of {source} -> {out} (strict load into {config} passed)",
          flush=True)
    return meta
