"""Minimum spanning tree module with the original constructor
(``MinimumSpanningTree(Global_APro.norm2_distance)``)."""
from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import nn

from apro.ops import minimum_spanning_tree, minimum_spanning_tree_from_weights


def _squared_l2(src: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
    diff = src - tgt
    return (diff * diff).sum(dim=1)


class MinimumSpanningTree(nn.Module):
    """``mst(image)``: (B, C, H, W) -> (B, H*W-1, 2) int64 tree of the pixel grid.

    ``distance_func(src, tgt)`` maps two (B, C, E) endpoint tensors to (B, E)
    non-negative edge costs; the squared L2 distance (the default and
    ``Global_APro.norm2_distance``) runs entirely in the compiled op.
    """

    def __init__(self, distance_func: Optional[Callable] = None):
        super().__init__()
        self.distance_func = distance_func

    def _is_squared_l2(self) -> bool:
        from apro.apro import Global_APro

        return self.distance_func in (None, _squared_l2, Global_APro.norm2_distance)

    @torch.no_grad()
    def forward(self, guide_in: torch.Tensor) -> torch.Tensor:
        if self._is_squared_l2():
            return minimum_spanning_tree(guide_in)
        if guide_in.dim() != 4:
            raise ValueError(f"guide must be (B, C, H, W), got shape {tuple(guide_in.shape)}")
        batch, channels, height, width = guide_in.shape
        guide = guide_in.detach().float()
        # Grid edges in the op's order: horizontal row by row, then vertical.
        horizontal = self.distance_func(guide[..., :, :-1].reshape(batch, channels, -1),
                                        guide[..., :, 1:].reshape(batch, channels, -1))
        vertical = self.distance_func(guide[..., :-1, :].reshape(batch, channels, -1),
                                      guide[..., 1:, :].reshape(batch, channels, -1))
        return minimum_spanning_tree_from_weights(torch.cat([horizontal, vertical], dim=1), height, width)
