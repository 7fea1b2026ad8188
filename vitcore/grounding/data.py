"""Referring-expression data (chapter 13): composed scenes, one instruction per scene such as
"find the red bag", and the target's exact box."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import numpy as np
import torch

from ..scenes import ObjectSpec, SceneComposer, Scenes, referring_expression


@dataclass
class ReferringData:
    """Examples ``(image, instruction, box)``: ``instructions``; ``boxes`` ``(B, 4)`` long pixel
    boxes of the targets; ``target`` ``(B,)`` the target's object index in its scene;
    ``scene_index`` ``(B,)`` the row of ``scenes`` holding the example's image (several
    examples may share one scene, so a frozen encoder runs once per scene)."""

    instructions: list[str]
    boxes: torch.Tensor
    target: torch.Tensor
    scene_index: torch.Tensor
    scenes: Scenes

    def __len__(self) -> int:
        return len(self.instructions)

    @property
    def images(self) -> torch.Tensor:
        """``(B, 3, H, W)``: the image of every example (a copy when scenes are shared)."""
        if len(self.scene_index) == len(self.scenes) and torch.equal(self.scene_index, torch.arange(len(self.scenes))):
            return self.scenes.images  # one example per scene: no copy
        return self.scenes.images[self.scene_index]

    def batch_images(self, idx: torch.Tensor) -> torch.Tensor:
        """The images of examples ``idx`` without gathering all of them."""
        return self.scenes.images[self.scene_index[idx]]

    @property
    def image_size(self) -> tuple[int, int]:
        return cast(tuple[int, int], tuple(self.scenes.images.shape[-2:]))  # images: (N, C, H, W)


def make_referring_dataset(
    composer: SceneComposer,
    n: int,
    seed: int = 0,
    same_kind: float = 0.7,
    extra_objects: tuple[int, int] = (0, 1),
    every_object: bool = False,
) -> ReferringData:
    """``n`` scenes, each with a target, a same-kind distractor (probability ``same_kind``, in another
    colour half the time, else the same colour so only its place tells them apart) and
    ``extra_objects`` (min, max) objects of other kinds. The instruction is ``"find "`` + the
    shortest unambiguous :func:`~vitcore.scenes.referring_expression` of the target.

    With ``every_object`` each scene also gives one example for every other object that has an
    unambiguous expression (more examples per image, at no extra encoder cost)."""
    if n < 1:
        raise ValueError(f"n must be positive, got {n}")
    n_cls, n_col = composer.n_item_classes, len(composer.colour_names)
    if n_cls < 2:
        raise ValueError("the composer needs Fashion-MNIST items of at least two classes")

    def spec_fn(rng: np.random.Generator) -> list[ObjectSpec]:
        c, a = int(rng.integers(n_cls)), int(rng.integers(n_col))
        objs = [ObjectSpec(label=c, colour=a)]
        if rng.random() < same_kind:
            b = a if rng.random() < 0.5 else int((a + rng.integers(1, n_col)) % n_col) if n_col > 1 else a
            objs.append(ObjectSpec(label=c, colour=b))
        others = [k for k in range(n_cls) if k != c]
        for _ in range(int(rng.integers(extra_objects[0], extra_objects[1] + 1))):
            objs.append(ObjectSpec(label=int(rng.choice(others)), colour=int(rng.integers(n_col))))
        return objs

    instr, boxes, target, scene_index = [], [], [], []
    keep: list[tuple[Scenes, int]] = []  # (batch of scenes, index in it)
    rng = np.random.default_rng(seed)
    need, rounds = n, 0
    while need > 0:
        rounds += 1
        if rounds > 20:
            raise ValueError("could not find enough scenes with an unambiguous referring expression")
        s = composer.sample(need + need // 4 + 4, seed=int(rng.integers(2**31)), spec_fn=spec_fn)
        for i in range(len(s)):
            expr = referring_expression(s, i, 0)
            if expr is None or need == 0:
                continue
            for k in range(int(s.num_objects[i]) if every_object else 1):
                e = expr if k == 0 else referring_expression(s, i, k)
                if e is None:
                    continue
                instr.append(f"find {e}")
                boxes.append(s.boxes[i, k])
                target.append(k)
                scene_index.append(len(keep))
            keep.append((s, i))
            need -= 1
    # One Scenes object for all kept scenes (re-indexed), so objects(i) matches example i.
    k_max = max(int(sc.num_objects[i]) for sc, i in keep)

    def stack(attr: str, fill: int) -> torch.Tensor:
        rows = []
        for sc, i in keep:
            t = getattr(sc, attr)[i]
            if attr in ("boxes", "labels", "colours") and t.shape[0] < k_max:
                pad = torch.full((k_max - t.shape[0],) + tuple(t.shape[1:]), fill, dtype=t.dtype)
                t = torch.cat([t, pad])
            rows.append(t)
        return torch.stack(rows)

    first = keep[0][0]
    scenes = Scenes(
        images=torch.stack([sc.images[i] for sc, i in keep]),
        boxes=stack("boxes", -1),
        labels=stack("labels", -1),
        colours=stack("colours", -1),
        instance_masks=stack("instance_masks", 0),
        semantic_masks=stack("semantic_masks", 0),
        num_objects=torch.tensor([int(sc.num_objects[i]) for sc, i in keep]),
        class_names=first.class_names,
        colour_names=first.colour_names,
        backgrounds=[sc.backgrounds[i] for sc, i in keep],
    )
    return ReferringData(instr, torch.stack(boxes), torch.tensor(target), torch.tensor(scene_index), scenes)
