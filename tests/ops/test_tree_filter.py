"""tree_filter (TEL's tree filter, compiled) against the numpy two-sweep version and brute force.

The numpy version (``apro.reference.tree_filter_numpy``) is what the loss ran before the op; the
brute force below writes every T_ij = exp(-sum of w_e on the path i -> j / zeta^2) out explicitly.
"""
import itertools
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from reference import random_spanning_tree

from apro.ops import global_propagate, minimum_spanning_tree, tree_filter
from apro.reference import tree_filter_numpy

ATOL = 1e-5


def _rand(seed, *shape):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(*shape, generator=g, dtype=torch.float64).float()


def _random_trees(B, H, W, seed):
    rng = np.random.default_rng(seed)
    return torch.from_numpy(np.stack([random_spanning_tree(H, W, rng, swap=True) for _ in range(B)]))


def _max_diff(a, b):
    return float((a.double() - b.double()).abs().max()) if a.numel() else 0.0


# ---------------------------------------------------------------- brute force from the definition

def _path_edges(tree, n, i, j):
    """Rows of ``tree`` on the path i -> j (a DFS from i that remembers the edge it came by)."""
    adj = [[] for _ in range(n)]
    for e, (u, v) in enumerate(tree.tolist()):
        adj[u].append((v, e))
        adj[v].append((u, e))
    came = {i: None}
    stack = [i]
    while stack:
        a = stack.pop()
        for b, e in adj[a]:
            if b not in came:
                came[b] = (a, e)
                stack.append(b)
    path, v = [], j
    while came[v] is not None:
        v, e = came[v]
        path.append(e)
    return path


def _brute_force(values, guide, tree, zeta, image_index):
    x = values.double().numpy()
    K, C, H, W = x.shape
    n = H * W
    out = np.empty_like(x)
    for k in range(K):
        b = int(image_index[k])
        t = tree[b].numpy()
        src = (guide[b].double().numpy() if guide is not None else x[k]).reshape(-1, n)
        w = [float(((src[:, u] - src[:, v]) ** 2).sum()) for u, v in t.tolist()]
        T = np.empty((n, n))
        for i, j in itertools.product(range(n), range(n)):
            T[i, j] = np.exp(-sum(w[e] for e in _path_edges(t, n, i, j)) / zeta ** 2)
        xk = x[k].reshape(C, n)
        out[k] = ((xk @ T.T) / T.sum(1)[None]).reshape(C, H, W)
    return out


@pytest.mark.parametrize("zeta", [0.4, 1.0])
@pytest.mark.parametrize("guided", [True, False])
def test_brute_force_on_a_3x4_grid(zeta, guided):
    H, W = 3, 4
    guide = _rand(0, 2, 3, H, W)
    values = _rand(1, 3, 2, H, W)
    index = torch.tensor([1, 0, 1])
    tree = _random_trees(2, H, W, seed=int(zeta * 10) + guided)
    g = guide if guided else None
    got = tree_filter(values, g, tree, zeta, index)
    want = _brute_force(values, g, tree, zeta, index)
    np.testing.assert_allclose(got.double().numpy(), want, rtol=0, atol=1e-6)
    # not GP: the path product and the path max differ beyond single edges
    assert _max_diff(got, global_propagate(values, g, tree, zeta, index)) > 1e-3


# ---------------------------------------------------------------- against the numpy two-sweep version

@pytest.mark.parametrize("H, W", [(1, 1), (1, 9), (7, 1), (5, 6), (13, 17)])
@pytest.mark.parametrize("C", [1, 3, 8])
def test_matches_numpy_on_random_trees(H, W, C):
    B, K = 3, 5
    seed = H * 100 + W * 10 + C
    guide = _rand(seed, B, 3, H, W)
    values = _rand(seed + 1, K, C, H, W)
    index = torch.tensor([2, 0, 2, 2, 0])  # image 1 unused, image 2 three times
    tree = _random_trees(B, H, W, seed) if H * W > 1 else torch.zeros(B, 0, 2, dtype=torch.int64)
    for zeta in (0.3, 1.0, 3.0):
        for g in (guide, None):
            got = tree_filter(values, g, tree, zeta, index)
            assert got.shape == values.shape and got.dtype == values.dtype
            assert _max_diff(got, tree_filter_numpy(values, g, tree, zeta, index)) <= ATOL


