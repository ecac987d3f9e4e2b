"""Numbers over training seeds, and the one rule that says whether a result reproduces.

A single training run cannot say whether a number reproduces: a second seed moved the demo's
numbers by up to 1 AP / 1 mIoU. So every table reports the mean, the standard deviation and the
number of runs (:func:`summarize`), every APro gain is the paired difference over the seeds both
variants ran with, with a 95% interval from the t distribution (:func:`paired_difference`), and the
paper table judges each entry by :data:`VERDICT_RULE` (:func:`verdict`).

Standard deviations are sample ones (``ddof=1``); with one run there is none and the tables say
"single run". Nothing here imports torch.
"""
from __future__ import annotations

import math
from typing import Dict, Mapping, Optional, Sequence

#: the confidence of the gain intervals
CONFIDENCE = 0.95
#: reproduced when |mean - paper| <= max(STD_FACTOR * std, TOLERANCE) with at least MIN_RUNS runs
STD_FACTOR = 2.0
TOLERANCE = 0.5
MIN_RUNS = 2
VERDICT_RULE = (f"reproduced when |mean - paper| <= max({STD_FACTOR:g} std, {TOLERANCE:g} points) over at least "
                f"{MIN_RUNS} seeds; otherwise not reproduced; one run: single run (no verdict)")

REPRODUCED, NOT_REPRODUCED, SINGLE_RUN, NOT_RUN = "reproduced", "not reproduced", "single run", "not run"


def _values(values: Sequence[Optional[float]]) -> list:
    return [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]


def summarize(values: Sequence[Optional[float]]) -> Dict[str, Optional[float]]:
    """``{"n", "mean", "std"}`` of the runs that have a value (None and NaN are runs without one);
    ``std`` is None below two runs, ``mean`` None without any."""
    xs = _values(values)
    n = len(xs)
    mean = sum(xs) / n if n else None
    std = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1)) if n >= 2 else None
    return {"n": n, "mean": mean, "std": std}


def t_quantile(p: float, dof: int) -> float:
    """The ``p`` quantile of Student's t distribution with ``dof`` degrees of freedom."""
    from scipy.stats import t

    return float(t.ppf(p, dof))


def paired_difference(treated: Mapping[int, Optional[float]], base: Mapping[int, Optional[float]],
                      confidence: float = CONFIDENCE) -> Dict[str, object]:
    """The gain ``treated - base`` paired by seed, over the seeds where both have a value.

    Returns ``n``, the seeds used, the ``mean`` difference and its ``std``, and with two or more
    pairs the ``confidence`` interval ``low``..``high`` (t distribution, n - 1 degrees of freedom)
    and ``distinguishable``: whether the interval excludes 0 (None below two pairs).
    """
    seeds = sorted(s for s in treated if s in base and _values([treated[s]]) and _values([base[s]]))
    diffs = [float(treated[s]) - float(base[s]) for s in seeds]
    out: Dict[str, object] = {"seeds": seeds, **summarize(diffs), "low": None, "high": None,
                              "distinguishable": None}
    n = len(diffs)
    if n >= 2:
        half = t_quantile(0.5 + confidence / 2, n - 1) * out["std"] / math.sqrt(n)
        out["low"], out["high"] = out["mean"] - half, out["mean"] + half
        out["distinguishable"] = not (out["low"] <= 0.0 <= out["high"])
    return out


def verdict(paper: Optional[float], values: Sequence[Optional[float]]) -> str:
    """:data:`VERDICT_RULE` applied to the runs ``values`` of an entry whose paper value is ``paper``."""
    s = summarize(values)
    if s["n"] == 0:
        return NOT_RUN
    if s["n"] < MIN_RUNS:
        return SINGLE_RUN
    if paper is None:
        return "no paper value"
    return REPRODUCED if abs(s["mean"] - paper) <= max(STD_FACTOR * s["std"], TOLERANCE) else NOT_REPRODUCED


def format_mean_std(s: Mapping[str, Optional[float]], digits: int = 1) -> str:
    """``"9.6 ± 0.4 (n=3)"``; ``"9.6 (single run)"``; ``""`` without runs."""
    if not s.get("n"):
        return ""
    if s["std"] is None:
        return f"{s['mean']:.{digits}f} (single run)"
    return f"{s['mean']:.{digits}f} ± {s['std']:.{digits}f} (n={s['n']})"


def format_gain(d: Mapping[str, object], digits: int = 1) -> str:
    """``"+5.9 [+4.1, +7.7] (95%, n=3)"``, ``"+0.4 [-1.0, +1.8] (95%, n=3): not distinguishable from 0"``,
    ``"+5.9 (single run)"``; ``""`` without a pair."""
    if not d.get("n"):
        return ""
    mean = f"{d['mean']:+.{digits}f}"
    if d["low"] is None:
        return f"{mean} (single run)"
    text = f"{mean} [{d['low']:+.{digits}f}, {d['high']:+.{digits}f}] ({CONFIDENCE:.0%}, n={d['n']})"
    return text if d["distinguishable"] else text + ": not distinguishable from 0"
