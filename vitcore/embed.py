"""Patch embeddings and position embeddings.

``z0 = [x_cls; x_1 E; ...; x_N E] + E_pos`` (Dosovitskiy et al., 2021, Eq. 1).
The linear projection ``E`` of flattened patches is a Conv2d with kernel = stride = P.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .patches import _pair, check_image, grid_size

__all__ = ["PatchEmbed", "sincos_pos_embed_1d", "sincos_pos_embed_2d", "build_pos_embed", "resample_pos_embed"]


class PatchEmbed(nn.Module):
    """Image ``(B, C, H, W)`` -> patch tokens ``(B, N, D)`` via a stride-P convolution."""

    def __init__(
        self,
        img_size: int | tuple[int, int] = 224,
        patch_size: int = 16,
        in_chans: int = 3,
        embed_dim: int = 768,
        bias: bool = True,
        dynamic_img_size: bool = False,
    ) -> None:
        super().__init__()
        self.img_size = _pair(img_size)
        self.patch_size = _pair(patch_size)
        self.in_chans = in_chans
        self.dynamic_img_size = dynamic_img_size
        self.grid_size = grid_size(self.img_size, self.patch_size)
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=self.patch_size, stride=self.patch_size, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The entry of every ViT (``embed``, ``forward``, ``get_intermediate_layers``, MAE, the VLM):
        images of the weights' dtype (under autocast any but float64), at least one, finite;
        anything else is an error that names it (:func:`~vitcore.patches.check_image`)."""
        check_image(x, self.patch_size, self.in_chans, dtype=self.proj.weight.dtype, finite=True)
        if not self.dynamic_img_size and tuple(x.shape[-2:]) != self.img_size:
            raise ValueError(
                f"this model was built for {self.img_size[0]}x{self.img_size[1]} images, got "
                f"{x.shape[-2]}x{x.shape[-1]}; build it with dynamic_img_size=True or resample "
                "its position embeddings with vitcore.resample_pos_embed"
            )
        x = self.proj(x)  # (B, D, H/P, W/P)
        return x.flatten(2).transpose(1, 2)  # (B, N, D)


