"""Tests of the built-in synthetic COCO dataset (apro.data.synthetic) and of
COCO json reading (apro.data.coco_io). Small sizes keep them fast."""
import json
import os

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_util
from pycocotools.coco import COCO

from apro import cli
from apro.data import coco_io, synthetic
from apro.data.synthetic import CATEGORIES, generate

# pycocotools 2.0.11's mask.decode warns under numpy 2 (its own code, not ours)
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")


def _files(root):
    out = {}
    for dirpath, _, names in os.walk(root):
        for n in names:
            p = os.path.join(dirpath, n)
            with open(p, "rb") as f:
                out[os.path.relpath(p, root)] = f.read()
    return out


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic") / "shapes"
    info = generate(out, num_train=40, num_val=10, image_size=96, seed=3, progress_every=0)
    return info


def _load(info, split):
    with open(info[split]["ann_file"]) as f:
        return json.load(f)


def _tight_box(m):
    ys, xs = np.nonzero(m)
    return [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)]


def test_layout_and_counts(dataset):
    root = dataset["out_dir"]
    assert sorted(os.listdir(root)) == ["annotations", "train", "val"]
    assert sorted(os.listdir(os.path.join(root, "annotations"))) == ["instances_train.json", "instances_val.json"]
    for split, n in (("train", 40), ("val", 10)):
        assert dataset[split]["images"] == n
        assert len(os.listdir(dataset[split]["image_dir"])) == n
        data = _load(dataset, split)
        assert len(data["images"]) == n
        assert dataset[split]["instances"] == len(data["annotations"])
        assert [c["name"] for c in data["categories"]] == [c["name"] for c in CATEGORIES]
    # no temporary siblings left behind
    assert [p for p in os.listdir(os.path.dirname(root)) if p != "shapes"] == []


def test_coco_api_masks_boxes_areas(dataset):
    for split in ("train", "val"):
        coco = COCO(dataset[split]["ann_file"])
        for img in coco.dataset["images"]:
            with Image.open(os.path.join(dataset[split]["image_dir"], img["file_name"])) as im:
                assert im.mode == "RGB" and im.size == (img["width"], img["height"]) == (96, 96)
            masks = []
            for ann in coco.loadAnns(coco.getAnnIds(imgIds=img["id"])):
                assert ann["iscrowd"] == 0
                assert isinstance(ann["segmentation"]["counts"], str)
                assert all(isinstance(v, float) for v in ann["bbox"])
                m = coco.annToMask(ann).astype(bool)
                assert m.shape == (96, 96)
                assert m.sum() == ann["area"] > 0
                assert _tight_box(m) == ann["bbox"]
                assert mask_util.toBbox(ann["segmentation"]).tolist() == ann["bbox"]
                masks.append(m)
            if masks:  # visible parts: no pixel belongs to two instances
                assert np.stack(masks).sum(axis=0).max() == 1


def test_empty_images_and_all_categories(dataset):
    data = _load(dataset, "train")
    with_anns = {a["image_id"] for a in data["annotations"]}
    empty = [im for im in data["images"] if im["id"] not in with_anns]
    # empty_fraction 0.1 is stratified: exactly one empty image per block of 10
    assert len(empty) == 4 == dataset["train"]["empty_images"]
    assert {a["category_id"] for a in data["annotations"]} == {c["id"] for c in CATEGORIES}
    # and the json still lists the empty images (COCO keeps them as negatives)
    coco = COCO(dataset["train"]["ann_file"])
    assert all(coco.getAnnIds(imgIds=im["id"]) == [] for im in empty)


def test_box_is_a_weak_proxy_for_the_mask(dataset):
    # From the shape definitions (table in synthetic.py): upright fills of the
    # six classes are ~0.52, 0.42, 0.4, 0.65, 0.7, 0.6 and a random rotation
    # divides the L/U ones by 1 + 2/pi, so the expected mean is ~0.47. We allow
    # margin for occlusion and border cuts and require < 0.6: taking the box as
    # the mask must score clearly below the pi/4 ~= 0.785 of an ellipse in its box.
    ratios = []
    for split in ("train", "val"):
        for a in _load(dataset, split)["annotations"]:
            ratios.append(a["area"] / (a["bbox"][2] * a["bbox"][3]))
    ratios = np.array(ratios)
    assert ratios.size > 50
    assert ratios.mean() < 0.6
    assert ratios.mean() > 0.25  # masks are shapes, not slivers
    assert ratios.max() <= 1.0


