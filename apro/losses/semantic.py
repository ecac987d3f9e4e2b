"""Losses of point- and scribble-supervised semantic segmentation with APro.

Plain functions on tensors, shared by the mmseg plugin modules
(:mod:`apro.models.segmentor`) and the tests:

* :func:`partial_cross_entropy`: cross-entropy averaged over the labelled
  pixels only (``ignore_index`` = 255 marks the unlabelled ones);
* :func:`gp_targets` / :func:`lp_targets`: APro's soft pseudo labels of the
  class-probability maps (``(B, C, H, W)``, all C channels at once), with one
  minimum spanning tree per image (global) or the local colour affinities of
  each image (local). Targets are constants (no gradient); the work is done by
  :mod:`apro.ops`.
* :func:`soft_l1_loss`: ``sum_c |p - target|`` averaged over the pixels of a
  region mask (by default the unlabelled pixels, which the partial
  cross-entropy does not reach).
"""
from __future__ import annotations

from types import MappingProxyType
from typing import Mapping, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from apro.data.sparse_labels import IGNORE_INDEX  # the label PNGs' "unlabelled" value
from apro.losses.box import LP_DEFAULTS

__all__ = ["IGNORE_INDEX", "SEMANTIC_GP_DEFAULTS", "partial_cross_entropy", "gp_targets", "lp_targets",
           "soft_l1_loss", "region_mask"]

#: GP of the semantic setting (its own bandwidths; LP uses :data:`apro.losses.box.LP_DEFAULTS`)
SEMANTIC_GP_DEFAULTS: Mapping = MappingProxyType(dict(loss_weight=1.0, zetas=(0.05, 0.07)))


def _check(name: str, t: Tensor, dims: int) -> None:
    if not isinstance(t, Tensor) or t.dim() != dims:
        shape = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
        raise ValueError(f"{name}: expected a {dims}-D tensor, got {shape}")


def partial_cross_entropy(logits: Tensor, labels: Tensor, ignore_index: int = IGNORE_INDEX) -> Tensor:
    """Mean cross-entropy over the pixels whose label is not ``ignore_index``.

    ``logits``: ``(B, C, H, W)``; ``labels``: ``(B, H, W)`` integer class ids.
    A batch without labelled pixels gives 0 (with gradient), not NaN.
    """
    _check("logits", logits, 4)
    _check("labels", labels, 3)
    if labels.shape != (logits.shape[0],) + tuple(logits.shape[2:]):
        raise ValueError(f"labels: expected shape {(logits.shape[0],) + tuple(logits.shape[2:])} to match logits "
                         f"{tuple(logits.shape)}, got {tuple(labels.shape)}")
    labels = labels.long()
    valid = labels != ignore_index
    bad = valid & ((labels < 0) | (labels >= logits.shape[1]))
    if bool(bad.any()):
        raise ValueError(f"labels: class ids must lie in [0, {logits.shape[1]}) or equal {ignore_index}; "
                         f"found {sorted(set(labels[bad].tolist()))[:5]}")
    per_pixel = F.cross_entropy(logits, labels.masked_fill(~valid, 0), reduction="none")
    return (per_pixel * valid).sum() / valid.sum().clamp(min=1)


@torch.no_grad()
def gp_targets(probs: Tensor, images: Tensor, zetas: Sequence[float] = SEMANTIC_GP_DEFAULTS["zetas"],
               tree: Optional[Tensor] = None) -> Tensor:
    """Global propagation of ``(B, C, H, W)`` probabilities over each image's MST.

    Pass 1 weights the tree edges by the image colours (``zetas[0]``); every
    further pass is self-guided by the previous output (all C channels),
    as in APro's two-pass GP.
    """
    from apro.losses.box import gp_soft_targets

    _check("probs", probs, 4)
    _check("images", images, 4)
    index = torch.arange(probs.shape[0], dtype=torch.int64)
    return gp_soft_targets(probs, images, index, tuple(float(z) for z in zetas), tree=tree)


@torch.no_grad()
def lp_targets(probs: Tensor, images: Tensor, kernel_size: int = LP_DEFAULTS["kernel_size"],
               zeta: float = LP_DEFAULTS["zeta"], iterations: int = LP_DEFAULTS["iterations"]) -> Tensor:
    """Local propagation of ``(B, C, H, W)`` probabilities over the whole image (no box mask)."""
    from apro.ops import local_propagate

    _check("probs", probs, 4)
    _check("images", images, 4)
    return local_propagate(images, probs, None, None, kernel_size=kernel_size, zeta=zeta, iterations=iterations)


def region_mask(labels: Tensor, region: str, ignore_index: int = IGNORE_INDEX) -> Tensor:
    """``(B, H, W)`` float mask of the pixels a pseudo-label loss covers: ``unlabelled`` or ``all``."""
    if region == "unlabelled":
        return (labels == ignore_index).float()
    if region == "all":
        return torch.ones_like(labels, dtype=torch.float32)
    raise ValueError(f"region: expected 'unlabelled' or 'all', got {region!r}")


def soft_l1_loss(probs: Tensor, targets: Tensor, mask: Tensor) -> Tensor:
    """``sum over masked pixels of sum_c |p - t|`` divided by the number of masked pixels (>= 1)."""
    _check("probs", probs, 4)
    if targets.shape != probs.shape:
        raise ValueError(f"targets: expected shape {tuple(probs.shape)}, got {tuple(targets.shape)}")
    if mask.shape != (probs.shape[0],) + tuple(probs.shape[2:]):
        raise ValueError(f"mask: expected shape {(probs.shape[0],) + tuple(probs.shape[2:])}, got {tuple(mask.shape)}")
    diff = (probs - targets.detach()).abs().sum(dim=1) * mask
    return diff.sum() / mask.sum().clamp(min=1.0)
