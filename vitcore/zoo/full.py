"""The zoo's ``--full`` runs and its command line: ``train_full`` trains a full recipe resumably
(state under ``state_dir()``) and writes it as a checkpoint with its manifest entry, into
``full_dir()`` unless asked to publish it into the package; ``main`` is ``python -m vitcore.zoo``."""

from __future__ import annotations

import argparse
import importlib
import json
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from ..data import cache_root
from ..device import get_device, preserved_rng
from ..train import evaluate
from .recipes import FULL_RECIPES, RECIPES, recipe
from .store import get, run_key
from .training import train

# The runs that are not supervised classification, by ``method``: (module of vitcore, function).
# Each is called as ``function(rec, device, state_path, progress, quick)`` and returns
# ``(model, metrics, epochs)``; the module is imported only when its run is.
_METHODS: dict[str, tuple[str, str]] = {
    "dino": ("selfsup", "train_dino"),  # self-supervised: pre-training and its own evaluation
    "mae": ("selfsup", "train_mae"),
    "grounding": ("vlm_runs", "train_grounding"),  # a VLM head on the frozen ViT-S/14 (chapter 13)
    "patch_sweep": ("vlm_runs", "train_patch_sweep"),  # chapter 13: one patch size of the sweep
    "clip": ("clip_runs", "train_clip"),  # chapter 9: CLIP from scratch on scenes and captions
    "vqa": ("vlm_runs", "train_scene_qa"),  # chapter 12: one VLM head per ViT block
}
_SELF_EVALUATING = ("grounding", "vqa", "clip", "patch_sweep")  # a quick run sizes its own data


def state_dir() -> Path:
    """Where resumable states of full runs live: ``$VITCORE_CACHE/zoo-state`` (outside the repo)."""
    return cache_root() / "zoo-state"


def full_dir() -> Path:
    """Where ``--full`` runs write their checkpoints and manifest by default:
    ``$VITCORE_CACHE/zoo-full`` (the package's ``vitcore/checkpoints`` only when asked)."""
    return cache_root() / "zoo-full"


def _package_checkpoints() -> Path:
    """The package's own checkpoint folder (as :data:`vitcore.shipped.CHECKPOINT_DIR` is
    defined; that name may be pointed elsewhere to read a teacher), resolved."""
    from .. import shipped

    return Path(shipped.__file__).with_name("checkpoints").resolve()


def _destination(name: str, quick: bool, out: str | Path | None, publish: bool) -> Path:
    """The folder a full run writes into: ``out``, the package (``publish``) or :func:`full_dir`.
    A quick run never writes into the package: its one-epoch model would replace the shipped one."""
    if publish and out is not None:
        raise ValueError(f"train {name}: give either out={str(out)!r} or publish=True (the package), not both")
    folder = _package_checkpoints() if publish else Path(out) if out is not None else full_dir()
    if quick and folder.resolve() == _package_checkpoints():
        raise ValueError(
            f"train {name}: a --quick run never publishes into the package ({folder}): its model would "
            "replace the shipped checkpoint. Drop --publish (it then goes to $VITCORE_CACHE/zoo-full) or "
            "give --out another folder."
        )
    return folder


def _train_supervised(
    name: str, rec: dict, dev: torch.device, state: Path, progress: bool
) -> tuple[nn.Module, dict, dict]:
    """A classification recipe through :func:`train`, its metrics measured as a reader would."""
    model, metrics, hist = train(rec, dev, progress, desc=name, state_path=state)
    if dev.type != "cpu":
        # The manifest's metrics are what a reader re-measures: float32 on the CPU (a GPU run
        # evaluates under bf16 autocast, which can flip a few borderline test images).
        from .. import data as fdata

        cpu_eval = evaluate(
            model.cpu().float(), fdata.make_loader("test", n=rec["data"].get("n_test"), batch_size=1000), "cpu"
        )
        metrics.update(test_acc=cpu_eval["acc"], test_loss=cpu_eval["loss"])
    epochs = {k: v for k, v in hist.to_dict().items() if not k.startswith("step_")}
    return model, metrics, epochs


