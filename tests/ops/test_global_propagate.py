"""global_propagate against the brute-force O(N^2) tree path-max reference."""
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from reference import gp_reference, kruskal_reference, random_spanning_tree, tree_path_max

from apro.ops import global_propagate, minimum_spanning_tree

RTOL, ATOL = 1e-5, 1e-6


def _rand(seed, *shape, dtype=torch.float32, levels=None):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(*shape, generator=g, dtype=torch.float64)
    if levels is not None:
        x = torch.floor(x * levels) / levels
    return x.to(dtype)


def _values(seed, K, C, H, W, form):
    if form == "3d":
        return _rand(seed, K, H, W)
    if form == "4d1":
        return _rand(seed, K, 1, H, W)
    return _rand(seed, K, C, H, W)


def _random_trees(B, H, W, seed, swap=False):
    rng = np.random.default_rng(seed)
    return torch.from_numpy(np.stack([random_spanning_tree(H, W, rng, swap=swap) for _ in range(B)]))


def _check(values, guide, tree, zeta, image_index=None, rtol=RTOL, atol=ATOL):
    out = global_propagate(values, guide, tree, zeta, image_index=image_index)
    assert out.shape == values.shape
    assert out.dtype == values.dtype
    expect = gp_reference(values, guide, tree, zeta, image_index)
    np.testing.assert_allclose(out.double().numpy(), expect, rtol=rtol, atol=atol)
    return out


# ---------------------------------------------------------------- reference sanity
def test_reference_path_max_on_chain():
    # chain 0-1-2-3 with weights 1, 5, 2
    M = tree_path_max(np.array([[0, 1], [1, 2], [2, 3]]), [1.0, 5.0, 2.0], 4)
    expect = [[0, 1, 5, 5], [1, 0, 5, 5], [5, 5, 0, 2], [5, 5, 2, 0]]
    np.testing.assert_array_equal(M, expect)


def test_reference_hand_example():
    # 1x3 image, guide 0, 0, 1 -> weights (0, 1); zeta = 1
    values = torch.tensor([[[1.0, 2.0, 4.0]]])
    guide = torch.tensor([[[[0.0, 0.0, 1.0]]]])
    tree = torch.tensor([[[0, 1], [1, 2]]])
    e = np.exp(-1.0)
    expect = [(1 + 2 + 4 * e) / (2 + e), (1 + 2 + 4 * e) / (2 + e), (e * 1 + e * 2 + 4) / (1 + 2 * e)]
    np.testing.assert_allclose(gp_reference(values, guide, tree, 1.0)[0, 0], expect, rtol=1e-12)
    np.testing.assert_allclose(global_propagate(values, guide, tree, 1.0)[0, 0].double().numpy(), expect, rtol=1e-6)


# ---------------------------------------------------------------- op vs reference
@pytest.mark.parametrize("form", ["3d", "4d1", "4dC"])
@pytest.mark.parametrize("zeta", [0.01, 0.07, 0.3, 1.0])
def test_mst_tree_image_guided(form, zeta):
    B, C, H, W = 2, 3, 7, 8
    guide = _rand(1, B, 3, H, W)
    tree = minimum_spanning_tree(guide)
    _check(_values(2, B, C, H, W, form), guide, tree, zeta)


