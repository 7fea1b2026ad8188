"""Several processes (DDP, the book's appendix on several GPUs): joining the process group that
``torchrun`` describes, and the pieces :func:`vitcore.train.fit` uses to share each batch."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from torch.utils.data.distributed import DistributedSampler


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
