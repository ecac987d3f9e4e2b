"""The run policy of every trainer (apro.runs): a work dir of other settings is moved aside, never resumed;
under torchrun only rank 0 decides. Regression tests for two faults of the policy living in the CLI:
`apro train-semantic` resumed (or reported) the old run after its config changed, and every torchrun
rank moved the work dir on its own."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_work_dir_of_a_run_with_other_settings_is_moved_aside_not_resumed(tmp_path):
    from apro import runs
    from apro.data.synthetic import generate

    data = tmp_path / "data"
    generate(data, num_train=2, num_val=1, image_size=32, progress_every=0)
    config = tmp_path / "exp.py"
    config.write_text(f"_base_ = [{str(ROOT / 'experiments' / 'demo' / 'box.py')!r}]\n")
    work = tmp_path / "work"

    def run(seed=0):
        return runs.fingerprint(config, runs.instance_data(data), seed, None)

    first = run()
    assert first["config_files"] == ["exp.py", "box.py", "_base_demo.py"] and len(first["config_sha256"]) == 3
    assert runs.prepare_work_dir(work, first) is None
    (work / "iter_5.pth").write_text("checkpoint")
    assert runs.prepare_work_dir(work, run()) is None  # same settings: kept for the resume
    assert (work / "iter_5.pth").is_file()
    config.write_text(config.read_text() + "model = dict(mask_head=dict(loss_proj=dict(loss_weight=1.0)))\n")
    moved = runs.prepare_work_dir(work, run())  # the config changed: moved aside, a fresh work dir
    assert moved is not None and (moved / "iter_5.pth").is_file() and moved.name.startswith("work.stale-")
    assert sorted(p.name for p in work.iterdir()) == ["apro_run.json"]
    assert runs.prepare_work_dir(work, run(seed=1)) is not None  # so does another seed


@pytest.mark.filterwarnings("ignore")
def test_semantic_training_whose_config_changed_starts_afresh(tmp_path):
    """`apro train` of an mmseg config on a finished work dir whose config changed: a new run, the old one
    kept aside."""
    pytest.importorskip("mmseg")
    from apro.data.synthetic import generate
    from apro.data.sparse_labels import make_sparse_labels

    def train(config, work, data, labels, seed, max_iters):  # one process per training, as the workflow runs them
        proc = subprocess.run([sys.executable, "-m", "apro", "train", config, "--work-dir", work,
                               "--data-root", data, "--label-root", labels, "--seed", str(seed),
                               "--max-iters", str(max_iters), "--threads", "1"], cwd=ROOT, capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        return json.loads((Path(work) / "done.json").read_text())

    data, labels = tmp_path / "data", tmp_path / "labels"
    generate(data, num_train=2, num_val=1, image_size=32, progress_every=0)
    make_sparse_labels(data, labels, seed=0)
    first = tmp_path / "point_a.py"
    first.write_text(f"_base_ = [{str(ROOT / 'experiments' / 'semantic' / 'point.py')!r}]\n")
    second = tmp_path / "point_b.py"
    second.write_text(first.read_text() + "model = dict(decode_head=dict(dropout_ratio=0.2))\n")
    work = tmp_path / "work"
    done_a = train(str(first), str(work), str(data), str(labels), seed=0, max_iters=1)
    assert done_a["config"] == str(first.resolve())
    done_b = train(str(second), str(work), str(data), str(labels), seed=0, max_iters=1)
    assert done_b["config"] == str(second.resolve()) and done_b["resumed_from"] is None  # trained, not reused
    stale = [p for p in tmp_path.iterdir() if p.name.startswith("work.stale-")]
    assert len(stale) == 1 and json.loads((stale[0] / "done.json").read_text())["config"] == str(first.resolve())
    # the same settings again: complete, nothing to do
    assert train(str(second), str(work), str(data), str(labels), seed=0, max_iters=1) == done_b


_RANK = """
import json, sys
from apro import runs
moved = runs.prepare_work_dir(sys.argv[1], json.loads(sys.argv[2]), wait_s=60)
print("MOVED" if moved else "KEPT", flush=True)
"""


def test_only_rank_0_moves_a_stale_work_dir_and_the_others_wait(tmp_path):
    """Two torchrun ranks preparing one stale work dir: one move (by rank 0), rank 1 waits for it."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "apro_run.json").write_text(json.dumps({"seed": 0}))
    (work / "iter_5.pth").write_text("checkpoint of the old run")
    run = {"seed": 1}
    env = dict(os.environ, WORLD_SIZE="2", PYTHONPATH=str(ROOT))

    def start(rank):
        return subprocess.Popen([sys.executable, "-c", _RANK, str(work), json.dumps(run)],
                                env=dict(env, RANK=str(rank)), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)

    late = start(1)  # rank 1 first: it must not decide
    time.sleep(2.0)
    assert late.poll() is None, late.communicate()  # still waiting for rank 0
    assert (work / "iter_5.pth").is_file()  # and it moved nothing
    first = start(0)
    outs = [p.communicate(timeout=60) for p in (first, late)]
    assert [p.returncode for p in (first, late)] == [0, 0], outs
    assert [o[0].strip() for o in outs] == ["MOVED", "KEPT"]
    stale = [p for p in tmp_path.iterdir() if p.name.startswith("work.stale-")]
    assert len(stale) == 1 and (stale[0] / "iter_5.pth").is_file()
    assert json.loads((work / "apro_run.json").read_text()) == run and not (work / "iter_5.pth").exists()


