"""The ``custom`` suite: box-supervised training on any COCO-format dataset (``apro custom-configs``, and the
workflow's ``--config suite=custom data=DIR framework=... backbone=... epochs=...``).

From the dataset's ``annotations/instances_train.json`` and a recipe (default: the paper's VOC config of the
framework and backbone, ``experiments/paper/<framework>_<backbone>_voc.py``) it writes, under
``results/custom/`` (:func:`apro.layout.custom_dir`):

* ``configs/<framework>_<backbone>_box.py`` and ``..._box_gp_lp.py``: mmdet configs inheriting the recipe
  (``_base_``), which set only what the dataset decides: the classes (the annotation file's category names,
  in its order, which is the label order of mmdet's ``CocoDataset``) and their count in every place the head
  holds one, the data root, the schedule in iterations and, for ``box``, no GP and no LP (projection only);
* ``registry.yaml``: a registry (the schema of ``experiments/registry.yaml``) with the dataset, the suite
  and the two experiments, which ``apro train`` / ``apro evaluate`` / ``apro report`` and the workflow read
  as they read the main one.

The schedule: one epoch is ``ceil(images with a usable box / (the recipe's batch per GPU x processes))``
iterations (the paper's convention: COCO's 117,266 images with objects); the LR steps stay at the same
fraction of the schedule as in the recipe, its warm-up keeps its length in iterations up to a tenth of the
schedule (none under 2 iterations), and the LR is scaled to the total batch by mmengine's ``auto_scale_lr``
(the recipe's total batch as its base). Files are rewritten only when their content changes, so a run of the
same settings resumes and one of other settings starts afresh (:func:`apro.runs.prepare_work_dir`).
"""
from __future__ import annotations

import dataclasses
import math
import os
import pprint
from pathlib import Path
from typing import Optional

from apro import layout
from apro.errors import InputError
from apro.io import write_text_atomic
from apro.registry import APRO_VARIANT, BASELINE_VARIANT, REPO_ROOT

SUITE = "custom"
DATASET = "custom"
#: the settings' framework and backbone names -> the registry's
FRAMEWORKS = {"solov2": "SOLOv2", "mask2former": "Mask2Former"}
BACKBONES = {"r50": "ResNet-50", "r101": "ResNet-101", "swint": "Swin-T", "swinl": "Swin-L"}
#: variant -> the experiment name's suffix (the box variant has no GP and no LP: _head)
VARIANTS = {BASELINE_VARIANT: "box", APRO_VARIANT: "box_gp_lp"}
#: the warm-up is at most this share of the schedule, and none when that is under MIN_WARMUP iterations (mmengine's
#: LinearLR over one iteration never reaches its end factor: the LR would stay at the start factor all along)
MAX_WARMUP_SHARE = 0.1
MIN_WARMUP = 2


class _Expr(str):
    """Config text written as it is (pprint writes its repr)."""

    def __repr__(self) -> str:
        return str(self)


class CustomError(InputError):
    """A bad setting of the custom suite (framework, backbone, epochs, data folder, recipe)."""


