"""Swin Transformer (Liu et al., 2021): attention inside local windows, shifted every other block.

Global attention costs O(N^2) in the number of tokens. Swin splits the token grid into
``M x M`` windows and attends only inside each window (cost O(N M^2)); every second block shifts
the windows by ``M/2`` so information crosses window borders. Patch merging halves the grid
between stages, giving a CNN-like pyramid. Names follow timm's ``swin_transformer.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from .block import DropPath, Mlp

__all__ = [
    "window_partition",
    "window_reverse",
    "relative_position_index",
    "shift_attention_mask",
    "WindowAttention",
    "SwinBlock",
    "PatchMerging",
    "SwinConfig",
    "SwinTransformer",
]


def window_partition(x: torch.Tensor, window: int) -> torch.Tensor:
    """``(B, H, W, C) -> (B * nW, window * window, C)``, windows in raster order."""
    b, h, w, c = x.shape
    if h % window or w % window:
        raise ValueError(f"grid {h}x{w} is not a multiple of the window size {window}")
    return rearrange(x, "b (nh m1) (nw m2) c -> (b nh nw) (m1 m2) c", m1=window, m2=window)


def window_reverse(windows: torch.Tensor, window: int, h: int, w: int) -> torch.Tensor:
    """Inverse of :func:`window_partition`: ``(B * nW, window * window, C) -> (B, H, W, C)``."""
    return rearrange(windows, "(b nh nw) (m1 m2) c -> b (nh m1) (nw m2) c", nh=h // window, nw=w // window, m1=window)


def relative_position_index(window: int) -> torch.Tensor:
    """``(M*M, M*M)`` index into a ``(2M-1)^2`` bias table for each (query, key) offset in a window."""
    r, c = torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")
    coords = torch.stack([r.flatten(), c.flatten()])  # (2, M*M)
    rel = coords[:, :, None] - coords[:, None, :]  # (2, M*M, M*M), offsets in [-(M-1), M-1]
    rel = rel + (window - 1)  # shift to [0, 2M-2]
    return rel[0] * (2 * window - 1) + rel[1]


def shift_attention_mask(h: int, w: int, window: int, shift: int) -> torch.Tensor:
    """Boolean mask ``(nW, M*M, M*M)``: True where two tokens of a shifted window may attend.

    After a cyclic shift by ``shift``, some windows hold tokens from different regions of the
    original image (wrapped around the border); tokens from different regions must not attend.
    """
    region = torch.zeros(1, h, w, 1)
    cuts = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
    label = 0
    for hs in cuts:
        for ws in cuts:
            region[:, hs, ws, :] = label
            label += 1
    ids = window_partition(region, window).squeeze(-1)  # (nW, M*M)
    return ids[:, :, None] == ids[:, None, :]


class WindowAttention(nn.Module):
    """Multi-head attention inside a window, with a learned relative position bias.

    ``fused_attn`` picks ``F.scaled_dot_product_attention`` (default) or the explicit
    ``softmax(q k^T / sqrt(d) + bias) v``; both compute the same function. The explicit path is
    what :func:`vitcore.flops.count_macs` switches to, so that the attention products are counted.
    """

    relative_position_index: torch.Tensor  # buffer (M*M, M*M)

    def __init__(self, dim: int, window: int, num_heads: int, qkv_bias: bool = True, fused_attn: bool = True) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.window = window
        self.scale = (dim // num_heads) ** -0.5
        self.fused_attn = fused_attn
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, num_heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.register_buffer("relative_position_index", relative_position_index(window), persistent=False)
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def position_bias(self) -> torch.Tensor:
        """``(heads, M*M, M*M)``."""
        n = self.window**2
        bias = self.relative_position_bias_table[self.relative_position_index.flatten()]
        return bias.reshape(n, n, -1).permute(2, 0, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``x: (B * nW, M*M, C)``; ``mask: (nW, M*M, M*M)`` boolean or None."""
        q, k, v = rearrange(self.qkv(x), "b n (three h d) -> three b h n d", three=3, h=self.num_heads).unbind(0)
        bias = self.position_bias().unsqueeze(0)  # (1, h, n, n)
        if mask is not None:  # windows of one image are contiguous: window i of the batch is i % nW
            nw = mask.shape[0]
            blocked = torch.zeros(mask.shape, dtype=bias.dtype, device=bias.device).masked_fill(~mask, float("-inf"))
            bias = (bias + blocked.unsqueeze(1)).repeat(x.shape[0] // nw, 1, 1, 1)  # (B*nW, h, n, n)
        if self.fused_attn:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype))  # (B*nW, h, n, d)
        else:
            scores = (q * self.scale) @ k.transpose(-2, -1) + bias.to(q.dtype)  # (B*nW, h, n, n)
            out = scores.softmax(-1) @ v
        return self.proj(rearrange(out, "b h n d -> b n (h d)"))


