"""DINO: self-distillation with no labels (Caron et al., 2021).

A student network learns to match the output distribution of a teacher on different views of
the same image. The teacher is an exponential moving average (EMA) of the student; its outputs
are centred (a running mean is subtracted) and sharpened (a low temperature), which together
keep the pair from collapsing to a constant.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["DINOHead", "DINOLoss", "ema_update", "cosine_schedule", "random_resized_crop", "MultiCrop"]


class DINOHead(nn.Module):
    """MLP -> bottleneck -> L2-normalise -> weight-normalised linear layer to ``out_dim`` logits."""

    def __init__(self, in_dim: int, out_dim: int = 1024, hidden_dim: int = 256, bottleneck_dim: int = 64,
                 nlayers: int = 3) -> None:
        super().__init__()
        dims = [in_dim] + [hidden_dim] * (nlayers - 1) + [bottleneck_dim]
        layers: list[nn.Module] = []
        for i in range(nlayers):
            layers.append(nn.Linear(dims[i], dims[i + 1]))
            if i < nlayers - 1:
                layers.append(nn.GELU())
        self.mlp = nn.Sequential(*layers)
        self.last_layer = nn.utils.parametrizations.weight_norm(nn.Linear(bottleneck_dim, out_dim, bias=False))
        # Fix the norm of each output direction to 1 (DINO's norm_last_layer=True).
        self.last_layer.parametrizations.weight.original0.data.fill_(1.0)
        self.last_layer.parametrizations.weight.original0.requires_grad = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.normalize(self.mlp(x), dim=-1)  # (B, bottleneck)
        return self.last_layer(x)  # (B, out_dim)


class DINOLoss(nn.Module):
    """Cross-entropy between teacher and student distributions over all pairs of *different* views.

    The first ``n_global`` student outputs come from the same global views the teacher saw; a
    student view is never compared with the teacher's output for that same view.
    """

    def __init__(self, out_dim: int, student_temp: float = 0.1, teacher_temp: float = 0.04,
                 center_momentum: float = 0.9, n_global: int = 2) -> None:
        super().__init__()
        self.student_temp = student_temp
        self.teacher_temp = teacher_temp
        self.center_momentum = center_momentum
        self.n_global = n_global
        self.register_buffer("center", torch.zeros(1, out_dim))

    def teacher_probs(self, teacher_out: torch.Tensor) -> torch.Tensor:
        """Centre, then sharpen with the low teacher temperature."""
        return F.softmax((teacher_out - self.center) / self.teacher_temp, dim=-1)

    def forward(self, student_out: Sequence[torch.Tensor], teacher_out: Sequence[torch.Tensor]) -> torch.Tensor:
        """``student_out``: one ``(B, K)`` tensor per view (globals first); ``teacher_out``: one per global view."""
        if len(teacher_out) != self.n_global:
            raise ValueError(f"expected {self.n_global} teacher views, got {len(teacher_out)}")
        targets = [self.teacher_probs(t).detach() for t in teacher_out]
        logps = [F.log_softmax(s / self.student_temp, dim=-1) for s in student_out]
        total, pairs = 0.0, 0
        for ti, q in enumerate(targets):
            for si, logp in enumerate(logps):
                if si == ti:
                    continue  # same view: nothing to learn
                total = total + (-q * logp).sum(-1).mean()
                pairs += 1
        self.update_center(torch.cat(list(teacher_out)))
        return total / pairs

    @torch.no_grad()
    def update_center(self, teacher_out: torch.Tensor) -> None:
        """``center <- m * center + (1 - m) * batch mean`` of the raw teacher outputs."""
        batch_center = teacher_out.mean(dim=0, keepdim=True)
        self.center.mul_(self.center_momentum).add_(batch_center, alpha=1 - self.center_momentum)


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, momentum: float) -> None:
    """``teacher <- m * teacher + (1 - m) * student``, parameter by parameter."""
    for pt, ps in zip(teacher.parameters(), student.parameters(), strict=True):
        pt.mul_(momentum).add_(ps.detach(), alpha=1 - momentum)


def cosine_schedule(start: float, end: float, step: int, total_steps: int) -> float:
    """Cosine ramp from ``start`` (step 0) to ``end`` (last step), e.g. EMA momentum 0.996 -> 1."""
    if total_steps <= 1:
        return end
    t = min(max(step, 0), total_steps - 1) / (total_steps - 1)
    return end + (start - end) * (1 + math.cos(math.pi * t)) / 2


def random_resized_crop(
    images: torch.Tensor,
    size: int,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    flip: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """A whole batch of random resized crops at once: ``(B, C, H, W) -> (B, C, size, size)``.

    Each image gets its own box covering a ``scale`` share of its area with aspect ratio (w / h)
    drawn log-uniformly from ``ratio``, and (with ``flip``) a coin-flip mirror. The box is cut and
    resized in one bilinear ``grid_sample``: no Python loop over images, unlike torchvision's
    per-image ``RandomResizedCrop`` (which also antialiases; this does not).
    """
    if images.ndim != 4:
        raise ValueError(f"expected images (B, C, H, W), got shape {tuple(images.shape)}")
    if not 0 < scale[0] <= scale[1] <= 1 or not 0 < ratio[0] <= ratio[1]:
        raise ValueError(f"need 0 < scale[0] <= scale[1] <= 1 and 0 < ratio[0] <= ratio[1], got {scale}, {ratio}")
    b, _, h, w = images.shape

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(b, generator=generator)

    area = uniform(*scale)  # share of the image area
    aspect = uniform(math.log(ratio[0]), math.log(ratio[1])).exp()
    fw = (area * aspect * h / w).sqrt().clamp(max=1.0)  # box width as a share of the image width
    fh = (area / aspect * w / h).sqrt().clamp(max=1.0)
    cx = (1 - fw) * (2 * torch.rand(b, generator=generator) - 1)  # box centre in [-1, 1] coordinates
    cy = (1 - fh) * (2 * torch.rand(b, generator=generator) - 1)
    sx = torch.where(torch.rand(b, generator=generator) < 0.5, -1.0, 1.0) if flip else torch.ones(b)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2] = fw * sx, cx  # output x in [-1, 1] -> input x in the box (mirrored if sx < 0)
    theta[:, 1, 1], theta[:, 1, 2] = fh, cy
    theta = theta.to(images.device, images.dtype)
    grid = F.affine_grid(theta, [b, images.shape[1], size, size], align_corners=False)  # (B, size, size, 2)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


class MultiCrop:
    """DINO's multi-crop views of a batch of images ``(B, C, H, W)``: 2 global + ``n_local`` local.

    Global crops cover 40-100% of the image and are resized to ``global_size``; local crops cover
    10-40% and are resized to ``local_size``. Both get random horizontal flips. With
    ``batched=True`` each view is made for the whole batch at once by :func:`random_resized_crop`
    (much faster for many small images, and seeded by ``generator``); the default uses
    torchvision's ``RandomResizedCrop`` image by image.
    """

    def __init__(self, global_size: int, local_size: int, n_local: int = 4,
                 global_scale: tuple[float, float] = (0.4, 1.0), local_scale: tuple[float, float] = (0.1, 0.4),
                 flip: bool = True, batched: bool = False, generator: torch.Generator | None = None) -> None:
        from torchvision.transforms import v2

        def crop(size: int, scale: tuple[float, float]) -> v2.Compose:
            ops = [v2.RandomResizedCrop(size, scale=scale, antialias=True)]
            return v2.Compose(ops + ([v2.RandomHorizontalFlip()] if flip else []))

        self.global_t = crop(global_size, global_scale)
        self.local_t = crop(local_size, local_scale)
        self.n_local = n_local
        self.global_size, self.local_size = global_size, local_size
        self.global_scale, self.local_scale = global_scale, local_scale
        self.flip, self.batched, self.generator = flip, batched, generator

    def __call__(self, images: torch.Tensor) -> list[torch.Tensor]:
        """One crop per image per view (each image draws its own crop)."""
        if self.batched:
            def view(size: int, scale: tuple[float, float]) -> torch.Tensor:
                return random_resized_crop(images, size, scale, flip=self.flip, generator=self.generator)

            return [view(self.global_size, self.global_scale) for _ in range(2)] + [
                view(self.local_size, self.local_scale) for _ in range(self.n_local)]

        def per_image(t, x):  # noqa: ANN001, ANN202
            return torch.stack([t(img) for img in x])

        views = [per_image(self.global_t, images) for _ in range(2)]
        return views + [per_image(self.local_t, images) for _ in range(self.n_local)]