@dataclasses.dataclass(frozen=True)
class CustomSpec:
    """The settings of a custom suite: the workflow config's ``data``, ``framework``, ``backbone``, ``epochs``,
    ``recipe`` and ``gpus`` (0: one CPU process)."""
    data: str
    framework: str = "solov2"
    backbone: str = "r50"
    epochs: int = 12
    recipe: Optional[str] = None
    gpus: int = 0

    def __post_init__(self):
        if self.framework not in FRAMEWORKS:
            raise CustomError(f"framework={self.framework!r}: expected one of {', '.join(FRAMEWORKS)}")
        if self.recipe is None and not self.recipe_path().is_file():
            known = sorted(p.stem.split("_")[1] for p in self.recipe_path().parent.glob(f"{self.framework}_*_voc.py"))
            raise CustomError(f"backbone={self.backbone!r}: no paper recipe for {self.framework} with it "
                              f"({self.recipe_path()}); expected one of {', '.join(known)}")
        if self.recipe is not None and not Path(self.recipe).is_file():
            raise CustomError(f"recipe={self.recipe}: no such config file (expected an mmdet config, e.g. one "
                              f"inheriting experiments/paper/{self.framework}_{self.backbone}_voc.py)")
        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise CustomError(f"epochs={self.epochs!r}: expected a positive integer")
        if not isinstance(self.gpus, int) or self.gpus < 0:
            raise CustomError(f"gpus={self.gpus!r}: expected 0 (CPU) or a number of GPUs")
        if not self.data or not (Path(self.data) / "annotations" / "instances_train.json").is_file():
            raise CustomError(f"data={self.data!r}: expected a COCO-format dataset folder: "
                              "annotations/instances_{train,val}.json and the images in train/ and val/")

    @classmethod
    def from_config(cls, config: dict) -> "CustomSpec":
        """From the workflow's config (``--config suite=custom data=... ...``); unset keys take the defaults."""
        keys = ("framework", "backbone", "epochs", "recipe", "gpus")
        return cls(data=config.get("data") or "", **{k: config[k] for k in keys if config.get(k) is not None})

    def recipe_path(self) -> Path:
        if self.recipe is not None:
            return Path(self.recipe).resolve()
        return REPO_ROOT / "experiments" / "paper" / f"{self.framework}_{self.backbone}_voc.py"

    def experiment(self, variant: str) -> str:
        return f"{self.framework}_{self.backbone}_{VARIANTS[variant]}"


def _train_set(data: str) -> tuple:
    """(category names in file order, number of images with a usable box) of the training split."""
    from apro.data.checks import check_split

    try:
        check = check_split(data, "train", read_images=False)
    except ValueError as exc:
        raise CustomError(f"data={data}: {exc}") from None
    if not check.categories:
        raise CustomError(f"{check.annotation_file}: declares no categories; expected at least one")
    if not check.images_with_usable:
        raise CustomError(f"{check.annotation_file}: no image has a usable box (apro validate-data names why)")
    return tuple(check.categories), len(check.images_with_usable)


def _schedule(recipe, iters: int):
    """The recipe's param_scheduler for ``iters`` (:func:`apro.runs.set_max_iters`), its warm-up capped first."""
    from apro.runs import set_max_iters

    old, cap = int(recipe.train_cfg.max_iters), int(iters * MAX_WARMUP_SHARE)
    single = not isinstance(recipe.param_scheduler, (list, tuple))
    if not single:
        kept = []
        for sched in recipe.param_scheduler:
            if sched.get("end") is not None and sched["end"] < old:  # a warm-up: its iterations, capped, or none
                if cap < MIN_WARMUP:
                    continue
                sched = dict(sched, end=min(sched["end"], cap))
            kept.append(sched)
        recipe.param_scheduler = kept
    set_max_iters(recipe, iters)
    out = [dict(s) for s in ([recipe.param_scheduler] if single else recipe.param_scheduler)]
    return dict(out[0], _delete_=True) if single else out


def _head(model, n: int, variant: str) -> dict:
    """The model settings of the generated config: the number of classes in every place the head holds it,
    and for the baseline no GP and no LP."""
    pairwise = {"loss_gp": None, "loss_lp": None} if variant == BASELINE_VARIANT else {}
    if model.get("panoptic_head") is not None:  # Mask2Former: things classes, class weights (+ no-object)
        return {"panoptic_head": {"num_things_classes": n, "loss_cls": {"class_weight": _Expr(f"[1.0] * {n} + [0.1]")},
                                  **pairwise},
                "panoptic_fusion_head": {"num_things_classes": n}}
    return {"mask_head": {"num_classes": n, **pairwise}}


