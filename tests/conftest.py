import importlib.util
import os
import sys
from pathlib import Path

import pytest
import torch

# Tests run on the CPU with two threads, as in CI; outputs must not depend on the machine.
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def load_benchmark_script(name: str):
    """Import ``benchmarks/<name>.py`` as the module ``name`` (its dataclasses look it up there)."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
