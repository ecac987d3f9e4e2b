"""The ops in torch's dispatcher: ``torch.library.opcheck`` over every op (schema, autograd
registration, fake kernel against the real one, AOT dispatch), a kernel per device, no
gradient through any op, and a compiled graph through all of them without a break."""
import pytest
import torch

from apro import ops  # noqa: F401  (registers the CUDA and fake kernels)

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
OPS = ("minimum_spanning_tree", "minimum_spanning_tree_from_weights", "global_propagate", "tree_filter",
       "local_propagate", "kruskal_from_order", "gp_layouts")
DEVICE_OPS = OPS[:5]  # the host ops (union-find) run on the CPU only


def _rand(seed, *shape):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def _cases(device):
    """(op name, args) for every op: float inputs require grad where the op takes any."""
    def f(seed, *shape):
        return _rand(seed, *shape).to(device).requires_grad_()
    guide = f(0, 2, 3, 5, 7)
    tree = torch.ops.apro.minimum_spanning_tree(guide.detach())
    index = torch.tensor([0, 1, 1], device=device)
    values = f(1, 3, 2, 5, 7)
    weights = f(2, 2, 5 * 6 + 4 * 7)
    mask = (_rand(3, 3, 5, 7) > 0.3).float().to(device)
    def orders(n):  # two random orders of n edges
        return torch.stack([torch.randperm(n, generator=torch.Generator().manual_seed(s)) for s in (4, 5)])
    cases = [
        ("minimum_spanning_tree", (guide,)),
        ("minimum_spanning_tree_from_weights", (weights, 5, 7)),
        ("global_propagate", (values, guide, tree, index, 0.3)),
        ("global_propagate", (values, None, tree, index, 0.07)),
        ("tree_filter", (values, guide, tree, index, 0.3)),
        ("tree_filter", (values, None, tree, index, 0.07)),
        ("local_propagate", (guide, values, mask, index, 3, 0.15, 2)),
        ("local_propagate", (guide, values, None, index, 5, 0.15, 1)),
    ]
    if device == "cpu":
        cases += [("kruskal_from_order", (orders(5 * 6 + 4 * 7), 5, 7)),
                  ("gp_layouts", (orders(5 * 7 - 1), tree.cpu(), torch.tensor([1, 0])))]
    return cases


CASES = [(device, name, args) for device in DEVICES for name, args in _cases(device)]


@pytest.mark.parametrize("device,name,args", CASES, ids=[f"{d}-{n}-{i}" for i, (d, n, _) in enumerate(CASES)])
def test_opcheck(device, name, args):
    torch.library.opcheck(getattr(torch.ops.apro, name).default, args)


def test_every_op_is_checked():
    assert {name for _, name, _ in CASES} == set(OPS)


@pytest.mark.parametrize("device,name,args", CASES[:8], ids=[n for _, n, _ in CASES[:8]])
def test_no_gradient_flows_through_an_op(device, name, args):
    """The ops build constant targets: their outputs never require grad, whatever their inputs do."""
    assert any(isinstance(a, torch.Tensor) and a.requires_grad for a in args)
    out = getattr(torch.ops.apro, name)(*args)
    assert not out.requires_grad and out.grad_fn is None


@pytest.mark.parametrize("name", DEVICE_OPS)
def test_every_device_op_has_a_cpu_and_a_cuda_kernel(name):
    # the dispatcher is asked directly: no GPU needed (the CUDA kernels' results are test_device_ops.py's)
    for key in ("CPU", "CUDA"):
        assert torch._C._dispatch_has_kernel_for_dispatch_key(f"apro::{name}", key), (name, key)


def test_the_ops_run_on_fake_tensors():
    from torch._subclasses.fake_tensor import FakeTensorMode
    with FakeTensorMode():
        guide = torch.empty(2, 3, 40, 50)
        tree = torch.ops.apro.minimum_spanning_tree(guide)
        gp = torch.ops.apro.global_propagate(torch.empty(4, 1, 40, 50), None, tree, torch.tensor([0, 0, 1, 1]), 0.07)
    assert tree.shape == (2, 40 * 50 - 1, 2) and tree.dtype == torch.int64
    assert gp.shape == (4, 1, 40, 50) and gp.dtype == torch.float32


@pytest.mark.parametrize("device", DEVICES)
def test_one_graph_through_every_op(device):
    """fullgraph=True fails on any graph break: the ops trace as single nodes (through their fake kernels)."""
    def targets(image, values, index):
        tree = torch.ops.apro.minimum_spanning_tree(image)
        gp = torch.ops.apro.global_propagate(values, image, tree, index, 0.3)
        gp = torch.ops.apro.global_propagate(gp, None, tree, index, 0.07)
        tf = torch.ops.apro.tree_filter(values, image, tree, index, 0.3)
        lp = torch.ops.apro.local_propagate(image, values, None, index, 3, 0.15, 2)
        return gp + tf + lp

    torch._dynamo.reset()
    image, values = _rand(6, 2, 3, 9, 11).to(device), _rand(7, 3, 1, 9, 11).to(device)
    index = torch.tensor([0, 1, 1], device=device)
    compiled = torch.compile(targets, fullgraph=True, backend="aot_eager")
    assert torch.equal(compiled(image, values, index), targets(image, values, index))