def config_texts(spec: CustomSpec, classes: tuple, images: int) -> dict:
    """The generated mmdet config of each variant (VARIANTS) for a training set of ``classes`` and ``images``
    images with a usable box; the recipe is read once."""
    from mmengine.config import Config

    recipe_file = spec.recipe_path()
    recipe = Config.fromfile(str(recipe_file), import_custom_modules=False)
    batch = int(recipe.train_dataloader.batch_size)
    processes = max(1, spec.gpus)
    per_epoch = math.ceil(images / (batch * processes))
    iters = per_epoch * spec.epochs
    base_batch = int((recipe.get("auto_scale_lr") or {}).get("base_batch_size") or batch * processes)
    heads = {variant: _head(recipe.model, len(classes), variant) for variant in VARIANTS}
    schedule = _schedule(recipe, iters)  # (changes the recipe: after the heads)
    data_root = str(Path(spec.data).resolve()) + os.sep

    def text(variant: str) -> str:
        lines = [
            f"# {spec.experiment(variant)}: written by `apro custom-configs` (apro/custom.py); edits are overwritten.",
            f"# Recipe: {recipe_file}; variant {variant}; {spec.epochs} epochs of {images} training images with a",
            f"# usable box at {batch} per process x {processes} process(es).",
            f"_base_ = [{str(recipe_file)!r}]",
            f"data_root = {data_root!r}",
            f"classes = {classes!r}  # the categories of annotations/instances_train.json, in its order",
            "# the number of classes in every place the head holds it"
            + ("; projection only: no GP, no LP" if variant == BASELINE_VARIANT else ""),
            f"model = {pprint.pformat(heads[variant], sort_dicts=False, width=110)}",
            "train_dataloader = dict(dataset=dict(data_root=data_root, metainfo=dict(classes=classes)))",
            "test_dataloader = dict(dataset=dict(data_root=data_root, metainfo=dict(classes=classes)))",
            "test_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')",
            f"num_gpus = {processes}",
            f"iters_per_epoch = {per_epoch}",
            f"max_iters = {iters}",
            "train_cfg = dict(max_iters=max_iters)",
            f"param_scheduler = {pprint.pformat(schedule, sort_dicts=False, width=110)}",
            f"default_hooks = dict(checkpoint=dict(interval={min(per_epoch, iters)}))",
            f"# the LR is the recipe's for a total batch of {base_batch}, scaled by mmengine to this one's",
            f"auto_scale_lr = dict(enable=True, base_batch_size={base_batch})",
        ]
        return "\n".join(lines) + "\n"

    return {variant: text(variant) for variant in VARIANTS}


def registry_text(spec: CustomSpec, configs: dict) -> str:
    """The custom suite's registry (``configs``: variant -> generated config path)."""
    import yaml

    data = str(Path(spec.data).resolve())
    registry = {
        "version": 1,
        "datasets": {DATASET: {"kind": "external", "root": data,
                               "description": f"your COCO-format dataset at {data}"}},
        "suites": {SUITE: {"description": f"{FRAMEWORKS[spec.framework]} {BACKBONES.get(spec.backbone, spec.backbone)}"
                                          f" on {data}, {spec.epochs} epochs, box-supervised with and without APro "
                                          "(apro/custom.py)"}},
        "experiments": [
            {"name": spec.experiment(variant), "suites": [SUITE], "task": "instance",
             "framework": FRAMEWORKS[spec.framework], "backbone": BACKBONES.get(spec.backbone, spec.backbone),
             "dataset": DATASET, "supervision": "box", "variant": variant, "config": str(Path(path).resolve()),
             "epochs": spec.epochs, **({"gpus": spec.gpus} if spec.gpus else {}), "paper": None}
            for variant, path in configs.items()],
    }
    return "# Written by `apro custom-configs` (apro/custom.py); edits are overwritten.\n" + \
        yaml.safe_dump(registry, sort_keys=False, width=110)


def _write_if_changed(path: Path, text: str) -> None:
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        write_text_atomic(path, text)


def write_suite(spec: CustomSpec, out: Optional[os.PathLike] = None) -> Path:
    """Writes the custom suite's configs and registry under ``out`` (default results/custom/); returns the
    registry's path."""
    folder = Path(out if out is not None else layout.custom_dir())
    configs = {variant: folder / "configs" / f"{spec.experiment(variant)}.py" for variant in VARIANTS}
    texts = config_texts(spec, *_train_set(spec.data))
    for variant, path in configs.items():
        _write_if_changed(path, texts[variant])
    registry = folder / "registry.yaml"
    _write_if_changed(registry, registry_text(spec, configs))
    return registry
