"""Chapter 12's full runs: one VLM head per ViT-S/14 block answering "what colour is the X?" and
"which item is on the left?" about scenes of two garments."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..device import preserved_mode, preserved_rng
from ..scenes import FASHION_NAMES, SceneComposer
from ..vlm import GroundingTokenizer, VisionLanguageModel
from .common import _composer, _settings, _start, _timed, assemble

QA_WORDS = ("what", "colour", "is", "the", "which", "item", "on", "left", "?")


def qa_words(colours: list[str] | tuple[str, ...], class_names: tuple[str, ...] = FASHION_NAMES) -> list[str]:
    """The sorted vocabulary of chapter 12's questions and answers for these colours and items."""
    words = set(QA_WORDS)
    for name in (*colours, *class_names):
        words.update(GroundingTokenizer.split(name))
    return sorted(words)


def two_item_scenes(composer: SceneComposer, n: int, seed: int):
    """``n`` scenes of two items of different kinds in different colours (chapter 12)."""

    from ..scenes import ObjectSpec

    def two_different(rng: np.random.Generator) -> list[ObjectSpec]:
        c = rng.choice(composer.n_item_classes, size=2, replace=False)
        k = rng.choice(len(composer.colour_names), size=2, replace=False)
        return [ObjectSpec(label=int(c[0]), colour=int(k[0])), ObjectSpec(label=int(c[1]), colour=int(k[1]))]

    return composer.sample(n, seed=seed, spec_fn=two_different)


def scene_questions(scenes, every_item: bool, seed: int) -> list[tuple[int, str, str, str]]:
    """``(scene, kind, question, answer)`` for each scene: the colour of each item (``every_item``)
    or of one picked at random, and which item is on the left."""
    import numpy as np

    rng = np.random.default_rng(seed)
    qa = []
    for i in range(len(scenes)):
        objs = scenes.objects(i)
        left = min(objs, key=lambda o: o["centre"][0])
        picks = objs if every_item else [objs[int(rng.integers(len(objs)))]]
        qa += [(i, "colour", f"what colour is the {o['name']} ?", o["colour_name"]) for o in picks]
        qa.append((i, "left", "which item is on the left ?", left["name"]))
    return qa


def qa_data(rec: dict, quick: bool = False, held_out_only: bool = False):
    """Chapter 12's data from a recipe: ``(tok, train_scenes, train_qa, test_scenes, test_qa)``.
    Training scenes use Fashion-MNIST training images, held-out scenes test-split images;
    ``held_out_only`` returns ``None`` for the training part."""
    d, m = rec["data"], rec["model"]
    tok = GroundingTokenizer(m["words"], grid=m["grid"])
    train_scenes = train_qa = None
    if not held_out_only:
        train_scenes = two_item_scenes(_composer(d, "train"), 64 if quick else d["n_train"], d["train_seed"])
        train_qa = scene_questions(train_scenes, every_item=True, seed=d["train_seed"])
    test_scenes = two_item_scenes(_composer(d, "test"), 32 if quick else d["n_test"], d["test_seed"])
    test_qa = scene_questions(test_scenes, every_item=False, seed=d["test_seed"])
    return tok, train_scenes, train_qa, test_scenes, test_qa


