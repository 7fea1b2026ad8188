"""Diagrams of self-supervised pre-training (chapters 10, 11): MAE's masking, DINO's two networks."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # matplotlib is needed only to draw the diagrams
    import matplotlib.axes
    import matplotlib.figure
from ._drawing import FONT, PALETTE, _arrow, _box, _canvas, _grid, _image_fills, _label, _note, _token


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
    masked = [image[i] if i in visible else PALETTE["mask"] for i in range(n)]
    _grid(ax, 0.3, y0, grid, cell, fills=masked)
    _label(ax, 0.3 + side / 2, y0 + side + 0.3, "input patches", va="bottom", bold=True)
    _label(ax, 0.3 + side / 2, y0 - 0.3, f"{mask_ratio:.0%} masked at random\n(dark: hidden)", FONT - 1, va="top")
    # 2. only the visible patches (and CLS) enter the encoder
    tok = 0.4
    xv = 2.75
    ys = [mid + (keep / 2 - i) * (tok + 0.08) for i in range(keep + 1)]
    _token(ax, xv, ys[0], tok, "CLS", fill=PALETTE["cls"], fontsize=FONT - 2)
    for y, i in zip(ys[1:], visible):
        _token(ax, xv, y, tok, fill=image[i])
    _arrow(ax, (0.3 + side + 0.1, mid), (xv - tok / 2 - 0.1, mid))
    _label(ax, xv, ys[-1] - 0.45, f"{keep} visible\n+ CLS", FONT - 1, va="top")
    _box(
        ax,
        4.15,
        mid,
        1.6,
        2.6,
        f"encoder\n\nthe ViT,\nlarge, on\n{1 - mask_ratio:.0%} of\nthe tokens",
        fill=PALETTE["attn"],
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
            fill=PALETTE["cls"] if k == 0 else PALETTE["latent"],
            fontsize=FONT - 2,
        )
    _label(ax, xl, ys[-1] - 0.45, "latent\ntokens", FONT - 1, va="top")
    x_full = 6.55
    fills = [PALETTE["latent"] if i in visible else "white" for i in range(n)]
    _grid(ax, x_full, y0, grid, cell, fills=fills, labels=["" if i in visible else "M" for i in range(n)])
    _arrow(ax, (xl + tok / 2 + 0.05, mid), (x_full - 0.1, mid))
    _label(ax, x_full + side / 2, y0 + side + 0.3, "unshuffle, add\nmask tokens", va="bottom", bold=True)
    _label(
        ax,
        x_full + side / 2,
        y0 - 0.3,
        "M: one shared learned\nvector; + positions;\nCLS passes through",
        FONT - 1,
        va="top",
    )
    # 4. the light decoder predicts pixels for every patch
    _box(ax, 9.0, mid, 1.4, 2.6, "decoder\n\nsmall,\nall tokens,\npredicts\npixels", fill=PALETTE["mlp"])
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
    _label(ax, x_out + side / 2, y0 + side + 0.3, "reconstruction", va="bottom", bold=True)
    _box(
        ax,
        x_out + side / 2,
        0.45,
        2.6,
        0.6,
        "loss: mean squared error\non the masked patches only (red)",
        fill=PALETTE["loss"],
        fontsize=FONT - 1,
    )
    _arrow(ax, (x_out + side / 2, y0 - 0.05), (x_out + side / 2, 0.78))
    _note(ax, 6.2, 4.05, "after pre-training the decoder is thrown away; the encoder is the product")
    return fig


def draw_dino(n_local: int = 4) -> matplotlib.figure.Figure:
    """DINO's self-distillation: the student sees every crop (global and local), the teacher only
    the global ones; the teacher's output is centred and sharpened, gets no gradient, and its
    weights are an exponential moving average (EMA) of the student's."""
    fig, ax = _canvas(10.0, 6.7)
    sx, tx = 2.6, 7.4  # the student's and the teacher's columns
    # the image and its crops
    _grid(ax, 4.62, 0.3, 3, 0.25, fills=_image_fills(3, seed=2))
    _label(ax, 5.0, 0.15, "image x", FONT - 1)
    big, small = 0.5, 0.3
    g_fill, l_fill = _image_fills(3, seed=2)[4], _image_fills(3, seed=2)[1]
    student_views = [(big, g_fill)] * 2 + [(small, l_fill)] * n_local
    x = sx - (2 * big + n_local * small + (n_local + 1) * 0.12) / 2
    for s, fill in student_views:
        _token(ax, x + s / 2, 1.75, s, fill=fill)
        x += s + 0.12
    for k in range(2):
        _token(ax, tx - 0.31 + k * 0.62, 1.75, big, fill=g_fill)
    _label(ax, sx, 1.2, f"2 global crops (224 px) + {n_local} local crops (96 px)", FONT - 1)
    _label(ax, tx, 1.2, "the 2 global crops only", FONT - 1)
    _arrow(ax, (4.55, 0.55), (sx + 0.6, 1.05), text="multi-crop", text_at=0, text_offset=(0.0, 0.15), ha="center")
    _arrow(ax, (5.45, 0.55), (tx - 0.6, 1.05))
    # the two networks
    _box(ax, sx, 2.85, 2.6, 0.75, r"student $g_{\theta_s}$" "\nViT + DINO head", fill=PALETTE["attn"])
    _box(ax, tx, 2.85, 2.6, 0.75, r"teacher $g_{\theta_t}$" "\nsame architecture", fill=PALETTE["frozen"])
    _arrow(ax, (sx, 2.05), (sx, 2.47))
    _arrow(ax, (tx, 2.05), (tx, 2.47))
    _arrow(ax, (sx + 1.3, 2.85), (tx - 1.3, 2.85), dashed=True, color=PALETTE["path"])
    _label(ax, 5.0, 3.2, "EMA of the weights", FONT - 1, color=PALETTE["path"])
    _label(
        ax,
        5.0,
        2.5,
        r"$\theta_t \leftarrow \lambda\,\theta_t + (1-\lambda)\,\theta_s$",
        FONT - 1,
        color=PALETTE["path"],
    )
    # the heads' outputs turned into distributions
    _box(ax, sx, 4.55, 2.6, 0.6, r"softmax$(\,\cdot\,/\tau_s)$, $\tau_s = 0.1$" "\n" r"$\to p_s$", fill=PALETTE["mlp"])
    _arrow(ax, (sx, 3.23), (sx, 4.25))
    _box(ax, tx, 3.85, 2.6, 0.5, r"centering: $-\,c$", fill=PALETTE["norm"])
    _box(
        ax,
        tx,
        4.75,
        2.6,
        0.6,
        r"sharpening: softmax$(\,\cdot\,/\tau_t)$,"
        "\n"
        r"$\tau_t = 0.04 \to p_t$",
        fill=PALETTE["mlp"],
    )
    _arrow(ax, (tx, 3.23), (tx, 3.6))
    _arrow(ax, (tx, 4.1), (tx, 4.45))
    _note(
        ax,
        tx + 1.4,
        3.85,
        r"$c \leftarrow m\,c + (1-m)\,$" "\nbatch mean of the\nteacher's outputs",
        FONT - 1.5,
        ha="left",
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
        fill=PALETTE["loss"],
    )
    _arrow(ax, (sx, 4.85), (sx, 5.67))
    _arrow(ax, (tx, 5.05), (tx, 5.67), color=PALETTE["muted"], text="stop-gradient", text_at=0, text_offset=(0.1, 0.0))
    _note(ax, sx + 0.1, 5.26, "gradients flow\nonly into the student", FONT - 1.5, ha="left")
    return fig
