"""Dense prediction from patch tokens (SETR, Zheng et al., 2021; DPT, Ranftl et al., 2021).

Every patch token is a feature vector for its ``P x P`` square. Reshaped to the patch grid,
the tokens form a feature map ``(D, H/P, W/P)``; a light decoder turns it into per-pixel logits.
Features from several blocks (intermediate + last) can be concatenated first.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

__all__ = ["tokens_to_map", "DenseHead", "mean_iou"]


def tokens_to_map(tokens: torch.Tensor, grid: tuple[int, int], num_prefix_tokens: int = 1) -> torch.Tensor:
    """``(B, prefix + N, D) -> (B, D, gh, gw)``: drop prefix tokens, lay patches on their grid."""
    patches = tokens[:, num_prefix_tokens:]
    if patches.shape[1] != grid[0] * grid[1]:
        raise ValueError(f"{patches.shape[1]} patch tokens do not fill a {grid[0]}x{grid[1]} grid")
    return rearrange(patches, "b (gh gw) d -> b d gh gw", gh=grid[0], gw=grid[1])


class DenseHead(nn.Module):
    """Feature maps of one or more blocks -> per-pixel class logits at the image size.

    ``1x1 conv`` fuses the concatenated maps, a ``3x3 conv`` mixes neighbouring patches, a
    ``1x1 conv`` classifies, and bilinear upsampling returns to pixel resolution.
    """

    def __init__(self, in_dims: int | list[int], num_classes: int, hidden: int = 64) -> None:
        super().__init__()
        total = in_dims if isinstance(in_dims, int) else sum(in_dims)
        self.fuse = nn.Sequential(nn.Conv2d(total, hidden, 1), nn.BatchNorm2d(hidden), nn.GELU())
        self.refine = nn.Sequential(nn.Conv2d(hidden, hidden, 3, padding=1), nn.BatchNorm2d(hidden), nn.GELU())
        self.classifier = nn.Conv2d(hidden, num_classes, 1)

    def forward(self, maps: torch.Tensor | list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        """``maps``: ``(B, D_i, gh, gw)`` (or a list of them) -> logits ``(B, K, H, W)``."""
        x = torch.cat(list(maps), dim=1) if isinstance(maps, (list, tuple)) else maps
        x = self.classifier(self.refine(self.fuse(x)))  # (B, K, gh, gw)
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def mean_iou(pred: torch.Tensor, target: torch.Tensor, num_classes: int, ignore_absent: bool = True) -> float:
    """Mean over classes of ``|pred = k and target = k| / |pred = k or target = k|``.

    ``pred`` and ``target`` are integer label maps of the same shape. Classes absent from both
    are skipped (``ignore_absent``) rather than counted as a perfect 1.
    """
    if pred.shape != target.shape:
        raise ValueError(f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
    ious = []
    for k in range(num_classes):
        p, t = pred == k, target == k
        union = (p | t).sum().item()
        if union == 0:
            if not ignore_absent:
                ious.append(1.0)
            continue
        ious.append((p & t).sum().item() / union)
    return sum(ious) / max(len(ious), 1)
