"""Training for grounding (chapter 13): the coordinate-smoothed answer loss, the schedule of the
chapter 9, 12 and 13 runs (:func:`optimise_indexed`), supervised fine-tuning of a VLM and training of
the baseline."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..train import IndexBatches, optimise
from ..vlm import GroundingTokenizer, VisionLanguageModel
from .baseline import BoxRegressor, box_regression_loss
from .data import ReferringData
from .text import encode_grounding


def coordinate_smoothed_loss(
    logits: torch.Tensor, target: torch.Tensor, tok: GroundingTokenizer, sigma: float = 0.0
) -> torch.Tensor:
    """Next-token cross-entropy where a coordinate token's target is a Gaussian over its
    neighbours on the grid (std ``sigma`` grid steps) instead of one-hot, so that "23" for "24"
    costs less than "5" for "24"; other tokens keep one-hot targets. ``logits`` ``(B, L, V)``,
    ``target`` ``(B, L)`` ids with ``-100`` where no loss is taken. ``sigma=0`` is plain
    cross-entropy."""
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    keep = target != -100
    t, logp = target[keep], logits[keep].log_softmax(-1)  # (M,), (M, V)
    if sigma == 0:
        return F.nll_loss(logp, t)
    q = F.one_hot(t, logits.shape[-1]).to(logp.dtype)  # (M, V)
    c0, g = tok.stoi["0"], tok.grid  # coordinate tokens are the ids c0 .. c0 + g
    is_coord = (t >= c0) & (t <= c0 + g)
    steps = torch.arange(g + 1, device=t.device, dtype=logp.dtype)
    soft = torch.exp(-0.5 * ((steps[None] - (t - c0)[:, None].to(logp.dtype)) / sigma) ** 2)  # (M, g + 1)
    q[is_coord] = 0
    q[is_coord, c0 : c0 + g + 1] = soft[is_coord] / soft[is_coord].sum(-1, keepdim=True)
    return -(q * logp).sum(-1).mean()


def optimise_indexed(
    model: nn.Module,
    loss_of: Callable[[torch.Tensor], torch.Tensor],
    n: int,
    batch_size: int,
    steps: int,
    lr: float = 2e-3,
    weight_decay: float = 0.05,
    seed: int = 0,
    progress: bool = True,
    desc: str = "train",
    decay_all: bool = False,
) -> list[float]:
    """The schedule of the chapter 9, 12 and 13 runs: :func:`~vitcore.train.optimise` over shuffled
    whole batches of ``n`` examples (:class:`~vitcore.train.IndexBatches`, drawn from ``seed``),
    warmup for a tenth of the steps, cosine down to ``lr / 20``, gradients clipped at norm 1.
    ``loss_of(batch_indices)`` gives the loss. Returns the loss of every step. The trainers below
    (and :func:`vitcore.vlm_runs.train_vqa`) pass their other keywords (``lr``, ``weight_decay``,
    ``seed``, ``progress``, ``decay_all``) here, with these defaults."""
    return optimise(
        model,
        loss_of,
        IndexBatches(n, batch_size, seed),
        steps,
        lr,
        weight_decay=weight_decay,
        warmup_steps=max(1, steps // 10),
        min_lr=lr / 20,
        clip_grad=1.0,
        decay_all=decay_all,
        progress=progress,
        desc=desc,
    )


def train_vlm(
    model: VisionLanguageModel,
    tok: GroundingTokenizer,
    data: ReferringData,
    epochs: int = 4,
    batch_size: int = 32,
    *,
    steps: int | None = None,
    features: torch.Tensor | None = None,
    coord_sigma: float = 0.0,
    desc: str = "SFT",
    **schedule: Any,
) -> list[float]:
    """Supervised fine-tuning on ``(image, instruction, box)``: answer-only cross-entropy
    (:func:`coordinate_smoothed_loss` with ``coord_sigma``), trained by :func:`optimise_indexed` for
    ``epochs`` passes or exactly ``steps`` steps. Returns the loss of every step. ``features``: precomputed
    vision tokens ``(S, T, D_v)`` of a frozen encoder, one row per scene of ``data.scenes``,
    used instead of the images. The other keywords (``schedule``: ``lr``, ``weight_decay``, ``seed``,
    ``progress``, ``decay_all``) go to :func:`optimise_indexed`, with its defaults."""
    dev = next(model.parameters()).device
    ids, mask = encode_grounding(tok, data.instructions, data.boxes, data.image_size)
    per_epoch = len(IndexBatches(len(data), batch_size))  # whole batches only (raises if not one)

    def loss_of(b: torch.Tensor) -> torch.Tensor:
        n = int(mask[b].nonzero()[:, 1].max()) + 1  # trim padding columns
        x, m = ids[b, :n].to(dev), mask[b, :n].to(dev)
        vt = features[data.scene_index[b]].to(dev) if features is not None else None
        logits = model.logits(None if vt is not None else data.batch_images(b).to(dev), x[:, :-1], vt)
        target = x[:, 1:].masked_fill(~m[:, 1:].bool(), -100)  # predict the answer tokens only
        return coordinate_smoothed_loss(logits, target, tok, coord_sigma)

    steps = steps if steps is not None else epochs * per_epoch
    return optimise_indexed(model, loss_of, len(data), batch_size, steps, desc=desc, **schedule)


def train_regressor(
    model: BoxRegressor,
    data: ReferringData,
    words: torch.Tensor | None = None,
    epochs: int = 4,
    batch_size: int = 32,
    *,
    features: torch.Tensor | None = None,
    desc: str = "L1+GIoU",
    **schedule: Any,
) -> list[float]:
    """Train the regression baseline with :func:`box_regression_loss`; returns per-step losses.
    Each epoch takes ``len(data) // batch_size`` whole batches (the partial batch is left out, as
    in :func:`train_vlm`); data smaller than one batch is a ``ValueError``.
    ``features``: precomputed tokens ``(S, T, D)`` of a frozen encoder, one row per scene of
    ``data.scenes`` (then only the head trains). The other keywords go to :func:`optimise_indexed`,
    as in :func:`train_vlm`."""
    dev = next(model.parameters()).device
    per_epoch = len(IndexBatches(len(data), batch_size))  # whole batches only, as in train_vlm

    def loss_of(b: torch.Tensor) -> torch.Tensor:
        w = words[b].to(dev) if words is not None else None
        vt = features[data.scene_index[b]].to(dev) if features is not None else None
        return box_regression_loss(model(data.batch_images(b).to(dev), w, vt), data.boxes[b].to(dev), data.image_size)

    return optimise_indexed(model, loss_of, len(data), batch_size, epochs * per_epoch, desc=desc, **schedule)
