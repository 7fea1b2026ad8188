"""One garment per scene (chapters 10 and 11): a harder data set for self-supervised learning.

Fashion-MNIST's garments are centred, upright, grey and all the same size, so their raw pixels are
already a near-perfect representation for a nearest-neighbour classifier: no self-supervised method
can show there what it learns. Here each image is one Fashion-MNIST item at a random position, size
and colour on a random background, and the label is still the garment class. Pixels and a random
network are weak on it; what separates the classes is the item's *shape*, wherever it sits and
whatever its colour: exactly the invariances that DINO's crops and colour changes, or MAE's
filling-in of hidden patches, can learn.

>>> images, labels = item_scenes("train", 1000, seed=0)  # (1000, 3, 32, 32) in [0, 1], (1000,)
>>> x = normalise_scenes(images)                          # per-channel mean 0, std 1 (about)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .composer import SceneComposer
from .spec import COLOURS, Scenes

__all__ = ["ITEM_SCENES", "SCENE_MEAN", "SCENE_STD", "compose_item_scenes", "item_scenes", "normalise_scenes"]

# The settings every item-scene run shares: 32 x 32 canvases, items 14 to 26 pixels across in
# any of the eight tints, on a black, grey or noise background.
ITEM_SCENES: dict = dict(
    canvas_size=32, object_size=(14, 26), colours=tuple(COLOURS), background=("black", "gray", "noise")
)

# Per-channel mean and std of such scenes (measured on 20,000 training scenes, rounded), so that
# normalised scenes have about mean 0 and std 1 in every channel, as the Fashion-MNIST runs do.
SCENE_MEAN: tuple[float, float, float] = (0.289, 0.288, 0.276)
SCENE_STD: tuple[float, float, float] = (0.253, 0.240, 0.252)


def compose_item_scenes(
    split: str, n: int, seed: int, background: Sequence[str] | None = None, object_size: tuple[int, int] | None = None
) -> Scenes:
    """The :class:`Scenes` behind :func:`item_scenes`: the same images, with each scene's colour,
    box and background name (for analyses such as "which neighbours share the query's colour")."""
    from ..data import load_fashion_mnist

    items, labels = load_fashion_mnist(split)
    settings = dict(ITEM_SCENES, background=list(background if background is not None else ITEM_SCENES["background"]))
    if object_size is not None:
        settings["object_size"] = object_size
    composer = SceneComposer(items.numpy(), labels.numpy(), **settings)
    return composer.sample(n, num_objects=1, seed=seed)


def item_scenes(
    split: str, n: int, seed: int, background: Sequence[str] | None = None, object_size: tuple[int, int] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` scenes of one item each, drawn from the Fashion-MNIST ``split`` ("train" or "test").

    Returns ``(images (n, 3, 32, 32) float in [0, 1], labels (n,) int64)``: the label is the
    garment's class (``vitcore.data.CLASSES``). The same ``(split, n, seed)`` gives the same scenes;
    test-split scenes contain only garments no training scene shows. ``background`` and
    ``object_size`` override ``ITEM_SCENES``.
    """
    scenes = compose_item_scenes(split, n, seed, background, object_size)
    return scenes.images, scenes.labels[:, 0].clone()


def normalise_scenes(images: torch.Tensor) -> torch.Tensor:
    """Scenes ``(B, 3, H, W)`` in [0, 1] -> per-channel ``(x - SCENE_MEAN) / SCENE_STD``."""
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected RGB scenes (B, 3, H, W), got shape {tuple(images.shape)}")
    mean = torch.tensor(SCENE_MEAN, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(SCENE_STD, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    return (images - mean) / std
