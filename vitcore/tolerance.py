"""How close is close enough: the book's one tolerance rule for comparing two computations.

Two correct implementations of the same function rarely agree to the last bit. Floating-point
addition is not associative, so a matrix product summed in a different order (another batch
size, another CPU kernel, AVX2 vs AVX-512, a fused vs an explicit attention) rounds differently.
The size of that disagreement is predictable from what is compared:

* the **dtype**: its machine epsilon ``eps`` (float32: 1.2e-7, bfloat16: 7.8e-3);
* the **reduction size** ``k``: a sum of ``k`` rounded terms drifts by about ``sqrt(k) * eps``
  relative to its size (the errors behave like a random walk; Higham, *Accuracy and Stability
  of Numerical Algorithms*, 2002, sec. 3.1);
* the **depth** ``L``: every residual block adds its own rounding on top of what came in, so
  after ``L`` blocks the drift grows about ``L`` times.

:func:`tolerance` turns those three into ``rtol = atol = safety * eps * sqrt(k) * L``, and
:func:`assert_close` scales ``atol`` by the size (root mean square) of the expected tensor, so the
same rule works for logits near 10 and for attention weights near 0.01. The safety factor (8)
covers the gap between the random-walk estimate and a worst case seen across CPUs; a real bug
(a wrong scale, a transposed weight, a missing bias) is off by orders of magnitude more.

The rule has a ceiling, ``MAX_TOLERANCE`` (0.1): :func:`assert_close` refuses a comparison
that would need more. At 0.1 each element may already differ by about a fifth of the tensor's
typical size (``rtol`` plus ``atol``); any looser and the bugs the rule exists to catch, off by
about the size of the values themselves, no longer stand out. That refuses bfloat16 for
anything but a few additions (bfloat16 against float32 at ViT-B size would need 41.6): compare
two computations in a common dtype, or a smaller piece of them (one layer instead of twelve).

Exact equality is the right test only where it is guaranteed: the same operations on the same
shapes (a reshape, a gather, integer arithmetic). Chapter 1's ``patchify`` is such a case.

>>> assert_close(hand_built, vitcore_output, reduction=384, depth=12)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["Tolerance", "tolerance", "assert_close", "is_close", "MAX_TOLERANCE"]

SAFETY = 8.0
MAX_TOLERANCE = 0.1  # the loosest rtol (= atol / RMS) that assert_close accepts; see the module docstring


@dataclass(frozen=True)
class Tolerance:
    """``rtol`` and ``atol`` for ``torch.testing.assert_close``; ``atol`` is relative to the
    expected tensor's RMS (see :func:`assert_close`)."""

    rtol: float
    atol: float


def tolerance(
    dtype: torch.dtype = torch.float32, *, reduction: int = 1, depth: int = 1, safety: float = SAFETY
) -> Tolerance:
    """The tolerance for comparing two computations of the same value.

    ``reduction`` is the longest sum one output element goes through (the inner dimension of
    the widest matrix product, e.g. ``mlp_ratio * D``); ``depth`` is how many such layers are
    stacked (the number of blocks). Both must be positive.
    """
    if not dtype.is_floating_point:
        raise ValueError(f"tolerance is for floating-point dtypes; compare {dtype} tensors exactly")
    if reduction < 1 or depth < 1:
        raise ValueError(f"reduction and depth must be >= 1, got reduction={reduction}, depth={depth}")
    if not safety > 0:
        raise ValueError(f"safety must be positive, got {safety}")
    tol = safety * torch.finfo(dtype).eps * math.sqrt(reduction) * depth
    return Tolerance(rtol=tol, atol=tol)


def _scaled(expected: torch.Tensor, tol: Tolerance) -> tuple[float, float]:
    scale = expected.detach().float().pow(2).mean().sqrt().item() if expected.numel() else 1.0
    # An all-zero expectation has no size of its own: compare at unit scale.
    return tol.rtol, tol.atol * (scale if scale > 0 else 1.0)


def assert_close(
    actual: torch.Tensor,
    expected: torch.Tensor,
    *,
    reduction: int = 1,
    depth: int = 1,
    dtype: torch.dtype | None = None,
    msg: str | None = None,
) -> None:
    """Assert that two computations of the same tensor agree within :func:`tolerance`.

    ``dtype`` defaults to the lower-precision dtype of the two. Shapes must match exactly; the
    tensors may live on different devices (both are compared on the CPU). A comparison whose
    tolerance would exceed ``MAX_TOLERANCE`` is refused with a ``ValueError`` (not an
    ``AssertionError``: it says nothing about the tensors), naming the dtype, ``reduction`` and
    ``depth`` that led to it.
    """
    if not isinstance(actual, torch.Tensor) or not isinstance(expected, torch.Tensor):
        raise TypeError(f"assert_close compares tensors, got {type(actual).__name__} and {type(expected).__name__}")
    if actual.shape != expected.shape:
        raise AssertionError(
            f"shapes differ: {tuple(actual.shape)} vs {tuple(expected.shape)}" + (f" ({msg})" if msg else "")
        )
    if dtype is None:  # the coarser of the two floating dtypes (float32 if neither is one)
        floats = [d for d in (actual.dtype, expected.dtype) if d.is_floating_point] or [torch.float32]
        dtype = max(floats, key=lambda d: torch.finfo(d).eps)
    tol = tolerance(dtype, reduction=reduction, depth=depth)
    if tol.rtol > MAX_TOLERANCE:
        mixed = actual.dtype != expected.dtype
        raise ValueError(
            f"comparing in {dtype} with reduction={reduction}, depth={depth} would need a tolerance of "
            f"{tol.rtol:.3g}, above the ceiling of {MAX_TOLERANCE}: that loose, a wrong scale or a "
            "transposed weight would pass. "
            + (f"actual is {actual.dtype} and expected {expected.dtype}: " if mixed else "")
            + "compute both in a common, finer dtype (float32), or compare a smaller piece (fewer "
            "blocks: a smaller depth; a shorter sum: a smaller reduction)"
        )
    rtol, atol = _scaled(expected, tol)
    torch.testing.assert_close(
        actual.detach().cpu().float(),
        expected.detach().cpu().float(),
        rtol=rtol,
        atol=atol,
        msg=(lambda m: f"{msg}\n{m}") if msg else None,
    )


def is_close(actual: torch.Tensor, expected: torch.Tensor, **kwargs: Any) -> bool:
    """:func:`assert_close` as a boolean (for ``assert not is_close(...)``: a bug must show)."""
    try:
        assert_close(actual, expected, **kwargs)
    except AssertionError:
        return False
    return True
