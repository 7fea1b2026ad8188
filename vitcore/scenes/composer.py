"""The scene composer (chapters 9, 12, 13, 15): tinted Fashion-MNIST items and stamps pasted onto a
canvas or a photo, with exact boxes and instance and semantic masks. What goes in and comes out is
in ``vitcore.scenes.spec``, where the objects go in ``vitcore.scenes.placement``."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .placement import place
from .sources import _PLAIN, TEXTURES, Stamp, _texture, load_texture
from .spec import COLOURS, FASHION_NAMES, ObjectSpec, Scenes


class SceneComposer:
    """Pastes tinted Fashion-MNIST items (and optional stamps) onto backgrounds; seeded and fast.

    ``items`` ``(N, 28, 28)`` uint8 with ``item_labels`` ``(N,)`` (e.g. from
    :func:`vitcore.data.load_fashion_mnist`); ``stamps`` from :func:`load_stamps`.
    ``background``: ``"black"``, ``"white"``, ``"gray"``, ``"noise"``, a name from ``TEXTURES``,
    or a list of these (one drawn per scene). ``object_size``: (min, max) side of an item's frame.
    ``allow_overlap=False`` keeps objects ``min_gap`` pixels apart (so none is hidden);
    with overlap allowed later objects cover earlier ones and boxes shrink to what stays visible.
    """

    def __init__(
        self,
        items: torch.Tensor | np.ndarray | None = None,
        item_labels: torch.Tensor | np.ndarray | None = None,
        class_names: Sequence[str] = FASHION_NAMES,
        stamps: Sequence[Stamp] = (),
        canvas_size: int | tuple[int, int] = 64,
        object_size: tuple[int, int] = (20, 32),
        colours: Sequence[str] = ("red", "green", "blue", "yellow", "white"),
        background: str | Sequence[str] = "black",
        threshold: int = 40,
        allow_overlap: bool = False,
        min_gap: int = 1,
        min_visible: int = 8,
        max_tries: int = 100,
    ) -> None:
        self.h, self.w = (canvas_size, canvas_size) if isinstance(canvas_size, int) else tuple(canvas_size)
        lo, hi = object_size
        if not 4 <= lo <= hi:
            raise ValueError(f"object_size must be (min, max) with 4 <= min <= max, got {object_size}")
        if hi > min(self.h, self.w):
            raise ValueError(f"objects of up to {hi}px do not fit on a {self.h}x{self.w} canvas; lower object_size")
        self.object_size = (lo, hi)
        if items is None and not stamps:
            raise ValueError("give items (Fashion-MNIST images with labels) or stamps, or both")
        self.items = np.asarray(items if items is not None else np.zeros((0, 28, 28), np.uint8))
        if self.items.dtype != np.uint8 or self.items.ndim != 3:
            raise ValueError(f"items must be uint8 (N, H, W), got {self.items.dtype} {self.items.shape}")
        labels = np.asarray(item_labels if item_labels is not None else np.zeros(0, np.int64)).astype(np.int64)
        if len(labels) != len(self.items):
            raise ValueError(f"{len(self.items)} items but {len(labels)} labels")
        n_item_classes = len(class_names) if len(self.items) else 0
        if len(labels) and labels.max() >= len(class_names):
            raise ValueError(f"item label {labels.max()} has no name in class_names ({len(class_names)} names)")
        self.stamps = list(stamps)
        self.class_names = tuple(class_names)[:n_item_classes] + tuple(s.name for s in self.stamps)
        self.n_item_classes = n_item_classes
        self._by_class = [np.nonzero(labels == c)[0] for c in range(n_item_classes)]
        unknown = [c for c in colours if c not in COLOURS]
        if unknown or not colours:
            raise ValueError(f"unknown colours {unknown}; choose from {list(COLOURS)}")
        self.colour_names = tuple(colours)
        self._tints = np.array([COLOURS[c] for c in colours], np.float32)  # (C, 3)
        bgs = [background] if isinstance(background, str) else list(background)
        for b in bgs:
            if b not in _PLAIN and b != "noise" and b not in TEXTURES:
                raise ValueError(f"unknown background {b!r}; choose from {list(_PLAIN) + ['noise'] + list(TEXTURES)}")
        self.backgrounds = bgs
        self._textures = {
            b: load_texture(b, max(0.12, 2.5 * max(self.h, self.w) / min(_texture(b).shape[:2])))
            for b in bgs
            if b in TEXTURES
        }
        self.threshold, self.allow_overlap = threshold, allow_overlap
        self.min_gap, self.min_visible, self.max_tries = min_gap, min_visible, max_tries

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    # ------------------------------------------------------------------ pieces
    def _background(self, name: str, rng: np.random.Generator) -> np.ndarray:
        if name in _PLAIN:
            return np.broadcast_to(np.array(_PLAIN[name], np.float32), (self.h, self.w, 3)).copy()
        if name == "noise":
            return (rng.random((self.h, self.w, 3), dtype=np.float32) * 0.5).astype(np.float32)
        tex = self._textures[name]
        y = rng.integers(0, tex.shape[0] - self.h + 1)
        x = rng.integers(0, tex.shape[1] - self.w + 1)
        return tex[y : y + self.h, x : x + self.w].copy()

    def _sprite(self, spec: ObjectSpec, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, int, int]:
        """Resolve ``spec`` -> (rgb (h, w, 3), mask (h, w) bool, label, colour), cropped tight."""
        label = spec.label if spec.label is not None else int(rng.integers(self.num_classes))
        if not 0 <= label < self.num_classes:
            raise ValueError(f"label {label} out of range 0..{self.num_classes - 1}")
        size = spec.size if spec.size is not None else int(rng.integers(self.object_size[0], self.object_size[1] + 1))
        if not 4 <= size <= min(self.h, self.w):
            raise ValueError(f"object size {size} does not fit on a {self.h}x{self.w} canvas")
        if label < self.n_item_classes:
            pool = self._by_class[label]
            if len(pool) == 0:
                raise ValueError(f"no item of class {label} ({self.class_names[label]!r}) among the items")
            idx = pool[spec.item % len(pool)] if spec.item is not None else pool[rng.integers(len(pool))]
            gt = torch.from_numpy(self.items[idx]).float()[None, None]  # (1, 1, 28, 28)
            if size != gt.shape[-1]:
                gt = F.interpolate(gt, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
            g = gt[0, 0].numpy()
            mask = g > self.threshold
            if not mask.any():
                raise ValueError(f"item {idx} has no pixel above threshold {self.threshold} at size {size}")
            colour = spec.colour if spec.colour is not None else int(rng.integers(len(self.colour_names)))
            if not 0 <= colour < len(self.colour_names):
                raise ValueError(f"colour {colour} out of range 0..{len(self.colour_names) - 1}")
            shade = 0.35 + 0.65 * np.clip(g / 255.0, 0, 1)  # keep the item's own folds and seams
            rgb = shade[..., None] * self._tints[colour]  # (size, size, 3)
        else:
            st = self.stamps[label - self.n_item_classes]
            scale = size / max(st.mask.shape)
            if scale < 1:
                h, w = max(1, round(st.mask.shape[0] * scale)), max(1, round(st.mask.shape[1] * scale))
                t = torch.from_numpy(np.concatenate([st.rgb, st.mask[..., None]], -1)).permute(2, 0, 1)[None]
                t = F.interpolate(t.float(), size=(h, w), mode="bilinear", antialias=True, align_corners=False)[0]
                rgb, mask = t[:3].permute(1, 2, 0).numpy(), t[3].numpy() > 0.5
            else:
                rgb, mask = st.rgb, st.mask
            colour = -1
            if not mask.any():
                raise ValueError(f"stamp {st.name!r} vanishes at size {size}")
        ys, xs = np.nonzero(mask)
        sl = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
        return np.ascontiguousarray(rgb[sl]), mask[sl], label, colour

    # ------------------------------------------------------------------ public
    def compose(
        self, specs: Sequence[Sequence[ObjectSpec]], seed: int = 0, backgrounds: Sequence[str] | None = None
    ) -> Scenes:
        """One scene per list of :class:`ObjectSpec` (exact control over what goes where)."""
        rng = np.random.default_rng(seed)
        b, k_max = len(specs), max((len(s) for s in specs), default=0)
        if b == 0:
            raise ValueError("no scenes requested")
        images = np.empty((b, self.h, self.w, 3), np.float32)
        inst = np.zeros((b, self.h, self.w), np.int64)
        boxes = np.full((b, k_max, 4), -1, np.int64)
        labels = np.full((b, k_max), -1, np.int64)
        colours = np.full((b, k_max), -1, np.int64)
        bg_names = []
        for i, scene in enumerate(specs):
            bg = backgrounds[i] if backgrounds is not None else self.backgrounds[rng.integers(len(self.backgrounds))]
            if bg not in self.backgrounds:
                raise ValueError(f"background {bg!r} was not given to this composer ({self.backgrounds})")
            bg_names.append(bg)
            for _ in range(self.max_tries):
                img = self._background(bg, rng)
                sprites = [self._sprite(s, rng) for s in scene]
                shapes, fixed = [m.shape for _, m, _, _ in sprites], [s.xy for s in scene]
                corners = place(shapes, fixed, rng, (self.h, self.w), self.allow_overlap, self.min_gap, self.max_tries)
                ins = inst[i]
                ins[:] = 0
                for k, ((rgb, mask, lab, col), (x, y)) in enumerate(zip(sprites, corners)):
                    h, w = mask.shape
                    region = img[y : y + h, x : x + w]
                    region[mask] = rgb[mask]
                    ins[y : y + h, x : x + w][mask] = k + 1
                    labels[i, k], colours[i, k] = lab, col
                ok = True
                for k, (x, y) in enumerate(corners):  # tight boxes of what stayed visible
                    h, w = sprites[k][1].shape
                    vis = ins[y : y + h, x : x + w] == k + 1
                    if vis.sum() < self.min_visible:
                        ok = False
                        break
                    rows, cols = np.nonzero(vis.any(1))[0], np.nonzero(vis.any(0))[0]
                    boxes[i, k] = (x + cols[0], y + rows[0], x + cols[-1] + 1, y + rows[-1] + 1)
                if ok:
                    break
            else:
                raise ValueError(f"scene {i}: some object stayed hidden under the others in {self.max_tries} tries")
            images[i] = img
        inst_t = torch.from_numpy(inst)
        labels_t = torch.from_numpy(labels)
        lab_pad = torch.cat([torch.full((b, 1), -1), labels_t], 1)  # index 0 = background
        semantic = torch.gather(lab_pad, 1, inst_t.view(b, -1)).view(b, self.h, self.w) + 1
        return Scenes(
            images=torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(),
            boxes=torch.from_numpy(boxes),
            labels=labels_t,
            colours=torch.from_numpy(colours),
            instance_masks=inst_t,
            semantic_masks=semantic,
            num_objects=torch.tensor([len(s) for s in specs]),
            class_names=self.class_names,
            colour_names=self.colour_names,
            backgrounds=bg_names,
        )

    def sample(
        self,
        n: int,
        num_objects: int | tuple[int, int] = (1, 2),
        seed: int = 0,
        combos: Sequence[tuple[int, int]] | None = None,
        distinct: bool = True,
        spec_fn: Callable[[np.random.Generator], list[ObjectSpec]] | None = None,
    ) -> Scenes:
        """``n`` random scenes with ``num_objects`` (or a (min, max) range of) objects each.

        ``combos``: the allowed ``(label, colour)`` pairs (e.g. to hold some compositions out of
        training; stamps take colour -1); ``distinct``: no two objects of a scene share both
        label and colour (so a caption names each one unambiguously). ``spec_fn(rng)`` replaces
        all of this with your own recipe for one scene.
        """
        if n < 1:
            raise ValueError(f"n must be positive, got {n}")
        lo, hi = (num_objects, num_objects) if isinstance(num_objects, int) else num_objects
        if not 0 <= lo <= hi:
            raise ValueError(f"num_objects must be >= 0 and min <= max, got {num_objects}")
        if combos is None:
            combos = [(c, k) for c in range(self.n_item_classes) for k in range(len(self.colour_names))]
            combos += [(self.n_item_classes + s, -1) for s in range(len(self.stamps))]
        combos = list(combos)
        if not combos:
            raise ValueError("combos is empty")
        if distinct and hi > len(combos):
            raise ValueError(f"{hi} distinct objects requested but only {len(combos)} (label, colour) combinations")
        rng = np.random.default_rng(seed)
        specs = []
        for _ in range(n):
            if spec_fn is not None:
                specs.append(spec_fn(rng))
                continue
            k = int(rng.integers(lo, hi + 1))
            picks = rng.choice(len(combos), size=k, replace=not distinct)
            specs.append(
                [ObjectSpec(label=combos[j][0], colour=combos[j][1] if combos[j][1] >= 0 else None) for j in picks]
            )
        return self.compose(specs, seed=int(rng.integers(2**31)))
