# What the stage files (workflow/rules/*.smk) share; the Snakefile includes it before them.
# The software the rules run, the experiment registry, and every helper function of the
# rules (input functions, params, resources), grouped by the stage that uses them; the
# stage files hold rules only (snakemake --lint). Paths come from apro.layout
# (apro_layout.*), never spelled here (tests/workflow/test_layout.py).
import re  # also for the stage files' wildcard constraints (paper.smk)
import sys
from pathlib import Path

from snakemake.settings.types import DeploymentMethod

from apro import weights as apro_weights  # the weights table (no torch)
from apro.data import coco_download as apro_downloads  # the dataset archives table
from apro.data import voc as apro_voc  # where the VOC label sources are listed

# ---------------------------------------------------------------- software
# The interpreter running Snakemake (the project's venv when started as
# `.venv/bin/python -m snakemake`) and its `apro` script, so the rules work
# without an activated environment. Before `pip install -e .` has registered
# the script, fall back to running the package from the repository root.
# Each rule passes them to its shell command as params (params.apro,
# params.python), so they are recorded with the job's outputs.
PYTHON = sys.executable
_apro_script = Path(sys.executable).parent / "apro"
APRO = str(_apro_script) if _apro_script.exists() else f"{sys.executable} -m apro"

# Every stage file's rules name the suite's one environment file in their `conda` directive
# (CONDA_ENV, relative to workflow/rules/), which documents the software of every step. The
# rules run in the environment Snakemake itself runs in (the venv of `make setup`, or the
# conda env of environment.yml after the manual steps in its header). --use-conda is
# refused: an env made from environment.yml alone lacks mmcv's compiled ops and the suite
# with apro._C, and the rules would still run PYTHON / APRO above, not that env's.
CONDA_ENV = "../../environment.yml"
if DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method:
    raise WorkflowError(
        "--use-conda / --software-deployment-method conda is not supported: create the "
        "environment once (`make setup`, or environment.yml and its steps) and run "
        "Snakemake from it, e.g. `.venv/bin/python -m snakemake ...`"
    )

# ---------------------------------------------------------------- registry
REGISTRY_FILE = Path(config["registry"])
if not REGISTRY_FILE.is_absolute():
    REGISTRY_FILE = ROOT / REGISTRY_FILE
try:
    SEEDS = apro_registry.parse_seeds(config["seeds"])  # the training seeds of every run
    REGISTRY = apro_registry.load_registry(REGISTRY_FILE)
    SUITE = REGISTRY.suite(config["suite"]).name
    JOBS = REGISTRY.jobs(SUITE, config.get("experiments"))
except apro_registry.RegistryError as exc:
    raise WorkflowError(f"config suite={config['suite']!r}, seeds={config['seeds']!r}: {exc}") from None


def shown_path(path):
    """A path as the rules print it: relative to the working directory when under it."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def registry_job(wildcards):
    """The (suite, experiment) job of a rule's wildcards; an unknown one names the known ones."""
    try:
        return REGISTRY.job(wildcards.suite, wildcards.experiment, seed=int(wildcards.get("seed", SEEDS[0])))
    except apro_registry.RegistryError as exc:
        raise WorkflowError(str(exc)) from None


def resources_of(stage):
    return config["resources"][stage]


def config_inputs(job):
    """The config file of a job and the files it inherits from (_base_), as the rules print them."""
    return [shown_path(p) for p in apro_registry.config_files(job.config)]


# ---------------------------------------------------------------- data.smk
SYNTHETIC_DATASETS = [name for name, ds in REGISTRY.datasets.items() if ds.kind == "synthetic"]


def dataset_spec(wildcards):
    return REGISTRY.datasets[wildcards.dataset]


# ---------------------------------------------------------------- train.smk, evaluate.smk
def train_inputs(wildcards):
    job = registry_job(wildcards)
    inputs = {
        "config": config_inputs(job),
        "data": job.data_root,
        "validated": apro_layout.validated_marker(job.dataset.name),
    }
    if job.init_done:  # a shared first stage (registry: init_from) is trained first
        inputs["init"] = job.init_done
    return inputs


def max_iters_arg(wildcards):
    n = registry_job(wildcards).max_iters
    return f" --max-iters {n}" if n else ""


def train_threads(wildcards):
    """The experiment's own `threads` (registry), else the workflow's train_threads."""
    return registry_job(wildcards).experiment.threads or config["train_threads"]


def init_arg(wildcards):
    init = registry_job(wildcards).init_done
    return f" --init-from {init}" if init else ""


def evaluate_inputs(wildcards):
    job = registry_job(wildcards)
    return {
        "config": config_inputs(job),
        "data": job.data_root,
        "validated": apro_layout.validated_marker(job.dataset.name),
        # a trained work dir, or (suite of released checkpoints) the converted checkpoint
        "trained": job.checkpoint or job.done,
    }


# ---------------------------------------------------------------- semantic.smk
VOC_SEMANTIC = "voc_aug"  # the paper setting's dataset (experiments/registry.yaml), laid out by prepare_voc_semantic


