"""Device selection, seeding and mixed precision.

The book runs on a 2-core CPU and scales up on a GPU. Every notebook starts with
``device = vitcore.get_device()`` and ``vitcore.seed_everything(0)``.

A library call that needs its own seed must not reseed the caller's world: it runs under
:func:`seeded` (or :func:`preserved_rng`), which restores every global random state and cuDNN
flag afterwards, and it puts a caller's model in eval mode only under :func:`preserved_mode`.

>>> with seeded(0):                 # Python, NumPy and torch seeded with 0 inside ...
...     model = build(recipe)
>>> torch.rand(3)                   # ... the caller's stream goes on as if nothing happened
"""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

__all__ = ["get_device", "seed_everything", "seeded", "preserved_rng", "preserved_mode", "autocast", "on_gpu"]


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
def preserved_rng() -> Iterator[None]:
    """Run the block, then put back every global random state it may change: Python's ``random``,
    NumPy's global generator, torch's CPU generator (and CUDA's and MPS's where present), the cuDNN
    flags ``deterministic`` and ``benchmark``, and ``PYTHONHASHSEED`` (what :func:`seed_everything`
    sets). Restored also when the block raises."""
    py, npy, cpu = random.getstate(), np.random.get_state(), torch.get_rng_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    mps = torch.mps.get_rng_state() if torch.backends.mps.is_available() else None
    flags = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    hashseed = os.environ.get("PYTHONHASHSEED")
    try:
        yield
    finally:
        random.setstate(py)
        np.random.set_state(npy)
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)
        if mps is not None:
            torch.mps.set_rng_state(mps)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = flags
        if hashseed is None:
            os.environ.pop("PYTHONHASHSEED", None)
        else:
            os.environ["PYTHONHASHSEED"] = hashseed


@contextlib.contextmanager
def seeded(seed: int = 0, deterministic: bool = True) -> Iterator[torch.Generator]:
    """:func:`seed_everything` for the block only: it yields the seeded CPU generator, and the
    caller's random states and cuDNN flags are as before afterwards (:func:`preserved_rng`).

    >>> with seeded(rec["seed"]) as gen:
    ...     model = build_model(rec)   # the same weights for the same seed, whatever came before
    """
    with preserved_rng():
        yield seed_everything(seed, deterministic)


@contextlib.contextmanager
def preserved_mode(*modules: nn.Module) -> Iterator[None]:
    """Run the block, then put every submodule of ``modules`` back in the training or eval mode it
    had (a library call may switch a caller's model to ``eval()``; the caller's model is not its
    to keep that way)."""
    saved: list[tuple[nn.Module, bool]] = [(m, m.training) for module in modules for m in module.modules()]
    try:
        yield
    finally:
        for m, training in saved:
            m.training = training


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
