"""benchmarks/eval_cost.py: the test resolution of a VOC photo, one timed inference of a shrunk config, the table."""
from pathlib import Path

import pytest

pytest.importorskip("mmdet")

ROOT = Path(__file__).resolve().parents[2]


def test_test_resolution_of_a_voc_photo(benchmark_script):
    ec = benchmark_script("eval_cost")
    assert ec.test_input_hw((375, 500)) == (800, 1067)  # short side to 800, long side under 1333
    assert ec.test_input_hw((480, 1600)) == (400, 1333)  # long side capped at 1333


@pytest.mark.parametrize("name", ["solov2_r50_voc", "mask2former_r50_voc"])
def test_one_timed_inference_of_a_shrunk_config_and_the_table(name, tmp_path, benchmark_script, shrink_paper_config):
    from mmengine.config import Config

    ec = benchmark_script("eval_cost")
    cfg = shrink_paper_config(Config.fromfile(str(ROOT / "experiments" / "paper" / f"{name}.py")))
    m = ec.measure(cfg, images=1, warmup=0, photo_hw=(48, 64), candidates=20)
    assert m["sec_per_image"] > 0 and m["input_hw"] == "800x1067"
    rows = [{"experiment": name, "config": f"experiments/paper/{name}.py", "threads": 2, "input_hw": "800x1067",
             "sec_per_image": 2.0, "val_images": 1449, "projected_cpu_hours": 0.8}]
    out = tmp_path / "eval_cpu.csv"
    ec.write_table(rows, out, "python benchmarks/eval_cost.py", "test machine")
    assert out.read_text().splitlines()[0].split(",") == ec.COLUMNS
    assert f"| {name} | 2 | 800x1067 | 2.0 | 1449 | 0.8 |" in out.with_suffix(".md").read_text()
