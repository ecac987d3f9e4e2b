"""mmseg plugin modules of point- / scribble-supervised segmentation with APro.

Loaded by configs with ``custom_imports = dict(imports=['apro.models.segmentor'])``:

* ``PartialCrossEntropyLoss`` (mmseg ``MODELS``): cross-entropy over the
  labelled pixels only (:func:`apro.losses.semantic.partial_cross_entropy`);
  with dense labels it is the ordinary cross-entropy.
* ``AProEncoderDecoder`` (mmseg ``MODELS``): mmseg's ``EncoderDecoder`` whose
  training loss adds APro's GP and LP terms on the decode head's class
  probabilities (upsampled to the input size, softmax over classes). The
  decode head only sees features, so the segmentor, which has the input
  image, computes these terms. ``apro_loss=None`` (or both terms None) trains
  the baseline.
* ``SyntheticSegDataset`` (mmseg ``DATASETS``): the built-in synthetic shapes
  as a semantic dataset (background + six classes).

Guide image of the affinities: the network input with the data
preprocessor's mean/std undone, scaled to [0, 1] (so the bandwidths do not
depend on the normalisation).
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmseg.datasets import BaseSegDataset
from mmseg.models.segmentors import EncoderDecoder
from mmseg.models.utils import resize
from mmseg.registry import DATASETS, MODELS
from mmseg.utils import add_prefix

from apro.losses.box import LP_DEFAULTS, loss_term_cfg
from apro.losses.semantic import (IGNORE_INDEX, SEMANTIC_GP_DEFAULTS, gp_targets, lp_targets, partial_cross_entropy,
                                  region_mask, soft_l1_loss)

__all__ = ["PartialCrossEntropyLoss", "AProEncoderDecoder", "SyntheticSegDataset"]

SYNTHETIC_CLASSES = ("background", "ring", "crescent", "star", "l_shape", "u_shape", "blob")


@MODELS.register_module()
class PartialCrossEntropyLoss(nn.Module):
    """``loss_weight * partial_cross_entropy(logits, labels)``; mmseg's decode-head loss interface."""

    def __init__(self, loss_weight: float = 1.0, loss_name: str = "loss_pce"):
        super().__init__()
        self.loss_weight = float(loss_weight)
        self._loss_name = loss_name

    def forward(self, cls_score: Tensor, label: Tensor, weight=None, ignore_index: int = IGNORE_INDEX,
                **kwargs) -> Tensor:
        if weight is not None:
            raise ValueError("PartialCrossEntropyLoss: pixel weights (a decode-head sampler) are not supported")
        return self.loss_weight * partial_cross_entropy(cls_score, label, ignore_index)

    @property
    def loss_name(self) -> str:
        return self._loss_name


