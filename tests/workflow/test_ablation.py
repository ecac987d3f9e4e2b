"""The ablation suite: registry entries, configs, the workflow's plan, and a smoke run of two new terms."""
from __future__ import annotations


import pytest

import json

from apro import layout
from apro import registry as reg

pytest.importorskip("snakemake")


def test_every_ablation_row_is_a_registry_experiment_with_a_config():
    registry = reg.load_registry()
    groups = registry.ablations
    assert [g["name"] for g in groups][:1] == ["Pairwise terms"]
    names = {r["experiment"] for g in groups for r in g["rows"]}
    for name in names:
        exp = registry.experiment(name)
        assert exp.config_path().is_file()
        assert "ablation" in exp.suites or "demo" in exp.suites
    # every ablation experiment starts from the shared stage1 (as the demo variants) and is shown somewhere
    trained = [e for e in registry.experiments_in("ablation") if e.name != "stage1"]
    assert all(e.init_from == "stage1" for e in trained)
    assert {e.name for e in trained} <= names


def test_ablation_configs_set_the_settings():
    from mmengine.config import Config

    def head(name):
        return Config.fromfile(str(reg.load_registry().experiment(name).config_path())).model.mask_head
    assert tuple(head("ablation_gp_pass1").loss_gp.zetas) == (0.01,)
    assert tuple(head("ablation_zg_005").loss_gp.zetas) == (0.05, 0.07)
    assert head("ablation_lp_iters_5").loss_lp.iterations == 5
    assert head("ablation_lp_kernel_3").loss_lp.kernel_size == 3
    h = head("ablation_boxinst")
    assert h.loss_gp is None and h.loss_lp is None and h.loss_boxinst.color_thresh == 0.3
    h = head("ablation_tree_lp")
    assert h.loss_gp is None and h.loss_lp.iterations == 20 and tuple(h.loss_tree.zetas) == (0.01, 0.07)


def test_ablation_suite_plan(tmp_path, snakemake, planned):
    proc = snakemake("--cores", "2", "-n", "--config", "suite=ablation", directory=tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    plan = planned(out)
    from apro.registry import load_registry

    members = load_registry().experiments_in("ablation")
    trained = len({e.name for e in members} | {e.init_from for e in members if e.init_from})  # with stage1
    assert plan["train"] == trained and plan["evaluate"] == trained, plan
    assert plan["visualize"] == 1 and plan["html_report"] == 1 and plan["report"] == 1, plan


@pytest.mark.slow
def test_smoke_ablation_end_to_end(tmp_path, snakemake):
    """Two of the new pairwise terms trained 5 iterations on tiny data, evaluated, figured and reported."""
    proc = snakemake("--cores", "2", "--config", "suite=smoke_ablation", "experiments=ablation_boxinst,ablation_tree",
                     directory=tmp_path, timeout=900)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-5000:]
    report = tmp_path / "reports" / "smoke_ablation"
    text = (report / "index.html").read_text()
    assert "results/smoke_ablation/ablation_tree" in text and "results/smoke_ablation/ablation_boxinst" in text
    figs = sorted(p.name for p in (report / "figures").glob("*.png"))
    assert any(f.startswith("affinity_") for f in figs) and any(f.startswith("instances_") for f in figs), figs
    assert (tmp_path / "results" / "benchmarks" / "smoke_ablation" / "html_report.tsv").is_file()
    # every training and evaluation recorded itself, and the report shows the records
    for name in ("ablation_boxinst", "ablation_tree"):
        record = tmp_path / layout.run_record(layout.work_dir("smoke_ablation", name, 0))
        assert json.loads(record.read_text())["status"] == "done"
    assert "smoke_ablation/ablation_tree/seed0/train.run.json" in text
