"""Diagrams of the models (chapters 4, 6, 15): the encoder block, DeiT's tokens, Swin's windows."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # matplotlib is needed only to draw the diagrams
    import matplotlib.axes
    import matplotlib.figure
from ._drawing import (
    FONT,
    PALETTE,
    _adder,
    _arrow,
    _box,
    _canvas,
    _grid,
    _image_fills,
    _label,
    _note,
    _token,
    _token_row,
    _windows,
)


def draw_encoder_block() -> matplotlib.figure.Figure:
    """The encoder block wired two ways, side by side: pre-norm (ViT) and post-norm (the original
    Transformer). The pre-norm panel marks the identity path from input to output in green: no
    LayerNorm sits on it. In post-norm every path from input to output crosses two LayerNorms."""
    fig, ax = _canvas(9.0, 7.6)
    bw, bh, skip = 2.3, 0.5, 1.5  # box width and height, horizontal offset of the skip lines
    y_in, y_out = 0.95, 6.5  # where the input arrow starts and the output arrow ends
    # the two panels, pre-norm (ViT) on the left, post-norm on the right
    styles, cxs = ("pre", "post"), (2.6, 7.0)
    titles = ("pre-norm (ViT, most Transformers since)", "post-norm (original Transformer)")
    eqs = (
        r"$z' = z + \mathrm{MSA}(\mathrm{LN}(z))$" "\n" r"$z_{\mathrm{out}} = z' + \mathrm{MLP}(\mathrm{LN}(z'))$",
        r"$z' = \mathrm{LN}(z + \mathrm{MSA}(z))$" "\n" r"$z_{\mathrm{out}} = \mathrm{LN}(z' + \mathrm{MLP}(z'))$",
    )
    columns = (  # (kind, y) from the input upwards
        [("norm", 2.05), ("attn", 2.85), ("add", 3.6), ("norm", 4.45), ("mlp", 5.25), ("add", 6.0)],
        [("attn", 2.05), ("add", 2.8), ("norm", 3.45), ("mlp", 4.45), ("add", 5.2), ("norm", 5.85)],
    )
    skips = ([(1.45, 3.6), (3.95, 6.0)], [(1.45, 2.8), (3.95, 5.2)])  # (y where a skip leaves, y of its adder)
    notes = (
        "green: the identity path from input to output, with no\nLayerNorm on it "
        "(one final LayerNorm follows the last block)",
        "every path from input to output crosses both\nLayerNorms: 2L of them through L blocks",
    )
    labels = {"norm": "LayerNorm", "attn": "Multi-head attention", "mlp": "MLP (4D wide, GELU)"}
    half = {"add": 0.15, "norm": bh / 2, "attn": bh / 2, "mlp": bh / 2, "in": 0.0, "out": 0.0}
    for style, cx, title, eq, column, skip_ys, note in zip(styles, cxs, titles, eqs, columns, skips, notes):
        _label(ax, cx, 7.5, title, FONT + 1, va="top", bold=True)
        _label(ax, cx, 7.1, eq, va="top")
        _label(ax, cx, y_in - 0.2, r"input $z$: $N$ tokens $\times$ $D$")
        _label(ax, cx, y_out + 0.08, r"output $z_{\mathrm{out}}$", va="bottom")
        items = [("in", y_in), *column, ("out", y_out)]
        for (k0, y0), (k1, y1) in zip(items, items[1:]):
            # pre-norm: the stream segments between input, adders and output carry the identity path
            identity = style == "pre" and k0 in ("in", "add") and k1 in ("add", "out", "norm")
            if identity and k1 == "norm":  # only the part below the skip's departure is on it
                ax.plot([cx, cx], [y0 + half[k0], 1.45 if y1 < 3 else 3.95], color=PALETTE["path"], lw=1.1, zorder=1)
                _arrow(ax, (cx, 1.45 if y1 < 3 else 3.95), (cx, y1 - half[k1]))
                continue
            _arrow(ax, (cx, y0 + half[k0]), (cx, y1 - half[k1]), color=PALETTE["path"] if identity else PALETTE["edge"])
        for kind, y in column:
            if kind == "add":
                _adder(ax, cx, y)
            else:
                _box(ax, cx, y, bw, bh, labels[kind], fill=PALETTE[kind])
        color = PALETTE["path"] if style == "pre" else PALETTE["edge"]
        for y_from, y_add in skip_ys:
            _arrow(ax, (cx, y_from), (cx - skip, y_from), (cx - skip, y_add), (cx - 0.15, y_add), color=color)
            _label(
                ax, cx - skip - 0.07, (y_from + y_add) / 2, "residual", FONT - 1, ha="right", color=color, rotation=90
            )
        note_x, note_color = (cx - 0.6, PALETTE["path"]) if style == "pre" else (cx, PALETTE["muted"])
        _label(ax, note_x, 0.3, note, FONT - 1.5, color=note_color)
    return fig


def draw_deit_tokens(n_patches: int = 16) -> matplotlib.figure.Figure:
    """DeiT's token layout: ``[CLS, DIST, patch_1 .. patch_N]`` plus positions, one encoder, and
    two heads: CLS -> ``head`` (true label), DIST -> ``head_dist`` (the CNN teacher's label)."""
    fig, ax = _canvas(9.4, 5.6)
    n = 4  # patches drawn before the ellipsis
    labels = ["CLS", "DIST"] + [f"$p_{{{i}}}$" for i in range(1, n + 1)] + ["...", f"$p_{{{n_patches}}}$"]
    fills = [PALETTE["cls"], PALETTE["dist"]] + [PALETTE["patch"]] * (n + 2)
    x0, size = 2.3, 0.55
    # input: the image, cut into patches
    _grid(ax, 0.25, 0.5, 4, 0.3, fills=_image_fills(4))
    _label(ax, 0.85, 0.3, "image, cut into patches", FONT - 1)
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
    _label(ax, (xs[0] + xs[1]) / 2, y_in - 0.45, "learned vectors", FONT - 1.5)
    _label(ax, xs[-1] + 0.45, y_in, f"+ position embedding\n({n_patches} + 2 rows)", FONT - 1, ha="left")
    # the encoder, over all tokens
    left, right = xs[0] - 0.4, xs[-1] + 0.4
    _box(
        ax,
        (left + right) / 2,
        2.3,
        right - left,
        0.7,
        f"Transformer encoder: L blocks, every token attends to all {n_patches} + 2",
        fill=PALETTE["attn"],
    )
    for x in xs:
        if x != xs[-2]:
            _arrow(ax, (x, y_in + size / 2), (x, 1.95))
            _arrow(ax, (x, 2.65), (x, 3.15 - size / 2))
    y_out = 3.15
    out_fills = [PALETTE["cls"], PALETTE["dist"]] + ["white"] * (n + 2)
    _token_row(ax, x0, y_out, labels, out_fills, size=size)
    _note(ax, (xs[2] + xs[-1]) / 2, y_out + 0.5, "patch outputs: not used for the class")
    # the two heads
    _box(ax, xs[0] - 0.9, 4.1, 1.3, 0.5, "head", fill=PALETTE["linear"])
    _box(ax, xs[1] + 1.3, 4.1, 1.5, 0.5, "head_dist", fill=PALETTE["linear"])
    _arrow(ax, (xs[0], y_out + size / 2), (xs[0], 3.6), (xs[0] - 0.9, 3.6), (xs[0] - 0.9, 3.85))
    _arrow(ax, (xs[1], y_out + size / 2), (xs[1], 3.6), (xs[1] + 1.3, 3.6), (xs[1] + 1.3, 3.85))
    _box(ax, xs[0] - 0.9, 5.0, 2.2, 0.6, "$Z_s$: cross-entropy\nwith the true label $y$", fill=PALETTE["loss"])
    _box(ax, xs[1] + 1.3, 5.0, 2.4, 0.6, "$Z_d$: cross-entropy with\nthe teacher's label $y_t$", fill=PALETTE["loss"])
    _arrow(ax, (xs[0] - 0.9, 4.35), (xs[0] - 0.9, 4.7))
    _arrow(ax, (xs[1] + 1.3, 4.35), (xs[1] + 1.3, 4.7))
    # the teacher
    tx = 8.0
    _box(ax, tx, 5.0, 2.4, 0.6, "CNN teacher (frozen),\nsame augmented image", fill=PALETTE["frozen"])
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
    _note(
        ax,
        7.8,
        3.85,
        "at test time: vitcore and timm average the\ntwo heads' logits; the DeiT paper adds\ntheir softmax outputs",
    )
    return fig


def draw_swin(grid: int = 8, window: int = 4) -> matplotlib.figure.Figure:
    """Swin's pyramid and its two mechanisms. Top: four stages, the token grid halved and the
    channels doubled between stages by patch merging (sizes of Swin-T at 224 pixels). Bottom, on a
    toy ``grid x grid`` token map: attention inside ``window x window`` windows, the same windows
    shifted by ``window // 2`` in the next block, and patch merging of 2x2 neighbours."""
    fig, ax = _canvas(12.0, 6.35)
    # top: the pyramid, every stage drawn over the same image area
    side = 1.7
    stages = [(4, 56, 96), (8, 28, 192), (16, 14, 384), (32, 7, 768)]  # (stride, tokens per side, channels)
    _label(
        ax,
        6.0,
        6.1,
        "the pyramid (Swin-T at 224 × 224 pixels; cells drawn coarser than the real grids)",
        FONT + 1,
        bold=True,
    )
    for s, (stride, tokens, ch) in enumerate(stages):
        x0 = 0.7 + s * 2.95
        n = 8 >> s  # cells drawn: 8, 4, 2, 1
        _grid(ax, x0, 4.0, n, side / n, fills=[PALETTE["patch"]] * (n * n), lw=0.7)
        _label(ax, x0 + side / 2, 3.75, f"stage {s + 1}: H/{stride} × W/{stride}")
        _note(ax, x0 + side / 2, 3.45, f"{tokens} × {tokens} tokens, C = {ch}")
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
    _label(ax, 0.4 + side / 2, y0 + side + 0.25, f"block 2i: windows of {window} × {window} tokens")
    shift = window // 2
    _windows(ax, 3.3, y0, grid, cell, [c for c in range(shift, grid, window)])
    _label(ax, 3.3 + side / 2, y0 + side + 0.25, f"block 2i + 1: windows shifted by {shift}")
    _note(
        ax,
        1.85 + side / 2,
        0.2,
        "attention stays inside each coloured window; the shift lets "
        "information cross the borders\n(computed as a cyclic shift of the map with a mask, "
        f"so still {(grid // window) ** 2} windows of {window} × {window})",
        FONT - 1.5,
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
    _label(ax, mx + 2 * mcell, y0 + side + 0.25, "patch merging")
    for k in range(4):  # the concatenated vector of one 2x2 group
        _token(ax, 9.0, y0 + 0.45 + (3 - k) * 0.3, 0.3, "abcd"[k], fill=quad[k], fontsize=FONT - 2)
    _arrow(ax, (mx + 4 * mcell + 0.1, y0 + 0.3 + 2 * mcell), (8.75, y0 + 0.3 + 2 * mcell))
    _label(ax, 9.0, y0 + 1.85, "4C", FONT - 1)
    _box(ax, 10.2, y0 + 1.0, 1.3, 0.75, "LayerNorm,\nlinear 4C → 2C", fill=PALETTE["mlp"], fontsize=FONT - 1.5)
    _arrow(ax, (9.2, y0 + 1.0), (9.55, y0 + 1.0))
    _grid(ax, 11.15, y0 + 0.75, 2, 0.25, fills=[PALETTE["patch"]] * 4)
    _arrow(ax, (10.85, y0 + 1.0), (11.1, y0 + 1.0))
    _note(
        ax,
        9.6,
        y0 - 0.2,
        "each 2 × 2 group of tokens becomes one token:\nhalf the grid, twice the channels",
        FONT - 1.5,
    )
    return fig
