"""Looking inside a ViT: attention maps, attention rollout, attention distance, PCA colours;
and the book's architecture diagrams (``draw_*``), drawn with matplotlib so they stay editable.

Fused attention (``F.scaled_dot_product_attention``) never materialises the attention matrix,
so it cannot return it. :meth:`vitcore.vit.VisionTransformer.forward_with_attention` runs the explicit path
(same result, tested) and returns each block's weights ``(B, heads, T, T)``.
"""

from __future__ import annotations

import functools
import io
import math
from typing import TYPE_CHECKING, TypedDict

import torch
import torch.nn.functional as F

from .vit import VisionTransformer

if TYPE_CHECKING:  # matplotlib is needed only to draw the diagrams
    import matplotlib.axes
    import matplotlib.figure

__all__ = [
    "attention_maps",
    "cls_attention",
    "attention_rollout",
    "patch_distances",
    "mean_attention_distance",
    "upsample_map",
    "pca_colors",
    "draw_encoder_block",
    "draw_deit_tokens",
    "draw_mae",
    "draw_dino",
    "draw_lora",
    "draw_vlm_sequence",
    "draw_swin",
]


@torch.no_grad()
def attention_maps(model: VisionTransformer, images: torch.Tensor) -> list[torch.Tensor]:
    """Every block's attention weights, a list of ``depth`` tensors ``(B, heads, T, T)``."""
    was_training = model.training
    model.eval()
    _, maps = model.forward_with_attention(images)
    model.train(was_training)
    return maps


def cls_attention(attn: torch.Tensor, grid: tuple[int, int], num_prefix_tokens: int = 1) -> torch.Tensor:
    """How much the CLS token (query 0) attends to each patch: ``(B, h, T, T) -> (B, h, gh, gw)``."""
    n = grid[0] * grid[1]
    if attn.shape[-1] != num_prefix_tokens + n:
        raise ValueError(f"attention over {attn.shape[-1]} tokens does not match {num_prefix_tokens} + {grid} patches")
    return attn[..., 0, num_prefix_tokens:].reshape(*attn.shape[:-2], *grid)


def attention_rollout(attns: list[torch.Tensor], head_fusion: str = "mean", residual: bool = True) -> torch.Tensor:
    """Attention rollout (Abnar & Zuidema, 2020): how much each output token draws on each input token.

    Heads are fused (``mean``/``max``/``min``), the residual connection is modelled as
    ``0.5 * A + 0.5 * I`` with rows renormalised, and the layers' matrices are multiplied from the
    first block to the last. ``-> (B, T, T)``.
    """
    fuse = {"mean": lambda a: a.mean(1), "max": lambda a: a.amax(1), "min": lambda a: a.amin(1)}
    if head_fusion not in fuse:
        raise ValueError(f"head_fusion must be one of {sorted(fuse)}, got {head_fusion!r}")
    rollout = None
    for attn in attns:
        a = fuse[head_fusion](attn.float())  # (B, T, T)
        if residual:
            a = 0.5 * a + 0.5 * torch.eye(a.shape[-1], device=a.device)
        a = a / a.sum(-1, keepdim=True)
        rollout = a if rollout is None else a @ rollout
    if rollout is None:
        raise ValueError("no attention maps given")
    return rollout


def patch_distances(grid: tuple[int, int], patch_size: int) -> torch.Tensor:
    """Euclidean distance in pixels between patch centres: ``(N, N)``."""
    r, c = torch.meshgrid(torch.arange(grid[0]), torch.arange(grid[1]), indexing="ij")
    centres = torch.stack([r.flatten(), c.flatten()], -1).float() * patch_size  # (N, 2)
    return torch.cdist(centres, centres)


def mean_attention_distance(
    attn: torch.Tensor, grid: tuple[int, int], patch_size: int, num_prefix_tokens: int = 1
) -> torch.Tensor:
    """Mean pixel distance between a query patch and the patches it attends to, per head.

    The ViT paper's Figure 7 (right): attention weights among patch tokens (prefix tokens
    dropped, rows renormalised) weight the distance matrix; averaged over queries and images.
    ``(B, h, T, T) -> (h,)``.
    """
    p = attn[..., num_prefix_tokens:, num_prefix_tokens:].float()  # (B, h, N, N)
    p = p / p.sum(-1, keepdim=True).clamp(min=1e-12)
    dist = patch_distances(grid, patch_size).to(p.device)  # (N, N)
    return (p * dist).sum(-1).mean(dim=(0, 2))  # (h,)


def upsample_map(heat: torch.Tensor, size: tuple[int, int], normalize: bool = True) -> torch.Tensor:
    """A patch-grid map ``(..., gh, gw)`` -> image size ``(..., H, W)`` (bilinear), scaled to [0, 1]."""
    lead = heat.shape[:-2]
    x = F.interpolate(heat.reshape(-1, 1, *heat.shape[-2:]).float(), size=size, mode="bilinear", align_corners=False)
    x = x.reshape(*lead, *size)
    if normalize:
        lo = x.flatten(-2).amin(-1)[..., None, None]
        hi = x.flatten(-2).amax(-1)[..., None, None]
        x = (x - lo) / (hi - lo).clamp(min=1e-12)
    return x


def pca_colors(features: torch.Tensor, n_components: int = 3) -> torch.Tensor:
    """Project features ``(..., D)`` on their first principal components, scaled to [0, 1] per component.

    All leading dimensions share one PCA (fit on every row), so colours compare across images.
    """
    flat = features.reshape(-1, features.shape[-1]).float()
    centred = flat - flat.mean(0, keepdim=True)
    _, _, v = torch.linalg.svd(centred, full_matrices=False)
    proj = centred @ v[:n_components].T  # (M, k)
    lo, hi = proj.amin(0, keepdim=True), proj.amax(0, keepdim=True)
    return ((proj - lo) / (hi - lo).clamp(min=1e-12)).reshape(*features.shape[:-1], n_components)


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

