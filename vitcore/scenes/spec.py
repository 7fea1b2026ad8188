"""What goes into a composed scene and what comes out (chapters 9, 12, 13, 15): the named tints,
Fashion-MNIST's class names, ``ObjectSpec`` (one object to paste) and ``Scenes`` (a batch of
images with their boxes, labels and masks)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

# Named tints (RGB in [0, 1]); an item is drawn as ``tint * shade`` with shade from its own pixels.
COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.95, 0.12, 0.10),
    "green": (0.15, 0.80, 0.20),
    "blue": (0.20, 0.40, 1.00),
    "yellow": (0.98, 0.90, 0.10),
    "white": (1.00, 1.00, 1.00),
    "orange": (1.00, 0.55, 0.05),
    "purple": (0.65, 0.25, 0.90),
    "cyan": (0.10, 0.90, 0.95),
}

# Fashion-MNIST's ten classes as words that read well in a caption ("a red t-shirt").
FASHION_NAMES: tuple[str, ...] = (
    "t-shirt",
    "trousers",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle boot",
)


@dataclass
class ObjectSpec:
    """What to paste; ``None`` fields are drawn at random.

    ``label``: class index into ``SceneComposer.class_names`` (Fashion-MNIST classes first,
    then stamp names); ``colour``: index into ``SceneComposer.colour_names`` (ignored for
    stamps, which keep their own colours); ``size``: side of the object's frame in pixels;
    ``xy``: top-left corner of its tight box on the canvas; ``item``: which image of that class.
    """

    label: int | None = None
    colour: int | None = None
    size: int | None = None
    xy: tuple[int, int] | None = None
    item: int | None = None


@dataclass
class Scenes:
    """A batch of composed scenes. ``K`` is the largest number of objects; padding rows hold -1.

    - ``images`` ``(B, 3, H, W)`` float in [0, 1]
    - ``boxes`` ``(B, K, 4)`` long, tight ``(x1, y1, x2, y2)`` of each object's visible pixels
    - ``labels``, ``colours`` ``(B, K)`` long (colour -1: a stamp in its own colours)
    - ``instance_masks`` ``(B, H, W)`` long: 0 background, ``k + 1`` for object ``k``
    - ``semantic_masks`` ``(B, H, W)`` long: 0 background, ``label + 1``
    - ``num_objects`` ``(B,)``; ``backgrounds``: the background name of each scene
    """

    images: torch.Tensor
    boxes: torch.Tensor
    labels: torch.Tensor
    colours: torch.Tensor
    instance_masks: torch.Tensor
    semantic_masks: torch.Tensor
    num_objects: torch.Tensor
    class_names: tuple[str, ...]
    colour_names: tuple[str, ...]
    backgrounds: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return self.images.shape[0]

    def objects(self, i: int) -> list[dict]:
        """The objects of scene ``i`` as dicts (label, name, colour, colour_name, box, centre)."""
        out = []
        for k in range(int(self.num_objects[i])):
            lab, col = int(self.labels[i, k]), int(self.colours[i, k])
            x1, y1, x2, y2 = self.boxes[i, k].tolist()
            out.append(
                dict(
                    label=lab,
                    name=self.class_names[lab],
                    colour=col,
                    colour_name=self.colour_names[col] if col >= 0 else None,
                    box=(x1, y1, x2, y2),
                    centre=((x1 + x2) / 2, (y1 + y2) / 2),
                )
            )
        return out
