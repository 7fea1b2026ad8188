"""Checkpoints shipped with the book: trained as long as the method needs, verified on load.

The book's chapters run their live experiments within a CPU budget of minutes; the decisive
comparisons load models that were trained for hours by the zoo's ``--full`` recipes. Each lives
in ``vitcore/checkpoints/<name>.safetensors`` and has an entry in
``vitcore/checkpoints/manifest.json``: the command that reproduces it, the recipe, the seed,
torch version, device, wall time, the file's sha256 and the metrics it reached on held-out data.

>>> vit = shipped.load("fmnist_vit").model       # sha256-checked, strict keys, eval mode
>>> shipped.entry("fmnist_vit")["metrics"]["test_acc"]

To reproduce one: ``python -m vitcore.zoo train fmnist_vit --full`` (resumable: an interrupted run
continues from its state file under ``$VITCORE_CACHE/zoo-state``) writes it into
``$VITCORE_CACHE/zoo-full``, where ``load("fmnist_vit", folder=...)`` reads it; ``--publish``
refreshes the package's own copy instead.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from pathlib import Path

import torch

from .checkpoint import atomic_write, load_state_dict_strict, load_weights, save_weights
from .device import preserved_rng

__all__ = ["CHECKPOINT_DIR", "ChecksumError", "manifest", "entry", "names", "sha256_file", "load", "publish"]

CHECKPOINT_DIR = Path(__file__).with_name("checkpoints")


class ChecksumError(ValueError):
    """A checkpoint file's sha256 differs from the one its manifest records."""


def sha256_file(path: str | Path) -> str:
    """The sha256 of a file's bytes, as 64 hex digits."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def manifest(folder: str | Path | None = None) -> dict[str, dict]:
    """The manifest of ``folder`` (default: the shipped checkpoints): name -> entry."""
    path = Path(folder or CHECKPOINT_DIR) / "manifest.json"
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from err
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a JSON object of name -> entry")
    return data


def names(folder: str | Path | None = None) -> list[str]:
    """The names of the checkpoints in ``folder``'s manifest."""
    return sorted(manifest(folder))


def entry(name: str, folder: str | Path | None = None) -> dict:
    """The manifest entry of checkpoint ``name``."""
    man = manifest(folder)
    if name not in man:
        raise KeyError(
            f"no shipped checkpoint {name!r}; the manifest lists {sorted(man) or 'nothing'}. "
            f"Train it with: python -m vitcore.zoo train {name} --full --publish"
        )
    return man[name]


@preserved_rng()  # building the model draws its (overwritten) initial weights: not from the caller's stream
def load(name: str, device: str | torch.device | None = None, folder: str | Path | None = None):  # -> zoo.Trained
    """The shipped model ``name``, its sha256 checked, loaded with strict keys, in eval mode."""
    from .device import get_device
    from .train import History
    from .zoo import Trained, build_model

    folder = Path(folder or CHECKPOINT_DIR)
    e = entry(name, folder)
    path = folder / e["file"]
    if not path.is_file():
        raise FileNotFoundError(f"the manifest lists {name!r} but {path} is missing")
    got = sha256_file(path)
    if got != e["sha256"]:
        where = " --publish" if folder.resolve() == CHECKPOINT_DIR.resolve() else f" --out {folder}"
        raise ChecksumError(
            f"{path} has sha256 {got}, the manifest records {e['sha256']}: the file is "
            "corrupt or was replaced. Reinstall vitcore or retrain with: " + e["command"] + where
        )
    model = build_model(e["recipe"])
    load_state_dict_strict(model, load_weights(path))
    device = torch.device(device) if device is not None else get_device()
    hist = History.from_dict(e["history"]) if "history" in e else History()
    return Trained(model.to(device).eval(), name, e["recipe"], e["metrics"], hist, path, cached=True)


def _device_words(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    cpu = platform.processor() or platform.machine()
    try:  # Linux names the CPU model here
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{device.type} ({cpu}, {torch.get_num_threads()} threads, {torch.backends.cpu.get_cpu_capability()})"


def publish(
    name: str,
    model: torch.nn.Module,
    rec: dict,
    metrics: dict,
    history: dict,
    command: str,
    device: torch.device,
    wall_seconds: float,
    folder: str | Path | None = None,
) -> dict:
    """Write ``model`` as ``<folder>/<name>.safetensors`` and its entry into the manifest (atomically)."""
    folder = Path(folder or CHECKPOINT_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    path = save_weights(model, folder / f"{name}.safetensors")
    e = {
        "file": path.name,
        "sha256": sha256_file(path),
        "bytes": path.stat().st_size,
        "command": command,
        "recipe": rec,
        "seed": rec.get("seed", 0),
        "torch": torch.__version__,
        "device": _device_words(device),
        "wall_seconds": round(wall_seconds, 1),
        "metrics": metrics,
        "history": history,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    from filelock import FileLock

    with FileLock(str(folder / ".manifest.lock")):  # runs finishing together must not drop an entry
        man = manifest(folder)
        man[name] = e
        with atomic_write(folder / "manifest.json", "w") as f:
            json.dump(dict(sorted(man.items())), f, indent=1)
            f.write("\n")
    for written in (path, folder / "manifest.json"):  # package data: readable by everyone
        written.chmod(0o644)
    return e
