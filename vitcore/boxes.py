"""Boxes as numbers and as text, for grounding (Pix2Seq; Qwen-VL).

A box is ``(x1, y1, x2, y2)`` in pixels, top-left inclusive corner to bottom-right corner.
A language model writes it as text on a fixed integer grid: Qwen-VL normalises coordinates to
``0..1000`` and writes ``<box>(x1,y1,x2,y2)</box>``; Pix2Seq quantises them into bins.
"""

from __future__ import annotations

import re

import torch

__all__ = [
    "BoxParseError",
    "box_area",
    "box_iou",
    "generalized_box_iou",
    "quantize_box",
    "dequantize_box",
    "format_box",
    "parse_box",
    "accuracy_at_iou",
]

GRID = 1000  # Qwen-VL's coordinate grid
_BOX_RE = re.compile(
    r"<box>\((-?\d+),(-?\d+)\),?\((-?\d+),(-?\d+)\)</box>|<box>\((-?\d+),(-?\d+),(-?\d+),(-?\d+)\)</box>"
)


class BoxParseError(ValueError):
    """Generated text that does not hold one well-formed box."""


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """``(..., 4) -> (...)``; degenerate boxes have area 0."""
    return (boxes[..., 2] - boxes[..., 0]).clamp(min=0) * (boxes[..., 3] - boxes[..., 1]).clamp(min=0)


def _inter_union(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    lt = torch.maximum(a[..., :2], b[..., :2])
    rb = torch.minimum(a[..., 2:], b[..., 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    return inter, box_area(a) + box_area(b) - inter


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Element-wise intersection over union of matching boxes ``(..., 4)``."""
    inter, union = _inter_union(a.float(), b.float())
    return inter / union.clamp(min=1e-9)


def generalized_box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """GIoU (Rezatofighi et al., 2019): IoU minus the empty share of the enclosing box, in [-1, 1]."""
    a, b = a.float(), b.float()
    inter, union = _inter_union(a, b)
    iou = inter / union.clamp(min=1e-9)
    hull = torch.cat([torch.minimum(a[..., :2], b[..., :2]), torch.maximum(a[..., 2:], b[..., 2:])], dim=-1)
    hull_area = box_area(hull).clamp(min=1e-9)
    return iou - (hull_area - union) / hull_area


def accuracy_at_iou(pred: torch.Tensor, target: torch.Tensor, threshold: float = 0.5) -> float:
    """Share of predictions whose IoU with the target is at least ``threshold``."""
    return (box_iou(pred, target) >= threshold).float().mean().item()


def quantize_box(box: torch.Tensor, image_size: tuple[int, int], grid: int = GRID) -> torch.Tensor:
    """Pixel box ``(..., 4)`` in an image of ``(H, W)`` -> integers on a ``0..grid`` grid."""
    h, w = image_size
    scale = torch.tensor([w, h, w, h], dtype=torch.float32, device=box.device)
    # Multiply first: for whole-pixel boxes ``box * grid`` is exact, so a coordinate exactly half
    # way between two grid steps is a true tie, rounded half to even (as Python's round does),
    # instead of whichever way the rounding error of ``box / scale`` happens to point.
    return (box.float() * grid / scale).round().clamp(0, grid).long()


def dequantize_box(qbox: torch.Tensor, image_size: tuple[int, int], grid: int = GRID) -> torch.Tensor:
    """Inverse of :func:`quantize_box` up to the grid's resolution: back to pixels."""
    h, w = image_size
    scale = torch.tensor([w, h, w, h], dtype=torch.float32, device=qbox.device)
    return qbox.float() / grid * scale


def format_box(qbox: torch.Tensor | tuple[int, int, int, int]) -> str:
    """``(x1, y1, x2, y2)`` integers -> ``"<box>(x1,y1,x2,y2)</box>"``."""
    x1, y1, x2, y2 = (int(v) for v in (qbox.tolist() if isinstance(qbox, torch.Tensor) else qbox))
    return f"<box>({x1},{y1},{x2},{y2})</box>"


def parse_box(text: str, grid: int = GRID) -> tuple[int, int, int, int]:
    """Read the one box in generated ``text``; raise :class:`BoxParseError` if there is none,
    more than one, coordinates outside ``0..grid``, or corners in the wrong order.

    Accepts ``<box>(x1,y1,x2,y2)</box>`` and Qwen-VL's ``<box>(x1,y1),(x2,y2)</box>``.
    """
    matches = list(_BOX_RE.finditer(text.replace(" ", "")))
    if not matches:
        raise BoxParseError(f"no <box>(x1,y1,x2,y2)</box> in {text!r}")
    if len(matches) > 1:
        raise BoxParseError(f"expected one box, found {len(matches)} in {text!r}")
    digits = [v for v in matches[0].groups() if v is not None]
    if any(len(v.lstrip("-")) > len(str(grid)) + 1 for v in digits):  # too long to be on the grid
        raise BoxParseError(
            f"coordinates outside the 0..{grid} grid in {text[:80]!r}"
            + (f"... ({len(text)} characters)" if len(text) > 80 else "")
        )
    values = tuple(int(v) for v in digits)
    x1, y1, x2, y2 = values
    if not all(0 <= v <= grid for v in values):
        raise BoxParseError(f"coordinates {values} outside the 0..{grid} grid in {text!r}")
    if x2 <= x1 or y2 <= y1:
        raise BoxParseError(f"box {values} has x2 <= x1 or y2 <= y1 in {text!r}")
    return x1, y1, x2, y2