def test_objects_differ_from_surroundings_in_colour(dataset):
    # colour affinities must carry information: the object's mean colour differs
    # from that of a thin band around it (here: the median over instances)
    from scipy import ndimage
    data = _load(dataset, "train")
    by_id = {im["id"]: im for im in data["images"]}
    diffs = []
    for a in data["annotations"]:
        im = by_id[a["image_id"]]
        img = np.asarray(Image.open(os.path.join(dataset["train"]["image_dir"], im["file_name"])), np.float64)
        m = mask_util.decode(a["segmentation"]).astype(bool)
        band = ndimage.binary_dilation(m, iterations=2) & ~m
        diffs.append(np.linalg.norm(img[m].mean(0) - img[band].mean(0)) / 255.0)
    assert np.median(diffs) > 0.1


def test_deterministic_bytes_and_seed_sensitivity(tmp_path):
    kw = dict(num_train=6, num_val=3, image_size=48, progress_every=0)
    generate(tmp_path / "a", seed=7, **kw)
    generate(tmp_path / "b", seed=7, **kw)
    generate(tmp_path / "c", seed=8, **kw)
    a, b, c = _files(tmp_path / "a"), _files(tmp_path / "b"), _files(tmp_path / "c")
    assert len(a) == 6 + 3 + 2
    assert a == b
    assert sorted(a) == sorted(c)
    assert a["annotations/instances_train.json"] != c["annotations/instances_train.json"]
    assert sum(a[k] != c[k] for k in a if k.endswith(".png")) == 9


def test_images_do_not_depend_on_dataset_size(tmp_path):
    generate(tmp_path / "small", num_train=3, num_val=1, image_size=48, seed=1, progress_every=0)
    generate(tmp_path / "large", num_train=12, num_val=2, image_size=48, seed=1, progress_every=0)
    small, large = _files(tmp_path / "small"), _files(tmp_path / "large")
    for k in ("train/000000.png", "train/000002.png", "val/000000.png"):
        assert small[k] == large[k]


def test_interrupted_run_leaves_no_finished_output(tmp_path, monkeypatch):
    real = synthetic.render_image
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt("simulated interruption")
        return real(*args, **kwargs)

    monkeypatch.setattr(synthetic, "render_image", flaky)
    out = tmp_path / "data"
    with pytest.raises(KeyboardInterrupt):
        generate(out, num_train=5, num_val=2, image_size=48, progress_every=0)
    assert calls["n"] == 4
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_refuses_to_overwrite_unless_asked(tmp_path):
    out = tmp_path / "data"
    generate(out, num_train=2, num_val=1, image_size=48, seed=0, progress_every=0)
    before = _files(out)
    with pytest.raises(FileExistsError, match="overwrite"):
        generate(out, num_train=2, num_val=1, image_size=48, seed=1, progress_every=0)
    assert _files(out) == before
    generate(out, num_train=3, num_val=1, image_size=48, seed=1, overwrite=True, progress_every=0)
    after = _files(out)
    assert len(after) == 3 + 1 + 2 and after != before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]
    # an existing empty folder (e.g. made by a workflow engine) is fine
    empty = tmp_path / "empty"
    empty.mkdir()
    generate(empty, num_train=1, num_val=1, image_size=48, progress_every=0)


def test_progress_lines(tmp_path, capsys):
    generate(tmp_path / "d", num_train=4, num_val=2, image_size=48, progress_every=2)
    err = capsys.readouterr().err
    assert "train 2/4" in err and "train 4/4" in err and "val 2/2" in err


def test_cli(tmp_path, capsys):
    out = str(tmp_path / "cli")
    assert cli.main(["make-data", "--out", out, "--num-train", "2", "--num-val", "1", "--image-size", "40x56",
                     "--progress-every", "0"]) == 0
    data = coco_io.load_coco_annotations(os.path.join(out, "annotations", "instances_train.json"))
    assert {(im["height"], im["width"]) for im in data["images"]} == {(40, 56)}
    assert cli.main(["make-data", "--out", out, "--num-train", "2", "--num-val", "1", "--progress-every", "0"]) == 2
    assert "overwrite" in capsys.readouterr().err


def test_bad_arguments_are_named(tmp_path):
    with pytest.raises(ValueError, match="image_size"):
        generate(tmp_path / "x", image_size=8)
    with pytest.raises(ValueError, match="seed"):
        generate(tmp_path / "x", seed=-1)
    assert not (tmp_path / "x").exists()


