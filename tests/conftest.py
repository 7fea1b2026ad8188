import importlib.util
import os
import sys
from pathlib import Path

import pytest
import torch

# Tests run on the CPU with two threads, as in CI, or one per worker where pytest-xdist runs
# workers side by side (.ci/test: -n 2); outputs must not depend on the machine.
torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else min(2, os.cpu_count() or 1))


# Test files whose outcome cannot depend on how the CPU rounds floating point: files, text,
# processes, the built site, installs. Everything else is marked ``numerics``. .ci/test runs each test
# once: ``-m "not numerics"`` on the native kernels, ``-m numerics`` on a second kernel path (another
# processor's rounding); a plain ``pytest tests`` runs all of them natively.
# test_checkpoints re-measures every shipped model; the book build re-measures them again on the
# second path (each chapter asserts that its checkpoints reach their recorded accuracy).
NOT_NUMERICS = {
    "test_benchmarks.py",
    "test_check_site.py",
    "test_checkpoints.py",
    "test_doctor.py",
    "test_gpu_check.py",
    "test_install.py",
    "test_setup.py",
    "test_stamps_download.py",
    "test_translations.py",
    "test_workflows.py",
}


def pytest_configure(config):
    config.addinivalue_line("markers", "numerics: the result may depend on the CPU's floating-point rounding")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.path.name not in NOT_NUMERICS:
            item.add_marker(pytest.mark.numerics)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def load_benchmark_script(name: str):
    """Import ``benchmarks/<name>.py`` as the module ``name`` (its dataclasses look it up there)."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None  # a .py file has both
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
