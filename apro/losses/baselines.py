"""Other pairwise terms, as switchable losses of :class:`~apro.models.box_solov2.BoxSOLOV2Head`.

So that they compare with APro's GP and LP on equal footing (same network,
same box targets, same guide image, same ``(K, 1, H, W)`` conventions as
:mod:`apro.losses.box`):

* **BoxInst's colour-similarity pairwise loss** (Tian et al., CVPR 2021). For
  every pixel i and its 8 neighbours j in a 3x3 window with dilation 2, the
  colour similarity is ``s_ij = exp(-||lab_i - lab_j||_2 / theta)`` (theta 2,
  CIE-Lab of the RGB image); edges with ``s_ij >= tau`` (0.3) inside the box
  are "same label" edges, and the loss is
  ``-log(p_i p_j + (1 - p_i)(1 - p_j))`` averaged over them. The unfolding and
  the log-space edge term are mmdet's (``unfold_wo_center``,
  ``BoxInstMaskHead.get_pairwise_affinity``); mmdet computes the Lab
  conversion with scikit-image inside its data preprocessor, which this stack
  lacks, so :func:`rgb_to_lab` does it in torch.
* **Tree filter** of the tree energy loss (TEL, Liang et al., CVPR 2022): on the
  same minimum spanning tree as GP, the affinity of i and j is the *product* of
  the edge affinities along the tree path,
  ``T_ij = prod_{e on path(i, j)} exp(-w_e / zeta^2) = exp(-sum_e w_e / zeta^2)``
  (GP takes the *max* edge instead), and the soft target is the normalised
  filter ``y_i = sum_j T_ij p_j / sum_j T_ij``. Like GP it runs a first pass
  with edge weights from the image and optional further passes with weights
  from the previous output; the loss is the masked L1 of
  :func:`apro.losses.box.masked_l1_loss`. The filter is computed exactly
  in O(N) per map with the two sweeps (leaves to root, root to leaves) of the
  tree filter, by the compiled op :func:`apro.ops.tree_filter`.
"""
from __future__ import annotations

from types import MappingProxyType, SimpleNamespace
from typing import Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from apro.losses.box import GP_DEFAULTS

__all__ = ["rgb_to_lab", "boxinst_color_similarity", "boxinst_pairwise_loss", "tree_filter",
           "tree_filter_soft_targets", "tree_filter_loss", "tree_edge_weights", "tree_order", "BOXINST_DEFAULTS",
           "TREE_FILTER_DEFAULTS"]

#: BoxInst's term (read-only; the head's defaults and the functions' keyword defaults)
BOXINST_DEFAULTS: Mapping = MappingProxyType(dict(loss_weight=1.0, kernel_size=3, dilation=2, theta=2.0,
                                                  color_thresh=0.3))
#: the tree filter runs with GP's weight and bandwidths (equal footing)
TREE_FILTER_DEFAULTS: Mapping = MappingProxyType(dict(GP_DEFAULTS))


# ---------------------------------------------------------------- BoxInst

def rgb_to_lab(rgb: Tensor) -> Tensor:
    """CIE-Lab (D65) of ``(B, 3, H, W)`` sRGB values in [0, 255]; L in [0, 100]."""
    if rgb.dim() != 4 or rgb.shape[1] != 3:
        raise ValueError(f"rgb must be a (B, 3, H, W) tensor of RGB values in [0, 255], got {tuple(rgb.shape)}")
    c = (rgb.float() / 255.0).clamp(0.0, 1.0)
    lin = torch.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92)
    m = torch.tensor([[0.412453, 0.357580, 0.180423],
                      [0.212671, 0.715160, 0.072169],
                      [0.019334, 0.119193, 0.950227]], dtype=lin.dtype, device=lin.device)
    xyz = torch.einsum("ij,bjhw->bihw", m, lin)
    white = torch.tensor([0.95047, 1.0, 1.08883], dtype=lin.dtype, device=lin.device).view(1, 3, 1, 1)
    t = xyz / white
    eps = (6.0 / 29.0) ** 3
    f = torch.where(t > eps, t.clamp(min=eps) ** (1.0 / 3.0), t / (3 * (6.0 / 29.0) ** 2) + 4.0 / 29.0)
    L = 116.0 * f[:, 1] - 16.0
    a = 500.0 * (f[:, 0] - f[:, 1])
    b = 200.0 * (f[:, 1] - f[:, 2])
    return torch.stack([L, a, b], dim=1)


