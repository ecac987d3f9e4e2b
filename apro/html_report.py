"""The HTML report of a suite, ``reports/<suite>/index.html`` (``apro html-report``).

    apro html-report --suite demo            # reads results/ and reports/, writes reports/demo/index.html

Sections, each built from whatever exists (a missing part is said to be missing,
never an error):

* **Results**: mask AP (instance rows) or mIoU (semantic rows) per experiment,
  the paper's numbers beside where the registry has them, and the APro gains
  (from :mod:`apro.report`);
* **Ablation**: the groups of ``experiments/ablation/ablation.yaml`` (pairwise
  terms, GP passes, zeta_g, LP iterations and kernel size, other pairwise
  terms), each a table and a PNG plot of AP against the setting. An
  experiment's result is read from ``results/ablation/<name>/`` and, for the
  demo variants the ablation reuses, from the demo suite's results;
* **Affinities**: the figures of ``apro visualize`` (``reports/<suite>/figures/figures.json``);
* **Ops benchmark**: ``reports/benchmarks/ops.csv``;
* **Provenance**: package versions, seeds, sha256 of every config file, wall
  time and peak memory of every job (Snakemake's benchmark files).

Every link is relative to ``reports/<suite>/`` and every image it shows lies
under it (figures are copied there), so the folder can be moved or zipped.
"""
from __future__ import annotations

import argparse
import csv
import datetime as _dt
import html
import io
import os
import shutil
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from apro import layout
from apro import registry as reg
from apro import report as rep
from apro.io import file_sha256, write_text_atomic

ABLATION_SPEC = reg.REPO_ROOT / "experiments" / "ablation" / "ablation.yaml"
ABLATION_SUITE = "ablation"
PACKAGES = ("torch", "mmcv", "mmengine", "mmdet", "numpy", "pandas", "matplotlib", "pycocotools", "snakemake")


class HtmlReportError(Exception):
    """A user-facing error of ``apro html-report``."""


def _e(text: Any) -> str:
    return html.escape("" if text is None else str(text))


def _table(header: List[str], rows: List[List[Any]], cls: str = "") -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _fmt(v: Optional[float], digits: int = 1) -> str:
    return "" if v is None else f"{v:.{digits}f}"


# ---------------------------------------------------------------- ablation

def load_ablation_spec(path: os.PathLike = ABLATION_SPEC) -> List[dict]:
    """The ablation groups: ``[{name, setting, rows: [{experiment, value}]}]``."""
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
        raise HtmlReportError(f"{p}: expected groups: [{{name, setting, rows: [{{experiment, value}}]}}] "
                              f"({exc})") from None
    return groups


def ablation_results(registry: reg.Registry, groups: List[dict], root: Path,
                     suites: Sequence[str] = (ABLATION_SUITE, "demo")) -> List[dict]:
    """Each group with its rows' AP (None: not run) and the suite the result came from."""
    out = []
    for g in groups:
        rows = []
        for r in g["rows"]:
            name = r["experiment"]
            found = None
            exp = registry.experiments.get(name)
            for suite in suites:
                if exp is None or suite not in exp.suites:
                    continue
                metrics, _ = rep.read_json(root / reg.metrics_file(suite, name))
                if metrics is not None:
                    found = (suite, metrics)
                    break
            rows.append({"experiment": name, "value": str(r["value"]),
                         "AP": rep._num(found[1].get("AP")) if found else None,
                         "AP50": rep._num(found[1].get("AP50")) if found else None,
                         "source": layout.experiment_dir(found[0], name) if found else "not run",
                         "known": exp is not None})
        out.append({**g, "rows": rows})
    return out


