"""The long self-supervised runs behind chapters 10 (MAE) and 11 (DINO), and how they are judged.

:mod:`vitcore.zoo` dispatches a full recipe with ``"method": "dino"`` or ``"mae"`` here. Both
pre-train on the 60,000 Fashion-MNIST training images *without their labels*, save their state
after every epoch (an interrupted run resumes) and are judged on held-out data with labels used
only for the evaluation:

- **k-NN**: 20 nearest neighbours under cosine similarity, a memory bank of 10,000 labelled training
  images, all 10,000 test images as queries (DINO's protocol, :func:`vitcore.dino.knn_hits`);
- **linear probe** (MAE): a logistic regression on frozen features, with 1% and 10% of the labels.

Each is compared with the very same architecture at its random initialisation (the run's own
step-0 weights), the control that tells what pre-training bought.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from .data import load_fashion_mnist, normalise, stratified_indices
from .device import seed_everything
from .vit import VisionTransformer, ViTConfig

__all__ = ["initial_model", "knn_accuracy", "linear_probe", "train_dino", "train_mae"]


def initial_model(rec: dict) -> nn.Module:
    """The model a DINO or MAE recipe starts from (seeded): its backbone / masked autoencoder at step 0.

    This is the control of every comparison: the very weights pre-training started from.
    """
    from .mae import MaskedAutoencoder

    seed_everything(rec.get("seed", 0))
    spec = {k: v for k, v in rec["model"].items() if k != "arch"}
    if rec.get("method") == "mae":
        return MaskedAutoencoder(ViTConfig(**spec["encoder"]), **spec["decoder"])
    return VisionTransformer(ViTConfig(**spec))


def _eval_sets() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(bank images, bank labels, query images, query labels), normalised, on the CPU."""
    train_x, train_y = load_fashion_mnist("train")
    test_x, test_y = load_fashion_mnist("test")
    bank = stratified_indices(train_y, 10_000, seed=1)
    return normalise(train_x[bank]), train_y[bank], normalise(test_x), test_y


def knn_accuracy(backbone: nn.Module, sets: tuple | None = None, k: int = 20) -> float:
    """20-NN accuracy of ``backbone``'s pooled features (bank: 10,000 training images; queries: the test set)."""
    from .dino import embed, knn_hits

    bank_x, bank_y, query_x, query_y = sets or _eval_sets()
    return knn_hits(embed(backbone, bank_x), bank_y, embed(backbone, query_x), query_y, k=k).float().mean().item()


def linear_probe(backbone: nn.Module, fraction: float, seed: int = 1) -> float:
    """Test accuracy of a logistic regression on frozen, standardised features from ``fraction`` of the labels."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from .dino import embed

    train_x, train_y = load_fashion_mnist("train")
    test_x, test_y = load_fashion_mnist("test")
    idx = stratified_indices(train_y, int(len(train_y) * fraction), seed=seed)
    f_train = embed(backbone, normalise(train_x[idx])).numpy()
    f_test = embed(backbone, normalise(test_x)).numpy()
    scaler = StandardScaler().fit(f_train)
    clf = LogisticRegression(max_iter=2000).fit(scaler.transform(f_train), train_y[idx].numpy())
    return float(clf.score(scaler.transform(f_test), test_y.numpy()))


def _history(log: list[dict]) -> dict:
    """Per-epoch history in :class:`vitcore.train.History`'s fields: mean loss, evaluation accuracy."""
    ends = [i for i, r in enumerate(log) if "epoch" in r]
    starts = [0] + [i + 1 for i in ends[:-1]]
    return {
        "epoch_loss": [sum(r["loss"] for r in log[a : b + 1]) / (b + 1 - a) for a, b in zip(starts, ends)],
        "eval_acc": [log[i]["epoch"]["acc"] for i in ends],
    }


