"""A local model zoo: named small models, trained with a fixed recipe on first use, then cached.

>>> vit = zoo.get("fmnist_vit").model          # trains (about a minute on 2 CPU cores) or loads
>>> zoo.get("fmnist_vit").metrics["test_acc"]

A recipe is a plain dict (architecture, data, optimisation, seed). Its hash, together with the
device kind (``cpu`` / ``cuda`` / ``mps``), every source file of ``vitcore`` and, on the CPU, the
kernel path (``ATEN_CPU_CAPABILITY``, ``ONEDNN_MAX_CPU_ISA``, ``MKL_ENABLE_INSTRUCTIONS``), names the
cache entry under ``$VITCORE_CACHE/zoo`` (default ``~/.cache/vitcore/zoo``):
``<name>-<hash>.safetensors`` holds the weights and ``<name>-<hash>.json`` the recipe, the test
accuracy and the training history. Change anything in a recipe or in the package and it trains
afresh; every notebook therefore still runs alone in a fresh kernel.
On a GPU the recipes scale up (more epochs, augmentation), on the CPU they stay within a
notebook's time budget.

``--full`` recipes are the long runs behind the book's decisive numbers (an hour or more on a
CPU). They are trained from the command line, resumably (state under ``$VITCORE_CACHE/zoo-state``),
into ``$VITCORE_CACHE/zoo-full`` as a checkpoint and its manifest entry; only ``--publish`` writes
them into the package as shipped checkpoints (:mod:`vitcore.shipped`)::

    python -m vitcore.zoo train fmnist_vit --full             # train into $VITCORE_CACHE/zoo-full/
    python -m vitcore.zoo train fmnist_vit --full --publish   # train, then replace vitcore/checkpoints/'s
    python -m vitcore.zoo train fmnist_vit --full --out DIR   # train into DIR
    python -m vitcore.zoo train fmnist_vit --full --quick     # the same path on a few batches (tests)
    python -m vitcore.zoo list

A ``--quick`` run never writes into the package (asked to, it refuses before training).

Chapters 5, 6, 7 and 14 train or load the live models; the checkpoints that chapters 5, 6 and 9
to 13 load come from the full recipes.

The parts, all importable from ``vitcore.zoo``: ``.recipes`` (the live and full recipes,
``recipe``; the runs on composed scenes in ``.scene_recipes``), ``.training`` (``build_model``,
``train``), ``.store`` (the cache: ``cache_key``, ``run_key``, ``get``, ``Trained``) and ``.full`` (``train_full``,
``full_dir`` and the command line).
"""

from .full import full_dir, main, state_dir, train_full
from .recipes import DINO_EPOCHS, FULL_RECIPES, RECIPES, SWEEP_SIZES, SWEEP_STEPS, recipe
from .scene_recipes import SWEEP_PATCHES, VQA_BLOCKS
from .store import (
    KERNEL_PATH_VARS,
    ZOO_VERSION,
    Trained,
    cache_dir,
    cache_key,
    code_files,
    code_version,
    get,
    kernel_path,
    run_key,
)
from .training import build_model, train

__all__ = [
    "ZOO_VERSION",
    "RECIPES",
    "FULL_RECIPES",
    "Trained",
    "recipe",
    "build_model",
    "cache_dir",
    "cache_key",
    "run_key",
    "code_files",
    "code_version",
    "kernel_path",
    "KERNEL_PATH_VARS",
    "get",
    "train",
    "train_full",
    "state_dir",
    "full_dir",
    "main",
    "SWEEP_SIZES",
    "SWEEP_STEPS",
    "SWEEP_PATCHES",
    "DINO_EPOCHS",
    "VQA_BLOCKS",
]
