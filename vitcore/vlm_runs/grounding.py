"""Chapter 13's full grounding run: a VLM head on blocks of the frozen ViT-S/14 answering
referring expressions with ``<box>`` text."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..device import preserved_rng
from ..grounding import ReferringData, ground, localisation_metrics, make_referring_dataset, train_vlm
from ..scenes import FASHION_NAMES
from ..vlm import GroundingTokenizer
from .common import _composer, _settings, _start, _timed, assemble

# Every word a referring expression of vitcore.scenes can use besides the colour and item names.
_EXPRESSION_WORDS = (
    "find",
    "the",
    "on",
    "left",
    "right",
    "top",
    "bottom",
    "leftmost",
    "rightmost",
    "topmost",
    "bottommost",
)


def instruction_words(colours: list[str] | tuple[str, ...], class_names: tuple[str, ...] = FASHION_NAMES) -> list[str]:
    """The sorted vocabulary of every instruction :func:`~vitcore.grounding.make_referring_dataset`
    can write for these colours and items (fixed in advance, so a shipped model's token ids never
    depend on which words one data set happened to use)."""
    words = set(_EXPRESSION_WORDS)
    for name in (*colours, *class_names):
        words.update(GroundingTokenizer.split(name))
    return sorted(words)


def grounding_data(
    rec: dict, quick: bool = False, held_out_only: bool = False
) -> tuple[GroundingTokenizer, ReferringData | None, ReferringData]:
    """The tokenizer and the training and held-out referring data of a grounding recipe. Training
    scenes use Fashion-MNIST training images, held-out scenes test-split images (unseen garments).
    ``held_out_only``: skip the training data (returned as ``None``)."""
    d, m = rec["data"], rec["model"]
    train = None
    if not held_out_only:
        n_train = 64 if quick else d["n_train"]
        train = make_referring_dataset(_composer(d, "train"), n_train, seed=d["train_seed"], every_object=True)
    test = make_referring_dataset(_composer(d, "test"), 32 if quick else d["n_test"], seed=d["test_seed"])
    tok = GroundingTokenizer(m["words"], grid=m["grid"])
    for text in (train.instructions if train else []) + test.instructions:  # all in the fixed vocabulary
        if tok.unk_id in tok.encode(text):
            raise ValueError(f"instruction {text!r} has a word outside the recipe's vocabulary")
    return tok, train, test


@preserved_rng()  # seeded with the recipe's seed inside; the caller's random streams are left as they were
def train_grounding(
    rec: dict, device: torch.device, state_path: Path | None, progress: bool = True, quick: bool = False
) -> tuple[nn.ModuleDict, dict, dict]:
    """Train a grounding recipe: ``(head, metrics, history)``. The ViT tokens of all scenes are
    kept in ``state_path`` until the run finishes (the expensive part to recompute)."""
    m, t = rec["model"], rec["train"]
    tok, train, test = grounding_data(rec, quick)
    assert train is not None
    vit, head, f_train, f_test = _start(rec, device, train.scenes.images, test.scenes.images, state_path, progress)
    vlm = assemble(vit, head, m["layers"])
    losses, seconds, history = _timed(
        lambda: train_vlm(
            vlm,
            tok,
            train,
            steps=20 if quick else t["steps"],
            desc="grounding SFT",
            features=f_train,
            coord_sigma=t["coord_sigma"],
            **_settings(rec, progress),
        )
    )
    vlm.eval()
    head = head.cpu()
    vlm_cpu = assemble(vit.cpu(), head, m["layers"])  # the manifest's metrics: float32 on the CPU
    pred, failed, _ = ground(vlm_cpu, tok, test.images, test.instructions, features=f_test[test.scene_index])
    # (no answer parsed: no corner error; None, not NaN, in the manifest)
    metrics: dict[str, Any] = {
        k: (float(v) if v == v else None) for k, v in localisation_metrics(pred, test.boxes, failed).items()
    }
    metrics.update(
        train_seconds=seconds,
        n_train_examples=len(train),
        n_test=len(test),
        device=device.type,
        final_loss=float(sum(losses[-100:]) / len(losses[-100:])),
    )
    return head.eval(), metrics, history
