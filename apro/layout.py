"""Every path the workflow reads and writes, in one place (relative to the working directory).

The rules format their patterns from these functions (pass Snakemake wildcards such as
``"{suite}"`` for the names), and the CLI, the registry's jobs and the reports take their paths
from here, so renaming a folder is one edit. ``tests/workflow/test_layout.py`` fails when one of these
paths is spelled anywhere else.

    data/<dataset>/                             datasets (synthetic: apro make-data; paper: converted downloads)
    data/semantic/<dataset>/                    point / scribble / dense label PNGs (apro make-sparse-labels)
    data/downloads/voc/<source>                 ScribbleSup / point label sources
    downloads/<archive>                         dataset archives
    weights/<file>                              ImageNet weights, the release's checkpoints (released/)
    results/data/<dataset>/validated.json       apro validate-data
    results/<suite>/<experiment>/seed<k>/train/         a training's work dir (seed k), done.json when finished
    results/<suite>/<experiment>/seed<k>/metrics.json   apro evaluate (mask AP or mIoU) of that run
    <output stem>.run.json                      what a step records of itself beside its output (train.run.json,
                                                metrics.run.json, ...): start, end, wall time, peak memory, status
    results/<suite>/<experiment>/checkpoint.pth         a released checkpoint, converted
    results/custom/registry.yaml, configs/      the custom suite's registry and configs (apro custom-configs)
    results/ops/build.done                      the compiled ops
    results/logs/<group>/<name>[.<stage>].log   one log per job (name: <experiment>.seed<k> for a run)
    results/benchmarks/<group>/<name>[.<stage>].tsv   Snakemake's benchmark file per job
    reports/<suite>/                            results.csv, summary.md/html, index.html, figures/, ablation.csv
    reports/<suite>/metafiles/<entry>/metafile.yml   per model-zoo entry (apro report), mmdetection's convention
    reports/benchmarks/ops.csv                  the ops benchmark
    .venv-original/                             the APro release's own stack (apro original-env)
    results/crosscheck/<entry>/crosscheck.json  the release and this suite side by side (apro crosscheck)
    reports/crosscheck/summary.md, summary.csv  the side-by-side check of every entry
"""
from __future__ import annotations

from typing import Dict

DATA, RESULTS, REPORTS, WEIGHTS, DOWNLOADS = "data", "results", "reports", "weights", "downloads"
ORIGINAL_VENV = ".venv-original"


# ---------------------------------------------------------------- data, downloads, weights

def data_dir(dataset: str) -> str:
    return f"{DATA}/{dataset}"


def sparse_labels_dir(dataset: str) -> str:
    """The label PNGs of a synthetic dataset (``apro make-sparse-labels``)."""
    return f"{DATA}/semantic/{dataset}"


def semantic_label_root(dataset: str) -> str:
    """The label folder inside a semantic-segmentation layout (``apro prepare-voc-semantic``)."""
    return f"{data_dir(dataset)}/labels"


def voc_label_source(source: str) -> str:
    return f"{DATA}/downloads/voc/{source}"


def download(archive: str) -> str:
    return f"{DOWNLOADS}/{archive}"


def weights_file(name: str) -> str:
    return f"{WEIGHTS}/{name}"


def validated_marker(dataset: str) -> str:
    return f"{RESULTS}/data/{dataset}/validated.json"


# ---------------------------------------------------------------- one experiment of one suite

def experiment_dir(suite: str, experiment: str) -> str:
    return f"{RESULTS}/{suite}/{experiment}"


def run_dir(suite: str, experiment: str, seed) -> str:
    """One run of an experiment: its training seed (``seed`` may be the wildcard ``"{seed}"``)."""
    return f"{experiment_dir(suite, experiment)}/seed{seed}"


def run_name(experiment: str, seed) -> str:
    """A run's name in logs and benchmark files: ``<experiment>.seed<k>``."""
    return f"{experiment}.seed{seed}"


def work_dir(suite: str, experiment: str, seed) -> str:
    return f"{run_dir(suite, experiment, seed)}/train"


def done_file(suite: str, experiment: str, seed) -> str:
    return f"{work_dir(suite, experiment, seed)}/done.json"


