"""Box-supervised mask losses: the projection term and APro's GP and LP terms.

Plain functions on tensors, shared by the mmdet heads and the tests. Every
function takes

* ``mask_scores``: ``(K, 1, H, W)`` predicted foreground probabilities
  (after the sigmoid) of K instances, with gradient;
* ``box_masks``: ``(K, 1, H, W)`` 0/1 float masks of their GT boxes at the
  same resolution;

and returns a ``(K,)`` tensor: one loss per instance. The caller averages
over instances and applies the weight.

GP and LP build constant soft targets (no gradient) with the ops of
:mod:`apro.ops`; the loss is ``sum(|p - target| * box) / box area``, the
formula of APro's README. ``images`` (``(B, C, H, W)``) is the guide image of
each of the B images of the batch and ``image_index`` (``(K,)`` int64) says
which image every instance belongs to, so the tree and the local affinities
are computed once per image and shared by all its instances.
"""
from __future__ import annotations

from typing import Mapping, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from apro.defaults import GP_DEFAULTS, LP_DEFAULTS

__all__ = ["dice_coefficient_loss", "projection_loss", "gp_soft_targets", "lp_soft_targets",
           "masked_l1_loss", "gp_loss", "lp_loss", "box_masks_from_boxes", "release_box_masks",
           "box_rows_cols", "mask_rows_cols", "rescale_rows_cols",
           "GP_DEFAULTS", "LP_DEFAULTS", "loss_term_cfg"]


# each term's settings are written once, in apro.defaults (re-exported here for the heads)
def loss_term_cfg(cfg: Optional[dict], owner: str, name: str, defaults: Mapping) -> Optional[dict]:
    """A loss term's settings: None (the term is off) or ``defaults`` updated with ``cfg``,
    whose keys must be among the defaults' (a typo fails with the term's name)."""
    if cfg is None:
        return None
    if not isinstance(cfg, dict):
        raise TypeError(f"{owner}: {name} must be a dict or None, got {type(cfg).__name__}")
    unknown = set(cfg) - set(defaults)
    if unknown:
        raise ValueError(f"{owner}: unknown keys {sorted(unknown)} in {name}; expected some of {sorted(defaults)}")
    return {**defaults, **cfg}


def _check_maps(name: str, t: Tensor) -> None:
    if not isinstance(t, Tensor) or t.dim() != 4 or t.shape[1] != 1:
        shape = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
        raise ValueError(f"{name} must be a (K, 1, H, W) tensor, got {shape}")


def dice_coefficient_loss(x: Tensor, target: Tensor, eps: float = 1e-5) -> Tensor:
    """``1 - 2 sum(x t) / (sum(x^2) + sum(t^2) + eps)`` per instance (first dim)."""
    x = x.reshape(x.shape[0], -1)
    target = target.reshape(target.shape[0], -1).to(x.dtype)
    intersection = (x * target).sum(dim=1)
    union = (x * x).sum(dim=1) + (target * target).sum(dim=1) + eps
    return 1.0 - 2.0 * intersection / union


def projection_loss(mask_scores: Tensor, box_masks: Tensor) -> Tensor:
    """BoxInst's projection term: dice on the max projections onto the x and y axes.

    Returns ``dice(max_y p, max_y b) + dice(max_x p, max_x b)`` per instance: 0
    (up to the dice epsilon) when the prediction's projections equal the box's.
    """
    _check_maps("mask_scores", mask_scores)
    _check_maps("box_masks", box_masks)
    loss_y = dice_coefficient_loss(mask_scores.amax(dim=2), box_masks.amax(dim=2))
    loss_x = dice_coefficient_loss(mask_scores.amax(dim=3), box_masks.amax(dim=3))
    return loss_x + loss_y


def masked_l1_loss(mask_scores: Tensor, targets: Tensor, box_masks: Tensor) -> Tensor:
    """``sum(|p - t| * box) / max(box area, 1)`` per instance."""
    diff = (mask_scores - targets.detach()).abs() * box_masks
    area = box_masks.sum(dim=(1, 2, 3)).clamp(min=1.0)
    return diff.sum(dim=(1, 2, 3)) / area


