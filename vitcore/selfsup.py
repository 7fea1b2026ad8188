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

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .data import load_fashion_mnist, normalise, stratified_indices
from .device import preserved_rng, seed_everything
from .vit import VisionTransformer, ViTConfig

__all__ = [
    "evaluation_sets",
    "initial_model",
    "knn_accuracy",
    "linear_probe",
    "pixel_knn_accuracy",
    "pretraining_images",
    "probe_data",
    "train_dino",
    "train_mae",
]


def initial_model(rec: dict) -> nn.Module:
    """The model a DINO or MAE recipe starts from (seeded): its backbone / masked autoencoder at step 0.

    This is the control of every comparison: the very weights pre-training started from. The
    caller's random streams are as they were afterwards (:func:`vitcore.device.preserved_rng`).
    """
    with preserved_rng():  # _seeded_initial_model seeds the global streams itself
        return _seeded_initial_model(rec)


def _seeded_initial_model(rec: dict) -> nn.Module:
    """:func:`initial_model` after seeding the global streams with the recipe's seed, leaving them
    seeded: a run goes on drawing from them (the DINO head, the batch order) as it always did."""
    from .mae import MaskedAutoencoder

    seed_everything(rec.get("seed", 0))
    spec = {k: v for k, v in rec["model"].items() if k != "arch"}
    if rec.get("method") == "mae":
        return MaskedAutoencoder(ViTConfig(**spec["encoder"]), **spec["decoder"])
    return VisionTransformer(ViTConfig(**spec))


def evaluation_sets(rec: dict | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(bank images, bank labels, query images, query labels), normalised, on the CPU.

    Fashion-MNIST: 10,000 training images and the 10,000 test images. Item scenes
    (``rec["data"]["dataset"] == "item_scenes"``): 10,000 scenes of training garments and 5,000
    scenes of test garments (:func:`vitcore.scenes.item_scenes`), none of them seen in pre-training.
    """
    if rec is not None and rec["data"].get("dataset") == "item_scenes":
        from .scenes.items import item_scenes, normalise_scenes

        bank_x, bank_y = item_scenes("train", 10_000, seed=SCENE_BANK_SEED)
        query_x, query_y = item_scenes("test", 5_000, seed=SCENE_QUERY_SEED)
        return normalise_scenes(bank_x), bank_y, normalise_scenes(query_x), query_y
    train_x, train_y = load_fashion_mnist("train")
    test_x, test_y = load_fashion_mnist("test")
    bank = stratified_indices(train_y, 10_000, seed=1)
    return normalise(train_x[bank]), train_y[bank], normalise(test_x), test_y


# The seeds of the item scenes a run pre-trains on (``rec["data"]["seed"]``, default 0) and of the
# evaluation scenes: different seeds, so no evaluation scene is a pre-training scene.
SCENE_BANK_SEED, SCENE_QUERY_SEED = 1001, 1002


def pretraining_images(rec: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """A run's pre-training images (normalised, CPU) and their labels (never used in pre-training)."""
    data = rec["data"]
    n = data.get("n_train")
    if data.get("dataset") == "item_scenes":
        from .scenes.items import item_scenes, normalise_scenes

        x, y = item_scenes("train", n, seed=data.get("seed", 0))
        return normalise_scenes(x), y
    train_x, train_y = load_fashion_mnist("train")
    if n is not None:
        train_x, train_y = train_x[:n], train_y[:n]
    return normalise(train_x), train_y


def knn_accuracy(backbone: nn.Module, sets: tuple | None = None, k: int = 20) -> float:
    """20-NN accuracy of ``backbone``'s pooled features (bank: 10,000 training images; queries: the test set)."""
    from .dino import embed, knn_hits

    bank_x, bank_y, query_x, query_y = sets or evaluation_sets()
    return knn_hits(embed(backbone, bank_x), bank_y, embed(backbone, query_x), query_y, k=k).float().mean().item()


def probe_data(rec: dict | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(training images, labels, test images, labels), normalised, that :func:`linear_probe` draws from.

    Fashion-MNIST (default): the 60,000 training and 10,000 test images. With an item-scene
    ``rec``: its pre-training scenes (now with their labels) and its 5,000 query scenes of test
    garments. Made once and passed to several probes, they are not rebuilt for each.
    """
    if rec is not None and rec["data"].get("dataset") == "item_scenes":
        train_x, train_y = pretraining_images(rec)
        _, _, test_x, test_y = evaluation_sets(rec)
        return train_x, train_y, test_x, test_y
    train_u8, train_y = load_fashion_mnist("train")
    test_u8, test_y = load_fashion_mnist("test")
    return normalise(train_u8), train_y, normalise(test_u8), test_y


def linear_probe(
    backbone: nn.Module | None,
    fraction: float,
    seed: int = 1,
    rec: dict | None = None,
    data: tuple[torch.Tensor, ...] | None = None,
) -> float:
    """Test accuracy of a logistic regression on frozen, standardised features from ``fraction`` of the labels.

    The images are :func:`probe_data`'s for ``rec`` (or ``data``, made by it once for several
    probes). ``backbone=None`` probes the raw (normalised) pixels, the control that tells whether
    features beat their own input.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from .dino import embed

    def features(x: torch.Tensor) -> np.ndarray:
        return (x.flatten(1) if backbone is None else embed(backbone, x)).numpy()

    train_x, train_y, test_x, test_y = data if data is not None else probe_data(rec)
    idx = stratified_indices(train_y, int(len(train_y) * fraction), seed=seed)
    f_train, f_test = features(train_x[idx]), features(test_x)
    scaler = StandardScaler().fit(f_train)
    clf = LogisticRegression(max_iter=2000).fit(scaler.transform(f_train), train_y[idx].numpy())
    return float(clf.score(scaler.transform(f_test), test_y.numpy()))


def pixel_knn_accuracy(sets: tuple) -> float:
    """20-NN accuracy of the raw (normalised) pixels themselves, under the same protocol as :func:`knn_accuracy`."""
    from .dino import knn_hits

    bank_x, bank_y, query_x, query_y = sets
    bank, query = F.normalize(bank_x.flatten(1), dim=-1), F.normalize(query_x.flatten(1), dim=-1)
    return knn_hits(bank, bank_y, query, query_y).float().mean().item()


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
    images, _ = pretraining_images(rec)
    sets: tuple[torch.Tensor, ...] = evaluation_sets(rec)
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
        desc=f"{rec['method']}_{'scenes' if rec['data'].get('dataset') == 'item_scenes' else 'fmnist'}",
        **{k: v for k, v in rec["train"].items() if k != "epochs"},
    )
    return log, sets, steps