COLORS = {
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


def _box(
    ax: matplotlib.axes.Axes,
    cx: float,
    cy: float,
    w: float,
    h: float,
    text: str = "",
    fill: str = COLORS["note"],
    fontsize: float = FONT,
    dashed: bool = False,
    bold: bool = False,
    edge: str = COLORS["edge"],
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
        ax.text(
            cx, cy, text, ha="center", va="center", fontsize=fontsize, zorder=3, fontweight="bold" if bold else "normal"
        )


def _token(
    ax: matplotlib.axes.Axes,
    cx: float,
    cy: float,
    size: float,
    text: str = "",
    fill: str = COLORS["patch"],
    fontsize: float = FONT - 1,
    hatch: str | None = None,
    edge: str = COLORS["edge"],
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
        ax.text(cx, cy, text, ha="center", va="center", fontsize=fontsize, zorder=3)


def _arrow(
    ax: matplotlib.axes.Axes,
    *points: tuple[float, float],
    color: str = COLORS["edge"],
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
        ax.text(
            (x0 + x1) / 2 + text_offset[0],
            (y0 + y1) / 2 + text_offset[1],
            text,
            ha=ha,
            va="center",
            fontsize=fontsize,
            color=color,
            zorder=3,
        )


def _adder(ax: matplotlib.axes.Axes, cx: float, cy: float, r: float = 0.15) -> None:
    """The residual addition: a circle with a plus."""
    from matplotlib.patches import Circle

    ax.add_patch(Circle((cx, cy), r, facecolor="white", edgecolor=COLORS["edge"], lw=1.0, zorder=2))
    ax.plot([cx - 0.6 * r, cx + 0.6 * r], [cy, cy], color=COLORS["edge"], lw=1.0, zorder=3)
    ax.plot([cx, cx], [cy - 0.6 * r, cy + 0.6 * r], color=COLORS["edge"], lw=1.0, zorder=3)


def _grid(
    ax: matplotlib.axes.Axes,
    x0: float,
    y0: float,
    n: int,
    cell: float,
    fills: list[str] | None = None,
    lw: float = 0.6,
    edge: str = COLORS["edge"],
    labels: list[str] | None = None,
    fontsize: float = FONT - 2,
) -> None:
    """An ``n x n`` grid of cells, lower-left corner ``(x0, y0)``; cells in row-major order from the top."""
    from matplotlib.patches import Rectangle

    for i in range(n * n):
        r, c = divmod(i, n)
        x, y = x0 + c * cell, y0 + (n - 1 - r) * cell
        fill = fills[i] if fills is not None else COLORS["patch"]
        ax.add_patch(Rectangle((x, y), cell, cell, facecolor=fill, edgecolor=edge, lw=lw, zorder=2))
        if labels is not None and labels[i]:
            ax.text(
                x + cell / 2,
                y + cell / 2,
                labels[i],
                ha="center",
                va="center",
                fontsize=fontsize,
                zorder=3,
                color="white" if fill == COLORS["mask"] else "black",
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


class _BlockPanel(TypedDict):
    """One panel of :func:`draw_encoder_block`."""

    cx: float
    title: str
    eqs: str
    column: list[tuple[str, str, float]]
    skips: list[tuple[float, float]]
    note: str


def draw_encoder_block() -> matplotlib.figure.Figure:
    """The encoder block wired two ways, side by side: pre-norm (ViT) and post-norm (the original
    Transformer). The pre-norm panel marks the identity path from input to output in green: no
    LayerNorm sits on it. In post-norm every path from input to output crosses two LayerNorms."""
    fig, ax = _canvas(9.0, 7.6)
    bw, bh, skip = 2.3, 0.5, 1.5  # box width and height, horizontal offset of the skip lines
    y_in, y_out = 0.95, 6.5  # where the input arrow starts and the output arrow ends
    panels: dict[str, _BlockPanel] = {
        "pre": dict(
            cx=2.6,
            title="pre-norm (ViT, most Transformers since)",
            eqs=(
                r"$z' = z + \mathrm{MSA}(\mathrm{LN}(z))$"
                "\n"
                r"$z_{\mathrm{out}} = z' + \mathrm{MLP}(\mathrm{LN}(z'))$"
            ),
            # (kind, label, y) from the input upwards
            column=[
                ("norm", "LayerNorm", 2.05),
                ("attn", "Multi-head attention", 2.85),
                ("add", "", 3.6),
                ("norm", "LayerNorm", 4.45),
                ("mlp", "MLP (4D wide, GELU)", 5.25),
                ("add", "", 6.0),
            ],
            skips=[(1.45, 3.6), (3.95, 6.0)],  # (y where a skip leaves the stream, y of its adder)
            note=(
                "green: the identity path from input to output, with no\nLayerNorm on it "
                "(one final LayerNorm follows the last block)"
            ),
        ),
        "post": dict(
            cx=7.0,
            title="post-norm (original Transformer)",
            eqs=(
                r"$z' = \mathrm{LN}(z + \mathrm{MSA}(z))$"
                "\n"
                r"$z_{\mathrm{out}} = \mathrm{LN}(z' + \mathrm{MLP}(z'))$"
            ),
            column=[
                ("attn", "Multi-head attention", 2.05),
                ("add", "", 2.8),
                ("norm", "LayerNorm", 3.45),
                ("mlp", "MLP (4D wide, GELU)", 4.45),
                ("add", "", 5.2),
                ("norm", "LayerNorm", 5.85),
            ],
            skips=[(1.45, 2.8), (3.95, 5.2)],
            note=("every path from input to output crosses both\nLayerNorms: 2L of them through L blocks"),
        ),
    }
    half = {"add": 0.15, "norm": bh / 2, "attn": bh / 2, "mlp": bh / 2, "in": 0.0, "out": 0.0}
    for style, p in panels.items():
        cx = p["cx"]
        ax.text(cx, 7.5, p["title"], ha="center", va="top", fontsize=FONT + 1, fontweight="bold")
        ax.text(cx, 7.1, p["eqs"], ha="center", va="top", fontsize=FONT)
        ax.text(cx, y_in - 0.2, r"input $z$: $N$ tokens $\times$ $D$", ha="center", va="center", fontsize=FONT)
        ax.text(cx, y_out + 0.08, r"output $z_{\mathrm{out}}$", ha="center", va="bottom", fontsize=FONT)
        items = [("in", "", y_in)] + p["column"] + [("out", "", y_out)]
        for (k0, _, y0), (k1, _, y1) in zip(items, items[1:]):
            # pre-norm: the stream segments between input, adders and output carry the identity path
            identity = style == "pre" and k0 in ("in", "add") and k1 in ("add", "out", "norm")
            if identity and k1 == "norm":  # only the part below the skip's departure is on it
                ax.plot([cx, cx], [y0 + half[k0], 1.45 if y1 < 3 else 3.95], color=COLORS["path"], lw=1.1, zorder=1)
                _arrow(ax, (cx, 1.45 if y1 < 3 else 3.95), (cx, y1 - half[k1]))
                continue
            _arrow(ax, (cx, y0 + half[k0]), (cx, y1 - half[k1]), color=COLORS["path"] if identity else COLORS["edge"])
        for kind, label, y in p["column"]:
            if kind == "add":
                _adder(ax, cx, y)
            else:
                _box(ax, cx, y, bw, bh, label, fill=COLORS[kind])
        color = COLORS["path"] if style == "pre" else COLORS["edge"]
        for y_from, y_add in p["skips"]:
            _arrow(ax, (cx, y_from), (cx - skip, y_from), (cx - skip, y_add), (cx - 0.15, y_add), color=color)
            ax.text(
                cx - skip - 0.07,
                (y_from + y_add) / 2,
                "residual",
                rotation=90,
                ha="right",
                va="center",
                fontsize=FONT - 1,
                color=color,
            )
        ax.text(
            cx - 0.6 if style == "pre" else cx,
            0.3,
            p["note"],
            ha="center",
            va="center",
            fontsize=FONT - 1.5,
            color=COLORS["path"] if style == "pre" else COLORS["muted"],
        )
    return fig


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
            ax.text(x, y, r"$\cdots$", ha="center", va="center", fontsize=FONT + 1)
        else:
            _token(ax, x, y, size, label, fill=fill, fontsize=fontsize)
        xs.append(x)
        x += size + gap
    return xs


def draw_deit_tokens(n_patches: int = 16) -> matplotlib.figure.Figure:
    """DeiT's token layout: ``[CLS, DIST, patch_1 .. patch_N]`` plus positions, one encoder, and
    two heads: CLS -> ``head`` (true label), DIST -> ``head_dist`` (the CNN teacher's label)."""
    fig, ax = _canvas(9.4, 5.6)
    n = 4  # patches drawn before the ellipsis
    labels = ["CLS", "DIST"] + [f"$p_{{{i}}}$" for i in range(1, n + 1)] + ["...", f"$p_{{{n_patches}}}$"]
    fills = [COLORS["cls"], COLORS["dist"]] + [COLORS["patch"]] * (n + 2)
    x0, size = 2.3, 0.55
    # input: the image, cut into patches
    _grid(ax, 0.25, 0.5, 4, 0.3, fills=_image_fills(4))
    ax.text(0.85, 0.3, "image, cut into patches", ha="center", va="center", fontsize=FONT - 1)
    y_in = 1.35
    xs = _token_row(ax, x0, y_in, labels, fills, size=size)
    _arrow(
        ax,
        (1.45, 0.6),
        (xs[2], 0.6),
        (xs[2], y_in - size / 2),
        text="patch embedding",
        text_at=0,
        text_offset=(0.0, -0.17),
        ha="center",
        fontsize=FONT - 1.5,
    )
    ax.text((xs[0] + xs[1]) / 2, y_in - 0.45, "learned vectors", ha="center", va="center", fontsize=FONT - 1.5)
    ax.text(
        xs[-1] + 0.45, y_in, f"+ position embedding\n({n_patches} + 2 rows)", ha="left", va="center", fontsize=FONT - 1
    )
    # the encoder, over all tokens
    left, right = xs[0] - 0.4, xs[-1] + 0.4
    _box(
        ax,
        (left + right) / 2,
        2.3,
        right - left,
        0.7,
        f"Transformer encoder: L blocks, every token attends to all {n_patches} + 2",
        fill=COLORS["attn"],
    )
    for x in xs:
        if x != xs[-2]:
            _arrow(ax, (x, y_in + size / 2), (x, 1.95))
            _arrow(ax, (x, 2.65), (x, 3.15 - size / 2))
    y_out = 3.15
    out_fills = [COLORS["cls"], COLORS["dist"]] + ["white"] * (n + 2)
    _token_row(ax, x0, y_out, labels, out_fills, size=size)
    ax.text(
        (xs[2] + xs[-1]) / 2,
        y_out + 0.5,
        "patch outputs: not used for the class",
        ha="center",
        va="center",
        fontsize=FONT - 1,
        color=COLORS["muted"],
    )
    # the two heads
    _box(ax, xs[0] - 0.9, 4.1, 1.3, 0.5, "head", fill=COLORS["linear"])
    _box(ax, xs[1] + 1.3, 4.1, 1.5, 0.5, "head_dist", fill=COLORS["linear"])
    _arrow(ax, (xs[0], y_out + size / 2), (xs[0], 3.6), (xs[0] - 0.9, 3.6), (xs[0] - 0.9, 3.85))
    _arrow(ax, (xs[1], y_out + size / 2), (xs[1], 3.6), (xs[1] + 1.3, 3.6), (xs[1] + 1.3, 3.85))
    _box(ax, xs[0] - 0.9, 5.0, 2.2, 0.6, "$Z_s$: cross-entropy\nwith the true label $y$", fill=COLORS["loss"])
    _box(ax, xs[1] + 1.3, 5.0, 2.4, 0.6, "$Z_d$: cross-entropy with\nthe teacher's label $y_t$", fill=COLORS["loss"])
    _arrow(ax, (xs[0] - 0.9, 4.35), (xs[0] - 0.9, 4.7))
    _arrow(ax, (xs[1] + 1.3, 4.35), (xs[1] + 1.3, 4.7))
    # the teacher
    tx = 8.0
    _box(ax, tx, 5.0, 2.4, 0.6, "CNN teacher (frozen),\nsame augmented image", fill=COLORS["frozen"])
    _arrow(
        ax,
        (tx - 1.2, 5.0),
        (xs[1] + 2.5, 5.0),
        text=r"$y_t = \arg\max Z_t$",
        text_at=0,
        text_offset=(0.0, -0.25),
        ha="center",
        fontsize=FONT - 1,
    )
    ax.text(
        7.8,
        3.85,
        "at test time: vitcore and timm average the\ntwo heads' logits; the DeiT paper adds\ntheir softmax outputs",
        ha="center",
        va="center",
        fontsize=FONT - 1,
        color=COLORS["muted"],
    )
    return fig


def draw_mae(grid: int = 4, mask_ratio: float = 0.75, seed: int = 0) -> matplotlib.figure.Figure:
    """MAE: mask most patches, encode only the visible ones, put mask tokens back, decode every
    position with a small decoder, and score the reconstruction on the masked patches only."""
    import numpy as np

    n = grid * grid
    keep = int(round(n * (1 - mask_ratio)))
    order = np.random.default_rng(seed).permutation(n)
    visible = sorted(order[:keep].tolist())  # the kept patches, in raster order
    fig, ax = _canvas(12.4, 4.3)
    cell = 0.36
    side = grid * cell
    y0 = 1.5  # lower edge of the grids
    mid = y0 + side / 2
    image = _image_fills(grid)
    # 1. the input: every patch, most of them masked
    masked = [image[i] if i in visible else COLORS["mask"] for i in range(n)]
    _grid(ax, 0.3, y0, grid, cell, fills=masked)
    ax.text(
        0.3 + side / 2, y0 + side + 0.3, "input patches", ha="center", va="bottom", fontsize=FONT, fontweight="bold"
    )
    ax.text(
        0.3 + side / 2,
        y0 - 0.3,
        f"{mask_ratio:.0%} masked at random\n(dark: hidden)",
        ha="center",
        va="top",
        fontsize=FONT - 1,
    )
    # 2. only the visible patches (and CLS) enter the encoder
    tok = 0.4
    xv = 2.75
    ys = [mid + (keep / 2 - i) * (tok + 0.08) for i in range(keep + 1)]
    _token(ax, xv, ys[0], tok, "CLS", fill=COLORS["cls"], fontsize=FONT - 2)
    for y, i in zip(ys[1:], visible):
        _token(ax, xv, y, tok, fill=image[i])
    _arrow(ax, (0.3 + side + 0.1, mid), (xv - tok / 2 - 0.1, mid))
    ax.text(xv, ys[-1] - 0.45, f"{keep} visible\n+ CLS", ha="center", va="top", fontsize=FONT - 1)
    _box(
        ax,
        4.15,
        mid,
        1.6,
        2.6,
        f"encoder\n\nthe ViT,\nlarge, on\n{1 - mask_ratio:.0%} of\nthe tokens",
        fill=COLORS["attn"],
    )
    _arrow(ax, (xv + tok / 2 + 0.05, mid), (4.15 - 0.8, mid))
    # 3. latent tokens, then mask tokens at the hidden positions
    xl = 5.55
    _arrow(ax, (4.15 + 0.8, mid), (xl - tok / 2 - 0.05, mid))
    for k, y in enumerate(ys):
        _token(
            ax,
            xl,
            y,
            tok,
            "CLS" if k == 0 else "",
            fill=COLORS["cls"] if k == 0 else COLORS["latent"],
            fontsize=FONT - 2,
        )
    ax.text(xl, ys[-1] - 0.45, "latent\ntokens", ha="center", va="top", fontsize=FONT - 1)
    x_full = 6.55
    fills = [COLORS["latent"] if i in visible else "white" for i in range(n)]
    _grid(ax, x_full, y0, grid, cell, fills=fills, labels=["" if i in visible else "M" for i in range(n)])
    _arrow(ax, (xl + tok / 2 + 0.05, mid), (x_full - 0.1, mid))
    ax.text(
        x_full + side / 2,
        y0 + side + 0.3,
        "unshuffle, add\nmask tokens",
        ha="center",
        va="bottom",
        fontsize=FONT,
        fontweight="bold",
    )
    ax.text(
        x_full + side / 2,
        y0 - 0.3,
        "M: one shared learned\nvector; + positions;\nCLS passes through",
        ha="center",
        va="top",
        fontsize=FONT - 1,
    )
    # 4. the light decoder predicts pixels for every patch
    _box(ax, 9.0, mid, 1.4, 2.6, "decoder\n\nsmall,\nall tokens,\npredicts\npixels", fill=COLORS["mlp"])
    _arrow(ax, (x_full + side + 0.1, mid), (9.0 - 0.7, mid))
    x_out = 10.3
    _arrow(ax, (9.0 + 0.7, mid), (x_out - 0.1, mid))
    _grid(ax, x_out, y0, grid, cell, fills=image)
    from matplotlib.patches import Rectangle

    for i in range(n):
        if i not in visible:
            r, c = divmod(i, grid)
            ax.add_patch(
                Rectangle(
                    (x_out + c * cell, y0 + (grid - 1 - r) * cell),
                    cell,
                    cell,
                    fill=False,
                    edgecolor="#dc2626",
                    lw=1.6,
                    zorder=4,
                )
            )
    ax.text(
        x_out + side / 2, y0 + side + 0.3, "reconstruction", ha="center", va="bottom", fontsize=FONT, fontweight="bold"
    )
    _box(
        ax,
        x_out + side / 2,
        0.45,
        2.6,
        0.6,
        "loss: mean squared error\non the masked patches only (red)",
        fill=COLORS["loss"],
        fontsize=FONT - 1,
    )
    _arrow(ax, (x_out + side / 2, y0 - 0.05), (x_out + side / 2, 0.78))
    ax.text(
        6.2,
        4.05,
        "after pre-training the decoder is thrown away; the encoder is the product",
        ha="center",
        va="center",
        fontsize=FONT - 1,
        color=COLORS["muted"],
    )
    return fig


def draw_dino(n_local: int = 4) -> matplotlib.figure.Figure:
    """DINO's self-distillation: the student sees every crop (global and local), the teacher only
    the global ones; the teacher's output is centred and sharpened, gets no gradient, and its
    weights are an exponential moving average (EMA) of the student's."""
    fig, ax = _canvas(10.0, 6.7)
    sx, tx = 2.6, 7.4  # the student's and the teacher's columns
    # the image and its crops
    _grid(ax, 4.62, 0.3, 3, 0.25, fills=_image_fills(3, seed=2))
    ax.text(5.0, 0.15, "image x", ha="center", va="center", fontsize=FONT - 1)
    big, small = 0.5, 0.3
    g_fill, l_fill = _image_fills(3, seed=2)[4], _image_fills(3, seed=2)[1]
    student_views = [(big, g_fill)] * 2 + [(small, l_fill)] * n_local
    x = sx - (2 * big + n_local * small + (n_local + 1) * 0.12) / 2
    for s, fill in student_views:
        _token(ax, x + s / 2, 1.75, s, fill=fill)
        x += s + 0.12
    for k in range(2):
        _token(ax, tx - 0.31 + k * 0.62, 1.75, big, fill=g_fill)
    ax.text(
        sx, 1.2, f"2 global crops (224 px) + {n_local} local crops (96 px)", ha="center", va="center", fontsize=FONT - 1
    )
    ax.text(tx, 1.2, "the 2 global crops only", ha="center", va="center", fontsize=FONT - 1)
    _arrow(ax, (4.55, 0.55), (sx + 0.6, 1.05), text="multi-crop", text_at=0, text_offset=(0.0, 0.15), ha="center")
    _arrow(ax, (5.45, 0.55), (tx - 0.6, 1.05))
    # the two networks
    _box(ax, sx, 2.85, 2.6, 0.75, r"student $g_{\theta_s}$" "\nViT + DINO head", fill=COLORS["attn"])
    _box(ax, tx, 2.85, 2.6, 0.75, r"teacher $g_{\theta_t}$" "\nsame architecture", fill=COLORS["frozen"])
    _arrow(ax, (sx, 2.05), (sx, 2.47))
    _arrow(ax, (tx, 2.05), (tx, 2.47))
    _arrow(ax, (sx + 1.3, 2.85), (tx - 1.3, 2.85), dashed=True, color=COLORS["path"])
    ax.text(5.0, 3.2, "EMA of the weights", ha="center", va="center", fontsize=FONT - 1, color=COLORS["path"])
    ax.text(
        5.0,
        2.5,
        r"$\theta_t \leftarrow \lambda\,\theta_t + (1-\lambda)\,\theta_s$",
        ha="center",
        va="center",
        fontsize=FONT - 1,
        color=COLORS["path"],
    )
    # the heads' outputs turned into distributions
    _box(ax, sx, 4.55, 2.6, 0.6, r"softmax$(\,\cdot\,/\tau_s)$, $\tau_s = 0.1$" "\n" r"$\to p_s$", fill=COLORS["mlp"])
    _arrow(ax, (sx, 3.23), (sx, 4.25))
    _box(ax, tx, 3.85, 2.6, 0.5, r"centering: $-\,c$", fill=COLORS["norm"])
    _box(
        ax,
        tx,
        4.75,
        2.6,
        0.6,
        r"sharpening: softmax$(\,\cdot\,/\tau_t)$,"
        "\n"
        r"$\tau_t = 0.04 \to p_t$",
        fill=COLORS["mlp"],
    )
    _arrow(ax, (tx, 3.23), (tx, 3.6))
    _arrow(ax, (tx, 4.1), (tx, 4.45))
    ax.text(
        tx + 1.4,
        3.85,
        r"$c \leftarrow m\,c + (1-m)\,$" "\nbatch mean of the\nteacher's outputs",
        ha="left",
        va="center",
        fontsize=FONT - 1.5,
        color=COLORS["muted"],
    )
    # the loss
    _box(
        ax,
        5.0,
        6.05,
        6.0,
        0.75,
        r"loss: cross-entropy $-\sum p_t \log p_s$"
        "\n"
        "over every pair of different views",
        fill=COLORS["loss"],
    )
    _arrow(ax, (sx, 4.85), (sx, 5.67))
    _arrow(ax, (tx, 5.05), (tx, 5.67), color=COLORS["muted"], text="stop-gradient", text_at=0, text_offset=(0.1, 0.0))
    ax.text(
        sx + 0.1,
        5.26,
        "gradients flow\nonly into the student",
        ha="left",
        va="center",
        fontsize=FONT - 1.5,
        color=COLORS["muted"],
    )
    return fig


def draw_lora(d_in: int = 384, d_out: int = 1152, r: int = 8) -> matplotlib.figure.Figure:
    """LoRA on one linear layer: the frozen weight ``W`` beside a trainable low-rank path ``B A``
    (``A``: ``r x d_in``, random; ``B``: ``d_out x r``, zero at the start), scaled by ``alpha / r``
    and added to the output. The defaults are the ``qkv`` layer of a ViT-S at rank 8."""
    from matplotlib.patches import Polygon

    fig, ax = _canvas(7.6, 5.6)
    wx, lx = 2.0, 5.2  # centres of the frozen and the low-rank branch
    ax.text(
        3.6, 0.3, r"input $x \in \mathbb{R}^{d_{in}}$" f", $d_{{in}}$ = {d_in}", ha="center", va="center", fontsize=FONT
    )
    _arrow(ax, (3.6, 0.5), (3.6, 0.75), (wx, 0.75), (wx, 1.35))
    _arrow(ax, (3.6, 0.75), (lx, 0.75), (lx, 1.2))
    # the frozen weight
    _box(ax, wx, 2.55, 2.2, 2.3, "", fill=COLORS["frozen"])
    ax.text(wx, 2.85, r"$W$", ha="center", va="center", fontsize=FONT + 6)
    ax.text(
        wx,
        2.25,
        f"frozen\n$d_{{out}} \\times d_{{in}}$ = {d_out} × {d_in}\n{d_out * d_in:,} weights",
        ha="center",
        va="center",
        fontsize=FONT - 1,
    )
    # the low-rank path: A narrows d_in to r, B widens r to d_out
    wide, narrow = 1.5, 0.3
    ax.add_patch(
        Polygon(
            [(lx - wide / 2, 1.2), (lx + wide / 2, 1.2), (lx + narrow / 2, 2.1), (lx - narrow / 2, 2.1)],
            facecolor=COLORS["train"],
            edgecolor=COLORS["edge"],
            lw=1.0,
            zorder=2,
        )
    )
    ax.add_patch(
        Polygon(
            [
                (lx - narrow / 2, 2.45),
                (lx + narrow / 2, 2.45),
                (lx + wide / 2 + 0.2, 3.35),
                (lx - wide / 2 - 0.2, 3.35),
            ],
            facecolor=COLORS["train"],
            edgecolor=COLORS["edge"],
            lw=1.0,
            zorder=2,
        )
    )
    ax.text(lx, 1.5, r"$A$", ha="center", va="center", fontsize=FONT + 3, zorder=3)
    ax.text(lx, 3.05, r"$B$", ha="center", va="center", fontsize=FONT + 3, zorder=3)
    ax.plot([lx, lx], [2.1, 2.45], color=COLORS["edge"], lw=1.0)
    ax.text(lx + 0.25, 2.27, f"r = {r}", ha="left", va="center", fontsize=FONT - 1)
    ax.text(lx + 0.85, 1.55, "$A$: $r \\times d_{in}$\nrandom init", ha="left", va="center", fontsize=FONT - 1)
    ax.text(lx + 1.05, 3.0, "$B$: $d_{out} \\times r$\nzeros at the start", ha="left", va="center", fontsize=FONT - 1)
    ax.text(lx + 0.25, 3.65, r"$\times\ \alpha / r$", ha="left", va="center", fontsize=FONT)
    # the sum
    _adder(ax, 3.6, 4.3)
    _arrow(ax, (wx, 3.7), (wx, 4.3), (3.45, 4.3))
    _arrow(ax, (lx, 3.35), (lx, 4.3), (3.75, 4.3))
    _arrow(ax, (3.6, 4.45), (3.6, 4.85))
    ax.text(3.6, 5.05, r"$h = W x + \frac{\alpha}{r}\, B A x$", ha="center", va="center", fontsize=FONT + 2)
    n_lora = r * (d_in + d_out)
    ax.text(
        3.6,
        5.45,
        f"trainable: $r (d_{{in}} + d_{{out}})$ = {n_lora:,} parameters, {n_lora / (d_in * d_out):.1%} of $W$",
        ha="center",
        va="center",
        fontsize=FONT - 0.5,
        color=COLORS["edge"],
    )
    ax.text(
        7.5,
        0.3,
        r"after training: $W \leftarrow W + \frac{\alpha}{r} B A$" "\n(merged, no extra cost)",
        ha="right",
        va="center",
        fontsize=FONT - 1.5,
        color=COLORS["muted"],
    )
    return fig


def draw_vlm_sequence(
    n_image: int = 16, question: str = "what colour is the bag ?", answer: str = "red"
) -> matplotlib.figure.Figure:
    """A LLaVA-style VLM's input sequence: image tokens (ViT patch tokens through the connector)
    in front of the text tokens, one causal language model over both, and the loss mask: only the
    answer's tokens are targets. Position ``t`` predicts token ``t + 1``, so the input stops one
    token before ``<eos>``."""
    words = ["<bos>"] + question.split() + answer.split()
    targets = question.split() + answer.split() + ["<eos>"]
    n_answer = len(answer.split()) + 1  # the answer words and <eos>
    size, gap = 0.5, 0.1
    img_labels = [f"$v_{{{i}}}$" for i in range(min(n_image, 4))]
    if n_image > 5:
        img_labels += ["...", f"$v_{{{n_image - 1}}}$"]
    elif n_image == 5:
        img_labels += ["$v_{4}$"]
    x0_img = 0.9
    x0_txt = x0_img + len(img_labels) * (size + gap) - gap + 0.45
    width = max(0.62, 0.09 * max(len(w) for w in words) + 0.2)
    fig, ax = _canvas(x0_txt + len(words) * (width + 0.08) + 0.35, 6.8)
    xs_img = _token_row(ax, x0_img, 3.3, img_labels, [COLORS["latent"]] * len(img_labels), size=size, gap=gap)
    xs_txt = []
    for k, w in enumerate(words):
        x = x0_txt + width / 2 + k * (width + 0.08)
        _box(ax, x, 3.3, width, size, w, fill=COLORS["text"], fontsize=FONT - 1)
        xs_txt.append(x)
    ax.text(xs_img[0] - size / 2 - 0.15, 3.3, "input", ha="right", va="center", fontsize=FONT, fontweight="bold")
    # under the image tokens: connector, frozen ViT, the image
    ci = (xs_img[0] + xs_img[-1]) / 2
    wi = xs_img[-1] - xs_img[0] + size + 0.2
    _box(ax, ci, 2.3, wi, 0.55, "connector: MLP on each token alone", fill=COLORS["mlp"], fontsize=FONT - 1)
    _box(ax, ci, 1.45, wi, 0.55, "ViT (frozen): patch tokens of block k", fill=COLORS["frozen"], fontsize=FONT - 1)
    _grid(ax, ci - 0.3, 0.15, 4, 0.15, fills=_image_fills(4, seed=1))
    ax.text(ci + 0.45, 0.45, f"image: {n_image} patches", ha="left", va="center", fontsize=FONT - 1)
    _arrow(ax, (ci, 0.78), (ci, 1.17))
    _arrow(ax, (ci, 1.73), (ci, 2.02))
    _arrow(ax, (ci, 2.58), (ci, 3.3 - size / 2))
    # under the text tokens: the word embedding
    ct = (xs_txt[0] + xs_txt[-1]) / 2
    wt = xs_txt[-1] - xs_txt[0] + width + 0.2
    _box(ax, ct, 2.3, wt, 0.55, "word embedding (token ids → vectors)", fill=COLORS["linear"], fontsize=FONT - 1)
    ax.text(
        ct,
        1.45,
        f"question: \u201c{question}\u201d, answer: \u201c{answer}\u201d",
        ha="center",
        va="center",
        fontsize=FONT - 1,
    )
    _arrow(ax, (ct, 1.68), (ct, 2.02))
    _arrow(ax, (ct, 2.58), (ct, 3.3 - size / 2))
    # the language model over the whole sequence
    left, right = xs_img[0] - size / 2 - 0.1, xs_txt[-1] + width / 2 + 0.1
    _box(
        ax,
        (left + right) / 2,
        4.3,
        right - left,
        0.7,
        "causal language model: each position attends to itself and every earlier one, image tokens included",
        fill=COLORS["attn"],
        fontsize=FONT - 0.5,
    )
    for x in xs_img + xs_txt:
        if x in xs_img and img_labels[xs_img.index(x)] == "...":
            continue
        _arrow(ax, (x, 3.3 + size / 2), (x, 3.95))
    # what each text position predicts, and whether the loss counts it
    for k, (x, t) in enumerate(zip(xs_txt, targets)):
        scored = k >= len(targets) - n_answer
        _arrow(ax, (x, 4.65), (x, 5.05))
        _box(
            ax,
            x,
            5.3,
            width,
            size,
            t,
            fill=COLORS["loss"] if scored else "white",
            fontsize=FONT - 1,
            edge=COLORS["edge"] if scored else COLORS["muted"],
        )
        ax.text(
            x,
            5.85,
            "1" if scored else "0",
            ha="center",
            va="center",
            fontsize=FONT,
            fontweight="bold" if scored else "normal",
            color="#dc2626" if scored else COLORS["muted"],
        )
    ax.text(
        xs_txt[0] - width / 2 - 0.15,
        5.3,
        "target (next token)",
        ha="right",
        va="center",
        fontsize=FONT,
        fontweight="bold",
    )
    ax.text(xs_txt[0] - width / 2 - 0.15, 5.85, "loss mask", ha="right", va="center", fontsize=FONT, fontweight="bold")
    ax.text(
        ci,
        5.0,
        "image positions:\nno target, no loss",
        ha="center",
        va="center",
        fontsize=FONT - 1,
        color=COLORS["muted"],
    )
    ax.text(
        (left + right) / 2,
        6.45,
        "cross-entropy on the answer's tokens only (mask 1); the question is context, not a target",
        ha="center",
        va="center",
        fontsize=FONT,
    )
    return fig


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
        ax.plot([x0, x0 + n * cell], [y0 + i * cell] * 2, color=COLORS["muted"], lw=0.4, zorder=2)
        ax.plot([x0 + i * cell] * 2, [y0, y0 + n * cell], color=COLORS["muted"], lw=0.4, zorder=2)
    for e in edges:  # thick window borders
        ax.plot([x0, x0 + n * cell], [y0 + (n - e) * cell] * 2, color=COLORS["edge"], lw=1.8, zorder=3)
        ax.plot([x0 + e * cell] * 2, [y0, y0 + n * cell], color=COLORS["edge"], lw=1.8, zorder=3)


def draw_swin(grid: int = 8, window: int = 4) -> matplotlib.figure.Figure:
    """Swin's pyramid and its two mechanisms. Top: four stages, the token grid halved and the
    channels doubled between stages by patch merging (sizes of Swin-T at 224 pixels). Bottom, on a
    toy ``grid x grid`` token map: attention inside ``window x window`` windows, the same windows
    shifted by ``window // 2`` in the next block, and patch merging of 2x2 neighbours."""
    fig, ax = _canvas(12.0, 6.35)
    # top: the pyramid, every stage drawn over the same image area
    side = 1.7
    stages = [(4, 56, 96), (8, 28, 192), (16, 14, 384), (32, 7, 768)]  # (stride, tokens per side, channels)
    ax.text(
        6.0,
        6.1,
        "the pyramid (Swin-T at 224 × 224 pixels; cells drawn coarser than the real grids)",
        ha="center",
        va="center",
        fontsize=FONT + 1,
        fontweight="bold",
    )
    for s, (stride, tokens, ch) in enumerate(stages):
        x0 = 0.7 + s * 2.95
        n = 8 >> s  # cells drawn: 8, 4, 2, 1
        _grid(ax, x0, 4.0, n, side / n, fills=[COLORS["patch"]] * (n * n), lw=0.7)
        ax.text(x0 + side / 2, 3.75, f"stage {s + 1}: H/{stride} × W/{stride}", ha="center", va="center", fontsize=FONT)
        ax.text(
            x0 + side / 2,
            3.45,
            f"{tokens} × {tokens} tokens, C = {ch}",
            ha="center",
            va="center",
            fontsize=FONT - 1,
            color=COLORS["muted"],
        )
        if s < 3:
            _arrow(
                ax,
                (x0 + side + 0.12, 4.0 + side / 2),
                (x0 + 2.95 - 0.12, 4.0 + side / 2),
                text="patch\nmerging",
                text_at=0,
                text_offset=(0.0, 0.35),
                ha="center",
            )
    # bottom left: regular and shifted windows
    cell = 0.26
    side = grid * cell
    y0 = 0.55
    _windows(ax, 0.4, y0, grid, cell, [c for c in range(window, grid, window)])
    ax.text(
        0.4 + side / 2,
        y0 + side + 0.25,
        f"block 2i: windows of {window} × {window} tokens",
        ha="center",
        va="center",
        fontsize=FONT,
    )
    shift = window // 2
    _windows(ax, 3.3, y0, grid, cell, [c for c in range(shift, grid, window)])
    ax.text(
        3.3 + side / 2,
        y0 + side + 0.25,
        f"block 2i + 1: windows shifted by {shift}",
        ha="center",
        va="center",
        fontsize=FONT,
    )
    ax.text(
        1.85 + side / 2,
        0.2,
        "attention stays inside each coloured window; the shift lets "
        "information cross the borders\n(computed as a cyclic shift of the map with a mask, "
        f"so still {(grid // window) ** 2} windows of {window} × {window})",
        ha="center",
        va="center",
        fontsize=FONT - 1.5,
        color=COLORS["muted"],
    )
    # bottom right: patch merging of 2x2 neighbours
    quad = ["#fca5a5", "#93c5fd", "#86efac", "#fde68a"]
    mx, mcell = 6.75, 0.36
    fills, labels = [], []
    for i in range(16):
        r, c = divmod(i, 4)
        fills.append(quad[2 * (r % 2) + c % 2])
        labels.append("abcd"[2 * (r % 2) + c % 2])
    _grid(ax, mx, y0 + 0.3, 4, mcell, fills=fills, labels=labels, fontsize=FONT - 2)
    ax.text(mx + 2 * mcell, y0 + side + 0.25, "patch merging", ha="center", va="center", fontsize=FONT)
    for k in range(4):  # the concatenated vector of one 2x2 group
        _token(ax, 9.0, y0 + 0.45 + (3 - k) * 0.3, 0.3, "abcd"[k], fill=quad[k], fontsize=FONT - 2)
    _arrow(ax, (mx + 4 * mcell + 0.1, y0 + 0.3 + 2 * mcell), (8.75, y0 + 0.3 + 2 * mcell))
    ax.text(9.0, y0 + 1.85, "4C", ha="center", va="center", fontsize=FONT - 1)
    _box(ax, 10.2, y0 + 1.0, 1.3, 0.75, "LayerNorm,\nlinear 4C → 2C", fill=COLORS["mlp"], fontsize=FONT - 1.5)
    _arrow(ax, (9.2, y0 + 1.0), (9.55, y0 + 1.0))
    _grid(ax, 11.15, y0 + 0.75, 2, 0.25, fills=[COLORS["patch"]] * 4)
    _arrow(ax, (10.85, y0 + 1.0), (11.1, y0 + 1.0))
    ax.text(
        9.6,
        y0 - 0.2,
        "each 2 × 2 group of tokens becomes one token:\nhalf the grid, twice the channels",
        ha="center",
        va="center",
        fontsize=FONT - 1.5,
        color=COLORS["muted"],
    )
    return fig
