"""Fewer tokens, less compute: token pruning and patch dropout for a vitcore ViT.

*Token pruning* (EViT, Liang et al., 2022; DynamicViT, Rao et al., 2021 learns the choice
instead): at chosen blocks, after attention, keep only the patch tokens the [CLS] token attends
to most (mean over heads), optionally fusing the rest into one token weighted by that
attention. Prefix tokens ([CLS], registers) are always kept and the kept tokens stay in image
order. Later blocks then run on fewer tokens, so their cost drops (attention quadratically).
No retraining is needed to try it, though accuracy drops as more tokens go.

*Patch dropout* (Liu et al., 2022, "PatchDropout"; timm's ``PatchDropout``) is the training-time
cousin: drop a random subset of patch tokens right after the position embedding, keeping the
prefix tokens. Training gets cheaper and acts as a regulariser; at evaluation nothing is dropped.

Both work on an unmodified :class:`~vitcore.vit.VisionTransformer`: the functions here run its
own modules in a different order, they do not copy the model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import cast

import torch
from torch import nn

from .block import Block
from .vit import VisionTransformer

__all__ = [
    "cls_attention_scores",
    "select_tokens",
    "forward_pruned",
    "patch_dropout",
    "PatchDropout",
    "forward_with_patch_dropout",
]


def cls_attention_scores(weights: torch.Tensor, num_prefix_tokens: int = 1) -> torch.Tensor:
    """How much [CLS] (token 0) attends to each patch token, averaged over heads.

    ``weights``: attention ``(B, heads, T, T)`` -> scores ``(B, T - num_prefix_tokens)``.
    """
    if weights.ndim != 4 or weights.shape[-1] != weights.shape[-2]:
        raise ValueError(f"expected attention weights (B, heads, T, T), got {tuple(weights.shape)}")
    if not 1 <= num_prefix_tokens < weights.shape[-1]:
        raise ValueError(f"num_prefix_tokens must be in [1, {weights.shape[-1] - 1}], got {num_prefix_tokens}")
    return weights[:, :, 0, num_prefix_tokens:].mean(dim=1)  # (B, N)


def select_tokens(
    x: torch.Tensor, scores: torch.Tensor, keep: int, num_prefix_tokens: int = 1, fuse: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep the prefix tokens and the ``keep`` patch tokens with the highest ``scores``.

    ``x: (B, T, D)``, ``scores: (B, N)`` with ``N = T - num_prefix_tokens``. Returns the kept
    tokens ``(B, prefix + keep (+1), D)`` in their original order and the positions ``(B, keep)``
    (in ``0..N-1``) of the kept patch tokens. With ``fuse`` the dropped tokens are averaged,
    weighted by their scores, into one extra token appended at the end (EViT's "inattentive
    token fusion").
    """
    B, T, D = x.shape
    n = T - num_prefix_tokens
    if scores.shape != (B, n):
        raise ValueError(f"scores must have shape {(B, n)} for x of shape {tuple(x.shape)}, got {tuple(scores.shape)}")
    if not 1 <= keep <= n:
        raise ValueError(f"keep must be between 1 and the {n} patch tokens, got {keep}")
    idx = scores.topk(keep, dim=1).indices.sort(dim=1).values  # (B, keep), image order
    prefix, patches = x[:, :num_prefix_tokens], x[:, num_prefix_tokens:]
    kept = patches.gather(1, idx.unsqueeze(-1).expand(-1, -1, D))  # (B, keep, D)
    parts = [prefix, kept]
    if fuse and keep < n:
        dropped = torch.ones_like(scores, dtype=torch.bool).scatter(1, idx, False)  # (B, N)
        w = (scores * dropped).unsqueeze(-1)  # (B, N, 1), zero on kept tokens
        parts.append((w * patches).sum(1, keepdim=True) / w.sum(1, keepdim=True).clamp_min(1e-12))
    return torch.cat(parts, dim=1), idx


def _keep_counts(keep: float | int | Sequence[float | int], n_blocks: int) -> list[float | int]:
    counts = list(keep) if isinstance(keep, Sequence) else [keep] * n_blocks
    if len(counts) != n_blocks:
        raise ValueError(f"got {len(counts)} keep values for {n_blocks} pruning blocks")
    for k in counts:
        if isinstance(k, bool) or not isinstance(k, (int, float)):
            raise ValueError(f"keep values must be ints (token counts) or floats (rates), got {k!r}")
        if isinstance(k, float) and not 0.0 < k <= 1.0:
            raise ValueError(f"a keep rate must be in (0, 1], got {k}")
        if isinstance(k, int) and k < 1:
            raise ValueError(f"a keep count must be at least 1, got {k}")
    return counts


