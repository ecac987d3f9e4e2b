"""Losses of point / scribble-supervised semantic segmentation (apro.losses.semantic, .models).

References: partial cross-entropy written out with log-sum-exp over the labelled
pixels; GP / LP targets from the brute-force references of tests/reference.py
(two GP passes: image-guided with the image's Kruskal tree, then self-guided
by the first pass over all class channels).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from reference import gp_reference, kruskal_reference, lp_loop_reference

from apro.losses import semantic as S


def _pce_reference(logits, labels, ignore=255):
    lg = logits.detach().double().numpy()
    lb = labels.numpy()
    total, n = 0.0, 0
    for b in range(lg.shape[0]):
        for y in range(lg.shape[2]):
            for x in range(lg.shape[3]):
                c = int(lb[b, y, x])
                if c == ignore:
                    continue
                z = lg[b, :, y, x]
                total += math.log(np.exp(z - z.max()).sum()) + z.max() - z[c]
                n += 1
    return total / max(n, 1)


def test_partial_cross_entropy_averages_over_labelled_pixels_only():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 4, 5, 6, generator=g, requires_grad=True)
    labels = torch.randint(0, 4, (2, 5, 6), generator=g)
    labels[torch.rand(2, 5, 6, generator=g) < 0.7] = 255
    loss = S.partial_cross_entropy(logits, labels)
    assert loss.item() == pytest.approx(_pce_reference(logits, labels), rel=1e-5)
    loss.backward()
    ignored = (labels == 255).unsqueeze(1).expand_as(logits)
    assert torch.all(logits.grad[ignored] == 0), "unlabelled pixels get exactly no gradient"
    # changing the logits of unlabelled pixels changes nothing
    other = logits.detach().clone()
    other[ignored] = 100.0
    assert S.partial_cross_entropy(other, labels).item() == pytest.approx(loss.item(), rel=1e-6)


def test_partial_cross_entropy_edge_cases():
    logits = torch.randn(1, 3, 4, 4, requires_grad=True)
    none = torch.full((1, 4, 4), 255)
    out = S.partial_cross_entropy(logits, none)
    assert out.item() == 0.0 and torch.isfinite(out)
    out.backward()
    dense = torch.randint(0, 3, (1, 4, 4))
    assert S.partial_cross_entropy(logits, dense).item() == pytest.approx(
        torch.nn.functional.cross_entropy(logits, dense).item(), rel=1e-6)
    with pytest.raises(ValueError, match=r"class ids must lie in \[0, 3\)"):
        S.partial_cross_entropy(logits, torch.full((1, 4, 4), 3))
    with pytest.raises(ValueError, match="labels: expected shape"):
        S.partial_cross_entropy(logits, torch.zeros(1, 4, 5, dtype=torch.long))


def test_soft_l1_loss_reference():
    p = torch.rand(2, 3, 4, 4)
    t = torch.rand(2, 3, 4, 4)
    m = (torch.rand(2, 4, 4) > 0.5).float()
    ref = sum(float(abs(p[b, :, y, x] - t[b, :, y, x]).sum()) for b in range(2) for y in range(4) for x in range(4)
              if m[b, y, x] > 0) / max(float(m.sum()), 1.0)
    assert S.soft_l1_loss(p, t, m).item() == pytest.approx(ref, rel=1e-5)
    assert S.soft_l1_loss(p, t, torch.zeros(2, 4, 4)).item() == 0.0
    np.testing.assert_array_equal(S.region_mask(torch.tensor([[[255, 1]]]), "unlabelled").numpy(), [[[1.0, 0.0]]])
    with pytest.raises(ValueError, match="region"):
        S.region_mask(torch.zeros(1, 1, 1), "labelled")


def test_gp_targets_multichannel_one_tree_per_image():
    rng = np.random.default_rng(1)
    B, C, H, W = 2, 3, 5, 6
    images = torch.from_numpy(rng.random((B, 3, H, W)).astype(np.float32))
    probs = torch.from_numpy(rng.random((B, C, H, W)).astype(np.float32)).softmax(1)
    out = S.gp_targets(probs, images, zetas=(0.3, 0.5))
    trees = np.stack([kruskal_reference(images[b].numpy()) for b in range(B)])
    first = gp_reference(probs.numpy(), images.numpy(), trees, 0.3)
    second = gp_reference(first, None, trees, 0.5)
    np.testing.assert_allclose(out.numpy(), second, rtol=1e-4, atol=1e-5)
    assert not out.requires_grad


def test_lp_targets_whole_image():
    rng = np.random.default_rng(2)
    images = torch.from_numpy(rng.random((2, 3, 5, 5)).astype(np.float32))
    probs = torch.from_numpy(rng.random((2, 4, 5, 5)).astype(np.float32))
    out = S.lp_targets(probs, images, kernel_size=3, zeta=0.5, iterations=3)
    ref = lp_loop_reference(images.numpy(), probs.numpy(), None, None, 3, 0.5, 3)
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------- mmseg plugin

def _tiny_segmentor(apro_loss):
    pytest.importorskip("mmseg")
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules

    import apro.models.segmentor  # noqa: F401  (registers the plugin modules)

    register_all_modules(init_default_scope=True)
    norm = dict(type="BN", requires_grad=True)
    cfg = dict(
        type="AProEncoderDecoder", apro_loss=apro_loss,
        data_preprocessor=dict(type="SegDataPreProcessor", mean=[0, 0, 0], std=[255, 255, 255], size_divisor=8,
                               seg_pad_val=255),
        backbone=dict(type="ResNetV1c", depth=18, stem_channels=8, base_channels=8, dilations=(1, 1, 2, 4),
                      strides=(1, 2, 1, 1), norm_cfg=norm, contract_dilation=True),
        decode_head=dict(type="DepthwiseSeparableASPPHead", in_channels=64, in_index=3, channels=8,
                         dilations=(1, 2), c1_in_channels=8, c1_channels=4, num_classes=3, norm_cfg=norm,
                         align_corners=False, loss_decode=dict(type="PartialCrossEntropyLoss")),
        train_cfg=dict(), test_cfg=dict(mode="whole"))
    return MODELS.build(cfg)


def _batch(n=2, size=16):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    g = torch.Generator().manual_seed(0)
    inputs, samples = [], []
    for _ in range(n):
        inputs.append((torch.rand(3, size, size, generator=g) * 255).to(torch.uint8))
        lab = torch.full((1, size, size), 255, dtype=torch.long)
        lab[0, 2:5, 2:5] = 1
        lab[0, 10:12, 10:14] = 0
        s = SegDataSample(metainfo=dict(img_shape=(size, size), ori_shape=(size, size), pad_shape=(size, size)))
        s.gt_sem_seg = PixelData(data=lab)
        samples.append(s)
    return dict(inputs=inputs, data_samples=samples)


def test_apro_segmentor_losses_and_baseline():
    torch.manual_seed(0)
    model = _tiny_segmentor(dict(loss_gp=dict(loss_weight=2.0, zetas=(0.1, 0.07)),
                                 loss_lp=dict(loss_weight=1.0, iterations=5), warmup_iters=4))
    data = model.data_preprocessor(_batch(), training=True)
    model.train()
    losses = model.loss(data["inputs"], data["data_samples"])
    assert {"decode.loss_pce", "decode.loss_gp", "decode.loss_lp"} <= set(losses)
    total = losses["decode.loss_pce"] + losses["decode.loss_gp"] + losses["decode.loss_lp"]
    total.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.decode_head.parameters())
    # warm-up: the factor is 1/4 at the first iteration, 2/4 at the second (same model, same batch)
    model.eval()  # freeze BN statistics so the two calls see the same predictions ...
    model._apro_iter.zero_()
    model.training = True  # ... while the warm-up counter still advances
    l1 = model.loss(data["inputs"], data["data_samples"])["decode.loss_gp"].item()
    l2 = model.loss(data["inputs"], data["data_samples"])["decode.loss_gp"].item()
    assert l2 == pytest.approx(2 * l1, rel=1e-4)
    base = _tiny_segmentor(None)
    assert set(base.loss(data["inputs"], data["data_samples"])) == {"decode.loss_pce", "decode.acc_seg"}


def test_apro_segmentor_rejects_unknown_keys():
    with pytest.raises(ValueError, match="unknown keys"):
        _tiny_segmentor(dict(loss_gp=dict(weight=1.0)))
    with pytest.raises(ValueError, match="region"):
        _tiny_segmentor(dict(region="labelled"))
