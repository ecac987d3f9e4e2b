"""The original project's usage (README snippet) runs unchanged and matches the references."""
import numpy as np
import pytest
import torch

from reference import check_spanning_tree, gp_reference, lp_loop_reference, lp_unfold_reference, scipy_mst_weight, tree_weight


def _inputs(seed=0, K=3, H=12, W=14):
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(K, 3, H, W, generator=g)
    mask_pred = torch.rand(K, 1, H, W, generator=g)
    box_mask_target = torch.zeros(K, 1, H, W)
    for k in range(K):
        y0, x0 = int(torch.randint(0, H // 2, (1,), generator=g)), int(torch.randint(0, W // 2, (1,), generator=g))
        box_mask_target[k, 0, y0 : y0 + H // 2, x0 : x0 + W // 2] = 1
    feat = 0.3 * torch.rand(K, 4, H, W, generator=g)
    return image, mask_pred, box_mask_target, feat


def test_imports():
    from apro import Global_APro as G1, Local_APro as L1, MinimumSpanningTree as M1
    from apro.apro import Global_APro, Local_APro
    from apro.gp_cuda.mst.mst import MinimumSpanningTree

    assert (G1, L1, M1) == (Global_APro, Local_APro, MinimumSpanningTree)


def test_norm2_distance():
    from apro.apro import Global_APro

    a, b = torch.rand(2, 3, 4, 5), torch.rand(2, 3, 4, 5)
    torch.testing.assert_close(Global_APro.norm2_distance(a, b), ((a - b) ** 2).sum(dim=1))


def test_readme_snippet():
    from apro.apro import Global_APro, Local_APro
    from apro.gp_cuda.mst.mst import MinimumSpanningTree

    image, mask_pred, box_mask_target, feat = _inputs()
    mask_pred.requires_grad_(True)
    K, _, H, W = image.shape

    # ---- the README, verbatim
    global_apro = Global_APro()
    local_apro = Local_APro(kernel_size=5, zeta_s=0.15)
    mst = MinimumSpanningTree(Global_APro.norm2_distance)

    img_mst_tree = mst(image)
    soft_pseudo = global_apro(mask_pred, image, img_mst_tree, sigma=0.01)
    soft_pseudo_1 = soft_pseudo
    soft_pseudo = global_apro(soft_pseudo, feat, img_mst_tree, sigma=0.07)

    loss_global_term = torch.abs(soft_pseudo - mask_pred) * box_mask_target
    box_regions = box_mask_target.sum((1, 2, 3)).clamp(min=1)
    loss_global_term = loss_global_term.sum((1, 2, 3)) / box_regions
    loss_global = loss_global_term
    soft_pseudo_global = soft_pseudo

    soft_pseudo = local_apro(image, mask_pred, box_mask_target)
    loss_local_term = torch.abs(mask_pred - soft_pseudo) * box_mask_target
    loss_local_term = loss_local_term.sum((1, 2, 3)) / box_regions
    loss_local = loss_local_term
    # ---- end of README

    # the tree
    tree = torch.as_tensor(img_mst_tree).long()
    assert tuple(tree.shape) == (K, H * W - 1, 2)
    for k in range(K):
        check_spanning_tree(tree[k].numpy(), H, W)
        np.testing.assert_allclose(tree_weight(image[k], tree[k]), scipy_mst_weight(image[k]), rtol=1e-6, atol=1e-6)

    # targets are constants
    for t in (soft_pseudo_1, soft_pseudo_global, soft_pseudo):
        assert t.grad_fn is None and not t.requires_grad
        assert t.shape == mask_pred.shape and t.dtype == mask_pred.dtype

    # values against the references (each GP stage on the op's own input)
    mp = mask_pred.detach()
    np.testing.assert_allclose(soft_pseudo_1.double().numpy(), gp_reference(mp, image, tree, 0.01), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        soft_pseudo_global.double().numpy(), gp_reference(soft_pseudo_1, feat, tree, 0.07), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        soft_pseudo.double().numpy(),
        lp_unfold_reference(image, mp, box_mask_target.double(), 5, 0.15, 20).numpy(),
        rtol=1e-4,
        atol=1e-6,
    )
    np.testing.assert_allclose(
        soft_pseudo.double().numpy(), lp_loop_reference(image, mp, box_mask_target, None, 5, 0.15, 20), rtol=1e-4, atol=1e-6
    )

    # the L1 terms train mask_pred
    assert loss_global.shape == (K,) and loss_local.shape == (K,)
    (loss_global.sum() + loss_local.sum()).backward()
    assert mask_pred.grad is not None and torch.isfinite(mask_pred.grad).all()
    sign_g = torch.sign(mp - soft_pseudo_global)
    sign_l = torch.sign(mp - soft_pseudo)
    expect = (sign_g + sign_l) * box_mask_target / box_regions[:, None, None, None]
    torch.testing.assert_close(mask_pred.grad, expect)


def test_zeta_g_keyword_and_defaults():
    from apro.apro import Global_APro
    from apro.gp_cuda.mst.mst import MinimumSpanningTree

    image, mask_pred, _, _ = _inputs(1, K=2, H=6, W=7)
    tree = MinimumSpanningTree(Global_APro.norm2_distance)(image)
    gp = Global_APro()
    a = gp(mask_pred, image, tree, sigma=0.05)
    b = gp(mask_pred, image, tree, zeta_g=0.05)
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_mst_module_matches_op():
    from apro.apro import Global_APro
    from apro.gp_cuda.mst.mst import MinimumSpanningTree
    from apro.ops import minimum_spanning_tree

    image = _inputs(2)[0]
    tree = MinimumSpanningTree(Global_APro.norm2_distance)(image)
    assert torch.equal(torch.as_tensor(tree).long(), minimum_spanning_tree(image))


@pytest.mark.parametrize("feat_form", ["3d", "4d"])
@pytest.mark.parametrize("mask_form", ["3d", "4d"])
def test_local_apro_shapes(feat_form, mask_form):
    from apro.apro import Local_APro

    image, mask_pred, box, _ = _inputs(3, K=2, H=7, W=9)
    feat = mask_pred[:, 0] if feat_form == "3d" else mask_pred
    mask = box[:, 0] if mask_form == "3d" else box
    for k, zeta in ((3, 0.3), (5, 0.15)):
        out = Local_APro(kernel_size=k, zeta_s=zeta)(image, feat, mask)
        assert out.shape == feat.shape and out.dtype == feat.dtype
        expect = lp_unfold_reference(image, feat, mask.double(), k, zeta, 20).numpy()
        np.testing.assert_allclose(out.double().numpy(), expect, rtol=1e-4, atol=1e-6)


def test_global_apro_requires_grad_input_on_float64():
    from apro.apro import Global_APro
    from apro.gp_cuda.mst.mst import MinimumSpanningTree

    image, mask_pred, _, _ = _inputs(4, K=2, H=5, W=6)
    image, mask_pred = image.double(), mask_pred.double().requires_grad_(True)
    tree = MinimumSpanningTree(Global_APro.norm2_distance)(image)
    out = Global_APro()(mask_pred, image, tree, sigma=0.05)
    assert out.dtype == torch.float64 and out.grad_fn is None
    np.testing.assert_allclose(
        out.numpy(), gp_reference(mask_pred.detach(), image, torch.as_tensor(tree).long(), 0.05), rtol=1e-5, atol=1e-6
    )
