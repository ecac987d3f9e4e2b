"""A suite's report pages: results collected once, one page model, three renderings.

    apro report --suite demo          # results.csv, summary.md, summary.html of reports/demo/
    apro html-report --suite demo     # reports/demo/index.html with the figures

:func:`collect` reads what the jobs left for every run (experiment and training seed) of the suite
in the registry (``results/<suite>/<experiment>/seed<k>/metrics.json`` from ``apro evaluate``,
``train/done.json``, the jobs' logs) and returns one plain row per run with its status: done, failed
(a log without its output), unreadable metrics, not run, or not runnable (no config yet); an
experiment with a released checkpoint also gets that checkpoint's numbers and status
(``released_*``), from the suite that evaluates the release. :func:`by_experiment` gathers the runs
of each experiment (mean, sample std and n over the seeds, :mod:`apro.stats`). From those the pages
are built as :mod:`apro.report_render` models, and rendered, each file through a temporary file and
``os.replace``:

* :func:`write_summary`: ``reports/<suite>/results.csv`` (one row per run, the columns
  ``COLUMNS``: mask AP in percent, mIoU of the semantic rows, the paper's numbers and reproduced
  minus paper, status, released-checkpoint columns, schedule, seed, wall times, config),
  ``summary.md`` and ``summary.html``: the APro gain (mask AP of box+gp+lp minus box, per
  framework/backbone/dataset; mIoU of <labels>+gp+lp minus <labels> for the semantic rows), each
  the paired difference over the seeds with its 95% interval, the results table (one row per
  experiment: mean ± std (n); with the paper's numbers, the difference and the verdict of
  :data:`apro.stats.VERDICT_RULE`), and the wall time and peak memory of every job (Snakemake's
  benchmark files, else the wall times that ``apro train`` and ``apro evaluate`` record); and the
  model-zoo metafiles, ``reports/<suite>/metafiles/<entry>/metafile.yml`` (:mod:`apro.metafiles`);
* :func:`write_html_report`: ``reports/<suite>/index.html``, the same results section (gains,
  table, notes) and also: the ablation groups of ``experiments/ablation/ablation.yaml`` (a table
  and a PNG plot each, results looked up in the suites run with the same overrides), the affinity
  figures of ``apro visualize`` (``reports/<suite>/figures/figures.json``), the ops benchmark
  (``reports/benchmarks/ops.csv``, copied beside) and provenance (package versions, seeds, sha256
  of the config files, wall time of every job). Every link is relative to ``reports/<suite>/``
  and every image lies under it, so the folder can be moved or zipped.

Works on whatever results exist (a missing part is said to be missing, never an error); needs
pandas (and matplotlib for the ablation plots), not torch.
"""
from __future__ import annotations

import csv
import datetime as _dt
import json
import math
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from apro import layout
from apro import registry as reg
from apro import stats
from apro.errors import InputError
from apro.io import atomic_file, file_sha256, write_png, write_text_atomic
from apro.report_render import Block, Bullets, Figure, Page, Section, Table, Text, html, markdown

METRICS = ("AP", "AP50", "AP75")
#: results.csv columns, in order
COLUMNS = ["experiment", "framework", "backbone", "dataset", "supervision", "variant",
           "AP", "AP50", "AP75", "mIoU", "paper_AP", "paper_AP50", "paper_AP75", "paper_mIoU",
           "diff_AP", "diff_AP50", "diff_AP75", "status",
           "released_AP", "released_AP50", "released_AP75", "released_status", "suite", "schedule", "seed",
           "train_wall_s", "eval_wall_s", "config"]
#: the supervision of the semantic experiments, which report mIoU instead of mask AP
SEMANTIC_SUPERVISION = ("point", "scribble", "full")

STATUS_DONE = "done"
STATUS_NOT_RUN = "not run"
STATUS_NOT_RUNNABLE = "not runnable (no config yet)"
STATUS_BAD = "unreadable metrics"
STATUS_FAILED = "failed"

ABLATION_SPEC = reg.REPO_ROOT / "experiments" / "ablation" / "ablation.yaml"
PACKAGES = ("torch", "mmcv", "mmengine", "mmdet", "numpy", "pandas", "matplotlib", "pycocotools", "snakemake")

RegistryArg = Union[None, str, os.PathLike, reg.Registry]


class ReportError(InputError):
    """A bad argument or input file of ``apro report`` / ``apro html-report`` (exit code 2)."""


@dataclass(frozen=True)
class Written:
    """What one :func:`write_summary` / :func:`write_html_report` call wrote."""
    suite: str
    done: int  # experiments with results
    total: int
    paths: Dict[str, Path]

    def __str__(self) -> str:
        return (f"suite {self.suite}: {self.done}/{self.total} experiments with results -> "
                + ", ".join(str(p) for p in self.paths.values()))


# ---------------------------------------------------------------- reading what the jobs left

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


