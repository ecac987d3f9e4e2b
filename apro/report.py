"""Tables and summary pages of a suite's results (``apro report``).

    apro report --suite demo            # reads results/, writes reports/demo/
    python -m apro.report --suite smoke --results-root /tmp/run --out-dir /tmp/run/reports/smoke

For every experiment of the suite in the registry it reads
``results/<suite>/<experiment>/metrics.json`` (``apro evaluate``) where it
exists; the others are listed as not run (or not runnable, for entries with no
config yet). It writes, each through a temporary file and ``os.replace``:

* ``reports/<suite>/results.csv``: one row per experiment with the columns
  experiment, framework, backbone, dataset, supervision, variant, AP, AP50,
  AP75 (mask AP in percent, empty when not run), mIoU (semantic rows),
  paper_AP/AP50/AP75/mIoU (the paper's numbers), diff_AP/AP50/AP75
  (reproduced minus paper, where both exist), status (done, not run, failed,
  ...), suite, schedule, seed, wall times and config;
* ``reports/<suite>/summary.md`` and ``summary.html``: the APro gain (mask AP
  of box+gp+lp minus box, per framework/backbone/dataset), the table, and the
  wall time and peak memory of every job, from Snakemake's benchmark files
  (``results/benchmarks/...``), else from the wall times that ``apro train``
  and ``apro evaluate`` record.

Works by hand on whatever results exist; needs pandas, not torch.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import html
import json
import math
import os
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from apro import layout
from apro import registry as reg
from apro.io import write_text_atomic

METRICS = ("AP", "AP50", "AP75")
#: results.csv columns, in order (later issues append, e.g. mIoU)
COLUMNS = ["experiment", "framework", "backbone", "dataset", "supervision", "variant",
           "AP", "AP50", "AP75", "mIoU", "paper_AP", "paper_AP50", "paper_AP75", "paper_mIoU",
           "diff_AP", "diff_AP50", "diff_AP75", "status",
           "released_AP", "released_AP50", "released_AP75", "released_status", "suite", "schedule", "seed",
           "train_wall_s", "eval_wall_s", "config"]

STATUS_DONE = "done"
STATUS_NOT_RUN = "not run"
STATUS_NOT_RUNNABLE = "not runnable (no config yet)"
STATUS_BAD = "unreadable metrics"
STATUS_FAILED = "failed"


class ReportError(Exception):
    """A user-facing error of ``apro report``."""


# ---------------------------------------------------------------- reading results

def read_json(path: Path) -> Tuple[Optional[dict], Optional[str]]:
    """(data, None), or (None, why) when the file is missing or unreadable."""
    if not path.is_file():
        return None, None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return None, f"{path}: {exc}"
    if not isinstance(data, dict):
        return None, f"{path}: expected a JSON object"
    return data, None


def read_benchmark(path: Path) -> Optional[Dict[str, float]]:
    """The last row of a Snakemake benchmark TSV: wall seconds, max RSS (MB), CPU seconds; None if absent."""
    if not path.is_file():
        return None
    try:
        lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
        header, row = lines[0].split("\t"), lines[-1].split("\t")
        values = dict(zip(header, row))
        out = {"wall_s": float(values["s"])}
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


def _result(root: Path, registry: reg.Registry, suite: str, name: str) -> Tuple[str, Optional[dict], List[str]]:
    """(status, metrics or None, notes) of one experiment of one suite, from what its jobs left in results/."""
    metrics, bad = read_json(root / reg.metrics_file(suite, name))
    if bad:
        return STATUS_BAD, None, [bad]
    if metrics is not None:
        return STATUS_DONE, metrics, []
    # a job that wrote its log but not its output stopped with an error (or runs now)
    first = ("convert", reg.converted_checkpoint(suite, name)) if registry.suite(suite).checkpoints == "released" \
        else ("train", reg.done_file(suite, name))
    for stage, marker in (first, ("evaluate", reg.metrics_file(suite, name))):
        log = root / reg.log_file(stage, suite, name)
        if log.is_file() and not (root / marker).is_file():
            return STATUS_FAILED, None, [f"{stage} log {reg.log_file(stage, suite, name)} without {marker}: "
                                         "failed (or still running)"]
    return STATUS_NOT_RUN, None, []


def collect(registry: reg.Registry, suite: str, results_root: os.PathLike = ".") -> List[Dict[str, Any]]:
    """One row (dict with ``COLUMNS`` and a ``notes`` list) per experiment of ``suite``.

    An experiment with a released checkpoint also gets that checkpoint's numbers (``released_*``) from the
    suite that evaluates the release (``checkpoints: released``), beside its own.
    """
    root = Path(results_root)
    released_suite = next((s.name for s in registry.suites.values() if s.checkpoints == "released"), None)
    rows = []
    for exp in registry.experiments_in(suite):
        ds = registry.effective_dataset(suite, exp)
        max_iters = registry.effective_max_iters(suite, exp)
        paper = exp.paper or {}
        row: Dict[str, Any] = {
            "experiment": exp.name, "suite": suite, "framework": exp.framework, "backbone": exp.backbone,
            "dataset": ds.name, "supervision": exp.supervision, "variant": exp.variant,
            "AP": None, "AP50": None, "AP75": None,
            **{f"paper_{m}": _num(paper.get(m)) for m in METRICS},
            # semantic experiments (apro evaluate-semantic) report mIoU instead of mask AP
            "mIoU": None, "paper_mIoU": _num(paper.get("mIoU")),
            **{f"diff_{m}": None for m in METRICS},  # reproduced minus paper, where both exist
            **{f"released_{m}": None for m in METRICS}, "released_status": None,
            "status": STATUS_NOT_RUN,
            "schedule": f"{max_iters} iters" if max_iters else exp.schedule,
            "seed": None, "train_wall_s": None, "eval_wall_s": None,
            "config": exp.config or "", "notes": [],
        }
        status, metrics, notes = _result(root, registry, suite, exp.name)
        row["status"] = STATUS_NOT_RUNNABLE if status == STATUS_NOT_RUN and exp.config is None else status
        row["notes"] += notes
        if metrics is not None:
            for m in METRICS + ("mIoU",):
                row[m] = _num(metrics.get(m))
            for m in METRICS:
                if row[m] is not None and row[f"paper_{m}"] is not None:
                    row[f"diff_{m}"] = round(row[m] - row[f"paper_{m}"], 3)
            row["seed"] = metrics.get("seed")
            row["eval_wall_s"] = _num(metrics.get("wall_s"))
        if exp.released and released_suite is not None:
            status, metrics, notes = _result(root, registry, released_suite, exp.name)
            row["released_status"] = status
            row["notes"] += [f"released checkpoint: {n}" for n in notes]
            for m in METRICS:
                row[f"released_{m}"] = _num((metrics or {}).get(m))
        done, _ = read_json(root / reg.done_file(suite, exp.name))
        if done is not None:
            row["train_wall_s"] = _num(done.get("wall_s"))
        rows.append(row)
    return rows


def apro_gains(rows: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Per (framework, backbone, dataset) group holding a box and a box+gp+lp entry: the gain in mask AP.

    Each item: group, box / apro experiment names, their metrics (None if not run) and
    ``gain`` (dict of AP/AP50/AP75 differences, None when either is missing).
    """
    groups: Dict[Tuple[str, str, str], Dict[str, Dict[str, Any]]] = {}
    for r in rows:
        if r["supervision"] == "box" and r["variant"] in (reg.BASELINE_VARIANT, reg.APRO_VARIANT):
            key = (r["framework"], r["backbone"], r["dataset"])
            groups.setdefault(key, {}).setdefault(r["variant"], r)
    gains = []
    for key, by_variant in groups.items():
        base, apro = by_variant.get(reg.BASELINE_VARIANT), by_variant.get(reg.APRO_VARIANT)
        if base is None or apro is None:
            continue
        gain = None
        if base["AP"] is not None and apro["AP"] is not None:
            gain = {m: (apro[m] - base[m]) if apro[m] is not None and base[m] is not None else None
                    for m in METRICS}
        gains.append({"framework": key[0], "backbone": key[1], "dataset": key[2],
                      "box": base, "apro": apro, "gain": gain})
    return gains


