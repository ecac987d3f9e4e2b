"""benchmarks/paper_step.py: image size, GPUs and the GPU-hours projection of the paper configs,
and one timed iteration of a shrunk config on CPU (the real run needs a GPU)."""
from pathlib import Path

import pytest

pytest.importorskip("mmdet")

ROOT = Path(__file__).resolve().parents[2]


def _cfg(name):
    from mmengine.config import Config

    return Config.fromfile(str(ROOT / "experiments" / "paper" / f"{name}.py"))


@pytest.mark.parametrize("name, hw, gpus", [
    ("solov2_r50_voc", (800, 1333), 4),         # the release: 4 GPUs x 2 images at 1333x800
    ("solov2_r101_coco", (800, 1333), 8),       # 8 GPUs x 2
    ("mask2former_r50_coco", (1024, 1024), 4),  # LSJ crops of 1024, 4 GPUs x 4 (DEVIATIONS.md, 2)
    ("mask2former_swinl_voc", (1024, 1024), 4),
])
def test_training_size_and_gpus_of_the_configs(name, hw, gpus, benchmark_script):
    ps = benchmark_script("paper_step")
    cfg = _cfg(name)
    assert ps.train_image_hw(cfg) == hw and ps.gpus_of(cfg) == gpus


def test_projection_is_seconds_times_iterations_times_gpus(benchmark_script):
    assert benchmark_script("paper_step").projected_gpu_hours(0.5, 7200, 8) == pytest.approx(8.0)


def test_one_iteration_of_a_shrunk_config_on_cpu_and_the_table(tmp_path, benchmark_script, shrink_paper_config):
    import torch

    ps = benchmark_script("paper_step")
    cfg = shrink_paper_config(_cfg("solov2_r50_voc"))
    m = ps.measure(cfg, (64, 64), batch=2, iters=1, warmup=0, device=torch.device("cpu"))
    assert m["sec_per_iter"] > 0 and m["peak_mem_mib"] > 0
    row = {"experiment": "solov2_r50_voc", "config": "experiments/paper/solov2_r50_voc.py", "device": "cpu",
           "image_hw": "64x64", "batch_per_gpu": 2, "gpus": 8, "sec_per_iter": 0.5, "peak_mem_mib": 100.0,
           "max_iters": 7200, "projected_gpu_hours": 8.0}
    out = tmp_path / "step_cost.csv"
    ps.write_table([row], out, "python benchmarks/paper_step.py --iters 1", "CPU")
    lines = out.read_text().splitlines()
    assert lines[0].split(",") == ps.COLUMNS and lines[1].startswith("solov2_r50_voc,")
    md = out.with_suffix(".md").read_text()
    assert "`python benchmarks/paper_step.py --iters 1`" in md and "Projected total: 8 GPU-hours" in md


def test_unknown_config_name_lists_the_known_ones(benchmark_script):
    with pytest.raises(SystemExit, match="nope not among the paper entries.*solov2_r50_voc"):
        benchmark_script("paper_step").run(["nope"], 1, 0, None)


def test_apro_share_of_a_shrunk_step_on_cpu(tmp_path, benchmark_script, shrink_paper_config):
    """The profiled step finds GP, LP and the tree in the SOLOv2 step, and none without the terms."""
    import torch

    ps = benchmark_script("paper_step")
    cfg = shrink_paper_config(_cfg("solov2_r50_voc"))
    with_terms = ps.measure(cfg, (64, 64), batch=2, iters=1, warmup=0, device=torch.device("cpu"), op_shares=True)
    assert with_terms["gp_s"] > 0 and with_terms["lp_s"] > 0 and with_terms["tree_s"] > 0
    assert with_terms["gp_s"] + with_terms["lp_s"] + with_terms["tree_s"] < with_terms["profiled_s"]
    plain = ps.measure(ps.without_apro_terms(cfg), (64, 64), batch=2, iters=1, warmup=0,
                       device=torch.device("cpu"), op_shares=True)
    assert plain["gp_s"] == plain["lp_s"] == plain["tree_s"] == 0.0
    row = ps.share_columns({"sec_per_iter": 1.2, "profiled_s": 2.0, "gp_s": 0.1, "lp_s": 0.3, "tree_s": 0.05,
                            "tree_filter_s": 0.0}, 1.0)
    assert row == {"sec_per_iter_without_apro": 1.0, "apro_added_pct": 20.0, "gp_pct": 5.0, "lp_pct": 15.0,
                   "tree_pct": 2.5}
