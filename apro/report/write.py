"""The report files of a suite, written atomically (``apro report``, ``apro html-report``).

* :func:`write_summary`: ``reports/<suite>/results.csv`` (one row per run, :data:`apro.report.collect.COLUMNS`),
  ``summary.md`` and ``summary.html`` (:func:`apro.report.pages.summary_page`), and the model-zoo metafiles
  (:mod:`apro.report.metafiles`);
* :func:`write_html_report`: ``reports/<suite>/index.html`` (:func:`apro.report.pages.index_page`), with beside it
  ``ablation.csv`` and a PNG plot per ablation group, and a copy of the ops benchmark table. Every link is
  relative to ``reports/<suite>/`` and every image lies under it, so the folder can be moved or zipped.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from apro import layout
from apro import registry as reg
from apro.io import atomic_file, write_png, write_text_atomic
from apro.report import metafiles
from apro.report.collect import (COLUMNS, ReportError, ablation_results, collect, config_hashes, data_checks,
                                 figure_list, job_times, package_versions, parse_seeds, read_csv_table)
from apro.report.derive import by_experiment
from apro.report.pages import _fmt, index_page, summary_page
from apro.report.render import html, markdown

RegistryArg = Union[None, str, os.PathLike, reg.Registry]


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
    (``metafiles/<entry>/metafile.yml``, :mod:`apro.report.metafiles`) of ``suite`` for the training ``seeds``
    (default folder ``<results_root>/reports/<suite>``). ``registry_path``: the registry file (default
    experiments/registry.yaml) or a loaded :class:`apro.registry.Registry`."""
    registry, root, out = _prepare(registry_path, suite, results_root, out_dir)
    seeds = parse_seeds(seeds)
    rows = collect(registry, suite, root, seeds)
    page = summary_page(registry, suite, rows, job_times(registry, suite, root, seeds=seeds), _source(root, suite),
                        data=data_checks(registry, suite, root))
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
    seeds = parse_seeds(seeds)
    out.mkdir(parents=True, exist_ok=True)
    rows = collect(registry, suite, root, seeds)
    # ablation results are reused only from suites run with the same overrides (data set, schedule)
    same = dict(registry.suite(suite).overrides)
    suites = [suite] + [n for n, su in registry.suites.items() if n != suite and dict(su.overrides) == same]
    groups = ablation_results(registry, root, suites, seeds)
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
    page = index_page(registry, suite, rows, job_times(registry, suite, root, seeds=seeds, figures=True),
                      _source(root, suite), links=links, ablation=groups, ablation_suites=suites,
                      plots=plots, figures=figures, figures_why=why, ops=ops, versions=package_versions(),
                      hashes=config_hashes(registry, names), data=data_checks(registry, suite, root))
    write_text_atomic(paths["html"], html(page))
    return _written(suite, rows, paths)