def read_benchmark(path: Path) -> Optional[Dict[str, Optional[float]]]:
    """The last row of a Snakemake benchmark TSV: wall seconds, max RSS (MB), CPU seconds; None if absent."""
    if not path.is_file():
        return None
    try:
        lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
        header, row = lines[0].split("\t"), lines[-1].split("\t")
        values = dict(zip(header, row))
        out: Dict[str, Optional[float]] = {"wall_s": float(values["s"])}
    except (OSError, IndexError, KeyError, ValueError):
        return None
    for key, name in (("max_rss", "max_rss_mb"), ("cpu_time", "cpu_s")):
        try:
            out[name] = float(values[key])
        except (KeyError, ValueError):
            out[name] = None
    return out


def _num(value: Any) -> Optional[float]:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def experiment_status(registry: reg.Registry, suite: str, name: str, root: Path,
                      seed: int = 0) -> Tuple[str, Optional[dict], List[str]]:
    """(status, metrics or None, notes) of one run (experiment, training seed) of one suite, from what its
    jobs left in results/."""
    metrics_path = layout.metrics_file(suite, name, seed)
    metrics, bad = read_json(root / metrics_path)
    if bad:
        return STATUS_BAD, None, [bad]
    if metrics is not None:
        return STATUS_DONE, metrics, []
    # a job that wrote its log but not its output stopped with an error (or runs now); a released
    # checkpoint is converted once per experiment, trainings and evaluations run once per seed
    run = layout.run_name(name, seed)
    first = ("convert", layout.log_file("convert", suite, name), layout.converted_checkpoint(suite, name)) \
        if registry.suite(suite).checkpoints == "released" \
        else ("train", layout.log_file("train", suite, run), layout.done_file(suite, name, seed))
    for stage, log, marker in (first, ("evaluate", layout.log_file("evaluate", suite, run), metrics_path)):
        if (root / log).is_file() and not (root / marker).is_file():
            return STATUS_FAILED, None, [f"{stage} log {log} without {marker}: failed (or still running)"]
    exp = registry.experiments.get(name)
    return (STATUS_NOT_RUNNABLE if exp is not None and exp.config is None else STATUS_NOT_RUN), None, []


def _seeds(seeds: Sequence[int]) -> List[int]:
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
    seeds = _seeds(seeds)
    released_suite = next((s.name for s in registry.suites.values() if s.checkpoints == "released"), None)
    rows = []
    for exp, seed in ((e, k) for e in registry.experiments_in(suite) for k in seeds):
        max_iters = registry.effective_max_iters(suite, exp)
        paper = exp.paper or {}
        status, metrics, notes = experiment_status(registry, suite, exp.name, root, seed)
        metrics = metrics or {}
        row: Dict[str, Any] = {
            "experiment": exp.name, "suite": suite, "framework": exp.framework, "backbone": exp.backbone,
            "dataset": registry.effective_dataset(suite, exp).name, "supervision": exp.supervision,
            "variant": exp.variant, "status": status, "notes": notes,
            **{m: _num(metrics.get(m)) for m in METRICS + ("mIoU",)},
            **{f"paper_{m}": _num(paper.get(m)) for m in METRICS + ("mIoU",)},
            **{f"released_{m}": None for m in METRICS}, "released_status": None,
            "schedule": f"{max_iters} iters" if max_iters else exp.schedule,
            "seed": seed, "eval_wall_s": _num(metrics.get("wall_s")), "train_wall_s": None,
            "config": exp.config or "",
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
              other_jobs: bool = False, seeds: Sequence[int] = (0,)) -> List[Dict[str, Any]]:
    """Wall time, peak memory and CPU time of every job of the suite that has run (a training or evaluation:
    one per run, named ``<stage> <experiment>.seed<k>``, for the runs of ``seeds``).

    From Snakemake's benchmark files; for training and evaluation run by hand (no benchmark file), the
    wall time that done.json / metrics.json record. ``other_jobs``: also the ops jobs and the suite's
    figure and report jobs.
    """
    root = Path(results_root)
    seeds = _seeds(seeds)
    released = registry.suite(suite).checkpoints == "released"
    jobs = []

    def bench(job: str, path: str) -> bool:
        b = read_benchmark(root / path)
        if b:
            jobs.append({"job": job, "source": "benchmark", **b})
        return b is not None

    for ds in registry.datasets_of(suite):
        # make_sparse_labels: the point / scribble labels of a semantic dataset (workflow/rules/semantic.smk)
        for stage in ("make_data", "validate_data", "make_sparse_labels"):
            bench(f"{stage} {ds.name}", layout.benchmark_file(stage, "data", ds.name))
    for exp in registry.experiments_in(suite):
        if released:  # the released checkpoint is converted once per experiment
            bench(f"convert {exp.name}", layout.benchmark_file("convert", suite, exp.name))
        for seed in seeds:
            run = layout.run_name(exp.name, seed)
            for stage, record in (("train", layout.done_file(suite, exp.name, seed)),
                                  ("evaluate", layout.metrics_file(suite, exp.name, seed))):
                if bench(f"{stage} {run}", layout.benchmark_file(stage, suite, run)):
                    continue
                data, _ = read_json(root / record)
                wall = _num(data.get("wall_s")) if data else None
                if wall is not None:
                    jobs.append({"job": f"{stage} {run}", "source": Path(record).name, "wall_s": wall,
                                 "max_rss_mb": None, "cpu_s": None})
    if other_jobs:
        for group, name in (("ops", "build_ops"), ("ops", "benchmark_ops"), (suite, "visualize"),
                            (suite, "report"), (suite, "html_report")):
            bench(name, layout.job_benchmark(group, name))
    return jobs


