"""Images as sequences of patches (Dosovitskiy et al., 2021, Sec. 3.1).

An image ``(B, C, H, W)`` with patch size ``P`` becomes ``N = HW / P^2`` tokens of
length ``P * P * C``. Patches are read row by row (raster order) and each patch is
flattened as ``(p1, p2, c)``, the order used by MAE and by most reference code.
"""

from __future__ import annotations

import torch
from einops import rearrange

__all__ = ["image_to_tensor", "grid_size", "num_patches", "check_image", "patchify", "unpatchify"]


def image_to_tensor(image, size: int | None = 224) -> torch.Tensor:
    """A photograph ``(H, W, C)`` uint8 (numpy) -> ``(1, C, size, size)`` float in [0, 1], resized
    with antialiased bilinear interpolation (``size=None`` keeps ``H x W``)."""
    import torch.nn.functional as F

    if image.ndim != 3 or image.dtype.name != "uint8":
        raise ValueError(f"expected an (H, W, C) uint8 image, got shape {tuple(image.shape)} and dtype {image.dtype}")
    x = torch.from_numpy(image).float().div(255).permute(2, 0, 1).unsqueeze(0)  # (1, C, H, W)
    if size is None:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


def _pair(x: int | tuple[int, int]) -> tuple[int, int]:
    return (x, x) if isinstance(x, int) else (int(x[0]), int(x[1]))


def grid_size(image_size: int | tuple[int, int], patch_size: int | tuple[int, int]) -> tuple[int, int]:
    """The patch grid ``(H / P, W / P)``; raises ``ValueError`` if P does not divide H or W."""
    h, w = _pair(image_size)
    ph, pw = _pair(patch_size)
    if ph <= 0 or pw <= 0:
        raise ValueError(f"patch size must be positive, got {(ph, pw)}")
    if h % ph or w % pw:
        raise ValueError(
            f"image size {h}x{w} is not a multiple of the patch size {ph}x{pw}; "
            f"resize or crop the image to e.g. {h // ph * ph}x{w // pw * pw}"
        )
    return h // ph, w // pw


def num_patches(image_size: int | tuple[int, int], patch_size: int | tuple[int, int]) -> int:
    """``N = HW / P^2``."""
    gh, gw = grid_size(image_size, patch_size)
    return gh * gw


def check_image(x: torch.Tensor, patch_size: int | tuple[int, int], in_chans: int | None = None) -> tuple[int, int]:
    """Validate a batch of images ``(B, C, H, W)``; return the patch grid."""
    if x.ndim != 4:
        raise ValueError(f"expected images of shape (B, C, H, W), got a tensor of shape {tuple(x.shape)}")
    if in_chans is not None and x.shape[1] != in_chans:
        raise ValueError(f"expected {in_chans} input channels, got {x.shape[1]} (images of shape {tuple(x.shape)})")
    return grid_size((x.shape[2], x.shape[3]), patch_size)


def patchify(images: torch.Tensor, patch_size: int | tuple[int, int], in_chans: int | None = None) -> torch.Tensor:
    """``(B, C, H, W) -> (B, N, P*P*C)`` with patches in raster order."""
    check_image(images, patch_size, in_chans)
    ph, pw = _pair(patch_size)
    return rearrange(images, "b c (gh p1) (gw p2) -> b (gh gw) (p1 p2 c)", p1=ph, p2=pw)


def unpatchify(
    tokens: torch.Tensor, patch_size: int | tuple[int, int], grid: tuple[int, int] | None = None, in_chans: int = 3
) -> torch.Tensor:
    """Inverse of :func:`patchify`: ``(B, N, P*P*C) -> (B, C, H, W)``.

    ``grid`` is the patch grid ``(H/P, W/P)``; when omitted the grid must be square.
    """
    if tokens.ndim != 3:
        raise ValueError(f"expected tokens of shape (B, N, P*P*C), got {tuple(tokens.shape)}")
    ph, pw = _pair(patch_size)
    b, n, d = tokens.shape
    if d != ph * pw * in_chans:
        raise ValueError(f"token length {d} != patch_h * patch_w * channels = {ph}*{pw}*{in_chans}")
    if grid is None:
        side = round(n**0.5)
        if side * side != n:
            raise ValueError(f"{n} tokens do not form a square grid; pass grid=(rows, cols)")
        grid = (side, side)
    if grid[0] * grid[1] != n:
        raise ValueError(f"grid {grid} holds {grid[0] * grid[1]} patches, but got {n} tokens")
    return rearrange(tokens, "b (gh gw) (p1 p2 c) -> b c (gh p1) (gw p2)", gh=grid[0], gw=grid[1], p1=ph, p2=pw)