def sincos_pos_embed_1d(positions: torch.Tensor | int, dim: int, temperature: float = 10000.0) -> torch.Tensor:
    """Fixed 1D sine-cosine embedding (Vaswani et al., 2017): ``(L,) -> (L, dim)``.

    The first half of the channels holds ``sin(pos * w_i)``, the second half ``cos(pos * w_i)``,
    with frequencies ``w_i = temperature ** (-i / (dim/2))``.
    """
    if dim % 2:
        raise ValueError(f"sin-cos embedding needs an even dimension, got {dim}")
    pos = torch.arange(positions, dtype=torch.float64) if isinstance(positions, int) else positions.double()
    omega = temperature ** (-torch.arange(dim // 2, dtype=torch.float64) / (dim // 2))  # (dim/2,)
    angles = pos.reshape(-1, 1) * omega.reshape(1, -1)  # (L, dim/2)
    return torch.cat([angles.sin(), angles.cos()], dim=1).float()


def sincos_pos_embed_2d(grid: tuple[int, int], dim: int, temperature: float = 10000.0) -> torch.Tensor:
    """Fixed 2D sine-cosine embedding (as in MAE): ``-> (rows * cols, dim)``.

    Half of the channels encode the row, the other half the column, each with 1D sin-cos.
    """
    if dim % 4:
        raise ValueError(f"2D sin-cos embedding needs a dimension divisible by 4, got {dim}")
    rows, cols = grid
    r, c = torch.meshgrid(torch.arange(rows), torch.arange(cols), indexing="ij")
    emb_r = sincos_pos_embed_1d(r.flatten(), dim // 2, temperature)  # (N, dim/2)
    emb_c = sincos_pos_embed_1d(c.flatten(), dim // 2, temperature)  # (N, dim/2)
    return torch.cat([emb_r, emb_c], dim=1)


def build_pos_embed(kind: str, grid: tuple[int, int], dim: int, num_prefix_tokens: int = 0) -> torch.Tensor:
    """Initial position embedding ``(1, num_prefix_tokens + N, dim)``.

    ``kind``: ``"learn"`` (small random values, trained), ``"sincos1d"`` (patches numbered in
    raster order), ``"sincos2d"`` (row and column encoded separately). Prefix tokens (CLS,
    registers) get zeros under the fixed schemes.
    """
    n = grid[0] * grid[1]
    if kind == "learn":
        pe = torch.randn(num_prefix_tokens + n, dim) * 0.02
    elif kind == "sincos1d":
        pe = torch.cat([torch.zeros(num_prefix_tokens, dim), sincos_pos_embed_1d(n, dim)])
    elif kind == "sincos2d":
        pe = torch.cat([torch.zeros(num_prefix_tokens, dim), sincos_pos_embed_2d(grid, dim)])
    else:
        raise ValueError(f"unknown position embedding {kind!r}; use 'learn', 'sincos1d' or 'sincos2d'")
    return pe.unsqueeze(0)


_RESAMPLE_MODES = ("bicubic", "bilinear", "nearest", "nearest-exact", "area")


def resample_pos_embed(
    pos_embed: torch.Tensor,
    new_grid: tuple[int, int],
    old_grid: tuple[int, int] | None = None,
    num_prefix_tokens: int = 1,
    mode: str = "bicubic",
) -> torch.Tensor:
    """Interpolate ``(1, prefix + H*W, D)`` position embeddings to a new patch grid.

    Prefix tokens (CLS, registers) are kept as they are; the patch part is reshaped to its
    2D grid, resized with ``mode`` interpolation (``bicubic``, ``bilinear``, ``nearest``,
    ``nearest-exact`` or ``area``) and flattened again (ViT paper, Sec. 3.2).
    """
    if pos_embed.ndim != 3 or pos_embed.shape[0] != 1:
        raise ValueError(f"expected pos_embed of shape (1, L, D), got {tuple(pos_embed.shape)}")
    if mode not in _RESAMPLE_MODES:
        raise ValueError(f"unknown interpolation mode {mode!r}; use one of {', '.join(_RESAMPLE_MODES)}")
    if len(new_grid) != 2 or min(new_grid) < 1:
        raise ValueError(f"new_grid must be (rows, cols), both positive, got {tuple(new_grid)}")
    if not 0 <= num_prefix_tokens < pos_embed.shape[1]:
        raise ValueError(
            f"num_prefix_tokens={num_prefix_tokens} leaves no patch positions in pos_embed of shape "
            f"{tuple(pos_embed.shape)}"
        )
    prefix, patches = pos_embed[:, :num_prefix_tokens], pos_embed[:, num_prefix_tokens:]
    n = patches.shape[1]
    if old_grid is None:
        side = math.isqrt(n)
        if side * side != n:
            raise ValueError(f"{n} patch positions are not a square grid; pass old_grid")
        old_grid = (side, side)
    if old_grid[0] * old_grid[1] != n:
        raise ValueError(f"old_grid {old_grid} does not match {n} patch positions")
    if tuple(new_grid) == tuple(old_grid):
        return pos_embed
    dim = patches.shape[-1]
    grid = patches.reshape(1, old_grid[0], old_grid[1], dim).permute(0, 3, 1, 2)  # (1, D, h, w)
    smooth = mode in ("bilinear", "bicubic")  # align_corners exists only for these
    grid = F.interpolate(grid.float(), size=tuple(new_grid), mode=mode, align_corners=False if smooth else None)
    patches = grid.permute(0, 2, 3, 1).reshape(1, new_grid[0] * new_grid[1], dim).to(pos_embed.dtype)
    return torch.cat([prefix, patches], dim=1)
