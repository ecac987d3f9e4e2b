"""minimum_spanning_tree against a python Kruskal with the op's tie-break and against scipy."""
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from reference import (
    check_spanning_tree,
    edge_costs_f32,
    grid_edges,
    kruskal_reference,
    scipy_mst_weight,
    tree_weight,
)

from apro.ops import minimum_spanning_tree


def _guide(seed, B, C, H, W, levels=None, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(B, C, H, W, generator=g, dtype=torch.float64)
    if levels is not None:
        # quantised colours: exact in float32, many tied edge costs
        x = torch.floor(x * levels) / levels
    return x.to(dtype)


def _check_against_references(guide, tree):
    B, C, H, W = guide.shape
    N = H * W
    assert tree.dtype == torch.int64
    assert tuple(tree.shape) == (B, N - 1, 2)
    for b in range(B):
        t = tree[b].numpy()
        check_spanning_tree(t, H, W)
        assert (t[:, 0] < t[:, 1]).all(), "rows must be (u, v) with u < v"
        expect = kruskal_reference(guide[b])
        np.testing.assert_array_equal(t, expect, err_msg=f"image {b}: tree or its order differs from Kruskal")
        np.testing.assert_allclose(tree_weight(guide[b], t), scipy_mst_weight(guide[b]), rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------- references
def test_reference_kruskal_agrees_with_scipy():
    """The python Kruskal used as reference is itself a minimum spanning tree."""
    for seed, (C, H, W) in enumerate([(1, 1, 2), (3, 4, 5), (2, 7, 3), (3, 6, 6)]):
        g = _guide(seed, 1, C, H, W)[0]
        t = kruskal_reference(g)
        check_spanning_tree(t, H, W)
        np.testing.assert_allclose(tree_weight(g, t), scipy_mst_weight(g), rtol=1e-9, atol=1e-12)


def test_reference_grid_edge_numbering():
    e = grid_edges(2, 3)
    # horizontal (y*(W-1)+x) first, then vertical (H*(W-1) + y*W + x)
    np.testing.assert_array_equal(e, [[0, 1], [1, 2], [3, 4], [4, 5], [0, 3], [1, 4], [2, 5]])


# ---------------------------------------------------------------- op vs references
@pytest.mark.parametrize(
    "B,C,H,W",
    [(1, 3, 4, 5), (2, 1, 6, 7), (3, 3, 8, 9), (1, 2, 9, 8), (2, 5, 3, 3), (1, 3, 16, 16)],
)
def test_random_continuous(B, C, H, W):
    guide = _guide(B * 100 + H * 10 + W, B, C, H, W)
    _check_against_references(guide, minimum_spanning_tree(guide))


@given(
    B=st.integers(1, 3),
    C=st.integers(1, 4),
    H=st.integers(1, 8),
    W=st.integers(1, 9),
    levels=st.sampled_from([None, 1, 2, 3, 4, 8]),
    seed=st.integers(0, 2**31 - 1),
)
def test_property_random_and_quantised(B, C, H, W, levels, seed):
    guide = _guide(seed, B, C, H, W, levels=levels)
    _check_against_references(guide, minimum_spanning_tree(guide))


@pytest.mark.parametrize("H,W", [(1, 1), (1, 2), (2, 1), (1, 7), (7, 1), (5, 6)])
def test_constant_image(H, W):
    guide = torch.full((2, 3, H, W), 0.25)
    tree = minimum_spanning_tree(guide)
    _check_against_references(guide, tree)
    # all costs 0: the release's order accepts the vertical edges (columns) first, then row 0's horizontal ones
    expect = [(y * W + x, (y + 1) * W + x) for y in range(H - 1) for x in range(W)]
    expect += [(x, x + 1) for x in range(W - 1)]
    np.testing.assert_array_equal(tree[0].numpy(), np.array(expect, dtype=np.int64).reshape(-1, 2))


def test_single_pixel():
    tree = minimum_spanning_tree(torch.rand(3, 2, 1, 1))
    assert tuple(tree.shape) == (3, 0, 2) and tree.dtype == torch.int64


@pytest.mark.parametrize("levels", [None, 2, 3])
def test_deterministic(levels):
    guide = _guide(7, 4, 3, 12, 13, levels=levels)
    t1 = minimum_spanning_tree(guide)
    t2 = minimum_spanning_tree(guide.clone())
    assert torch.equal(t1, t2)
    # each image is independent of the rest of the batch
    for b in range(guide.shape[0]):
        assert torch.equal(minimum_spanning_tree(guide[b : b + 1])[0], t1[b])


def test_ties_follow_the_releases_edge_index():
    """Hand-made tie case: a 2x2 constant image with one bright pixel. The release numbers the vertical
    edges first: 0:(0,2) cost 0, 1:(1,3) cost 1, 2:(0,1) cost 0, 3:(2,3) cost 1."""
    guide = torch.zeros(1, 1, 2, 2)
    guide[0, 0, 1, 1] = 1.0
    tree = minimum_spanning_tree(guide)[0].tolist()
    assert tree == [[0, 2], [0, 1], [1, 3]]


def test_costs_closer_than_float32_resolves_at_one_tie():
    """The release ranks by float32 (cost + 1): costs 1e-9 apart are equal there, and the release's edge
    order decides (here the vertical edge, although its cost is the larger)."""
    from apro.ops import minimum_spanning_tree_from_weights

    # 2 x 2, in grid-edge order: horizontal (0,1) 1e-9, (2,3) 0.5; vertical (0,2) 3e-9, (1,3) 0.5
    w = torch.tensor([[1e-9, 0.5, 3e-9, 0.5]])
    tree = minimum_spanning_tree_from_weights(w, 2, 2)[0].tolist()
    assert tree[:2] == [[0, 2], [0, 1]]  # by cost alone (0, 1) would come first


def test_float64_guide():
    guide = _guide(3, 2, 3, 5, 6, dtype=torch.float64)
    tree = minimum_spanning_tree(guide)
    # costs are computed in float32, so the reference sees the float32-rounded guide
    _check_against_references(guide.float(), tree)


def test_large_batch_many_ties():
    guide = _guide(11, 8, 3, 24, 20, levels=2)
    tree = minimum_spanning_tree(guide)
    for b in (0, 5):
        np.testing.assert_array_equal(tree[b].numpy(), kruskal_reference(guide[b]))


# ---------------------------------------------------------------- precomputed costs
@pytest.mark.parametrize("H,W", [(1, 1), (1, 6), (6, 1), (5, 7)])
@pytest.mark.parametrize("levels", [None, 3])
def test_from_weights(H, W, levels):
    from apro.ops import minimum_spanning_tree_from_weights

    from reference import kruskal_from_costs

    E = H * (W - 1) + (H - 1) * W
    g = torch.Generator().manual_seed(H * 10 + W)
    w = torch.rand(3, E, generator=g)
    if levels is not None:
        w = torch.floor(w * levels) / levels
    tree = minimum_spanning_tree_from_weights(w, H, W)
    assert tree.dtype == torch.int64 and tuple(tree.shape) == (3, H * W - 1, 2)
    for b in range(3):
        np.testing.assert_array_equal(tree[b].numpy(), kruskal_from_costs(w[b].numpy(), H, W))


def test_from_weights_matches_guide_costs():
    from apro.ops import minimum_spanning_tree_from_weights

    guide = _guide(5, 2, 3, 6, 7, levels=4)
    costs = torch.from_numpy(np.stack([edge_costs_f32(guide[b], grid_edges(6, 7)) for b in range(2)]))
    assert torch.equal(minimum_spanning_tree_from_weights(costs, 6, 7), minimum_spanning_tree(guide))


def test_compat_module_custom_distance():
    """MinimumSpanningTree(distance_func) with a distance other than squared L2 (here L1)."""
    from apro.gp_cuda.mst.mst import MinimumSpanningTree

    from reference import kruskal_from_costs

    B, C, H, W = 2, 3, 6, 7
    guide = _guide(9, B, C, H, W, levels=4)  # multiples of 1/4: L1 sums exact in float32 and float64
    tree = MinimumSpanningTree(lambda s, t: (s - t).abs().sum(dim=1))(guide)
    edges = grid_edges(H, W)
    for b in range(B):
        g = guide[b].reshape(C, -1).double().numpy()
        cost = np.abs(g[:, edges[:, 0]] - g[:, edges[:, 1]]).sum(0)
        np.testing.assert_array_equal(torch.as_tensor(tree[b]).numpy(), kruskal_from_costs(cost, H, W))
    # a squared-L2 distance that is not the built-in one gives the op's tree
    tree2 = MinimumSpanningTree(lambda s, t: ((s - t) ** 2).sum(dim=1))(guide)
    assert torch.equal(torch.as_tensor(tree2), minimum_spanning_tree(guide))
