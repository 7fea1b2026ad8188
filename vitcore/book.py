"""The chapters' ``glue``: myst-nb's, for numbers computed with NumPy or torch (every chapter).

myst-nb keeps a glued value as the text of its ``repr`` and reads the number back from that text
to format it (``{glue:text}`key:.1%```). NumPy 2 writes a scalar as ``np.float64(0.44)``, which it
cannot read back: the page shows nothing where the number belongs and the build warns. So a
scalar is turned into the plain Python number first.

>>> from vitcore.book import glue
>>> glue("acc", np.float64(0.4412))   # shown as 44.1% by {glue:text}`acc:.1%`
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["glue", "plain"]


def plain(value: Any) -> Any:
    """A NumPy scalar or a one-element tensor as the Python number it holds; anything else unchanged."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    return value


def glue(name: str, value: Any, display: bool = False) -> None:
    """``myst_nb.glue(name, plain(value), display)``: keep ``value`` for the page under ``name``."""
    from myst_nb import glue as myst_glue

    myst_glue(name, plain(value), display=display)
