"""The book's one way to train (chapter 5): AdamW, warmup + cosine, clipping, bf16 on GPU.

>>> history = fit(model, train_loader, epochs=2, lr=2e-3, eval_loader=test_loader)
>>> evaluate(model, test_loader)["acc"]
>>> losses = optimise(head, lambda batch: loss_of(batch), batches, steps=500, lr=3e-3)

:class:`ScheduledAdamW` is the single optimisation step every trainer in the book takes (zero the
gradients, backward, clip, AdamW at this step's warmup-cosine learning rate, with no weight decay
on biases, norms, tokens and positions; a NaN or inf loss is a ``FloatingPointError`` naming the
step, raised before anything changes, so no trainer goes on through it); :func:`optimise` drives
it over any batches with any loss, and :func:`fit` drives it over a classification loader by epochs (with evaluation,
resumable state and DDP). The MAE and DINO trainers (chapters 10, 11) take the same step, in the
resumable loop of :class:`ResumableRun`.

Everything a notebook plots (loss, accuracy and learning rate per step, per-epoch summaries)
lands in a :class:`History`.

Beyond one device, the same :func:`fit` runs under ``torchrun`` with PyTorch's
DistributedDataParallel (DDP); see :func:`setup_distributed` and the book's appendix on several GPUs::

    torchrun --nproc_per_node=8 train_script.py     # the script calls fit() as on one GPU

The parts, all importable from ``vitcore.train``: ``.optim`` (schedule, optimiser, batches,
``optimise``), ``.loop`` (``fit``, ``predict``, ``evaluate``, ``History``), ``.resume``
(``ResumableRun``; ``load_state`` and ``check_signature``, how every resumable state is read) and
``.distributed``.
"""

from .distributed import cleanup_distributed, distributed_rank_and_size, is_main_process, setup_distributed
from .loop import History, LossFn, evaluate, fit, predict
from .optim import IndexBatches, ScheduledAdamW, optimise, param_groups, warmup_cosine
from .resume import ResumableRun, check_signature, load_state

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
    "ResumableRun",
    "load_state",
    "check_signature",
    "setup_distributed",
    "cleanup_distributed",
    "distributed_rank_and_size",
    "is_main_process",
]