def test_a_rank_without_rank_0_gives_up_with_a_clear_error(tmp_path, monkeypatch):
    from apro import runs

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    with pytest.raises(runs.RunError, match=r"rank 1 waited 0 s for rank 0 to prepare .*work"):
        runs.prepare_work_dir(tmp_path / "work", {"seed": 0}, wait_s=0.3)


def test_train_and_evaluate_accept_a_registry_experiment_name():
    from apro import cli

    def filled(*argv):
        args = cli.make_parser().parse_args(list(argv))
        cli.fill_from_registry(args)
        return args

    args = filled("train", "box_gp_lp", "--suite", "smoke", "--seed", "3")
    assert (args.config, args.work_dir, args.data_root, args.max_iters, args.init_from, args.seed) == (
        str(ROOT / "experiments" / "demo" / "box_gp_lp.py"), "results/smoke/box_gp_lp/seed3/train", "data/synthetic_tiny",
        5, "results/smoke/stage1/seed3/train/done.json", 3)  # the run of seed 3, started from stage1's seed-3 run
    args = filled("evaluate", "mask", "--suite", "smoke")
    assert (args.checkpoint, args.data_root, args.out) == (
        "results/smoke/mask/seed0/train", "data/synthetic_tiny", "results/smoke/mask/seed0/metrics.json")
    assert filled("evaluate", "solov2_r50_voc", "--suite", "released").checkpoint == \
        "results/released/solov2_r50_voc/checkpoint.pth"
    assert filled("train", "box", "--suite", "smoke", "--max-iters", "2").max_iters == 2  # given options win
    semantic = filled("train", "sem_point", "--suite", "smoke")  # an mmseg experiment gets its label root
    assert (semantic.data_root, semantic.label_root) == ("data/synthetic_tiny", "data/semantic/synthetic_tiny")
    paper = filled("train", "deeplabv3plus_r101_voc_point", "--suite", "paper_semantic")  # a semantic layout
    assert (paper.config, paper.data_root, paper.label_root, paper.work_dir) == (
        str(ROOT / "experiments" / "semantic" / "paper_voc_point.py"), "data/voc_aug", "data/voc_aug/labels",
        "results/paper_semantic/deeplabv3plus_r101_voc_point/seed0/train")
    assert filled("train", "stage1", "--suite", "demo").threads == 2  # registry: threads
    config = str(ROOT / "experiments" / "demo" / "box.py")
    assert filled("train", config, "--work-dir", "w").work_dir == "w"  # a path is left as it is
    with pytest.raises(cli.CLIError, match="nope: neither a config file nor a runnable experiment.*box_gp_lp"):
        filled("train", "nope")
    with pytest.raises(cli.CLIError, match="released checkpoint; nothing to train"):
        filled("train", "solov2_r50_voc", "--suite", "released")
    with pytest.raises(cli.CLIError, match="--suite smoke: only with an experiment name"):
        filled("train", config, "--suite", "smoke")



def test_the_mmseg_plugin_does_not_import_the_mmdet_plugin():
    """The semantic segmentor's losses come from apro.losses (torch only), not from the mmdet plugin.

    (mmseg itself imports mmdet when it is installed, for its Mask2Former heads; the losses never do.)"""
    pytest.importorskip("mmseg")
    code = ("import sys, apro.losses.box, apro.losses.baselines; print('mmdet' in sys.modules, 'mmseg' in sys.modules); "
            "import apro.models.segmentor; print(any(m in sys.modules for m in "
            "('apro.models.box_solov2', 'apro.models.mask2former_apro')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-3:] == ["False", "False", "False"], out.stdout


@pytest.mark.parametrize("one_scheduler", [True, False])
def test_max_iters_scales_one_scheduler_or_a_list(one_scheduler):
    """Mask2Former's paper configs give one scheduler (a dict), SOLOv2's a list: --max-iters scales both."""
    from mmengine.config import Config

    from apro import runs

    step = dict(type="MultiStepLR", by_epoch=False, begin=0, end=1000, milestones=[800, 900])
    cfg = Config(dict(train_cfg=dict(max_iters=1000), default_hooks=dict(checkpoint=dict(interval=500)),
                      param_scheduler=step if one_scheduler else [dict(type="LinearLR", by_epoch=False, end=10),
                                                                  step]))
    runs.set_max_iters(cfg, 100)
    scaled = cfg.param_scheduler if one_scheduler else cfg.param_scheduler[1]
    assert cfg.train_cfg.max_iters == 100 and scaled.end == 100 and scaled.milestones == [80, 90]
    assert cfg.default_hooks.checkpoint.interval == 100
