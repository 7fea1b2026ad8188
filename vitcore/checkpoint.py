"""Saving and loading weights safely.

Weights are stored as safetensors (no code runs on load) or read with
``torch.load(weights_only=True)``, which refuses arbitrary pickled objects. Loading
into a model checks every key and shape and names what does not fit.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

__all__ = ["CheckpointMismatchError", "load_state_dict_strict", "load_weights", "save_weights"]


class CheckpointMismatchError(KeyError):
    """A checkpoint's keys or shapes do not match the model."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


def load_state_dict_strict(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Load ``state_dict`` into ``model``; raise naming missing, unexpected and mis-shaped keys."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    wrong_shape = [
        f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
        for k in sorted(set(own) & set(state_dict))
        if tuple(own[k].shape) != tuple(state_dict[k].shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing keys ({len(missing)}): {', '.join(missing)}")
    if unexpected:
        problems.append(f"unexpected keys ({len(unexpected)}): {', '.join(unexpected)}")
    if wrong_shape:
        problems.append(f"shape mismatches ({len(wrong_shape)}): {'; '.join(wrong_shape)}")
    if problems:
        raise CheckpointMismatchError("checkpoint does not fit the model: " + " | ".join(problems))
    model.load_state_dict(dict(state_dict), strict=True)


def save_weights(model_or_state: nn.Module | Mapping[str, torch.Tensor], path: str | Path) -> Path:
    """Save weights as safetensors (``.safetensors``) or a plain tensor dict (``.pt``)."""
    from safetensors.torch import save_file

    state = model_or_state.state_dict() if isinstance(model_or_state, nn.Module) else model_or_state
    state = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".safetensors":
        save_file(state, str(path))
    else:
        torch.save(state, path)
    return path


def load_weights(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Read a state dict from safetensors, or from a ``torch.save`` file with ``weights_only=True``.

    A pickle that holds anything but tensors and plain containers is refused.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device=str(map_location))
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises UnpicklingError (or RuntimeError) for unsafe content
        raise ValueError(
            f"refusing to load {path}: it is not a plain tensor checkpoint ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}). Only load pickles you trust, "
            "or convert them to safetensors."
        ) from err
    if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path} does not hold a flat dict of tensors")
    return dict(state)
