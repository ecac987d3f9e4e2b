"""local_propagate against the definition (dense loop) and the original unfold formulation."""
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from reference import lp_affinity_matrix, lp_loop_reference, lp_unfold_reference

from apro.ops import local_propagate

RTOL, ATOL = 1e-4, 1e-6


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


def _mask(seed, K, H, W, kind):
    if kind is None:
        return None
    g = torch.Generator().manual_seed(seed)
    m = torch.rand(K, H, W, generator=g) < 0.7
    if kind.startswith("float"):
        m = m.float()
    if kind == "float_soft":
        m = m * _rand(seed + 1, K, H, W)
    if kind.endswith("4d") or kind == "float_soft":
        m = m[:, None]
    return m


def _check(image, values, mask=None, image_index=None, kernel_size=5, zeta=0.15, iterations=20, unfold=True):
    out = local_propagate(
        image, values, mask, image_index=image_index, kernel_size=kernel_size, zeta=zeta, iterations=iterations
    )
    assert out.shape == values.shape
    assert out.dtype == values.dtype
    expect = lp_loop_reference(image, values, mask, image_index, kernel_size, zeta, iterations)
    np.testing.assert_allclose(out.double().numpy(), expect, rtol=RTOL, atol=ATOL)
    if unfold:
        idx = torch.arange(values.shape[0]) if image_index is None else image_index
        per_instance = image[idx]
        m = None if mask is None else mask.to(torch.float64)
        expect_unfold = lp_unfold_reference(per_instance, values, m, kernel_size, zeta, iterations)
        np.testing.assert_allclose(out.double().numpy(), expect_unfold.numpy(), rtol=RTOL, atol=ATOL)
    return out


# ---------------------------------------------------------------- reference sanity
@pytest.mark.parametrize("k", [1, 3, 5, 7])
def test_references_agree(k):
    K, C, H, W = 2, 3, 6, 7
    image = _rand(0, K, C, H, W)
    values = _rand(1, K, 2, H, W)
    mask = _mask(2, K, H, W, "float4d")
    a = lp_loop_reference(image, values, mask, None, k, 0.3, 5)
    b = lp_unfold_reference(image, values, mask.double(), k, 0.3, 5).numpy()
    np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-12)  # unfold adds 1e-10 to the denominator


def test_reference_affinity_hand_example():
    # 1x2 image, 3x3 window: each pixel sees itself and the other one
    img = np.array([[[0.0, 0.5]]])
    A = lp_affinity_matrix(img, 3, 1.0)
    e = np.exp(-0.25)
    np.testing.assert_allclose(A, [[1 / (1 + e), e / (1 + e)], [e / (1 + e), 1 / (1 + e)]])


# ---------------------------------------------------------------- op vs references
@pytest.mark.parametrize("form", ["3d", "4d1", "4dC"])
@pytest.mark.parametrize("mask_kind", [None, "bool3d", "bool4d", "float3d", "float4d", "float_soft"])
def test_default_parameters(form, mask_kind):
    K, C, H, W = 2, 3, 9, 8
    image = _rand(3, K, 3, H, W)
    values = _values(4, K, C, H, W, form)
    mask = _mask(5, K, H, W, mask_kind)
    _check(image, values, mask)


@given(
    B=st.integers(1, 3),
    K=st.integers(1, 4),
    C=st.integers(1, 3),
    Ci=st.integers(1, 4),
    H=st.integers(1, 8),
    W=st.integers(1, 9),
    kernel_size=st.sampled_from([1, 3, 5, 7]),
    zeta=st.sampled_from([0.05, 0.15, 0.5, 1.0]),
    iterations=st.sampled_from([0, 1, 2, 5, 20]),
    form=st.sampled_from(["3d", "4d1", "4dC"]),
    mask_kind=st.sampled_from([None, "bool3d", "bool4d", "float3d", "float4d", "float_soft"]),
    levels=st.sampled_from([None, None, 2, 4]),
    seed=st.integers(0, 2**31 - 1),
)
def test_property(B, K, C, Ci, H, W, kernel_size, zeta, iterations, form, mask_kind, levels, seed):
    image = _rand(seed, B, Ci, H, W, levels=levels)
    values = _values(seed + 1, K, C, H, W, form)
    mask = _mask(seed + 2, K, H, W, mask_kind)
    image_index = torch.from_numpy(np.random.default_rng(seed).integers(0, B, size=K)).to(torch.int64)
    _check(image, values, mask, image_index, kernel_size, zeta, iterations)


def test_large_zeta_loop_reference():
    """Large zeta: off-image neighbours must still be excluded (the unfold trick stops working here)."""
    K, H, W = 2, 5, 6
    image = _rand(6, K, 3, H, W)
    values = _rand(7, K, H, W)
    _check(image, values, None, kernel_size=5, zeta=50.0, iterations=3, unfold=False)
    # zeta -> inf: plain box average over the in-image window
    out = local_propagate(image, values, None, kernel_size=3, zeta=1e6, iterations=1)
    box = torch.nn.functional.avg_pool2d(values[:, None].double(), 3, 1, 1, count_include_pad=False)[:, 0]
    torch.testing.assert_close(out.double(), box, rtol=1e-5, atol=1e-6)