def load_ablation_spec(path: os.PathLike = ABLATION_SPEC) -> List[dict]:
    """The ablation groups: ``[{name, setting, rows: [{experiment, value}]}]``; [] without the file."""
    import yaml

    p = Path(path)
    if not p.is_file():
        return []
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        groups = data["groups"]
        for g in groups:
            if not {"name", "setting", "rows"} <= set(g):
                raise KeyError("each group needs name, setting and rows")
            for r in g["rows"]:
                if not {"experiment", "value"} <= set(r):
                    raise KeyError(f"group {g['name']!r}: each row needs experiment and value")
    except (yaml.YAMLError, KeyError, TypeError) as exc:
        raise ReportError(f"{p}: expected groups: [{{name, setting, rows: [{{experiment, value}}]}}] "
                          f"({exc})") from None
    return groups


def ablation_results(registry: reg.Registry, groups: List[dict], root: Path, suites: Sequence[str],
                     seeds: Sequence[int] = (0,)) -> List[dict]:
    """Each group with its rows' AP / AP50 (None: no result; the mean over the runs of ``seeds`` that are
    done, ``n`` of them) and ``source``: the folder of the first of ``suites`` (holding the experiment) where
    a run is done, else the status of its first run there."""
    seeds = _seeds(seeds)
    out = []
    for g in groups:
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


def figure_blocks(figures: List[dict], folder: str) -> List[Block]:
    """The page blocks of the entries of figures.json (``folder``: theirs, relative to the page): a figure per
    PNG; a ``kind: table`` entry (the photo's IoU table) as a table, its caption and a link to its CSV."""
    blocks: List[Block] = []
    for f in figures:
        where = f"{folder}/{f['file']}"
        if f.get("kind") == "table":
            blocks.append(Table([str(h) for h in f["header"]], [[str(c) for c in r] for r in f["rows"]]))
            blocks.append(Text(f"{f.get('caption', '')} Table: [{f['file']}]({where})."))
        else:
            blocks.append(Figure(where, f"{f['kind']} figure of image {f.get('image_id', '')}", f["caption"]))
    return blocks


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


# ---------------------------------------------------------------- derived numbers

#: the columns of a row that describe its experiment (the same in every run of it)
EXPERIMENT_FIELDS = ("experiment", "suite", "framework", "backbone", "dataset", "supervision", "variant",
                     "schedule", "config", *(f"paper_{m}" for m in METRICS + ("mIoU",)),
                     *(f"released_{m}" for m in METRICS), "released_status")


def has_miou(rows: List[Dict[str, Any]]) -> bool:
    """Whether any row is a semantic experiment (point / scribble / full supervision), which reports mIoU."""
    return any(r["supervision"] in SEMANTIC_SUPERVISION for r in rows)


def run_status(runs: List[Dict[str, Any]]) -> str:
    """The status of an experiment's runs: one status when all agree, else each with its seeds
    (``"done (seeds 0, 1); failed (seed 2)"``)."""
    by_status: Dict[str, List[str]] = {}
    for r in runs:
        by_status.setdefault(r["status"], []).append(str(r["seed"]))
    if len(by_status) == 1:
        return next(iter(by_status))
    return "; ".join(f"{st} (seed{'s' if len(ks) > 1 else ''} {', '.join(ks)})" for st, ks in by_status.items())


