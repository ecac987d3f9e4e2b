"""The other pairwise terms (BoxInst colour similarity, tree filter of TEL) against brute-force definitions."""
from __future__ import annotations

import copy
import math
import os

import numpy as np
import pytest
import torch

pytest.importorskip("mmdet")

import reference  # noqa: E402  (tests/reference.py)
from apro.losses import baselines as pb  # noqa: E402


# ---------------------------------------------------------------- slow references, from the definitions

def tree_path_sum(tree, weights, n):
    """(n, n) matrix of the sum of edge weights on the tree path i -> j (DFS from every vertex)."""
    adj = [[] for _ in range(n)]
    for (u, v), w in zip(np.asarray(tree).tolist(), np.asarray(weights, dtype=np.float64).tolist()):
        adj[u].append((v, w))
        adj[v].append((u, w))
    out = np.zeros((n, n))
    for s in range(n):
        dist = {s: 0.0}
        stack = [s]
        while stack:
            a = stack.pop()
            for b, w in adj[a]:
                if b not in dist:
                    dist[b] = dist[a] + w
                    stack.append(b)
        for j, d in dist.items():
            out[s, j] = d
    return out


def tree_filter_reference(values, guide, tree, zeta, image_index):
    """y_i = sum_j T_ij x_j / sum_j T_ij with T_ij = prod over the path of exp(-w_e / zeta^2)."""
    v = values.double().numpy()
    K, C, H, W = v.shape
    n = H * W
    out = np.empty_like(v)
    for k in range(K):
        b = int(image_index[k])
        t = tree[b].numpy()
        src = (guide[b].double().numpy() if guide is not None else v[k]).reshape(-1, n)
        w = ((src[:, t[:, 0]] - src[:, t[:, 1]]) ** 2).sum(0)
        # product of per-edge affinities along the path, multiplied out edge by edge
        per_edge = np.exp(-w / zeta ** 2)
        P = np.exp(tree_path_sum(t, np.log(per_edge), n))
        x = v[k].reshape(C, n)
        out[k] = ((x @ P.T) / P.sum(1)[None]).reshape(C, H, W)
    return out


def lab_reference(r, g, b):
    """CIE-Lab (D65) of one sRGB colour, written from the CIE formulas."""
    def lin(c):
        c = c / 255.0
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
    R, G, B = lin(r), lin(g), lin(b)
    X = 0.412453 * R + 0.357580 * G + 0.180423 * B
    Y = 0.212671 * R + 0.715160 * G + 0.072169 * B
    Z = 0.019334 * R + 0.119193 * G + 0.950227 * B

    def f(t):
        return t ** (1 / 3) if t > (6 / 29) ** 3 else t / (3 * (6 / 29) ** 2) + 4 / 29
    fx, fy, fz = f(X / 0.95047), f(Y / 1.0), f(Z / 1.08883)
    return 116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)


def boxinst_reference(logits, boxes, lab, image_index, size=3, dilation=2, theta=2.0, thresh=0.3):
    """Loop over pixels and their dilated neighbours: mean of -log(P(same label)) over the kept edges."""
    K, _, H, W = logits.shape
    p = torch.sigmoid(logits.double())[:, 0].numpy()
    lab = lab.double().numpy()
    r = size // 2
    offsets = [(dy * dilation, dx * dilation) for dy in range(-r, r + 1) for dx in range(-r, r + 1)
               if (dy, dx) != (0, 0)]
    out = []
    for k in range(K):
        b = int(image_index[k])
        total, count = 0.0, 0
        for y in range(H):
            for x in range(W):
                if boxes[k, 0, y, x] == 0:
                    continue
                for dy, dx in offsets:
                    yy, xx = y + dy, x + dx
                    if not (0 <= yy < H and 0 <= xx < W):
                        continue
                    sim = math.exp(-np.linalg.norm(lab[b, :, y, x] - lab[b, :, yy, xx]) / theta)
                    if sim >= thresh:
                        same = p[k, y, x] * p[k, yy, xx] + (1 - p[k, y, x]) * (1 - p[k, yy, xx])
                        total += -math.log(same)
                        count += 1
        out.append(total / max(count, 1))
    return np.array(out)


