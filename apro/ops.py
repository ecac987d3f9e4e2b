"""APro's pairwise ops: grid minimum spanning tree, global (GP) and local (LP)
affinity propagation, and the tree filter of the tree energy loss (TEL, a
baseline).

The work is done by torch custom ops, ``torch.ops.apro.*`` (schemas in
``csrc/ops.cpp``), which torch's dispatcher runs by the inputs' device: the
compiled kernels of ``csrc/cpu/`` on the CPU, the device-generic torch of
:mod:`apro.device_ops` on CUDA, and the fake kernels of
:mod:`apro.fake_kernels` under ``torch.compile`` and FakeTensor tracing. These
wrappers check arguments, accept the shapes and dtypes people pass in practice,
and return constant targets: nothing here carries gradient. All ops compute in
float32 (GP and the tree filter accumulate in float64) and return the input
dtype.
"""
from __future__ import annotations

from types import MappingProxyType
from typing import Mapping, Optional

import torch

# the ops and their kernels: CPU (apro._C), CUDA (device_ops), fake (fake_kernels)
from apro import _C, device_ops, fake_kernels  # noqa: F401
from apro.defaults import LP_DEFAULTS

__all__ = ["minimum_spanning_tree", "global_propagate", "tree_filter", "local_propagate"]


def _reads_values() -> bool:
    """Whether the wrappers check values (NaN/Inf, index ranges), which reads the data. Under
    ``torch.compile`` such a read would split the graph at every op, so there the values go
    unchecked here (the kernels still check index ranges); shapes and dtypes are checked always."""
    return not torch.compiler.is_compiling()


def _float_input(tensor: torch.Tensor, name: str, dims: tuple[int, ...], integers: bool = False) -> torch.Tensor:
    """Detached float32 contiguous copy of ``tensor``; rejects NaN/Inf and wrong ranks.

    Integer (and bool) tensors are accepted only where ``integers`` is set: a
    uint8 image silently scaled 0..255 would make every affinity vanish.
    """
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}")
    if tensor.dim() not in dims:
        shapes = " or ".join(f"{d}-D" for d in dims)
        raise ValueError(f"{name} must be {shapes}, got shape {tuple(tensor.shape)}")
    if tensor.is_complex() or not (tensor.is_floating_point() or integers):
        raise TypeError(f"{name} must be a floating-point tensor, got {tensor.dtype}"
                        + ("" if tensor.is_complex() else " (convert images to float, e.g. scaled to [0, 1])"))
    tensor = tensor.detach()
    # The sum is finite unless an element is NaN/Inf or the sum overflows: one
    # reduction instead of isfinite's three passes, the full check only then.
    if _reads_values() and tensor.is_floating_point() and not bool(torch.isfinite(tensor.sum())) \
            and not bool(torch.isfinite(tensor).all()):
        raise ValueError(f"{name} contains NaN or Inf")
    return tensor.to(torch.float32).contiguous()


def _value_maps(values: torch.Tensor) -> torch.Tensor:
    """(K, H, W) / (K, 1, H, W) / (K, C, H, W) -> float32 (K, C, H, W)."""
    values = _float_input(values, "values", (3, 4))
    return values.unsqueeze(1) if values.dim() == 3 else values


def _image_index(image_index: Optional[torch.Tensor], num_maps: int, num_images: int, device) -> torch.Tensor:
    if image_index is None:
        if num_maps != num_images:
            raise ValueError(
                f"values has {num_maps} maps but there are {num_images} images; "
                "pass image_index (K,) mapping each value map to its image"
            )
        return torch.arange(num_maps, dtype=torch.int64)
    if not isinstance(image_index, torch.Tensor):
        image_index = torch.as_tensor(image_index)
    if image_index.dtype.is_floating_point or image_index.dtype == torch.bool:
        raise TypeError(f"image_index must be an integer tensor, got {image_index.dtype}")
    if image_index.shape != (num_maps,):
        raise ValueError(f"image_index must have shape ({num_maps},), got {tuple(image_index.shape)}")
    image_index = image_index.detach().to("cpu", torch.int64)
    if _reads_values() and num_maps and (int(image_index.min()) < 0 or int(image_index.max()) >= num_images):
        raise ValueError(
            f"image_index values must lie in [0, {num_images}), got range "
            f"[{int(image_index.min())}, {int(image_index.max())}]"
        )
    return image_index


def _same_device(**tensors: Optional[torch.Tensor]) -> torch.device:
    devices = {name: t.device for name, t in tensors.items() if isinstance(t, torch.Tensor)}
    if len(set(devices.values())) > 1:
        listing = ", ".join(f"{name} on {dev}" for name, dev in devices.items())
        raise ValueError(f"all inputs must be on one device, got {listing}")
    return next(iter(devices.values()))


def _check_hw(name: str, tensor: torch.Tensor, height: int, width: int) -> None:
    if tuple(tensor.shape[-2:]) != (height, width):
        raise ValueError(
            f"{name} has spatial size {tuple(tensor.shape[-2:])} but values have ({height}, {width})"
        )


