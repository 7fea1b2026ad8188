"""The drawing kit of the book's architecture diagrams (chapters 4, 6, 8, 10 to 13, 15): one palette,
labels, boxes, tokens, arrows, grids."""

from __future__ import annotations

import functools
import io
import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # matplotlib is needed only to draw the diagrams
    import matplotlib.axes
    import matplotlib.figure


# ---------------------------------------------------------------------------------------------
# Architecture diagrams, drawn with matplotlib so that they stay editable and build offline.
#
# Every ``draw_*`` function returns a :class:`matplotlib.figure.Figure` made without pyplot (so
# a notebook shows it once, as the cell's value, and nothing leaks into pyplot's state). One
# axes covers the whole figure in inch coordinates; boxes, tokens and arrows share one palette:
# orange attention, blue MLPs and linear maps, yellow LayerNorm, grey frozen parts, red CLS,
# purple DIST, green text tokens. matplotlib is imported inside the functions: the rest of the
# package does not need it.
# ---------------------------------------------------------------------------------------------

PALETTE = {
    "norm": "#fde68a",
    "attn": "#fdba74",
    "mlp": "#93c5fd",
    "linear": "#bfdbfe",
    "frozen": "#d1d5db",
    "train": "#fca5a5",
    "cls": "#f87171",
    "dist": "#c084fc",
    "patch": "#cbd5e1",
    "text": "#86efac",
    "latent": "#a5b4fc",
    "mask": "#475569",
    "loss": "#fee2e2",
    "note": "#f8fafc",
    "edge": "#1f2937",
    "path": "#059669",
    "muted": "#6b7280",
}
FONT = 9  # points, for every label of every diagram


@functools.cache
def _diagram_class() -> type:
    from matplotlib.figure import Figure

    class Diagram(Figure):
        """A figure that shows itself as a PNG when it is a notebook cell's value, whether or not
        pyplot (and with it the inline backend's display hook) was ever used in that kernel."""

        def _repr_png_(self) -> bytes:
            buf = io.BytesIO()
            self.savefig(buf, format="png")
            return buf.getvalue()

    return Diagram


def _canvas(width: float, height: float) -> tuple[matplotlib.figure.Figure, matplotlib.axes.Axes]:
    """A figure of ``width x height`` inches whose one axes uses inches as data coordinates."""
    fig = _diagram_class()(figsize=(width, height), dpi=100)
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.set_aspect("equal")
    ax.axis("off")
    return fig, ax


def _label(
    ax: matplotlib.axes.Axes,
    x: float,
    y: float,
    text: str,
    size: float = FONT,
    ha: str = "center",
    va: str = "center",
    color: str | None = None,
    bold: bool = False,
    **kw: Any,
) -> None:
    """Text at ``(x, y)``, centred there unless ``ha``/``va`` say otherwise; black unless ``color``
    says otherwise (``PALETTE["muted"]`` for side notes). ``kw`` go to ``ax.text`` (``rotation``)."""
    ax.text(x, y, text, ha=ha, va=va, fontsize=size, color=color, fontweight="bold" if bold else "normal", **kw)


def _note(ax: matplotlib.axes.Axes, x: float, y: float, text: str, size: float = FONT - 1, **kw: Any) -> None:
    """A side note: ``_label`` in the muted grey, one point smaller unless ``size`` says otherwise."""
    _label(ax, x, y, text, size, color=PALETTE["muted"], **kw)


def _box(
    ax: matplotlib.axes.Axes,
    cx: float,
    cy: float,
    w: float,
    h: float,
    text: str = "",
    fill: str = PALETTE["note"],
    fontsize: float = FONT,
    dashed: bool = False,
    bold: bool = False,
    edge: str = PALETTE["edge"],
) -> None:
    """A rounded box centred on ``(cx, cy)`` with a centred label."""
    from matplotlib.patches import FancyBboxPatch

    pad = min(0.08, w / 4, h / 4)
    ax.add_patch(
        FancyBboxPatch(
            (cx - w / 2 + pad, cy - h / 2 + pad),
            w - 2 * pad,
            h - 2 * pad,
            boxstyle=f"round,pad={pad}",
            facecolor=fill,
            edgecolor=edge,
            lw=1.0,
            linestyle="--" if dashed else "-",
            zorder=2,
        )
    )
    if text:
        _label(ax, cx, cy, text, fontsize, bold=bold)


def _token(
    ax: matplotlib.axes.Axes,
    cx: float,
    cy: float,
    size: float,
    text: str = "",
    fill: str = PALETTE["patch"],
    fontsize: float = FONT - 1,
    hatch: str | None = None,
    edge: str = PALETTE["edge"],
    lw: float = 0.8,
) -> None:
    """A square token centred on ``(cx, cy)``."""
    from matplotlib.patches import Rectangle

    ax.add_patch(
        Rectangle(
            (cx - size / 2, cy - size / 2), size, size, facecolor=fill, edgecolor=edge, lw=lw, hatch=hatch, zorder=2
        )
    )
    if text:
        _label(ax, cx, cy, text, fontsize)