def semantic_inputs(wildcards):
    job = registry_job(wildcards)
    inputs = {
        "config": config_inputs(job),
        "data": job.data_root,
        "weights": pretrained_weights(job),  # the weights/<file> the config names ([] for the demo)
    }
    if job.dataset.has_coco_instances:
        # a semantic layout (data/voc_aug) is checked by the rule writing it and holds its labels
        inputs["validated"] = apro_layout.validated_marker(job.dataset.name)
        inputs["labels"] = job.dataset.label_root
    return inputs


def semantic_resources(stage):
    """mem_mb, runtime, gpus, gres: the config's for the demo; one GPU (one process) for the paper setting."""
    paper = {"train": {"mem_mb": 16000, "runtime": 3 * 24 * 60, "gpus": 1, "gres": "gpu:1"},
             "evaluate": {"mem_mb": 8000, "runtime": 120, "gpus": 1, "gres": "gpu:1"}}[stage]
    demo = dict(resources_of(stage), gpus=0, gres="")

    def get(key):
        return lambda w: (paper if registry_job(w).dataset.kind == "download" else demo)[key]

    return {key: get(key) for key in ("mem_mb", "runtime", "gpus", "gres")}


# ---------------------------------------------------------------- paper.smk, released.smk
def pretrained_weights(job):
    """weights/<file> named by the job's config (its backbone checkpoint); [] for the demo configs."""
    return apro_weights.weights_in_config(job.config)


def paper_train_inputs(wildcards):
    job = registry_job(wildcards)
    return {
        "config": config_inputs(job),
        "data": job.data_root,
        "validated": apro_layout.validated_marker(job.dataset.name),
        "weights": pretrained_weights(job),
    }


def released_inputs(wildcards):
    job = registry_job(wildcards)
    if job.released is None:
        raise WorkflowError(f"{wildcards.suite}/{wildcards.experiment}: not a suite of released checkpoints")
    return {
        "config": config_inputs(job),
        "checkpoint": apro_layout.weights_file(job.released),
    }


# ---------------------------------------------------------------- crosscheck.smk
#: suites whose jobs compare against the release (apro crosscheck) instead of training
COMPARE_SUITES = [name for name, suite in REGISTRY.suites.items() if suite.compare]
#: the suites `rule report` serves (a compare suite has its own summary in the same folder)
REPORTED_SUITES = "|".join(re.escape(name) for name in REGISTRY.suites if name not in COMPARE_SUITES)


def original_arg(wildcards):
    """--original <clone> from the config's `original` (none: apro original-env clones the release)."""
    return f" --original {config['original']}" if config.get("original") else ""


def crosscheck_job(wildcards):
    """The entry's job in the configured compare suite (its config; the check needs no dataset)."""
    if SUITE not in COMPARE_SUITES:
        raise WorkflowError(f"crosscheck {wildcards.experiment}: a job of a compare suite, e.g. "
                            f"--config suite={COMPARE_SUITES[0]}; the configured suite {SUITE!r} is not one")
    try:
        return REGISTRY.job(SUITE, wildcards.experiment)
    except apro_registry.RegistryError as exc:
        raise WorkflowError(str(exc)) from None


def crosscheck_inputs(wildcards):
    return {"venv": apro_layout.original_env_record(), "config": config_inputs(crosscheck_job(wildcards))}


def crosscheck_mem_mb(wildcards):
    """Both stacks' models, gradients and optimiser states at once: Swin-L's need twice the others'."""
    return 16000 if crosscheck_job(wildcards).experiment.backbone == "Swin-L" else 8000


# ---------------------------------------------------------------- report.smk, figures.smk
def suite_jobs(suite):
    """The runs of a suite, one job per (experiment, seed): only the selected experiments
    (config experiments) for the configured suite."""
    try:
        jobs = JOBS if suite == SUITE else REGISTRY.jobs(suite)
    except apro_registry.RegistryError as exc:
        raise WorkflowError(str(exc)) from None
    return [job.with_seed(seed) for job in jobs for seed in SEEDS]


def suite_metrics(wildcards):
    """metrics.json of every job of the suite (only the selected ones for the configured suite)."""
    return [job.metrics for job in suite_jobs(wildcards.suite)]


def figures_model_job(wildcards):
    """The job whose checkpoint the instance figures show, or None (affinity figures only)."""
    jobs = [j.with_seed(SEEDS[0]) for j in (JOBS if wildcards.suite == SUITE else [])
            if j.checkpoint is None]  # trained ones, of the first seed
    for job in jobs:
        if job.experiment.variant == apro_registry.APRO_VARIANT:
            return job
    return next((job for job in jobs if job.experiment.supervision == "box"), None)


def suite_has_figures(suite):
    """The figures read COCO instance annotations: every suite's data has them but a semantic layout."""
    return suite_jobs(suite)[0].dataset.has_coco_instances


def figures_inputs(wildcards):
    jobs = suite_jobs(wildcards.suite)
    out = {"data": jobs[0].data_root, "validated": apro_layout.validated_marker(jobs[0].dataset.name)}
    job = figures_model_job(wildcards)
    if job is not None:
        out["done"] = job.done
    return out


def figures_model_args(wildcards):
    job = figures_model_job(wildcards)
    return f" --config {shown_path(job.config)} --work-dir {job.work_dir}" if job is not None else ""
