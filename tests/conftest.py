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
# processor's rounding); a plain ``pytest tests`` runs all of them natively. A test in one of these
# files that compares floats carries ``@pytest.mark.numerics`` itself (test_tolerance.py checks it).
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


# A test that takes more than SLOW_S seconds on 2 cores (one thread, as under -n 2) is marked
# ``slow``: ``pytest tests -m "not slow"`` is the quick loop while working (about a minute); the
# test command runs every test. A run lists the unmarked tests that took longer (no test fails for
# its time: speed targets live in benchmarks/).
SLOW_S = 3.0


def pytest_configure(config):
    config.addinivalue_line("markers", "numerics: the result may depend on the CPU's floating-point rounding")
    config.addinivalue_line("markers", f"slow: takes more than {SLOW_S:.0f} s on 2 CPU cores (deselect: -m 'not slow')")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.path.name not in NOT_NUMERICS:
            item.add_marker(pytest.mark.numerics)


@pytest.fixture(scope="session")
def fmnist_train() -> tuple[torch.Tensor, torch.Tensor]:
    """Fashion-MNIST's training split (images uint8 (60000, 28, 28), labels), read and verified
    once per session (per worker): tests must not change it in place."""
    from vitcore.data import load_fashion_mnist

    return load_fashion_mnist("train")


@pytest.fixture(scope="session")
def fmnist_test() -> tuple[torch.Tensor, torch.Tensor]:
    """The test split (10,000 images), as ``fmnist_train``."""
    from vitcore.data import load_fashion_mnist

    return load_fashion_mnist("test")


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


def pytest_terminal_summary(terminalreporter):
    reports = [r for key in ("passed", "failed") for r in terminalreporter.stats.get(key, [])]
    unmarked = sorted(
        (r.duration, r.nodeid) for r in reports if r.when == "call" and r.duration > SLOW_S and "slow" not in r.keywords
    )
    if unmarked:
        terminalreporter.write_line(f"[slow] took more than {SLOW_S:.0f} s without @pytest.mark.slow:")
        for seconds, nodeid in reversed(unmarked):
            terminalreporter.write_line(f"[slow]   {seconds:5.1f} s  {nodeid}")
