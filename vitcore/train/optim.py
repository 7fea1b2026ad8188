"""The book's one optimiser and its driver (chapter 5): the warmup-cosine schedule, AdamW's
parameter groups, :class:`ScheduledAdamW` (the step every trainer takes), :class:`IndexBatches`
and :func:`optimise` (any loss over any batches)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from torch import nn

from ..device import autocast


def warmup_cosine(step: int, total_steps: int, warmup_steps: int, base_lr: float, min_lr: float = 0.0) -> float:
    """Learning rate at optimizer step ``step`` (0-based).

    Linear warmup ``base_lr * (step + 1) / warmup_steps`` for the first ``warmup_steps`` steps,
    then a half cosine from ``base_lr`` down to ``min_lr``, reached at ``step == total_steps``
    (Loshchilov & Hutter, 2017; Goyal et al., 2017).
    """
    if total_steps <= 0 or not 0 <= warmup_steps <= total_steps:
        raise ValueError(
            f"need 0 <= warmup_steps <= total_steps and total_steps > 0, got {warmup_steps}, {total_steps}"
        )
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    progress = min((step - warmup_steps) / max(total_steps - warmup_steps, 1), 1.0)
    return min_lr + 0.5 * (base_lr - min_lr) * (1.0 + math.cos(math.pi * progress))


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups: decay matrices and conv kernels; no decay for biases, norms, tokens, positions."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if p.ndim <= 1 or name.endswith("token") or name.endswith("pos_embed"):
            no_decay.append(p)
        else:
            decay.append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


class ScheduledAdamW:
    """AdamW whose learning rate follows :func:`warmup_cosine` step by step: the one optimiser of the book.

    >>> opt = ScheduledAdamW(model, total_steps=1000, lr=1e-3)
    >>> for x, y in batches:
    ...     opt.step(F.cross_entropy(model(x), y))   # zero_grad, backward, clip, AdamW step

    ``model``'s trainable parameters are split by :func:`param_groups`: weight decay on matrices
    and kernels, none on biases, norms, tokens and positions (``decay_all=True`` decays every
    parameter alike, as plain ``AdamW(model.parameters(), weight_decay=...)`` does; the chapter 9,
    12 and 13 long runs shipped in ``vitcore/checkpoints`` were trained that way, and their recipes
    say so). Warmup takes ``warmup_steps`` steps, or ``round(warmup * total_steps)`` if not given.
    ``clip_grad`` caps the global gradient norm (``None``: no clipping). ``scaler`` (a
    ``torch.amp.GradScaler``) is for float16 training: the loss is scaled, the gradients unscaled
    before clipping, and a step with an inf/NaN gradient is skipped (chapter 14).
    """

    def __init__(
        self,
        model: nn.Module,
        total_steps: int,
        lr: float,
        weight_decay: float = 0.05,
        warmup: float = 0.1,
        warmup_steps: int | None = None,
        min_lr: float = 0.0,
        betas: tuple[float, float] = (0.9, 0.999),
        clip_grad: float | None = 1.0,
        decay_all: bool = False,
        scaler: torch.amp.GradScaler | None = None,
    ) -> None:
        if warmup_steps is None:
            if not 0.0 <= warmup <= 1.0:
                raise ValueError(f"warmup is a fraction of the steps in [0, 1], got {warmup}")
            warmup_steps = round(warmup * total_steps)
        warmup_cosine(0, total_steps, warmup_steps, lr, min_lr)  # raises on a bad schedule
        # the model's order: clipping sums the squared norms in this order, as
        # clip_grad_norm_(model.parameters()) does
        self.params = [p for p in model.parameters() if p.requires_grad]
        if not self.params:
            raise ValueError("the model has no trainable parameters (all have requires_grad=False)")
        if decay_all:
            groups = [{"params": self.params, "weight_decay": weight_decay}]
        else:
            groups = param_groups(model, weight_decay)
        self.adamw = torch.optim.AdamW(groups, lr=lr, betas=betas)
        self.total_steps, self.warmup_steps = total_steps, warmup_steps
        self.base_lr, self.min_lr, self.clip_grad, self.scaler = lr, min_lr, clip_grad, scaler
        self.steps_done = 0

    @property
    def lr(self) -> float:
        """The learning rate of the next step."""
        return warmup_cosine(
            min(self.steps_done, self.total_steps), self.total_steps, self.warmup_steps, self.base_lr, self.min_lr
        )

    def step(self, loss: torch.Tensor, weight: float = 1.0) -> float:
        """One optimisation step on ``loss * weight``; returns the learning rate it used.

        A NaN or infinite ``loss`` raises ``FloatingPointError`` naming the step and the value,
        before anything is updated: no trainer of the book goes on through a diverged loss.
        """
        if self.steps_done >= self.total_steps:
            raise RuntimeError(f"all {self.total_steps} steps of the schedule are taken")
        if not bool(torch.isfinite(loss.detach()).all()):
            value = loss.item() if loss.numel() == 1 else loss.detach().flatten().tolist()
            raise FloatingPointError(
                f"the loss is {value} at step {self.steps_done} (0-based) of {self.total_steps}; nothing was "
                "updated. The run diverged (try a lower learning rate or a longer warmup) or the batch holds "
                "NaN or inf values."
            )
        lr = self.lr
        for group in self.adamw.param_groups:
            group["lr"] = lr
        self.adamw.zero_grad(set_to_none=True)
        loss = loss if weight == 1.0 else loss * weight
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.adamw)  # true gradients, for clipping (and for the reader)
        else:
            loss.backward()
        if self.clip_grad is not None:
            nn.utils.clip_grad_norm_(self.params, self.clip_grad)
        if self.scaler is not None:
            self.scaler.step(self.adamw)  # skipped when a gradient is inf/NaN
            self.scaler.update()
        else:
            self.adamw.step()
        self.steps_done += 1
        return lr

    def settings(self) -> dict[str, Any]:
        """The schedule and AdamW's settings, as plain values: what a resumed run must share."""
        groups = self.adamw.param_groups
        return {
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "lr": self.base_lr,
            "min_lr": self.min_lr,
            "clip_grad": self.clip_grad,
            "betas": [float(b) for b in self.adamw.defaults["betas"]],
            "weight_decay": [g["weight_decay"] for g in groups],
            "params": [sum(p.numel() for p in g["params"]) for g in groups],
        }

    def state_dict(self) -> dict[str, Any]:
        """AdamW's state, the steps taken and the :meth:`settings`, for a resumable run."""
        return {"adamw": self.adamw.state_dict(), "steps_done": self.steps_done, "settings": self.settings()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; a state saved with other :meth:`settings` is a ``ValueError``
        naming each one that differs (AdamW would silently take the saved weight decay and betas)."""
        saved, now = state.get("settings"), self.settings()
        if saved is not None and saved != now:
            keys = sorted(set(saved) | set(now))
            diff = [f"{k}: {saved.get(k)!r} saved, {now.get(k)!r} now" for k in keys if saved.get(k) != now.get(k)]
            raise ValueError("the optimiser's settings differ from the saved run's (" + "; ".join(diff) + ")")
        self.adamw.load_state_dict(state["adamw"])
        self.steps_done = int(state["steps_done"])


class IndexBatches:
    """Shuffled batches of indices into ``n`` examples: a new permutation each pass, drawn from
    one seeded generator (so pass after pass is reproducible). ``drop_last`` leaves out the
    partial batch of a pass; then ``n`` must hold at least one batch.

    >>> for idx in IndexBatches(len(images), 64, seed=0): loss = loss_of(images[idx], labels[idx])
    """

    def __init__(self, n: int, batch_size: int, seed: int = 0, drop_last: bool = True) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if drop_last and n < batch_size:
            raise ValueError(f"{n} examples do not fill one batch of {batch_size}; use batch_size <= {n}")
        self.n, self.batch_size, self.drop_last = n, batch_size, drop_last
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return self.n // self.batch_size if self.drop_last else -(-self.n // self.batch_size)

    def __iter__(self) -> Iterator[torch.Tensor]:
        perm = torch.randperm(self.n, generator=self.generator)
        for j in range(len(self)):
            yield perm[j * self.batch_size : (j + 1) * self.batch_size]


def _repeat(batches: Iterable[Any]) -> Iterator[Any]:
    """``batches`` pass after pass (an iterable is iterated anew each pass; an iterator is used up once)."""
    while True:
        empty = True
        for b in batches:
            empty = False
            yield b
        if empty:
            raise ValueError("the batches are empty (too few examples for one batch?)")


def optimise(
    model: nn.Module,
    loss_of: Callable[[Any], torch.Tensor],
    batches: Iterable[Any],
    steps: int,
    lr: float,
    *,
    on_step: Callable[[int, float], None] | None = None,
    progress: bool = True,
    desc: str = "train",
    leave: bool = True,
    **schedule: Any,
) -> list[float]:
    """Train ``model`` for ``steps`` steps of :class:`ScheduledAdamW`; return the loss of every step.

    ``loss_of(batch)`` gives the loss of one batch (any object: indices, a tuple of tensors); it
    runs under :func:`~vitcore.device.autocast` (bf16 on CUDA). ``batches`` is iterated pass after
    pass until ``steps`` steps are taken (a ``DataLoader`` reshuffles each pass).
    ``on_step(step, loss)`` is called after each step (0-based), e.g. to record a statistic.
    ``progress``: a tqdm bar named ``desc`` (``leave=False``: it disappears when done). The other
    keywords (``schedule``: ``weight_decay``, ``warmup``, ``warmup_steps``, ``min_lr``, ``betas``,
    ``clip_grad``, ``decay_all``) go to :class:`ScheduledAdamW`, with its defaults.
    """
    from tqdm.auto import tqdm

    opt = ScheduledAdamW(model, steps, lr, **schedule)
    device = opt.params[0].device
    was_training = model.training
    model.train()
    losses: list[float] = []
    with tqdm(total=steps, desc=desc, disable=not progress, leave=leave) as bar:
        for step, batch in zip(range(steps), _repeat(batches)):
            with autocast(device):
                loss = loss_of(batch)
            opt.step(loss)  # raises FloatingPointError on a NaN or inf loss
            losses.append(loss.item())
            if on_step is not None:
                on_step(step, losses[-1])
            bar.update()
            bar.set_postfix(loss=f"{losses[-1]:.3f}", refresh=False)
    model.train(was_training)
    return losses
