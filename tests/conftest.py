"""Shared pytest setup for the ops tests: import paths, seeding, hypothesis profile, markers."""
import os
import random
import sys

import numpy as np
import pytest
import torch

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(TESTS_DIR)
# ``import reference`` from the test modules, and ``import apro`` without an install.
for _p in (TESTS_DIR, REPO_ROOT):
    if _p not in sys.path:
        sys.path.insert(0, _p)

try:
    from hypothesis import HealthCheck, settings

    settings.register_profile(
        "apro",
        derandomize=True,  # seeded: the same examples on every run, no database needed
        deadline=None,
        max_examples=60,
        database=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    settings.register_profile("apro-thorough", parent=settings.get_profile("apro"), max_examples=400)
    settings.load_profile(os.environ.get("APRO_HYPOTHESIS_PROFILE", "apro"))
except ImportError:  # pragma: no cover - hypothesis is a test dependency
    pass


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: slower test (seconds); deselect with -m 'not slow'")


@pytest.fixture(autouse=True)
def _seed_everything():
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    yield


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def benchmark_script():
    """``benchmark_script("ops")``: a script of benchmarks/ imported as a module (they are scripts, not a package)."""
    import importlib.util

    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, os.path.join(REPO_ROOT, "benchmarks", f"{name}.py"))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load
