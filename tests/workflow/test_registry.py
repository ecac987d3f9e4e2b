"""The experiment registry (experiments/registry.yaml, apro.registry) and the workflow config schema."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from apro import cli, registry as reg

ROOT = Path(__file__).resolve().parents[2]
REGISTRY_FILE = ROOT / "experiments" / "registry.yaml"

# The model zoo of the original release's README (mask AP, AP50, AP75), copied as printed.
PAPER = {
    ("SOLOv2", "ResNet-50", "voc"): (36, 38.4, 65.4, 39.8),
    ("SOLOv2", "ResNet-101", "voc"): (36, 40.5, 67.9, 42.6),
    ("SOLOv2", "ResNet-50", "coco"): (36, 32.9, 55.2, 33.6),
    ("SOLOv2", "ResNet-101", "coco"): (36, 34.3, 57.0, 35.3),
    ("Mask2Former", "ResNet-50", "voc"): (50, 42.3, 70.6, 44.5),
    ("Mask2Former", "ResNet-101", "voc"): (50, 43.6, 72.0, 45.7),
    ("Mask2Former", "Swin-L", "voc"): (50, 49.6, 77.6, 53.1),
    ("Mask2Former", "ResNet-50", "coco"): (50, 36.1, 62.0, 36.7),
    ("Mask2Former", "ResNet-101", "coco"): (50, 38.0, 63.6, 38.7),
    ("Mask2Former", "Swin-L", "coco"): (50, 41.0, 68.3, 41.9),
}
DEMO = {"box": "box", "box_lp": "box+lp", "box_gp": "box+gp", "box_gp_lp": "box+gp+lp", "mask": "mask"}
# the semantic demo (issue 5): name -> (supervision, variant); DeepLabV3+ on synthetic_seg
SEMANTIC = {"sem_point": ("point", "point"), "sem_point_gp_lp": ("point", "point+gp+lp"),
            "sem_scribble": ("scribble", "scribble"), "sem_scribble_gp_lp": ("scribble", "scribble+gp+lp"),
            "sem_full": ("full", "full")}


@pytest.fixture(scope="module")
def registry() -> reg.Registry:
    return reg.load_registry()


def _raw() -> dict:
    return yaml.safe_load(REGISTRY_FILE.read_text())


def test_schemas_are_valid_json_schemas():
    import jsonschema

    from apro import resources

    schemas = [resources.schema("registry"), resources.schema("metafile"),
               yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())]
    for schema in schemas:
        jsonschema.validators.validator_for(schema).check_schema(schema)


def test_every_experiment_has_one_task_that_fits_its_labels(registry):
    """One notion of task: instance (mmdet, mask AP) or semantic (mmseg, mIoU); the schema ties it to the
    labels, the configs to their framework."""
    from mmengine.config import Config

    for e in registry.experiments.values():
        assert e.task in reg.TASKS
        assert (e.task == "semantic") == (e.supervision in ("point", "scribble", "full")), e.name
        if e.config:
            scope = Config.fromfile(str(e.config_path())).get("default_scope", "mmdet")
            assert scope == ("mmseg" if e.task == "semantic" else "mmdet"), e.name


def test_registry_loads_and_has_the_three_suites(registry):
    assert list(registry.suites)[:2] == ["demo", "smoke"]
    assert {"paper", "ablation", "smoke_ablation"} <= set(registry.suites)
    runnable = set(registry.runnable_suites(base=ROOT))
    assert {"demo", "smoke", "ablation", "smoke_ablation"} <= runnable  # paper: see test_paper_suite_*


def test_every_model_zoo_entry_with_its_paper_numbers(registry):
    # the model zoo (Swin-T, not in the zoo, has paper: null)
    paper = [e for e in registry.experiments_in("paper") if e.framework != "DeepLabV3+" and e.paper is not None]
    found = {(e.framework, e.backbone, e.dataset): e for e in paper}
    assert set(found) == set(PAPER) and len(paper) == len(PAPER)
    for key, (epochs, ap, ap50, ap75) in PAPER.items():
        e = found[key]
        assert e.epochs == epochs and e.iters is None, e
        assert e.paper == {"AP": ap, "AP50": ap50, "AP75": ap75}, e
        assert e.supervision == "box" and e.variant == reg.APRO_VARIANT
        assert e.config == f"experiments/paper/{e.name}.py" and e.config_path().is_file()
        # trained, its released checkpoint evaluated, and run next to the release's own code
        assert e.suites == ("paper", "released", "crosscheck")


def test_the_crosscheck_suite_is_every_entry_with_a_release_config(registry):
    """The model zoo and the Swin-T configs, each following a release config (original_recipes.yaml)."""
    from apro.crosscheck.run import release_configs

    members = [e.name for e in registry.experiments_in("crosscheck")]
    assert sorted(members) == sorted(release_configs())
    assert registry.suites["crosscheck"].compare == "release"
    assert registry.missing("crosscheck", registry.experiments["solov2_r50_coco"], base=ROOT) == []  # no data


def test_demo_entries_are_the_five_variants_with_existing_configs(registry):
    demo = [e for e in registry.experiments_in("demo") if e.framework == "SOLOv2"]
    assert [e.name for e in demo] == ["stage1"] + list(DEMO)
    stage1, variants = demo[0], demo[1:]
    assert stage1.init_from is None and stage1.supervision == "box"
    for e in variants:
        assert e.variant == DEMO[e.name]
        assert e.supervision == ("mask" if e.name == "mask" else "box")
        assert (e.framework, e.backbone, e.dataset) == ("SOLOv2", "ResNet-18", "synthetic")
        assert e.config == f"experiments/demo/{e.name}.py" and e.config_path().is_file()
        assert e.paper is None and e.iters
        assert e.init_from == "stage1"  # every variant starts from the same shared stage
    semantic = [e for e in registry.experiments_in("demo") if e.framework != "SOLOv2"]
    assert [e.name for e in semantic] == list(SEMANTIC)
    for e in semantic:
        assert e.suites == ("demo", "smoke") and e.init_from is None
        assert (e.supervision, e.variant) == SEMANTIC[e.name]
        assert (e.framework, e.backbone, e.dataset) == ("DeepLabV3+", "ResNet-18", "synthetic_seg")
        assert e.config == f"experiments/semantic/{e.name[len('sem_'):]}.py" and e.config_path().is_file()


def test_demo_iters_agree_with_the_configs(registry):
    """The registry's `iters` documents the config's schedule; they must not drift apart."""
    pytest.importorskip("mmdet")
    from mmengine.config import Config

    for e in registry.experiments_in("demo"):
        cfg = Config.fromfile(str(e.config_path()))
        assert cfg.train_cfg.max_iters == e.iters, f"{e.name}: registry iters {e.iters}, config {cfg.train_cfg.max_iters}"


def test_smoke_suite_runs_the_demo_configs_small(registry):
    smoke = registry.jobs("smoke", base=ROOT)
    assert [j.name for j in smoke] == ["stage1"] + list(DEMO) + list(SEMANTIC)
    tiny = registry.datasets["synthetic_tiny"]
    assert tiny.num_train <= 16 and tiny.num_val <= 8 and tiny.image_size <= 64
    for job in smoke:
        assert job.config == registry.experiment(job.name).config_path().resolve()
        assert job.dataset.name == "synthetic_tiny" and job.max_iters <= 10
        assert job.metrics == f"results/smoke/{job.name}/seed0/metrics.json"
        assert job.with_seed(4).done == f"results/smoke/{job.name}/seed4/train/done.json"
    demo = registry.job("demo", "box", base=ROOT)
    assert demo.max_iters is None and demo.data_root == "data/synthetic"
    # the shared stage of a suite is that suite's own training
    assert demo.init_done == "results/demo/stage1/seed0/train/done.json"
    assert registry.job("smoke", "box", base=ROOT, seed=2).init_done == "results/smoke/stage1/seed2/train/done.json"
    assert registry.job("demo", "stage1", base=ROOT).init_done is None


def test_unknown_suite_and_experiment_name_the_known_ones(registry):
    with pytest.raises(reg.RegistryError, match=r"unknown suite 'nope'.*known suites: demo, smoke, "):
        registry.jobs("nope")
    with pytest.raises(reg.RegistryError, match=r"unknown experiment 'nope'.*known experiments: stage1, box, box_lp"):
        registry.experiment("nope")
    with pytest.raises(reg.RegistryError, match=r"nope not in suite 'demo'.*stage1, box, box_lp, box_gp, box_gp_lp, mask"):
        registry.jobs("demo", "box,nope")
    assert [j.name for j in registry.jobs("demo", "box_gp_lp, box", base=ROOT)] == ["box", "box_gp_lp"]


def test_paper_suite_box_entries_are_runnable_without_data(registry, tmp_path):
    # VOC / COCO are downloaded and converted by the workflow (kind: download), so no data is needed up front
    names = [e.name for e in registry.experiments_in("paper") if e.framework in ("SOLOv2", "Mask2Former")]
    jobs = registry.jobs("paper", names, base=tmp_path)
    assert [j.name for j in jobs] == names and {j.data_root for j in jobs} == {"data/voc", "data/coco"}
    assert registry.datasets["voc"].kind == registry.datasets["coco"].kind == "download"


def test_parse_names():
    assert reg.parse_names(None) is None
    assert reg.parse_names("") is None
    assert reg.parse_names("a, b,,c") == ["a", "b", "c"]
    assert reg.parse_names(["a", "b"]) == ["a", "b"]


def test_config_files_follow_the_local_base_chain():
    files = reg.config_files(ROOT / "experiments" / "demo" / "box_gp_lp.py")
    assert [f.name for f in files] == ["box_gp_lp.py", "box.py", "_base_demo.py"]


def _load(tmp_path, data) -> reg.Registry:
    path = tmp_path / "registry.yaml"
    path.write_text(yaml.safe_dump(data))
    return reg.load_registry(path, root=ROOT)  # its configs are the repository's


# position of the first paper entry in the registry file (entries are added above it over time)
_P = [e["name"] for e in yaml.safe_load((ROOT / "experiments" / "registry.yaml").read_text())["experiments"]] \
    .index("solov2_r50_voc")


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d["experiments"][0].pop("variant"), r"'variant' is a required property"),
    (lambda d: d["experiments"][0].update(framework="YOLO"), r"experiments/0/framework"),
    (lambda d: d["experiments"][_P]["paper"].update(AP="38.4"), rf"experiments/{_P}/paper"),
    (lambda d: d["experiments"][_P].pop("epochs"), rf"experiments/{_P}"),
    (lambda d: d["experiments"][2].update(name="box"), r"used twice"),
    (lambda d: d["experiments"][1].update(init_from="nope"), r"init_from 'nope' is not an experiment"),
    (lambda d: d["experiments"][0].update(init_from="box"), r"must be trained from scratch"),
    (lambda d: d["experiments"][0].update(suites=["demo"]), r"init_from 'stage1' is not in suite\(s\) smoke"),
    (lambda d: d["experiments"][0].update(suites=["demo", "ghost"]), r"suite 'ghost' is not defined.*known suites"),
    (lambda d: d["experiments"][0].update(dataset="imagenet"), r"dataset 'imagenet' is not defined"),
    (lambda d: d["experiments"][0].update(config="experiments/demo/nope.py"), r"config experiments/demo/nope.py does not exist"),
    (lambda d: d["suites"]["smoke"]["overrides"].update(max_iters=0), r"suites/smoke/overrides/max_iters"),
    (lambda d: d.update(extra=1), r"Additional properties"),
])
def test_bad_registry_is_rejected_with_the_place_named(tmp_path, mutate, message):
    data = copy.deepcopy(_raw())
    mutate(data)
    with pytest.raises(reg.RegistryError, match=message):
        _load(tmp_path, data)


def test_missing_or_broken_registry_file(tmp_path):
    with pytest.raises(reg.RegistryError, match="registry file not found"):
        reg.load_registry(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("experiments: [\n")
    with pytest.raises(reg.RegistryError, match="not valid YAML"):
        reg.load_registry(bad)


def test_workflow_config_matches_its_schema():
    snakemake_utils = pytest.importorskip("snakemake.utils")
    config = yaml.safe_load((ROOT / "experiments" / "config.yaml").read_text())
    snakemake_utils.validate(config, str(ROOT / "workflow" / "schemas" / "config.schema.yaml"))
    assert config["suite"] == "demo" and config["train_threads"] == 1
    bad = dict(config, train_threads=0)
    with pytest.raises(Exception, match="train_threads|minimum"):
        snakemake_utils.validate(bad, str(ROOT / "workflow" / "schemas" / "config.schema.yaml"))


def test_cli_list(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    for name in list(DEMO) + ["solov2_r50_voc", "mask2former_swinl_coco"]:
        assert name in out
    assert f"paper ({len(reg.load_registry().experiments_in('paper'))} experiments, " in out
    assert cli.main(["list", "--suite", "smoke", "--names"]) == 0
    assert capsys.readouterr().out.split() == ["stage1"] + list(DEMO) + list(SEMANTIC)
    assert cli.main(["list", "--suite", "nope"]) == 2
    assert "known suites: demo, smoke, " in capsys.readouterr().err
