"""Building and training a zoo model from its recipe: ``build_model`` turns the ``model`` part into
a freshly initialised network, ``train`` runs a Fashion-MNIST recipe from scratch."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..device import get_device, preserved_rng, seed_everything
from ..train import History, evaluate, fit
from ..vit import VisionTransformer, ViTConfig


def build_model(rec: dict) -> nn.Module:
    """A freshly initialised model from the ``model`` part of a recipe."""
    spec = dict(rec["model"])
    arch = spec.pop("arch")
    if arch == "vit":
        return VisionTransformer(ViTConfig(**spec))
    if arch == "deit":
        from ..deit import DistilledVisionTransformer

        return DistilledVisionTransformer(ViTConfig(**spec))
    if arch == "resnet":
        from ..cnn import ResNet

        return ResNet(**spec)
    if arch == "mae":
        from ..mae import MaskedAutoencoder

        return MaskedAutoencoder(ViTConfig(**spec["encoder"]), **spec["decoder"])
    if arch == "box_regressor":
        from ..vlm_runs import build_box_regressor

        return build_box_regressor(spec)
    if arch == "clip":
        from ..clip_runs import build_clip

        return build_clip(spec)
    if arch == "vlm_head":  # the trainable part of a VLM on a frozen ViT
        from ..vlm_runs import build_head

        return build_head(spec)
    raise ValueError(
        f"unknown architecture {arch!r} in recipe "
        "(use 'vit', 'deit', 'resnet', 'mae', 'clip', 'vlm_head' or 'box_regressor')"
    )


@preserved_rng()  # seeds with the recipe's seed inside; the caller's random streams are left as they were
def train(
    rec: dict,
    device: str | torch.device | None = None,
    progress: bool = True,
    desc: str = "zoo",
    cache: str | Path | None = None,
    state_path: str | Path | None = None,
) -> tuple[nn.Module, dict, History]:
    """Train a recipe from scratch: ``(model, metrics, history)``. A teacher comes from :func:`get`."""
    from .. import data as fdata

    device = torch.device(device) if device is not None else get_device()
    d, t = rec["data"], rec["train"]
    if d.get("dataset") != "fashion_mnist":
        raise ValueError(f"unknown dataset {d.get('dataset')!r} in recipe")
    seed_everything(rec.get("seed", 0))
    model = build_model(rec)
    train_loader = fdata.make_loader(
        "train",
        n=d.get("n_train"),
        batch_size=d["batch_size"],
        device=device,
        seed=rec.get("seed", 0),
        augment=bool(d.get("augment", False)),
    )
    loss_fn = None
    if rec["model"]["arch"] == "deit":
        from ..deit import hard_distillation_loss

        if rec.get("teacher_shipped"):
            from ..shipped import load

            teacher = load(rec["teacher_shipped"], device=device).model
        else:
            from .store import get  # the cache trains through this function: imported on use

            teacher = get(rec["teacher"], device=device, progress=progress, cache=cache).model
        loss_fn = hard_distillation_loss(teacher, label_smoothing=t.get("label_smoothing", 0.0))
    n_test = d.get("n_test")
    test_loader = fdata.make_loader("test", n=n_test, batch_size=1000, device=device)
    eval_loader = test_loader if d.get("eval_every_epoch") else None
    hist = fit(
        model,
        train_loader,
        device=device,
        progress=progress,
        desc=desc,
        loss_fn=loss_fn,
        eval_loader=eval_loader,
        state_path=state_path,
        **t,
    )
    ev = evaluate(model, test_loader, device)
    metrics = {
        "test_acc": ev["acc"],
        "test_loss": ev["loss"],
        "train_seconds": hist.seconds,
        "images_per_second": hist.images_per_second,
        "device": device.type,
    }
    return model.eval(), metrics, hist