def _plot_group(group: dict, path: Path) -> bool:
    """AP against the setting (bars for categories); False when no row has a result."""
    rows = [r for r in group["rows"] if r["AP"] is not None]
    if not rows:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    labels = [r["value"] for r in group["rows"]]
    values = [r["AP"] if r["AP"] is not None else 0.0 for r in group["rows"]]
    colors = ["#3b528b" if r["AP"] is not None else "#dddddd" for r in group["rows"]]
    ax.bar(range(len(labels)), values, color=colors)
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=20, ha="right")
    ax.set_xlabel(group["setting"])
    ax.set_ylabel("mask AP (%)")
    ax.set_title(f"{group['name']} (grey: not run)", fontsize=10)
    for i, r in enumerate(group["rows"]):
        if r["AP"] is not None:
            ax.text(i, r["AP"], f"{r['AP']:.1f}", ha="center", va="bottom", fontsize=8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(buf.getvalue())
    os.replace(tmp, path)
    return True


# ---------------------------------------------------------------- provenance

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


def extra_jobs(root: Path, suite: str) -> List[Dict[str, Any]]:
    """Benchmarks of the ops jobs and of this suite's figure / report jobs."""
    out = []
    for group, name in (("ops", "build_ops"), ("ops", "benchmark_ops"), (suite, "visualize"), (suite, "report"),
                        (suite, "html_report")):
        b = rep.read_benchmark(root / layout.job_benchmark(group, name))
        if b:
            out.append({"job": name, "source": "benchmark", **b})
    return out


# ---------------------------------------------------------------- page

STYLE = ("body{font-family:sans-serif;max-width:72em;margin:2em auto;padding:0 1em;line-height:1.4}"
         "table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left}"
         "th{background:#f4f4f4}img{max-width:100%;border:1px solid #eee}nav a{margin-right:1em}"
         "figure{margin:1em 0}figcaption{color:#444;font-size:.9em}.missing{color:#a33}")


def build_html(registry: reg.Registry, suite: str, root: Path, out_dir: Path,
               now: Optional[_dt.datetime] = None) -> str:
    now = now or _dt.datetime.now(_dt.timezone.utc)
    s = registry.suite(suite)
    rows = rep.collect(registry, suite, root)
    parts = [f"<h1>APro report: suite {_e(suite)}</h1>", f"<p>{_e(s.description)}</p>",
             f"<p>Written by <code>apro html-report</code> on {now.strftime('%Y-%m-%d %H:%M UTC')} from "
             f"<code>{_e(root.resolve())}</code>.</p>",
             '<nav><a href="#results">Results</a><a href="#ablation">Ablation</a><a href="#affinity">Affinities</a>'
             '<a href="#benchmark">Ops benchmark</a><a href="#provenance">Provenance</a></nav>']

    # -- results
    parts.append('<h2 id="results">Results</h2>')
    gains = [g for g in rep.apro_gains(rows) if g["gain"] is not None]
    for g in gains:
        parts.append(f"<p>APro gain ({_e(g['framework'])} {_e(g['backbone'])} on {_e(g['dataset'])}): "
                     f"<b>{g['gain']['AP']:+.1f} mask AP</b> ({_e(g['box']['experiment'])} {_fmt(g['box']['AP'])} "
                     f"&rarr; {_e(g['apro']['experiment'])} {_fmt(g['apro']['AP'])}).</p>")
    for g in rep.semantic_gains(rows):
        if g["gain"] is not None:
            full = f"; dense labels {_fmt(g['full']['mIoU'])}" if g["full"] else ""
            parts.append(f"<p>APro gain ({_e(g['framework'])} {_e(g['backbone'])} on {_e(g['dataset'])}, "
                         f"{_e(g['supervision'])} labels): <b>{g['gain']:+.1f} mIoU</b> "
                         f"({_e(g['base']['experiment'])} {_fmt(g['base']['mIoU'])} &rarr; "
                         f"{_e(g['apro']['experiment'])} {_fmt(g['apro']['mIoU'])}{full}).</p>")
    has_paper = any(r["paper_AP"] is not None for r in rows)
    has_released = any(r["released_status"] is not None for r in rows)
    has_miou = rep.has_miou(rows)  # semantic rows report mIoU instead of mask AP
    header = ["experiment", "framework", "backbone", "dataset", "variant", "schedule", "AP", "AP50", "AP75"] + \
        (["mIoU"] if has_miou else []) + \
        (["paper AP", "paper AP50", "paper AP75", "AP - paper"] if has_paper else []) + ["status"] + \
        (["released AP", "released AP50", "released AP75", "released status"] if has_released else [])
    table = []
    for r in rows:
        cells = [r["experiment"], r["framework"], r["backbone"], r["dataset"], r["variant"], r["schedule"],
                 _fmt(r["AP"]), _fmt(r["AP50"]), _fmt(r["AP75"])] + ([_fmt(r["mIoU"])] if has_miou else [])
        if has_paper:
            diff = r["AP"] - r["paper_AP"] if r["AP"] is not None and r["paper_AP"] is not None else None
            cells += [_fmt(r["paper_AP"]), _fmt(r["paper_AP50"]), _fmt(r["paper_AP75"]),
                      "" if diff is None else f"{diff:+.1f}"]
        table.append(cells + [r["status"]] + ([_fmt(r[f"released_{m}"]) for m in rep.METRICS]
                                              + [r["released_status"]] if has_released else []))
    parts.append(_table(header, table, "results"))
    also = ", ".join(f'<a href="{n}">{n}</a>' for n in ("results.csv", "summary.html") if (out_dir / n).is_file())
    parts.append("<p>COCO mask AP (%) on the val split (pycocotools); empty where the experiment has not run."
                 + (" mIoU (%): mmseg's IoUMetric on the dense val labels, for the semantic rows." if has_miou else "")
                 + (f" Also: {also}." if also else "") + "</p>")  # link only what apro report has written

    # -- ablation
    parts.append('<h2 id="ablation">Ablation</h2>')
    # results are reused only from suites run with the same overrides (data set, schedule)
    same = [n for n, su in registry.suites.items() if n != suite and dict(su.overrides) == dict(s.overrides)]
    groups = ablation_results(registry, load_ablation_spec(), root, [suite] + same)
    if not groups:
        parts.append(f'<p class="missing">No ablation spec ({_e(ABLATION_SPEC)}).</p>')
    n_abl = sum(r["AP"] is not None for g in groups for r in g["rows"])
    parts.append(f"<p>{n_abl} of {sum(len(g['rows']) for g in groups)} ablation settings have results (looked "
                 f"for in the suites {_e(', '.join([suite] + same))}). Run the rest with "
                 "<code>snakemake --cores 2 --config suite=ablation</code>.</p>")
    csv_rows = []
    for i, g in enumerate(groups):
        parts.append(f"<h3>{_e(g['name'])}</h3>")
        if g.get("description"):
            parts.append(f"<p>{_e(g['description'])}</p>")
        parts.append(_table([g["setting"], "experiment", "AP", "AP50", "result from"],
                            [[r["value"], r["experiment"], _fmt(r["AP"]), _fmt(r["AP50"]), r["source"]]
                             for r in g["rows"]], "ablation"))
        png = f"ablation_{i}.png"
        if _plot_group(g, out_dir / png):
            parts.append(f'<figure><img src="{png}" alt="AP against {_e(g["setting"])}"><figcaption>Mask AP '
                         f"against {_e(g['setting'])}.</figcaption></figure>")
        else:
            (out_dir / png).unlink(missing_ok=True)  # never show a plot of earlier results
        csv_rows += [[g["name"], g["setting"], r["value"], r["experiment"], _fmt(r["AP"], 2), r["source"]]
                     for r in g["rows"]]
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([["group", "setting", "value", "experiment", "AP", "source"]]
                                                   + csv_rows)
    write_text_atomic(out_dir / "ablation.csv", buf.getvalue())
    parts.append('<p>Table: <a href="ablation.csv">ablation.csv</a>.</p>')

    # -- affinities
    parts.append('<h2 id="affinity">Affinities</h2>')
    manifest, bad = rep.read_json(out_dir / "figures" / "figures.json")
    figs = [f for f in (manifest or {}).get("figures", []) if (out_dir / "figures" / f["file"]).is_file()]
    if not figs:
        parts.append(f'<p class="missing">No affinity figures yet ({_e(bad) if bad else "run apro visualize"}).</p>')
    for f in figs:
        parts.append(f'<figure><img src="figures/{_e(f["file"])}" alt="{_e(f["kind"])} figure of image '
                     f'{_e(f["image_id"])}"><figcaption>{_e(f["caption"])}</figcaption></figure>')

    # -- ops benchmark
    parts.append('<h2 id="benchmark">Ops benchmark</h2>')
    ops = root / layout.ops_table()
    if ops.is_file():
        with open(ops, newline="", encoding="utf-8") as fh:
            data = list(csv.reader(fh))
        if data:
            parts.append(_table(data[0], data[1:], "benchmark"))
        shutil.copyfile(ops, out_dir / "ops.csv")
        parts.append(f'<p>From <code>{layout.ops_table()}</code> (copy: <a href="ops.csv">ops.csv</a>).</p>')
    else:
        parts.append(f'<p class="missing">No ops benchmark ({layout.ops_table()}): run '
                     f"<code>snakemake --cores 2 {layout.ops_table()}</code>.</p>")

    # -- provenance
    parts.append('<h2 id="provenance">Provenance</h2>')
    parts.append(_table(["package", "version"], [[k, v] for k, v in package_versions().items()], "versions"))
    seeds = sorted({str(r["seed"]) for r in rows if r["seed"] is not None})
    parts.append(f"<p>Seeds of the evaluated experiments: {_e(', '.join(seeds) or 'none evaluated yet')}.</p>")
    names = [r["experiment"] for r in rows] + [r["experiment"] for g in groups for r in g["rows"]]
    parts.append(_table(["config file", "sha256 (first 16 hex)"], config_hashes(registry, names), "configs"))
    jobs = rep.job_times(registry, suite, root) + extra_jobs(root, suite)
    if jobs:
        parts.append(_table(["job", "wall time", "max RSS (MB)", "CPU time", "source"],
                            [[j["job"], rep._fmt_time(j["wall_s"]), _fmt(j["max_rss_mb"], 0),
                              rep._fmt_time(j["cpu_s"]), j["source"]] for j in jobs], "jobs"))
    else:
        parts.append(f'<p class="missing">No job has run yet (no files under {layout.benchmarks_dir()}/).</p>')
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>APro report: {_e(suite)}</title><style>{STYLE}</style></head>\n<body>\n"
            + "\n".join(parts) + "\n</body></html>\n")


