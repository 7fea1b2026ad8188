"""A small, readable training loop: AdamW, warmup + cosine, label smoothing, clipping, bf16 on GPU.

>>> history = fit(model, train_loader, epochs=2, lr=2e-3, eval_loader=test_loader)
>>> evaluate(model, test_loader)["acc"]

Everything a notebook plots (loss, accuracy and learning rate per step, per-epoch summaries)
lands in a :class:`History`.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .device import autocast, get_device

__all__ = ["warmup_cosine", "param_groups", "History", "fit", "evaluate", "predict", "LossFn"]

# loss_fn(model, images, labels) -> (loss, logits used for the accuracy)
LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def warmup_cosine(step: int, total_steps: int, warmup_steps: int, base_lr: float, min_lr: float = 0.0) -> float:
    """Learning rate at optimizer step ``step`` (0-based).

    Linear warmup ``base_lr * (step + 1) / warmup_steps`` for the first ``warmup_steps`` steps,
    then a half cosine from ``base_lr`` down to ``min_lr``, reached at ``step == total_steps``
    (Loshchilov & Hutter, 2017; Goyal et al., 2017).
    """
    if total_steps <= 0 or not 0 <= warmup_steps <= total_steps:
        raise ValueError(f"need 0 <= warmup_steps <= total_steps and total_steps > 0, got {warmup_steps}, {total_steps}")
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


@dataclass
class History:
    """What happened during :func:`fit`: per step and per epoch."""

    step_loss: list[float] = field(default_factory=list)
    step_acc: list[float] = field(default_factory=list)  # accuracy on the (augmented) training batch
    step_lr: list[float] = field(default_factory=list)
    epoch_loss: list[float] = field(default_factory=list)  # mean training loss of each epoch
    epoch_acc: list[float] = field(default_factory=list)
    eval_loss: list[float] = field(default_factory=list)  # after each epoch, if an eval loader was given
    eval_acc: list[float] = field(default_factory=list)
    seconds: float = 0.0  # wall time of training (without evaluation)
    images_seen: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> History:
        return cls(**d)

    @property
    def images_per_second(self) -> float:
        return self.images_seen / self.seconds if self.seconds else float("nan")


def _classify(model: nn.Module, x: torch.Tensor, y: torch.Tensor, label_smoothing: float) -> tuple[torch.Tensor, torch.Tensor]:
    logits = model(x)  # (B, classes)
    return F.cross_entropy(logits, y, label_smoothing=label_smoothing), logits


def fit(
    model: nn.Module,
    train_loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    epochs: int = 1,
    lr: float = 1e-3,
    weight_decay: float = 0.05,
    warmup: float = 0.1,
    min_lr: float = 1e-5,
    label_smoothing: float = 0.1,
    clip_grad: float | None = 1.0,
    eval_loader: Iterable[tuple[torch.Tensor, torch.Tensor]] | None = None,
    loss_fn: LossFn | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
    desc: str = "train",
    state_path: str | Path | None = None,
) -> History:
    """Train ``model`` in place for ``epochs`` passes over ``train_loader``; return a :class:`History`.

    ``warmup`` is the fraction of all steps spent warming up (0 = none). ``loss_fn`` replaces
    the default label-smoothed cross-entropy, e.g. for distillation (see :mod:`vitcore.deit`).

    ``state_path`` makes a long run resumable: after every epoch the model, the optimizer, the
    history and the random states (torch's and the loader's ``generator``) are written there
    atomically; a later call with the same arguments continues after the last finished epoch.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    if not 0.0 <= warmup <= 1.0:
        raise ValueError(f"warmup is a fraction of the steps in [0, 1], got {warmup}")
    device = torch.device(device) if device is not None else get_device()
    model.to(device)
    steps_per_epoch = len(train_loader)  # type: ignore[arg-type]
    if steps_per_epoch == 0:
        raise ValueError("the training loader yields no batches (too few images for one batch?)")
    total = epochs * steps_per_epoch
    warmup_steps = round(warmup * total)
    opt = torch.optim.AdamW(param_groups(model, weight_decay), lr=lr, betas=(0.9, 0.999))
    loss_fn = loss_fn or (lambda m, x, y: _classify(m, x, y, label_smoothing))
    hist = History()
    start_epoch = 0
    if state_path is not None and Path(state_path).is_file():
        start_epoch, hist = _load_state(Path(state_path), model, opt, train_loader, total)

    from tqdm.auto import tqdm

    bar = tqdm(total=total, initial=start_epoch * steps_per_epoch, desc=desc, disable=not progress, leave=True)
    step = start_epoch * steps_per_epoch
    for epoch in range(start_epoch, epochs):
        model.train()
        t0 = time.perf_counter()
        loss_sum = correct = seen = 0.0
        for x, y in train_loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            for group in opt.param_groups:  # set this step's learning rate
                group["lr"] = warmup_cosine(step, total, warmup_steps, lr, min_lr)
            with autocast(device):
                loss, logits = loss_fn(model, x, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if clip_grad is not None:
                nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
            opt.step()
            # Bookkeeping (one sync per step: fine for a teaching loop).
            batch_loss = loss.item()
            batch_correct = (logits.argmax(-1) == y).sum().item()
            hist.step_loss.append(batch_loss)
            hist.step_acc.append(batch_correct / len(y))
            hist.step_lr.append(opt.param_groups[0]["lr"])
            loss_sum += batch_loss * len(y)
            correct += batch_correct
            seen += len(y)
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{batch_loss:.3f}", lr=f"{hist.step_lr[-1]:.2e}", refresh=False)
        hist.seconds += time.perf_counter() - t0
        hist.images_seen += int(seen)
        hist.epoch_loss.append(loss_sum / seen)
        hist.epoch_acc.append(correct / seen)
        if eval_loader is not None:
            ev = evaluate(model, eval_loader, device)
            hist.eval_loss.append(ev["loss"])
            hist.eval_acc.append(ev["acc"])
            bar.set_postfix(loss=f"{hist.epoch_loss[-1]:.3f}", test_acc=f"{ev['acc']:.3f}")
        if state_path is not None:
            _save_state(Path(state_path), model, opt, train_loader, hist, epoch + 1, total)
    bar.close()
    return hist


def _save_state(path: Path, model: nn.Module, opt: torch.optim.Optimizer, loader: object,
                hist: History, epochs_done: int, total_steps: int) -> None:
    """Write a resumable training state to ``path`` (temporary file, then rename)."""
    gen = getattr(loader, "generator", None)
    state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "history": hist.to_dict(),
             "epochs_done": epochs_done, "total_steps": total_steps, "torch_rng": torch.get_rng_state(),
             "loader_rng": gen.get_state() if isinstance(gen, torch.Generator) else torch.empty(0, dtype=torch.uint8)}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def _load_state(path: Path, model: nn.Module, opt: torch.optim.Optimizer, loader: object,
                total_steps: int) -> tuple[int, History]:
    """Restore what :func:`_save_state` wrote; return the number of finished epochs and the history."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"cannot resume from {path}: the state file is unreadable ({type(err).__name__}: "
                         f"{err}). Delete it to start the run afresh.") from err
    if state.get("total_steps") != total_steps:
        raise ValueError(f"cannot resume from {path}: it belongs to a run of {state.get('total_steps')} steps, "
                         f"this one has {total_steps}. Delete it to start afresh.")
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["torch_rng"])
    gen = getattr(loader, "generator", None)
    if isinstance(gen, torch.Generator) and state["loader_rng"].numel():
        gen.set_state(state["loader_rng"])
    return int(state["epochs_done"]), History.from_dict(state["history"])


@torch.no_grad()
def predict(
    model: nn.Module,
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    device: str | torch.device | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits ``(N, classes)`` (float32, on the CPU) and labels ``(N,)`` for a whole loader."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    outs, labels = [], []
    for x, y in loader:
        with autocast(device):
            outs.append(model(x.to(device)).float().cpu())
        labels.append(y.cpu())
    model.train(was_training)
    return torch.cat(outs), torch.cat(labels)


def evaluate(
    model: nn.Module,
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    device: str | torch.device | None = None,
) -> dict[str, float]:
    """``{"loss": mean cross-entropy, "acc": top-1 accuracy}`` over ``loader``."""
    logits, labels = predict(model, loader, device)
    return {"loss": F.cross_entropy(logits, labels).item(), "acc": (logits.argmax(-1) == labels).float().mean().item()}
