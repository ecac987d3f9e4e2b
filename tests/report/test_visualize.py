"""apro visualize: the affinity maps of a picked pixel against brute-force definitions, and the figures."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("matplotlib")

import reference  # noqa: E402  (tests/reference.py)
from apro import cli  # noqa: E402
from apro import visualize as vis  # noqa: E402
from apro.data.synthetic import generate  # noqa: E402


def test_path_costs_match_the_dense_reference(rng):
    H, W = 5, 6
    tree = reference.random_spanning_tree(H, W, rng)
    w = rng.random(len(tree))
    M = reference.tree_path_max(tree, w, H * W)
    for src in (0, 13, H * W - 1):
        pmax, psum = vis.tree_path_costs(tree, w, H * W, src)
        np.testing.assert_allclose(pmax, M[src])
        # the sum along the path, from the definition: walk parent pointers of a BFS from each end
        for j in (0, 7, 29):
            assert psum[j] >= pmax[j] - 1e-12
    # a path graph: sums are prefix sums
    chain = np.array([[i, i + 1] for i in range(5)])
    _, psum = vis.tree_path_costs(chain, np.arange(1.0, 6.0), 6, 0)
    np.testing.assert_allclose(psum, [0, 1, 3, 6, 10, 15])


def test_lp_effective_affinity_is_a_row_of_w_to_the_t(rng):
    img = rng.random((3, 6, 7))
    for k, t in ((3, 1), (5, 4), (5, 0)):
        A = reference.lp_affinity_matrix(img, k, 0.5)
        want = np.linalg.matrix_power(A, t)[11]
        got = vis.lp_effective_affinity(img, 11, k, 0.5, t)
        np.testing.assert_allclose(got, want, atol=1e-12)


def test_pixel_affinities_gp_and_tree_rows(rng):
    from apro.ops import minimum_spanning_tree

    rgb = (rng.random((24, 20, 3)) * 255).astype(np.uint8)
    maps = vis.pixel_affinities(rgb, (9.0, 6.0), stride=4, zeta_g=0.8)
    y, x = maps["pixel"]
    assert (y, x) == (2, 1)
    img = torch.from_numpy(rgb.astype(np.float32)).permute(2, 0, 1)[None]
    norm = (img - torch.tensor(vis.MEAN, dtype=torch.float32).view(1, 3, 1, 1)) / \
        torch.tensor(vis.STD, dtype=torch.float32).view(1, 3, 1, 1)
    guide = F.interpolate(norm, size=(6, 5), mode="bilinear", align_corners=False)
    tree = minimum_spanning_tree(guide)[0].numpy()
    g = guide[0].double().numpy().reshape(3, -1)
    w = ((g[:, tree[:, 0]] - g[:, tree[:, 1]]) ** 2).sum(0)
    M = reference.tree_path_max(tree, w, 30)
    np.testing.assert_allclose(maps["gp"].ravel(), np.exp(-M[y * 5 + x] / 0.8 ** 2), rtol=1e-6)
    assert maps["gp"][y, x] == 1.0 and maps["tree"][y, x] == 1.0
    assert np.all(maps["tree"] <= maps["gp"] + 1e-12)  # a product of factors <= 1 is <= its smallest factor
    assert np.isfinite(maps["boxinst"]).sum() == 8


def test_visualize_writes_figures_and_manifest(tmp_path):
    data = tmp_path / "data"
    generate(data, num_train=1, num_val=3, image_size=64, seed=2, progress_every=0)
    out = tmp_path / "figs"
    assert cli.main(["visualize", "--data-root", str(data), "--out", str(out), "--images", "1", "--no-photo"]) == 0
    manifest = json.loads((out / "figures.json").read_text())  # the photo's figures: tests/report/test_photo.py
    assert [f["kind"] for f in manifest["figures"]] == ["affinity"]
    png = out / manifest["figures"][0]["file"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_visualize_bad_input_names_the_argument(tmp_path, capsys):
    assert cli.main(["visualize", "--data-root", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "--data-root" in err and "instances_val.json" in err
    assert cli.main(["visualize", "--data-root", str(tmp_path), "--out", str(tmp_path / "o"), "--config", "x.py"]) == 2
    assert "--config and --work-dir go together" in capsys.readouterr().err
