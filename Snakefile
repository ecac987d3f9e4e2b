# APro reproducibility suite: the workflow's entry point.
#
#   P="--workflow-profile workflow/profiles/default"
#   .venv/bin/python -m snakemake $P         # default target: the ops benchmark table
#   .venv/bin/python -m snakemake $P -n      # dry run: what would run, and why
#
# The rules live in workflow/rules/*.smk, grouped by stage; each calls an
# `apro` entry point that also works by hand. The settings (cores, printed
# shell commands, resources) come from the workflow profile, which has to be
# named: Snakemake looks for profiles/default only next to this file.
import sys
from pathlib import Path

# No config file yet; later stages add `configfile:` with a schema in workflow/schemas/.

# The interpreter running Snakemake (the project's venv when started as
# `.venv/bin/python -m snakemake`) and its `apro` script, so the rules work
# without an activated environment. Before `pip install -e .` has registered
# the script, fall back to running the module from the repository root.
PYTHON = sys.executable
_apro_script = Path(sys.executable).parent / "apro"
APRO = str(_apro_script) if _apro_script.exists() else f"{sys.executable} -m apro.cli"


rule all:
    default_target: True
    input:
        "reports/benchmarks/ops.csv",


for _rules_file in sorted((Path(workflow.basedir) / "workflow" / "rules").glob("*.smk")):

    include: str(_rules_file)
