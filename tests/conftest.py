import os

import pytest
import torch

# Tests run on the CPU with two threads, as in CI; outputs must not depend on the machine.
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
