"""The Transformer encoder block: attention and MLP, each with a residual connection.

Pre-norm (ViT, Eq. 2-3): ``x = x + attn(norm1(x)); x = x + mlp(norm2(x))``.
Post-norm (the original Transformer): ``x = norm1(x + attn(x)); x = norm2(x + mlp(x))``.
"""

from __future__ import annotations

import torch
from torch import nn

from .attention import Attention

__all__ = ["Mlp", "LayerScale", "DropPath", "Block"]


class Mlp(nn.Module):
    """``fc1 -> GELU -> fc2``, hidden width ``mlp_ratio * dim`` (timm names)."""

    def __init__(self, dim: int, hidden_dim: int, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class LayerScale(nn.Module):
    """Per-channel learnable scale of a residual branch (Touvron et al., 2021, CaiT)."""

    def __init__(self, dim: int, init_values: float = 1e-5) -> None:
        super().__init__()
        self.gamma = nn.Parameter(init_values * torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class DropPath(nn.Module):
    """Stochastic depth: drop a whole residual branch per sample (Huang et al., 2016).

    In training each sample's branch is kept with probability ``1 - drop_prob`` and scaled by
    ``1 / (1 - drop_prob)``; ``drop_prob`` must be in ``[0, 1)``.
    """

    def __init__(self, drop_prob: float = 0.0) -> None:
        super().__init__()
        # p = 1 would drop every sample and divide by a keep probability of 0 (NaN in training).
        if not 0.0 <= drop_prob < 1.0:
            raise ValueError(f"drop_prob must be in [0, 1), got {drop_prob}")
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep = 1.0 - self.drop_prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep


class Block(nn.Module):
    """One encoder block with timm's names: ``norm1, attn, ls1, norm2, mlp, ls2``."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        proj_drop: float = 0.0,
        attn_drop: float = 0.0,
        drop_path: float = 0.0,
        init_values: float | None = None,
        norm_style: str = "pre",
        norm_eps: float = 1e-6,
        fused_attn: bool = True,
    ) -> None:
        super().__init__()
        if norm_style not in ("pre", "post"):
            raise ValueError(f"norm_style must be 'pre' or 'post', got {norm_style!r}")
        self.norm_style = norm_style
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = Attention(dim, num_heads, qkv_bias, attn_drop, proj_drop, fused_attn)
        self.ls1 = LayerScale(dim, init_values) if init_values else nn.Identity()
        self.drop_path1 = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), proj_drop)
        self.ls2 = LayerScale(dim, init_values) if init_values else nn.Identity()
        self.drop_path2 = DropPath(drop_path)

    def attn_residual(
        self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, return_attention: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The block's first half, ``(B, N, D) -> (B, N, D)``: ``x + attn(norm1(x))`` (post-norm:
        ``norm1(x + attn(x))``), and the attention weights ``(B, heads, N, N)`` if asked (else None)."""
        attn_in = self.norm1(x) if self.norm_style == "pre" else x
        out = self.attn(attn_in, attn_mask=attn_mask, return_attention=return_attention)
        attn_out, weights = out if return_attention else (out, None)
        x = x + self.drop_path1(self.ls1(attn_out))
        return (x if self.norm_style == "pre" else self.norm1(x)), weights

    def mlp_residual(self, x: torch.Tensor) -> torch.Tensor:
        """The block's second half, ``(B, N, D) -> (B, N, D)``: ``x + mlp(norm2(x))`` (post-norm:
        ``norm2(x + mlp(x))``). Token pruning (chapter 14) drops tokens between the two halves."""
        if self.norm_style == "pre":
            return x + self.drop_path2(self.ls2(self.mlp(self.norm2(x))))
        return self.norm2(x + self.drop_path2(self.ls2(self.mlp(x))))

    def forward(
        self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, return_attention: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """``(B, N, D) -> (B, N, D)``; with ``return_attention`` also ``(B, heads, N, N)``."""
        x, weights = self.attn_residual(x, attn_mask, return_attention)
        x = self.mlp_residual(x)
        if return_attention:
            assert weights is not None  # Attention returns (out, weights) when asked
            return x, weights
        return x
