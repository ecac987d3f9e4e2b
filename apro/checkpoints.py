"""Checkpoints: loaded without running their code, and the APro release's converted to this suite's modules.

    apro convert-checkpoint CONFIG RELEASED.pth --out CONVERTED.pth

**Loading.** Every checkpoint this suite reads from outside (a released file, a converted one, ``--init-from``,
the checkpoint argument of ``evaluate`` / ``visualize``, backbone weights) and its own resume files are unpickled
by torch's weights-only unpickler: tensors, containers, numbers and strings, and the few types of
:func:`allowed_types`, never code. :func:`load_checkpoint_file` names the file and the refused type when a file
holds anything else; :func:`allow_checkpoint_types` puts the same allow-list under mmengine's own ``torch.load``
calls (whose default is weights-only since torch 2.6). mmengine pickles its message hub's ``HistoryBuffer``
with bound methods (``builtins.getattr``, which no allow-list can admit), so :class:`PlainMessageHubHook` saves
those histories as tensors and restores them on resume.

**Converting.** The release's model zoo (its README) was trained and saved with mmdetection
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
import sys
from pathlib import Path
from typing import Dict, List, Mapping, Sequence, Tuple

from mmengine.hooks import Hook
from mmengine.logging import HistoryBuffer
from mmengine.registry import HOOKS

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


def allowed_types() -> List[object]:
    """What a checkpoint may hold besides what torch's weights-only unpickler admits itself (tensors, dicts,
    lists, tuples, OrderedDict, numbers, strings, torch dtypes and sizes): numpy scalars and arrays, under the
    names numpy 1.x and 2.x pickle them with. Values, not code. Found by listing the globals of the files this
    suite reads: the release's (its EpochBasedRunner.save_checkpoint, with tools/train.py's meta and the
    optimiser state): none; mmengine's training checkpoints: numpy scalar and dtype (runtime_info's ``eta``),
    numpy arrays and HistoryBuffer with builtins.getattr (the message hub, which :class:`PlainMessageHubHook`
    saves as tensors instead); converted files, torchvision's and Swin's weights: none."""
    import numpy as np

    core = np._core.multiarray if hasattr(np, "_core") else np.core.multiarray
    out = []
    for obj, name in ((core.scalar, "scalar"), (core._reconstruct, "_reconstruct")):
        out += [(obj, f"numpy._core.multiarray.{name}"), (obj, f"numpy.core.multiarray.{name}")]
    # a dtype unpickles as numpy.dtype(...) and is then built as its class (numpy.dtypes.Float64DType, ...)
    kinds = (np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64,
             np.float16, np.float32, np.float64)
    return out + [(np.dtype, "numpy.dtype"), (np.ndarray, "numpy.ndarray")] + [type(np.dtype(k)) for k in kinds]


_ALLOWED = False


def allow_checkpoint_types() -> None:
    """Adds :func:`allowed_types` to torch's weights-only allow-list (once per process): mmengine's own loads
    (resume, ``load_from``, ``init_cfg``) then read this suite's files and refuse code, as
    :func:`load_checkpoint_file` does."""
    global _ALLOWED
    if not _ALLOWED:
        import torch

        torch.serialization.add_safe_globals(allowed_types())
        _ALLOWED = True
    # torch's process-wide switch turns weights-only off for every load that does not ask for it (mmengine's)
    if os.environ.pop("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", None) is not None:
        print("apro: TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD is ignored: this suite loads every checkpoint weights-only",
              file=sys.stderr, flush=True)


#: the type torch's weights-only unpickler refused, as its message names it
_REFUSED = re.compile(r"Unsupported global: GLOBAL ([\w.]+)|but got <class '([\w.]+)'>")


def load_checkpoint_file(path: os.PathLike, what: str = "checkpoint"):
    """A torch checkpoint read by the weights-only unpickler with :func:`allowed_types`; a file that holds
    any other type is refused (:class:`CheckpointError` naming the file and the type): its code never runs."""
    import pickle
    import zipfile

    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file (expected a {what}, a .pth file)")
    allow_checkpoint_types()
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = _REFUSED.search(str(exc))
        kind = f"{found.group(1) or found.group(2)}" if found else "an object that is not plain data"
        raise CheckpointError(
            f"{path}: refused to load this {what}: it refers to {kind}, which is not among the types a checkpoint "
            f"may hold (tensors, numbers, strings, containers, numpy values); unpickling it could run code. "
            f"If you trust the file, re-save its weights alone, e.g. torch.save({{'state_dict': "
            f"torch.load(path, weights_only=False)['state_dict']}}, 'weights.pth'), and pass that") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, IndexError, KeyError) as exc:
        raise CheckpointError(f"{path}: not a readable torch checkpoint (truncated, or not a .pth file): "
                              f"{type(exc).__name__}: {exc}") from None


def read_state_dict(path: os.PathLike) -> Mapping[str, "object"]:
    """The tensors of a torch checkpoint (``state_dict`` of an mmdet file, or a bare state dict)."""
    import torch

    obj = load_checkpoint_file(path, "released .pth checkpoint")
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


def message_hub_hook() -> dict:
    """The config of :class:`PlainMessageHubHook`, for a training's ``custom_hooks``."""
    return dict(type=PlainMessageHubHook.__name__)


@HOOKS.register_module()
class PlainMessageHubHook(Hook):
    """Saves the message hub's ``HistoryBuffer`` objects as tensors (their pickles hold bound methods, which the
    weights-only unpickler refuses) and makes them ``HistoryBuffer`` objects again when a run resumes."""

    priority = "VERY_LOW"

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        import torch

        scalars = checkpoint.get("message_hub", {}).get("log_scalars", {})
        for key, value in list(scalars.items()):
            if isinstance(value, HistoryBuffer):
                log, count = value.data
                scalars[key] = {"history_buffer": {"log": torch.as_tensor(log), "count": torch.as_tensor(count),
                                                   "max_length": int(value.max_length)}}

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        scalars = checkpoint.get("message_hub", {}).get("log_scalars", {})
        for key, value in list(scalars.items()):
            if isinstance(value, dict) and "history_buffer" in value:
                b = value["history_buffer"]
                scalars[key] = HistoryBuffer(b["log"].numpy(), b["count"].numpy(), b["max_length"])
