"""Numbers derived from a suite's runs (:func:`apro.report.collect.collect` rows): per experiment (mean, sample
std and n over the seeds, :mod:`apro.stats`), the APro gains (paired by seed, with their intervals) and the
reproduction verdicts. Nothing here reads or writes files.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from apro import registry as reg
from apro import stats
from apro.report.collect import METRICS, STATUS_DONE

#: the columns of a row that describe its experiment (the same in every run of it)
EXPERIMENT_FIELDS = ("experiment", "task", "suite", "framework", "backbone", "dataset", "supervision", "variant",
                     "schedule", "config", *(f"paper_{m}" for m in METRICS + ("mIoU",)),
                     *(f"released_{m}" for m in METRICS), "released_status")


def has_miou(rows: List[Dict[str, Any]]) -> bool:
    """Whether any row is a semantic experiment, which reports mIoU."""
    return any(r["task"] == "semantic" for r in rows)


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