def train_dino(
    rec: dict, device: torch.device, state_path: Path | None, progress: bool = True, quick: bool = False
) -> tuple[nn.Module, dict, dict]:
    """DINO on Fashion-MNIST: ``(teacher backbone, metrics, history)``; the teacher is what ships."""
    from .dino import DINOModel, pretrain

    backbone = _seeded_initial_model(rec)
    student = DINOModel(backbone, rec["model"]["embed_dim"], **rec["head"]).to(device)
    teacher = copy.deepcopy(student)
    random_init = copy.deepcopy(backbone).cpu()
    log, sets, steps = _pretrain(
        rec, pretrain, (student, teacher), lambda teach: teach.backbone, state_path, progress, quick
    )
    teacher_backbone = teacher.backbone.cpu()
    metrics = {
        "knn_acc": knn_accuracy(teacher_backbone, sets),
        "knn_acc_student": knn_accuracy(student.backbone.cpu(), sets),
        "knn_acc_random_init": knn_accuracy(random_init, sets),
        "knn_acc_pixels": pixel_knn_accuracy(sets),
        "steps": steps,
    }
    if not quick and rec["data"].get("dataset") == "item_scenes":
        metrics.update(_probes(teacher_backbone, random_init, rec))
    return teacher_backbone.eval(), metrics, _history(log)


def _probes(trained: nn.Module, random_init: nn.Module, rec: dict) -> dict:
    """Linear probes with 1% and 10% of the labels: the trained backbone, its initial weights, the pixels."""
    data, out = probe_data(rec), {}
    for frac in (0.01, 0.1):
        out[f"probe_{frac:g}"] = linear_probe(trained, frac, data=data)
        out[f"probe_{frac:g}_random_init"] = linear_probe(random_init, frac, data=data)
        if rec["data"].get("dataset") == "item_scenes":
            out[f"probe_{frac:g}_pixels"] = linear_probe(None, frac, data=data)
    return out


def train_mae(
    rec: dict, device: torch.device, state_path: Path | None, progress: bool = True, quick: bool = False
) -> tuple[nn.Module, dict, dict]:
    """MAE on Fashion-MNIST: ``(whole masked autoencoder, metrics, history)``."""
    from .mae import MaskedAutoencoder, pretrain

    model = cast(MaskedAutoencoder, _seeded_initial_model(rec)).to(device)  # an MAE recipe gives an MAE
    random_init = copy.deepcopy(model.encoder).cpu()
    log, sets, steps = _pretrain(rec, pretrain, (model,), lambda mae: mae.encoder, state_path, progress, quick)
    model = model.cpu().eval()
    metrics: dict = {
        "knn_acc": knn_accuracy(model.encoder, sets),
        "knn_acc_random_init": knn_accuracy(random_init, sets),
        "steps": steps,
        "final_loss": sum(r["loss"] for r in log[-50:]) / len(log[-50:]),
    }
    if rec["data"].get("dataset") == "item_scenes":
        metrics["knn_acc_pixels"] = pixel_knn_accuracy(sets)
    if not quick:
        metrics.update(_probes(model.encoder, random_init, rec))
    return model, metrics, _history(log)
