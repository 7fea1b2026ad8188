"""Loading timm ``vit_*`` state dicts (chapter 4): the keys already match ``vitcore``'s, so only the
architecture is read off the tensor shapes."""

from __future__ import annotations

import dataclasses
import math
import re
import warnings
from collections.abc import Mapping
from typing import Any

import torch

from ..checkpoint import load_state_dict_strict
from ..vit import PRESETS, VisionTransformer, ViTConfig

_StateDict = Mapping[str, torch.Tensor]


def _square_side(n: int) -> int | None:
    side = math.isqrt(n)
    return side if side * side == n else None


def infer_timm_config(state_dict: _StateDict, num_heads: int | None = None, **overrides: Any) -> ViTConfig:
    """Read a :class:`~vitcore.vit.ViTConfig` off the tensor shapes of a timm-style ViT state dict.

    Shapes give width, depth, patch size, MLP ratio, tokens, head size and LayerScale. The number
    of heads leaves no trace in the weights: pass ``num_heads`` unless width and depth match a
    preset (Ti/S/B/L/H). Otherwise heads of size 64 are guessed with a warning (a wrong guess
    loads without error but computes something else); a width that is not a multiple of 64 is a
    ``ValueError``. ``overrides`` set any other field (e.g. ``global_pool="avg"``).
    """
    if "patch_embed.proj.weight" not in state_dict:
        raise ValueError("not a timm ViT state dict: there is no 'patch_embed.proj.weight'")
    w = state_dict["patch_embed.proj.weight"]  # (D, C, P, P)
    embed_dim, in_chans, patch = w.shape[0], w.shape[1], w.shape[-1]
    depth = 1 + max((int(m.group(1)) for k in state_dict if (m := re.match(r"blocks\.(\d+)\.", k))), default=-1)
    if depth == 0:
        raise ValueError("not a timm ViT state dict: no 'blocks.N.*' keys")
    if num_heads is None:
        preset = [p for p in PRESETS.values() if (p["embed_dim"], p["depth"]) == (embed_dim, depth)]
        if preset:
            num_heads = preset[0]["num_heads"]
        elif embed_dim % 64 == 0:
            num_heads = embed_dim // 64  # timm's usual head size
            warnings.warn(
                f"guessing num_heads={num_heads} (head size 64) for embed_dim {embed_dim}, depth {depth}: "
                "the weights do not say, and a wrong guess computes a different function without any error; "
                "pass num_heads= to be sure",
                stacklevel=2,
            )
        else:
            raise ValueError(
                f"cannot infer num_heads: embed_dim {embed_dim} is not a multiple of 64 (timm's usual head "
                "size) and matches no preset; pass num_heads="
            )
    class_token = "cls_token" in state_dict
    reg_tokens = state_dict["reg_token"].shape[1] if "reg_token" in state_dict else 0
    n_prefix = int(class_token) + reg_tokens
    cfg: dict[str, Any] = dict(
        patch_size=patch,
        in_chans=in_chans,
        embed_dim=embed_dim,
        depth=depth,
        num_heads=num_heads,
        mlp_ratio=state_dict["blocks.0.mlp.fc1.weight"].shape[0] / embed_dim,
        qkv_bias="blocks.0.attn.qkv.bias" in state_dict,
        class_token=class_token,
        reg_tokens=reg_tokens,
        global_pool="token" if class_token else "avg",
        num_classes=state_dict["head.weight"].shape[0] if "head.weight" in state_dict else 0,
        init_values=1.0 if "blocks.0.ls1.gamma" in state_dict else None,  # the value is overwritten
    )
    if "pos_embed" in state_dict:
        n = state_dict["pos_embed"].shape[1]
        side = _square_side(n - n_prefix)  # prefix tokens carry a position ...
        if side is None and (side := _square_side(n)) is not None:
            cfg["no_embed_class"] = True  # ... or only the patches do
        if side is None:
            raise ValueError(f"pos_embed holds {n} positions: not a square grid plus {n_prefix} prefix tokens")
        cfg["img_size"] = side * patch
    else:
        cfg["pos_embed"] = "none"
    return ViTConfig(**{**cfg, **overrides})


def vit_from_timm(
    state_dict: _StateDict, config: ViTConfig | None = None, num_heads: int | None = None, **overrides: Any
) -> VisionTransformer:
    """A :class:`~vitcore.vit.VisionTransformer` holding a timm ``vit_*`` state dict (keys match ours).

    Without ``config`` the architecture is inferred with :func:`infer_timm_config` (pass
    ``num_heads`` unless the model is a preset size: a guess is announced with a warning). With
    ``config``, a given ``num_heads`` overrides its field like any other override.
    """
    if config is None:
        config = infer_timm_config(state_dict, num_heads=num_heads, **overrides)
    else:
        if num_heads is not None:
            overrides = {**overrides, "num_heads": num_heads}
        if overrides:
            config = dataclasses.replace(config, **overrides)
    model = VisionTransformer(config)
    load_state_dict_strict(model, state_dict)
    return model.eval()
