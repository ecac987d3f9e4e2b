# APro reproducibility suite: the workflow's entry point.
#
#   .venv/bin/python -m snakemake --cores 2                        # the demo suite -> reports/demo/
#   .venv/bin/python -m snakemake --cores 2 --config suite=smoke   # tiny data, 5 iterations, every stage
#   .venv/bin/python -m snakemake --cores 2 -n                     # dry run: what would run, and why
#   .venv/bin/python -m snakemake --cores 2 --config experiments=box,box_gp_lp   # part of a suite
#
# What to run comes from the experiment registry (experiments/registry.yaml,
# read by apro.registry, like the `apro` CLI); the settings from
# experiments/config.yaml (validated against workflow/schemas/config.schema.yaml),
# overridable with --config. The rules live in workflow/rules/*.smk, grouped by
# stage (ops, data, train, evaluate, report); each calls an `apro` entry point
# that also works by hand. Extra settings (printed commands, resource caps,
# rerun-incomplete) are in the workflow profile, which has to be named:
#   --workflow-profile workflow/profiles/default
# (Snakemake looks for profiles/default only next to this file.)
#
# Outputs, relative to the working directory (--directory DIR moves them all):
#   data/<dataset>/                            dataset (apro make-data)
#   results/<suite>/<experiment>/train/        training work dir: checkpoints, done.json
#   results/<suite>/<experiment>/metrics.json  mask AP, AP50, AP75
#   results/logs/..., results/benchmarks/...   log and benchmark (time, memory) of every job
#   reports/<suite>/results.csv, summary.md, summary.html
import os
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

min_version("8.0")

ROOT = Path(workflow.basedir).resolve()
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from apro import layout as apro_layout  # noqa: E402  (every path; no torch, no compiled ops)
from apro import registry as apro_registry  # noqa: E402


configfile: str(ROOT / "experiments" / "config.yaml")


validate(config, str(ROOT / "workflow" / "schemas" / "config.schema.yaml"))

# The interpreter running Snakemake (the project's venv when started as
# `.venv/bin/python -m snakemake`) and its `apro` script, so the rules work
# without an activated environment. Before `pip install -e .` has registered
# the script, fall back to running the module from the repository root.
PYTHON = sys.executable
_apro_script = Path(sys.executable).parent / "apro"
APRO = str(_apro_script) if _apro_script.exists() else f"{sys.executable} -m apro.cli"

_registry_path = Path(config["registry"])
if not _registry_path.is_absolute():
    _registry_path = ROOT / _registry_path
try:
    REGISTRY = apro_registry.load_registry(_registry_path)
    SUITE = REGISTRY.suite(config["suite"]).name
    JOBS = REGISTRY.jobs(SUITE, config.get("experiments"))
except apro_registry.RegistryError as exc:
    raise WorkflowError(f"config suite={config['suite']!r}: {exc}") from None


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
        return REGISTRY.job(wildcards.suite, wildcards.experiment)
    except apro_registry.RegistryError as exc:
        raise WorkflowError(str(exc)) from None


def resources_of(stage):
    return config["resources"][stage]


wildcard_constraints:
    suite="[a-z0-9][a-z0-9_]*",
    experiment="[a-z0-9][a-z0-9_]*",
    dataset="[a-z0-9][a-z0-9_]*",


rule all:
    """The report of the configured suite (and, for the demo suite, the ops benchmark table)."""
    default_target: True
    input:
        list(apro_layout.report_files(SUITE).values()),
        apro_layout.html_page(SUITE),
        [apro_layout.ops_table()] if SUITE in config["ops_benchmark_suites"] else [],


for _stage in ("ops", "data", "train", "evaluate", "semantic", "paper", "released", "report", "figures"):

    include: str(ROOT / "workflow" / "rules" / f"{_stage}.smk")
