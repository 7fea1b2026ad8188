"""Diagrams of adaptation and VLMs (chapters 8, 12, 13): LoRA's low-rank update, a VLM's sequence."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # matplotlib is needed only to draw the diagrams
    import matplotlib.axes
    import matplotlib.figure
from ._drawing import FONT, PALETTE, _adder, _arrow, _box, _canvas, _grid, _image_fills, _label, _note, _token_row


def draw_lora(d_in: int = 384, d_out: int = 1152, r: int = 8) -> matplotlib.figure.Figure:
    """LoRA on one linear layer: the frozen weight ``W`` beside a trainable low-rank path ``B A``
    (``A``: ``r x d_in``, random; ``B``: ``d_out x r``, zero at the start), scaled by ``alpha / r``
    and added to the output. The defaults are the ``qkv`` layer of a ViT-S at rank 8."""
    from matplotlib.patches import Polygon

    fig, ax = _canvas(7.6, 5.6)
    wx, lx = 2.0, 5.2  # centres of the frozen and the low-rank branch
    _label(ax, 3.6, 0.3, r"input $x \in \mathbb{R}^{d_{in}}$" f", $d_{{in}}$ = {d_in}")
    _arrow(ax, (3.6, 0.5), (3.6, 0.75), (wx, 0.75), (wx, 1.35))
    _arrow(ax, (3.6, 0.75), (lx, 0.75), (lx, 1.2))
    # the frozen weight
    _box(ax, wx, 2.55, 2.2, 2.3, "", fill=PALETTE["frozen"])
    _label(ax, wx, 2.85, r"$W$", FONT + 6)
    _label(ax, wx, 2.25, f"frozen\n$d_{{out}} \\times d_{{in}}$ = {d_out} × {d_in}\n{d_out * d_in:,} weights", FONT - 1)
    # the low-rank path: A narrows d_in to r, B widens r to d_out
    wide, narrow = 1.5, 0.3
    ax.add_patch(
        Polygon(
            [(lx - wide / 2, 1.2), (lx + wide / 2, 1.2), (lx + narrow / 2, 2.1), (lx - narrow / 2, 2.1)],
            facecolor=PALETTE["train"],
            edgecolor=PALETTE["edge"],
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
            facecolor=PALETTE["train"],
            edgecolor=PALETTE["edge"],
            lw=1.0,
            zorder=2,
        )
    )
    _label(ax, lx, 1.5, r"$A$", FONT + 3)
    _label(ax, lx, 3.05, r"$B$", FONT + 3)
    ax.plot([lx, lx], [2.1, 2.45], color=PALETTE["edge"], lw=1.0)
    _label(ax, lx + 0.25, 2.27, f"r = {r}", FONT - 1, ha="left")
    _label(ax, lx + 0.85, 1.55, "$A$: $r \\times d_{in}$\nrandom init", FONT - 1, ha="left")
    _label(ax, lx + 1.05, 3.0, "$B$: $d_{out} \\times r$\nzeros at the start", FONT - 1, ha="left")
    _label(ax, lx + 0.25, 3.65, r"$\times\ \alpha / r$", ha="left")
    # the sum
    _adder(ax, 3.6, 4.3)
    _arrow(ax, (wx, 3.7), (wx, 4.3), (3.45, 4.3))
    _arrow(ax, (lx, 3.35), (lx, 4.3), (3.75, 4.3))
    _arrow(ax, (3.6, 4.45), (3.6, 4.85))
    _label(ax, 3.6, 5.05, r"$h = W x + \frac{\alpha}{r}\, B A x$", FONT + 2)
    n_lora = r * (d_in + d_out)
    _label(
        ax,
        3.6,
        5.45,
        f"trainable: $r (d_{{in}} + d_{{out}})$ = {n_lora:,} parameters, {n_lora / (d_in * d_out):.1%} of $W$",
        FONT - 0.5,
        color=PALETTE["edge"],
    )
    _note(
        ax,
        7.5,
        0.3,
        r"after training: $W \leftarrow W + \frac{\alpha}{r} B A$" "\n(merged, no extra cost)",
        FONT - 1.5,
        ha="right",
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
    xs_img = _token_row(ax, x0_img, 3.3, img_labels, [PALETTE["latent"]] * len(img_labels), size=size, gap=gap)
    xs_txt = []
    for k, w in enumerate(words):
        x = x0_txt + width / 2 + k * (width + 0.08)
        _box(ax, x, 3.3, width, size, w, fill=PALETTE["text"], fontsize=FONT - 1)
        xs_txt.append(x)
    _label(ax, xs_img[0] - size / 2 - 0.15, 3.3, "input", ha="right", bold=True)
    # under the image tokens: connector, frozen ViT, the image
    ci = (xs_img[0] + xs_img[-1]) / 2
    wi = xs_img[-1] - xs_img[0] + size + 0.2
    _box(ax, ci, 2.3, wi, 0.55, "connector: MLP on each token alone", fill=PALETTE["mlp"], fontsize=FONT - 1)
    _box(ax, ci, 1.45, wi, 0.55, "ViT (frozen): patch tokens of block k", fill=PALETTE["frozen"], fontsize=FONT - 1)
    _grid(ax, ci - 0.3, 0.15, 4, 0.15, fills=_image_fills(4, seed=1))
    _label(ax, ci + 0.45, 0.45, f"image: {n_image} patches", FONT - 1, ha="left")
    _arrow(ax, (ci, 0.78), (ci, 1.17))
    _arrow(ax, (ci, 1.73), (ci, 2.02))
    _arrow(ax, (ci, 2.58), (ci, 3.3 - size / 2))
    # under the text tokens: the word embedding
    ct = (xs_txt[0] + xs_txt[-1]) / 2
    wt = xs_txt[-1] - xs_txt[0] + width + 0.2
    _box(ax, ct, 2.3, wt, 0.55, "word embedding (token ids → vectors)", fill=PALETTE["linear"], fontsize=FONT - 1)
    _label(ax, ct, 1.45, f"question: \u201c{question}\u201d, answer: \u201c{answer}\u201d", FONT - 1)
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
        fill=PALETTE["attn"],
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
            fill=PALETTE["loss"] if scored else "white",
            fontsize=FONT - 1,
            edge=PALETTE["edge"] if scored else PALETTE["muted"],
        )
        _label(ax, x, 5.85, "1" if scored else "0", color="#dc2626" if scored else PALETTE["muted"], bold=scored)
    _label(ax, xs_txt[0] - width / 2 - 0.15, 5.3, "target (next token)", ha="right", bold=True)
    _label(ax, xs_txt[0] - width / 2 - 0.15, 5.85, "loss mask", ha="right", bold=True)
    _note(ax, ci, 5.0, "image positions:\nno target, no loss")
    _label(
        ax,
        (left + right) / 2,
        6.45,
        "cross-entropy on the answer's tokens only (mask 1); the question is context, not a target",
    )
    return fig
