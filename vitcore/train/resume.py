"""The resumable loop of the self-supervised pre-training runs (chapters 10 and 11):
:class:`ResumableRun` shuffles the images epoch by epoch, evaluates after each epoch and saves the
run's state, so that a run started again with the same arguments goes on after its last saved epoch."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from ..checkpoint import atomic_write


class ResumableRun:
    """``steps`` steps over ``n`` images in shuffled whole batches of ``batch_size`` (the partial
    batch of an epoch is left out; fewer images than one batch is a ``ValueError``), with a
    progress bar named ``desc`` and, with ``state_path``, a state file that makes the run resumable.

    >>> run = ResumableRun(steps, len(images), 256, state_path, on_epoch=lambda epoch: evaluate(model))
    >>> run.resume(device, model=model, opt=opt, rng=gen)  # what the state holds, restored if saved
    >>> for step, idx in run.batches(gen):  # idx: the batch's indices, a new shuffle each epoch
    ...     run.log.append({"loss": train_step(images[idx])})
    >>> run.log  # one record per step

    The loop's body appends one record per step to ``run.log`` (and may set the postfix of the
    tqdm bar ``run.bar``). At the end of every epoch, and after the last step, ``on_epoch(epoch)``
    (if given) adds an evaluation to the step's record under ``"epoch"`` and the bar writes it out.
    After every epoch but the last, the state goes to ``state_path`` atomically
    (:func:`~vitcore.checkpoint.atomic_write`).
    """

    def __init__(
        self,
        steps: int,
        n: int,
        batch_size: int,
        state_path: str | Path | None = None,
        on_epoch: Callable[[int], dict] | None = None,
        desc: str = "pre-training",
        progress: bool = True,
    ) -> None:
        if n < batch_size:
            raise ValueError(f"need at least one batch of {batch_size} images, got {n}")
        self.steps, self.n, self.batch_size, self.per_epoch = steps, n, batch_size, n // batch_size
        self.state_path, self.on_epoch, self.desc, self.progress = state_path, on_epoch, desc, progress
        self.state: dict[str, Any] = {}
        self.log: list[dict] = []  # one record per step (a resumed run's first ones restored)
        self.bar: Any = None  # the tqdm progress bar, while the loop runs
        self.start = 0

    def resume(self, device: torch.device | None = None, **state: Any) -> None:
        """Name what the state file holds: modules and optimisers (saved by their ``state_dict``),
        tensors (as they are) and random generators (by their states, saved last, after the next
        ``"step"`` and the ``"log"``). If ``state_path`` exists, all of it is restored from there
        (onto ``device``) and the run starts at the first step of the epoch after the saved one."""
        self.state = state
        if self.state_path is None or not Path(self.state_path).is_file():
            return
        saved = torch.load(self.state_path, map_location=device, weights_only=True)
        for key, obj in state.items():
            if isinstance(obj, torch.Generator):
                obj.set_state(saved[key])
            elif isinstance(obj, torch.Tensor):
                obj.copy_(saved[key])
            else:
                obj.load_state_dict(saved[key])
        self.log, self.start = saved["log"], saved["step"]

    def batches(self, generator: torch.Generator) -> Iterator[tuple[int, torch.Tensor]]:
        """``(step, indices)`` for the steps left: a fresh permutation of the ``n`` images from
        ``generator`` at the start of each epoch, cut into whole batches."""
        from tqdm.auto import tqdm

        steps, per_epoch, size, log = self.steps, self.per_epoch, self.batch_size, self.log
        if self.start % per_epoch:
            raise ValueError(f"state {self.state_path} was saved mid-epoch (step {self.start})")
        self.bar = bar = tqdm(
            range(self.start, steps), desc=self.desc, disable=not self.progress, initial=self.start, total=steps
        )
        for step in bar:
            i = step % per_epoch
            if i == 0:
                order = torch.randperm(self.n, generator=generator)
            yield step, order[i * size : (i + 1) * size]
            if i == per_epoch - 1 or step == steps - 1:
                if self.on_epoch is not None:
                    log[-1]["epoch"] = self.on_epoch(len([r for r in log if "epoch" in r]))
                    bar.write(f"{self.desc} step {step + 1}: {log[-1]['epoch']}")
                if self.state_path is not None and step < steps - 1 and i == per_epoch - 1:
                    self._save(self.state_path, step + 1)

    def _save(self, path: str | Path, next_step: int) -> None:
        """Write the state (atomically)."""
        rngs = {k: obj.get_state() for k, obj in self.state.items() if isinstance(obj, torch.Generator)}
        saved: dict[str, Any] = {
            k: obj if isinstance(obj, torch.Tensor) else obj.state_dict()
            for k, obj in self.state.items()
            if k not in rngs
        }
        saved.update(step=next_step, log=self.log)
        saved.update(rngs)
        with atomic_write(path) as f:
            torch.save(saved, f)