def boxinst_color_similarity(lab: Tensor, kernel_size: int = BOXINST_DEFAULTS["kernel_size"],
                             dilation: int = BOXINST_DEFAULTS["dilation"],
                             theta: float = BOXINST_DEFAULTS["theta"]) -> Tensor:
    """``(B, k*k - 1, H, W)``: ``exp(-||lab_i - lab_j|| / theta)`` for the neighbours j of every pixel i.

    Neighbour order is ``unfold``'s (row-major offsets, the centre left out);
    neighbours outside the image get similarity 0 (as zero padding would
    give in mmdet, where the padded image mask zeroes them).
    """
    from mmdet.models.utils.misc import unfold_wo_center

    if lab.dim() != 4:
        raise ValueError(f"lab must be a (B, C, H, W) tensor, got {tuple(lab.shape)}")
    unfolded = unfold_wo_center(lab, kernel_size=kernel_size, dilation=dilation)
    inside = unfold_wo_center(torch.ones_like(lab[:, :1]), kernel_size=kernel_size, dilation=dilation)[:, 0]
    diff = lab[:, :, None] - unfolded
    return torch.exp(-torch.norm(diff, dim=1) / float(theta)) * inside


def _same_label_nll(mask_logits: Tensor, kernel_size: int, dilation: int) -> Tensor:
    """``-log(p_i p_j + (1-p_i)(1-p_j))`` per edge, ``(K, k*k-1, H, W)``: mmdet's BoxInst edge term."""
    from mmdet.models.dense_heads.boxinst_head import BoxInstMaskHead

    # the method only reads these two attributes, so it runs without building a whole head
    fake_head = SimpleNamespace(pairwise_size=kernel_size, pairwise_dilation=dilation)
    return BoxInstMaskHead.get_pairwise_affinity(fake_head, mask_logits[:, 0])


def boxinst_pairwise_loss(mask_logits: Tensor, box_masks: Tensor, similarity: Tensor, image_index: Tensor,
                          kernel_size: int = BOXINST_DEFAULTS["kernel_size"],
                          dilation: int = BOXINST_DEFAULTS["dilation"],
                          color_thresh: float = BOXINST_DEFAULTS["color_thresh"]) -> Tensor:
    """Per-instance BoxInst pairwise loss, ``(K,)``.

    Args:
        mask_logits: ``(K, 1, H, W)`` mask logits (before the sigmoid), with gradient.
        box_masks: ``(K, 1, H, W)`` 0/1 box masks.
        similarity: ``(B, k*k-1, H, W)`` from :func:`boxinst_color_similarity`.
        image_index: ``(K,)`` image of each instance.

    The edges of an instance are those starting at a pixel of its box with
    similarity ``>= color_thresh``; the loss is their mean NLL (0 with no edge).
    """
    if mask_logits.dim() != 4 or mask_logits.shape[1] != 1:
        raise ValueError(f"mask_logits must be (K, 1, H, W), got {tuple(mask_logits.shape)}")
    from mmdet.models.utils.misc import unfold_wo_center

    nll = _same_label_nll(mask_logits, kernel_size, dilation)
    # neighbours outside the image are never edges, whatever the threshold
    inside = unfold_wo_center(torch.ones_like(mask_logits[:1]), kernel_size=kernel_size, dilation=dilation)[:, 0]
    edges = (similarity[image_index] >= color_thresh).to(nll.dtype) * box_masks.to(nll.dtype) * inside
    return (nll * edges).sum(dim=(1, 2, 3)) / edges.sum(dim=(1, 2, 3)).clamp(min=1.0)