def _pruning_block(
    blk: Block, x: torch.Tensor, keep: float | int, prefix: int, fuse: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """One encoder block that drops tokens between its attention and its MLP (as EViT does)."""
    x, weights = blk.attn_residual(x, return_attention=True)  # weights (B, h, T, T)
    assert weights is not None
    n = x.shape[1] - prefix
    k = min(n, max(1, math.ceil(keep * n))) if isinstance(keep, float) else keep
    x, idx = select_tokens(x, cls_attention_scores(weights, prefix), k, prefix, fuse)
    return blk.mlp_residual(x), idx


def forward_pruned(
    model: VisionTransformer,
    images: torch.Tensor,
    keep: float | int | Sequence[float | int] = 0.7,
    at_blocks: Sequence[int] = (3, 6, 9),
    fuse: bool = False,
    return_kept: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Logits of ``model`` with EViT-style token pruning at blocks ``at_blocks``.

    ``keep``: per pruning block, a rate in (0, 1] of the patch tokens present there (EViT uses
    0.7 at blocks 3, 6, 9 of 12, counting from 0) or a token count; one value for all blocks or
    one per block. With ``return_kept`` also returns the original patch positions ``(B, n_kept)``
    of the patch tokens that reached the head (``-1`` marks a fused token).
    """
    if not isinstance(model, VisionTransformer):
        raise ValueError(f"forward_pruned needs a vitcore VisionTransformer, got {type(model).__name__}")
    if model.cls_token is None:
        raise ValueError("token pruning ranks patches by [CLS] attention; this model has no class token")
    depth = len(model.blocks)
    if bad := [b for b in at_blocks if not -depth <= b < depth]:
        raise ValueError(f"block indices {bad} out of range for depth {depth}")
    blocks = sorted({b % depth for b in at_blocks})
    counts = dict(zip(blocks, _keep_counts(keep, len(blocks))))
    prefix = model.num_prefix_tokens

    x = model.embed(images)  # (B, prefix + N, D)
    B, n = x.shape[0], x.shape[1] - prefix
    pos = torch.arange(n, device=x.device).expand(B, n)  # original patch index of each patch token
    for i, blk in enumerate(model.blocks):
        if i not in counts:
            x = blk(x)
            continue
        if isinstance(counts[i], int) and counts[i] > x.shape[1] - prefix:
            raise ValueError(f"block {i}: cannot keep {counts[i]} of {x.shape[1] - prefix} patch tokens")
        x, idx = _pruning_block(cast(Block, blk), x, counts[i], prefix, fuse)
        pos = pos.gather(1, idx)
        if x.shape[1] - prefix > pos.shape[1]:  # a fused token was appended
            pos = torch.cat([pos, pos.new_full((B, 1), -1)], dim=1)
    logits = model.forward_head(model.norm(x))
    return (logits, pos) if return_kept else logits


# --------------------------------------------------------------------------- patch dropout
def patch_dropout(
    x: torch.Tensor, drop_prob: float, num_prefix_tokens: int = 1, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Randomly keep ``round((1 - drop_prob) * N)`` (at least 1) patch tokens of each image.

    ``x: (B, prefix + N, D)`` -> ``(B, prefix + kept, D)`` (prefix tokens always kept, kept
    tokens in image order) and their positions ``(B, kept)``. Each image draws its own subset.
    """
    if not 0.0 <= drop_prob < 1.0:
        raise ValueError(f"drop_prob must be in [0, 1), got {drop_prob}")
    B, T, D = x.shape
    n = T - num_prefix_tokens
    if n < 1:
        raise ValueError(f"x of shape {tuple(x.shape)} has no patch tokens after {num_prefix_tokens} prefix tokens")
    keep = max(1, round((1.0 - drop_prob) * n))
    noise = torch.rand(B, n, generator=generator, device="cpu" if generator is not None else x.device)
    idx = noise.to(x.device).argsort(dim=1)[:, :keep].sort(dim=1).values  # (B, keep)
    kept = x[:, num_prefix_tokens:].gather(1, idx.unsqueeze(-1).expand(-1, -1, D))
    return torch.cat([x[:, :num_prefix_tokens], kept], dim=1), idx


class PatchDropout(nn.Module):
    """:func:`patch_dropout` in training mode, the identity in evaluation mode (like timm's)."""

    def __init__(self, drop_prob: float = 0.5, num_prefix_tokens: int = 1) -> None:
        super().__init__()
        if not 0.0 <= drop_prob < 1.0:
            raise ValueError(f"drop_prob must be in [0, 1), got {drop_prob}")
        self.drop_prob = drop_prob
        self.num_prefix_tokens = num_prefix_tokens

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.drop_prob == 0.0:
            return x
        return patch_dropout(x, self.drop_prob, self.num_prefix_tokens)[0]


def forward_with_patch_dropout(
    model: VisionTransformer, images: torch.Tensor, drop_prob: float = 0.5, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Logits of ``model``, dropping patch tokens after the position embedding when training.

    In ``model.eval()`` mode this equals ``model(images)``.
    """
    if not isinstance(model, VisionTransformer):
        raise ValueError(f"forward_with_patch_dropout needs a vitcore VisionTransformer, got {type(model).__name__}")
    if not 0.0 <= drop_prob < 1.0:
        raise ValueError(f"drop_prob must be in [0, 1), got {drop_prob}")
    x = model.embed(images)  # (B, prefix + N, D), positions already added
    if model.training and drop_prob > 0.0:
        x = patch_dropout(x, drop_prob, model.num_prefix_tokens, generator)[0]
    for blk in model.blocks:
        x = blk(x)
    return model.forward_head(model.norm(x))
