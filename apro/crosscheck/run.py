"""``apro crosscheck``: one paper entry through the release and through this suite, compared term by term.

For an entry (a member of the registry's ``crosscheck`` suite: its paper config, and the release config
it follows, ``original`` in ``experiments/paper/original_recipes.yaml``):

1. the check's batch (:mod:`apro.crosscheck.batch`) and the photos for the pipelines are written;
2. :mod:`apro.crosscheck.release_side` runs in the release's venv: it builds the release config's
   model, trains it a few steps on the batch, saves an mmdet 2.25 checkpoint and computes losses,
   gradients, predictions and pipeline outputs;
3. ``apro convert-checkpoint`` converts that checkpoint into the paper config's model, strictly;
4. :mod:`apro.crosscheck.suite_side` computes the same from this suite's config and the converted weights;
5. :mod:`apro.crosscheck.compare` compares them; ``<out>/<entry>/crosscheck.json`` holds the figures.

The intermediate files (checkpoints, gradients) are removed once the comparison is written unless
``keep`` is set. A check interrupted after its release side resumes from there, if its settings (the
batch, the steps, the release side's code: ``spec.json``) are the same; otherwise the release side reruns.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from apro.errors import InputError, RunFailed
from apro.io import file_sha256

#: the check's defaults: release-side optimiser steps (at least, at most: until every image has a detection),
#: their learning rate, the seed
STEPS, MAX_STEPS, LR, SEED = 3, 12, 2e-4, 0
REPO_ROOT = Path(__file__).resolve().parents[2]
RECIPES = REPO_ROOT / "experiments" / "paper" / "original_recipes.yaml"
RESULT = "crosscheck.json"
SUITE = "crosscheck"  # the registry's suite of entries to check (experiments/registry.yaml)
RELEASE_SIDE = Path(__file__).with_name("release_side.py")


class CrosscheckError(InputError):
    """A bad argument of the check: an entry without a release config, a missing venv (names it)."""


def release_configs(recipes: os.PathLike = RECIPES) -> Dict[str, str]:
    """Entry name -> the release config it follows (``original`` of original_recipes.yaml)."""
    import yaml

    data = yaml.safe_load(Path(recipes).read_text())
    return {name: e["original"] for name, e in data["entries"].items()}


def entry_config(name: str, registry: Optional[str] = None) -> Path:
    """The entry's paper config (the registry's ``config``)."""
    from apro.registry import load_registry

    return load_registry(registry).experiments[name].config_path()


def resolve_entries(names: Optional[Sequence[str]], registry: Optional[str] = None) -> List[str]:
    """``names`` (default: the members of the registry's ``crosscheck`` suite), each with a release config."""
    from apro.registry import load_registry

    known = release_configs()
    if not names:
        names = [e.name for e in load_registry(registry).experiments_in(SUITE)]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise CrosscheckError(f"entries {unknown}: the release has no config for them (known: {', '.join(known)})")
    return list(names)


def entry_classes(cfg) -> List[str]:
    meta = cfg.train_dataloader.dataset.get("metainfo")
    if meta and meta.get("classes"):
        return list(meta["classes"])
    from mmdet.datasets import CocoDataset

    return list(CocoDataset.METAINFO["classes"])


def photo_specs(folder: Path, classes: Sequence[str], seed: int) -> List[dict]:
    """The photos of the pipeline check: file, size, boxes (xyxy, original pixels) and the entry's labels."""
    from apro.crosscheck.batch import map_labels, photos

    return [{"name": p["name"], "file": str(folder / f"{p['name']}.png"), "height": int(p["rgb"].shape[0]),
             "width": int(p["rgb"].shape[1]), "boxes": p["boxes"].tolist(),
             "labels": map_labels(p["source_labels"], p["source_names"], classes).tolist()} for p in photos(seed)]


def write_photos(specs: Sequence[dict], seed: int) -> None:
    """The photos at their original size as PNG files (both stacks' LoadImageFromFile read them)."""
    import cv2

    from apro.crosscheck.batch import photos

    for spec, p in zip(specs, photos(seed)):
        Path(spec["file"]).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(spec["file"], p["rgb"][:, :, ::-1])


def batch_digest(batch: dict) -> str:
    """sha256 of the batch's tensors: the release side's results belong to this batch only."""
    import hashlib

    h = hashlib.sha256(batch["inputs"].numpy().tobytes())
    for im in batch["images"]:
        h.update(im["boxes"].numpy().tobytes())
        h.update(im["labels"].numpy().tobytes())
    return h.hexdigest()


def _release_done(scratch: Path, spec: dict) -> bool:
    try:
        old = json.loads((scratch / "spec.json").read_text())
    except (OSError, ValueError):
        return False
    return old == spec and all((scratch / f).is_file() for f in ("release_results.pt", "release.pth", "batch.pt"))


def pipeline_choices(framework: str) -> dict:
    """The random choices both stacks' train pipelines take: scale, flip, crop offset (Mask2Former's LSJ)."""
    if framework == "SOLOv2":  # one of the six multi-scale values, flipped
        return {"train_scale": [1333, 640], "flip": True, "crop_offset": [0, 0]}
    # large-scale jitter at ratio 1.5 of 1024, flipped, a crop 64 px down and 200 px in
    return {"train_scale": [1536, 1536], "flip": True, "crop_offset": [64, 200]}


def _run_release(venv: Path, scratch: Path, spec: dict, log: Path) -> None:
    """The release side in its venv; spec.json is written last, as the mark of a finished release side."""
    from apro.crosscheck.original_env import release_env, venv_python

    spec_file = scratch / "spec.in.json"
    spec_file.write_text(json.dumps(spec, indent=1))
    cmd = [str(venv_python(venv)), str(RELEASE_SIDE), str(spec_file)]
    env = {**os.environ, **release_env(venv)}
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for line in proc.stdout:  # progress lines reach the user as they come
            f.write(line)
            if line.startswith("[release]"):
                print(f"  {line.rstrip()}", file=sys.stderr, flush=True)
        code = proc.wait()
    if code != 0:
        tail = "\n".join(log.read_text().splitlines()[-30:])
        raise RunFailed(f"the release side failed (exit {code}): {' '.join(cmd)}\n{tail}\n(full log: {log})")
    spec_file.replace(scratch / "spec.json")


def crosscheck_entry(name: str, venv: os.PathLike, out: os.PathLike, steps: int = STEPS,
                     max_steps: int = MAX_STEPS, lr: float = LR, seed: int = SEED, threads: int = 1,
                     keep: bool = False) -> dict:
    """Runs the check for one entry; writes and returns ``<out>/<name>/crosscheck.json``."""
    import torch

    from apro.checkpoints import CheckpointError, convert_checkpoint
    from apro.crosscheck import compare, suite_side
    from apro.crosscheck.batch import make_batch
    from apro.crosscheck.original_env import check_venv
    from apro.io import write_json_atomic
    from apro.runs import hardware

    started = time.time()
    record = check_venv(venv)
    release_config = release_configs()[name]
    config = entry_config(name)
    cfg = suite_side.load_config(str(config))
    framework = "SOLOv2" if cfg.model.type == "BoxSOLOv2" else "Mask2Former"
    classes = entry_classes(cfg)
    work = Path(out) / name
    scratch = work / "work"
    torch.set_num_threads(threads)

    batch = make_batch(framework, classes, seed)
    choices = pipeline_choices(framework)
    spec = {"release": str(Path(venv).resolve() / "release"), "config": release_config, "classes": classes,
            "batch": str(scratch / "batch.pt"), "batch_sha256": batch_digest(batch), "seed": seed, "steps": steps,
            "max_steps": max(steps, max_steps), "lr": lr, "threads": threads,
            "checkpoint": str(scratch / "release.pth"),
            "results": str(scratch / "release_results.pt"), "release_side_sha256": file_sha256(RELEASE_SIDE),
            "pipeline": {**choices, "photos": photo_specs(scratch / "photos", classes, seed)}}
    if _release_done(scratch, spec):  # an interrupted check resumes after the release side, same settings only
        print(f"apro crosscheck {name}: the release side's results of these settings exist; reused", file=sys.stderr)
    else:
        if scratch.exists():
            shutil.rmtree(scratch)
        scratch.mkdir(parents=True)
        torch.save(batch, scratch / "batch.pt")
        write_photos(spec["pipeline"]["photos"], seed)
        print(f"apro crosscheck {name}: release side ({release_config}, {steps} steps)", file=sys.stderr, flush=True)
        _run_release(Path(venv), scratch, spec, work / "release.log")
    release = torch.load(scratch / "release_results.pt", map_location="cpu", weights_only=True)

    print(f"apro crosscheck {name}: this suite ({config.name})", file=sys.stderr, flush=True)
    parts: Dict[str, dict] = {}
    try:
        convert_checkpoint(str(config), str(scratch / "release.pth"), str(scratch / "converted.pth"))
        parts["load"] = {"strict": True, "problems": []}
    except CheckpointError as exc:
        parts["load"] = {"strict": False, "problems": [str(exc)]}
    if parts["load"]["strict"]:
        model = suite_side.build_model(cfg, str(scratch / "converted.pth"))
        ours = suite_side.results(cfg, model, batch, spec["pipeline"])
        parts.update(compare.compare_all(release, ours, framework, cfg.model.type,
                                         [im["name"] for im in batch["images"]]))
    result = {"entry": name, "framework": framework, "config": str(config.relative_to(REPO_ROOT)),
              "release_config": release_config, "release_commit": record["commit"],
              "release_versions": release["versions"], "suite_versions": _suite_versions(),
              "steps": release["steps"], "lr": lr, "seed": seed, "pipeline_choices": choices,
              "instances": {im["name"]: int(len(im["labels"])) for im in batch["images"]},
              "input_shape": batch["batch_input_shape"], "parts": parts, "verdict": compare.verdict(parts),
              "problems": compare.problems_of(parts), "seconds": round(time.time() - started, 1),
              "threads": threads, "hardware": hardware()}
    write_json_atomic(work / RESULT, result)
    if not keep:
        shutil.rmtree(scratch)
    print(f"apro crosscheck {name}: {result['verdict']} ({len(result['problems'])} problems, "
          f"{result['seconds']:.0f} s) -> {work / RESULT}", file=sys.stderr, flush=True)
    return result


def _suite_versions() -> dict:
    import mmcv
    import mmdet
    import mmengine
    import numpy
    import torch

    return {"torch": str(torch.__version__), "mmcv": mmcv.__version__, "mmdet": mmdet.__version__,
            "mmengine": mmengine.__version__, "numpy": numpy.__version__, "python": sys.version.split()[0]}