def metrics_file(suite: str, experiment: str, seed) -> str:
    return f"{run_dir(suite, experiment, seed)}/metrics.json"


def converted_checkpoint(suite: str, experiment: str) -> str:
    """The release's checkpoint of an experiment, converted for this suite (``apro convert-checkpoint``)."""
    return f"{experiment_dir(suite, experiment)}/checkpoint.pth"


# ---------------------------------------------------------------- what a run records of itself

def run_record(output: str) -> str:
    """The record a step writes of itself (start, end, wall time, peak memory, status) next to its output:
    ``<output stem>.run.json`` beside a file (``metrics.json`` -> ``metrics.run.json``), ``<folder>.run.json``
    beside a folder (a training's work dir ``train`` -> ``train.run.json``)."""
    head, sep, name = output.rstrip("/").rpartition("/")
    stem = name.rsplit(".", 1)[0] if "." in name else name
    return f"{head}{sep}{stem}.run.json"


# ---------------------------------------------------------------- Snakemake's logs and benchmark files of the jobs

def log_file(stage: str, group: str, name: str) -> str:
    """``results/logs/<group>/<name>.<stage>.log``; group is a suite, ``data`` or ``weights``."""
    return f"{RESULTS}/logs/{group}/{name}.{stage}.log"


def benchmark_file(stage: str, group: str, name: str) -> str:
    """``results/benchmarks/<group>/<name>.<stage>.tsv`` (Snakemake's ``benchmark:`` file)."""
    return f"{RESULTS}/benchmarks/{group}/{name}.{stage}.tsv"


def benchmarks_dir() -> str:
    """Where Snakemake's benchmark files of all jobs go."""
    return f"{RESULTS}/benchmarks"


def suite_results_dir(suite: str) -> str:
    return f"{RESULTS}/{suite}"


def job_log(group: str, job: str) -> str:
    """The log of a job that is not per experiment: ``results/logs/<group>/<job>.log`` (e.g. ops/build_ops)."""
    return f"{RESULTS}/logs/{group}/{job}.log"


def job_benchmark(group: str, job: str) -> str:
    return f"{RESULTS}/benchmarks/{group}/{job}.tsv"


# ---------------------------------------------------------------- the ops, and what people read

def ops_marker() -> str:
    return f"{RESULTS}/ops/build.done"


def ops_table() -> str:
    return f"{REPORTS}/benchmarks/ops.csv"


def custom_dir() -> str:
    """The custom suite's generated registry.yaml and configs/ (apro.custom)."""
    return f"{RESULTS}/custom"


def report_dir(suite: str) -> str:
    return f"{REPORTS}/{suite}"


def report_files(suite: str) -> Dict[str, str]:
    d = report_dir(suite)
    return {"csv": f"{d}/results.csv", "md": f"{d}/summary.md", "html": f"{d}/summary.html"}


def html_page(suite: str) -> str:
    return f"{report_dir(suite)}/index.html"


def figures_dir(suite: str) -> str:
    return f"{report_dir(suite)}/figures"


def ablation_table(suite: str) -> str:
    return f"{report_dir(suite)}/ablation.csv"


def metafiles_dir(suite: str) -> str:
    """The metafiles of a suite's model-zoo entries (``apro report``; empty for a suite without any)."""
    return f"{report_dir(suite)}/metafiles"


def metafile(suite: str, entry: str) -> str:
    """``reports/<suite>/metafiles/<entry>/metafile.yml``: one model-zoo entry, mmdetection's metafile convention."""
    return f"{metafiles_dir(suite)}/{entry}/metafile.yml"


# ---------------------------------------------------------------- the release side by side

def original_venv() -> str:
    """The APro release's own stack, built by ``apro original-env``."""
    return ORIGINAL_VENV


def original_env_record() -> str:
    """Written last by ``apro original-env``: the venv is complete."""
    return f"{ORIGINAL_VENV}/apro-original-env.json"


def crosscheck_dir() -> str:
    return f"{RESULTS}/crosscheck"


def crosscheck_result(entry: str) -> str:
    return f"{crosscheck_dir()}/{entry}/crosscheck.json"


def crosscheck_report_files() -> Dict[str, str]:
    d = report_dir("crosscheck")
    return {"md": f"{d}/summary.md", "csv": f"{d}/summary.csv"}