def _pretrain(
    rec: dict,
    pretrain: Callable[..., list[dict]],
    models: tuple[nn.Module, ...],
    judged: Callable[[Any], nn.Module],
    state_path: Path | None,
    progress: bool,
    quick: bool,
) -> tuple[list[dict], tuple[torch.Tensor, ...], int]:
    """Run a recipe's pre-training loop (``pretrain``: :func:`vitcore.dino.pretrain` or
    :func:`vitcore.mae.pretrain`, given ``models`` first) on its unlabelled training images
    (normalised) with the batch size, seed and ``train`` settings of the recipe, judging the
    features of ``judged(model)`` by k-NN after every epoch. Returns ``(log, evaluation sets, steps)``."""
    train_x, _ = load_fashion_mnist("train")
    n = rec["data"].get("n_train")
    images = normalise(train_x if n is None else train_x[:n])
    sets: tuple[torch.Tensor, ...] = _eval_sets()
    if quick:
        sets = tuple(s[:500] for s in sets)
    steps = rec["train"]["epochs"] * (len(images) // rec["data"]["batch_size"])

    def on_epoch(epoch: int, model: nn.Module) -> dict:
        return {"acc": knn_accuracy(judged(model), sets)}

    log = pretrain(
        *models,
        images,
        steps,
        batch_size=rec["data"]["batch_size"],
        seed=rec.get("seed", 0),
        on_epoch=on_epoch,
        state_path=state_path,
        progress=progress,
        desc=f"{rec['method']}_fmnist",
        **{k: v for k, v in rec["train"].items() if k != "epochs"},
    )
    return log, sets, steps


def train_dino(
    rec: dict, device: torch.device, state_path: Path | None, progress: bool = True, quick: bool = False
) -> tuple[nn.Module, dict, dict]:
    """DINO on Fashion-MNIST: ``(teacher backbone, metrics, history)``; the teacher is what ships."""
    from .dino import DINOModel, pretrain

    backbone = initial_model(rec)
    student = DINOModel(backbone, rec["model"]["embed_dim"], **rec["head"]).to(device)
    teacher = copy.deepcopy(student)
    random_init = copy.deepcopy(backbone).cpu()
    log, sets, steps = _pretrain(
        rec, pretrain, (student, teacher), lambda teach: teach.backbone, state_path, progress, quick
    )
    pixels = F.normalize(sets[0].flatten(1), dim=-1), sets[1], F.normalize(sets[2].flatten(1), dim=-1), sets[3]
    from .dino import knn_hits

    metrics = {
        "knn_acc": knn_accuracy(teacher.backbone, sets),
        "knn_acc_student": knn_accuracy(student.backbone, sets),
        "knn_acc_random_init": knn_accuracy(random_init, sets),
        "knn_acc_pixels": knn_hits(*pixels).float().mean().item(),
        "steps": steps,
    }
    return teacher.backbone.cpu().eval(), metrics, _history(log)


def train_mae(
    rec: dict, device: torch.device, state_path: Path | None, progress: bool = True, quick: bool = False
) -> tuple[nn.Module, dict, dict]:
    """MAE on Fashion-MNIST: ``(whole masked autoencoder, metrics, history)``."""
    from .mae import MaskedAutoencoder, pretrain

    model = cast(MaskedAutoencoder, initial_model(rec)).to(device)  # an MAE recipe gives an MAE
    random_init = copy.deepcopy(model.encoder).cpu()
    log, sets, steps = _pretrain(rec, pretrain, (model,), lambda mae: mae.encoder, state_path, progress, quick)
    model = model.cpu().eval()
    metrics: dict = {
        "knn_acc": knn_accuracy(model.encoder, sets),
        "knn_acc_random_init": knn_accuracy(random_init, sets),
        "steps": steps,
        "final_loss": sum(r["loss"] for r in log[-50:]) / len(log[-50:]),
    }
    if not quick:
        for frac in (0.01, 0.1):
            metrics[f"probe_{frac:g}"] = linear_probe(model.encoder, frac)
            metrics[f"probe_{frac:g}_random_init"] = linear_probe(random_init, frac)
    return model, metrics, _history(log)
