"""DINO: self-distillation with no labels (Caron et al., 2021).

A student network learns to match the output distribution of a teacher on different views of
the same image. The teacher is an exponential moving average (EMA) of the student; its outputs
are centred (a running mean is subtracted) and sharpened (a low temperature), which together
keep the pair from collapsing to a constant.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

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

    def __init__(
        self,
        global_size: int,
        local_size: int,
        n_local: int = 4,
        global_scale: tuple[float, float] = (0.4, 1.0),
        local_scale: tuple[float, float] = (0.1, 0.4),
        flip: bool = True,
        batched: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
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
                view(self.local_size, self.local_scale) for _ in range(self.n_local)
            ]

        def per_image(t, x):  # noqa: ANN001, ANN202
            return torch.stack([t(img) for img in x])

        views = [per_image(self.global_t, images) for _ in range(2)]
        return views + [per_image(self.local_t, images) for _ in range(self.n_local)]


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
    colour jitter: every view of every image gets its own contrast factor in ``[1 - jitter, 1 + jitter]``
    and brightness shift in ``[-jitter, jitter]`` (in normalised units). Returns one record per step (loss and the
    teacher's entropies); ``on_epoch(epoch, teacher)`` may add evaluation records after each pass
    over the data (they are stored under ``"epoch"`` in the step record that ends the epoch).
    With ``state_path`` the run saves its state after every epoch and resumes from it.
    """
    from tqdm.auto import tqdm

    from .train import ScheduledAdamW

    if len(images) < batch_size:
        raise ValueError(f"need at least one batch of {batch_size} images, got {len(images)}")
    size = images.shape[-1]
    device = next(student.parameters()).device
    crit = DINOLoss(student.head.last_layer.out_features, student_temp, teacher_temp, center_momentum).to(device)
    crop_gen = torch.Generator().manual_seed(seed)
    crops = MultiCrop(size, local_size or size // 2, n_local, batched=True, generator=crop_gen)
    opt = ScheduledAdamW(
        student, steps, lr, weight_decay, warmup_steps=int(warmup * steps), min_lr=min_lr, clip_grad=clip_grad
    )
    order_gen = torch.Generator().manual_seed(seed + 1)
    per_epoch = len(images) // batch_size
    log: list[dict] = []
    start = 0
    if state_path is not None and Path(state_path).is_file():
        st = torch.load(state_path, map_location=device, weights_only=True)
        student.load_state_dict(st["student"])
        teacher.load_state_dict(st["teacher"])
        opt.load_state_dict(st["opt"])
        crit.center.copy_(st["center"])
        crop_gen.set_state(st["crop_rng"])
        order_gen.set_state(st["order_rng"])
        log, start = st["log"], st["step"]
    for p in teacher.parameters():
        p.requires_grad_(False)
    order = torch.randperm(len(images), generator=order_gen)
    if start % per_epoch:
        raise ValueError(f"state {state_path} was saved mid-epoch (step {start})")
    bar = tqdm(range(start, steps), desc=desc, disable=not progress, initial=start, total=steps)
    for step in bar:
        i = step % per_epoch
        if i == 0 and step > start:
            order = torch.randperm(len(images), generator=order_gen)
        xb = images[order[i * batch_size : (i + 1) * batch_size]].to(device)  # (B, C, H, W)
        views = crops(xb)
        if jitter > 0:
            views = [_jitter(v, jitter, crop_gen) for v in views]
        student.train()
        with torch.no_grad():
            t_feats = teacher.backbone(torch.cat(views[:2]))  # (2B, D)
            t_out = list(teacher.head(t_feats).chunk(2))
            probs = crit.teacher_probs(torch.cat(t_out))  # with the centre before this step's update
        loss = crit(student(views), t_out)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"DINO loss is {loss.item()} at step {step}")
        opt.step(loss)
        ema_update(teacher, student, cosine_schedule(m0, 1.0, step, steps))
        entropy = -(probs * probs.clamp_min(1e-12).log()).sum(-1).mean()
        mean_p = probs.mean(0)
        record = {
            "loss": loss.item(),
            "entropy": entropy.item(),
            "marginal entropy": -(mean_p * mean_p.clamp_min(1e-12).log()).sum().item(),
        }
        log.append(record)
        bar.set_postfix(loss=f"{record['loss']:.3f}")
        if i == per_epoch - 1 or step == steps - 1:
            if on_epoch is not None:
                record["epoch"] = on_epoch(len([r for r in log if "epoch" in r]), teacher)
                bar.write(f"{desc} step {step + 1}: {record['epoch']}")
            if state_path is not None and step < steps - 1 and i == per_epoch - 1:
                Path(state_path).parent.mkdir(parents=True, exist_ok=True)
                tmp = Path(f"{state_path}.tmp")
                torch.save(
                    {
                        "student": student.state_dict(),
                        "teacher": teacher.state_dict(),
                        "opt": opt.state_dict(),
                        "center": crit.center,
                        "step": step + 1,
                        "log": log,
                        "crop_rng": crop_gen.get_state(),
                        "order_rng": order_gen.get_state(),
                    },
                    tmp,
                )
                tmp.replace(state_path)
    return log
