"""The book's one way to train (chapter 5): AdamW, warmup + cosine, clipping, bf16 on GPU.

>>> history = fit(model, train_loader, epochs=2, lr=2e-3, eval_loader=test_loader)
>>> evaluate(model, test_loader)["acc"]
>>> losses = optimise(head, lambda batch: loss_of(batch), batches, steps=500, lr=3e-3)

:class:`ScheduledAdamW` is the single optimisation step every trainer in the book takes (zero the
gradients, backward, clip, AdamW at this step's warmup-cosine learning rate, with no weight decay
on biases, norms, tokens and positions); :func:`optimise` drives it over any batches with any
loss, and :func:`fit` drives it over a classification loader by epochs (with evaluation,
resumable state and DDP). The MAE and DINO trainers (chapters 10, 11) take the same step.

Everything a notebook plots (loss, accuracy and learning rate per step, per-epoch summaries)
lands in a :class:`History`.

Beyond one device, the same :func:`fit` runs under ``torchrun`` with PyTorch's
DistributedDataParallel (DDP); see :func:`setup_distributed` and the book's appendix on several GPUs::

    torchrun --nproc_per_node=8 train_script.py     # the script calls fit() as on one GPU
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sized
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import torch
import torch.nn.functional as F
from torch import nn

from .device import autocast, get_device

if TYPE_CHECKING:
    from torch.utils.data.distributed import DistributedSampler

__all__ = [
    "warmup_cosine",
    "param_groups",
    "ScheduledAdamW",
    "IndexBatches",
    "optimise",
    "History",
    "fit",
    "evaluate",
    "predict",
    "LossFn",
    "setup_distributed",
    "cleanup_distributed",
    "distributed_rank_and_size",
    "is_main_process",
]

# loss_fn(model, images, labels) -> (loss, logits used for the accuracy)
LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


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
        if decay_all:
            groups = [{"params": [p for p in model.parameters() if p.requires_grad], "weight_decay": weight_decay}]
        else:
            groups = param_groups(model, weight_decay)
        self.params = [p for p in model.parameters() if p.requires_grad]  # the model's order: clipping sums
        # the squared norms in this order, as clip_grad_norm_(model.parameters()) does
        if not self.params:
            raise ValueError("the model has no trainable parameters (all have requires_grad=False)")
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
        """One optimisation step on ``loss * weight``; returns the learning rate it used."""
        if self.steps_done >= self.total_steps:
            raise RuntimeError(f"all {self.total_steps} steps of the schedule are taken")
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

    def state_dict(self) -> dict[str, Any]:
        return {"adamw": self.adamw.state_dict(), "steps_done": self.steps_done}

    def load_state_dict(self, state: dict[str, Any]) -> None:
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


Batch = TypeVar("Batch")


def _repeat(batches: Iterable[Batch]) -> Iterator[Batch]:
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
    loss_of: Callable[[Batch], torch.Tensor],
    batches: Iterable[Batch],
    steps: int,
    lr: float,
    *,
    weight_decay: float = 0.05,
    warmup: float = 0.1,
    warmup_steps: int | None = None,
    min_lr: float = 0.0,
    betas: tuple[float, float] = (0.9, 0.999),
    clip_grad: float | None = 1.0,
    decay_all: bool = False,
    on_step: Callable[[int, float], None] | None = None,
    progress: bool = True,
    desc: str = "train",
    leave: bool = True,
) -> list[float]:
    """Train ``model`` for ``steps`` steps of :class:`ScheduledAdamW`; return the loss of every step.

    ``loss_of(batch)`` gives the loss of one batch (any object: indices, a tuple of tensors); it
    runs under :func:`~vitcore.device.autocast` (bf16 on CUDA). ``batches`` is iterated pass after
    pass until ``steps`` steps are taken (a ``DataLoader`` reshuffles each pass).
    ``on_step(step, loss)`` is called after each step (0-based), e.g. to record a statistic.
    ``progress``: a tqdm bar named ``desc`` (``leave=False``: it disappears when done). The other
    arguments are :class:`ScheduledAdamW`'s.
    """
    from tqdm.auto import tqdm

    opt = ScheduledAdamW(model, steps, lr, weight_decay, warmup, warmup_steps, min_lr, betas, clip_grad, decay_all)
    device = opt.params[0].device
    was_training = model.training
    model.train()
    losses: list[float] = []
    with tqdm(total=steps, desc=desc, disable=not progress, leave=leave) as bar:
        for step, batch in zip(range(steps), _repeat(batches)):
            with autocast(device):
                loss = loss_of(batch)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"{desc}: the loss is {loss.item()} at step {step}")
            opt.step(loss)
            losses.append(loss.item())
            if on_step is not None:
                on_step(step, losses[-1])
            bar.update()
            bar.set_postfix(loss=f"{losses[-1]:.3f}", refresh=False)
    model.train(was_training)
    return losses


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


# ----------------------------------------------------------------------------- several processes (DDP)
def setup_distributed(backend: str | None = None) -> tuple[int, int]:
    """Join the process group that ``torchrun`` describes in the environment; return ``(rank, world_size)``.

    Under ``torchrun`` (``WORLD_SIZE`` > 1) this initialises ``torch.distributed`` from the
    environment variables it sets (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``), with
    the ``nccl`` backend on CUDA (each process then uses GPU ``LOCAL_RANK``) and ``gloo`` on the CPU.
    Without ``torchrun`` it does nothing and returns ``(0, 1)``. Calling it twice is harmless.
    Call it first in a training script, so that ``get_device()`` already names this process's GPU;
    :func:`fit` calls it too, as a fallback.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or not torch.distributed.is_available():
        return distributed_rank_and_size()
    import torch.distributed as dist

    if not dist.is_initialized():
        if backend is None:
            backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend=backend)
    return dist.get_rank(), dist.get_world_size()


