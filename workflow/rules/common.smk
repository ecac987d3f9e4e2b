# What the stage files (workflow/rules/*.smk) share; the Snakefile includes it before them.
# The software the rules run, the experiment registry, and every helper function of the
# rules (input functions, params, resources), grouped by the stage that uses them; the
# stage files hold rules only (snakemake --lint). Paths come from apro.layout
# (apro_layout.*), never spelled here (tests/workflow/test_layout.py).
import re  # also for the stage files' wildcard constraints (data.smk)
import sys
from pathlib import Path

from apro import custom as apro_custom  # the custom suite's configs and registry
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

# The rules declare no conda environment: environment.yml alone cannot build mmcv's ops or apro._C (its
# header lists the steps), so an env Snakemake made from it would not run them. Every job runs in the
# environment Snakemake itself runs in; on a cluster, that environment on a filesystem the nodes share.


# ---------------------------------------------------------------- registry
REGISTRY_FILE = Path(config["registry"])
if not REGISTRY_FILE.is_absolute():
    REGISTRY_FILE = ROOT / REGISTRY_FILE
try:
    SEEDS = apro_registry.parse_seeds(config["seeds"])  # the training seeds of every run
    if config["suite"] == apro_custom.SUITE:  # your dataset: its configs and registry, written from the config
        REGISTRY_FILE = Path(apro_custom.write_suite(apro_custom.CustomSpec.from_config(config)))
    REGISTRY = apro_registry.load_registry(REGISTRY_FILE)
    SUITE = REGISTRY.suite(config["suite"]).name
    JOBS = REGISTRY.jobs(SUITE, config.get("experiments"))
except (apro_registry.RegistryError, apro_custom.CustomError) as exc:
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
VOC_SEMANTIC = "voc_aug"  # the semantic paper setting's dataset (registry), laid out by prepare_voc_semantic
VOC_SOURCES = str(apro_voc.SOURCES_FILE)  # the public VOC label archives (voc_fetch) and their sha256


def dataset_spec(wildcards):
    return REGISTRY.datasets[wildcards.dataset]


# ---------------------------------------------------------------- train.smk, evaluate.smk
# A rule hands `apro` the experiment, suite and seed (and the registry file); `apro` reads every path and
# setting of the run from the registry itself. The functions below give Snakemake what it needs to plan the
# job: the files the run reads, its threads and its resources.
REGISTRY_ARG = f"--registry {shown_path(REGISTRY_FILE)}"


def gpus_of(wildcards):
    """GPUs of the job's experiment (registry `gpus`: the paper settings); 0 for a CPU experiment."""
    return registry_job(wildcards).experiment.gpus or 0


def run_inputs(job):
    """What a training or an evaluation of ``job`` reads: its config files, the dataset (checked) and, for a
    semantic experiment on a synthetic dataset, the labels made beside it (a semantic layout holds its own)."""
    inputs = {"config": config_inputs(job), "data": job.data_root}
    if job.dataset.has_coco_instances:
        inputs["validated"] = apro_layout.validated_marker(job.dataset.name)
        if job.experiment.task == "semantic":
            inputs["labels"] = job.dataset.label_root
    return inputs


def train_inputs(wildcards):
    job = registry_job(wildcards)
    inputs = run_inputs(job)
    inputs["weights"] = apro_weights.weights_in_config(job.config)  # its backbone checkpoint ([] for the demo)
    if job.init_done:  # a shared first stage (registry: init_from) is trained first
        inputs["init"] = job.init_done
    return inputs


def evaluate_inputs(wildcards):
    job = registry_job(wildcards)
    # a trained work dir, or (suite of released checkpoints) the converted checkpoint
    return {**run_inputs(job), "trained": job.checkpoint or job.done}


def released_inputs(wildcards):
    job = registry_job(wildcards)
    if job.released is None:
        raise WorkflowError(f"{wildcards.suite}/{wildcards.experiment}: not a suite of released checkpoints")
    return {"config": config_inputs(job), "checkpoint": apro_layout.weights_file(job.released)}


def gpu_launcher(count):
    """`apro with-gpus N --` before the command of a job on N GPUs: its own devices of the machine's pool
    (apro/gpu_pool.py; under Slurm the allocation's), so that jobs side by side never share one."""
    return f"{APRO} with-gpus {count} -- " if count else ""


def train_launcher(wildcards):
    """`apro`, or torchrun starting one `apro` per GPU of the node (the paper configs read WORLD_SIZE), on the
    experiment's GPUs."""
    gpus = gpus_of(wildcards)
    run = APRO if gpus <= 1 else f"{PYTHON} -m torch.distributed.run --standalone --nproc_per_node={gpus} -m apro"
    return gpu_launcher(gpus) + run


def evaluate_launcher(wildcards):
    """`apro`, on one GPU for a GPU experiment."""
    return gpu_launcher(min(gpus_of(wildcards), 1)) + APRO


CPU_THREADS = {"train": "train_threads", "evaluate": "eval_threads"}  # the config's key per stage


def job_threads(stage):
    """The experiment's own `threads` (registry; training only), else gpu_resources' for a GPU experiment,
    else the workflow's train_threads / eval_threads."""
    def threads(wildcards):
        exp = registry_job(wildcards).experiment
        if stage == "train" and exp.threads:
            return exp.threads
        return config["gpu_resources"][stage]["threads"] if exp.gpus else config[CPU_THREADS[stage]]

    return threads


def process_threads(wildcards, threads):
    """--threads of each `apro` process: the job's, or one each under torchrun (data loader workers do the rest)."""
    return 1 if gpus_of(wildcards) > 1 else threads


def job_resources(stage):
    """mem_mb, runtime, gpus, gres of a training or an evaluation: the config's `resources` for a CPU
    experiment; for a GPU one, `gpu_resources`, a training on all the experiment's GPUs, an evaluation on one."""
    def get(key):
        def value(wildcards):
            gpus = gpus_of(wildcards)
            if not gpus:
                return {**resources_of(stage), "gpus": 0, "gres": ""}[key]
            n = gpus if stage == "train" else 1
            spec = config["gpu_resources"][stage]
            return {"mem_mb": spec["mem_mb_per_gpu"] * n, "runtime": spec["runtime"], "gpus": n, "gres": f"gpu:{n}"}[key]

        return value

    return {key: get(key) for key in ("mem_mb", "runtime", "gpus", "gres")}


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


# ---------------------------------------------------------------- report.smk
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
    """The trained model of the instance figures, by name (apro visualize --model), or none."""
    job = figures_model_job(wildcards)
    return f" --model {job.name} --suite {job.suite} --seed {job.seed} {REGISTRY_ARG}" if job is not None else ""
