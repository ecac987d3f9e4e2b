"""A suite's results, read from what its runs left: one row per run (experiment and training seed).

:func:`collect` reads ``results/<suite>/<experiment>/seed<k>/metrics.json`` (``apro evaluate``),
``train/done.json`` and the steps' own records (``<output>.run.json``, :func:`apro.runs.recorded`) and returns one
plain row per run with its status: done, failed (a step's record says so), not finished (a record of a step
that started and has not ended: running, or stopped), unreadable metrics, not run, or not runnable (no config
yet); an experiment with a released checkpoint also gets that checkpoint's numbers and status
(``released_*``), from the suite that evaluates the release. :func:`job_times` gives the wall time, peak memory
and CPU time of every step that recorded itself. Also read here: the ablation groups' results, the affinity
figures' manifest, package versions and config hashes. Nothing here writes.
"""
from __future__ import annotations

import csv
import json
import math
import os
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from apro import layout
from apro import registry as reg
from apro import stats
from apro.errors import InputError
from apro.io import file_sha256
from apro.runs import DONE, FAILED, RUNNING

METRICS = ("AP", "AP50", "AP75")
#: results.csv columns, in order
COLUMNS = ["experiment", "task", "framework", "backbone", "dataset", "supervision", "variant",
           "AP", "AP50", "AP75", "mIoU", "paper_AP", "paper_AP50", "paper_AP75", "paper_mIoU",
           "diff_AP", "diff_AP50", "diff_AP75", "status",
           "released_AP", "released_AP50", "released_AP75", "released_status", "suite", "schedule", "seed",
           "train_wall_s", "eval_wall_s", "config", "iou_type"]

STATUS_DONE = "done"
STATUS_NOT_RUN = "not run"
STATUS_NOT_RUNNABLE = "not runnable (no config yet)"
STATUS_BAD = "unreadable metrics"
STATUS_FAILED = "failed"
STATUS_NOT_FINISHED = "not finished (running, or stopped)"

PACKAGES = ("torch", "mmcv", "mmengine", "mmdet", "numpy", "pandas", "matplotlib", "pycocotools", "snakemake")


class ReportError(InputError):
    """A bad argument or input file of ``apro report`` / ``apro html-report`` (exit code 2)."""


def read_json(path: Path) -> Tuple[Optional[dict], Optional[str]]:
    """(data, None), (None, None) when the file is missing, or (None, why) when it is unreadable."""
    if not path.is_file():
        return None, None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return None, f"{path}: {exc}"
    if not isinstance(data, dict):
        return None, f"{path}: expected a JSON object"
    return data, None


def _num(value: Any) -> Optional[float]:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def read_record(root: Path, output: str) -> Optional[dict]:
    """The record the step writing ``output`` left of itself (``apro.layout.run_record``), or None."""
    data, _ = read_json(root / layout.run_record(output))
    return data if data is not None and data.get("status") in (RUNNING, DONE, FAILED) else None


def _steps(registry: reg.Registry, suite: str, name: str, seed: int) -> List[Tuple[str, str, str]]:
    """(step, output, finished marker) of one run, in order: its training (or, for a suite of released
    checkpoints, the conversion: once per experiment) and its evaluation."""
    if registry.suite(suite).checkpoints == "released":
        first = ("convert", layout.converted_checkpoint(suite, name), layout.converted_checkpoint(suite, name))
    else:
        first = ("train", layout.work_dir(suite, name, seed), layout.done_file(suite, name, seed))
    metrics = layout.metrics_file(suite, name, seed)
    return [first, ("evaluate", metrics, metrics)]


def experiment_status(registry: reg.Registry, suite: str, name: str, root: Path,
                      seed: int = 0) -> Tuple[str, Optional[dict], List[str]]:
    """(status, metrics or None, notes) of one run (experiment, training seed) of one suite, from what its
    steps left in results/."""
    metrics, bad = read_json(root / layout.metrics_file(suite, name, seed))
    if bad:
        return STATUS_BAD, None, [bad]
    if metrics is not None:
        return STATUS_DONE, metrics, []
    for step, output, marker in _steps(registry, suite, name, seed):
        record = read_record(root, output)
        if record is None or (root / marker).is_file():
            continue
        where = layout.run_record(output)
        if record["status"] == FAILED:
            return STATUS_FAILED, None, [f"{step} failed: {record.get('error', 'no error recorded')} ({where})"]
        if record["status"] == RUNNING:
            return STATUS_NOT_FINISHED, None, [f"{step} started {record.get('start', '?')} and has not ended "
                                               f"({where}): running, or stopped"]
    exp = registry.experiments.get(name)
    return (STATUS_NOT_RUNNABLE if exp is not None and exp.config is None else STATUS_NOT_RUN), None, []


