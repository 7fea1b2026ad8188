"""Training a classifier by epochs (chapter 5): :func:`fit` (history, evaluation, resumable state,
DDP), :func:`predict` and :func:`evaluate`."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sized
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoint import atomic_write
from ..device import autocast, get_device
from .distributed import (
    _check_same_start,
    _Dispatch,
    _distributed_sampler,
    _DistributedModel,
    _global_stats,
    _shard,
    setup_distributed,
)
from .optim import ScheduledAdamW
from .resume import check_signature, load_state

# loss_fn(model, images, labels) -> (loss, logits used for the accuracy)
LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


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


def _classify(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, label_smoothing: float
) -> tuple[torch.Tensor, torch.Tensor]:
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

    Under ``torchrun`` (several processes; see :func:`setup_distributed`) the model is wrapped in
    ``DistributedDataParallel`` and every process takes its share of each batch: the loader
    yields the *global* batch in every process (same data, same seed, hence the same shuffle and
    augmentation) and process ``r`` trains on its ``r``-th slice (``torch.tensor_split``), unless the
    loader shards the data itself (a ``DataLoader`` with a ``DistributedSampler``, whose
    ``set_epoch`` is then called every epoch). Gradients are averaged over the processes, so a step
    is the step of one process on the global batch; the history records global losses and counts.
    Only rank 0 shows a progress bar and writes ``state_path`` (which every rank must be able to
    read to resume). Each rank evaluates ``eval_loader`` whole.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    if not 0.0 <= warmup <= 1.0:
        raise ValueError(f"warmup is a fraction of the steps in [0, 1], got {warmup}")
    rank, world = setup_distributed()  # (0, 1) on one process
    device = torch.device(device) if device is not None else get_device()
    if world > 1 and device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())  # this process's GPU
    model.to(device)
    steps_per_epoch = len(cast(Sized, train_loader))  # fit needs a loader with a length
    if steps_per_epoch == 0:
        raise ValueError("the training loader yields no batches (too few images for one batch?)")
    total = epochs * steps_per_epoch
    opt = ScheduledAdamW(model, total, lr, weight_decay, warmup, min_lr=min_lr, clip_grad=clip_grad)
    custom_loss = loss_fn
    loss_fn = loss_fn or (lambda m, x, y: _classify(m, x, y, label_smoothing))
    hist = History()
    start_epoch = 0
    # What a saved state must match to be resumed (the optimiser checks its own settings).
    signature = {
        "epochs": epochs,
        "steps_per_epoch": steps_per_epoch,
        "batch_size": getattr(train_loader, "batch_size", None),
        "data_size": _data_size(train_loader),
        "label_smoothing": label_smoothing if custom_loss is None else None,  # the default loss's setting
    }
    if state_path is not None and Path(state_path).is_file():
        start_epoch, hist = _load_state(Path(state_path), model, opt, train_loader, signature)
    runner: nn.Module = model
    sampler = shard = None
    if world > 1:
        _check_same_start(start_epoch, device)
        from torch.nn.parallel import DistributedDataParallel

        ddp = DistributedDataParallel(_Dispatch(model), device_ids=[device.index] if device.type == "cuda" else None)
        # rank 0's weights were broadcast to all ranks; loss_fn gets this stand-in for the model
        runner = cast(nn.Module, _DistributedModel(ddp, model))
        sampler = _distributed_sampler(train_loader)
        shard = sampler is None  # the loader yields global batches: slice them here

    from tqdm.auto import tqdm

    bar = tqdm(
        total=total, initial=start_epoch * steps_per_epoch, desc=desc, disable=not progress or rank != 0, leave=True
    )
    for epoch in range(start_epoch, epochs):
        model.train()
        if sampler is not None:
            sampler.set_epoch(epoch)
        t0 = time.perf_counter()
        loss_sum = correct = seen = 0.0
        for x, y in train_loader:
            weight = 1.0
            if shard:
                x, y, weight = _shard(x, y, rank, world)
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with autocast(device):
                loss, logits = loss_fn(runner, x, y)
            step_lr = opt.step(loss, weight)  # DDP: gradients averaged over the ranks in backward
            # Bookkeeping (one sync per step: fine for a teaching loop).
            if world > 1:  # the global batch's loss, correct count and size
                batch_loss, batch_correct, n = _global_stats(loss, logits, y)
            else:
                batch_loss = loss.item()
                batch_correct = (logits.argmax(-1) == y).sum().item()
                n = len(y)
            hist.step_loss.append(batch_loss)
            hist.step_acc.append(batch_correct / n)
            hist.step_lr.append(step_lr)
            loss_sum += batch_loss * n
            correct += batch_correct
            seen += n
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
            if rank == 0:
                _save_state(Path(state_path), model, opt, train_loader, hist, epoch + 1, signature)
            if world > 1:
                torch.distributed.barrier()  # the file is whole before any rank goes on (and may read it)
    bar.close()
    return hist


def _data_size(loader: object) -> int | None:
    """How many examples a loader draws from (a ``DataLoader``'s dataset, a ``TensorLoader``'s
    images), or None when it does not say."""
    for name in ("dataset", "images"):
        data = getattr(loader, name, None)
        if data is not None and hasattr(data, "__len__"):
            return len(data)
    return None


def _save_state(
    path: Path, model: nn.Module, opt: ScheduledAdamW, loader: object, hist: History, epochs_done: int, signature: dict
) -> None:
    """Write a resumable training state to ``path`` (atomically)."""
    gen = getattr(loader, "generator", None)
    state = {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "history": hist.to_dict(),
        "epochs_done": epochs_done,
        "signature": signature,
        "torch_rng": torch.get_rng_state(),
        "loader_rng": gen.get_state() if isinstance(gen, torch.Generator) else torch.empty(0, dtype=torch.uint8),
    }
    with atomic_write(path) as f:
        torch.save(state, f)


def _load_state(
    path: Path, model: nn.Module, opt: ScheduledAdamW, loader: object, signature: dict
) -> tuple[int, History]:
    """Restore what :func:`_save_state` wrote (refusing a state of another run, naming the file);
    return the number of finished epochs and the history."""
    state = load_state(path)
    check_signature(path, state, signature)
    try:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
    except (KeyError, ValueError, RuntimeError) as err:
        raise ValueError(
            f"cannot resume from {path}: its model or optimiser does not fit this run ({type(err).__name__}: "
            f"{err}). Run again with the same model and settings to continue it, or delete the file to start "
            "afresh."
        ) from err
    torch.set_rng_state(state["torch_rng"])
    gen = getattr(loader, "generator", None)
    if isinstance(gen, torch.Generator) and state["loader_rng"].numel():
        gen.set_state(state["loader_rng"])
    return int(state["epochs_done"]), History.from_dict(state["history"])


@torch.no_grad()
def predict(
    model: nn.Module, loader: Iterable[tuple[torch.Tensor, torch.Tensor]], device: str | torch.device | None = None
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
    model: nn.Module, loader: Iterable[tuple[torch.Tensor, torch.Tensor]], device: str | torch.device | None = None
) -> dict[str, float]:
    """``{"loss": mean cross-entropy, "acc": top-1 accuracy}`` over ``loader``."""
    logits, labels = predict(model, loader, device)
    return {"loss": F.cross_entropy(logits, labels).item(), "acc": (logits.argmax(-1) == labels).float().mean().item()}
