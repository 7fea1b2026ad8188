"""Adapting a pretrained ViT cheaply: LoRA (Hu et al., 2022) and bottleneck adapters (Houlsby et al., 2019).

LoRA freezes a linear layer ``W`` and learns a low-rank update: ``y = W x + (alpha / r) * B A x``
with ``A: (r, in)``, ``B: (out, r)``, ``B`` starting at zero so training starts from the
pretrained model. After training the update can be merged: ``W' = W + (alpha / r) B A``.

A bottleneck adapter is ``x + up(GELU(down(x)))`` with ``up`` starting at zero. Houlsby et al.
insert two per block, one after the attention and one after the MLP; ``add_adapters`` puts one
after each MLP only, the placement Pfeiffer et al. (AdapterFusion, 2021) found to work as well.
Chapter 8 teaches LoRA and adapters.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, cast

import torch
from torch import nn

from .flops import count_params

if TYPE_CHECKING:
    from .vit import VisionTransformer

__all__ = [
    "LoRALinear",
    "apply_lora",
    "Adapter",
    "MlpWithAdapter",
    "add_adapters",
    "freeze_except",
    "tokens_after",
    "ViTTail",
]


class LoRALinear(nn.Module):
    """A frozen ``nn.Linear`` plus a trainable rank-``r`` update."""

    def __init__(self, base: nn.Linear, r: int = 8, alpha: float = 16.0, dropout: float = 0.0) -> None:
        super().__init__()
        if r <= 0:
            raise ValueError(f"LoRA rank must be positive, got {r}")
        self.base = base
        for p in self.base.parameters():
            p.requires_grad = False
        self.r, self.scaling = r, alpha / r
        self.lora_A = nn.Parameter(torch.empty(r, base.in_features))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # as nn.Linear's default init
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (self.dropout(x) @ self.lora_A.T @ self.lora_B.T) * self.scaling

    def merged_weight(self) -> torch.Tensor:
        """``W + (alpha / r) B A``: the plain linear layer this module equals."""
        return self.base.weight + self.scaling * self.lora_B @ self.lora_A


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, new)


def apply_lora(
    model: nn.Module,
    target_modules: Iterable[str] = ("attn.qkv",),
    r: int = 8,
    alpha: float = 16.0,
    dropout: float = 0.0,
) -> list[str]:
    """Wrap every ``nn.Linear`` whose name ends with a target (e.g. ``"attn.qkv"``, ``"mlp.fc1"``).

    Freezes the whole model first, so only the LoRA factors train (unfreeze a head yourself).
    Returns the wrapped module names; raises if a target matches nothing.
    """
    targets = tuple(target_modules)
    for p in model.parameters():
        p.requires_grad = False
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and n.endswith(targets)]
    unmatched = [t for t in targets if not any(n.endswith(t) for n in names)]
    if unmatched:
        raise ValueError(f"target modules {unmatched} match no nn.Linear in the model")
    for n in names:
        _replace(model, n, LoRALinear(cast(nn.Linear, model.get_submodule(n)), r, alpha, dropout))
    return names


class Adapter(nn.Module):
    """Bottleneck adapter: ``x + up(GELU(down(x)))``, ``up`` zero-initialised (starts as identity)."""

    def __init__(self, dim: int, bottleneck: int = 16) -> None:
        super().__init__()
        self.down = nn.Linear(dim, bottleneck)
        self.act = nn.GELU()
        self.up = nn.Linear(bottleneck, dim)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.up(self.act(self.down(x)))


class MlpWithAdapter(nn.Module):
    """A block's MLP followed by an adapter (Pfeiffer et al.'s placement: one adapter per block,
    after the MLP; Houlsby et al. add a second one after the attention)."""

    def __init__(self, mlp: nn.Module, adapter: Adapter) -> None:
        super().__init__()
        self.mlp = mlp
        self.adapter = adapter

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.adapter(self.mlp(x))


def add_adapters(model: nn.Module, bottleneck: int = 16) -> int:
    """Put an adapter after the MLP of every block in ``model.blocks``; freeze everything else.

    Returns the number of trainable (adapter) parameters.
    """
    for p in model.parameters():
        p.requires_grad = False
    for blk in cast(nn.ModuleList, model.blocks):
        mlp = cast(nn.Module, blk.mlp)
        dim = cast(nn.Linear, mlp.fc2).out_features
        blk.mlp = MlpWithAdapter(mlp, Adapter(dim, bottleneck))
    return count_params(model, trainable_only=True)


def freeze_except(model: nn.Module, trainable_prefixes: Iterable[str]) -> int:
    """Train only parameters whose name starts with one of the prefixes; return their count."""
    prefixes = tuple(trainable_prefixes)
    for name, p in model.named_parameters():
        p.requires_grad = name.startswith(prefixes)
    return count_params(model, trainable_only=True)


@torch.no_grad()
def tokens_after(model: VisionTransformer, images: torch.Tensor, n_blocks: int, batch_size: int = 64) -> torch.Tensor:
    """Run a ViT's embedding and its first ``n_blocks`` blocks once: ``(B, C, H, W) -> (B, T, D)``.

    When only the later blocks are trained, these tokens never change, so they are computed once
    and cached; :class:`ViTTail` takes them from there.
    """
    depth = len(model.blocks)
    if not 0 <= n_blocks <= depth:
        raise ValueError(f"n_blocks must be in [0, {depth}], got {n_blocks}")
    was_training = model.training
    model.eval()
    outs = []
    for i in range(0, len(images), batch_size):
        x = model.embed(images[i : i + batch_size])
        for blk in model.blocks[:n_blocks]:
            x = blk(x)
        outs.append(x)
    model.train(was_training)
    return torch.cat(outs)


class ViTTail(nn.Module):
    """A copy of a ViT's blocks from ``start`` on, its final norm and pooling, and a new linear head.

    ``tail(tokens_after(model, x, start))`` equals ``model(x)`` up to the head, so the later blocks
    can be fine-tuned (or given LoRA / adapters) on cached tokens. Block names restart at
    ``blocks.0``; the module names inside a block (``attn.qkv``, ``mlp.fc1``) are unchanged.
    """

    def __init__(self, model: VisionTransformer, start: int, num_classes: int) -> None:
        super().__init__()
        depth = len(model.blocks)
        if not 0 <= start <= depth:
            raise ValueError(f"start must be in [0, {depth}], got {start}")
        self.blocks = copy.deepcopy(model.blocks[start:])
        self.norm = copy.deepcopy(model.norm)
        self.num_prefix_tokens = int(getattr(model, "num_prefix_tokens", 1))
        self.global_pool = model.config.global_pool
        dim = model.norm.normalized_shape[0] if isinstance(model.norm, nn.LayerNorm) else model.config.embed_dim
        self.head = nn.Linear(dim, num_classes)

    def forward_features(self, tokens: torch.Tensor) -> torch.Tensor:
        """Cached tokens ``(B, T, D)`` -> normalised output tokens ``(B, T, D)``."""
        for blk in self.blocks:
            tokens = blk(tokens)
        return self.norm(tokens)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Cached tokens ``(B, T, D)`` -> logits ``(B, num_classes)``."""
        x = self.forward_features(tokens)
        pooled = x[:, self.num_prefix_tokens :].mean(1) if self.global_pool == "avg" else x[:, 0]
        return self.head(pooled)