# ---------------------------------------------------------------- tests

@pytest.mark.parametrize("H, W, zeta", [(1, 1, 0.5), (1, 7, 0.3), (4, 5, 0.4), (6, 6, 1.0)])
def test_tree_filter_matches_the_path_product_definition(H, W, zeta):
    rng = np.random.default_rng(H * 10 + W)
    B, K, C = 2, 3, 2
    guide = torch.from_numpy(rng.random((B, 3, H, W))).float()
    values = torch.from_numpy(rng.random((K, C, H, W))).float()
    index = torch.tensor([0, 1, 1])
    tree = torch.stack([torch.from_numpy(reference.random_spanning_tree(H, W, rng)) for _ in range(B)]) \
        if H * W > 1 else torch.zeros((B, 0, 2), dtype=torch.int64)
    got = pb.tree_filter(values, guide, tree, zeta, index).double().numpy()
    want = tree_filter_reference(values, guide, tree, zeta, index)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # the self-guided pass: each map weights the tree itself
    got2 = pb.tree_filter(values, None, tree, zeta, index).double().numpy()
    np.testing.assert_allclose(got2, tree_filter_reference(values, None, tree, zeta, index), rtol=1e-5, atol=1e-6)


def test_tree_filter_differs_from_gp_max_edge():
    """Product (sum of path weights) and GP (max path weight) agree only on paths of one edge."""
    from apro.ops import global_propagate, minimum_spanning_tree

    rng = np.random.default_rng(3)
    guide = torch.from_numpy(rng.random((1, 3, 5, 5))).float()
    values = torch.from_numpy(rng.random((1, 1, 5, 5))).float()
    tree = minimum_spanning_tree(guide)
    tf = pb.tree_filter(values, guide, tree, 0.5)
    gp = global_propagate(values, guide, tree, 0.5)
    assert not torch.allclose(tf, gp, atol=1e-4)
    # a constant map is a fixed point of both normalised filters
    ones = torch.full_like(values, 0.3)
    assert torch.allclose(pb.tree_filter(ones, guide, tree, 0.5), ones, atol=1e-6)


def test_tree_filter_rejects_a_tree_that_does_not_span():
    bad = torch.tensor([[[0, 1], [0, 1], [2, 3]]])
    with pytest.raises(ValueError, match="is not a spanning tree"):
        pb.tree_filter(torch.rand(1, 1, 2, 2), torch.rand(1, 3, 2, 2), bad, 0.5)
    with pytest.raises(ValueError, match=r"tree must have shape \(B, 3, 2\)"):
        pb.tree_filter(torch.rand(1, 1, 2, 2), None, torch.zeros(1, 2, 2, dtype=torch.long), 0.5)


@pytest.mark.parametrize("rgb", [(255, 255, 255), (0, 0, 0), (255, 0, 0), (12, 200, 90), (3, 5, 7)])
def test_rgb_to_lab_matches_the_cie_formulas(rgb):
    got = pb.rgb_to_lab(torch.tensor(rgb, dtype=torch.float32).view(1, 3, 1, 1))[0, :, 0, 0].double().numpy()
    np.testing.assert_allclose(got, lab_reference(*rgb), atol=2e-3)


def test_rgb_to_lab_known_values():
    # published CIE-Lab (D65) of white and pure sRGB red
    lab = pb.rgb_to_lab(torch.tensor([[255, 255, 255], [255, 0, 0]], dtype=torch.float32).T.reshape(1, 3, 1, 2))
    np.testing.assert_allclose(lab[0, :, 0, 0].numpy(), [100.0, 0.0, 0.0], atol=0.05)
    np.testing.assert_allclose(lab[0, :, 0, 1].numpy(), [53.24, 80.09, 67.20], atol=0.1)


