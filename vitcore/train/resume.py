"""The resumable loop of the self-supervised pre-training runs (chapters 10 and 11):
:class:`ResumableRun` shuffles the images epoch by epoch, evaluates after each epoch and saves the
run's state, so that a run started again with the same arguments goes on after its last saved epoch.

Every resumable state (this loop's, :func:`~vitcore.train.fit`'s, the VLM runs' token cache) is read
by :func:`load_state`, which names the file in every error, and carries a run *signature* (the
loop's settings: steps, data size, batch size, ...) that :func:`check_signature` compares with the
run asking to resume: a state of another run is refused, never silently continued."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from ..checkpoint import atomic_write


def load_state(path: str | Path, map_location: str | torch.device | None = "cpu") -> dict[str, Any]:
    """A resumable state written with ``torch.save``, read with ``weights_only=True``; a file that
    cannot be read is a ``ValueError`` naming it and saying what to do."""
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:
        raise ValueError(
            f"cannot resume from {path}: the state file is unreadable ({type(err).__name__}: {err}). "
            "Delete it to start the run afresh."
        ) from err
    if not isinstance(state, dict):
        raise ValueError(f"cannot resume from {path}: it holds a {type(state).__name__}, not a run's state")
    return state


def check_signature(path: str | Path, saved: dict[str, Any], expected: dict[str, Any]) -> None:
    """Refuse to resume from the state ``saved`` (read from ``path``) unless its ``"signature"``
    equals ``expected``, the settings of the run asking to resume: a ``ValueError`` naming the file
    and each setting that differs."""
    got = saved.get("signature")
    if got == expected:
        return
    if not isinstance(got, dict):
        what = "it was saved without a run signature (by an older vitcore, or not by this loop)"
    else:
        keys = sorted(set(got) | set(expected))
        diff = [f"{k}: {got.get(k)!r} saved, {expected.get(k)!r} now" for k in keys if got.get(k) != expected.get(k)]
        what = "it belongs to a run with other settings (" + "; ".join(diff) + ")"
    raise ValueError(
        f"cannot resume from {path}: {what}. Run again with the same settings to continue it, or delete "
        "the file to start this run afresh."
    )


class ResumableRun:
    """``steps`` steps over ``n`` images in shuffled whole batches of ``batch_size`` (the partial
    batch of an epoch is left out; fewer images than one batch is a ``ValueError``), with a
    progress bar named ``desc`` and, with ``state_path``, a state file that makes the run resumable.

    >>> run = ResumableRun(steps, len(images), 256, state_path, on_epoch=lambda epoch: evaluate(model))
    >>> run.resume(device, model=model, opt=opt, rng=gen)  # what the state holds, restored if saved
    >>> for step, idx in run.batches(gen):  # idx: the batch's indices, a new shuffle each epoch
    ...     run.log.append({"loss": train_step(images[idx])})
    >>> run.log  # one record per step

    The state records the run's signature: ``steps``, ``n``, ``batch_size`` and the ``settings``
    given (plain values, e.g. a recipe's hash); :meth:`resume` refuses a state whose signature
    differs, naming the file and the settings.

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
        settings: dict[str, Any] | None = None,
    ) -> None:
        if n < batch_size:
            raise ValueError(f"need at least one batch of {batch_size} images, got {n}")
        self.steps, self.n, self.batch_size, self.per_epoch = steps, n, batch_size, n // batch_size
        # What a state must match to be resumed (an optimiser's own settings are checked by it).
        self.signature: dict[str, Any] = {"steps": steps, "n": n, "batch_size": batch_size, **(settings or {})}
        self.state_path, self.on_epoch, self.desc, self.progress = state_path, on_epoch, desc, progress
        self.state: dict[str, Any] = {}
        self.log: list[dict] = []  # one record per step (a resumed run's first ones restored)
        self.bar: Any = None  # the tqdm progress bar, while the loop runs
        self.start = 0

    def resume(self, device: torch.device | None = None, **state: Any) -> None:
        """Name what the state file holds: modules and optimisers (saved by their ``state_dict``),
        tensors (as they are) and random generators (by their states, saved last, after the next
        ``"step"`` and the ``"log"``). If ``state_path`` exists, all of it is restored from there
        (onto ``device``) and the run starts at the first step of the epoch after the saved one.
        A state of another run (its signature differs), or one that does not hold what is named
        here, is a ``ValueError`` naming the file."""
        self.state = state
        path = self.state_path
        if path is None or not Path(path).is_file():
            return
        saved = load_state(path, device)
        check_signature(path, saved, self.signature)
        step = saved.get("step")
        if not isinstance(step, int) or not 0 < step < self.steps or step % self.per_epoch:
            raise ValueError(
                f"cannot resume from {path}: it was saved at step {step!r}, not at the end of one of the "
                f"first epochs of {self.steps} steps ({self.per_epoch} an epoch). Delete it to start afresh."
            )
        try:
            for key, obj in state.items():
                if isinstance(obj, torch.Generator):
                    obj.set_state(saved[key])
                elif isinstance(obj, torch.Tensor):
                    obj.copy_(saved[key])
                else:
                    obj.load_state_dict(saved[key])
        except (KeyError, ValueError, RuntimeError) as err:
            raise ValueError(
                f"cannot resume from {path}: its {key!r} does not fit this run ({type(err).__name__}: {err}). "
                "Run again with the same settings to continue it, or delete the file to start afresh."
            ) from err
        self.log, self.start = saved["log"], step

    def batches(self, generator: torch.Generator) -> Iterator[tuple[int, torch.Tensor]]:
        """``(step, indices)`` for the steps left: a fresh permutation of the ``n`` images from
        ``generator`` at the start of each epoch, cut into whole batches."""
        from tqdm.auto import tqdm

        steps, per_epoch, size, log = self.steps, self.per_epoch, self.batch_size, self.log
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
        saved.update(step=next_step, log=self.log, signature=self.signature)
        saved.update(rngs)
        with atomic_write(path) as f:
            torch.save(saved, f)
