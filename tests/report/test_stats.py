"""Mean ± std over seeds, the paired gain interval, and the reproduction verdict at its boundaries (apro.stats)."""
import math

import pytest

from apro import stats


def test_summarize_uses_the_sample_std_and_skips_missing_runs():
    s = stats.summarize([9.0, None, 11.0, float("nan"), 13.0])
    assert s == {"n": 3, "mean": 11.0, "std": 2.0}
    assert stats.summarize([4.2]) == {"n": 1, "mean": 4.2, "std": None}
    assert stats.summarize([]) == {"n": 0, "mean": None, "std": None}


def test_t_quantiles_match_the_table():
    # Student's t, two-sided 95%: 12.706 (1 dof), 4.303 (2), 2.776 (4), 2.045 (29); from printed tables
    for dof, table in ((1, 12.706), (2, 4.303), (4, 2.776), (29, 2.045)):
        assert stats.t_quantile(0.975, dof) == pytest.approx(table, abs=1e-3)


def test_paired_difference_pairs_by_seed_and_its_interval():
    base = {0: 4.0, 1: 5.0, 2: 6.0, 3: 1.0}
    apro = {0: 9.0, 1: 11.0, 2: 13.0}  # seed 3 has no APro run: not paired
    d = stats.paired_difference(apro, base)
    assert d["seeds"] == [0, 1, 2] and d["n"] == 3 and d["mean"] == pytest.approx(6.0) and d["std"] == pytest.approx(1.0)
    half = 4.302652729911275 / math.sqrt(3)  # t(0.975, 2) * std / sqrt(n)
    assert (d["low"], d["high"]) == (pytest.approx(6.0 - half), pytest.approx(6.0 + half))
    assert d["distinguishable"] is True
    assert stats.format_gain(d) == "+6.0 [+3.5, +8.5] (95%, n=3)"


def test_an_interval_covering_zero_is_not_distinguishable():
    d = stats.paired_difference({0: 1.0, 1: 2.0, 2: 3.0}, {0: 0.0, 1: 0.0, 2: 0.0})  # mean 2, std 1: [-0.48, 4.48]
    assert d["low"] < 0 < d["high"] and d["distinguishable"] is False
    assert stats.format_gain(d).endswith(": not distinguishable from 0")
    single = stats.paired_difference({0: 9.6}, {0: 3.7})
    assert single["low"] is None and single["distinguishable"] is None
    assert stats.format_gain(single) == "+5.9 (single run)"
    assert stats.format_gain(stats.paired_difference({}, {0: 1.0})) == ""


@pytest.mark.parametrize("paper, values, expected", [
    (10.0, [10.5, 10.5], stats.REPRODUCED),       # |diff| = 0.5 = the tolerance (std 0): at the boundary
    (10.0, [10.51, 10.51], stats.NOT_REPRODUCED),  # just past it
    (10.0, [9.5, 9.5], stats.REPRODUCED),         # below the paper, the same
    (7.0, [9.0, 11.0, 13.0], stats.REPRODUCED),   # mean 11, std 2: |diff| = 4 = 2 std
    (6.99, [9.0, 11.0, 13.0], stats.NOT_REPRODUCED),
    (15.0, [9.0, 11.0, 13.0], stats.REPRODUCED),
    (15.01, [9.0, 11.0, 13.0], stats.NOT_REPRODUCED),
    (10.0, [30.0], stats.SINGLE_RUN),             # one run: no verdict, however far
    (10.0, [10.0, None], stats.SINGLE_RUN),       # a run without a result does not count
    (10.0, [], stats.NOT_RUN),
    (None, [1.0, 2.0], "no paper value"),
])
def test_verdict_at_the_boundaries_of_the_rule(paper, values, expected):
    assert stats.verdict(paper, values) == expected


def test_the_rule_text_states_its_numbers():
    assert "2 std" in stats.VERDICT_RULE and "0.5 points" in stats.VERDICT_RULE and "2 seeds" in stats.VERDICT_RULE
    assert stats.format_mean_std(stats.summarize([9.0, 11.0, 13.0])) == "11.0 ± 2.0 (n=3)"
    assert stats.format_mean_std(stats.summarize([9.6])) == "9.6 (single run)"
