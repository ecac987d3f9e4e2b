"""Fake (meta) kernels of the ``torch.ops.apro`` ops: the shape and dtype of each
output without computing it, so that ``torch.compile``, FakeTensor tracing and
``torch.library.opcheck`` see through the ops. Registered at import
(:mod:`apro.ops` imports this module); every output's size follows from the
input sizes, none from the data. They match the CPU kernels in ``csrc/cpu/``:
new contiguous tensors, float32 maps and int64 trees and layouts.
"""
from __future__ import annotations

from typing import Optional

import torch

from apro import _C  # noqa: F401  (defines the ops)

__all__: list = []


def _tree(like: torch.Tensor, batch: int, num_vertices: int) -> torch.Tensor:
    return like.new_empty((batch, max(num_vertices - 1, 0), 2), dtype=torch.int64)


def _maps(values: torch.Tensor) -> torch.Tensor:
    return values.new_empty(values.shape, dtype=torch.float32)


@torch.library.register_fake("apro::minimum_spanning_tree")
def _minimum_spanning_tree(guide):
    torch._check(guide.dim() == 4, lambda: f"minimum_spanning_tree: guide must be (B, C, H, W), got {guide.shape}")
    return _tree(guide, guide.shape[0], guide.shape[2] * guide.shape[3])


@torch.library.register_fake("apro::minimum_spanning_tree_from_weights")
def _minimum_spanning_tree_from_weights(weights, height: int, width: int):
    return _tree(weights, weights.shape[0], height * width)


@torch.library.register_fake("apro::kruskal_from_order")
def _kruskal_from_order(order, height: int, width: int):
    return _tree(order, order.shape[0], height * width)


@torch.library.register_fake("apro::gp_layouts")
def _gp_layouts(order, tree, tree_index):
    sets, num_edges = order.shape[0], tree.shape[1]
    leaf_at = order.new_empty((sets, num_edges + 1), dtype=torch.int64)
    return (leaf_at, *(order.new_empty((sets, num_edges), dtype=torch.int64) for _ in range(3)))


@torch.library.register_fake("apro::global_propagate")
def _global_propagate(values, guide: Optional[torch.Tensor], tree, image_index, zeta: float):
    return _maps(values)


@torch.library.register_fake("apro::tree_filter")
def _tree_filter(values, guide: Optional[torch.Tensor], tree, image_index, zeta: float):
    return _maps(values)


@torch.library.register_fake("apro::local_propagate")
def _local_propagate(image, values, mask: Optional[torch.Tensor], image_index, kernel_size: int, zeta: float,
                     iterations: int):
    return _maps(values)
