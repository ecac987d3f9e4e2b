"""The ops in device-generic torch: their CUDA kernels.

Registered with torch's dispatcher at import (:mod:`apro.ops` imports this
module), so ``torch.ops.apro.*`` on CUDA tensors runs these. LP, the grid edge
costs, the sorts and the GP fill are tensor ops on the inputs' device; only
the union-find of Kruskal's algorithm and of each GP merge layout runs on the
host, on integer edge orders, in parallel across maps
(``torch.ops.apro.kruskal_from_order`` and ``torch.ops.apro.gp_layouts``). No
value map leaves the device. The tree filter (a baseline) has no device code:
its CUDA kernel runs the CPU kernel behind copies.

The same code runs on CPU tensors, which is how the tests check it against the
compiled CPU kernels (``tests/ops/test_device_ops.py``): the same tree, GP and
LP within 1e-5. The functions take the arguments of the ``torch.ops.apro`` ops
and return what the CPU kernels return (float32 maps, int64 trees).
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from apro import _C  # noqa: F401  (registers the host ops)

__all__ = ["minimum_spanning_tree", "minimum_spanning_tree_from_weights", "global_propagate", "local_propagate",
           "tree_filter_on_host"]


def _squared_distances(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """``sum_c (first[:, c] - second[:, c])**2`` over dim 1, summed channel by channel
    in float32 as the compiled ops do, so that equal inputs give equal bits."""
    total = torch.zeros_like(first[:, 0])
    for c in range(first.shape[1]):
        diff = first[:, c] - second[:, c]
        total = total + diff * diff
    return total


def grid_edge_costs(guide: torch.Tensor) -> torch.Tensor:
    """``(B, C, H, W)`` -> ``(B, H*(W-1) + (H-1)*W)`` squared colour distances of the
    4-connected grid's edges, in grid-edge order (horizontal edges row by row, then vertical)."""
    batch = guide.shape[0]
    horizontal = _squared_distances(guide[..., :, :-1], guide[..., :, 1:]).reshape(batch, -1)
    vertical = _squared_distances(guide[..., :-1, :], guide[..., 1:, :]).reshape(batch, -1)
    return torch.cat([horizontal, vertical], dim=1)


def minimum_spanning_tree_from_weights(weights: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The compiled op's tree (the APro release's): grid edges sorted on the device by the float32
    ``cost + 1``, equal keys in the release's edge order (vertical edges first; a stable sort of the
    edges in that order), Kruskal's joins on the host."""
    if weights.numel() and bool((weights < 0).any()):
        raise ValueError("minimum_spanning_tree_from_weights: weights must be non-negative")
    horizontal = height * (width - 1)
    vertical = weights.shape[1] - horizontal
    keys = torch.cat([weights[:, horizontal:], weights[:, :horizontal]], dim=1).float() + 1.0
    order = torch.sort(keys, dim=1, stable=True).indices
    order = torch.where(order < vertical, order + horizontal, order - vertical)
    return torch.ops.apro.kruskal_from_order(order.cpu(), height, width).to(weights.device)


def minimum_spanning_tree(guide: torch.Tensor) -> torch.Tensor:
    """The tree of :func:`minimum_spanning_tree_from_weights` on the guide's grid-edge costs."""
    return minimum_spanning_tree_from_weights(grid_edge_costs(guide.float()), *guide.shape[-2:])


def _compact(index: torch.Tensor, num_images: int):
    """The images that have value maps (ascending) and each map's position among them."""
    used = torch.unique(index)
    slot = torch.full((num_images,), -1, dtype=torch.int64, device=index.device)
    slot[used] = torch.arange(used.numel(), device=index.device)
    return used, slot[index]


def _tree_edge_costs(data: torch.Tensor, tree: torch.Tensor) -> torch.Tensor:
    """``data`` (S, C, N), ``tree`` (S, N-1, 2) -> (S, N-1) squared distances along the tree edges."""
    channels = data.shape[1]
    u = tree[..., 0].unsqueeze(1).expand(-1, channels, -1)
    v = tree[..., 1].unsqueeze(1).expand(-1, channels, -1)
    return _squared_distances(data.gather(2, u), data.gather(2, v))