def _arrow(
    ax: matplotlib.axes.Axes,
    *points: tuple[float, float],
    color: str = PALETTE["edge"],
    lw: float = 1.1,
    dashed: bool = False,
    text: str = "",
    text_at: int = 0,
    text_offset: tuple[float, float] = (0.08, 0.0),
    ha: str = "left",
    fontsize: float = FONT - 1,
) -> None:
    """A polyline through ``points`` with an arrow head at the last one; ``text`` labels segment ``text_at``."""
    style = "--" if dashed else "-"
    for (x0, y0), (x1, y1) in zip(points[:-2], points[1:-1]):
        ax.plot([x0, x1], [y0, y1], color=color, lw=lw, ls=style, zorder=1, solid_capstyle="butt")
    ax.annotate(
        "",
        xy=points[-1],
        xytext=points[-2],
        zorder=1,
        arrowprops=dict(
            arrowstyle="-|>,head_length=0.5,head_width=0.22", color=color, lw=lw, shrinkA=0, shrinkB=0, linestyle=style
        ),
    )
    if text:
        (x0, y0), (x1, y1) = points[text_at], points[text_at + 1]
        _label(ax, (x0 + x1) / 2 + text_offset[0], (y0 + y1) / 2 + text_offset[1], text, fontsize, ha=ha, color=color)


def _adder(ax: matplotlib.axes.Axes, cx: float, cy: float, r: float = 0.15) -> None:
    """The residual addition: a circle with a plus."""
    from matplotlib.patches import Circle

    ax.add_patch(Circle((cx, cy), r, facecolor="white", edgecolor=PALETTE["edge"], lw=1.0, zorder=2))
    ax.plot([cx - 0.6 * r, cx + 0.6 * r], [cy, cy], color=PALETTE["edge"], lw=1.0, zorder=3)
    ax.plot([cx, cx], [cy - 0.6 * r, cy + 0.6 * r], color=PALETTE["edge"], lw=1.0, zorder=3)


def _grid(
    ax: matplotlib.axes.Axes,
    x0: float,
    y0: float,
    n: int,
    cell: float,
    fills: list[str] | None = None,
    lw: float = 0.6,
    edge: str = PALETTE["edge"],
    labels: list[str] | None = None,
    fontsize: float = FONT - 2,
) -> None:
    """An ``n x n`` grid of cells, lower-left corner ``(x0, y0)``; cells in row-major order from the top."""
    from matplotlib.patches import Rectangle

    for i in range(n * n):
        r, c = divmod(i, n)
        x, y = x0 + c * cell, y0 + (n - 1 - r) * cell
        fill = fills[i] if fills is not None else PALETTE["patch"]
        ax.add_patch(Rectangle((x, y), cell, cell, facecolor=fill, edgecolor=edge, lw=lw, zorder=2))
        if labels is not None and labels[i]:
            _label(
                ax, x + cell / 2, y + cell / 2, labels[i], fontsize, color="white" if fill == PALETTE["mask"] else None
            )


def _image_fills(n: int, seed: int = 0) -> list[str]:
    """Colours for an ``n x n`` grid that looks like a small picture (a smooth colour field)."""
    import matplotlib

    cmap = matplotlib.colormaps["viridis"]
    out = []
    for i in range(n * n):
        r, c = divmod(i, n)
        v = 0.15 + 0.7 * (0.5 + 0.5 * math.sin(0.9 * r + 0.6 * c + seed))
        out.append(matplotlib.colors.to_hex(cmap(v)))
    return out


def _token_row(
    ax: matplotlib.axes.Axes,
    x0: float,
    y: float,
    labels: list[str],
    fills: list[str],
    size: float = 0.5,
    gap: float = 0.12,
    fontsize: float = FONT - 1,
) -> list[float]:
    """Tokens side by side from ``x0``; ``"..."`` draws an ellipsis. Returns the centres' x."""
    xs = []
    x = x0 + size / 2
    for label, fill in zip(labels, fills, strict=True):
        if label == "...":
            _label(ax, x, y, r"$\cdots$", FONT + 1)
        else:
            _token(ax, x, y, size, label, fill=fill, fontsize=fontsize)
        xs.append(x)
        x += size + gap
    return xs


def _windows(ax: matplotlib.axes.Axes, x0: float, y0: float, n: int, cell: float, cuts: list[int]) -> None:
    """An ``n x n`` token grid split into windows at the token indices ``cuts`` (both axes), each
    window tinted its own colour, window borders drawn thick."""
    from matplotlib.patches import Rectangle

    tints = ["#fde68a", "#bfdbfe", "#bbf7d0", "#fecaca", "#e9d5ff", "#fed7aa", "#a5f3fc", "#e5e7eb", "#fbcfe8"]
    edges = [0] + cuts + [n]
    k = 0
    for r0, r1 in zip(edges, edges[1:]):
        for c0, c1 in zip(edges, edges[1:]):
            ax.add_patch(
                Rectangle(
                    (x0 + c0 * cell, y0 + (n - r1) * cell),
                    (c1 - c0) * cell,
                    (r1 - r0) * cell,
                    facecolor=tints[k % len(tints)],
                    edgecolor="none",
                    zorder=1,
                )
            )
            k += 1
    for i in range(n + 1):  # thin lines between tokens
        ax.plot([x0, x0 + n * cell], [y0 + i * cell] * 2, color=PALETTE["muted"], lw=0.4, zorder=2)
        ax.plot([x0 + i * cell] * 2, [y0, y0 + n * cell], color=PALETTE["muted"], lw=0.4, zorder=2)
    for e in edges:  # thick window borders
        ax.plot([x0, x0 + n * cell], [y0 + (n - e) * cell] * 2, color=PALETTE["edge"], lw=1.8, zorder=3)
        ax.plot([x0 + e * cell] * 2, [y0, y0 + n * cell], color=PALETTE["edge"], lw=1.8, zorder=3)
