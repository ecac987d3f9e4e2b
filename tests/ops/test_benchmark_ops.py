"""The ops benchmark runs end to end on a small workload and writes its table."""
import csv
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import ops as ops_benchmark  # noqa: E402


def test_benchmark_writes_table(tmp_path):
    out = tmp_path / "reports" / "ops.csv"
    status = ops_benchmark.main(["--out", str(out), "--height", "24", "--width", "40", "--instances", "3",
                                 "--repeats", "1"])
    assert status == 0
    rows = list(csv.DictReader(out.open()))
    assert [r["measure"].split()[0] for r in rows] == ["GP"] * 4 + ["LP"] * 3 + ["Tree"] * 3
    assert [r["measure"].split(":")[1].split("/")[0].strip() for r in rows[1:4]] == ["tree", "pass 1", "pass 2"]
    for row in rows[:5] + rows[7:9]:  # timings
        assert float(row["ours"]) > 0 and float(row["baseline"]) > 0
    assert float(rows[5]["baseline"]) >= 0 and float(rows[5]["ours"]) >= 0  # peak memory, MiB
    # The fast LP and the original unfold formulation agree on the workload, and so do the
    # compiled tree filter and its numpy version.
    assert rows[6]["met"] == "True"
    assert rows[9]["met"] == "True"
    assert all(("AVX2" in r["machine"]) != ("AVX-512" in r["machine"]) for r in rows)  # the machine kind
    assert not list(out.parent.glob("*.tmp"))  # written atomically, no leftovers


def test_ab_benchmark_against_the_same_build_finds_no_difference(tmp_path):
    import ops_ab

    out = tmp_path / "ab.csv"
    status = ops_ab.main([str(ROOT), "--rounds", "1", "--calls", "1", "--height", "24", "--width", "40",
                          "--instances", "3", "--out", str(out)])
    assert status == 0
    rows = list(csv.DictReader(out.open()))
    assert [r["call"] for r in rows] == list(ops_ab.CALLS)
    for row in rows:
        assert float(row["before_s"]) > 0 and float(row["after_s"]) > 0
        assert float(row["max_abs_diff"]) == 0.0  # the same build twice: the same bits


def test_ab_benchmark_names_a_base_without_ops(tmp_path, capsys):
    import pytest

    import ops_ab

    (tmp_path / "apro").mkdir()
    (tmp_path / "apro" / "ops.py").write_text("")
    with pytest.raises(SystemExit) as exc:
        ops_ab.main([str(tmp_path)])
    assert exc.value.code == 2
    assert str(tmp_path) in capsys.readouterr().err
