"""Timing two or more computations fairly on a shared machine (chapters 14 and 15).

>>> race(explicit=lambda: f(x), fused=lambda: g(x))      # {"explicit": s, "fused": s}
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

__all__ = ["race"]


def race(repeat: int = 5, reduce: str = "median", **fns: Callable[[], object]) -> dict[str, float]:
    """Seconds per call of each function: one warm-up call each (allocations, lazy
    initialisation), then ``repeat`` rounds in which every function runs once, interleaved, so a
    slow spell of the machine hits all of them alike. ``reduce``: ``"median"`` of the rounds, or
    ``"min"`` (on a shared computer interference only ever adds time)."""
    if reduce not in ("median", "min"):
        raise ValueError(f"reduce must be 'median' or 'min', got {reduce!r}")
    if repeat < 1 or not fns:
        raise ValueError("race needs repeat >= 1 and at least one function")
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    pick = np.median if reduce == "median" else np.min
    return {name: float(pick(t)) for name, t in times.items()}
