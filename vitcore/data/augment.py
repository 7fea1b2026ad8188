"""Augmentation of whole batches of Fashion-MNIST images on the training device: normalise, random
crop, random flip (chapter 5). Batched, because for 28x28 images one call per batch is far faster
than one per image."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .fashion_mnist import MEAN, STD

# How far outside [0, 1] a floating-point image may stray (rounding of a resize) and still count as in it
UNIT_RANGE_SLACK = 1e-3


def normalise(x: torch.Tensor, mean: float = MEAN, std: float = STD) -> torch.Tensor:
    """Images ``(B, H, W)`` or ``(B, C, H, W)`` -> float32 ``(B, C, H, W)``, ``(x - mean) / std`` on the
    [0, 1] scale (Fashion-MNIST's mean and std by default: mean 0, std 1 over the data set).

    uint8 pixels (0..255) are divided by 255; floating-point images must already be in [0, 1] and
    are not divided. Anything else is an error that names what was found: another integer dtype
    (``TypeError``), floats outside [0, 1] (pixels 0..255 in a float tensor, or images normalised
    already), NaN or inf, an empty batch or another shape (``ValueError``).
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"normalise takes a torch.Tensor of images, got {type(x).__name__}")
    if x.ndim not in (3, 4):
        raise ValueError(f"normalise takes images (B, H, W) or (B, C, H, W), got shape {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"empty batch: images of shape {tuple(x.shape)} hold no image")
    if x.ndim == 3:
        x = x.unsqueeze(1)
    if x.dtype == torch.uint8:
        return (x.float() / 255.0 - mean) / std
    if not x.dtype.is_floating_point:
        raise TypeError(
            f"normalise takes uint8 pixels (0..255) or floating-point images in [0, 1], got {x.dtype}: "
            "convert pixels 0..255 with x.to(torch.uint8)"
        )
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"images contain {int((~torch.isfinite(x)).sum())} NaN or inf value(s)")
    lo, hi = (v.item() for v in x.aminmax())
    if lo < -UNIT_RANGE_SLACK or hi > 1 + UNIT_RANGE_SLACK:
        hint = (
            "pixels 0..255 in a float tensor: pass them as uint8, or divide by 255 first"
            if lo >= 0
            else "normalised already? normalise takes raw images; after a resize, clamp(0, 1)"
        )
        raise ValueError(f"floating-point images must be in [0, 1], got values in [{lo:.4g}, {hi:.4g}]: {hint}")
    return (x.float() - mean) / std


def random_crop(x: torch.Tensor, padding: int = 2, generator: torch.Generator | None = None) -> torch.Tensor:
    """Pad ``(B, C, H, W)`` with zeros by ``padding`` and cut a random ``H x W`` window per image."""
    if padding == 0:
        return x
    b, _, h, w = x.shape
    xp = F.pad(x, (padding,) * 4)  # (B, C, H+2p, W+2p)
    oy = torch.randint(0, 2 * padding + 1, (b,), generator=generator).to(x.device)
    ox = torch.randint(0, 2 * padding + 1, (b,), generator=generator).to(x.device)
    rows = (oy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]  # (B, 1, H, 1)
    cols = (ox[:, None] + torch.arange(w, device=x.device))[:, None, None, :]  # (B, 1, 1, W)
    bi = torch.arange(b, device=x.device)[:, None, None, None]
    ci = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    return xp[bi, ci, rows, cols]  # (B, C, H, W)


def random_flip(x: torch.Tensor, p: float = 0.5, generator: torch.Generator | None = None) -> torch.Tensor:
    """Mirror each image of ``(B, C, H, W)`` left-right with probability ``p``."""
    flip = (torch.rand(x.shape[0], generator=generator) < p).to(x.device)
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def augment_batch(
    x: torch.Tensor,
    padding: int = 2,
    flip: bool = True,
    randaugment: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """uint8 ``(B, 28, 28)`` -> augmented, normalised float ``(B, 1, 28, 28)``.

    Crop and flip act on the whole batch at once. ``randaugment`` adds torchvision's RandAugment
    (Cubuk et al., 2020), applied image by image (much slower; for longer GPU runs).
    """
    x = x.unsqueeze(1) if x.ndim == 3 else x  # (B, 1, H, W) uint8
    if randaugment:
        from torchvision.transforms import v2

        ra = v2.RandAugment(num_ops=2, magnitude=9)
        x = torch.stack([ra(img) for img in x.cpu()]).to(x.device)
    x = random_crop(x, padding, generator)
    if flip:
        x = random_flip(x, 0.5, generator)
    return normalise(x)