def write_html_report(registry: reg.Registry, suite: str, results_root: os.PathLike = ".",
                      out_dir: Optional[os.PathLike] = None) -> Path:
    root = Path(results_root)
    out = Path(out_dir) if out_dir is not None else root / reg.report_dir(suite)
    out.mkdir(parents=True, exist_ok=True)
    page = build_html(registry, suite, root, out)
    path = out / "index.html"
    write_text_atomic(path, page)
    return path


def build_parser(parser: Optional[argparse.ArgumentParser] = None) -> argparse.ArgumentParser:
    p = parser or argparse.ArgumentParser(prog="apro html-report", description=__doc__.split("\n\n")[0])
    p.add_argument("--suite", required=True, help="suite of the registry (demo, smoke, ablation, paper)")
    p.add_argument("--registry", default=None, help="registry file (default: experiments/registry.yaml)")
    p.add_argument("--results-root", default=".", help="folder holding results/ and reports/ (default: .)")
    p.add_argument("--out-dir", default=None, help="output folder (default: <results-root>/reports/<suite>)")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        registry = reg.load_registry(args.registry)
        path = write_html_report(registry, args.suite, args.results_root, args.out_dir)
    except (reg.RegistryError, HtmlReportError) as exc:
        print(f"apro html-report: error: {exc}", file=sys.stderr)
        return 2
    print(f"apro html-report: suite {args.suite} -> {path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
