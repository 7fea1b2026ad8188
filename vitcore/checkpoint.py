"""Saving and loading weights safely.

Weights are stored as safetensors (no code runs on load) or read with
``torch.load(weights_only=True)``, which refuses arbitrary pickled objects. Loading
into a model checks every key and shape and names what does not fit.

Every file ``vitcore`` writes (weights, training states, manifests, cache entries, downloads)
goes through :func:`atomic_write`: a reader sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import torch
from torch import nn

__all__ = ["CheckpointMismatchError", "atomic_write", "load_state_dict_strict", "load_weights", "save_weights"]


class CheckpointMismatchError(KeyError):
    """A checkpoint's keys or shapes do not match the model."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


def _kind(dtype: torch.dtype) -> str:
    if dtype == torch.bool:
        return "bool"
    if dtype.is_complex:
        return "complex"
    return "float" if dtype.is_floating_point else "integer"


def load_state_dict_strict(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Load ``state_dict`` into ``model``; raise naming missing, unexpected and mis-shaped keys,
    and tensors of another kind of number (integers for a float weight, say; another float
    precision is cast, as ``load_state_dict`` does)."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    wrong_shape = [
        f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
        for k in sorted(set(own) & set(state_dict))
        if tuple(own[k].shape) != tuple(state_dict[k].shape)
    ]
    # Another float precision is cast on load (as torch does); another kind of number is a mistake.
    wrong_dtype = [
        f"{k}: checkpoint {state_dict[k].dtype} vs model {own[k].dtype}"
        for k in sorted(set(own) & set(state_dict))
        if _kind(state_dict[k].dtype) != _kind(own[k].dtype)
    ]
    problems = []
    if missing:
        problems.append(f"missing keys ({len(missing)}): {', '.join(missing)}")
    if unexpected:
        problems.append(f"unexpected keys ({len(unexpected)}): {', '.join(unexpected)}")
    if wrong_shape:
        problems.append(f"shape mismatches ({len(wrong_shape)}): {'; '.join(wrong_shape)}")
    if wrong_dtype:
        problems.append(f"dtype mismatches ({len(wrong_dtype)}): {'; '.join(wrong_dtype)}")
    if problems:
        raise CheckpointMismatchError("checkpoint does not fit the model: " + " | ".join(problems))
    model.load_state_dict(dict(state_dict), strict=True)


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "wb") -> Iterator[IO[Any]]:
    """Write ``path`` all or nothing: the block writes to a temporary file of a unique name in the
    same folder (opened with ``mode``, ``"wb"`` or ``"w"``; its ``.name`` is the temporary path, to
    check what was written before it counts), which is then flushed, fsynced and renamed over
    ``path`` (``os.replace``). If the block raises, the temporary file is removed and ``path`` is
    as it was. A new file gets mode 0o644, a replaced one keeps its mode.

    >>> with atomic_write(folder / "meta.json", "w") as f:
    ...     json.dump(meta, f)
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_write writes a whole new file: mode 'wb' or 'w', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        with open(tmp_name, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp_name, path.stat().st_mode & 0o777 if path.exists() else 0o644)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    with contextlib.suppress(OSError):  # the rename itself on disk (POSIX; not possible on Windows)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def save_weights(
    model_or_state: nn.Module | Mapping[str, torch.Tensor], path: str | Path, metadata: dict[str, str] | None = None
) -> Path:
    """Save weights as safetensors (``path`` must end in ``.safetensors``), atomically
    (:func:`atomic_write`); ``metadata`` goes into the file's header. A training state with more
    than tensors (step counters, a history) is not weights: save it with ``torch.save``."""
    from safetensors.torch import save

    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(
            f"save_weights writes safetensors files; {path} ends in {path.suffix!r}, not '.safetensors'. "
            "Name the file *.safetensors (load_weights still reads .pt files)."
        )
    state = model_or_state.state_dict() if isinstance(model_or_state, nn.Module) else model_or_state
    blob = save({k: v.detach().cpu().contiguous() for k, v in state.items()}, metadata=metadata)
    with atomic_write(path) as f:
        f.write(blob)
    return path


# What torch's weights-only unpickler says when a pickle asks for more than tensors and plain
# containers (a class, a function, a blocked module): the file may be fine, but it is not ours to run.
_UNTRUSTED = re.compile(
    r"Unsupported global|was not an allowed global|whose module \S+ is blocked|Can only create new object"
    r"|Trying to call reduce for unrecognized function|must be imported to load|TorchScript"
)


def _first_line(err: BaseException) -> str:
    """The informative line of an exception message (torch's weights-only errors bury it)."""
    text = str(err)
    m = re.search(r"WeightsUnpickler error: (.*)", text)
    line = m.group(1) if m else next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return f"{type(err).__name__}: {line}" if line else type(err).__name__


def _check_flat(state: object, path: Path) -> dict[str, torch.Tensor]:
    """``state`` as a flat ``{name: tensor}`` dict, or a ValueError naming what is in the way."""
    if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping):
        raise ValueError(f"{path} is not a flat dict of tensors: it holds a {type(state).__name__}")
    for k, v in state.items():
        if not isinstance(k, str):
            raise ValueError(f"{path} is not a flat dict of tensors: key {k!r} is not a string")
        if not isinstance(v, torch.Tensor):
            raise ValueError(f"{path} is not a flat dict of tensors: {k!r} holds {type(v).__name__}")
    return dict(state)


def load_weights(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Read a state dict from safetensors, or from a ``torch.save`` file with ``weights_only=True``.

    Every failure is a ``ValueError`` that names the file and says which kind it is:

    * a pickle that holds anything but tensors and plain containers is refused as an *untrusted
      pickle* (loading it would run code named in the file);
    * a file that cannot be read as a checkpoint (cut short by an interrupted download or copy,
      damaged, or not a checkpoint at all) is *corrupt or truncated*; so is a safetensors file
      whose header or data do not add up;
    * a file that loads but is not a flat ``{name: tensor}`` dict (a training state with step
      counters, a bare tensor, a list) names the entry that is in the way.

    A missing file is a ``FileNotFoundError``; an I/O error reading it (``OSError``) is passed on.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device=str(map_location))
        except SafetensorError as err:
            raise ValueError(
                f"corrupt or truncated safetensors file {path} ({_first_line(err)}); download or copy it again"
            ) from err
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except OSError:
        raise  # the disk, not the file's contents: the message already names the problem
    except Exception as err:
        detail = _first_line(err)
        if _UNTRUSTED.search(str(err)):
            raise ValueError(
                f"refusing to load {path}: it is an untrusted pickle, not a plain tensor checkpoint "
                f"({detail}). Loading it would run code named in the file: only load pickles you "
                "trust (torch.load(weights_only=False)), or convert them to safetensors."
            ) from err
        if isinstance(err, RuntimeError) and "deserialize object on" in str(err):
            raise  # map_location names a device this machine lacks: not the file's fault
        raise ValueError(
            f"{path} is corrupt or truncated: torch.load cannot read it as a checkpoint ({detail}). "
            "Download or copy it again; if it was saved by an interrupted run, save it again."
        ) from err
    return _check_flat(state, path)