#: short name -> the profiler label of the op's calls (set by :func:`_run`)
PROFILER_LABELS: Mapping[str, str] = MappingProxyType({
    "tree": "apro.minimum_spanning_tree", "gp": "apro.global_propagate", "lp": "apro.local_propagate",
    "tree_filter": "apro.tree_filter"})


def seconds_in_ops(prof) -> dict:
    """Seconds a finished ``torch.profiler.profile`` spent in each op of :data:`PROFILER_LABELS`
    (a label's calls never nest). Calls that reached ``torch.ops.apro`` without these wrappers
    (code older than the labels) count by the compiled op's own ``apro::`` event."""
    totals = {e.key: e.cpu_time_total / 1e6 for e in prof.key_averages()}
    return {op: totals.get(label, totals.get(label.replace("apro.", "apro::"), 0.0))
            for op, label in PROFILER_LABELS.items()}


def _run(name: str, device: torch.device, *args):
    """Runs ``torch.ops.apro.<name>`` on ``device``, labelled ``apro.<name>`` for the
    profiler (benchmarks/paper_step.py --apro-share adds up these labels)."""
    with torch.profiler.record_function(f"apro.{name}"):  # the labels of PROFILER_LABELS
        return getattr(torch.ops.apro, name)(*(a.to(device) if isinstance(a, torch.Tensor) else a for a in args))


def minimum_spanning_tree(guide: torch.Tensor) -> torch.Tensor:
    """Minimum spanning tree of each image's 4-connected pixel grid.

    Args:
        guide: ``(B, C, H, W)`` float tensor; the cost of the edge between
            neighbouring pixels u and v is ``sum_c (guide[c, u] - guide[c, v])**2``
            (computed in float32).

    Returns:
        ``(B, H*W - 1, 2)`` int64 tensor of row-major vertex pairs ``(u, v)``,
        ``u < v``, listed in the order Kruskal's algorithm accepts them. The
        tree is the APro release's (its ``MinimumSpanningTree``): edges ranked
        by the float32 ``cost + 1``, equal ranks by the release's edge index
        (vertical edges ``(y, x)-(y+1, x)`` first, numbered ``y*W+x``, then
        horizontal edges ``(y, x)-(y, x+1)``, ``(H-1)*W + y*(W-1)+x``). Costs
        closer than float32 resolves at 1 (about 1.2e-7) tie; among the minimum
        spanning trees of the exact costs the release's is then one of the
        nearly-minimal ones, as here. The same input always gives the same tree.
    """
    device = _same_device(guide=guide)
    guide = _float_input(guide, "guide", (4,), integers=True)
    return _run("minimum_spanning_tree", device, guide)