@torch.no_grad()
def gp_soft_targets(mask_scores: Tensor, images: Tensor, image_index: Tensor,
                    zetas: Sequence[float] = GP_DEFAULTS["zetas"], tree: Optional[Tensor] = None) -> Tensor:
    """Global affinity propagation targets (two passes, as in APro's SOLOv2).

    Pass 1 propagates the prediction over the image's minimum spanning tree
    with tree-edge weights from the image colours (``zetas[0]``); pass 2
    propagates pass 1's output over the same tree, weighted by pass 1's output
    itself (``zetas[1]``). The tree is built once per image.
    """
    from apro.ops import global_propagate

    return tree_passes(global_propagate, mask_scores, images, image_index, zetas, tree)


def tree_passes(propagate, scores: Tensor, images: Tensor, image_index: Tensor, zetas: Sequence[float],
                tree: Optional[Tensor] = None) -> Tensor:
    """``propagate(values, guide, tree, zeta, image_index)`` once per bandwidth over each image's MST:
    pass 1 guided by the image (``zetas[0]``), every later pass by the previous output (``guide=None``)."""
    from apro.ops import minimum_spanning_tree

    if tree is None:
        tree = minimum_spanning_tree(images)
    soft = propagate(scores, images, tree, float(zetas[0]), image_index)
    for zeta in zetas[1:]:
        soft = propagate(soft, None, tree, float(zeta), image_index)
    return soft


@torch.no_grad()
def lp_soft_targets(mask_scores: Tensor, images: Tensor, box_masks: Tensor, image_index: Tensor,
                    kernel_size: int = LP_DEFAULTS["kernel_size"], zeta: float = LP_DEFAULTS["zeta"],
                    iterations: int = LP_DEFAULTS["iterations"]) -> Tensor:
    """Local affinity propagation targets, masked by the box at every iteration."""
    from apro.ops import local_propagate

    return local_propagate(images, mask_scores, box_masks, image_index,
                           kernel_size=kernel_size, zeta=zeta, iterations=iterations)


def gp_loss(mask_scores: Tensor, box_masks: Tensor, images: Tensor, image_index: Tensor,
            zetas: Sequence[float] = GP_DEFAULTS["zetas"]) -> Tensor:
    """Per-instance GP loss: masked L1 to the (constant) GP soft targets."""
    _check_maps("mask_scores", mask_scores)
    _check_maps("box_masks", box_masks)
    soft = gp_soft_targets(mask_scores, images, image_index, zetas)
    return masked_l1_loss(mask_scores, soft, box_masks)


def lp_loss(mask_scores: Tensor, box_masks: Tensor, images: Tensor, image_index: Tensor,
            kernel_size: int = LP_DEFAULTS["kernel_size"], zeta: float = LP_DEFAULTS["zeta"],
            iterations: int = LP_DEFAULTS["iterations"]) -> Tensor:
    """Per-instance LP loss: masked L1 to the (constant) LP soft targets."""
    _check_maps("mask_scores", mask_scores)
    _check_maps("box_masks", box_masks)
    soft = lp_soft_targets(mask_scores, images, box_masks, image_index, kernel_size, zeta, iterations)
    return masked_l1_loss(mask_scores, soft, box_masks)


def box_masks_from_boxes(boxes: Tensor, height: int, width: int, stride: float = 1.0) -> Tensor:
    """Rasterise ``(K, 4)`` xyxy boxes (input pixels) onto an ``(height, width)`` grid.

    Cell ``(i, j)`` covers input pixels ``[j*stride, (j+1)*stride)`` and is
    inside a box when its centre is (a box edge is rounded to the nearest cell
    border); every box with positive size gets at least one cell. Returns a
    ``(K, height, width)`` float tensor of 0/1.
    """
    if boxes.dim() != 2 or boxes.shape[-1] != 4:
        raise ValueError(f"boxes must be (K, 4) xyxy, got {tuple(boxes.shape)}")
    b = boxes.detach().to(torch.float32) / float(stride)
    x0 = torch.floor(b[:, 0] + 0.5).clamp(0, width - 1)
    y0 = torch.floor(b[:, 1] + 0.5).clamp(0, height - 1)
    x1 = torch.maximum(torch.floor(b[:, 2] + 0.5).clamp(0, width), x0 + 1)
    y1 = torch.maximum(torch.floor(b[:, 3] + 0.5).clamp(0, height), y0 + 1)
    xs = torch.arange(width, device=boxes.device, dtype=torch.float32)
    ys = torch.arange(height, device=boxes.device, dtype=torch.float32)
    in_x = (xs[None] >= x0[:, None]) & (xs[None] < x1[:, None])
    in_y = (ys[None] >= y0[:, None]) & (ys[None] < y1[:, None])
    return (in_y[:, :, None] & in_x[:, None, :]).to(torch.float32)


