"""The device path (apro.device_ops, what CUDA tensors run) on CPU tensors, and on CUDA where
there is a GPU: parity with the compiled CPU ops (the same tree; GP and LP within 1e-5), GP
against the brute-force definition, and the host union-find ops' input checks. That
torch's dispatcher sends CUDA tensors here is tests/ops/test_dispatcher.py's."""
import numpy as np
import pytest
import torch
from reference import gp_reference, random_spanning_tree

from apro import device_ops, ops

TOL = 1e-5
# the device path runs on every device here; CI has only the CPU
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _on(device, *tensors):
    return [None if t is None else t.to(device) for t in tensors]


def _rand(seed, *shape, levels=None):
    x = torch.rand(*shape, generator=torch.Generator().manual_seed(seed))
    return torch.floor(x * levels) / levels if levels else x


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("levels", [None, 3])  # 3 grey levels: many equal costs, so ties decide the tree
@pytest.mark.parametrize("shape", [(2, 3, 9, 13), (1, 1, 1, 7), (3, 2, 6, 1)])
def test_tree_equals_the_compiled_tree(shape, levels, device):
    guide = _rand(0, *shape, levels=levels)
    expect = torch.ops.apro.minimum_spanning_tree(guide)
    assert torch.equal(device_ops.minimum_spanning_tree(guide.to(device)).cpu(), expect)
    costs = device_ops.grid_edge_costs(guide)
    assert torch.equal(torch.ops.apro.minimum_spanning_tree_from_weights(costs, *shape[2:]), expect)


def _maps(seed, maps, channels, height, width):
    return _rand(seed, maps, channels, height, width)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("channels", [1, 3, 9])
@pytest.mark.parametrize("guided", [True, False])
def test_gp_matches_the_compiled_op(channels, guided, device):
    height, width, images = 11, 14, 3
    guide = _rand(1, images, 3, height, width)
    tree = torch.ops.apro.minimum_spanning_tree(guide)
    index = torch.tensor([2, 0, 2, 2, 0])  # image 1 has no maps; image 2 three
    values = _maps(2, 5, channels, height, width)
    for zeta in (0.05, 0.3, 3.0):
        g = guide if guided else None
        expect = torch.ops.apro.global_propagate(values, g, tree, index, zeta)
        got = device_ops.global_propagate(*_on(device, values, g, tree, index), zeta)
        assert got.device.type == device and got.shape == values.shape and got.dtype == values.dtype
        assert (got.cpu() - expect).abs().max() <= TOL, (zeta, float((got.cpu() - expect).abs().max()))


def test_gp_on_any_spanning_tree_matches_the_definition():
    """Against the O(N^2) path-max reference, independent of the compiled op."""
    rng = np.random.default_rng(0)
    height, width = 6, 7
    tree = torch.from_numpy(np.stack([random_spanning_tree(height, width, rng, swap=True) for _ in range(2)]))
    values, guide = _maps(3, 4, 2, height, width), _rand(4, 2, 3, height, width)
    index = torch.tensor([1, 0, 1, 1])
    for g, zeta in ((guide, 0.5), (None, 0.4)):
        expect = torch.as_tensor(gp_reference(values, g, tree, zeta, index))
        got = device_ops.global_propagate(values, g, tree, index, zeta)
        assert (got - expect).abs().max() <= TOL


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kernel_size", [1, 3, 5])
@pytest.mark.parametrize("with_mask", [True, False])
def test_lp_matches_the_compiled_op(kernel_size, with_mask, device):
    height, width = 10, 13
    image = _rand(5, 2, 3, height, width) * 2 - 1
    values = _maps(6, 4, 3, height, width)
    index = torch.tensor([1, 1, 0, 1])
    mask = (_rand(7, 4, height, width) > 0.3).float() if with_mask else None
    for iterations in (0, 1, 20):
        expect = torch.ops.apro.local_propagate(image, values, mask, index, kernel_size, 0.15, iterations)
        got = device_ops.local_propagate(*_on(device, image, values, mask, index), kernel_size, 0.15, iterations)
        assert got.device.type == device and got.shape == values.shape
        assert (got.cpu() - expect).abs().max() <= TOL, (iterations, float((got.cpu() - expect).abs().max()))


def test_host_ops_reject_orders_that_are_not_permutations():
    tree = torch.ops.apro.minimum_spanning_tree(_rand(8, 1, 1, 3, 3))
    order = torch.arange(8).unsqueeze(0)
    assert torch.ops.apro.gp_layouts(order, tree, torch.tensor([0]))[0].shape == (1, 9)
    with pytest.raises(ValueError, match="gp_layouts: order\\[0\\] is not a permutation"):
        torch.ops.apro.gp_layouts(torch.zeros(1, 8, dtype=torch.int64), tree, torch.tensor([0]))
    with pytest.raises(ValueError, match="gp_layouts: tree_index\\[0\\] = 1 is out of range"):
        torch.ops.apro.gp_layouts(order, tree, torch.tensor([1]))
    grid_order = torch.arange(12).unsqueeze(0)  # a 3x3 grid has 12 edges
    assert torch.ops.apro.kruskal_from_order(grid_order, 3, 3).shape == (1, 8, 2)
    with pytest.raises(ValueError, match="kruskal_from_order: order\\[0\\] is not a permutation"):
        torch.ops.apro.kruskal_from_order(torch.zeros(1, 12, dtype=torch.int64), 3, 3)
    with pytest.raises(ValueError, match="kruskal_from_order: edge indices must lie in"):
        torch.ops.apro.kruskal_from_order(torch.full((1, 12), 12), 3, 3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_the_public_ops_on_cuda_stay_on_the_device():
    image, values = _rand(9, 2, 3, 12, 15).cuda(), _rand(10, 3, 1, 12, 15).cuda()
    index = torch.tensor([0, 1, 1])
    tree = ops.minimum_spanning_tree(image)
    gp = ops.global_propagate(ops.global_propagate(values, image, tree, 0.05, index), None, tree, 0.07, index)
    lp = ops.local_propagate(image, values, None, index)
    assert tree.is_cuda and gp.is_cuda and lp.is_cuda
    tree_cpu = ops.minimum_spanning_tree(image.cpu())
    gp_cpu = ops.global_propagate(ops.global_propagate(values.cpu(), image.cpu(), tree_cpu, 0.05, index), None,
                                  tree_cpu, 0.07, index)
    assert (gp.cpu() - gp_cpu).abs().max() <= TOL
    assert (lp.cpu() - ops.local_propagate(image.cpu(), values.cpu(), None, index)).abs().max() <= TOL