def test_iterations_zero_is_masking():
    image = _rand(8, 2, 3, 5, 5)
    values = _rand(9, 2, 2, 5, 5)
    mask = _mask(10, 2, 5, 5, "bool3d")
    out = local_propagate(image, values, mask, iterations=0)
    torch.testing.assert_close(out, values * mask[:, None], rtol=0, atol=0)


def test_constant_values_inside_full_mask_are_fixed():
    image = _rand(11, 1, 3, 7, 7)
    values = torch.full((1, 7, 7), 0.625)
    out = local_propagate(image, values, None, kernel_size=5, zeta=0.15, iterations=20)
    # float32 weights: each round may drift by a few ulp
    torch.testing.assert_close(out, values, rtol=2e-5, atol=1e-6)


def test_mask_zero_outside():
    image = _rand(12, 2, 3, 8, 8)
    values = _rand(13, 2, 1, 8, 8)
    mask = torch.zeros(2, 1, 8, 8)
    mask[:, :, 2:6, 1:5] = 1
    out = _check(image, values, mask)
    assert bool((out[mask == 0] == 0).all())


def test_image_index_mapping():
    B, K, H, W = 2, 4, 6, 7
    image = _rand(14, B, 3, H, W)
    values = _rand(15, K, H, W)
    image_index = torch.tensor([1, 1, 0, 1])
    out = _check(image, values, None, image_index=image_index, kernel_size=3, zeta=0.2, iterations=4)
    for k in range(K):
        b = int(image_index[k])
        single = local_propagate(image[b : b + 1], values[k : k + 1], kernel_size=3, zeta=0.2, iterations=4)
        torch.testing.assert_close(out[k : k + 1], single, rtol=1e-6, atol=1e-7)


def test_float64_inputs():
    image = _rand(16, 2, 3, 6, 5, dtype=torch.float64)
    values = _rand(17, 2, 2, 6, 5, dtype=torch.float64)
    mask = _mask(18, 2, 6, 5, "float3d").double()
    _check(image, values, mask, kernel_size=3, zeta=0.3, iterations=7)


def test_no_grad_and_inputs_untouched():
    image = _rand(19, 1, 3, 5, 5)
    values = _rand(20, 1, 1, 5, 5).requires_grad_(True)
    mask = _mask(21, 1, 5, 5, "float4d")
    i0, v0, m0 = image.clone(), values.detach().clone(), mask.clone()
    out = local_propagate(image, values, mask)
    assert out.grad_fn is None and not out.requires_grad
    assert torch.equal(image, i0) and torch.equal(values.detach(), v0) and torch.equal(mask, m0)


@pytest.mark.slow
def test_larger_image_against_unfold():
    K, H, W = 3, 40, 48
    image = _rand(22, K, 3, H, W)
    values = _rand(23, K, 1, H, W)
    mask = _mask(24, K, H, W, "float4d")
    out = local_propagate(image, values, mask, kernel_size=5, zeta=0.15, iterations=20)
    expect = lp_unfold_reference(image, values, mask.double(), 5, 0.15, 20)
    np.testing.assert_allclose(out.double().numpy(), expect.numpy(), rtol=RTOL, atol=ATOL)


# ---------------------------------------------------------------- one rounding on every CPU
_SAME_ON_EVERY_PATH = """
import sys, torch
from apro.ops import local_propagate
outs = []
for seed, (B, K, C, H, W) in enumerate([(2, 5, 7, 20, 80), (2, 9, 1, 21, 84), (1, 3, 2, 9, 13), (1, 2, 1, 6, 7)]):
    g = torch.Generator().manual_seed(seed)
    image, values = torch.rand(B, 3, H, W, generator=g), torch.rand(K, C, H, W, generator=g)
    mask = (torch.rand(K, H, W, generator=g) < 0.7).float()
    outs.append(local_propagate(image, values, mask, torch.arange(K) % B, kernel_size=5, zeta=0.15, iterations=20))
torch.save(outs, sys.argv[1])
"""


@pytest.mark.skipif("avx512f" not in open("/proc/cpuinfo").read(), reason="no AVX-512 here: LP has one code path")
def test_avx512_code_rounds_as_the_avx2_code(tmp_path):
    # widths with 16-column blocks, an 8-column block and single last columns; planes of 1..8 per group
    import os
    import subprocess
    import sys

    outs = {}
    for name, extra in (("avx512", {}), ("avx2", {"APRO_NO_AVX512": "1"})):
        env = {k: v for k, v in os.environ.items() if k != "APRO_NO_AVX512"} | extra
        subprocess.run([sys.executable, "-c", _SAME_ON_EVERY_PATH, str(tmp_path / name)], env=env, check=True,
                       timeout=120)
        outs[name] = torch.load(tmp_path / name)
    for wide, narrow in zip(outs["avx512"], outs["avx2"]):
        assert torch.equal(wide, narrow)
