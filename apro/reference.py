"""Reference formulations kept for checking and benchmarking the ops.

These are deliberately the straightforward versions: ``local_propagate_unfold``
is the original APro code's LP (dense ``unfold`` of an image repeated per
instance), which the benchmark compares against and the tests use as a second
reference next to a plain loop written from the definition.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from apro.defaults import LP_DEFAULTS


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
