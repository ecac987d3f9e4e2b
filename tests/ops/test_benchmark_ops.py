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
    assert [r["measure"].split()[0] for r in rows] == ["GP", "LP", "LP", "LP", "Tree", "Tree", "Tree"]
    for row in rows[:2] + rows[4:6]:  # timings
        assert float(row["ours"]) > 0 and float(row["baseline"]) > 0
    assert float(rows[2]["baseline"]) >= 0 and float(rows[2]["ours"]) >= 0  # peak memory, MiB
    # The fast LP and the original unfold formulation agree on the workload, and so do the
    # compiled tree filter and its numpy version.
    assert rows[3]["met"] == "True"
    assert rows[6]["met"] == "True"
    assert not list(out.parent.glob("*.tmp"))  # written atomically, no leftovers