# ---------------------------------------------------------------- tree filter (TEL)

def tree_edge_weights(guide: Tensor, tree: Tensor) -> Tensor:
    """``(B, N-1)`` squared colour distances of the tree edges; guide ``(B, C, H, W)``, tree ``(B, N-1, 2)``."""
    flat = guide.reshape(guide.shape[0], guide.shape[1], -1).float()
    u, v = tree[..., 0], tree[..., 1]
    gu = torch.gather(flat, 2, u[:, None, :].expand(-1, flat.shape[1], -1))
    gv = torch.gather(flat, 2, v[:, None, :].expand(-1, flat.shape[1], -1))
    return ((gu - gv) ** 2).sum(dim=1)


def tree_order(edges: np.ndarray, n: int, root: int = 0) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The one walk of a spanning tree (``(n-1, 2)`` vertex pairs of ``n`` vertices): its BFS order from
    ``root``, each vertex's parent and the index of the edge to its parent (-1 at the root).

    ``order[1:]`` visits every vertex after its parent (root to leaves), ``order[:0:-1]`` every vertex
    before its parent (leaves to root)."""
    adj = [[] for _ in range(n)]
    for e, (u, v) in enumerate(np.asarray(edges).tolist()):
        adj[u].append((v, e))
        adj[v].append((u, e))
    parent = np.full(n, -1, dtype=np.int64)
    parent_edge = np.full(n, -1, dtype=np.int64)
    order = [root]
    seen = np.zeros(n, dtype=bool)
    seen[root] = True
    for a in order:  # the list grows while it is walked: a BFS
        for b, e in adj[a]:
            if not seen[b]:
                seen[b] = True
                parent[b], parent_edge[b] = a, e
                order.append(b)
    if len(order) != n:
        raise ValueError(f"tree does not span the {n} pixels (reached {len(order)})")
    return np.asarray(order), parent, parent_edge


@torch.no_grad()
def tree_filter(values: Tensor, guide: Optional[Tensor], tree: Tensor, zeta: float,
                image_index: Optional[Tensor] = None) -> Tensor:
    """Normalised tree filter: ``y_i = sum_j T_ij x_j / sum_j T_ij``, ``T_ij = exp(-sum_{path} w_e / zeta^2)``.

    Same arguments as :func:`apro.ops.global_propagate`: ``values`` ``(K, C, H, W)``,
    ``guide`` ``(B, Cg, H, W)`` (edge weights from its colours) or None (each map
    weights the tree itself), ``tree`` ``(B, H*W-1, 2)``, ``image_index`` ``(K,)``.
    Runs the compiled op :func:`apro.ops.tree_filter`; the numpy version it
    replaced is :func:`apro.reference.tree_filter_numpy`.
    """
    from apro.ops import tree_filter as compiled_tree_filter

    if values.dim() != 4:
        raise ValueError(f"values must be a (K, C, H, W) tensor, got {tuple(values.shape)}")
    return compiled_tree_filter(values, guide, tree, zeta, image_index)


@torch.no_grad()
def tree_filter_soft_targets(mask_scores: Tensor, images: Tensor, image_index: Tensor,
                             zetas: Sequence[float] = TREE_FILTER_DEFAULTS["zetas"],
                             tree: Optional[Tensor] = None) -> Tensor:
    """TEL-style soft targets: pass 1 guided by the image, later passes by the previous output (as GP)."""
    from apro.losses.box import tree_passes

    return tree_passes(tree_filter, mask_scores, images, image_index, zetas, tree)


def tree_filter_loss(mask_scores: Tensor, box_masks: Tensor, images: Tensor, image_index: Tensor,
                     zetas: Sequence[float] = TREE_FILTER_DEFAULTS["zetas"]) -> Tensor:
    """Per-instance loss: masked L1 to the (constant) tree-filter soft targets."""
    from apro.losses.box import masked_l1_loss

    soft = tree_filter_soft_targets(mask_scores, images, image_index, zetas)
    return masked_l1_loss(mask_scores, soft, box_masks)