@MODELS.register_module()
class AProEncoderDecoder(EncoderDecoder):
    """EncoderDecoder + APro's soft pseudo-label losses.

    ``apro_loss = dict(loss_gp=dict(loss_weight=1.0, zetas=(0.05, 0.07)),
    loss_lp=dict(loss_weight=1.0, kernel_size=5, zeta=0.15, iterations=20),
    region='unlabelled', warmup_iters=0)``: each term is
    ``loss_weight * soft_l1_loss(p, target, region mask)``, ramped up linearly
    over the first ``warmup_iters`` training iterations (a prediction from
    random weights gives meaningless pseudo labels).
    """

    def __init__(self, *args, apro_loss: Optional[dict] = None, **kwargs):
        super().__init__(*args, **kwargs)
        cfg = dict(apro_loss or {})
        owner = "AProEncoderDecoder apro_loss"
        self.loss_gp_cfg = loss_term_cfg(cfg.pop("loss_gp", None), owner, "loss_gp", SEMANTIC_GP_DEFAULTS)
        self.loss_lp_cfg = loss_term_cfg(cfg.pop("loss_lp", None), owner, "loss_lp", LP_DEFAULTS)
        self.region = cfg.pop("region", "unlabelled")
        self.warmup_iters = int(cfg.pop("warmup_iters", 0))
        if cfg:
            raise ValueError(f"apro_loss: unknown keys {sorted(cfg)}; expected loss_gp, loss_lp, region, warmup_iters")
        region_mask(torch.zeros(1, 1, 1, dtype=torch.long), self.region)  # checks the name early
        if self.loss_gp_cfg is not None and len(tuple(self.loss_gp_cfg["zetas"])) < 1:
            raise ValueError("apro_loss.loss_gp.zetas: expected at least one bandwidth")
        self.register_buffer("_apro_iter", torch.zeros((), dtype=torch.long), persistent=True)

    def _guide(self, inputs: Tensor) -> Tensor:
        pre = self.data_preprocessor
        x = inputs.detach().float()
        mean, std = getattr(pre, "mean", None), getattr(pre, "std", None)
        if mean is not None and std is not None and getattr(pre, "_enable_normalize", True):
            x = x * std.view(1, -1, 1, 1).to(x) + mean.view(1, -1, 1, 1).to(x)
        return (x / 255.0).contiguous()

    def loss(self, inputs: Tensor, data_samples) -> dict:
        x = self.extract_feat(inputs)
        seg_logits = self.decode_head.forward(x)
        losses = add_prefix(self.decode_head.loss_by_feat(seg_logits, data_samples), "decode")
        if self.loss_gp_cfg is not None or self.loss_lp_cfg is not None:
            losses.update(add_prefix(self._apro_losses(seg_logits, inputs, data_samples), "decode"))
        if self.with_auxiliary_head:
            losses.update(self._auxiliary_head_forward_train(x, data_samples))
        return losses

    def _apro_losses(self, seg_logits: Tensor, inputs: Tensor, data_samples) -> dict:
        labels = torch.stack([s.gt_sem_seg.data[0] for s in data_samples]).to(seg_logits.device)
        logits = resize(seg_logits, size=labels.shape[-2:], mode="bilinear",
                        align_corners=self.decode_head.align_corners)
        probs = logits.float().softmax(dim=1)
        guide = self._guide(inputs)
        if guide.shape[-2:] != probs.shape[-2:]:  # padded batch: the labels define the size
            guide = F.interpolate(guide, size=probs.shape[-2:], mode="bilinear", align_corners=False)
        mask = region_mask(labels, self.region).to(probs)
        factor = 1.0
        if self.training:
            self._apro_iter += 1
            if self.warmup_iters > 0:
                factor = min(1.0, float(self._apro_iter) / self.warmup_iters)
        out = {}
        if self.loss_gp_cfg is not None:
            soft = gp_targets(probs, guide, self.loss_gp_cfg["zetas"])
            out["loss_gp"] = factor * self.loss_gp_cfg["loss_weight"] * soft_l1_loss(probs, soft, mask)
        if self.loss_lp_cfg is not None:
            c = self.loss_lp_cfg
            soft = lp_targets(probs, guide, c["kernel_size"], c["zeta"], c["iterations"])
            out["loss_lp"] = factor * c["loss_weight"] * soft_l1_loss(probs, soft, mask)
        return out


@DATASETS.register_module()
class SyntheticSegDataset(BaseSegDataset):
    """Images ``<data_root>/<img_path>/<stem>.png`` with labels ``<seg_map_path>/<stem>.png`` (255 = unlabelled)."""

    METAINFO = dict(classes=SYNTHETIC_CLASSES,
                    palette=[[0, 0, 0], [230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200],
                             [245, 130, 48], [145, 30, 180]])

    def __init__(self, img_suffix: str = ".png", seg_map_suffix: str = ".png", **kwargs):
        super().__init__(img_suffix=img_suffix, seg_map_suffix=seg_map_suffix, reduce_zero_label=False, **kwargs)
