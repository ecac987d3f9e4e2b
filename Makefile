# APro reproducibility suite: environment, tests and demo.
#
#   make demo    set up (if needed), then run the demo suite (Snakemake -> reports/demo/)
#   make test    set up (if needed), then run the test suite
#   make setup   only build the environment in $(VENV)
#   make clean   remove build outputs (compiled ops, build/, caches); keeps $(VENV)
#   make original-env ORIGINAL=<clone of CircleRadon/APro>   the release's own stack in .venv-original/
#
# `setup` is a chain of stamp files in $(VENV); each step runs only when its
# inputs changed, so a second `make test` makes no pip call at all:
#   1 venv      $(PYTHON) -m venv $(VENV)             (only if $(VENV)/bin/python is missing)
#   2 base      build tools: build-system.requires of pyproject.toml, less torch
#   3 torch     the torch pin of pyproject.toml (CPU wheel from pip's find-links here)
#   4 mmcv      the mmcv pin built from source with its C++ ops (no CUDA)
#   5 deps      every other dependency of pyproject.toml, plus the `test` extra
#               (mmsegmentation with ftfy/regex, which mmseg.utils imports at start-up)
#   6 ops       apro._C compiled from csrc/ (pip install -e . --no-build-isolation)
# Pins are read from pyproject.toml; a stamp's name carries its pin (or a hash
# of its list), so changing a pin re-runs that step and the ones after it.
#
# Overridable: PYTHON, VENV, MAX_JOBS, PIP_ARGS (extra pip options for every
# install), TORCH_PIP_ARGS (extra options for the torch step, e.g.
# `--index-url https://download.pytorch.org/whl/cpu` where no local CPU wheel
# exists), PYTEST_ARGS, SEEDS (training seeds of `make demo`, e.g. 0,1,2), SNAKEMAKE_ARGS (extra
# options for `make demo`, e.g. `--config suite=smoke` or `-n`).

PYTHON ?= python3
VENV ?= .venv
MAX_JOBS ?= $(shell nproc 2>/dev/null || echo 2)
PIP_ARGS ?=
TORCH_PIP_ARGS ?=
PYTEST_ARGS ?=
SNAKEMAKE_ARGS ?=
# training seeds of `make demo` (make demo SEEDS=0,1,2: every training and evaluation three times)
SEEDS ?= 0
MMCV_CFLAGS ?= -g0 -O3 -DNDEBUG -fwrapv

SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV_ABS := $(abspath $(VENV))
VPY := $(VENV_ABS)/bin/python
PIP := $(VPY) -m pip --disable-pip-version-check
PIP_Q := -q
# Recipes run "inside" the venv: ninja, snakemake and apro are found on PATH.
export PATH := $(VENV_ABS)/bin:$(PATH)
export VIRTUAL_ENV := $(VENV_ABS)
export PIP_NO_INPUT := 1

# --- pins, read from pyproject.toml (the single source of truth) -----------
# READ_PYPROJECT sets: base (build tools), deps (runtime + test extra), pin().
READ_PYPROJECT := import sys, hashlib, importlib; \
  t = importlib.import_module("tomllib" if sys.version_info >= (3, 11) else "pip._vendor.tomli"); \
  d = t.load(open("pyproject.toml", "rb")); p = d["project"]; \
  deps = p["dependencies"] + p["optional-dependencies"]["test"]; \
  base = [r for r in d["build-system"]["requires"] if not r.startswith("torch")]; \
  pin = lambda n: next(r for r in deps if r.startswith(n + "==")); \
  h = lambda rs: hashlib.sha1("\n".join(rs).encode()).hexdigest()[:10];
PINS := $(shell $(PYTHON) -c '$(READ_PYPROJECT) print(h(base), pin("torch"), pin("mmcv"), h(deps))' 2>/dev/null)
ifneq ($(words $(PINS)),4)
$(error could not read the pins from pyproject.toml with PYTHON=$(PYTHON) (needs Python >= 3.10 and pyproject.toml with torch== and mmcv== pins))
endif
BASE_HASH := $(word 1,$(PINS))
TORCH_REQ := $(word 2,$(PINS))
MMCV_REQ := $(word 3,$(PINS))
DEPS_HASH := $(word 4,$(PINS))

STAMP_BASE := $(VENV_ABS)/.setup-1-base-$(BASE_HASH)
STAMP_TORCH := $(VENV_ABS)/.setup-2-$(TORCH_REQ)
STAMP_MMCV := $(VENV_ABS)/.setup-3-$(MMCV_REQ)
STAMP_DEPS := $(VENV_ABS)/.setup-4-deps-$(DEPS_HASH)
STAMP_OPS := $(VENV_ABS)/.setup-5-ops
# Every requirement (build tools + dependencies), used as pip constraints in
# every step so that no step moves another's pin (torch itself asks for
# setuptools>=77, which would otherwise pull a setuptools without pkg_resources).
PINS_FILE := $(VENV_ABS)/apro-pins.txt
WRITE_PINS = $(VPY) -c '$(READ_PYPROJECT) print("\n".join(base + deps))' > $(PINS_FILE)

OPS_SOURCES := $(sort $(shell find csrc -type f \( -name '*.cpp' -o -name '*.h' \) 2>/dev/null))
# Rebuild the ops whenever the compiled module is missing (e.g. after `make clean`).
ifeq ($(wildcard apro/_C*.so),)
$(STAMP_OPS): FORCE
endif

CHECK_MMCV := $(VPY) -c "import mmcv.ops; from mmcv.ops import nms"
MMCV_BUILD_ENV := MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS=$(MAX_JOBS) CFLAGS="$(MMCV_CFLAGS)"

