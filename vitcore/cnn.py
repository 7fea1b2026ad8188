"""A small ResNet (He et al., 2016) for small images, with a width chosen to match a parameter budget.

The CNN is the ViT's sparring partner: same data, same parameter count, same training loop.
Its convolutions carry two assumptions a ViT has to learn from data: locality (a 3x3 kernel sees
neighbours only) and translation equivariance (the same kernel slides everywhere).
Names follow torchvision/timm ResNets: ``conv1, bn1, layer1.0.conv1, ..., fc``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["BasicBlock", "ResNet", "resnet_for_params"]


class BasicBlock(nn.Module):
    """``conv3x3 -> BN -> ReLU -> conv3x3 -> BN``, plus the input (1x1 conv when the shape changes)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.act = nn.ReLU(inplace=True)
        self.downsample = (
            nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch))
            if stride != 1 or in_ch != out_ch
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.act(out + self.downsample(x))


class ResNet(nn.Module):
    """Stem conv -> stages of :class:`BasicBlock` (widths ``w, 2w, 4w``, stride 2 between) -> pool -> fc."""

    def __init__(
        self,
        width: int = 32,
        depths: Sequence[int] = (1, 1, 1),
        in_chans: int = 1,
        num_classes: int = 10,
        stem_stride: int = 1,
    ) -> None:
        super().__init__()
        if width < 1 or not depths or min(depths) < 1:
            raise ValueError(f"need width >= 1 and at least one block per stage, got {width}, {tuple(depths)}")
        self.width, self.depths = width, tuple(depths)
        # Small images: a 3x3 stem without max-pool; stride 2 quarters the compute of every later layer.
        self.conv1 = nn.Conv2d(in_chans, width, 3, stem_stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.act = nn.ReLU(inplace=True)
        ch = width
        for i, n in enumerate(depths):
            out = width * 2**i
            blocks = [BasicBlock(ch, out, stride=1 if i == 0 else 2)] + [BasicBlock(out, out) for _ in range(n - 1)]
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
            ch = out
        self.num_features = ch
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(ch, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``(B, C, H, W)`` -> feature map ``(B, 4w, H/(4s), W/(4s))`` (three stages, stem stride s)."""
        x = self.act(self.bn1(self.conv1(x)))
        for i in range(len(self.depths)):
            x = getattr(self, f"layer{i + 1}")(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``(B, C, H, W)`` -> logits ``(B, num_classes)``."""
        return self.fc(self.pool(self.forward_features(x)).flatten(1))


def resnet_for_params(
    target: int, depths: Sequence[int] = (1, 1, 1), in_chans: int = 1, num_classes: int = 10, stem_stride: int = 1
) -> ResNet:
    """The :class:`ResNet` whose parameter count is closest to ``target``."""
    if target < 1:
        raise ValueError(f"target parameter count must be positive, got {target}")

    def n_params(w: int) -> int:
        return sum(p.numel() for p in ResNet(w, depths, in_chans, num_classes).parameters())

    lo, hi = 1, 2
    while n_params(hi) < target:
        lo, hi = hi, hi * 2
    while hi - lo > 1:  # parameters grow with width: bisect
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if n_params(mid) < target else (lo, mid)
    best = min((lo, hi), key=lambda w: abs(n_params(w) - target))
    return ResNet(best, depths, in_chans, num_classes, stem_stride)
