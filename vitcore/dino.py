"""DINO: self-distillation with no labels (Caron et al., 2021).

A student network learns to match the output distribution of a teacher on different views of
the same image. The teacher is an exponential moving average (EMA) of the student; its outputs
are centred (a running mean is subtracted) and sharpened (a low temperature), which together
keep the pair from collapsing to a constant. The multi-crop views live in ``vitcore.multicrop``
(importable from here too); :func:`pretrain` runs the whole method.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from .multicrop import MultiCrop, random_resized_crop

__all__ = [
    "DINOHead",
    "DINOLoss",
    "ema_update",
    "cosine_schedule",
    "random_resized_crop",
    "MultiCrop",
    "DINOModel",
    "embed",
    "knn_hits",
    "pretrain",
]


class DINOHead(nn.Module):
    """MLP -> bottleneck -> L2-normalise -> weight-normalised linear layer to ``out_dim`` logits."""

    def __init__(
        self, in_dim: int, out_dim: int = 1024, hidden_dim: int = 256, bottleneck_dim: int = 64, nlayers: int = 3
    ) -> None:
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

    center: torch.Tensor  # buffer (1, out_dim)

    def __init__(
        self,
        out_dim: int,
        student_temp: float = 0.1,
        teacher_temp: float = 0.04,
        center_momentum: float = 0.9,
        n_global: int = 2,
    ) -> None:
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
        total: torch.Tensor | float = 0.0
        pairs = 0
        for ti, q in enumerate(targets):
            for si, logp in enumerate(logps):
                if si == ti:
                    continue  # same view: nothing to learn
                total = total + (-q * logp).sum(-1).mean()
                pairs += 1
        self.update_center(torch.cat(list(teacher_out)))
        return cast(torch.Tensor, total / pairs)  # pairs > 0, so total is a Tensor

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


# ----------------------------------------------------------------------------- the whole method
class DINOModel(nn.Module):
    """A backbone (pooled ``(B, D)`` features) and a :class:`DINOHead`, run on a list of views.

    Views of equal size are concatenated into one batch, so two global and ``n_local`` local crops
    cost two forward passes, not ``2 + n_local``.
    """

    def __init__(
        self, backbone: nn.Module, embed_dim: int, out_dim: int = 1024, hidden_dim: int = 256, bottleneck_dim: int = 64
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = DINOHead(embed_dim, out_dim=out_dim, hidden_dim=hidden_dim, bottleneck_dim=bottleneck_dim)

    def forward(self, views: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """One ``(B, out_dim)`` output per view, in the order of ``views``."""
        out, i = [], 0
        while i < len(views):
            j = i
            while j < len(views) and views[j].shape == views[i].shape:
                j += 1
            logits = self.head(self.backbone(torch.cat(list(views[i:j]))))  # (B * (j - i), K)
            out += list(logits.chunk(j - i))
            i = j
        return out


@torch.no_grad()
def embed(backbone: nn.Module, images: torch.Tensor, batch_size: int = 2000) -> torch.Tensor:
    """Unit-length pooled features ``(N, D)`` of already normalised images ``(N, C, H, W)`` (on the CPU)."""
    backbone.eval()
    dev = next(backbone.parameters()).device
    out = [backbone(images[i : i + batch_size].to(dev)).float().cpu() for i in range(0, len(images), batch_size)]
    return F.normalize(torch.cat(out), dim=-1)


def knn_hits(
    bank: torch.Tensor,
    bank_y: torch.Tensor,
    query: torch.Tensor,
    query_y: torch.Tensor,
    k: int = 20,
    temperature: float = 0.07,
    num_classes: int = 10,
) -> torch.Tensor:
    """``(Q,)`` bool: is each query right by the weighted vote of its ``k`` nearest bank features?

    DINO's k-NN evaluation (after Wu et al., 2018): cosine similarity of unit-length features, each
    of the ``k`` neighbours votes for its label with weight ``exp(similarity / temperature)``.
    """
    if bank.shape[1] != query.shape[1]:
        raise ValueError(f"bank features have {bank.shape[1]} dims, queries {query.shape[1]}")
    sim, idx = (query @ bank.T).topk(k, dim=1)  # (Q, k)
    votes = torch.zeros(len(query), num_classes).scatter_add_(1, bank_y[idx], (sim / temperature).exp())
    return votes.argmax(1) == query_y


def _jitter(x: torch.Tensor, amount: float, generator: torch.Generator) -> torch.Tensor:
    """Per-image random contrast (about the image mean) and brightness: ``(B, C, H, W)`` in and out."""
    b = len(x)
    contrast = 1 + amount * (2 * torch.rand(b, 1, 1, 1, generator=generator) - 1)
    shift = amount * (2 * torch.rand(b, 1, 1, 1, generator=generator) - 1)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * contrast.to(x) + mean + shift.to(x)


def _colour_change(x: torch.Tensor, generator: torch.Generator, grey_p: float = 0.2) -> torch.Tensor:
    """Per-image random order of the colour channels, and grey (channel mean) with probability ``grey_p``.

    A cheap stand-in for DINO's hue and saturation jitter and its ``RandomGrayscale(p=0.2)``, for
    RGB views ``(B, 3, H, W)``: a red item may come out green or blue, or grey, so the student
    cannot tell two views of the same image apart by their colour.
    """
    b, c = x.shape[:2]
    order = torch.rand(b, c, generator=generator).argsort(dim=1).to(x.device)  # (B, C) a permutation
    x = torch.gather(x, 1, order[:, :, None, None].expand_as(x))
    grey = (torch.rand(b, 1, 1, 1, generator=generator) < grey_p).to(x.device)
    return torch.where(grey, x.mean(1, keepdim=True).expand_as(x), x)


def pretrain(
    student: DINOModel,
    teacher: DINOModel,
    images: torch.Tensor,
    steps: int,
    batch_size: int = 64,
    lr: float = 1e-3,
    min_lr: float = 1e-5,
    warmup: float = 0.1,
    weight_decay: float = 0.04,
    clip_grad: float = 3.0,
    m0: float = 0.996,
    n_local: int = 4,
    local_size: int | None = None,
    student_temp: float = 0.1,
    teacher_temp: float = 0.04,
    center_momentum: float = 0.9,
    jitter: float = 0.0,
    colour: bool = False,
    global_scale: tuple[float, float] = (0.4, 1.0),
    local_scale: tuple[float, float] = (0.1, 0.4),
    seed: int = 0,
    on_epoch: Callable[[int, DINOModel], dict] | None = None,
    state_path: str | Path | None = None,
    progress: bool = True,
    desc: str = "DINO",
) -> list[dict]:
    """Train ``student`` with DINO against the EMA ``teacher`` on unlabelled ``images`` (normalised).

    One step: 2 global + ``n_local`` local crops of a batch; the teacher (no gradients) sees the
    global crops, the student all views; loss over pairs of different views; AdamW (warmup-cosine
    learning rate, no decay on biases/norms/tokens, gradient clipping); then the EMA update of the
    teacher with momentum rising from ``m0`` to 1. ``jitter`` > 0 adds the grey-scale part of DINO's
    colour jitter: every view of every image gets its own contrast factor in
    ``[1 - jitter, 1 + jitter]`` and brightness shift in ``[-jitter, jitter]`` (in normalised
    units); ``colour`` adds the colour part for RGB images (channels in a random order, grey with
    p = 0.2). ``global_scale`` and ``local_scale`` are the shares of the image area the crops cover
    (the paper's defaults). Returns one record per step (loss and the teacher's entropies);
    ``on_epoch(epoch, teacher)`` may add evaluation records after each pass over the data (they are
    stored under ``"epoch"`` in the step record that ends the epoch).
    With ``state_path`` the run saves its state after every epoch and resumes from it.
    """
    from .train import ResumableRun, ScheduledAdamW

    judge = None if on_epoch is None else lambda epoch: on_epoch(epoch, teacher)
    run = ResumableRun(steps, len(images), batch_size, state_path, judge, desc, progress)
    size = images.shape[-1]
    device = next(student.parameters()).device
    crit = DINOLoss(student.head.last_layer.out_features, student_temp, teacher_temp, center_momentum).to(device)
    crop_gen = torch.Generator().manual_seed(seed)
    crops = MultiCrop(
        size, local_size or size // 2, n_local, global_scale, local_scale, batched=True, generator=crop_gen
    )
    opt = ScheduledAdamW(
        student, steps, lr, weight_decay, warmup_steps=int(warmup * steps), min_lr=min_lr, clip_grad=clip_grad
    )
    order_gen = torch.Generator().manual_seed(seed + 1)
    for p in teacher.parameters():
        p.requires_grad_(False)
    run.resume(
        device, student=student, teacher=teacher, opt=opt, center=crit.center, crop_rng=crop_gen, order_rng=order_gen
    )
    for step, idx in run.batches(order_gen):
        xb = images[idx].to(device)  # (B, C, H, W)
        views = crops(xb)
        if jitter > 0:
            views = [_jitter(v, jitter, crop_gen) for v in views]
        if colour:
            views = [_colour_change(v, crop_gen) for v in views]
        student.train()
        with torch.no_grad():
            t_feats = teacher.backbone(torch.cat(views[:2]))  # (2B, D)
            t_out = list(teacher.head(t_feats).chunk(2))
            probs = crit.teacher_probs(torch.cat(t_out))  # with the centre before this step's update
        loss = crit(student(views), t_out)
        opt.step(loss)  # raises FloatingPointError on a NaN or inf loss
        ema_update(teacher, student, cosine_schedule(m0, 1.0, step, steps))
        entropy = -(probs * probs.clamp_min(1e-12).log()).sum(-1).mean()
        mean_p = probs.mean(0)
        record = {
            "loss": loss.item(),
            "entropy": entropy.item(),
            "marginal entropy": -(mean_p * mean_p.clamp_min(1e-12).log()).sum().item(),
        }
        run.log.append(record)
        run.bar.set_postfix(loss=f"{record['loss']:.3f}")
    return run.log