def minimum_spanning_tree_from_weights(weights: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Like :func:`minimum_spanning_tree` with precomputed grid-edge costs.

    Args:
        weights: ``(B, H*(W-1) + (H-1)*W)`` non-negative costs in grid-edge order
            (all horizontal edges row by row, then all vertical edges).
    """
    device = _same_device(weights=weights)
    weights = _float_input(weights, "weights", (2,), integers=True)
    return _run("minimum_spanning_tree_from_weights", device, weights, int(height), int(width))


def _check_tree(tree: torch.Tensor, num_vertices: int) -> torch.Tensor:
    if not isinstance(tree, torch.Tensor):
        raise TypeError(f"tree must be a torch.Tensor, got {type(tree).__name__}")
    if tree.dtype.is_floating_point or tree.dtype == torch.bool:
        raise TypeError(f"tree must be an integer tensor (from minimum_spanning_tree), got {tree.dtype}")
    if tree.dim() != 3 or tree.shape[1:] != (max(num_vertices - 1, 0), 2):
        raise ValueError(f"tree must have shape (B, {max(num_vertices - 1, 0)}, 2) for H*W = {num_vertices}, "
                         f"got {tuple(tree.shape)}")
    return tree.detach().to(torch.int64).contiguous()


@torch.no_grad()
def global_propagate(
    values: torch.Tensor,
    guide: Optional[torch.Tensor],
    tree: torch.Tensor,
    zeta: float,
    image_index: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Global affinity propagation (exact, O(N log N) per weight set).

    ``y_i = sum_j S_ij x_j / sum_j S_ij`` over all pixels, with
    ``S_ij = exp(-max_{e on tree path(i, j)} w_e / zeta**2)`` and ``S_ii = 1``.

    Args:
        values: ``(K, H, W)``, ``(K, 1, H, W)`` or ``(K, C, H, W)`` value maps
            (instance probabilities, or C class probabilities).
        guide: ``(B, Cg, H, W)`` giving the tree-edge weights
            ``w_e = sum_c (guide[c, u] - guide[c, v])**2``, or ``None`` for the
            self-guided pass: each value map, all its channels, weights its
            image's tree itself.
        tree: ``(B, H*W - 1, 2)`` spanning trees from :func:`minimum_spanning_tree`
            (any spanning tree of the pixels works).
        zeta: bandwidth (0.01 for the image-guided pass, 0.07 for the
            self-guided one in SOLOv2).
        image_index: ``(K,)`` image of each value map; ``None`` means K == B.

    Returns:
        A tensor of ``values``' shape and dtype, without gradient.
    """
    return _tree_op("global_propagate", values, guide, tree, zeta, image_index)


def _tree_op(name, values, guide, tree, zeta, image_index):
    """Checks the arguments shared by the tree ops (GP, tree filter) and runs ``torch.ops.apro.<name>``."""
    device = _same_device(values=values, guide=guide, tree=tree)
    shape, dtype = values.shape, values.dtype
    maps = _value_maps(values)
    height, width = maps.shape[-2:]
    tree = _check_tree(tree, height * width)
    if guide is not None:
        guide = _float_input(guide, "guide", (4,))
        _check_hw("guide", guide, height, width)
        if guide.shape[0] != tree.shape[0]:
            raise ValueError(f"guide has {guide.shape[0]} images but tree has {tree.shape[0]}")
    if not zeta > 0:
        raise ValueError(f"zeta must be > 0, got {zeta}")
    index = _image_index(image_index, maps.shape[0], tree.shape[0], device)
    out = _run(name, device, maps, guide, tree, index, float(zeta))
    return out.reshape(shape).to(dtype)


@torch.no_grad()
def tree_filter(
    values: torch.Tensor,
    guide: Optional[torch.Tensor],
    tree: torch.Tensor,
    zeta: float,
    image_index: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Normalised tree filter of the tree energy loss (exact, O(N) per weight set).

    ``y_i = sum_j T_ij x_j / sum_j T_ij`` over all pixels, with
    ``T_ij = prod_{e on tree path(i, j)} exp(-w_e / zeta**2) = exp(-sum_e w_e / zeta**2)``
    and ``T_ii = 1`` (GP takes the max edge weight of the path instead of the
    sum). Two sweeps over the tree rooted at pixel 0, leaves to root then root
    to leaves, accumulated in float64.

    Arguments as :func:`global_propagate`: ``values`` ``(K, [C,] H, W)``;
    ``guide`` ``(B, Cg, H, W)`` giving ``w_e = sum_c (guide[c, u] - guide[c, v])**2``,
    or ``None`` for the self-guided pass (each value map, all its channels,
    weights its image's tree); ``tree`` ``(B, H*W - 1, 2)``; ``image_index`` ``(K,)``
    or ``None`` (K == B).

    Returns:
        A tensor of ``values``' shape and dtype, without gradient.
    """
    return _tree_op("tree_filter", values, guide, tree, zeta, image_index)


@torch.no_grad()
def local_propagate(
    image: torch.Tensor,
    values: torch.Tensor,
    mask: Optional[torch.Tensor] = None,
    image_index: Optional[torch.Tensor] = None,
    kernel_size: int = LP_DEFAULTS["kernel_size"],
    zeta: float = LP_DEFAULTS["zeta"],
    iterations: int = LP_DEFAULTS["iterations"],
) -> torch.Tensor:
    """Local affinity propagation.

    With ``a_ij = exp(-sum_c (image[c, i] - image[c, j])**2 / zeta**2)`` for the
    pixels j of the ``kernel_size`` window around i that lie inside the image
    (i included) and ``W_ij = a_ij / sum_j a_ij``: ``x = m * values``, then
    ``iterations`` times ``x = m * (W x)``. The affinities are computed once per
    image and shared by all its value maps.

    Args:
        image: ``(B, Ci, H, W)`` guide image.
        values: ``(K, H, W)``, ``(K, 1, H, W)`` or ``(K, C, H, W)`` value maps.
        mask: optional ``(K, H, W)`` or ``(K, 1, H, W)`` mask (e.g. the box),
            bool or float, shared by the channels of a value map.
        image_index: ``(K,)`` image of each value map; ``None`` means K == B.
        kernel_size: odd window size (5; 3 for SOLOv2 on COCO).
        zeta: colour bandwidth zeta_s.
        iterations: number of propagation rounds.

    Returns:
        A tensor of ``values``' shape and dtype, without gradient.
    """
    device = _same_device(image=image, values=values, mask=mask)
    shape, dtype = values.shape, values.dtype
    maps = _value_maps(values)
    height, width = maps.shape[-2:]
    image = _float_input(image, "image", (4,))
    _check_hw("image", image, height, width)
    if mask is not None:
        mask = _float_input(mask, "mask", (3, 4), integers=True)
        if mask.dim() == 4:
            if mask.shape[1] != 1:
                raise ValueError(f"mask must be (K, H, W) or (K, 1, H, W), got {tuple(mask.shape)}")
            mask = mask[:, 0]
        if mask.shape != (maps.shape[0], height, width):
            raise ValueError(f"mask must be ({maps.shape[0]}, {height}, {width}), got {tuple(mask.shape)}")
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd and >= 1, got {kernel_size}")
    if not zeta > 0:
        raise ValueError(f"zeta must be > 0, got {zeta}")
    if iterations < 0:
        raise ValueError(f"iterations must be >= 0, got {iterations}")
    index = _image_index(image_index, maps.shape[0], image.shape[0], device)
    out = _run("local_propagate", device, image, maps, mask, index,
               int(kernel_size), float(zeta), int(iterations))
    return out.reshape(shape).to(dtype)
