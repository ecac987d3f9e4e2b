"""The custom suite's configs (apro.custom): on a dataset shaped like the paper's VOC set (its 20 classes, 10,582
training images) and the paper's GPUs, the generated APro config is the paper config, value for value; on any
other dataset the classes, their count in every place, the schedule and the variants follow the annotation file
and the settings; bad settings are named."""
import json
import math
from pathlib import Path

import pytest
from mmengine.config import Config

from apro import custom
from apro.registry import load_registry

ROOT = Path(__file__).resolve().parents[2]
PAPER = ROOT / "experiments" / "paper"
VOC = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable", "dog",
       "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor")


def _annotations(root: Path, classes, images: int, split="train", ids=None) -> Path:
    """An annotation file of ``images`` images (no image files: the configs need only the json), one box each."""
    ids = ids or list(range(1, len(classes) + 1))
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    path = root / "annotations" / f"instances_{split}.json"
    path.write_text(json.dumps({
        "images": [{"id": i, "file_name": f"{i}.jpg", "height": 100, "width": 100} for i in range(1, images + 1)],
        "annotations": [{"id": i, "image_id": i, "category_id": ids[i % len(ids)], "bbox": [10, 10, 20, 20],
                         "area": 400, "iscrowd": 0, "segmentation": []} for i in range(1, images + 1)],
        "categories": [{"id": k, "name": c} for k, c in zip(ids, classes)]}))
    return path


def _generated(tmp_path, data, **settings):
    spec = custom.CustomSpec(data=str(data), **settings)
    registry = custom.write_suite(spec, tmp_path / "suite")
    return spec, registry, {v: Config.fromfile(str(tmp_path / "suite" / "configs" / f"{spec.experiment(v)}.py"),
                                               import_custom_modules=False) for v in custom.VARIANTS}


def _without_data_root(cfg):
    """The config's values but where it points at the data (the paper's data/voc/, the custom folder)."""
    d = cfg.to_dict()
    for key in ("data_root", "test_evaluator", "auto_scale_lr", "num_gpus", "iters_per_epoch", "classes"):
        d.pop(key, None)
    for loader in ("train_dataloader", "test_dataloader"):
        d[loader]["dataset"].pop("data_root")
    return d


def test_a_voc_shaped_dataset_on_the_papers_gpus_gives_the_paper_config(tmp_path):
    """SOLOv2 R50 on 10,582 images of the VOC classes, 4 GPUs, 36 epochs: every value of the generated APro
    config equals experiments/paper/solov2_r50_voc.py's (1323 iterations an epoch, LR steps at epochs 27 and
    33, the 2000-iteration warm-up, num_classes 20), and mmengine's LR scaling is x1 (base batch 8 = 4 x 2)."""
    _annotations(tmp_path / "voc", VOC, 10582)
    _, _, cfgs = _generated(tmp_path, tmp_path / "voc", framework="solov2", backbone="r50", epochs=36, gpus=4)
    paper = Config.fromfile(str(PAPER / "solov2_r50_voc.py"), import_custom_modules=False)
    apro = cfgs[custom.APRO_VARIANT]
    assert apro.train_cfg.max_iters == paper.train_cfg.max_iters == 1323 * 36
    assert _without_data_root(apro) == _without_data_root(paper)
    assert apro.classes == VOC and apro.train_dataloader.dataset.metainfo.classes == VOC
    assert apro.auto_scale_lr == {"enable": True, "base_batch_size": 8}
    assert apro.test_evaluator.ann_file == str((tmp_path / "voc").resolve()) + "/annotations/instances_val.json"