# ---------------------------------------------------------------- load_coco_annotations

def test_load_valid(dataset):
    data = coco_io.load_coco_annotations(dataset["val"]["ann_file"])
    assert len(data["images"]) == 10


def test_load_missing_file(tmp_path):
    p = tmp_path / "nope.json"
    with pytest.raises(ValueError, match="does not exist") as e:
        coco_io.load_coco_annotations(p)
    assert str(p) in str(e.value)


def test_load_corrupt_json(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text('{"images": [')
    with pytest.raises(ValueError, match="not valid JSON") as e:
        coco_io.load_coco_annotations(p)
    assert str(p) in str(e.value)


def _minimal():
    return {"images": [{"id": 1, "file_name": "a.png", "height": 4, "width": 4}],
            "categories": [{"id": 1, "name": "ring"}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0.0, 0.0, 1.0, 1.0],
                             "area": 1.0, "iscrowd": 0, "segmentation": {"size": [4, 4], "counts": "01"}}]}


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.pop("categories"), "'categories'"),
    (lambda d: d.__setitem__("images", {}), "'images' must be a list"),
    (lambda d: d["annotations"][0].pop("bbox"), "annotations\\[0\\] \\(id 1\\) is missing required key\\(s\\) 'bbox'"),
    (lambda d: d["images"][0].pop("file_name"), "images\\[0\\].*'file_name'"),
    (lambda d: d["annotations"][0].__setitem__("bbox", [0, 0, 1]), "bbox"),
    (lambda d: d["annotations"][0].__setitem__("image_id", 9), "image_id 9"),
    (lambda d: d["annotations"][0].__setitem__("category_id", 9), "category_id 9"),
    (lambda d: d["images"].append(dict(d["images"][0])), "repeats id 1"),
])
def test_load_structural_errors_name_file_and_problem(tmp_path, mutate, message):
    d = _minimal()
    mutate(d)
    p = tmp_path / "instances_x.json"
    p.write_text(json.dumps(d))
    with pytest.raises(ValueError, match=message) as e:
        coco_io.load_coco_annotations(p)
    assert str(p) in str(e.value)


def test_load_minimal_ok(tmp_path):
    p = tmp_path / "ok.json"
    p.write_text(json.dumps(_minimal()))
    assert coco_io.load_coco_annotations(p)["categories"][0]["name"] == "ring"


def _hue_distances(root, class_hue_width):
    """Circular distance between each instance's mean hue and its class's band centre (k-1)/6."""
    import colorsys
    data = json.load(open(os.path.join(root, "annotations", "instances_train.json")))
    by_id = {im["id"]: im for im in data["images"]}
    out = []
    for a in data["annotations"]:
        img = np.asarray(Image.open(os.path.join(root, "train", by_id[a["image_id"]]["file_name"])), np.float64)
        m = mask_util.decode(a["segmentation"]).astype(bool)
        hue = colorsys.rgb_to_hsv(*(img[m].mean(0) / 255.0))[0]
        d = abs(hue - (a["category_id"] - 1) / len(CATEGORIES)) % 1.0
        out.append(min(d, 1.0 - d))
    return np.array(out)


def test_class_hue_width_makes_colour_hint_at_the_class(tmp_path):
    # --class-hue-width: an object's hue lies in a band around (k-1)/6 for category k;
    # without it the hue is anything (the default, used by the instance demo)
    args = ["--num-train", "30", "--num-val", "2", "--image-size", "64", "--progress-every", "0"]
    assert cli.main(["make-data", "--out", str(tmp_path / "hues")] + args + ["--class-hue-width", "0.1"]) == 0
    assert cli.main(["make-data", "--out", str(tmp_path / "any")] + args) == 0
    banded, free = _hue_distances(tmp_path / "hues", 0.1), _hue_distances(tmp_path / "any", None)
    assert banded.size > 40 and free.size > 40
    # texture (a gradient may pass through other hues), illumination and noise move the mean
    # hue off the base colour's, so: most instances within the band's half-width (0.05), nearly
    # all within a sixth's half (where the nearest other class's band starts)
    assert np.median(banded) < 0.05 and np.mean(banded < 1 / 12) > 0.8
    assert np.median(free) > 0.15  # uniform hue: 0.25
    with pytest.raises(ValueError, match="class_hue_width"):
        generate(tmp_path / "x", class_hue_width=1.5)