def has_miou(rows: List[Dict[str, Any]]) -> bool:
    """Whether any row is a semantic experiment (point / scribble / full supervision), which reports mIoU."""
    return any(r["supervision"] in ("point", "scribble", "full") for r in rows)


def semantic_gains(rows: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Per (framework, backbone, dataset, supervision) with a ``<sup>`` and a ``<sup>+gp+lp`` entry: the mIoU gain."""
    by_key: Dict[Tuple[str, str, str, str], Dict[str, Dict[str, Any]]] = {}
    for r in rows:
        if r["supervision"] in ("point", "scribble"):
            by_key.setdefault((r["framework"], r["backbone"], r["dataset"], r["supervision"]), {}) \
                .setdefault(r["variant"], r)
    out = []
    for (fw, bb, ds, sup), variants in by_key.items():
        base, apro = variants.get(sup), variants.get(f"{sup}+gp+lp")
        if base is None or apro is None:
            continue
        gain = None if base["mIoU"] is None or apro["mIoU"] is None else apro["mIoU"] - base["mIoU"]
        full = next((r for r in rows if r["supervision"] == "full" and r["mIoU"] is not None
                     and (r["framework"], r["backbone"], r["dataset"]) == (fw, bb, ds)), None)
        out.append({"framework": fw, "backbone": bb, "dataset": ds, "supervision": sup, "base": base, "apro": apro,
                    "gain": gain, "full": full})
    return out


def semantic_gain_lines(rows: List[Dict[str, Any]]) -> List[str]:
    lines = []
    for g in semantic_gains(rows):
        what = f"{g['framework']} {g['backbone']} on {g['dataset']}, {g['supervision']} labels"
        b, a = g["base"], g["apro"]
        if g["gain"] is None:
            missing = [r["experiment"] for r in (b, a) if r["mIoU"] is None]
            lines.append(f"{what}: not available yet ({', '.join(missing)} not run).")
            continue
        full = f"; dense labels ({g['full']['experiment']}): {_fmt(g['full']['mIoU'])}" if g["full"] else ""
        lines.append(f"{what}: `{a['variant']}` ({a['experiment']}) minus partial cross-entropy `{b['variant']}` "
                     f"({b['experiment']}) = **{_fmt_gain(g['gain'])} mIoU** ({_fmt(b['mIoU'])} -> "
                     f"{_fmt(a['mIoU'])}){full}.")
    return lines


def job_times(registry: reg.Registry, suite: str, results_root: os.PathLike = ".") -> List[Dict[str, Any]]:
    """Wall time, peak memory and CPU time of every job of the suite that has run.

    From Snakemake's benchmark files; for training and evaluation run by hand
    (no benchmark file), the wall time that done.json / metrics.json record.
    """
    root = Path(results_root)
    jobs = []
    for ds in registry.datasets_of(suite):
        # make_sparse_labels: the point / scribble labels of a semantic dataset (workflow/rules/semantic.smk)
        for stage in ("make_data", "validate_data", "make_sparse_labels"):
            b = read_benchmark(root / reg.benchmark_file(stage, "data", ds.name))
            if b:
                jobs.append({"job": f"{stage} {ds.name}", "source": "benchmark", **b})
    for exp in registry.experiments_in(suite):
        for stage, record in (("train", reg.done_file(suite, exp.name)),
                              ("evaluate", reg.metrics_file(suite, exp.name))):
            b = read_benchmark(root / reg.benchmark_file(stage, suite, exp.name))
            if b:
                jobs.append({"job": f"{stage} {exp.name}", "source": "benchmark", **b})
                continue
            data, _ = read_json(root / record)
            wall = _num(data.get("wall_s")) if data else None
            if wall is not None:
                jobs.append({"job": f"{stage} {exp.name}", "source": Path(record).name, "wall_s": wall,
                             "max_rss_mb": None, "cpu_s": None})
    return jobs


# ---------------------------------------------------------------- rendering

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


class _Page:
    """A tiny document model rendered both as Markdown and as HTML."""

    def __init__(self, title: str):
        self.title = title
        self.blocks: List[Tuple[str, Any]] = []

    def h2(self, text: str) -> None:
        self.blocks.append(("h2", text))

    def p(self, text: str) -> None:
        self.blocks.append(("p", text))

    def ul(self, items: List[str]) -> None:
        if items:
            self.blocks.append(("ul", items))

    def table(self, header: List[str], rows: List[List[str]]) -> None:
        self.blocks.append(("table", (header, rows)))

    def markdown(self) -> str:
        out = [f"# {self.title}", ""]
        for kind, body in self.blocks:
            if kind == "h2":
                out += [f"## {body}", ""]
            elif kind == "p":
                out += [body, ""]
            elif kind == "ul":
                out += [f"- {item}" for item in body] + [""]
            else:
                header, rows = body
                esc = lambda s: str(s).replace("|", "\\|")  # noqa: E731
                out.append("| " + " | ".join(map(esc, header)) + " |")
                out.append("| " + " | ".join("---" for _ in header) + " |")
                out += ["| " + " | ".join(map(esc, r)) + " |" for r in rows]
                out.append("")
        return "\n".join(out).rstrip() + "\n"

    @staticmethod
    def _inline(text: str) -> str:
        """HTML of a Markdown line with **bold** and `code` spans."""
        parts, out, bold = text.split("`"), [], False
        for i, part in enumerate(parts):
            if i % 2:
                out.append(f"<code>{html.escape(part)}</code>")
                continue
            segs = html.escape(part).split("**")
            for j, seg in enumerate(segs):
                if j:
                    out.append("</b>" if bold else "<b>")
                    bold = not bold
                out.append(seg)
        if bold:
            out.append("</b>")
        return "".join(out)

    def html(self) -> str:
        body = [f"<h1>{html.escape(self.title)}</h1>"]
        for kind, content in self.blocks:
            if kind == "h2":
                body.append(f"<h2>{html.escape(content)}</h2>")
            elif kind == "p":
                body.append(f"<p>{self._inline(content)}</p>")
            elif kind == "ul":
                body.append("<ul>" + "".join(f"<li>{self._inline(i)}</li>" for i in content) + "</ul>")
            else:
                header, rows = content
                head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
                trs = "".join("<tr>" + "".join(f"<td>{self._inline(str(c))}</td>" for c in r) + "</tr>"
                              for r in rows)
                body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{trs}</tbody></table>")
        style = ("body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em;line-height:1.4}"
                 "table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:.25em .6em;"
                 "text-align:left}th{background:#f4f4f4}code{background:#f4f4f4;padding:0 .2em}")
        return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                f"<title>{html.escape(self.title)}</title><style>{style}</style></head>\n<body>\n"
                + "\n".join(body) + "\n</body></html>\n")


def build_page(registry: reg.Registry, suite: str, rows: List[Dict[str, Any]], jobs: List[Dict[str, Any]],
               results_root: str, now: Optional[_dt.datetime] = None) -> _Page:
    s = registry.suite(suite)
    now = now or _dt.datetime.now(_dt.timezone.utc)
    n_done = sum(r["status"] == STATUS_DONE for r in rows)
    page = _Page(f"APro results: suite {suite}")
    page.p(s.description)
    if s.overrides:
        page.p("Suite overrides: " + ", ".join(f"{k} = `{v}`" for k, v in s.overrides.items())
               + " (for every experiment of the suite).")
    if any(r["status"] == STATUS_NOT_RUNNABLE for r in rows):
        how = f"`snakemake -n --config suite={suite}` lists what the suite still lacks"
    else:
        how = f"run or update them with `snakemake --cores 2 --config suite={suite}`"
    page.p(f"{n_done} of {len(rows)} experiments have results. Written by `apro report` on "
           f"{now.strftime('%Y-%m-%d %H:%M UTC')} from `{results_root}`; {how}.")

    page.h2("APro gain")
    gains = apro_gains(rows)
    if not gains:
        page.p(f"Not available: suite {suite} has no pair of `{reg.BASELINE_VARIANT}` and "
               f"`{reg.APRO_VARIANT}` experiments with the same framework, backbone and dataset.")
    lines = []
    for g in gains:
        what = f"{g['framework']} {g['backbone']} on {g['dataset']}"
        b, a = g["box"], g["apro"]
        if g["gain"] is None:
            missing = [r["experiment"] for r in (b, a) if r["AP"] is None]
            lines.append(f"{what}: not available yet ({', '.join(missing)} not run).")
            continue
        lines.append(
            f"{what}: `{reg.APRO_VARIANT}` ({a['experiment']}) minus `{reg.BASELINE_VARIANT}` "
            f"({b['experiment']}) = **{_fmt_gain(g['gain']['AP'])} mask AP** "
            f"({_fmt(b['AP'])} -> {_fmt(a['AP'])}); AP50 {_fmt_gain(g['gain']['AP50'])}, "
            f"AP75 {_fmt_gain(g['gain']['AP75'])}.")
        upper = [r for r in rows if r["supervision"] == "mask" and r["AP"] is not None
                 and (r["framework"], r["backbone"], r["dataset"]) == (g["framework"], g["backbone"], g["dataset"])]
        for r in upper:
            lines.append(f"{what}: fully supervised upper bound ({r['experiment']}): {_fmt(r['AP'])} mask AP.")
    if len(lines) == 1:
        page.p(lines[0])
    else:
        page.ul(lines)

    sem_lines = semantic_gain_lines(rows)
    if sem_lines:
        page.h2("APro gain, semantic segmentation")
        page.ul(sem_lines)

    has_paper = any(r["paper_AP"] is not None for r in rows)
    has_released = any(r["released_status"] is not None for r in rows)
    miou = has_miou(rows)  # the mIoU column only where the suite holds semantic experiments
    page.h2("Mask AP and mIoU per experiment" if miou else "Mask AP per experiment")
    header = ["experiment", "framework", "backbone", "dataset", "supervision", "variant", "schedule",
              "AP", "AP50", "AP75"] + (["mIoU"] if miou else []) + \
        (["paper AP", "paper AP50", "paper AP75", "AP - paper"] if has_paper else []) + ["status"] + \
        (["released AP", "released AP50", "released AP75", "released status"] if has_released else [])
    table = []
    for r in rows:
        cells = [r["experiment"], r["framework"], r["backbone"], r["dataset"], r["supervision"], r["variant"],
                 r["schedule"]] + [_fmt(r[m]) for m in METRICS]
        if miou:
            cells.append(_fmt(r["mIoU"]))
        if has_paper:
            cells += [_fmt(r[f"paper_{m}"]) for m in METRICS] + [_fmt(r["diff_AP"])]
        cells.append(r["status"] if r["status"] == STATUS_DONE else f"**{r['status']}**")
        if has_released:
            cells += [_fmt(r[f"released_{m}"]) for m in METRICS] + [r["released_status"] or ""]
        table.append(cells)
    page.table(header, table)
    page.p("AP, AP50, AP75: COCO mask AP (percent) on the validation split, computed by pycocotools; "
           "empty where the experiment has not run."
           + (" released AP: the APro release's own checkpoint of the entry, converted for this suite and "
              "evaluated the same way (`snakemake --config suite=released`)." if has_released else "")
           + (" mIoU: mean IoU (percent) of the semantic experiments on the dense val labels, mmseg's "
              "IoUMetric; instance rows leave it empty, semantic rows leave AP empty." if miou else ""))
    page.ul([f"{r['experiment']}: {note}" for r in rows for note in r["notes"]])

    page.h2("Wall time per job")
    if not jobs:
        page.p(f"No job has run yet (no benchmark files under `{layout.benchmarks_dir()}/`).")
    else:
        page.table(["job", "wall time", "max RSS (MB)", "CPU time", "source"],
                   [[j["job"], _fmt_time(j["wall_s"]), _fmt(j["max_rss_mb"], 0), _fmt_time(j["cpu_s"]),
                     j["source"]] for j in jobs])
        total = sum(j["wall_s"] for j in jobs)
        page.p(f"Sum over {len(jobs)} jobs: {_fmt_time(total)}. Source `benchmark`: Snakemake's benchmark "
               f"file of the job (`{layout.benchmarks_dir()}/...`); jobs run side by side with `--cores 2`, so the "
               "elapsed time of a whole run is shorter than the sum.")
    return page


def _csv_text(rows: List[Dict[str, Any]]) -> str:
    import pandas as pd

    df = pd.DataFrame([{c: r.get(c) for c in COLUMNS} for r in rows], columns=COLUMNS)
    return df.to_csv(index=False, lineterminator="\n")


def write_report(registry: reg.Registry, suite: str, results_root: os.PathLike = ".",
                 out_dir: Optional[os.PathLike] = None) -> Dict[str, Path]:
    """Writes results.csv, summary.md and summary.html of ``suite``; returns their paths."""
    root = Path(results_root)
    out = Path(out_dir) if out_dir is not None else root / reg.report_dir(suite)
    rows = collect(registry, suite, root)
    jobs = job_times(registry, suite, root)
    page = build_page(registry, suite, rows, jobs, results_root=f"{root / layout.suite_results_dir(suite)}/")
    paths = {kind: out / Path(path).name for kind, path in layout.report_files(suite).items()}
    write_text_atomic(paths["csv"], _csv_text(rows))
    write_text_atomic(paths["md"], page.markdown())
    write_text_atomic(paths["html"], page.html())
    return paths


# ---------------------------------------------------------------- CLI

def build_parser(parser: Optional[argparse.ArgumentParser] = None) -> argparse.ArgumentParser:
    p = parser or argparse.ArgumentParser(prog="apro report", description=__doc__.split("\n\n")[0])
    p.add_argument("--suite", required=True, help="suite of the registry (e.g. demo, smoke, paper)")
    p.add_argument("--registry", default=None, help="registry file (default: experiments/registry.yaml)")
    p.add_argument("--results-root", default=".",
                   help="folder holding results/ (default: the current folder)")
    p.add_argument("--out-dir", default=None, help="output folder (default: <results-root>/reports/<suite>)")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        registry = reg.load_registry(args.registry)
        paths = write_report(registry, args.suite, args.results_root, args.out_dir)
    except reg.RegistryError as exc:
        print(f"apro report: error: {exc}", file=sys.stderr)
        return 2
    rows = collect(registry, args.suite, args.results_root)
    done = sum(r["status"] == STATUS_DONE for r in rows)
    print(f"apro report: suite {args.suite}: {done}/{len(rows)} experiments with results -> "
          + ", ".join(str(p) for p in paths.values()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
