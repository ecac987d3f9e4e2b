# APro reproducibility suite: the workflow's entry point.
#
#   .venv/bin/python -m snakemake --cores 2                        # the demo suite -> reports/demo/
#   .venv/bin/python -m snakemake --cores 2 --config suite=smoke   # tiny data, 5 iterations, every stage
#   .venv/bin/python -m snakemake --cores 2 -n                     # dry run: what would run, and why
#   .venv/bin/python -m snakemake --cores 2 --config experiments=box,box_gp_lp   # part of a suite
#   .venv/bin/python -m snakemake --cores 2 --config suite=custom data=DIR    # your COCO-format dataset
#
# What to run comes from the experiment registry (experiments/registry.yaml,
# read by apro.registry, like the `apro` CLI; for suite=custom the one apro.custom
# writes into results/custom/ from the config, docs/custom.md); the settings from
# experiments/config.yaml (validated against workflow/schemas/config.schema.yaml),
# overridable with --config. The rules live in workflow/rules/*.smk, one file per
# stage (ops, data, train, evaluate, report, crosscheck); each calls an `apro`
# command that also works by hand, with the experiment, suite and seed. Extra settings (printed commands, resource caps,
# rerun-incomplete) are in the workflow profile, which has to be named:
#   --workflow-profile workflow/profiles/default
# (Snakemake looks for profiles/default only next to this file.)
#
# Outputs, relative to the working directory (--directory DIR moves them all):
#   data/<dataset>/                                    dataset (apro make-data, prepare_*)
#   results/<suite>/<experiment>/seed<k>/train/        training work dir: checkpoints, done.json
#   results/<suite>/<experiment>/seed<k>/metrics.json  mask AP, AP50, AP75 or mIoU
#   results/logs/..., results/benchmarks/...           log and benchmark (time, memory) of every job
#   reports/<suite>/results.csv, summary.md, summary.html, index.html
# (apro/layout.py names every path.)
#
# The helper functions are in workflow/rules/common.smk (included first; the stage files hold
# rules only), and every rule passes the `apro` script (and `train` the interpreter for torchrun)
# to its shell command as params. No rule declares a conda environment (common.smk says why).
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

include: str(ROOT / "workflow" / "rules" / "common.smk")  # software, registry, helper functions


wildcard_constraints:
    suite="[a-z0-9][a-z0-9_]*",
    experiment="[a-z0-9][a-z0-9_]*",
    dataset="[a-z0-9][a-z0-9_]*",
    seed="[0-9]+",


rule all:
    """The report of the configured suite (and, for the demo suite, the ops benchmark table); for a compare
    suite (crosscheck), its side-by-side summary."""
    default_target: True
    input:
        list(apro_layout.crosscheck_report_files().values()) if SUITE in COMPARE_SUITES else [
            *apro_layout.report_files(SUITE).values(), apro_layout.html_page(SUITE)],
        [apro_layout.ops_table()] if SUITE in config["ops_benchmark_suites"] else [],


for _stage in ("ops", "data", "train", "evaluate", "report", "crosscheck"):

    include: str(ROOT / "workflow" / "rules" / f"{_stage}.smk")