@pytest.mark.parametrize("zetas", [(0.01, 0.07), (0.05, 0.2)])
def test_matches_numpy_on_a_photo_like_workload(zetas):
    """Smooth maps on their image's MST with the training bandwidths: long, strong paths."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    import ops as ops_benchmark

    image, predictions, _ = ops_benchmark.make_workload(40, 56, 6, seed=3)
    maps = torch.cat([predictions[:, None], 1 - predictions[:, None]], 1)  # C = 2
    images = torch.cat([image, image.flip(-1)])
    index = torch.tensor([0, 1, 1, 0, 1, 0])
    tree = minimum_spanning_tree(images)
    first = tree_filter(maps, images, tree, zetas[0], index)
    assert _max_diff(first, tree_filter_numpy(maps, images, tree, zetas[0], index)) <= ATOL
    second = tree_filter(first, None, tree, zetas[1], index)
    assert _max_diff(second, tree_filter_numpy(first, None, tree, zetas[1], index)) <= ATOL


def test_value_forms_and_fixed_point():
    guide = _rand(5, 2, 3, 30, 40)
    tree = minimum_spanning_tree(guide)
    values = _rand(6, 2, 30, 40)
    three_d = tree_filter(values, guide, tree, 0.2)
    assert three_d.shape == values.shape
    assert torch.equal(three_d, tree_filter(values[:, None], guide, tree, 0.2)[:, 0])
    assert torch.equal(tree_filter(values.double(), guide, tree, 0.2), three_d.double())
    constant = torch.full((2, 1, 30, 40), 0.3)
    assert _max_diff(tree_filter(constant, guide, tree, 0.05), constant) <= 1e-6


def test_threads_do_not_change_the_result():
    guide = _rand(7, 2, 3, 64, 64)
    tree = minimum_spanning_tree(guide)
    values = _rand(8, 9, 3, 64, 64)
    index = torch.arange(9) % 2
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = [tree_filter(values, g, tree, 0.3, index) for g in (guide, None)]
        torch.set_num_threads(2)
        two = [tree_filter(values, g, tree, 0.3, index) for g in (guide, None)]
    finally:
        torch.set_num_threads(threads)
    assert all(torch.equal(a, b) for a, b in zip(one, two))


def test_baselines_tree_filter_is_the_compiled_op():
    pytest.importorskip("mmdet")
    from apro.losses import baselines

    guide = _rand(9, 1, 3, 6, 7)
    values = _rand(10, 2, 1, 6, 7)
    tree = minimum_spanning_tree(guide)
    index = torch.zeros(2, dtype=torch.int64)
    assert torch.equal(baselines.tree_filter(values, guide, tree, 0.3, index),
                       tree_filter(values, guide, tree, 0.3, index))


# ---------------------------------------------------------------- bad input

def _setup(B=2, K=3, H=5, W=6):
    guide = _rand(0, B, 3, H, W)
    values = _rand(1, K, 1, H, W)
    return values, guide, minimum_spanning_tree(guide), torch.tensor([0, 1, 1])


def _bad(name, change):
    values, guide, tree, index = _setup()
    args = dict(values=values, guide=guide, tree=tree, zeta=0.3, image_index=index)
    args[name] = change(args[name])
    return args


@pytest.mark.parametrize("name, change, error, match", [
    ("values", lambda v: v[0, 0], ValueError, "values"),                   # (H, W): wrong rank
    ("values", lambda v: v.to(torch.int64), TypeError, "values"),
    ("values", lambda v: v.index_fill(2, torch.tensor([1]), float("nan")), ValueError, "values"),
    ("values", lambda v: v[..., :-1], ValueError, r"tree must have shape \(B, 24, 2\) for H\*W = 25"),
    ("guide", lambda g: g[:, :, :-1], ValueError, "guide"),
    ("guide", lambda g: g[:1], ValueError, "guide"),                       # B unlike the tree's
    ("guide", lambda g: g.index_fill(3, torch.tensor([2]), float("inf")), ValueError, "guide"),
    ("tree", lambda t: t[:, :-1], ValueError, "tree"),
    ("tree", lambda t: t[0], ValueError, "tree"),
    ("tree", lambda t: t.float(), TypeError, "tree"),
    ("tree", lambda t: t.index_fill(1, torch.tensor([4]), 30), ValueError, "tree"),  # vertex out of range
    ("tree", lambda t: t.index_fill(1, torch.tensor([4]), -1), ValueError, "tree"),
    ("tree", lambda t: torch.cat([t[:, :1], t[:, :-1]], 1), ValueError, "tree"),     # a repeated edge
    ("zeta", lambda z: 0.0, ValueError, "zeta"),
    ("zeta", lambda z: float("nan"), ValueError, "zeta"),
    ("image_index", lambda i: i[:2], ValueError, "image_index"),
    ("image_index", lambda i: i + 1, ValueError, "image_index"),           # image 2 of 2
    ("image_index", lambda i: i.float(), TypeError, "image_index"),
])
def test_bad_input_names_the_argument(name, change, error, match):
    args = _bad(name, change)
    with pytest.raises(error, match=match):
        tree_filter(args["values"], args["guide"], args["tree"], args["zeta"], args["image_index"])


def test_bad_tree_names_the_image_and_the_problem():
    values, guide, tree, index = _setup()
    cycle = tree.clone()
    cycle[1, 0] = cycle[1, 1]
    with pytest.raises(ValueError, match=r"tree_filter: tree\[1\] is not a spanning tree"):
        tree_filter(values, guide, cycle, 0.3, index)
    far = tree.clone()
    far[0, 2, 1] = 10**9
    with pytest.raises(ValueError, match=r"tree_filter: tree\[0\] has a vertex index out of range"):
        tree_filter(values, None, far, 0.3, index)
    with pytest.raises(ValueError, match="image_index"):
        tree_filter(values, guide, tree, 0.3)  # 3 maps, 2 images, no index


def test_the_raw_op_checks_its_arguments_too():
    values, guide, tree, index = _setup()
    op = torch.ops.apro.tree_filter
    with pytest.raises(ValueError, match="values"):
        op(values[0], guide, tree, index, 0.3)
    with pytest.raises(ValueError, match="tree"):
        op(values, guide, tree[:, 1:], index, 0.3)
    with pytest.raises(ValueError, match="guide"):
        op(values, guide[:1], tree, index, 0.3)
    with pytest.raises(ValueError, match="image_index"):
        op(values, guide, tree, index + 5, 0.3)
    with pytest.raises(ValueError, match="zeta"):
        op(values, guide, tree, index, -1.0)
