"""Multi-head self-attention (Vaswani et al., 2017) as used in ViT.

Two paths compute the same thing: an explicit one that materialises the ``(N, N)``
attention matrix (and can return it, for visualisation), and the fused
``F.scaled_dot_product_attention``, which never stores the matrix and so cannot return it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

__all__ = ["Attention", "scaled_dot_product_attention"]


def scaled_dot_product_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Explicit ``softmax(q k^T / sqrt(d)) v``; returns ``(output, weights)``.

    ``q, k, v``: ``(..., N, d)``. ``attn_mask``: boolean (True = may attend) or additive.
    """
    weights = _attention_weights(q, k, attn_mask)
    return weights @ v, weights


def _attention_weights(q: torch.Tensor, k: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
    """``softmax(q k^T / sqrt(d))``, ``(..., N, N)``: the attention matrix, each row summing to 1."""
    scale = q.shape[-1] ** -0.5
    scores = (q * scale) @ k.transpose(-2, -1)  # (..., N, N)
    if attn_mask is not None:
        scores = scores.masked_fill(~attn_mask, float("-inf")) if attn_mask.dtype == torch.bool else scores + attn_mask
    return scores.softmax(dim=-1)


class Attention(nn.Module):
    """Multi-head self-attention with timm's parameter names (``qkv``, ``proj``)."""

    def __init__(
        self,
        dim: int,
        num_heads: int = 8,
        qkv_bias: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
        fused_attn: bool = True,
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.fused_attn = fused_attn
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(
        self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, return_attention: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """``x: (B, N, D)`` -> ``(B, N, D)``, plus weights ``(B, heads, N, N)`` if asked."""
        qkv = rearrange(self.qkv(x), "b n (three h d) -> three b h n d", three=3, h=self.num_heads)
        q, k, v = qkv.unbind(0)  # each (B, h, N, d)
        weights = None
        if self.fused_attn and not return_attention:
            drop = self.attn_drop.p if self.training else 0.0
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=drop)
        else:
            weights = _attention_weights(q, k, attn_mask)  # (B, h, N, N)
            out = self.attn_drop(weights) @ v  # one product with v; dropout acts only in training
        out = self.proj_drop(self.proj(rearrange(out, "b h n d -> b n (h d)")))  # (B, N, D)
        if return_attention:
            assert weights is not None  # return_attention takes the explicit path, which sets it
            return out, weights
        return out