def cleanup_distributed() -> None:
    """Leave the process group (at the end of a ``torchrun`` script); a no-op without one."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def distributed_rank_and_size() -> tuple[int, int]:
    """``(rank, world_size)`` of this process: ``(0, 1)`` unless a process group is initialised."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def is_main_process() -> bool:
    """True on rank 0 (or without DDP): the one process that prints and writes files."""
    return distributed_rank_and_size()[0] == 0


class _Dispatch(nn.Module):
    """Lets DDP run any ``forward*`` method of the model: ``forward(name, ...)`` calls ``model.name(...)``."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, _method: str, *args: object, **kwargs: object) -> object:
        return getattr(self.module, _method)(*args, **kwargs)


class _DistributedModel:
    """What a ``loss_fn`` gets as its model under DDP.

    ``model(x)`` and ``model.forward_*(x)`` (e.g. a DeiT's ``forward_both``) go through DDP's
    forward, so that their gradients are averaged over the processes in ``backward``; any other
    attribute is the model's own.
    """

    def __init__(self, ddp: nn.Module, module: nn.Module) -> None:
        self._ddp, self._module = ddp, module

    def __call__(self, *args: object, **kwargs: object) -> object:
        return self._ddp("forward", *args, **kwargs)

    def __getattr__(self, name: str) -> object:
        attr = getattr(self._module, name)
        if name.startswith("forward_") and callable(attr):
            return lambda *args, **kwargs: self._ddp(name, *args, **kwargs)
        return attr


def _distributed_sampler(loader: object) -> DistributedSampler | None:
    """The ``DistributedSampler`` of a ``DataLoader`` (or of a wrapper's ``.loader``), if it has one."""
    from torch.utils.data.distributed import DistributedSampler

    for obj in (loader, getattr(loader, "loader", None)):
        for sampler in (getattr(obj, "sampler", None), getattr(getattr(obj, "batch_sampler", None), "sampler", None)):
            if isinstance(sampler, DistributedSampler):
                return sampler
    return None


def _shard(x: torch.Tensor, y: torch.Tensor, rank: int, world: int) -> tuple[torch.Tensor, torch.Tensor, float]:
    """This rank's rows of a global batch, and the weight of its mean loss: ``n_rank * world / n``.

    DDP averages the gradients of the ranks; weighting each rank's mean loss by its share makes
    that average the gradient of the global batch's mean loss even when ``n`` is not a multiple
    of ``world`` (the weight is exactly 1 when it is).
    """
    n = len(y)
    if n < world:
        raise ValueError(f"a batch of {n} images cannot be shared by {world} processes; use a larger batch")
    xs, ys = torch.tensor_split(x, world)[rank], torch.tensor_split(y, world)[rank]
    return xs, ys, len(ys) * world / n


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
    loss_fn = loss_fn or (lambda m, x, y: _classify(m, x, y, label_smoothing))
    hist = History()
    start_epoch = 0
    if state_path is not None and Path(state_path).is_file():
        start_epoch, hist = _load_state(Path(state_path), model, opt, train_loader, total)
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
                _save_state(Path(state_path), model, opt, train_loader, hist, epoch + 1, total)
            if world > 1:
                torch.distributed.barrier()  # the file is whole before any rank goes on (and may read it)
    bar.close()
    return hist


def _global_stats(loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> tuple[float, float, int]:
    """Sum this rank's loss x size, correct count and size over the ranks: the global batch's numbers."""
    stats = torch.stack(
        [
            loss.detach().double() * len(y),
            (logits.argmax(-1) == y).sum().double(),
            torch.tensor(float(len(y)), dtype=torch.float64, device=y.device),
        ]
    )
    torch.distributed.all_reduce(stats)
    total_loss, correct, n = stats.tolist()
    return total_loss / n, correct, int(n)


def _check_same_start(start_epoch: int, device: torch.device) -> None:
    """Refuse a resume that only some ranks can see (a state file on one node's disk)."""
    t = torch.tensor([start_epoch, -start_epoch], dtype=torch.int64, device=device)
    torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
    if int(t[0]) != -int(t[1]):
        raise RuntimeError(
            f"the processes would resume from different epochs ({-int(t[1])} to {int(t[0])}): "
            "state_path must be a file that every rank can read"
        )


def _save_state(
    path: Path, model: nn.Module, opt: ScheduledAdamW, loader: object, hist: History, epochs_done: int, total_steps: int
) -> None:
    """Write a resumable training state to ``path`` (temporary file, then rename)."""
    gen = getattr(loader, "generator", None)
    state = {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "history": hist.to_dict(),
        "epochs_done": epochs_done,
        "total_steps": total_steps,
        "torch_rng": torch.get_rng_state(),
        "loader_rng": gen.get_state() if isinstance(gen, torch.Generator) else torch.empty(0, dtype=torch.uint8),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def _load_state(
    path: Path, model: nn.Module, opt: ScheduledAdamW, loader: object, total_steps: int
) -> tuple[int, History]:
    """Restore what :func:`_save_state` wrote; return the number of finished epochs and the history."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(
            f"cannot resume from {path}: the state file is unreadable ({type(err).__name__}: "
            f"{err}). Delete it to start the run afresh."
        ) from err
    if state.get("total_steps") != total_steps:
        raise ValueError(
            f"cannot resume from {path}: it belongs to a run of {state.get('total_steps')} steps, "
            f"this one has {total_steps}. Delete it to start afresh."
        )
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
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