def parse_seeds(seeds: Sequence[int]) -> List[int]:
    try:
        return reg.parse_seeds(seeds)
    except reg.RegistryError as exc:
        raise ReportError(f"--seeds: {exc}") from None


def released_status(registry: reg.Registry, released_suite: str, name: str, root: Path,
                    seeds: Sequence[int]) -> Tuple[str, Optional[dict], List[str]]:
    """The status and metrics of a released checkpoint's evaluation: of the first of ``seeds`` that has
    them (the evaluation of a released checkpoint does not depend on the seed), else of the first seed."""
    first = None
    for seed in seeds:
        found = experiment_status(registry, released_suite, name, root, seed)
        if found[0] == STATUS_DONE:
            return found
        first = first or found
    return first


def collect(registry: reg.Registry, suite: str, results_root: os.PathLike = ".",
            seeds: Sequence[int] = (0,)) -> List[Dict[str, Any]]:
    """One row (dict with ``COLUMNS`` and a ``notes`` list) per run of ``suite``: per experiment, in registry
    order, one per training seed of ``seeds`` (in the order given).

    An experiment with a released checkpoint also gets that checkpoint's numbers (``released_*``) from the
    suite that evaluates the release (``checkpoints: released``), beside its own (the same in each of its rows).
    """
    root = Path(results_root)
    seeds = parse_seeds(seeds)
    released_suite = next((s.name for s in registry.suites.values() if s.checkpoints == "released"), None)
    rows = []
    for exp, seed in ((e, k) for e in registry.experiments_in(suite) for k in seeds):
        max_iters = registry.effective_max_iters(suite, exp)
        paper = exp.paper or {}
        status, metrics, notes = experiment_status(registry, suite, exp.name, root, seed)
        metrics = metrics or {}
        row: Dict[str, Any] = {
            "experiment": exp.name, "task": exp.task, "suite": suite, "framework": exp.framework, "backbone": exp.backbone,
            "dataset": registry.effective_dataset(suite, exp).name, "supervision": exp.supervision,
            "variant": exp.variant, "status": status, "notes": notes,
            **{m: _num(metrics.get(m)) for m in METRICS + ("mIoU",)},
            **{f"paper_{m}": _num(paper.get(m)) for m in METRICS + ("mIoU",)},
            **{f"released_{m}": None for m in METRICS}, "released_status": None,
            "schedule": f"{max_iters} iters" if max_iters else exp.schedule,
            "seed": seed, "eval_wall_s": _num(metrics.get("wall_s")), "train_wall_s": None,
            "config": exp.config or "",
            # "bbox" where the val split has no masks (apro evaluate scored the predicted masks' boxes)
            "iou_type": metrics.get("iou_type", "segm" if exp.task == "instance" and metrics else None),
        }
        for m in METRICS:  # reproduced minus paper, where both exist
            both = row[m] is not None and row[f"paper_{m}"] is not None
            row[f"diff_{m}"] = round(row[m] - row[f"paper_{m}"], 3) if both else None
        if exp.released and released_suite is not None:
            status, released, notes = released_status(registry, released_suite, exp.name, root, seeds)
            row["released_status"] = status
            row["notes"] += [f"released checkpoint: {n}" for n in notes]
            for m in METRICS:
                row[f"released_{m}"] = _num((released or {}).get(m))
        done, _ = read_json(root / layout.done_file(suite, exp.name, seed))
        if done is not None:
            row["train_wall_s"] = _num(done.get("wall_s"))
        rows.append(row)
    return rows


def job_times(registry: reg.Registry, suite: str, results_root: os.PathLike = ".",
              seeds: Sequence[int] = (0,), figures: bool = False) -> List[Dict[str, Any]]:
    """Wall time, peak memory, CPU time and status of every step of the suite that recorded itself: the data
    steps of its datasets, per run (experiment and seed of ``seeds``) its training (or the conversion of the
    released checkpoint) and evaluation, named ``<step> <experiment>.seed<k>``; with ``figures``, also
    ``apro visualize``'s."""
    root = Path(results_root)
    seeds = parse_seeds(seeds)
    wanted: List[Tuple[str, str]] = []
    for ds in registry.datasets_of(suite):
        wanted += [(f"make_data {ds.name}", layout.data_dir(ds.name)),
                   (f"validate_data {ds.name}", layout.validated_marker(ds.name)),
                   (f"make_sparse_labels {ds.name}", layout.sparse_labels_dir(ds.name))]
    for exp in registry.experiments_in(suite):
        for seed in seeds:
            for step, output, _ in _steps(registry, suite, exp.name, seed):
                label = f"{step} {exp.name}" if step == "convert" else f"{step} {layout.run_name(exp.name, seed)}"
                if (label, output) not in wanted:
                    wanted.append((label, output))
    if figures:
        wanted.append(("visualize", layout.figures_dir(suite)))
    jobs = []
    for label, output in wanted:
        record = read_record(root, output)
        if record is not None:
            jobs.append({"job": label, "status": record["status"], "wall_s": _num(record.get("wall_s")),
                         "max_rss_mb": _num(record.get("peak_rss_mb")), "cpu_s": _num(record.get("cpu_s")),
                         "source": layout.run_record(output)})
    return jobs