@pytest.mark.parametrize("thresh", [0.0, 0.3, 0.9])
def test_boxinst_pairwise_loss_matches_the_loop_definition(thresh):
    rng = np.random.default_rng(7)
    B, K, H, W = 2, 3, 7, 9
    rgb = torch.from_numpy(rng.integers(0, 256, (B, 3, H, W))).float()
    # flat regions so that many edges pass the threshold
    rgb[:, :, :, :4] = torch.tensor([40.0, 120.0, 200.0]).view(1, 3, 1, 1)
    lab = pb.rgb_to_lab(rgb)
    logits = torch.from_numpy(rng.normal(size=(K, 1, H, W))).float().requires_grad_(True)
    boxes = torch.zeros(K, 1, H, W)
    boxes[0, :, 1:5, 0:6] = 1
    boxes[1, :, :, :] = 1
    boxes[2, :, 3:4, 8:9] = 1
    index = torch.tensor([0, 1, 0])
    sim = pb.boxinst_color_similarity(lab)
    got = pb.boxinst_pairwise_loss(logits, boxes, sim, index, color_thresh=thresh)
    want = boxinst_reference(logits.detach(), boxes.numpy(), lab, index, thresh=thresh)
    np.testing.assert_allclose(got.detach().double().numpy(), want, rtol=1e-4, atol=1e-5)
    got.sum().backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_boxinst_similarity_of_neighbours_outside_is_zero():
    sim = pb.boxinst_color_similarity(torch.zeros(1, 3, 3, 3))
    assert sim.shape == (1, 8, 3, 3)
    # the centre pixel's dilated neighbours all lie outside a 3x3 image
    assert torch.all(sim[0, :, 1, 1] == 0)
    assert sim[0, 7, 0, 0] == 1.0  # (+2, +2) of the corner is inside, same colour


def test_head_trains_with_the_baseline_terms():
    """BoxSOLOV2Head with loss_boxinst and loss_tree: finite, positive, differentiable terms."""
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmengine.structures import InstanceData
    from mmdet.structures import DetDataSample

    import apro.models.box_solov2  # noqa: F401  (what the configs' custom_imports load)
    import apro.models.mask2former_apro  # noqa: F401
    from apro.models.box_solov2 import BoxSOLOV2Head

    register_all_modules(init_default_scope=False)
    init_default_scope("mmdet")
    cfg = Config.fromfile(os.path.join(os.path.dirname(__file__), "..", "..", "experiments", "demo", "box.py"))
    cfg.model.mask_head.update(loss_boxinst=dict(loss_weight=1.0), loss_tree=dict(loss_weight=2.0),
                               pairwise_warmup_iters=0)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    head = model.mask_head
    assert isinstance(head, BoxSOLOV2Head) and head.loss_boxinst_cfg["color_thresh"] == 0.3
    assert tuple(head.loss_tree_cfg["zetas"]) == (0.01, 0.07)
    img = 100 + torch.rand(1, 3, 64, 64) * 4  # smooth colours: BoxInst keeps edges with similarity >= 0.3
    sample = DetDataSample(metainfo=dict(img_shape=(64, 64), batch_input_shape=(64, 64), pad_shape=(64, 64)))
    sample.gt_instances = InstanceData(bboxes=torch.tensor([[8.0, 10.0, 40.0, 44.0]]), labels=torch.tensor([1]))
    data = model.data_preprocessor({"inputs": [img[0].byte()], "data_samples": [sample]}, True)
    losses = model.loss(data["inputs"], data["data_samples"])
    assert {"loss_proj", "loss_boxinst", "loss_tree", "loss_cls"} <= set(losses)
    for k in ("loss_boxinst", "loss_tree"):
        assert math.isfinite(float(losses[k])) and float(losses[k]) > 0, k
    sum(losses.values()).backward()
    with pytest.raises(ValueError, match="unknown keys.*loss_boxinst"):
        BoxSOLOV2Head(num_classes=2, in_channels=8, mask_feature_head=copy.deepcopy(cfg.model.mask_head.mask_feature_head),
                      loss_boxinst=dict(sigma=1))
