"""What scenes are made of, besides Fashion-MNIST items: Tux Paint stamps (RGBA pictures with
English captions) and background textures from ``skimage.data`` (chapters 9, 12, 13, 15)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

# skimage.data images that make good backgrounds (grey ones are repeated into RGB).
TEXTURES: tuple[str, ...] = ("brick", "grass", "gravel", "coffee", "rocket", "chelsea", "astronaut", "camera")

STAMP_DIR = Path("/usr/share/tuxpaint/stamps")
_PLAIN = {"black": (0.0, 0.0, 0.0), "white": (1.0, 1.0, 1.0), "gray": (0.5, 0.5, 0.5)}


@dataclass
class Stamp:
    """A Tux Paint stamp: RGB ``(h, w, 3)`` float in [0, 1], a boolean mask ``(h, w)``, a name, a caption."""

    rgb: np.ndarray
    mask: np.ndarray
    name: str
    caption: str
    path: Path


def _stamp_name(path: Path) -> str:
    """``frog-1.png`` -> ``frog``; ``adelaide-rosella.png`` -> ``adelaide rosella``."""
    stem = path.stem.lower().replace("_", " ").replace("-", " ")
    words = [w for w in stem.split() if not w.isdigit()]
    return " ".join(words) or path.stem


def load_stamps(
    categories: Sequence[str] | None = None,
    names: Sequence[str] | None = None,
    size: int = 32,
    root: str | Path | None = None,
    limit: int | None = None,
) -> list[Stamp]:
    """Tux Paint stamps under ``root/<category>/...``, shrunk so the longer side is ``size`` px.

    ``root`` defaults to the first stamps folder :func:`vitcore.assets.find_stamps` finds
    (``$VITCORE_STAMPS``, the data folder, the Debian package's ``STAMP_DIR``, the cache).

    ``categories``: top-level folders such as ``("animals", "food")`` (default: all); ``names``:
    keep only stamps whose name is in this list. The caption is the first line of the ``.txt``
    file beside the picture (its English text), or the name when there is none.
    """
    from PIL import Image

    if root is None:
        from ..assets import _HOW_TO_GET, find_stamps, stamp_dirs

        found = find_stamps()
        if found is None:
            tried = ", ".join(str(d) for d, _ in stamp_dirs())
            raise ValueError(f"no Tux Paint stamps found (looked in {tried}). {_HOW_TO_GET}")
        root = found
    root = Path(root)
    if not root.is_dir():
        raise ValueError(
            f"no Tux Paint stamps at {root}; install the Debian package tuxpaint-stamps-default "
            "or run `python -m vitcore.assets fetch`"
        )
    folders = [root / c for c in categories] if categories else [root]
    for f in folders:
        if not f.is_dir():
            known = sorted(p.name for p in root.iterdir() if p.is_dir())
            raise ValueError(f"no stamp category {f.name!r}; choose from {known}")
    paths = sorted(p for f in folders for p in f.rglob("*.png"))
    stamps: list[Stamp] = []
    for p in paths:
        name = _stamp_name(p)
        if names is not None and name not in names:
            continue
        img = Image.open(p).convert("RGBA")
        img.thumbnail((size, size), Image.Resampling.LANCZOS)
        arr = np.asarray(img, dtype=np.float32) / 255.0  # (h, w, 4)
        mask = arr[..., 3] > 0.5
        if not mask.any():
            continue
        ys, xs = np.nonzero(mask)
        sl = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
        txt = p.with_suffix(".txt")
        cap = txt.read_text(encoding="utf-8", errors="replace").splitlines()[0].strip() if txt.is_file() else name
        stamps.append(Stamp(np.ascontiguousarray(arr[sl][..., :3]), mask[sl].copy(), name, cap, p))
        if limit is not None and len(stamps) >= limit:
            break
    if not stamps:
        raise ValueError(f"no stamps matched categories={categories} names={names} under {root}")
    return stamps


@functools.lru_cache(maxsize=16)
def _texture(name: str) -> np.ndarray:
    import skimage.data

    if name not in TEXTURES:
        raise ValueError(f"unknown texture {name!r}; choose from {TEXTURES}")
    img = getattr(skimage.data, name)().astype(np.float32) / 255.0
    return np.repeat(img[..., None], 3, -1) if img.ndim == 2 else img[..., :3]


def load_texture(name: str, scale: float = 0.25) -> np.ndarray:
    """A ``skimage.data`` image as float RGB ``(H, W, 3)``, shrunk by ``scale`` (so crops show structure)."""
    img = torch.from_numpy(_texture(name)).permute(2, 0, 1)[None]  # (1, 3, H, W)
    h, w = max(1, round(img.shape[2] * scale)), max(1, round(img.shape[3] * scale))
    img = F.interpolate(img, size=(h, w), mode="bilinear", antialias=True, align_corners=False)
    return img[0].permute(1, 2, 0).clamp(0, 1).numpy()