def box_rows_cols(boxes: Tensor, height: int, width: int, image_shape: Optional[Sequence[int]] = None):
    """The rows and columns the APro release's ``GenerateBoxMask`` fills for ``(K, 4)`` xyxy boxes on a
    ``height x width`` input: the box rounded, rows ``y0..y1`` and columns ``x0..x1`` inclusive, cut at
    the border of the image, whose own ``(h, w)`` is ``image_shape`` (default: the whole input; the
    padding is never filled). Returns ``(K, height)`` and ``(K, width)`` 0/1 float tensors."""
    if boxes.dim() != 2 or boxes.shape[-1] != 4:
        raise ValueError(f"boxes must be (K, 4) xyxy, got {tuple(boxes.shape)}")
    img_h, img_w = (height, width) if image_shape is None else (int(image_shape[0]), int(image_shape[1]))
    r = boxes.detach().to(torch.float32).round()  # numpy's and torch's round: half to even
    ys = torch.arange(height, device=boxes.device, dtype=torch.float32)
    xs = torch.arange(width, device=boxes.device, dtype=torch.float32)
    rows = ((ys[None] >= r[:, 1:2]) & (ys[None] <= r[:, 3:4]) & (ys[None] < img_h)).to(torch.float32)
    cols = ((xs[None] >= r[:, 0:1]) & (xs[None] <= r[:, 2:3]) & (xs[None] < img_w)).to(torch.float32)
    return rows, cols


def mask_rows_cols(masks: Tensor, owner: str = "box masks"):
    """The rows and columns of ``(K, H, W)`` box masks (rectangles, as ``GenerateBoxMask`` draws them and
    the pipeline's resize, flip, crop and pad keep them): ``(K, H)`` and ``(K, W)`` 0/1 float tensors.
    Masks that are not rectangles (instance masks) raise: a box-supervised head must never see them."""
    if masks.dim() != 3:
        raise ValueError(f"{owner} must be (K, H, W), got {tuple(masks.shape)}")
    m = masks.bool()
    rows, cols = m.any(dim=2), m.any(dim=1)
    if not torch.equal(rows[:, :, None] & cols[:, None, :], m):
        raise ValueError(f"{owner}: expected box masks (filled rectangles, GenerateBoxMask in the pipeline), got "
                         f"other shapes: instance masks would give a box-supervised head full supervision")
    return rows.to(torch.float32), cols.to(torch.float32)


def rescale_rows_cols(rows: Tensor, cols: Tensor, size: Optional[Sequence[int]] = None) -> Tensor:
    """The box masks ``rows x cols`` at ``size`` as ``mmcv.imrescale`` shrinks them (OpenCV's bilinear resize
    of a 0/1 uint8 image, rounded half up); separable, so it runs per axis. ``(K, size[0], size[1])`` 0/1 float."""
    out_h, out_w = (rows.shape[1], cols.shape[1]) if size is None else (int(size[0]), int(size[1]))
    if rows.shape[0] == 0:
        return rows.new_zeros((0, out_h, out_w))
    if out_h != rows.shape[1]:
        rows = F.interpolate(rows[:, None], size=out_h, mode="linear", align_corners=False)[:, 0]
    if out_w != cols.shape[1]:
        cols = F.interpolate(cols[:, None], size=out_w, mode="linear", align_corners=False)[:, 0]
    return ((rows[:, :, None] * cols[:, None, :]) >= 0.5).to(torch.float32)


def release_box_masks(boxes: Tensor, height: int, width: int, size: Optional[Sequence[int]] = None,
                      image_shape: Optional[Sequence[int]] = None) -> Tensor:
    """The APro release's box masks of ``(K, 4)`` xyxy boxes on a ``height x width`` input, at ``size``
    (default: the input's own size, no resize): ``GenerateBoxMask`` on the image (:func:`box_rows_cols`),
    zero-padded to the input, shrunk by ``mmcv.imrescale`` (:func:`rescale_rows_cols`)."""
    return rescale_rows_cols(*box_rows_cols(boxes, height, width, image_shape), size)