def ablation_results(registry: reg.Registry, root: Path, suites: Sequence[str],
                     seeds: Sequence[int] = (0,)) -> List[dict]:
    """The registry's ablation groups, each row with its AP / AP50 (None: no result; the mean over the runs of
    ``seeds`` that are done, ``n`` of them) and ``source``: the folder of the first of ``suites`` (holding the
    experiment) where a run is done, else the status of its first run there."""
    seeds = parse_seeds(seeds)
    out = []
    for g in registry.ablations:
        rows = []
        for r in g["rows"]:
            name, found, source = r["experiment"], [], STATUS_NOT_RUN
            exp = registry.experiments.get(name)
            for i, suite in enumerate(s for s in suites if exp is not None and s in exp.suites):
                runs = [experiment_status(registry, suite, name, root, seed) for seed in seeds]
                found = [m for status, m, _ in runs if status == STATUS_DONE]
                if found:
                    source = layout.experiment_dir(suite, name)
                    break
                source = runs[0][0] if i == 0 else source
            mean = {m: stats.summarize([_num(f.get(m)) for f in found])["mean"] for m in ("AP", "AP50")}
            rows.append({"experiment": name, "value": str(r["value"]), "AP": mean["AP"], "AP50": mean["AP50"],
                         "n": len(found), "source": source, "known": exp is not None})
        out.append({**g, "rows": rows})
    return out


def data_checks(registry: reg.Registry, suite: str, results_root: os.PathLike = ".") -> List[str]:
    """Per dataset of the suite with a ``validated.json`` (``apro validate-data``) and per split: images,
    annotations, those mmdet drops (by reason), masks."""
    lines = []
    for ds in registry.datasets_of(suite):
        checked, _ = read_json(Path(results_root) / layout.validated_marker(ds.name))
        for split, info in ((checked or {}).get("splits") or {}).items():
            found, dropped = info.get("warnings") or {}, info.get("dropped") or {}
            why = "; ".join(f"{n} {r}" for r, n in dropped.items())
            kept = [f"{w['count']} {r} ({w['effect']})" for r, w in found.items() if r not in dropped]
            lines.append(f"{ds.name} {split}: {info.get('images')} images, {info.get('annotations')} annotations, "
                         f"{sum(dropped.values())} dropped{f' ({why})' if why else ''}"
                         f"{'; ' + '; '.join(kept) if kept else ''}; masks on {info.get('masks')} of them")
    return lines


def figure_list(out_dir: Path, suite: str) -> Tuple[List[dict], Optional[str]]:
    """The figures of ``figures.json`` (``apro visualize``) whose PNG exists, and why there are none."""
    folder = out_dir / Path(layout.figures_dir(suite)).name
    manifest, bad = read_json(folder / "figures.json")
    figs = [f for f in (manifest or {}).get("figures", []) if (folder / f["file"]).is_file()]
    for i, f in enumerate(figs):  # a table entry without its header and rows: those of its CSV
        if f.get("kind") == "table" and not (isinstance(f.get("header"), list) and isinstance(f.get("rows"), list)):
            table = read_csv_table(folder / f["file"]) or [[]]
            figs[i] = {**f, "header": table[0], "rows": table[1:]}
    return figs, bad


def read_csv_table(path: Path) -> Optional[List[List[str]]]:
    if not path.is_file():
        return None
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


def package_versions() -> Dict[str, str]:
    from importlib import metadata

    out = {"python": sys.version.split()[0]}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def config_hashes(registry: reg.Registry, names: Sequence[str]) -> List[List[str]]:
    """[config file, first 16 hex of its sha256] of every file the configs of ``names`` read."""
    rows, seen = [], set()
    for name in names:
        exp = registry.experiments.get(name)
        if exp is None or exp.config is None:
            continue
        for f in reg.config_files(exp.config_path(registry.root)):
            if f in seen:
                continue
            seen.add(f)
            try:
                shown = str(f.relative_to(registry.root))
            except ValueError:
                shown = str(f)
            rows.append([shown, file_sha256(f)[:16]])
    return rows
