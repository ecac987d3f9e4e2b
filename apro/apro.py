"""The original APro API (``from apro.apro import Global_APro, Local_APro``).

Code written for the original release runs unchanged; the work is done by
:mod:`apro.ops`. As in the original, inputs hold one entry per instance: the
image and its tree are repeated per instance (``K == B``).
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from apro.defaults import GP_DEFAULTS, LP_DEFAULTS
from apro.ops import global_propagate, local_propagate


class Global_APro(nn.Module):
    """Global affinity propagation over a minimum spanning tree.

    ``global_apro(mask_pred, image, tree, sigma=0.01)``: ``mask_pred`` (K, 1, H, W)
    (or (K, H, W), (K, C, H, W)), ``image`` (K, C, H, W) giving the tree-edge
    weights, ``tree`` (K, H*W-1, 2) from :class:`~apro.gp_cuda.mst.mst.MinimumSpanningTree`.
    ``zeta_g=`` (the original keyword) is accepted for ``sigma=``.
    """

    @staticmethod
    def norm2_distance(src: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        diff = src - tgt
        return (diff * diff).sum(dim=1)

    def forward(
        self,
        feature_in: torch.Tensor,
        embed_in: torch.Tensor,
        tree: torch.Tensor,
        sigma: Optional[float] = None,
        zeta_g: Optional[float] = None,
    ) -> torch.Tensor:
        if sigma is not None and zeta_g is not None and sigma != zeta_g:
            raise ValueError(f"pass either sigma or zeta_g, not both (got sigma={sigma}, zeta_g={zeta_g})")
        zeta = sigma if sigma is not None else (zeta_g if zeta_g is not None else GP_DEFAULTS["zetas"][0])
        return global_propagate(feature_in, embed_in, tree, zeta)


class Local_APro(nn.Module):
    """Local affinity propagation: ``local_apro(image, mask_pred, box_mask)``."""

    def __init__(self, kernel_size: int = LP_DEFAULTS["kernel_size"], zeta_s: float = LP_DEFAULTS["zeta"],
                 num_iter: int = LP_DEFAULTS["iterations"]):
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd and >= 1, got {kernel_size}")
        self.kernel_size = kernel_size
        self.zeta_s = zeta_s
        self.num_iter = num_iter

    def forward(self, img: torch.Tensor, feat: torch.Tensor, masked_box: Optional[torch.Tensor] = None):
        return local_propagate(img, feat, masked_box, kernel_size=self.kernel_size, zeta=self.zeta_s,
                               iterations=self.num_iter)
