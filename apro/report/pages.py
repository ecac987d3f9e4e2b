"""The pages of a suite's report as :mod:`apro.report.render` models: the summary (``summary.md`` /
``summary.html``: the APro gains, the results table, the steps' times) and the HTML report's index (also the
ablation groups, the affinity figures, the ops benchmark and provenance). Text only; the files are written
by :mod:`apro.report.write`.
"""
from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from apro import layout
from apro import registry as reg
from apro import stats
from apro.report.collect import METRICS, STATUS_DONE, STATUS_NOT_RUNNABLE
from apro.report.derive import apro_gains, by_experiment, has_miou, semantic_gains, verdict_of
from apro.report.render import Block, Bullets, Figure, Page, Section, Table, Text

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
        kind = "box" if any(r.get("iou_type") == "bbox" for r in b["runs"] + a["runs"]) else "mask"
        lines.append(
            f"{what}: `{reg.APRO_VARIANT}` ({a['experiment']}) minus `{reg.BASELINE_VARIANT}` "
            f"({b['experiment']}), paired by seed: **{stats.format_gain(ap)} {kind} AP** "
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
           now: _dt.datetime, data: Sequence[str] = ()) -> List[Block]:
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
    if data:  # apro validate-data's counts: what mmdet drops is named, not silent
        out += [Text("The data as checked by `apro validate-data` (apro/data/checks.py):"), Bullets(list(data))]
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
    boxes = any(r.get("iou_type") == "bbox" for r in rows)
    what = "box AP (percent) of the predicted masks' boxes on the validation split, which has no masks" if boxes \
        else "mask AP (percent) on the validation split"
    note = (f"AP: COCO {what}, computed by pycocotools: the mean ± sample "
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
    kind = "Box AP" if boxes else "Mask AP"
    sections.append(Section(f"{kind} and mIoU per experiment" if miou else f"{kind} per experiment", blocks))
    return sections


def job_blocks(jobs: List[Dict[str, Any]]) -> List[Block]:
    if not jobs:
        return [Text("No step has recorded itself yet (`<output>.run.json`, written by `apro train`, "
                     "`apro evaluate` and the other steps).", missing=True)]
    table = Table(["step", "status", "wall time", "peak memory (MB)", "CPU time", "record"],
                  [[j["job"], j["status"], _fmt_time(j["wall_s"]), _fmt(j["max_rss_mb"], 0), _fmt_time(j["cpu_s"]),
                    j["source"]] for j in jobs])
    total = sum(j["wall_s"] or 0.0 for j in jobs)
    return [table, Text(f"Sum over {len(jobs)} steps: {_fmt_time(total)}. Each step records its own start, end, "
                        "wall time, peak resident memory and CPU time (with its child processes) beside its output; "
                        "steps run side by side with `--cores 2`, so the elapsed time of a whole run is shorter "
                        "than the sum.")]


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


def summary_page(registry: reg.Registry, suite: str, rows: List[Dict[str, Any]], jobs: List[Dict[str, Any]],
                 source: str, now: Optional[_dt.datetime] = None, data: Sequence[str] = ()) -> Page:
    """summary.md / summary.html: the intro, the result sections and the wall time per job."""
    now = now or _dt.datetime.now(_dt.timezone.utc)
    return Page(f"APro results: suite {suite}",
                _intro(registry, suite, rows, "apro report", source, now, data) + result_sections(suite, rows)
                + [Section("Wall time per step", job_blocks(jobs))])


def index_page(registry: reg.Registry, suite: str, rows: List[Dict[str, Any]], jobs: List[Dict[str, Any]],
               source: str, *, links: Sequence[str], ablation: List[dict], ablation_suites: Sequence[str],
               plots: Sequence[Optional[str]], figures: List[dict], figures_why: Optional[str],
               ops: Optional[List[List[str]]], versions: Dict[str, str], hashes: List[List[str]],
               now: Optional[_dt.datetime] = None, data: Sequence[str] = ()) -> Page:
    """index.html: the intro and result sections of the summary (under Results), and the ablation, affinity,
    ops benchmark and provenance sections. ``plots``: per ablation group, the PNG beside the page or None;
    ``links``: the other report files beside the page."""
    now = now or _dt.datetime.now(_dt.timezone.utc)
    results = Section("Results", list(result_sections(suite, rows)), anchor="results")
    if links:
        results.blocks.append(Text("Also: " + ", ".join(f"[{n}]({n})" for n in links) + "."))

    abl = Section("Ablation", anchor="ablation")
    groups = ablation or []
    if not groups:
        abl.blocks.append(Text("No ablation groups in the registry (`ablations:`).", missing=True))
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

    predictions = any(f.get("kind") == "prediction" for f in figures)  # apro predict's overlays (custom suite)
    aff = Section("Predictions" if predictions else "Affinities", anchor="affinity")
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
                _intro(registry, suite, rows, "apro html-report", source, now, data) + [results, abl, aff, bench, prov])
