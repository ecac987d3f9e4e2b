"""Input validation, degenerate shapes, dtypes, layouts and very long chains."""
import numpy as np
import pytest
import torch

from reference import check_spanning_tree, gp_reference, kruskal_reference, lp_loop_reference

from apro.ops import global_propagate, local_propagate, minimum_spanning_tree


def _rand(seed, *shape, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(*shape, generator=g, dtype=torch.float64).to(dtype)


def _setup(B=2, K=2, H=5, W=6):
    guide = _rand(0, B, 3, H, W)
    values = _rand(1, K, 1, H, W)
    tree = minimum_spanning_tree(guide)
    return guide, values, tree


# ---------------------------------------------------------------- non-finite inputs
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_nonfinite_mst_guide(bad):
    guide = _rand(0, 1, 3, 4, 4)
    guide[0, 1, 2, 3] = bad
    with pytest.raises(ValueError, match="guide"):
        minimum_spanning_tree(guide)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("where", ["values", "guide"])
def test_nonfinite_gp(bad, where):
    guide, values, tree = _setup()
    (values if where == "values" else guide)[1, 0, 3, 2] = bad
    with pytest.raises(ValueError, match=where):
        global_propagate(values, guide, tree, 0.1)


def test_huge_finite_values_are_accepted():
    # Their sum overflows to inf: the NaN/Inf check must not stop at the sum.
    guide, values, tree = _setup()
    values[:] = 3e38
    out = global_propagate(values, guide, tree, 0.1)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nonfinite_gp_self_guided(bad):
    _, values, tree = _setup()
    values[0, 0, 0, 0] = bad
    with pytest.raises(ValueError, match="values"):
        global_propagate(values, None, tree, 0.1)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("where", ["values", "image", "mask"])
def test_nonfinite_lp(bad, where):
    image = _rand(0, 2, 3, 5, 6)
    values = _rand(1, 2, 5, 6)
    mask = torch.ones(2, 5, 6)
    {"values": values, "image": image[:, 0], "mask": mask}[where][1, 2, 3] = bad
    with pytest.raises(ValueError, match=where):
        local_propagate(image, values, mask)


@pytest.mark.parametrize("zeta", [0.0, -0.1, float("nan")])
def test_bad_zeta(zeta):
    guide, values, tree = _setup()
    with pytest.raises(ValueError, match="zeta"):
        global_propagate(values, guide, tree, zeta)
    with pytest.raises(ValueError, match="zeta"):
        local_propagate(guide, values, zeta=zeta)


# ---------------------------------------------------------------- shapes
def test_gp_hw_mismatch():
    guide, values, tree = _setup()
    with pytest.raises(ValueError):
        global_propagate(values[..., :-1], guide, tree, 0.1)
    with pytest.raises(ValueError):
        global_propagate(values, guide[:, :, :-1], tree, 0.1)


def test_lp_hw_mismatch():
    image = _rand(0, 2, 3, 5, 6)
    values = _rand(1, 2, 5, 6)
    with pytest.raises(ValueError):
        local_propagate(image, values[:, :-1])
    with pytest.raises(ValueError):
        local_propagate(image, values, torch.ones(2, 5, 5))
    with pytest.raises(ValueError):
        local_propagate(image, values, torch.ones(3, 5, 6))  # mask K mismatch


@pytest.mark.parametrize(
    "make_tree",
    [
        lambda t: t[:, :-1],  # too few edges
        lambda t: torch.cat([t, t[:, :1]], 1),  # too many
        lambda t: t[..., :1],  # last dim 1
        lambda t: t[0],  # missing batch dim
        lambda t: t[:1],  # batch 1 but guide has B=2
    ],
)
def test_gp_wrong_tree_shape(make_tree):
    guide, values, tree = _setup()
    with pytest.raises(ValueError, match="tree"):
        global_propagate(values, guide, make_tree(tree), 0.1)


def test_gp_tree_vertex_out_of_range():
    guide, values, tree = _setup()
    N = 5 * 6
    for bad in (N, -1, 10**9):
        t = tree.clone()
        t[1, 3, 1] = bad
        with pytest.raises(ValueError, match="tree"):
            global_propagate(values, guide, t, 0.1)


def test_gp_tree_not_spanning():
    guide, values, tree = _setup()
    dup = tree.clone()
    dup[0, 0] = dup[0, 1]  # a repeated edge: N-1 rows but not spanning
    with pytest.raises(ValueError, match="tree"):
        global_propagate(values, guide, dup, 0.1)
    loop = tree.clone()
    loop[1, 4] = torch.tensor([3, 3])  # a self loop
    with pytest.raises(ValueError, match="tree"):
        global_propagate(values, guide, loop, 0.1)


def test_gp_any_spanning_tree_of_the_pixels():
    """GP's definition holds on any spanning tree of the pixels, grid edges or not."""
    guide = _rand(11, 1, 3, 2, 3)
    values = _rand(12, 1, 2, 2, 3)
    tree = torch.tensor([[[0, 1], [1, 2], [2, 3], [3, 4], [4, 5]]])  # (2, 3) wraps the row end
    out = global_propagate(values, guide, tree, 0.3)
    np.testing.assert_allclose(out.double().numpy(), gp_reference(values, guide, tree, 0.3), rtol=1e-5, atol=1e-6)


def test_gp_tree_dtype():
    guide, values, tree = _setup()
    with pytest.raises((TypeError, ValueError), match="tree"):
        global_propagate(values, guide, tree.float(), 0.1)


def test_image_index_errors():
    guide, values, tree = _setup(B=2, K=3)
    image = guide
    with pytest.raises(ValueError, match="image_index"):
        global_propagate(values, guide, tree, 0.1, image_index=torch.tensor([0, 1, 2]))  # out of range
    with pytest.raises(ValueError, match="image_index"):
        global_propagate(values, guide, tree, 0.1, image_index=torch.tensor([0, -1, 1]))
    with pytest.raises(ValueError, match="image_index"):
        global_propagate(values, guide, tree, 0.1, image_index=torch.tensor([0, 1]))  # wrong length
    with pytest.raises((TypeError, ValueError), match="image_index"):
        global_propagate(values, guide, tree, 0.1, image_index=torch.tensor([0.0, 1.0, 1.0]))
    with pytest.raises(ValueError):
        global_propagate(values, guide, tree, 0.1)  # K=3 != B=2 without image_index
    with pytest.raises(ValueError, match="image_index"):
        local_propagate(image, values, image_index=torch.tensor([0, 2, 1]))
    with pytest.raises(ValueError, match="image_index"):
        local_propagate(image, values, image_index=torch.tensor([0, 1]))
    with pytest.raises(ValueError):
        local_propagate(image, values)  # K=3 != B=2 without image_index


def test_bad_dims():
    guide, values, tree = _setup()
    with pytest.raises(ValueError):
        minimum_spanning_tree(guide[0, 0])
    with pytest.raises(ValueError):
        global_propagate(values[0, 0, 0], guide, tree, 0.1)
    with pytest.raises(ValueError):
        local_propagate(guide[0], values)


@pytest.mark.parametrize("kernel_size", [0, -1, 2, 4])
def test_lp_bad_kernel_size(kernel_size):
    image = _rand(0, 1, 3, 5, 6)
    with pytest.raises(ValueError, match="kernel_size"):
        local_propagate(image, _rand(1, 1, 5, 6), kernel_size=kernel_size)


def test_lp_bad_iterations():
    image = _rand(0, 1, 3, 5, 6)
    with pytest.raises(ValueError, match="iterations"):
        local_propagate(image, _rand(1, 1, 5, 6), iterations=-1)


def test_integer_mst_guide():
    """The MST is invariant to scaling costs: an integer guide is either rejected or treated as float."""
    guide = (_rand(0, 2, 3, 5, 6) * 255).to(torch.uint8)
    try:
        tree = minimum_spanning_tree(guide)
    except (TypeError, ValueError) as err:
        assert "guide" in str(err)
    else:
        assert torch.equal(tree, minimum_spanning_tree(guide.float()))


@pytest.mark.parametrize("where", ["gp values", "gp guide", "lp values", "lp image"])
def test_integer_inputs_rejected(where):
    """Integer images/values would silently change the meaning of zeta or truncate the result."""
    guide, values, tree = _setup()
    iguide, ivalues = (guide * 255).to(torch.uint8), (values * 10).long()
    name = where.split()[1]
    with pytest.raises((TypeError, ValueError), match=name):
        if where == "gp values":
            global_propagate(ivalues, guide, tree, 0.1)
        elif where == "gp guide":
            global_propagate(values, iguide, tree, 0.1)
        elif where == "lp values":
            local_propagate(guide, ivalues)
        else:
            local_propagate(iguide, values)


# ---------------------------------------------------------------- empty and tiny
def test_k_zero():
    guide, _, tree = _setup()
    empty_idx = torch.zeros(0, dtype=torch.int64)
    for shape in [(0, 5, 6), (0, 1, 5, 6), (0, 3, 5, 6)]:
        v = torch.zeros(shape)
        out = global_propagate(v, guide, tree, 0.1, image_index=empty_idx)
        assert out.shape == v.shape and out.dtype == v.dtype
        out = local_propagate(guide, v, None, image_index=empty_idx)
        assert out.shape == v.shape and out.dtype == v.dtype
        m = torch.zeros((0, 5, 6), dtype=torch.bool)
        out = local_propagate(guide, v, m, image_index=empty_idx)
        assert out.shape == v.shape


def test_b_zero():
    guide = torch.zeros(0, 3, 4, 5)
    tree = minimum_spanning_tree(guide)
    assert tuple(tree.shape) == (0, 19, 2) and tree.dtype == torch.int64
    v = torch.zeros(0, 4, 5)
    assert global_propagate(v, guide, tree, 0.1).shape == v.shape
    assert local_propagate(guide, v).shape == v.shape


@pytest.mark.parametrize("H,W", [(1, 1), (1, 9), (9, 1), (1, 2), (2, 1)])
def test_tiny_and_thin_images(H, W):
    guide = _rand(2, 2, 3, H, W)
    values = _rand(3, 2, 2, H, W)
    tree = minimum_spanning_tree(guide)
    assert tuple(tree.shape) == (2, H * W - 1, 2)
    for b in range(2):
        check_spanning_tree(tree[b].numpy(), H, W)
        np.testing.assert_array_equal(tree[b].numpy(), kruskal_reference(guide[b]))
    for g in (guide, None):
        out = global_propagate(values, g, tree, 0.2)
        np.testing.assert_allclose(out.double().numpy(), gp_reference(values, g, tree, 0.2), rtol=1e-5, atol=1e-6)
    mask = torch.rand(2, H, W) < 0.8
    for k in (1, 3, 5):
        out = local_propagate(guide, values, mask, kernel_size=k, zeta=0.3, iterations=5)
        expect = lp_loop_reference(guide, values, mask, None, k, 0.3, 5)
        np.testing.assert_allclose(out.double().numpy(), expect, rtol=1e-4, atol=1e-6)
    if H * W == 1:  # a single pixel is its own average
        torch.testing.assert_close(global_propagate(values, guide, tree, 0.2), values)


# ---------------------------------------------------------------- dtypes
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision(dtype):
    B, H, W = 2, 6, 7
    guide = _rand(4, B, 3, H, W).to(dtype)
    values = _rand(5, B, 2, H, W).to(dtype)
    mask = (torch.rand(B, H, W) < 0.7).to(dtype)
    tol = dict(rtol=2e-2, atol=1e-2) if dtype == torch.float16 else dict(rtol=5e-2, atol=2e-2)

    tree = minimum_spanning_tree(guide)
    assert tree.dtype == torch.int64
    assert torch.equal(tree, minimum_spanning_tree(guide.float()))

    out = global_propagate(values, guide, tree, 0.2)
    assert out.dtype == dtype and out.shape == values.shape
    torch.testing.assert_close(out.float(), global_propagate(values.float(), guide.float(), tree, 0.2), **tol)

    out = global_propagate(values, None, tree, 0.2)
    assert out.dtype == dtype
    torch.testing.assert_close(out.float(), global_propagate(values.float(), None, tree, 0.2), **tol)

    out = local_propagate(guide, values, mask, kernel_size=3, zeta=0.3, iterations=5)
    assert out.dtype == dtype and out.shape == values.shape
    expect = local_propagate(guide.float(), values.float(), mask.float(), kernel_size=3, zeta=0.3, iterations=5)
    torch.testing.assert_close(out.float(), expect, **tol)


def test_mixed_float_dtypes():
    """float32 guide with float64 values (and vice versa): result in values' dtype."""
    guide, values, tree = _setup()
    out = global_propagate(values.double(), guide, tree, 0.1)
    assert out.dtype == torch.float64
    torch.testing.assert_close(out.float(), global_propagate(values, guide, tree, 0.1), rtol=1e-5, atol=1e-6)
    out = local_propagate(guide.double(), values, iterations=3)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, local_propagate(guide, values, iterations=3), rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- layouts
def test_non_contiguous_inputs():
    B, C, H, W = 2, 3, 6, 7
    # guide stored as (B, W, H, C) and viewed as (B, C, H, W)
    guide_t = _rand(6, B, W, H, C).permute(0, 3, 2, 1)
    assert not guide_t.is_contiguous()
    guide_c = guide_t.contiguous()
    tree_t = minimum_spanning_tree(guide_t)
    tree_c = minimum_spanning_tree(guide_c)
    assert torch.equal(tree_t, tree_c)

    # values sliced out of a bigger tensor (strided channels and columns)
    big = _rand(7, B, 2 * 2, H, 2 * W)
    values_s = big[:, ::2, :, ::2]
    assert not values_s.is_contiguous()
    values_c = values_s.contiguous()
    # tree as a strided slice and as a transposed layout
    tree_s = torch.stack([tree_c[..., 0], torch.zeros_like(tree_c[..., 0]), tree_c[..., 1]], -1)[..., ::2]
    assert not tree_s.is_contiguous() and torch.equal(tree_s, tree_c)
    tree_T = tree_c.transpose(1, 2).contiguous().transpose(1, 2)
    assert not tree_T.is_contiguous()
    for g_s, g_c in ((guide_t, guide_c), (None, None)):
        ref = global_propagate(values_c, g_c, tree_c, 0.2)
        torch.testing.assert_close(global_propagate(values_s, g_s, tree_T, 0.2), ref, rtol=0, atol=0)
        torch.testing.assert_close(global_propagate(values_s, g_s, tree_s, 0.2), ref, rtol=0, atol=0)

    mask_s = (big < 0.7)[:, 0, :, ::2]
    assert not mask_s.is_contiguous()
    ref = local_propagate(guide_c, values_c, mask_s.contiguous(), kernel_size=3, iterations=4)
    out = local_propagate(guide_t, values_s, mask_s, kernel_size=3, iterations=4)
    torch.testing.assert_close(out, ref, rtol=0, atol=0)

    # expanded (stride-0) inputs
    v1 = _rand(8, 1, 1, H, W)
    ve = v1.expand(B, 1, H, W)
    torch.testing.assert_close(
        global_propagate(ve, guide_c, tree_c, 0.2), global_propagate(ve.contiguous(), guide_c, tree_c, 0.2), rtol=0, atol=0
    )


# ---------------------------------------------------------------- long chains
CHAIN = 200_000


@pytest.mark.parametrize("orient", ["row", "col"])
def test_long_chain_constant_image(orient):
    shape = (1, 1, 1, CHAIN) if orient == "row" else (1, 1, CHAIN, 1)
    guide = torch.full(shape, 0.5)
    tree = minimum_spanning_tree(guide)
    expect = torch.stack([torch.arange(CHAIN - 1), torch.arange(1, CHAIN)], 1)
    assert torch.equal(tree[0], expect)  # all costs 0: the chain in edge order

    values = _rand(9, 2, *shape[2:])  # (2, H, W)
    out = global_propagate(values, guide.expand(2, 1, *shape[2:]), tree.expand(2, -1, -1), 0.01)
    mean = values.double().mean((1, 2), keepdim=True).expand_as(values)
    torch.testing.assert_close(out.double(), mean, rtol=1e-5, atol=1e-6)


def test_long_chain_split_by_one_huge_edge():
    cut = 123_457
    guide = torch.zeros(1, 1, 1, CHAIN)
    guide[..., cut:] = 1.0  # one edge of cost 1 between pixel cut-1 and cut
    guide[..., : cut // 2] += 1e-5 * torch.rand(cut // 2)  # tiny costs elsewhere: a real sort
    tree = minimum_spanning_tree(guide)
    t = tree[0]
    # only one spanning tree on a chain; the huge edge is accepted last
    assert tuple(t.shape) == (CHAIN - 1, 2)
    assert t[-1].tolist() == [cut - 1, cut]
    assert torch.equal(t.sort(0).values, torch.stack([torch.arange(CHAIN - 1), torch.arange(1, CHAIN)], 1))

    values = _rand(10, 1, 1, CHAIN)
    zeta = 0.01  # huge edge: exp(-1e4) = 0; tiny edges: exp(-<=1e-10/1e-4) ~ 1
    out = global_propagate(values, guide, tree, zeta)[0, 0]
    left, right = values[0, 0, :cut].double(), values[0, 0, cut:].double()
    torch.testing.assert_close(out[:cut].double(), left.mean().expand(cut), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out[cut:].double(), right.mean().expand(CHAIN - cut), rtol=1e-5, atol=1e-6)

    # self-guided on the same chain: the values' own step splits it
    step = torch.zeros(1, 1, CHAIN)
    step[..., cut:] = 1.0
    out = global_propagate(step, None, tree, 0.01)
    torch.testing.assert_close(out, step, rtol=0, atol=1e-6)


# ---------------------------------------------------------------- threads
def test_thread_count_invariance():
    """Results are bit-identical with one thread and with the default pool."""
    B, K, H, W = 3, 5, 40, 48
    guide = _rand(20, B, 3, H, W)
    values = _rand(21, K, 2, H, W)
    mask = values[:, 0] > 0.3
    idx = torch.tensor([0, 2, 1, 1, 0])
    before = torch.get_num_threads()

    def run():
        tree = minimum_spanning_tree(guide)
        return (
            tree,
            global_propagate(values, guide, tree, 0.05, image_index=idx),
            global_propagate(values, None, tree, 0.3, image_index=idx),
            local_propagate(guide, values, mask, image_index=idx),
        )

    try:
        torch.set_num_threads(1)
        single = run()
    finally:
        torch.set_num_threads(before)
    for a, b in zip(single, run()):
        assert torch.equal(a, b)
