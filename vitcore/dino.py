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

__all__ = ["DINOHead", "DINOLoss", "ema_update", "cosine_schedule", "MultiCrop"]


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


class MultiCrop:
    """DINO's multi-crop views of a batch of images ``(B, C, H, W)``: 2 global + ``n_local`` local.

    Global crops cover 40-100% of the image and are resized to ``global_size``; local crops cover
    10-40% and are resized to ``local_size``. Both get random horizontal flips.
    """

    def __init__(self, global_size: int, local_size: int, n_local: int = 4,
                 global_scale: tuple[float, float] = (0.4, 1.0), local_scale: tuple[float, float] = (0.1, 0.4),
                 flip: bool = True) -> None:
        from torchvision.transforms import v2

        def crop(size: int, scale: tuple[float, float]) -> v2.Compose:
            ops = [v2.RandomResizedCrop(size, scale=scale, antialias=True)]
            return v2.Compose(ops + ([v2.RandomHorizontalFlip()] if flip else []))

        self.global_t = crop(global_size, global_scale)
        self.local_t = crop(local_size, local_scale)
        self.n_local = n_local

    def __call__(self, images: torch.Tensor) -> list[torch.Tensor]:
        """One crop per image per view (each image draws its own crop)."""
        def per_image(t, x):  # noqa: ANN001, ANN202
            return torch.stack([t(img) for img in x])

        views = [per_image(self.global_t, images) for _ in range(2)]
        return views + [per_image(self.local_t, images) for _ in range(self.n_local)]
