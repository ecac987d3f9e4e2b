"""Reference formulations kept for checking and benchmarking the ops.

These are deliberately the straightforward versions, which the ops benchmark
(``benchmarks/ops.py``) times the compiled ops against and the tests use as a
second reference next to brute force written from the definitions
(``tests/reference.py``):

* ``local_propagate_unfold``: the original APro code's LP (dense ``unfold`` of
  an image repeated per instance);
* ``tree_filter_numpy``: the numpy two-sweep tree filter of the tree energy
  loss that :func:`apro.losses.baselines.tree_filter` ran before the compiled
  :func:`apro.ops.tree_filter`.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from apro.defaults import LP_DEFAULTS
from apro.losses.baselines import tree_edge_weights, tree_order

__all__ = ["local_propagate_unfold", "tree_filter_numpy"]


@torch.no_grad()
def local_propagate_unfold(
    image: torch.Tensor,
    values: torch.Tensor,
    mask: Optional[torch.Tensor] = None,
    kernel_size: int = LP_DEFAULTS["kernel_size"],
    zeta: float = LP_DEFAULTS["zeta"],
    iterations: int = LP_DEFAULTS["iterations"],
) -> torch.Tensor:
    """LP as the original code computes it.

    Args:
        image: ``(K, C, H, W)``: the image repeated for each value map.
        values: ``(K, H, W)`` value maps.
        mask: optional ``(K, H, W)`` mask.
    """
    num, channels, height, width = image.shape
    k2 = kernel_size * kernel_size
    # Shifting the image keeps zero padding far from every colour, so
    # neighbours off the image get affinity exp(-large) = 0.
    image = image.float() + 10
    unfolded = F.unfold(image, kernel_size, padding=kernel_size // 2).reshape(num, channels, k2, height * width)
    affinity = torch.exp(-((unfolded - image.reshape(num, channels, 1, height * width)) ** 2 / zeta**2).sum(1))
    values = values.float()
    if mask is not None:
        mask = mask.float().reshape(num, height, width)
        values = values * mask
    for _ in range(iterations):
        neighbours = F.unfold(values[:, None], kernel_size, padding=kernel_size // 2).reshape(num, k2, height * width)
        values = ((neighbours * affinity).sum(1) / (affinity.sum(1) + 1e-10)).reshape(num, height, width)
        if mask is not None:
            values = values * mask
    return values


def _filter_one_tree(values: np.ndarray, edge_aff: np.ndarray, order, parent, parent_edge) -> np.ndarray:
    """sum_j T_ij x_j for x of shape (M, N) (M maps on one tree), edge_aff (M, N-1) or (N-1,)."""
    a = np.ones((values.shape[0], values.shape[1]))
    for v in order[1:]:
        a[:, v] = edge_aff[..., parent_edge[v]]
    up = values.copy()
    for v in order[:0:-1]:  # leaves to root: the sums of each subtree, seen from its root
        up[:, parent[v]] += a[:, v] * up[:, v]
    out = up.copy()
    for v in order[1:]:  # root to leaves: add what lies outside the subtree, through the parent
        out[:, v] = up[:, v] + a[:, v] * (out[:, parent[v]] - a[:, v] * up[:, v])
    return out


@torch.no_grad()
def tree_filter_numpy(values: torch.Tensor, guide: Optional[torch.Tensor], tree: torch.Tensor, zeta: float,
                      image_index: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Normalised tree filter in float64 numpy: ``y_i = sum_j T_ij x_j / sum_j T_ij``,
    ``T_ij = exp(-sum_{path} w_e / zeta^2)``.

    Same arguments as :func:`apro.ops.tree_filter`: ``values`` ``(K, C, H, W)``,
    ``guide`` ``(B, Cg, H, W)`` (edge weights from its colours) or None (each map
    weights the tree itself), ``tree`` ``(B, H*W-1, 2)``, ``image_index`` ``(K,)``.
    """
    if values.dim() != 4:
        raise ValueError(f"values must be a (K, C, H, W) tensor, got {tuple(values.shape)}")
    if not zeta > 0:
        raise ValueError(f"zeta must be > 0, got {zeta}")
    K, C, H, W = values.shape
    n = H * W
    if tree.dim() != 3 or tree.shape[1:] != (n - 1, 2):
        raise ValueError(f"tree must be (B, {n - 1}, 2) for {H}x{W} values, got {tuple(tree.shape)}")
    index = torch.arange(K) if image_index is None else image_index.detach().cpu().long()
    x = values.detach().double().cpu().numpy().reshape(K, C, n)
    out = np.empty_like(x)
    trees = tree.detach().cpu().numpy()
    if guide is not None:
        w_img = tree_edge_weights(guide.detach().cpu(), tree.detach().cpu()).double().numpy()
    for b in sorted(set(index.tolist())):
        ks = (index == b).nonzero().flatten().numpy()
        order, parent, parent_edge = tree_order(trees[b], n)
        if guide is not None:
            aff = np.exp(-w_img[b] / float(zeta) ** 2)
        else:
            u, v = trees[b][:, 0], trees[b][:, 1]
            w = ((x[ks][:, :, u] - x[ks][:, :, v]) ** 2).sum(axis=1)  # (M, N-1), per map
            aff = np.repeat(np.exp(-w / float(zeta) ** 2), C, axis=0)
        maps = x[ks].reshape(len(ks) * C, n)
        num = _filter_one_tree(maps, aff, order, parent, parent_edge)
        den = _filter_one_tree(np.ones_like(maps), aff, order, parent, parent_edge)
        out[ks] = (num / den).reshape(len(ks), C, n)
    return torch.from_numpy(out.reshape(K, C, H, W)).to(values.dtype).to(values.device)