def encode_qa(tok: GroundingTokenizer, qa: list) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids ``<bos> question answer <eos>`` (right-padded) ``(B, L)`` and the answer mask."""
    seqs = [(tok.encode(q, bos=True), tok.encode(a, eos=True)) for _, _, q, a in qa]
    n = max(len(p) + len(a) for p, a in seqs)
    ids = torch.full((len(seqs), n), tok.pad_id)
    mask = torch.zeros(len(seqs), n, dtype=torch.long)
    for r, (p, a) in enumerate(seqs):
        ids[r, : len(p) + len(a)] = torch.tensor(p + a)
        mask[r, len(p) : len(p) + len(a)] = 1
    return ids, mask


@torch.no_grad()
def answer_questions(vlm: VisionLanguageModel, tok: GroundingTokenizer, features: torch.Tensor, qa: list) -> list[str]:
    """Greedy answers to ``(scene, kind, question, answer)`` questions; ``features`` holds one row
    of cached ViT tokens per scene. Batched over questions with the same wording."""
    dev = next(vlm.parameters()).device
    out = [""] * len(qa)
    with preserved_mode(vlm):  # answered in eval mode; the caller's model goes back to its mode
        vlm.eval()
        for text in sorted({q[2] for q in qa}):
            rows = [r for r, q in enumerate(qa) if q[2] == text]
            prompt = torch.tensor([tok.encode(text, bos=True)] * len(rows), device=dev)
            vt = features[torch.tensor([qa[r][0] for r in rows])].to(dev)
            gen = vlm.generate(None, prompt, max_new_tokens=4, eos_id=tok.eos_id, vision_tokens=vt)
            for r, g in zip(rows, gen.cpu()):
                out[r] = tok.decode(g.tolist())
    return out


def correct_answers(
    vlm: VisionLanguageModel, tok: GroundingTokenizer, features: torch.Tensor, qa: list
) -> torch.Tensor:
    """``(len(qa),)`` bool: is the greedy answer to each question right?"""
    said = answer_questions(vlm, tok, features, qa)
    return torch.tensor([s == tok.decode(tok.encode(q[3])) for s, q in zip(said, qa)])


def train_vqa(
    vlm: VisionLanguageModel,
    tok: GroundingTokenizer,
    qa: list,
    features: torch.Tensor,
    steps: int,
    batch_size: int = 64,
    *,
    desc: str = "VQA",
    **schedule: Any,
) -> list[float]:
    """Train a VLM's connector and LM on question answering over cached ViT tokens (answer-only
    cross-entropy, :func:`~vitcore.grounding.optimise_indexed`'s schedule, which takes the other
    keywords: ``lr``, ``weight_decay``, ``seed``, ``progress``, ``decay_all``). Returns the losses."""
    from ..grounding import optimise_indexed

    dev = next(p for p in vlm.parameters() if p.requires_grad).device
    ids, mask = encode_qa(tok, qa)
    scene = torch.tensor([q[0] for q in qa])

    def loss_of(b: torch.Tensor) -> torch.Tensor:
        n = int(mask[b].nonzero()[:, 1].max()) + 1  # trim padding columns
        return vlm.loss(None, ids[b, :n].to(dev), mask[b, :n].to(dev), vision_tokens=features[scene[b]].to(dev))

    return optimise_indexed(vlm, loss_of, len(qa), batch_size, steps, desc=desc, **schedule)


def shuffle_tokens(tokens: torch.Tensor, seed: int) -> torch.Tensor:
    """``(B, 1 + N, D)`` tokens with the N patch tokens in one fixed random order (the same for
    every image, drawn from ``seed``); the CLS token stays first."""
    perm = torch.randperm(tokens.shape[1] - 1, generator=torch.Generator().manual_seed(seed))
    return torch.cat([tokens[:, :1], tokens[:, 1:][:, perm]], dim=1)


@preserved_rng()  # seeded with the recipe's seed inside; the caller's random streams are left as they were
def train_scene_qa(
    rec: dict, device: torch.device, state_path: Path | None, progress: bool = True, quick: bool = False
) -> tuple[nn.ModuleDict, dict, dict]:
    """Train a chapter-12 recipe (one ViT block's tokens): ``(head, metrics, history)``; metrics
    hold the held-out accuracy per question kind and the answer prior (the most frequent answer)."""
    m, t = rec["model"], rec["train"]
    tok, train_scenes, tr_qa, test_scenes, te_qa = qa_data(rec, quick)
    vit, head, f_train, f_test = _start(rec, device, train_scenes.images, test_scenes.images, state_path, progress)
    if "token_order_seed" in m:  # chapter 12, exercise 3: patch tokens in a fixed shuffled order
        f_train, f_test = (shuffle_tokens(f, m["token_order_seed"]) for f in (f_train, f_test))
    prefix = bool(m.get("use_prefix_tokens", False))  # exercise 1: the CLS token too
    vlm = assemble(vit, head, m["layers"], prefix)
    desc = f"VQA, block {m['layers']}"
    steps = 20 if quick else t["steps"]
    losses, seconds, history = _timed(
        lambda: train_vqa(vlm, tok, tr_qa, f_train, steps, desc=desc, **_settings(rec, progress))
    )
    head = head.cpu()
    vlm_cpu = assemble(vit.cpu(), head, m["layers"], prefix)  # the manifest's metrics: float32 on the CPU
    metrics: dict = {
        "train_seconds": seconds,
        "n_train_questions": len(tr_qa),
        "n_test_scenes": len(test_scenes),
        "device": device.type,
        "final_loss": float(sum(losses[-100:]) / len(losses[-100:])),
    }
    for kind in ("colour", "left"):
        qs = [q for q in te_qa if q[1] == kind]
        metrics[f"acc_{kind}"] = float(correct_answers(vlm_cpu, tok, f_test, qs).float().mean())
        answers = [q[3] for q in qs]
        metrics[f"prior_{kind}"] = max(answers.count(a) for a in set(answers)) / len(answers)
    return head.eval(), metrics, history