def by_experiment(rows: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The runs of :func:`collect` (one row per experiment and seed) gathered per experiment, in order.

    Each item: the experiment's fields (``EXPERIMENT_FIELDS``), ``runs`` (its rows), ``values``
    (per metric ``{seed: value or None}``), ``stats`` (per metric :func:`apro.stats.summarize` over the
    seeds), ``status`` (:func:`run_status`), ``done`` (whether any run is done) and ``notes``.
    """
    out: Dict[str, Dict[str, Any]] = {}
    for r in rows:
        e = out.setdefault(r["experiment"], {**{k: r[k] for k in EXPERIMENT_FIELDS}, "runs": [], "notes": []})
        e["runs"].append(r)
        e["notes"] += [f"seed {r['seed']}: {n}" for n in r["notes"]]
    for e in out.values():
        e["values"] = {m: {r["seed"]: r[m] for r in e["runs"]} for m in METRICS + ("mIoU",)}
        e["stats"] = {m: stats.summarize(list(v.values())) for m, v in e["values"].items()}
        e["status"] = run_status(e["runs"])
        e["done"] = any(r["status"] == STATUS_DONE for r in e["runs"])
    return list(out.values())


def _pair(treated: Dict[str, Any], base: Dict[str, Any], metric: str) -> Optional[Dict[str, Any]]:
    """:func:`apro.stats.paired_difference` of one metric over the seeds, with the means of both sides over
    the paired seeds (``treated_mean``, ``base_mean``); None without a seed where both have a value."""
    d = stats.paired_difference(treated["values"][metric], base["values"][metric])
    if not d["n"]:
        return None
    for side, e in (("treated", treated), ("base", base)):
        d[f"{side}_mean"] = sum(e["values"][metric][k] for k in d["seeds"]) / d["n"]
    return d


def apro_gains(experiments: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Per (framework, backbone, dataset) group holding a box and a box+gp+lp experiment
    (:func:`by_experiment` items): the gain in mask AP, paired by seed.

    Each item: group, ``box`` / ``apro`` experiments and ``gain`` (per metric of AP/AP50/AP75 the paired
    difference, :func:`_pair`), None when no seed has an AP of both.
    """
    groups: Dict[Tuple[str, str, str], Dict[str, Dict[str, Any]]] = {}
    for e in experiments:
        if e["supervision"] == "box" and e["variant"] in (reg.BASELINE_VARIANT, reg.APRO_VARIANT):
            groups.setdefault((e["framework"], e["backbone"], e["dataset"]), {}).setdefault(e["variant"], e)
    gains = []
    for (fw, bb, ds), by_variant in groups.items():
        base, apro = by_variant.get(reg.BASELINE_VARIANT), by_variant.get(reg.APRO_VARIANT)
        if base is None or apro is None:
            continue
        gain = None
        if _pair(apro, base, "AP") is not None:
            gain = {m: _pair(apro, base, m) for m in METRICS}
        gains.append({"framework": fw, "backbone": bb, "dataset": ds, "box": base, "apro": apro, "gain": gain})
    return gains


def semantic_gains(experiments: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Per (framework, backbone, dataset, supervision) with a ``<sup>`` and a ``<sup>+gp+lp`` experiment: the
    mIoU gain paired by seed (:func:`_pair`; None without a seed where both have an mIoU), and ``full``: the
    dense-label experiment with a result, if any."""
    by_key: Dict[Tuple[str, str, str, str], Dict[str, Dict[str, Any]]] = {}
    for e in experiments:
        if e["supervision"] in ("point", "scribble"):
            by_key.setdefault((e["framework"], e["backbone"], e["dataset"], e["supervision"]), {}) \
                .setdefault(e["variant"], e)
    out = []
    for (fw, bb, ds, sup), variants in by_key.items():
        base, apro = variants.get(sup), variants.get(f"{sup}+gp+lp")
        if base is None or apro is None:
            continue
        full = next((e for e in experiments if e["supervision"] == "full" and e["stats"]["mIoU"]["n"]
                     and (e["framework"], e["backbone"], e["dataset"]) == (fw, bb, ds)), None)
        out.append({"framework": fw, "backbone": bb, "dataset": ds, "supervision": sup, "base": base,
                    "apro": apro, "gain": _pair(apro, base, "mIoU"), "full": full})
    return out


def verdict_of(e: Dict[str, Any]) -> str:
    """:func:`apro.stats.verdict` of an experiment's mask AP against the paper's ("" without a paper AP)."""
    if e["paper_AP"] is None:
        return ""
    return stats.verdict(e["paper_AP"], list(e["values"]["AP"].values()))


# ---------------------------------------------------------------- text of the pages

def _fmt(value: Optional[float], digits: int = 1) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _fmt_gain(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value:+.1f}"


def _fmt_time(seconds: Optional[float]) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f} s"
    return str(_dt.timedelta(seconds=int(round(seconds))))


def _not_available(what: str, sides: Sequence[Dict[str, Any]], metric: str) -> str:
    missing = [e["experiment"] for e in sides if not e["stats"][metric]["n"]]
    why = f"{', '.join(missing)} not run" if missing else "no seed where both have run"
    return f"{what}: not available yet ({why})."


def gain_lines(experiments: List[Dict[str, Any]]) -> List[str]:
    """The APro gain in mask AP of every box / box+gp+lp pair (paired by seed, with its 95% interval), and
    the fully supervised upper bound."""
    lines = []
    for g in apro_gains(experiments):
        what = f"{g['framework']} {g['backbone']} on {g['dataset']}"
        b, a = g["box"], g["apro"]
        if g["gain"] is None:
            lines.append(_not_available(what, (b, a), "AP"))
            continue
        ap = g["gain"]["AP"]
        lines.append(
            f"{what}: `{reg.APRO_VARIANT}` ({a['experiment']}) minus `{reg.BASELINE_VARIANT}` "
            f"({b['experiment']}), paired by seed: **{stats.format_gain(ap)} mask AP** "
            f"({_fmt(ap['base_mean'])} -> {_fmt(ap['treated_mean'])}"
            f"{'' if ap['n'] == 1 else ', means'}); AP50 {_fmt_gain((g['gain']['AP50'] or {}).get('mean'))}, "
            f"AP75 {_fmt_gain((g['gain']['AP75'] or {}).get('mean'))}.")
        lines += [f"{what}: fully supervised upper bound ({e['experiment']}): "
                  f"{stats.format_mean_std(e['stats']['AP'])} mask AP."
                  for e in experiments if e["supervision"] == "mask" and e["stats"]["AP"]["n"]
                  and (e["framework"], e["backbone"], e["dataset"]) == (g["framework"], g["backbone"], g["dataset"])]
    return lines


def semantic_gain_lines(experiments: List[Dict[str, Any]]) -> List[str]:
    """The APro gain in mIoU of every <labels> / <labels>+gp+lp pair (paired by seed, with its 95% interval),
    beside the dense labels' mIoU."""
    lines = []
    for g in semantic_gains(experiments):
        what = f"{g['framework']} {g['backbone']} on {g['dataset']}, {g['supervision']} labels"
        b, a, d = g["base"], g["apro"], g["gain"]
        if d is None:
            lines.append(_not_available(what, (b, a), "mIoU"))
            continue
        full = (f"; dense labels ({g['full']['experiment']}): {stats.format_mean_std(g['full']['stats']['mIoU'])}"
                if g["full"] else "")
        lines.append(f"{what}: `{a['variant']}` ({a['experiment']}) minus partial cross-entropy `{b['variant']}` "
                     f"({b['experiment']}), paired by seed: **{stats.format_gain(d)} mIoU** ({_fmt(d['base_mean'])} "
                     f"-> {_fmt(d['treated_mean'])}{'' if d['n'] == 1 else ', means'}){full}.")
    return lines


def _seed_list(rows: List[Dict[str, Any]]) -> str:
    seeds = list(dict.fromkeys(str(r["seed"]) for r in rows))
    return f"seed{'s' if len(seeds) > 1 else ''} {', '.join(seeds)}"


def _intro(registry: reg.Registry, suite: str, rows: List[Dict[str, Any]], command: str, source: str,
           now: _dt.datetime) -> List[Block]:
    s = registry.suite(suite)
    out: List[Block] = [Text(s.description)]
    if s.overrides:
        out.append(Text("Suite overrides: " + ", ".join(f"{k} = `{v}`" for k, v in s.overrides.items())
                        + " (for every experiment of the suite)."))
    if any(r["status"] == STATUS_NOT_RUNNABLE for r in rows):
        how = f"`snakemake -n --config suite={suite}` lists what the suite still lacks"
    else:
        how = f"run or update them with `snakemake --cores 2 --config suite={suite}`"
    exps = by_experiment(rows)
    n_runs = sum(r["status"] == STATUS_DONE for r in rows)
    out.append(Text(f"{sum(e['done'] for e in exps)} of {len(exps)} experiments have results ({n_runs} of "
                    f"{len(rows)} runs; training {_seed_list(rows)}). Written by `{command}` on "
                    f"{now.strftime('%Y-%m-%d %H:%M UTC')} from `{source}`; {how}."))
    return out


def result_sections(suite: str, rows: List[Dict[str, Any]]) -> List[Section]:
    """The gains, the results table (one row per experiment: mean ± std (n) over its seeds, with its status;
    with the paper's numbers, the difference and the verdict) and its notes."""
    exps = by_experiment(rows)
    gain = Section("APro gain")
    if not apro_gains(exps):
        gain.blocks.append(Text(f"Not available: suite {suite} has no pair of `{reg.BASELINE_VARIANT}` and "
                                f"`{reg.APRO_VARIANT}` experiments with the same framework, backbone and dataset."))
    lines = gain_lines(exps)
    gain.blocks.append(Text(lines[0]) if len(lines) == 1 else Bullets(lines))
    sections = [gain]
    sem_lines = semantic_gain_lines(exps)
    if sem_lines:
        sections.append(Section("APro gain, semantic segmentation", [Bullets(sem_lines)]))
    if any(g["gain"] for g in apro_gains(exps) + semantic_gains(exps)):
        gain.blocks.append(Text(
            f"Each gain is the paired difference over the training seeds both variants ran with: the mean, its "
            f"{stats.CONFIDENCE:.0%} interval (t distribution) and n; \"not distinguishable from 0\" where the "
            "interval covers 0, \"single run\" with one seed (no interval)."))

    has_paper = any(e["paper_AP"] is not None for e in exps)
    has_released = any(e["released_status"] is not None for e in exps)
    miou = has_miou(rows)  # the mIoU column only where the suite holds semantic experiments
    header = ["experiment", "framework", "backbone", "dataset", "supervision", "variant", "schedule",
              *METRICS] + (["mIoU"] if miou else []) + \
        ([f"paper {m}" for m in METRICS] + ["AP - paper", "verdict"] if has_paper else []) + ["status"] + \
        ([f"released {m}" for m in METRICS] + ["released status"] if has_released else [])
    table = []
    for e in exps:
        st = e["stats"]
        cells = [e["experiment"], e["framework"], e["backbone"], e["dataset"], e["supervision"], e["variant"],
                 e["schedule"], stats.format_mean_std(st["AP"])] + [_fmt(st[m]["mean"]) for m in METRICS[1:]] + \
            ([stats.format_mean_std(st["mIoU"])] if miou else [])
        if has_paper:
            diff = None if e["paper_AP"] is None or st["AP"]["mean"] is None else st["AP"]["mean"] - e["paper_AP"]
            cells += [_fmt(e[f"paper_{m}"]) for m in METRICS] + ["" if diff is None else f"{diff:+.1f}",
                                                                  verdict_of(e)]
        cells.append(e["status"] if e["status"] == STATUS_DONE else f"**{e['status']}**")
        if has_released:
            cells += [_fmt(e[f"released_{m}"]) for m in METRICS] + [e["released_status"] or ""]
        table.append(cells)
    note = (f"AP: COCO mask AP (percent) on the validation split, computed by pycocotools: the mean ± sample "
            f"standard deviation over the training {_seed_list(rows)} (n: the runs with a result; \"single run\": "
            "one); AP50, AP75: their means; empty where the experiment has not run. Every run is a row of "
            "results.csv."
            + (" AP - paper: the mean minus the paper's AP." if has_paper else "")
            + (" released AP: the APro release's own checkpoint of the entry, converted for this suite and "
               "evaluated the same way (`snakemake --config suite=released`)." if has_released else "")
            + (" mIoU: mean IoU (percent) of the semantic experiments on the dense val labels, mmseg's "
               "IoUMetric, mean ± std over the seeds; instance rows leave it empty, semantic rows leave AP "
               "empty." if miou else ""))
    blocks: List[Block] = [Table(header, table), Text(note)]
    if has_paper:
        blocks.append(Text(f"Verdict: {stats.VERDICT_RULE}."))
    blocks.append(Bullets([f"{e['experiment']}, {n}" for e in exps for n in e["notes"]]))
    sections.append(Section("Mask AP and mIoU per experiment" if miou else "Mask AP per experiment", blocks))
    return sections


def job_blocks(jobs: List[Dict[str, Any]]) -> List[Block]:
    if not jobs:
        return [Text(f"No job has run yet (no benchmark files under `{layout.benchmarks_dir()}/`).", missing=True)]
    table = Table(["job", "wall time", "max RSS (MB)", "CPU time", "source"],
                  [[j["job"], _fmt_time(j["wall_s"]), _fmt(j["max_rss_mb"], 0), _fmt_time(j["cpu_s"]), j["source"]]
                   for j in jobs])
    total = sum(j["wall_s"] for j in jobs)
    return [table, Text(f"Sum over {len(jobs)} jobs: {_fmt_time(total)}. Source `benchmark`: Snakemake's "
                        f"benchmark file of the job (`{layout.benchmarks_dir()}/...`); jobs run side by side with "
                        "`--cores 2`, so the elapsed time of a whole run is shorter than the sum.")]


def summary_page(registry: reg.Registry, suite: str, rows: List[Dict[str, Any]], jobs: List[Dict[str, Any]],
                 source: str, now: Optional[_dt.datetime] = None) -> Page:
    """summary.md / summary.html: the intro, the result sections and the wall time per job."""
    now = now or _dt.datetime.now(_dt.timezone.utc)
    return Page(f"APro results: suite {suite}",
                _intro(registry, suite, rows, "apro report", source, now) + result_sections(suite, rows)
                + [Section("Wall time per job", job_blocks(jobs))])


def index_page(registry: reg.Registry, suite: str, rows: List[Dict[str, Any]], jobs: List[Dict[str, Any]],
               source: str, *, links: Sequence[str], ablation: Optional[List[dict]], ablation_suites: Sequence[str],
               plots: Sequence[Optional[str]], figures: List[dict], figures_why: Optional[str],
               ops: Optional[List[List[str]]], versions: Dict[str, str], hashes: List[List[str]],
               now: Optional[_dt.datetime] = None) -> Page:
    """index.html: the intro and result sections of the summary (under Results), and the ablation, affinity,
    ops benchmark and provenance sections. ``ablation`` None: no spec; ``plots``: per ablation group, the
    PNG beside the page or None; ``links``: the other report files beside the page."""
    now = now or _dt.datetime.now(_dt.timezone.utc)
    results = Section("Results", list(result_sections(suite, rows)), anchor="results")
    if links:
        results.blocks.append(Text("Also: " + ", ".join(f"[{n}]({n})" for n in links) + "."))

    abl = Section("Ablation", anchor="ablation")
    groups = ablation or []
    if ablation is None:
        abl.blocks.append(Text(f"No ablation spec ({ABLATION_SPEC}).", missing=True))
    n_done = sum(r["AP"] is not None for g in groups for r in g["rows"])
    abl.blocks.append(Text(f"{n_done} of {sum(len(g['rows']) for g in groups)} ablation settings have results "
                           f"(looked for in the suites {', '.join(ablation_suites)}). Run the rest with "
                           "`snakemake --cores 2 --config suite=ablation`."))
    for g, png in zip(groups, plots):
        sub = Section(g["name"], [Text(g["description"])] if g.get("description") else [])
        sub.blocks.append(Table([g["setting"], "experiment", "AP", "AP50", "seeds", "result from"],
                                [[r["value"], r["experiment"], _fmt(r["AP"]), _fmt(r["AP50"]), str(r["n"]),
                                  r["source"]] for r in g["rows"]]))
        if png:
            sub.blocks.append(Figure(png, f"AP against {g['setting']}", f"Mask AP against {g['setting']}."))
        abl.blocks.append(sub)
    table_name = Path(layout.ablation_table(suite)).name
    abl.blocks.append(Text(f"AP, AP50: means over the seeds that have run (seeds: how many). "
                           f"Table: [{table_name}]({table_name})."))

    aff = Section("Affinities", anchor="affinity")
    if not figures:
        aff.blocks.append(Text(f"No affinity figures yet ({figures_why or 'run apro visualize'}).", missing=True))
    aff.blocks += figure_blocks(figures, Path(layout.figures_dir(suite)).name)

    bench = Section("Ops benchmark", anchor="benchmark")
    copy = Path(layout.ops_table()).name
    if ops is None:
        bench.blocks.append(Text(f"No ops benchmark ({layout.ops_table()}): run "
                                 f"`snakemake --cores 2 {layout.ops_table()}`.", missing=True))
    else:
        bench.blocks += ([Table(ops[0], ops[1:])] if ops else []) + \
            [Text(f"From `{layout.ops_table()}` (copy: [{copy}]({copy})).")]

    seeds = ", ".join(dict.fromkeys(str(r["seed"]) for r in rows if r["status"] == STATUS_DONE)) \
        or "none evaluated yet"
    asked = ", ".join(dict.fromkeys(str(r["seed"]) for r in rows))
    prov = Section("Provenance", [Table(["package", "version"], [[k, v] for k, v in versions.items()]),
                                  Text(f"Training seeds of the report: {asked}; of the evaluated runs: {seeds}."),
                                  Table(["config file", "sha256 (first 16 hex)"], hashes)] + job_blocks(jobs),
                   anchor="provenance")
    return Page(f"APro report: suite {suite}",
                _intro(registry, suite, rows, "apro html-report", source, now) + [results, abl, aff, bench, prov])


# ---------------------------------------------------------------- writing the files

def _registry(registry: RegistryArg) -> reg.Registry:
    if isinstance(registry, reg.Registry):
        return registry
    try:
        return reg.load_registry(registry)
    except reg.RegistryError as exc:
        raise ReportError(str(exc)) from None


def _prepare(registry: RegistryArg, suite: str, results_root: os.PathLike,
             out_dir: Optional[os.PathLike]) -> Tuple[reg.Registry, Path, Path]:
    """The registry, results root and output folder of one run, checked (ReportError names the bad one)."""
    registry = _registry(registry)
    try:
        registry.suite(suite)
    except reg.RegistryError as exc:
        raise ReportError(f"--suite {suite}: {exc}") from None
    root = Path(results_root)
    if not root.is_dir():
        raise ReportError(f"--results-root {root}: expected an existing folder (the one holding "
                          f"{layout.RESULTS}/)")
    out = Path(out_dir) if out_dir is not None else root / layout.report_dir(suite)
    if out.exists() and not out.is_dir():
        raise ReportError(f"--out {out}: expected a folder for the report files, found a file")
    return registry, root, out


def _source(root: Path, suite: str) -> str:
    return f"{root / layout.suite_results_dir(suite)}/"


def _csv_text(header: List[str], rows: List[List[Any]]) -> str:
    import pandas as pd

    return pd.DataFrame(rows, columns=header).to_csv(index=False, lineterminator="\n")


def _plot_group(group: dict, path: Path) -> bool:
    """AP against the setting (bars; grey: not run) as a PNG; False (and no file) when no row has a result."""
    if not any(r["AP"] is not None for r in group["rows"]):
        path.unlink(missing_ok=True)  # never show a plot of earlier results
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    labels = [r["value"] for r in group["rows"]]
    ax.bar(range(len(labels)), [r["AP"] if r["AP"] is not None else 0.0 for r in group["rows"]],
           color=["#3b528b" if r["AP"] is not None else "#dddddd" for r in group["rows"]])
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=20, ha="right")
    ax.set_xlabel(group["setting"])
    ax.set_ylabel("mask AP (%)")
    ax.set_title(f"{group['name']} (grey: not run)", fontsize=10)
    for i, r in enumerate(group["rows"]):
        if r["AP"] is not None:
            ax.text(i, r["AP"], f"{r['AP']:.1f}", ha="center", va="bottom", fontsize=8)
    with atomic_file(path, ".png") as tmp:
        write_png(tmp, fig, dpi=100)
    plt.close(fig)
    return True


def _written(suite: str, rows: List[Dict[str, Any]], paths: Dict[str, Path]) -> Written:
    exps = by_experiment(rows)
    return Written(suite, sum(e["done"] for e in exps), len(exps), paths)


def write_summary(suite: str, registry_path: RegistryArg = None, results_root: os.PathLike = ".",
                  out_dir: Optional[os.PathLike] = None, seeds: Sequence[int] = (0,)) -> Written:
    """``apro report``: results.csv (one row per run), summary.md, summary.html and the model-zoo metafiles
    (``metafiles/<entry>/metafile.yml``, :mod:`apro.metafiles`) of ``suite`` for the training ``seeds``
    (default folder ``<results_root>/reports/<suite>``). ``registry_path``: the registry file (default
    experiments/registry.yaml) or a loaded :class:`apro.registry.Registry`."""
    from apro import metafiles

    registry, root, out = _prepare(registry_path, suite, results_root, out_dir)
    seeds = _seeds(seeds)
    rows = collect(registry, suite, root, seeds)
    page = summary_page(registry, suite, rows, job_times(registry, suite, root, seeds=seeds), _source(root, suite))
    paths = {kind: out / Path(path).name for kind, path in layout.report_files(suite).items()}
    write_text_atomic(paths["csv"], _csv_text(COLUMNS, [[r.get(c) for c in COLUMNS] for r in rows]))
    write_text_atomic(paths["md"], markdown(page))
    write_text_atomic(paths["html"], html(page))
    paths["metafiles"] = metafiles.write_metafiles(registry, suite, rows, root, out, seeds)
    return _written(suite, rows, paths)


def write_report(registry: reg.Registry, suite: str, results_root: os.PathLike = ".",
                 out_dir: Optional[os.PathLike] = None, seeds: Sequence[int] = (0,)) -> Dict[str, Path]:
    """:func:`write_summary` for a loaded registry: the paths of results.csv, summary.md, summary.html
    and the metafiles folder (keys csv, md, html, metafiles)."""
    return write_summary(suite, registry, results_root, out_dir, seeds).paths


def write_html_report(suite: str, registry_path: RegistryArg = None, results_root: os.PathLike = ".",
                      out_dir: Optional[os.PathLike] = None, seeds: Sequence[int] = (0,)) -> Written:
    """``apro html-report``: index.html of ``suite`` for the training ``seeds`` (and beside it ablation.csv, the
    ablation plots and a copy of the ops table); paths keys ``html`` (index.html) and ``ablation`` (ablation.csv)."""
    registry, root, out = _prepare(registry_path, suite, results_root, out_dir)
    seeds = _seeds(seeds)
    spec = load_ablation_spec()
    out.mkdir(parents=True, exist_ok=True)
    rows = collect(registry, suite, root, seeds)
    # ablation results are reused only from suites run with the same overrides (data set, schedule)
    same = dict(registry.suite(suite).overrides)
    suites = [suite] + [n for n, su in registry.suites.items() if n != suite and dict(su.overrides) == same]
    groups = ablation_results(registry, spec, root, suites, seeds)
    plots = [f"ablation_{i}.png" if _plot_group(g, out / f"ablation_{i}.png") else None for i, g in enumerate(groups)]
    paths = {"html": out / Path(layout.html_page(suite)).name,
             "ablation": out / Path(layout.ablation_table(suite)).name}
    write_text_atomic(paths["ablation"], _csv_text(
        ["group", "setting", "value", "experiment", "AP", "source"],
        [[g["name"], g["setting"], r["value"], r["experiment"], _fmt(r["AP"], 2), r["source"]]
         for g in groups for r in g["rows"]]))
    ops = read_csv_table(root / layout.ops_table())
    if ops is not None:
        shutil.copyfile(root / layout.ops_table(), out / Path(layout.ops_table()).name)
    figures, why = figure_list(out, suite)
    links = [Path(p).name for k, p in layout.report_files(suite).items()
             if k in ("csv", "html") and (out / Path(p).name).is_file()]  # only what apro report has written
    metafiles = Path(layout.metafiles_dir(suite)).name
    links += sorted(f"{metafiles}/{m.parent.name}/{m.name}" for m in (out / metafiles).glob("*/metafile.yml"))
    names = list(dict.fromkeys(r["experiment"] for r in rows)) + [r["experiment"] for g in groups for r in g["rows"]]
    page = index_page(registry, suite, rows, job_times(registry, suite, root, other_jobs=True, seeds=seeds),
                      _source(root, suite),
                      links=links, ablation=groups if ABLATION_SPEC.is_file() else None, ablation_suites=suites,
                      plots=plots, figures=figures, figures_why=why, ops=ops, versions=package_versions(),
                      hashes=config_hashes(registry, names))
    write_text_atomic(paths["html"], html(page))
    return _written(suite, rows, paths)