class SwinBlock(nn.Module):
    """Pre-norm block with (shifted) window attention; names ``norm1, attn, norm2, mlp``."""

    attn_mask: torch.Tensor | None  # buffer (nW, M*M, M*M), None without a shift

    def __init__(
        self,
        dim: int,
        grid: tuple[int, int],
        num_heads: int,
        window: int,
        shift: int,
        mlp_ratio: float = 4.0,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        if min(grid) <= window:  # a single window covers the grid: no shifting needed
            window, shift = min(grid), 0
        self.grid, self.window, self.shift = grid, window, shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window, num_heads)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        mask = shift_attention_mask(*grid, window, shift) if shift else None
        self.register_buffer("attn_mask", mask, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, H*W, C) -> (B, H*W, C)``."""
        h, w = self.grid
        b, n, c = x.shape
        y = self.norm1(x).reshape(b, h, w, c)
        if self.shift:
            y = torch.roll(y, shifts=(-self.shift, -self.shift), dims=(1, 2))
        y = self.attn(window_partition(y, self.window), self.attn_mask)
        y = window_reverse(y, self.window, h, w)
        if self.shift:
            y = torch.roll(y, shifts=(self.shift, self.shift), dims=(1, 2))
        x = x + self.drop_path(y.reshape(b, n, c))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchMerging(nn.Module):
    """Concatenate each 2x2 group of tokens (4C) and project to 2C: the grid halves.

    The four tokens of a group at rows ``2i, 2i+1`` and columns ``2j, 2j+1`` are concatenated
    in the order of the Swin paper's code and timm: (top left, bottom left, top right, bottom
    right), i.e. the row offset varies fastest. The order matters only for sharing weights: a
    ``reduction`` trained with one order is a different map under another.
    """

    def __init__(self, dim: int, grid: tuple[int, int]) -> None:
        super().__init__()
        if grid[0] % 2 or grid[1] % 2:
            raise ValueError(f"patch merging needs an even grid, got {grid}")
        self.grid = grid
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, H*W, C) -> (B, H/2 * W/2, 2C)``."""
        h, w = self.grid
        # p1: row offset, p2: column offset; (p2 p1 c) puts the row offset fastest, as timm does
        x = rearrange(x, "b (h p1 w p2) c -> b (h w) (p2 p1 c)", h=h // 2, w=w // 2, p1=2, p2=2)
        return self.reduction(self.norm(x))


class SwinStage(nn.Module):
    def __init__(
        self,
        dim: int,
        grid: tuple[int, int],
        depth: int,
        num_heads: int,
        window: int,
        downsample: bool,
        drop_paths: list[float],
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            SwinBlock(dim, grid, num_heads, window, 0 if i % 2 == 0 else window // 2, drop_path=drop_paths[i])
            for i in range(depth)
        )
        self.downsample = PatchMerging(dim, grid) if downsample else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for blk in self.blocks:
            x = blk(x)
        return self.downsample(x)


@dataclass
class SwinConfig:
    img_size: int = 32
    patch_size: int = 2
    in_chans: int = 1
    num_classes: int = 10
    embed_dim: int = 32
    depths: tuple[int, ...] = (2, 2)
    num_heads: tuple[int, ...] = (2, 4)
    window_size: int = 4
    drop_path_rate: float = 0.0


class SwinTransformer(nn.Module):
    """A small Swin: patch embedding -> stages of (shifted) window blocks with patch merging -> mean pool -> head."""

    def __init__(self, config: SwinConfig | None = None, **kwargs: Any) -> None:
        super().__init__()
        cfg = config or SwinConfig(**kwargs)
        self.config = cfg
        if cfg.img_size % cfg.patch_size:
            raise ValueError(f"image size {cfg.img_size} is not a multiple of the patch size {cfg.patch_size}")
        g = cfg.img_size // cfg.patch_size
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(cfg.in_chans, cfg.embed_dim, cfg.patch_size, cfg.patch_size)
        self.patch_embed.norm = nn.LayerNorm(cfg.embed_dim)
        total = sum(cfg.depths)
        dpr = [cfg.drop_path_rate * i / max(total - 1, 1) for i in range(total)]
        layers, dim, start = [], cfg.embed_dim, 0
        for i, (depth, heads) in enumerate(zip(cfg.depths, cfg.num_heads, strict=True)):
            last = i == len(cfg.depths) - 1
            layers.append(SwinStage(dim, (g, g), depth, heads, cfg.window_size, not last, dpr[start : start + depth]))
            start += depth
            if not last:
                dim, g = dim * 2, g // 2
        self.layers = nn.ModuleList(layers)
        self.num_features = dim
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, cfg.num_classes) if cfg.num_classes else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W) -> (B, tokens of the last stage, C_last)``."""
        if (
            x.shape[1] != self.config.in_chans
            or x.shape[-1] != self.config.img_size
            or x.shape[-2] != self.config.img_size
        ):
            raise ValueError(
                f"expected images (B, {self.config.in_chans}, {self.config.img_size}, "
                f"{self.config.img_size}), got {tuple(x.shape)}"
            )
        proj = cast(nn.Conv2d, self.patch_embed.proj)
        norm = cast(nn.LayerNorm, self.patch_embed.norm)
        x = norm(proj(x).flatten(2).transpose(1, 2))  # (B, N, C)
        for layer in self.layers:
            x = layer(x)
        return self.norm(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x).mean(1))
