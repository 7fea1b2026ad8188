"""Where the objects of a scene go (chapters 9, 12, 13, 15): top-left corners on the canvas, each
drawn at random among the free positions, so that objects keep a gap or, if allowed, overlap."""

from __future__ import annotations

import numpy as np


def place(
    shapes: list[tuple[int, int]],
    fixed: list,
    rng: np.random.Generator,
    canvas: tuple[int, int],
    allow_overlap: bool = False,
    min_gap: int = 1,
    max_tries: int = 100,
) -> list[tuple[int, int]]:
    """Top-left corners ``(x, y)`` for sprites of ``shapes`` (h, w) on a ``canvas`` of (h, w) pixels;
    ``fixed[k]`` an (x, y) or None.

    Without overlap, objects go in one at a time (biggest first), each at a position drawn
    uniformly among all positions that keep ``min_gap`` pixels from those already placed; after
    ``max_tries`` failed rounds it is a ``ValueError``.
    """
    ch, cw = canvas
    for h, w in shapes:
        if h > ch or w > cw:
            raise ValueError(f"an object of {h}x{w}px does not fit on a {ch}x{cw} canvas")
    for (h, w), xy in zip(shapes, fixed):
        if xy is not None and not (0 <= xy[0] <= cw - w and 0 <= xy[1] <= ch - h):
            raise ValueError(f"position {xy} puts a {h}x{w} object outside the {ch}x{cw} canvas")
    fixed_boxes = [(xy[0], xy[1], xy[0] + w, xy[1] + h) for (h, w), xy in zip(shapes, fixed) if xy is not None]
    if not allow_overlap and not disjoint(fixed_boxes, min_gap):
        raise ValueError(f"the fixed positions {fixed} make objects overlap and allow_overlap is False")
    free_ks = sorted((k for k in range(len(shapes)) if fixed[k] is None), key=lambda k: -shapes[k][0] * shapes[k][1])
    g = min_gap
    for _ in range(max_tries):
        corners: list = list(fixed)
        placed = list(fixed_boxes)
        for k in free_ks:
            h, w = shapes[k]
            ok = np.ones((ch - h + 1, cw - w + 1), bool)  # allowed top-left corners
            if not allow_overlap:
                for x1, y1, x2, y2 in placed:
                    ok[max(0, y1 - h - g + 1) : max(0, y2 + g), max(0, x1 - w - g + 1) : max(0, x2 + g)] = False
            ys, xs = np.nonzero(ok)
            if len(ys) == 0:
                break
            j = rng.integers(len(ys))
            corners[k] = (int(xs[j]), int(ys[j]))
            placed.append((corners[k][0], corners[k][1], corners[k][0] + w, corners[k][1] + h))
        else:
            return corners
    area = sum(h * w for h, w in shapes)
    raise ValueError(
        f"could not place {len(shapes)} objects ({area} px of boxes) on a {ch}x{cw} canvas without "
        f"overlap in {max_tries} tries; use fewer or smaller objects, a bigger canvas, or allow_overlap=True"
    )


def disjoint(boxes: list[tuple[int, int, int, int]], gap: int) -> bool:
    """Whether no two ``(x1, y1, x2, y2)`` boxes come closer than ``gap`` pixels."""
    for a in range(len(boxes)):
        for b in range(a + 1, len(boxes)):
            p, q = boxes[a], boxes[b]
            if p[0] < q[2] + gap and q[0] < p[2] + gap and p[1] < q[3] + gap and q[1] < p[3] + gap:
                return False
    return True
