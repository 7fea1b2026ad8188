"""The zoo's full run for chapter 9: CLIP from scratch on composed scenes and their captions.

Chapter 9 trains a small CLIP live for a few epochs; the long run trains the same two towers on
more scenes for more epochs and is shipped with the package. The data, the vocabulary and the
evaluation live here so that the chapter and the run use exactly the same ones:

>>> clip = shipped.load("clip_scenes").model            # sha256-checked, eval mode
>>> data = clip_runs.clip_data(shipped.entry("clip_scenes")["recipe"], held_out_only=True)
>>> clip_runs.retrieval(clip, data)["image->text R@1"]
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .clip import CLIP, ClipTokenizer, CompactVocab, TextTransformer
from .device import preserved_mode, preserved_rng
from .scenes import FASHION_NAMES, SceneComposer, Scenes, caption
from .vit import ViTConfig

__all__ = [
    "ClipData",
    "prompts",
    "clip_vocab",
    "build_clip",
    "clip_data",
    "encode_texts",
    "prep",
    "retrieval",
    "zero_shot",
    "train_clip",
]


def prompts(colours: list[str] | tuple[str, ...], names: tuple[str, ...] = FASHION_NAMES) -> list[str]:
    """The zero-shot class prompts: ``"a red t-shirt"``, ... ; prompt ``c * len(colours) + k`` is
    colour ``k`` on item ``c``."""
    return [f"{'an' if col[0] in 'aeiou' else 'a'} {col} {name}" for name in names for col in colours]


def clip_vocab(colours: list[str] | tuple[str, ...], context_length: int = 16) -> tuple[ClipTokenizer, CompactVocab]:
    """The BPE tokenizer and the compact vocabulary of every caption :func:`vitcore.scenes.caption`
    can write about one or two of these items (fixed in advance, so a shipped text tower's
    embedding rows never depend on which captions one data set happened to hold). Built once per
    colour list and context length (reading the BPE merges takes a while), then shared."""
    return _clip_vocab(tuple(colours), context_length)


@functools.lru_cache(maxsize=8)
def _clip_vocab(colours: tuple[str, ...], context_length: int) -> tuple[ClipTokenizer, CompactVocab]:
    tokenizer = ClipTokenizer(context_length=context_length)
    singles = prompts(colours)
    texts = singles + [f"{singles[0]} left of {p}" for p in singles] + [f"{singles[0]} right of {p}" for p in singles]
    return tokenizer, CompactVocab.from_texts(tokenizer, texts)


def build_clip(spec: dict) -> CLIP:
    """A freshly initialised chapter-9 CLIP from a recipe's ``model`` part."""
    _, vocab = clip_vocab(spec["colours"], spec["context_length"])
    vision = ViTConfig(
        img_size=tuple(spec["img_size"]),
        patch_size=spec["patch_size"],
        in_chans=3,
        embed_dim=spec["width"],
        depth=spec["vision_depth"],
        num_heads=spec["num_heads"],
        num_classes=0,
    )
    text = TextTransformer(
        len(vocab),
        context_length=spec["context_length"],
        width=spec["width"],
        depth=spec["text_depth"],
        num_heads=spec["num_heads"],
        eot_id=vocab.eot_id,
    )
    return CLIP(vision, text, embed_dim=spec["embed_dim"])


@dataclass
class ClipData:
    """Training pairs (``None`` when only the held-out part was asked for), 500 held-out pairs,
    and single items in held-out (``unseen``) and training (``seen``) colour-item combinations."""

    train: Scenes | None
    train_caps: list[str] | None
    test: Scenes
    test_caps: list[str]
    unseen: Scenes
    seen: Scenes
    colours: tuple[str, ...]


def clip_data(rec: dict, quick: bool = False, held_out_only: bool = False) -> ClipData:
    """Chapter 9's scenes from a recipe: training scenes from Fashion-MNIST's training images,
    held-out ones from its test images; the colour-item pairs of ``held_out`` never appear in
    training pairs."""
    from .data import load_fashion_mnist

    d = rec["data"]
    colours = tuple(d["colours"])
    held_out = [tuple(p) for p in d["held_out"]]
    combos = [(c, k) for c in range(len(FASHION_NAMES)) for k in range(len(colours)) if (c, k) not in held_out]
    kw: dict[str, Any] = dict(
        canvas_size=tuple(d["canvas_size"]), object_size=tuple(d["object_size"]), colours=colours, background="black"
    )
    train = train_caps = None
    if not held_out_only:
        x, y = load_fashion_mnist("train")
        composer = SceneComposer(x[: d["train_items"]], y[: d["train_items"]], **kw)
        train = composer.sample(256 if quick else d["n_train"], num_objects=(1, 2), seed=d["train_seed"], combos=combos)
        rng = np.random.default_rng(d["train_seed"])  # two objects are described either way round
        train_caps = [caption(train, i, rng) for i in range(len(train))]
    x, y = load_fashion_mnist("test")
    composer = SceneComposer(x, y, **kw)
    n_test = 64 if quick else d["n_test"]
    test = composer.sample(n_test, num_objects=(1, 2), seed=d["test_seed"], combos=combos)
    rng = np.random.default_rng(d["test_seed"])
    test_caps = [caption(test, i, rng) for i in range(len(test))]
    unseen = composer.sample(n_test, num_objects=1, seed=d["test_seed"] + 1, combos=held_out)
    seen = composer.sample(n_test, num_objects=1, seed=d["test_seed"] + 2, combos=combos)
    return ClipData(train, train_caps, test, test_caps, unseen, seen, colours)


