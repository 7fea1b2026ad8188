"""The zoo's cache: a trained model is stored under a key that hashes its recipe, its teacher, the
device kind, the package's source and the CPU's kernel path, and ``get`` loads it from there or
trains it on a miss."""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..checkpoint import atomic_write, load_state_dict_strict, load_weights, save_weights
from ..data import cache_root
from ..device import get_device, preserved_rng
from ..shipped import sha256_file
from ..train import History
from .recipes import recipe
from .training import build_model, train

ZOO_VERSION = 1  # bump when the training code changes what a recipe produces


def cache_dir() -> Path:
    """``$VITCORE_CACHE/zoo`` (default ``~/.cache/vitcore/zoo``; see :func:`vitcore.data.cache_root`)."""
    return cache_root() / "zoo"


# The environment variables that choose the CPU's kernel path (see .ci/kernel_path.sh): each one
# rounds the floats of a forward pass differently, so a live model trained under one is not the
# model trained under another.
KERNEL_PATH_VARS = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")


def code_files(package: str | Path | None = None) -> tuple[str, ...]:
    """Every source file of the ``vitcore`` package (or of the package folder ``package``), as
    sorted paths relative to it: the code a cached model may depend on."""
    root = Path(package) if package is not None else Path(__file__).parent.parent
    return tuple(sorted(p.relative_to(root).as_posix() for p in root.rglob("*.py") if "__pycache__" not in p.parts))


@functools.cache
def _code_version(root: Path) -> str:
    digest = hashlib.sha256()
    for name in code_files(root):
        digest.update(name.encode() + b"\0")
        digest.update((root / name).read_bytes())
    return digest.hexdigest()[:12]


def code_version(package: str | Path | None = None) -> str:
    """Hash of every source file of the ``vitcore`` package (12 hex digits): editing any of them
    trains the live models afresh. Read once per process (a file edited while a kernel runs takes
    effect in the next one, as the edited code itself does)."""
    return _code_version(Path(package).resolve() if package is not None else Path(__file__).parent.parent.resolve())


def kernel_path(device: str | torch.device) -> dict[str, str]:
    """The kernel-path variables set in the environment (``KERNEL_PATH_VARS``) for a CPU
    ``device``; empty on an accelerator, whose kernels they do not choose."""
    if torch.device(device).type != "cpu":
        return {}
    return {var: os.environ[var] for var in KERNEL_PATH_VARS if os.environ.get(var)}


def _digest(blob: dict) -> str:
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()[:16]


def _teacher_key(rec: dict, dev: torch.device, key: Callable[[dict, torch.device], str]) -> str | None:
    """What names a recipe's teacher: a shipped checkpoint's sha256, or ``key`` of the live
    teacher's recipe."""
    teacher, shipped_teacher = rec.get("teacher"), rec.get("teacher_shipped")
    if shipped_teacher:  # a shipped checkpoint is named by its bytes
        from ..shipped import entry

        return entry(shipped_teacher)["sha256"]
    return key(recipe(teacher, gpu=dev.type != "cpu"), dev) if teacher else None


def run_key(rec: dict, device: str | torch.device) -> str:
    """Hash of what a run is asked to do: the recipe (with its teacher's), the zoo version and the
    device kind, 16 hex digits; not the code, so that a long run resumes after an edit (its state
    checks the run's own settings on resuming). Names the state files of ``--full`` runs."""
    dev = torch.device(device)
    teacher = _teacher_key(rec, dev, run_key)
    return _digest({"recipe": rec, "device": dev.type, "zoo": ZOO_VERSION, "teacher": teacher})


def cache_key(rec: dict, device: str | torch.device) -> str:
    """Hash of everything that shapes a cached model: the recipe (with its teacher's), the zoo
    version, the device kind, every source file of ``vitcore`` and, on the CPU, the kernel path
    (:func:`kernel_path`): 16 hex digits."""
    dev = torch.device(device)
    blob = {
        "recipe": rec,
        "device": dev.type,
        "zoo": ZOO_VERSION,
        "code": code_version(),
        "teacher": _teacher_key(rec, dev, cache_key),
    }
    if kernel := kernel_path(dev):  # only where set: the native path adds nothing
        blob["kernel"] = kernel
    return _digest(blob)


@dataclass
class Trained:
    """A zoo model, ready in eval mode, with where it came from."""

    model: nn.Module
    name: str
    recipe: dict
    metrics: dict  # test_acc, test_loss, train_seconds, device
    history: History
    path: Path  # the .safetensors file
    cached: bool  # True: loaded from the cache; False: trained just now


@preserved_rng()  # building or training a model draws random numbers: none of the caller's
def get(
    name: str,
    device: str | torch.device | None = None,
    rec: dict | None = None,
    retrain: bool = False,
    progress: bool = True,
    cache: str | Path | None = None,
) -> Trained:
    """The trained model ``name``: loaded from the cache, or trained now (and cached) on a miss.
    Either way the caller's random states (Python, NumPy, torch) are as before the call.

    ``rec`` overrides the registered recipe (any name may be used then); ``cache`` overrides
    the cache folder; ``retrain=True`` ignores a cached entry.
    """
    device = torch.device(device) if device is not None else get_device()
    rec = copy.deepcopy(rec) if rec is not None else recipe(name, gpu=device.type != "cpu")
    key = cache_key(rec, device)
    folder = Path(cache) if cache is not None else cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    weights, meta_path = folder / f"{name}-{key}.safetensors", folder / f"{name}-{key}.json"
    from filelock import FileLock

    # One writer per entry: a second kernel asking for the same model waits, then loads it.
    with FileLock(str(folder / f"{name}-{key}.lock")):
        if not retrain and weights.is_file() and meta_path.is_file():
            cached = _load_cached(name, rec, weights, meta_path, device)
            if cached is not None:
                return cached
        t0 = time.perf_counter()
        model, metrics, hist = train(rec, device, progress, desc=name, cache=cache)
        metrics["total_seconds"] = time.perf_counter() - t0
        save_weights(model, weights)  # atomically: a crash never leaves half a file
        meta = {
            "name": name,
            "key": key,
            "recipe": rec,
            "metrics": metrics,
            "history": hist.to_dict(),
            "sha256": sha256_file(weights),
            "zoo_version": ZOO_VERSION,
            "code": code_version(),
            "torch": torch.__version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        with atomic_write(meta_path, "w") as fj:
            json.dump(meta, fj, indent=1)
    return Trained(model, name, rec, metrics, hist, weights, cached=False)


def _load_cached(name: str, rec: dict, weights: Path, meta_path: Path, device: torch.device) -> Trained | None:
    """A cache entry, or None (with a warning) when it is corrupt: the caller then retrains."""
    import warnings

    try:
        meta = json.loads(meta_path.read_text())
        if meta.get("sha256") != sha256_file(weights):
            raise ValueError("the weights' sha256 differs from the one recorded when they were cached")
        model = build_model(rec)
        load_state_dict_strict(model, load_weights(weights))
        hist = History.from_dict(meta["history"])
    except (ValueError, KeyError, TypeError, OSError) as err:
        warnings.warn(f"zoo cache entry {weights.name} is unusable ({err}); training {name!r} again", stacklevel=3)
        return None
    return Trained(model.to(device).eval(), name, rec, meta["metrics"], hist, weights, cached=True)
