"""Device selection, seeding and mixed precision.

The book runs on a 2-core CPU and scales up on a GPU. Every notebook starts with
``device = vitcore.get_device()`` and ``vitcore.seed_everything(0)``.
"""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator

import numpy as np
import torch

__all__ = ["get_device", "seed_everything", "autocast", "on_gpu"]


def get_device(prefer: str | torch.device | None = None) -> torch.device:
    """Pick the best available device: CUDA, else MPS, else CPU.

    ``prefer`` (or the environment variable ``VITCORE_DEVICE``) overrides the choice,
    e.g. ``get_device("cpu")``. Asking for a device that is not available is an error.
    """
    choice = prefer if prefer is not None else os.environ.get("VITCORE_DEVICE")
    if choice is not None:
        device = torch.device(choice)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("CUDA was requested but torch.cuda.is_available() is False")
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise RuntimeError("MPS was requested but torch.backends.mps.is_available() is False")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def on_gpu(device: str | torch.device | None = None) -> bool:
    """True when ``device`` (default: :func:`get_device`) is an accelerator."""
    dev = torch.device(device) if device is not None else get_device()
    return dev.type in ("cuda", "mps")


def seed_everything(seed: int = 0, deterministic: bool = True) -> torch.Generator:
    """Seed Python, NumPy and PyTorch (all devices); return a seeded CPU generator.

    With ``deterministic=True`` cuDNN picks deterministic kernels, so a rerun gives the
    same numbers on the same machine.
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds CUDA and MPS
    os.environ["PYTHONHASHSEED"] = str(seed)
    if deterministic:
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    return torch.Generator().manual_seed(seed)


@contextlib.contextmanager
def autocast(device: str | torch.device | None = None, enabled: bool = True) -> Iterator[None]:
    """Mixed precision where it pays: bfloat16 autocast on CUDA, a no-op elsewhere.

    >>> with autocast(device):
    ...     logits = model(images)
    """
    dev = torch.device(device) if device is not None else get_device()
    if enabled and dev.type == "cuda":
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16):
            yield
    else:
        yield