def encode_texts(tokenizer: ClipTokenizer, vocab: CompactVocab, texts: list[str]) -> torch.Tensor:
    """Compact token ids ``(B, L)`` of texts, each distinct text tokenized once; all-padding
    columns dropped."""
    distinct = sorted(set(texts))
    row = {t: i for i, t in enumerate(distinct)}
    ids = vocab(tokenizer.encode(distinct))[[row[t] for t in texts]]
    return ids[:, : int((ids > 0).sum(1).max())]


def prep(images: torch.Tensor) -> torch.Tensor:
    """``(B, 3, H, W)`` in [0, 1] -> roughly zero mean, unit variance (chapter 9's input scaling)."""
    return (images - 0.2) / 0.3


@torch.no_grad()
def retrieval(clip: CLIP, data: ClipData, ks: tuple[int, ...] = (1, 5)) -> dict[str, float]:
    """Recall@k both ways on the held-out pairs; a retrieved item counts when its scene has the
    query's description (two scenes may share one)."""
    tokenizer, vocab = clip_vocab(data.colours, clip.text.positional_embedding.shape[0])
    dev = next(clip.parameters()).device
    with preserved_mode(clip):  # evaluated in eval mode; the caller's model goes back to its mode
        clip.eval()
        img = clip.encode_image(prep(data.test.images).to(dev)).cpu()
        txt = clip.encode_text(encode_texts(tokenizer, vocab, data.test_caps).to(dev)).cpu()
    sim = img @ txt.T  # (N, N) cosine similarities
    key = np.array([caption(data.test, i) for i in range(len(data.test))])  # canonical description
    out = {}
    for name, m in (("image->text", sim), ("text->image", sim.T)):
        for k in ks:
            top = m.topk(k, dim=1).indices.numpy()
            out[f"{name} R@{k}"] = float(np.mean([(key[top[i]] == key[i]).any() for i in range(len(key))]))
    return out


@torch.no_grad()
def zero_shot(clip: CLIP, scenes: Scenes, colours: tuple[str, ...]) -> dict[str, np.ndarray]:
    """50-way zero-shot classification of single items by their prompts: per scene, is the
    prediction right for ``both``, the ``item``, the ``colour``? ``(N,)`` bool arrays."""
    tokenizer, vocab = clip_vocab(colours, clip.text.positional_embedding.shape[0])
    dev = next(clip.parameters()).device
    with preserved_mode(clip):  # evaluated in eval mode; the caller's model goes back to its mode
        clip.eval()
        class_emb = clip.encode_text(encode_texts(tokenizer, vocab, prompts(colours)).to(dev)).cpu()
        pred = (clip.encode_image(prep(scenes.images).to(dev)).cpu() @ class_emb.T).argmax(1)
    truth = scenes.labels[:, 0] * len(colours) + scenes.colours[:, 0]
    n = len(colours)
    return {
        "both": (pred == truth).numpy(),
        "item": (pred // n == truth // n).numpy(),
        "colour": (pred % n == truth % n).numpy(),
    }


@preserved_rng()  # seeded with the recipe's seed inside; the caller's random streams are left as they were
def train_clip(
    rec: dict, device: torch.device, state_path: Path | None, progress: bool = True, quick: bool = False
) -> tuple[CLIP, dict, dict]:
    """Train chapter 9's CLIP recipe: ``(model, metrics, history)``: batches of pairs, the symmetric
    contrastive loss, :func:`~vitcore.grounding.optimise_indexed`'s schedule."""
    from .device import seed_everything
    from .grounding import optimise_indexed

    m, t = rec["model"], rec["train"]
    data = clip_data(rec, quick)
    assert data.train is not None and data.train_caps is not None
    tokenizer, vocab = clip_vocab(data.colours, m["context_length"])
    ids = encode_texts(tokenizer, vocab, data.train_caps)
    images = data.train.images
    seed_everything(rec.get("seed", 0))
    clip = build_clip(m).to(device)
    steps = 20 if quick else t["epochs"] * (len(images) // t["batch_size"])

    def loss_of(b: torch.Tensor) -> torch.Tensor:
        return clip(prep(images[b]).to(device), ids[b].to(device))

    t0 = time.perf_counter()
    losses = optimise_indexed(
        clip,
        loss_of,
        len(images),
        t["batch_size"],
        steps,
        t["lr"],
        t["weight_decay"],
        rec.get("seed", 0),
        progress,
        "CLIP",
        t.get("decay_all", False),
    )
    seconds = time.perf_counter() - t0
    clip = clip.cpu().eval()  # the manifest's metrics: float32 on the CPU
    metrics: dict = {
        "train_seconds": seconds,
        "steps": steps,
        "n_train": len(images),
        "device": device.type,
        "final_loss": float(np.mean(losses[-50:])),
        "logit_scale": float(clip.logit_scale().detach()),
    }
    metrics.update(retrieval(clip, data))
    for name, scenes in (("unseen", data.unseen), ("seen", data.seen)):
        for part, hits in zero_shot(clip, scenes, data.colours).items():
            metrics[f"zero_shot_{name}_{part}"] = float(hits.mean())
    history = {"step_loss": [round(x, 4) for x in losses], "seconds": seconds}
    return clip, metrics, history