@preserved_rng()  # the runs seed themselves; the caller's random streams are left as they were
def train_full(
    name: str,
    quick: bool = False,
    out: str | Path | None = None,
    device: str | None = None,
    progress: bool = True,
    publish: bool = False,
) -> dict:
    """Train the full recipe ``name`` (resumably) and write its checkpoint and manifest entry;
    return the entry.

    ``quick`` runs the same code on 512 training and 500 test images for one epoch, for tests.
    The checkpoint goes into ``out``, else into the package's ``vitcore/checkpoints`` with
    ``publish=True`` (replacing the shipped one), else into :func:`full_dir`. A quick run into the
    package is refused with a ``ValueError``, before any training.
    """
    from .. import shipped

    folder = _destination(name, quick, out, publish)
    rec = recipe(name, full=True)
    method = rec.get("method")
    if method not in _SELF_EVALUATING:
        rec["data"].setdefault("eval_every_epoch", True)
        if quick:
            rec["data"].update(n_train=512, n_test=500)
            rec["train"]["epochs"] = 1
    dev = torch.device(device) if device is not None else get_device()
    command = f"python -m vitcore.zoo train {name} --full" + (" --quick" if quick else "")
    # Named by what the run is asked to do, not by the code: an edited package resumes the run.
    state = state_dir() / f"{name}{'-quick' if quick else ''}-{run_key(rec, dev)}.state.pt"
    t0 = time.perf_counter()
    if method in _METHODS:
        module, function = _METHODS[method]
        run: Callable = getattr(importlib.import_module(f"..{module}", __package__), function)
        model, metrics, epochs = run(rec, dev, state, progress, quick)
    else:
        model, metrics, epochs = _train_supervised(name, rec, dev, state, progress)
    metrics["eval_device"] = "cpu float32"
    # A resumed run's wall time is its training time over all sessions (the history keeps counting).
    wall = max(time.perf_counter() - t0, float(metrics.get("train_seconds", 0.0)))
    entry = shipped.publish(name, model, rec, metrics, epochs, command, dev, wall, folder)
    state.unlink(missing_ok=True)  # finished: the checkpoint is what is kept
    return entry


def main(argv: list[str] | None = None) -> int:
    """``python -m vitcore.zoo``: train a recipe (live or ``--full``) or list them; the exit status."""
    from .. import zoo

    parser = argparse.ArgumentParser(prog="python -m vitcore.zoo", description=(zoo.__doc__ or "").split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    tr = sub.add_parser("train", help="train a recipe")
    tr.add_argument("name")
    tr.add_argument("--full", action="store_true", help="the long recipe, into $VITCORE_CACHE/zoo-full")
    tr.add_argument("--quick", action="store_true", help="a few batches only (tests the path); never into the package")
    where = tr.add_mutually_exclusive_group()
    where.add_argument("--out", help="write the checkpoint and its manifest entry into this folder")
    where.add_argument(
        "--publish", action="store_true", help="write into the package's vitcore/checkpoints (replaces the shipped one)"
    )
    tr.add_argument("--device", help="cpu, cuda or mps (default: the best available)")
    sub.add_parser("list", help="list recipes and shipped checkpoints")
    args = parser.parse_args(argv)
    if args.cmd == "list":
        from .. import shipped

        print("live recipes:", ", ".join(sorted(RECIPES)))
        print("full recipes:", ", ".join(sorted(FULL_RECIPES)))
        for n, e in shipped.manifest().items():
            print(f"shipped {n}: {e['metrics']} ({e['device']}, {e['wall_seconds'] / 60:.0f} min)")
        return 0
    if not args.full:
        if args.out or args.publish or args.quick:
            parser.error("--out, --publish and --quick apply to --full runs (a live recipe goes into the zoo's cache)")
        trained = get(args.name, device=args.device, retrain=True)
        print(json.dumps(trained.metrics, indent=1))
        return 0
    try:
        folder = _destination(args.name, args.quick, args.out, args.publish)
    except ValueError as err:
        parser.error(str(err))
    entry = train_full(args.name, quick=args.quick, out=folder, device=args.device)
    shown = {"folder": str(folder)} | {k: entry[k] for k in ("file", "sha256", "metrics", "wall_seconds")}
    print(json.dumps(shown, indent=1))
    return 0