def test_mask2former_keeps_the_recipes_schedule_shape_and_sets_every_class_count(tmp_path):
    """Mask2Former R50 on 10,582 VOC images: one epoch is ceil(10582 / 16) = 662 iterations (the release wrote
    50 x 10,582 / 16 rounded down to 33,065 in all); the LR steps at the same fractions of the schedule."""
    _annotations(tmp_path / "voc", VOC, 10582)
    _, _, cfgs = _generated(tmp_path, tmp_path / "voc", framework="mask2former", backbone="r50", epochs=50, gpus=4)
    paper = Config.fromfile(str(PAPER / "mask2former_r50_voc.py"), import_custom_modules=False)
    apro = cfgs[custom.APRO_VARIANT]
    assert apro.train_cfg.max_iters == 662 * 50
    ratio = apro.train_cfg.max_iters / paper.train_cfg.max_iters
    assert apro.param_scheduler.milestones == [round(m * ratio) for m in paper.param_scheduler.milestones]
    assert apro.model == paper.model  # num_things_classes 20 in both heads, class weights 20 x 1.0 + 0.1, GP, LP


def test_any_class_list_and_the_box_variant(tmp_path):
    """Three classes with ids 7, 3, 12 (file order kept: mmdet's label order); the box variant has no GP and no
    LP; 30 images at 2 a process, 20 epochs: 300 iterations, the warm-up capped at a tenth (30)."""
    names = ("kiwi", "apple", "fig")
    _annotations(tmp_path / "fruit", names, 30, ids=[7, 3, 12])
    _annotations(tmp_path / "fruit", names, 5, "val", ids=[7, 3, 12])
    spec, registry, cfgs = _generated(tmp_path, tmp_path / "fruit", epochs=20)
    box, apro = cfgs["box"], cfgs[custom.APRO_VARIANT]
    assert apro.classes == names and apro.model.mask_head.num_classes == 3
    assert box.model.mask_head.loss_gp is None and box.model.mask_head.loss_lp is None
    assert apro.model.mask_head.loss_gp.loss_weight == 2.0 and apro.model.mask_head.loss_lp.loss_weight == 1.0
    assert apro.train_cfg.max_iters == math.ceil(30 / 2) * 20 == 300
    warmup, steps = apro.param_scheduler
    assert (warmup.type, warmup.end) == ("LinearLR", 30)
    assert steps.milestones == [round(300 * 27 / 36), round(300 * 33 / 36)]
    assert apro.default_hooks.checkpoint.interval == 15  # one epoch
    reg = load_registry(registry)
    jobs = reg.jobs(custom.SUITE)
    assert [j.name for j in jobs] == ["solov2_r50_box", "solov2_r50_box_gp_lp"]
    assert [j.experiment.variant for j in jobs] == ["box", "box+gp+lp"]
    assert jobs[0].data_root == str((tmp_path / "fruit").resolve())


def test_a_single_class_and_a_short_schedule(tmp_path):
    """One class: a tuple of one name, Mask2Former's class weights [1.0, 0.1]; 4 iterations: no warm-up (a tenth of
    the schedule is under 2 iterations)."""
    _annotations(tmp_path / "one", ("widget",), 8)
    _, _, cfgs = _generated(tmp_path, tmp_path / "one", framework="mask2former", epochs=2)
    apro = cfgs[custom.APRO_VARIANT]
    assert apro.classes == ("widget",)
    assert apro.model.panoptic_head.num_things_classes == apro.model.panoptic_fusion_head.num_things_classes == 1
    assert apro.model.panoptic_head.loss_cls.class_weight == [1.0, 0.1]
    assert apro.train_cfg.max_iters == 2 * 2  # 8 images at 4 a process
    assert apro.param_scheduler.type == "MultiStepLR"
    _, _, solo = _generated(tmp_path, tmp_path / "one", epochs=1)
    assert [s.type for s in solo[custom.APRO_VARIANT].param_scheduler] == ["MultiStepLR"]


def test_why_a_one_iteration_warm_up_is_left_out():
    """mmengine's LinearLR over one iteration never reaches its end factor (the LR stays at 0.001 of itself);
    over two it does."""
    import torch
    from mmengine.optim.scheduler import LinearLR

    for end, expected in ((1, 0.001), (2, 1.0)):
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        scheduler = LinearLR(opt, start_factor=0.001, by_epoch=False, begin=0, end=end)
        for _ in range(5):
            opt.step()
            scheduler.step()
        assert opt.param_groups[0]["lr"] == pytest.approx(expected)