.PHONY: help setup test demo original-env clean distclean FORCE

help:
	@sed -n '2,8p' Makefile | sed 's/^# \{0,1\}//'

setup: $(STAMP_OPS)
	@echo "setup: $(VENV) is up to date"

test: setup
	@echo "==> pytest"
	$(VPY) -m pytest -q $(PYTEST_ARGS)

# The demo suite of experiments/registry.yaml: synthetic data, the five SOLOv2
# variants (box, box+lp, box+gp, box+gp+lp, mask; two trainings at a time, one
# thread each), their evaluation, reports/demo/{results.csv,summary.md,summary.html},
# and the ops benchmark (reports/benchmarks/ops.csv). A second run only redoes
# what changed; a killed run resumes its trainings from their last checkpoints.
demo: setup
	@echo "==> demo suite: snakemake --cores 2, seeds $(SEEDS) (experiments/registry.yaml -> reports/demo/)"
	$(VPY) -m snakemake --cores 2 --workflow-profile workflow/profiles/default --config seeds=$(SEEDS) $(SNAKEMAKE_ARGS)

# The APro release's stack for `apro crosscheck` (apro/crosscheck/original_env.py; about 10 minutes):
# ORIGINAL is a git clone of github.com/CircleRadon/APro; without it the release is cloned from GitHub.
original-env: setup
	$(VENV_ABS)/bin/apro original-env $(if $(ORIGINAL),--original $(ORIGINAL)) --jobs $(MAX_JOBS)

$(VPY):
	@echo "==> [1/6] creating virtual environment $(VENV) with $(PYTHON)"
	@$(PYTHON) -m venv $(VENV_ABS)

$(STAMP_BASE): | $(VPY)
	@echo "==> [2/6] build tools ($(VENV))"
	@$(VPY) -c '$(READ_PYPROJECT) print("\n".join(base))' > $(VENV_ABS)/apro-build-requirements.txt
	@$(PIP) install $(PIP_Q) $(PIP_ARGS) -r $(VENV_ABS)/apro-build-requirements.txt
	@touch $@

$(STAMP_TORCH): $(STAMP_BASE)
	@echo "==> [3/6] $(TORCH_REQ)"
	@$(WRITE_PINS)
	@$(PIP) install $(PIP_Q) $(PIP_ARGS) $(TORCH_PIP_ARGS) -c $(PINS_FILE) '$(TORCH_REQ)' numpy
	@$(VPY) -c "import torch; print('    torch', torch.__version__)"
	@touch $@

$(STAMP_MMCV): $(STAMP_TORCH)
	@echo "==> [4/6] $(MMCV_REQ) from source with its ops (first build takes a few minutes; cached after)"
	@$(WRITE_PINS)
	@$(PIP) install $(PIP_Q) $(PIP_ARGS) -c $(PINS_FILE) -r $(VENV_ABS)/apro-build-requirements.txt
	@$(VPY) -c "import setuptools, pkg_resources" 2>/dev/null || { echo "error: setuptools $$($(VPY) -c 'import setuptools; print(setuptools.__version__)') in $(VENV) has no pkg_resources (mmcv's setup.py needs it): pin setuptools<81" >&2; exit 1; }
	@$(MMCV_BUILD_ENV) $(PIP) install $(PIP_Q) $(PIP_ARGS) --no-build-isolation -c $(PINS_FILE) '$(MMCV_REQ)'
	@if ! $(CHECK_MMCV) 2>/dev/null; then \
	  echo "    mmcv has no compiled ops (stale wheel in pip's cache?): rebuilding"; \
	  $(PIP) uninstall -q -y mmcv && $(PIP) cache remove 'mmcv-*' >/dev/null; \
	  $(MMCV_BUILD_ENV) $(PIP) install $(PIP_Q) $(PIP_ARGS) --no-build-isolation --no-binary mmcv -c $(PINS_FILE) '$(MMCV_REQ)' && \
	  $(CHECK_MMCV) || { echo "error: mmcv.ops does not import after a rebuild" >&2; exit 1; }; \
	fi
	@echo "    mmcv.ops OK"
	@touch $@

$(STAMP_DEPS): $(STAMP_MMCV)
	@echo "==> [5/6] dependencies of pyproject.toml (+ test extra)"
	@$(WRITE_PINS)
	@$(PIP) install $(PIP_Q) $(PIP_ARGS) -c $(PINS_FILE) -r $(PINS_FILE)
	@$(VPY) -c "import mmdet.models, mmseg.models, snakemake, pycocotools; print('    mmdet.models, mmseg.models OK')"
	@touch $@

$(STAMP_OPS): $(STAMP_DEPS) setup.py $(OPS_SOURCES)
	@echo "==> [6/6] compiling apro._C from csrc/ (pip install -e . --no-build-isolation --no-deps)"
	@MAX_JOBS=$(MAX_JOBS) $(PIP) install $(PIP_Q) $(PIP_ARGS) --no-build-isolation --no-deps -e .
	@cd / && $(VPY) -c "import torch, apro._C as C; print('    built', C.__file__)"
	@touch $@

clean:
	@echo "==> removing build outputs (build/, apro/_C*.so, egg-info, caches)"
	rm -rf build apro/_C*.so *.egg-info .pytest_cache .hypothesis
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
	rm -f $(STAMP_OPS)

distclean: clean
	@echo "==> removing $(VENV) (pip's wheel cache is kept)"
	rm -rf $(VENV_ABS)

FORCE:
