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


def _autocast_on(device: torch.device) -> bool:
    """Whether torch.autocast converts inputs on this device (then any floating dtype will do)."""
    try:
        return torch.is_autocast_enabled(device.type)
    except RuntimeError:  # a device type autocast does not know (meta)
        return False


def check_image(
    x: torch.Tensor,
    patch_size: int | tuple[int, int],
    in_chans: int | None = None,
    *,
    dtype: torch.dtype | None = None,
    finite: bool = False,
) -> tuple[int, int]:
    """Validate a batch of images ``(B, C, H, W)``; return the patch grid.

    Always checked: a tensor with four dimensions, at least one image, ``in_chans`` channels (when
    given) and sides that the patch size divides. ``dtype``: the floating-point dtype the images
    must have (a model's weights'); under ``torch.autocast`` any floating dtype but float64
    passes, since autocast converts it. ``finite``: refuse NaN and inf (one pass over the batch;
    skipped on the meta device and while ``torch.compile`` or ``torch.jit`` traces). The dtype is
    a ``TypeError``, the rest ``ValueError``; each message names what was found and what to do.
    """
    if not isinstance(x, torch.Tensor):
        hint = " (a NumPy image: vitcore.image_to_tensor)" if type(x).__module__ == "numpy" else ""
        raise TypeError(f"expected a torch.Tensor of images (B, C, H, W), got {type(x).__name__}{hint}")
    if x.ndim != 4:
        raise ValueError(f"expected images of shape (B, C, H, W), got a tensor of shape {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"empty batch: images of shape {tuple(x.shape)} hold no image; give at least one")
    if in_chans is not None and x.shape[1] != in_chans:
        raise ValueError(f"expected {in_chans} input channels, got {x.shape[1]} (images of shape {tuple(x.shape)})")
    grid = grid_size((x.shape[2], x.shape[3]), patch_size)
    if dtype is not None:
        if not x.dtype.is_floating_point:
            raise TypeError(
                f"images are {x.dtype}, but the model takes floating-point images ({dtype}): convert "
                "uint8 pixels with vitcore.data.normalise(x) (Fashion-MNIST) or x.float() / 255 followed "
                "by the model's normalisation"
            )
        # autocast converts every floating dtype but float64 (torch leaves double alone)
        if x.dtype != dtype and not (_autocast_on(x.device) and x.dtype != torch.float64):
            amp = "" if x.dtype == torch.float64 else ", or run it under torch.autocast"
            raise TypeError(
                f"images are {x.dtype}, but the model's weights are {dtype}: pass x.to({dtype}) or "
                f"convert the model with model.to({x.dtype}){amp}"
            )
    tracing = torch.compiler.is_compiling() or torch.jit.is_tracing()
    if finite and not x.is_meta and not tracing and not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).sum())
        raise ValueError(
            f"images contain {bad} NaN or inf value(s) (of {x.numel()}): every output would be NaN; "
            "check how they were loaded and normalised"
        )
    return grid


def patchify(images: torch.Tensor, patch_size: int | tuple[int, int], in_chans: int | None = None) -> torch.Tensor:
    """``(B, C, H, W) -> (B, N, P*P*C)`` with patches in raster order.

    A rearrangement: any dtype goes through exactly (uint8 stays uint8, NaN stays NaN; the model's
    entry refuses both); a non-tensor, an empty batch or a bad shape is an error naming it.
    """
    check_image(images, patch_size, in_chans)
    ph, pw = _pair(patch_size)
    return rearrange(images, "b c (gh p1) (gw p2) -> b (gh gw) (p1 p2 c)", p1=ph, p2=pw)


def unpatchify(
    tokens: torch.Tensor, patch_size: int | tuple[int, int], grid: tuple[int, int] | None = None, in_chans: int = 3
) -> torch.Tensor:
    """Inverse of :func:`patchify`: ``(B, N, P*P*C) -> (B, C, H, W)``.

    ``grid`` is the patch grid ``(H/P, W/P)``; when omitted the grid must be square.
    Like :func:`patchify`, any dtype goes through exactly.
    """
    if not isinstance(tokens, torch.Tensor):
        raise TypeError(f"expected a torch.Tensor of tokens (B, N, P*P*C), got {type(tokens).__name__}")
    if tokens.ndim != 3:
        raise ValueError(f"expected tokens of shape (B, N, P*P*C), got {tuple(tokens.shape)}")
    if tokens.shape[0] == 0:
        raise ValueError(f"empty batch: tokens of shape {tuple(tokens.shape)} hold no image; give at least one")
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