def test_files_are_rewritten_only_when_their_content_changes(tmp_path):
    _annotations(tmp_path / "d", ("a", "b"), 6)
    spec, registry, _ = _generated(tmp_path, tmp_path / "d")
    config = tmp_path / "suite" / "configs" / f"{spec.experiment('box')}.py"
    before = (config.stat().st_mtime_ns, registry.stat().st_mtime_ns)
    _generated(tmp_path, tmp_path / "d")
    assert (config.stat().st_mtime_ns, registry.stat().st_mtime_ns) == before
    _generated(tmp_path, tmp_path / "d", epochs=13)
    assert config.stat().st_mtime_ns != before[0] and "max_iters = 39" in config.read_text()


@pytest.mark.parametrize("settings, expected", [
    ({"framework": "yolo"}, "framework='yolo': expected one of solov2, mask2former"),
    ({"backbone": "swint"}, "backbone='swint': no paper recipe for solov2 with it"),
    ({"epochs": 0}, "epochs=0: expected a positive integer"),
    ({"gpus": -1}, "gpus=-1: expected 0 (CPU) or a number of GPUs"),
    ({"recipe": "/nowhere/config.py"}, "recipe=/nowhere/config.py: no such config file"),
    ({"data": "/nowhere"}, "data='/nowhere': expected a COCO-format dataset folder"),
])
def test_bad_settings_are_named(tmp_path, settings, expected):
    _annotations(tmp_path / "d", ("a",), 2)
    with pytest.raises(custom.CustomError, match=None) as exc:
        custom.CustomSpec(**{"data": str(tmp_path / "d"), **settings})
    assert expected in str(exc.value)


def test_a_training_split_without_categories_or_usable_boxes_is_named(tmp_path):
    path = _annotations(tmp_path / "d", ("a",), 2)
    d = json.loads(path.read_text())
    for a in d["annotations"]:
        a["bbox"] = [500, 500, 10, 10]  # outside the 100 x 100 images
    path.write_text(json.dumps(d))
    with pytest.raises(custom.CustomError, match="no image has a usable box"):
        custom.write_suite(custom.CustomSpec(data=str(tmp_path / "d")), tmp_path / "suite")
    path.write_text(json.dumps({"images": d["images"], "annotations": [], "categories": []}))
    with pytest.raises(custom.CustomError, match="declares no categories"):
        custom.write_suite(custom.CustomSpec(data=str(tmp_path / "d")), tmp_path / "suite")


def test_the_workflow_plans_the_custom_suite_with_the_paper_weights(tmp_path, snakemake, planned):
    """`--config suite=custom data=DIR`: the ImageNet weights the recipe names are fetched as in the paper suite,
    the data checked, both variants trained and evaluated, the overlays predicted; with GPUs, under torchrun."""
    _annotations(tmp_path / "d", ("a", "b"), 6)
    _annotations(tmp_path / "d", ("a", "b"), 2, "val")
    proc = snakemake("-n", "-p", "--cores", "2", "--config", "suite=custom", f"data={tmp_path / 'd'}", "gpus=2",
                     directory=tmp_path / "run")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert planned(proc.stdout) == {"fetch_weights": 1, "validate_data": 1, "train": 2, "evaluate": 2,
                                    "predict_figures": 1, "report": 1, "html_report": 1, "all": 1, "total": 10}
    assert "weights/resnet50-11ad3fa6.pth" in proc.stdout
    assert "with-gpus 2 -- " in proc.stdout and "--nproc_per_node=2 -m apro train solov2_r50_box_gp_lp" in proc.stdout
    assert (tmp_path / "run" / "results" / "custom" / "registry.yaml").is_file()
