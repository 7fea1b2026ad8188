"""The zoo's cache: a trained model is stored under a key that hashes its recipe, its teacher, the
device kind and the training code, and ``get`` loads it from there or trains it on a miss."""

from __future__ import annotations

import copy
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..checkpoint import atomic_write, load_state_dict_strict, load_weights, save_weights
from ..data import cache_root
from ..device import get_device
from ..shipped import sha256_file
from ..train import History
from .recipes import recipe
from .training import build_model, train

ZOO_VERSION = 1  # bump when the training code changes what a recipe produces


def cache_dir() -> Path:
    """``$VITCORE_CACHE/zoo`` (default ``~/.cache/vitcore/zoo``; see :func:`vitcore.data.cache_root`)."""
    return cache_root() / "zoo"


# The modules whose code shapes what a recipe produces (paths in vitcore/): editing one retrains
# cached models.
_CODE = (
    "attention.py",
    "block.py",
    "cnn.py",
    "data/augment.py",
    "data/fashion_mnist.py",
    "data/loaders.py",
    "deit.py",
    "dino.py",
    "embed.py",
    "mae.py",
    "multicrop.py",
    "selfsup.py",
    "train/__init__.py",
    "train/distributed.py",
    "train/loop.py",
    "train/optim.py",
    "train/resume.py",
    "vit.py",
    "zoo/__init__.py",
    "zoo/__main__.py",
    "zoo/full.py",
    "zoo/recipes.py",
    "zoo/scene_recipes.py",
    "zoo/store.py",
    "zoo/training.py",
)


def code_version() -> str:
    """Hash of the source of the modules that shape a trained model (12 hex digits)."""
    vitcore_dir = Path(__file__).parent.parent
    digest = hashlib.sha256()
    for name in _CODE:
        digest.update((vitcore_dir / name).read_bytes())
    return digest.hexdigest()[:12]


def cache_key(rec: dict, device: str | torch.device) -> str:
    """Hash of everything that shapes the model: the recipe (with its teacher's recipe), the zoo
    version, the training code and the device kind: 16 hex digits."""
    dev = torch.device(device)
    teacher, shipped_teacher = rec.get("teacher"), rec.get("teacher_shipped")
    if shipped_teacher:  # a shipped checkpoint is named by its bytes
        from ..shipped import entry

        teacher_key = entry(shipped_teacher)["sha256"]
    else:
        teacher_key = cache_key(recipe(teacher, gpu=dev.type != "cpu"), dev) if teacher else None
    blob = json.dumps(
        {"recipe": rec, "device": dev.type, "zoo": ZOO_VERSION, "code": code_version(), "teacher": teacher_key},
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


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


def get(
    name: str,
    device: str | torch.device | None = None,
    rec: dict | None = None,
    retrain: bool = False,
    progress: bool = True,
    cache: str | Path | None = None,
) -> Trained:
    """The trained model ``name``: loaded from the cache, or trained now (and cached) on a miss.

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