@given(
    B=st.integers(1, 3),
    K=st.integers(1, 4),
    C=st.integers(1, 3),
    Cg=st.integers(1, 4),
    H=st.integers(1, 8),
    W=st.integers(1, 9),
    zeta=st.sampled_from([0.01, 0.05, 0.07, 0.2, 0.5, 1.0, 3.0]),
    form=st.sampled_from(["3d", "4d1", "4dC"]),
    levels=st.sampled_from([None, None, 2, 4]),
    tree_kind=st.sampled_from(["mst", "random"]),
    self_guided=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_property(B, K, C, Cg, H, W, zeta, form, levels, tree_kind, self_guided, seed):
    guide = _rand(seed, B, Cg, H, W, levels=levels)
    tree = minimum_spanning_tree(guide) if tree_kind == "mst" else _random_trees(B, H, W, seed)
    values = _values(seed + 1, K, C, H, W, form)
    if levels is not None:
        values = torch.floor(values * levels) / levels
    image_index = torch.from_numpy(np.random.default_rng(seed).integers(0, B, size=K)).to(torch.int64)
    _check(values, None if self_guided else guide, tree, zeta, image_index=image_index)


@pytest.mark.parametrize("form", ["3d", "4d1", "4dC"])
def test_self_guided(form):
    K, C, H, W = 3, 2, 6, 7
    values = _values(5, K, C, H, W, form)
    tree = _random_trees(K, H, W, 5)
    for zeta in (0.05, 0.3):
        _check(values, None, tree, zeta)


def test_self_guided_uses_all_value_channels():
    """Self-guided weights sum over every channel of values[k]: channel 1 alone splits the image."""
    H, W = 1, 6
    values = torch.zeros(1, 2, H, W)
    values[0, 0] = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    values[0, 1, :, 3:] = 10.0  # a huge step between pixel 2 and 3 in channel 1 only
    tree = torch.tensor([[[i, i + 1] for i in range(W - 1)]])
    out = _check(values, None, tree, 1.0)
    # with zeta = 1 the step makes S ~ exp(-100) across it: the halves do not mix
    assert bool((out[0, 0, 0, :3] <= 0.3 + 1e-6).all()) and bool((out[0, 0, 0, 3:] >= 0.4 - 1e-6).all())


def test_image_index_mapping():
    B, K, H, W = 3, 5, 6, 5
    guide = _rand(3, B, 3, H, W)
    tree = minimum_spanning_tree(guide)
    values = _rand(4, K, 1, H, W)
    image_index = torch.tensor([2, 0, 2, 1, 0])
    out = _check(values, guide, tree, 0.1, image_index=image_index)
    # same as running each map on its own image
    for k in range(K):
        b = int(image_index[k])
        single = global_propagate(values[k : k + 1], guide[b : b + 1], tree[b : b + 1], 0.1)
        torch.testing.assert_close(out[k : k + 1], single, rtol=1e-6, atol=1e-7)


def test_any_spanning_tree_and_row_order():
    B, H, W = 2, 5, 6
    guide = _rand(6, B, 3, H, W)
    values = _rand(7, B, 2, H, W)
    tree = _random_trees(B, H, W, 6)
    out = _check(values, guide, tree, 0.2)
    perm = torch.randperm(tree.shape[1])
    out_perm = global_propagate(values, guide, tree[:, perm], 0.2)
    torch.testing.assert_close(out_perm, out, rtol=1e-6, atol=1e-7)


def test_edge_orientation_is_irrelevant():
    """A tree edge (v, u) is the same edge as (u, v)."""
    B, H, W = 2, 4, 5
    guide = _rand(8, B, 3, H, W)
    values = _rand(9, B, H, W)
    tree = _random_trees(B, H, W, 8)
    flipped = tree.flip(-1)
    out = _check(values, guide, flipped, 0.2)
    torch.testing.assert_close(out, global_propagate(values, guide, tree, 0.2), rtol=1e-6, atol=1e-7)


def test_constant_values_are_fixed_points():
    guide = _rand(10, 2, 3, 8, 9)
    tree = minimum_spanning_tree(guide)
    values = torch.full((2, 3, 8, 9), 0.375)
    for zeta in (0.01, 0.1, 10.0):
        out = global_propagate(values, guide, tree, zeta)
        torch.testing.assert_close(out, values, rtol=1e-6, atol=1e-7)


def test_huge_zeta_gives_global_mean():
    guide = _rand(11, 2, 3, 6, 7)
    tree = minimum_spanning_tree(guide)
    values = _rand(12, 2, 2, 6, 7)
    out = global_propagate(values, guide, tree, 1e4)
    mean = values.double().mean((2, 3), keepdim=True).expand_as(values)
    torch.testing.assert_close(out.double(), mean, rtol=1e-5, atol=1e-6)


def test_tiny_zeta_keeps_distinct_values():
    """With zeta -> 0 only zero-weight paths count: a guide of distinct colours leaves values unchanged."""
    H, W = 4, 5
    guide = (torch.arange(H * W, dtype=torch.float32) / (H * W)).reshape(1, 1, H, W)
    tree = minimum_spanning_tree(guide)
    values = _rand(13, 1, H, W)
    out = global_propagate(values, guide, tree, 1e-4)
    torch.testing.assert_close(out, values, rtol=1e-6, atol=1e-7)


def test_float64_values_and_guide():
    B, H, W = 2, 6, 6
    guide = _rand(14, B, 3, H, W, dtype=torch.float64)
    values = _rand(15, B, 2, H, W, dtype=torch.float64)
    tree = _random_trees(B, H, W, 14)
    _check(values, guide, tree, 0.15)


def test_mst_tree_matches_reference_tree_output():
    """Feeding the python Kruskal tree gives the same output as the op's own tree."""
    guide = _rand(16, 1, 3, 7, 7, levels=3)
    values = _rand(17, 1, 7, 7)
    t_op = minimum_spanning_tree(guide)
    t_ref = torch.from_numpy(kruskal_reference(guide[0]))[None]
    torch.testing.assert_close(
        global_propagate(values, guide, t_op, 0.3), global_propagate(values, guide, t_ref, 0.3), rtol=1e-6, atol=1e-7
    )


def test_no_grad_and_inputs_untouched():
    guide = _rand(18, 1, 3, 5, 5)
    tree = minimum_spanning_tree(guide)
    values = _rand(19, 1, 1, 5, 5).requires_grad_(True)
    g0, t0, v0 = guide.clone(), tree.clone(), values.detach().clone()
    out = global_propagate(values, guide, tree, 0.2)
    assert out.grad_fn is None and not out.requires_grad
    assert torch.equal(guide, g0) and torch.equal(tree, t0) and torch.equal(values.detach(), v0)


@pytest.mark.slow
def test_larger_image():
    B, H, W = 1, 24, 24
    guide = _rand(20, B, 3, H, W)
    tree = minimum_spanning_tree(guide)
    values = _rand(21, 2, 1, H, W)
    _check(values, guide, tree, 0.1, image_index=torch.tensor([0, 0]))


@pytest.mark.parametrize("C", [1, 2, 3, 4, 7, 8, 15])
@pytest.mark.parametrize("self_guided", [False, True])
def test_many_channels_per_image(C, self_guided):
    """Many value channels sharing one image (the op batches channels that share a weight set)."""
    H, W = 5, 6
    guide = _rand(30 + C, 2, 3, H, W)
    tree = minimum_spanning_tree(guide)
    values = _rand(40 + C, 3, C, H, W)
    image_index = torch.tensor([1, 0, 1])
    _check(values, None if self_guided else guide, tree, 0.2, image_index=image_index)
