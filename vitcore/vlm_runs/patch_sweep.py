"""Chapter 13's patch-size sweep: small ViTs trained from scratch to regress the box of one item."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..device import preserved_rng
from ..grounding import BoxRegressor, ReferringData, localisation_metrics
from ..vit import VisionTransformer
from .common import _composer, _settings, _timed


def build_box_regressor(spec: dict) -> BoxRegressor:
    """Chapter 13's patch-size sweep model: a ViT trained from scratch whose CLS token an MLP reads
    into one box (:class:`~vitcore.grounding.BoxRegressor`, no instruction)."""
    from ..vit import ViTConfig

    vit = VisionTransformer(
        ViTConfig(
            img_size=spec["img_size"],
            patch_size=spec["patch_size"],
            in_chans=3,
            num_classes=0,
            embed_dim=spec["embed_dim"],
            depth=spec["depth"],
            num_heads=spec["num_heads"],
            mlp_ratio=spec["mlp_ratio"],
        )
    )
    return BoxRegressor(vit)


def single_object_data(rec: dict, quick: bool = False) -> tuple[ReferringData, ReferringData]:
    """One item per scene on a black canvas, its box the target: training scenes from Fashion-MNIST's
    training images, held-out ones from its test images (chapter 13's sweep)."""
    d = rec["data"]

    def examples(split: str, n: int, seed: int) -> ReferringData:
        s = _composer(d, split, background="black").sample(n, num_objects=1, seed=seed)
        return ReferringData(
            ["find the object"] * n, s.boxes[:, 0], torch.zeros(n, dtype=torch.long), torch.arange(n), s
        )

    return (
        examples("train", 128 if quick else d["n_train"], d["train_seed"]),
        examples("test", 64 if quick else d["n_test"], d["test_seed"]),
    )


@preserved_rng()  # seeded with the recipe's seed inside; the caller's random streams are left as they were
def train_patch_sweep(
    rec: dict, device: torch.device, state_path: Path | None, progress: bool = True, quick: bool = False
) -> tuple[nn.Module, dict, dict]:
    """Train one patch size of chapter 13's sweep: ``(model, metrics, history)``."""
    from ..device import seed_everything
    from ..grounding import train_regressor

    train, test = single_object_data(rec, quick)
    seed_everything(rec.get("seed", 0))
    model = build_box_regressor(rec["model"]).to(device)
    epochs = 1 if quick else rec["train"]["epochs"]
    desc = f"patch {rec['model']['patch_size']}"
    losses, seconds, history = _timed(
        lambda: train_regressor(model, train, epochs=epochs, desc=desc, **_settings(rec, progress))
    )
    model = model.cpu().eval()  # the manifest's metrics: float32 on the CPU
    with torch.no_grad():
        pred = model(test.images)
    metrics: dict[str, Any] = {k: float(v) for k, v in localisation_metrics(pred, test.boxes).items()}
    metrics.update(
        train_seconds=seconds,
        n_train=len(train),
        n_test=len(test),
        device=device.type,
        tokens=model.vision.patch_embed.num_patches,
    )
    return model, metrics, history
