"""Chapter 13's patch-size sweep: small ViTs trained from scratch to regress the box of one item."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..grounding import BoxRegressor, ReferringData, localisation_metrics
from ..scenes import SceneComposer
from ..vit import VisionTransformer


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
    from ..data import load_fashion_mnist

    d = rec["data"]
    kw = dict(
        canvas_size=d["canvas_size"],
        object_size=tuple(d["object_size"]),
        colours=tuple(d["colours"]),
        background="black",
    )

    def examples(split: str, items: int, n: int, seed: int) -> ReferringData:
        x, y = load_fashion_mnist(split)
        s = SceneComposer(x[:items].numpy(), y[:items].numpy(), **kw).sample(n, num_objects=1, seed=seed)
        return ReferringData(
            ["find the object"] * n, s.boxes[:, 0], torch.zeros(n, dtype=torch.long), torch.arange(n), s
        )

    return (
        examples("train", d["train_items"], 128 if quick else d["n_train"], d["train_seed"]),
        examples("test", d["test_items"], 64 if quick else d["n_test"], d["test_seed"]),
    )


def train_patch_sweep(
    rec: dict, device: torch.device, state_path: Path | None, progress: bool = True, quick: bool = False
) -> tuple[nn.Module, dict, dict]:
    """Train one patch size of chapter 13's sweep: ``(model, metrics, history)``."""
    from ..device import seed_everything
    from ..grounding import train_regressor

    t = rec["train"]
    train, test = single_object_data(rec, quick)
    seed_everything(rec.get("seed", 0))
    model = build_box_regressor(rec["model"]).to(device)
    t0 = time.perf_counter()
    losses = train_regressor(
        model,
        train,
        epochs=1 if quick else t["epochs"],
        batch_size=t["batch_size"],
        lr=t["lr"],
        seed=rec.get("seed", 0),
        progress=progress,
        desc=f"patch {rec['model']['patch_size']}",
        decay_all=t.get("decay_all", False),
    )
    seconds = time.perf_counter() - t0
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
    history = {"step_loss": [round(x, 4) for x in losses], "seconds": seconds}
    return model, metrics, history