@torch.no_grad()
def global_propagate(values: torch.Tensor, guide: Optional[torch.Tensor], tree: torch.Tensor,
                     image_index: torch.Tensor, zeta: float) -> torch.Tensor:
    """GP as the compiled op (see :func:`apro.ops.global_propagate`), on ``values``' device.

    One weight set per image (``guide`` given) or per value map (self-guided).
    Its tree edges are sorted by weight on the device; the host joins them into
    a merge layout, in which every block of the Kruskal order is a contiguous
    range of leaves. The device then adds each merge's block sums with prefix
    sums and a difference array, in float64, a channel of ones giving the
    normaliser.
    """
    values, tree = values.float(), tree.long()
    guide = None if guide is None else guide.float()
    device = values.device
    maps, channels = values.shape[0], values.shape[1]
    n = values.shape[2] * values.shape[3]
    if maps == 0 or n <= 1:
        return values.clone()
    index = image_index.to(device, torch.int64)
    flat = values.reshape(maps, channels, n)
    if guide is not None:  # one layout per image, shared by its maps
        used, layout_of_map = _compact(index, tree.shape[0])
        weights = _tree_edge_costs(guide.reshape(guide.shape[0], guide.shape[1], n)[used], tree[used])
        tree_of_layout = used
    else:
        layout_of_map = torch.arange(maps, device=device)
        weights = _tree_edge_costs(flat, tree[index])
        tree_of_layout = index
    order = torch.sort(weights, dim=1, stable=True).indices
    affinity = torch.exp(-weights.gather(1, order) * (1.0 / (zeta * zeta)))  # per merge, in join order
    leaf_at, start, mid, end = (t.to(device) for t in
                                torch.ops.apro.gp_layouts(order.cpu(), tree.cpu(), tree_of_layout.cpu()))

    lanes = channels + 1  # the values, then ones for the normaliser
    x = torch.cat([flat.double(), flat.new_ones(maps, 1, n, dtype=torch.float64)], dim=1)
    leaves = leaf_at[layout_of_map].unsqueeze(1).expand(-1, lanes, -1)
    x_sorted = x.gather(2, leaves)
    prefix = F.pad(x_sorted.cumsum(2), (1, 0))  # (K, lanes, N + 1)

    def bounds(t: torch.Tensor) -> torch.Tensor:
        return t[layout_of_map].unsqueeze(1).expand(-1, lanes, -1)

    st, md, en = bounds(start), bounds(mid), bounds(end)
    s = affinity.double()[layout_of_map].unsqueeze(1)
    left = s * (prefix.gather(2, md) - prefix.gather(2, st))  # what each leaf of the right block receives
    right = s * (prefix.gather(2, en) - prefix.gather(2, md))  # ... of the left block
    diff = torch.zeros_like(prefix)
    diff.scatter_add_(2, st, right).scatter_add_(2, md, left - right).scatter_add_(2, en, -left)
    added = diff.cumsum(2)[..., :n]
    y_sorted = (x_sorted + added) / (1.0 + added[:, -1:])
    out = torch.empty_like(x_sorted[:, :channels])
    out.scatter_(2, leaves[:, :channels], y_sorted[:, :channels])
    return out.to(values.dtype).reshape(values.shape)


@torch.no_grad()
def local_propagate(image: torch.Tensor, values: torch.Tensor, mask: Optional[torch.Tensor],
                    image_index: torch.Tensor, kernel_size: int, zeta: float, iterations: int) -> torch.Tensor:
    """LP as the compiled op (see :func:`apro.ops.local_propagate`), on ``values``' device.

    The normalised affinities of each image, one (H, W) plane per kernel offset
    (0 where the neighbour falls off the image), are computed once; every round
    is then a sum over the offsets of shifted, zero-padded value maps, in offset
    order as the compiled op sums them.
    """
    image, values = image.float(), values.float()
    device = values.device
    height, width = values.shape[-2:]
    r, k = kernel_size // 2, kernel_size
    index = image_index.to(device, torch.int64)
    used, of_map = _compact(index, image.shape[0])
    guide = image[used]
    padded_guide = F.pad(guide, (r, r, r, r))
    inside = F.pad(torch.ones_like(guide[:, :1, :, :]), (r, r, r, r))[:, 0]
    inv_zeta2 = 1.0 / (zeta * zeta)
    affinity = []
    for o in range(k * k):
        dy, dx = divmod(o, k)
        window = (slice(None), slice(None), slice(dy, dy + height), slice(dx, dx + width))
        distance = _squared_distances(guide, padded_guide[window])
        affinity.append(torch.exp(-distance * inv_zeta2) * inside[window[0], window[2], window[3]])
    total = torch.zeros_like(affinity[0])
    for a in affinity:
        total = total + a
    weights = [(a / total)[of_map].unsqueeze(1) for a in affinity]  # (K, 1, H, W) each

    m = None if mask is None else mask.unsqueeze(1).to(values.dtype)
    x = values if m is None else values * m
    for _ in range(iterations):
        padded = F.pad(x, (r, r, r, r))
        acc = torch.zeros_like(x)
        for o, w in enumerate(weights):
            dy, dx = divmod(o, k)
            acc = acc + w * padded[..., dy:dy + height, dx:dx + width]
        x = acc if m is None else acc * m
    return x.contiguous()


def tree_filter_on_host(values: torch.Tensor, guide: Optional[torch.Tensor], tree: torch.Tensor,
                        image_index: torch.Tensor, zeta: float) -> torch.Tensor:
    """The tree filter's CUDA kernel: the CPU kernel behind copies (a baseline, not worth device code)."""
    cpu = [None if t is None else t.cpu() for t in (values, guide, tree, image_index)]
    return torch.ops.apro.tree_filter(*cpu, zeta).to(values.device)


for _op, _kernel in {"minimum_spanning_tree": minimum_spanning_tree,
                     "minimum_spanning_tree_from_weights": minimum_spanning_tree_from_weights,
                     "global_propagate": global_propagate, "local_propagate": local_propagate,
                     "tree_filter": tree_filter_on_host}.items():
    torch.library.register_kernel(f"apro::{_op}", "cuda", _kernel)
