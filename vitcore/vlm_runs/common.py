"""What the chapter 12 and 13 VLM runs share: the trainable head (connector + small LM) of a
recipe, putting it back on the frozen ViT-S/14, and the ViT's tokens of every scene, computed once
and kept in the run's state folder."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import torch
from torch import nn

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
    vit.eval()
    out = []
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
    interrupted run of the same recipe left them there (else computed, then saved there)."""
    if state_path is not None and state_path.is_file():
        cached = torch.load(state_path, map_location="cpu", weights_only=True)
        return cached["train"], cached["test"]
    f_train = vit_tokens(vit, train_images, layers, progress=progress, desc="ViT tokens, training")
    f_test = vit_tokens(vit, test_images, layers, progress=progress, desc="ViT tokens, held out")
    if state_path is not None:
        state_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = state_path.with_suffix(".tmp")
        torch.save({"train": f_train, "test": f_test}, tmp)
        tmp.replace(state_path)
    return f_train, f_test
