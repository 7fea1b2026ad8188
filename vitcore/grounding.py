"""Visual grounding: referring expressions on composed scenes, ``<box>`` answers, a regression baseline.

- :func:`make_referring_dataset` composes scenes with :class:`vitcore.scenes.SceneComposer`
  (objects of the same kind as distractors) and keeps, per scene, one instruction such as
  ``"find the red bag"`` or ``"find the sandal on the left"`` with the target's exact box:
  training examples ``(image, instruction, box)``.
- :func:`encode_grounding` turns instructions and boxes into token ids for a
  :class:`vitcore.vlm.VisionLanguageModel` (prompt ``<bos> instruction``, answer
  ``<box>(x1,y1,x2,y2)</box> <eos>``, loss on the answer only) and :func:`ground` decodes greedily
  and parses the box (Pix2Seq: Chen et al., 2022; Qwen-VL: Bai et al., 2023).
- :class:`BoxRegressor` is the baseline: four numbers from the CLS token, trained with
  L1 + GIoU (:func:`box_regression_loss`; Rezatofighi et al., 2019; DETR's box loss).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .boxes import BoxParseError, box_iou, dequantize_box, format_box, generalized_box_iou, parse_box, quantize_box
from .scenes import ObjectSpec, SceneComposer, Scenes, referring_expression
from .train import IndexBatches, optimise
from .vit import VisionTransformer
from .vlm import GroundingTokenizer, VisionLanguageModel

__all__ = [
    "ReferringData",
    "make_referring_dataset",
    "encode_grounding",
    "ground",
    "localisation_metrics",
    "BoxRegressor",
    "box_regression_loss",
    "word_ids",
    "optimise_indexed",
    "train_vlm",
    "train_regressor",
    "coordinate_smoothed_loss",
]


@dataclass
class ReferringData:
    """Examples ``(image, instruction, box)``: ``instructions``; ``boxes`` ``(B, 4)`` long pixel
    boxes of the targets; ``target`` ``(B,)`` the target's object index in its scene;
    ``scene_index`` ``(B,)`` the row of ``scenes`` holding the example's image (several
    examples may share one scene, so a frozen encoder runs once per scene)."""

    instructions: list[str]
    boxes: torch.Tensor
    target: torch.Tensor
    scene_index: torch.Tensor
    scenes: Scenes

    def __len__(self) -> int:
        return len(self.instructions)

    @property
    def images(self) -> torch.Tensor:
        """``(B, 3, H, W)``: the image of every example (a copy when scenes are shared)."""
        if len(self.scene_index) == len(self.scenes) and torch.equal(self.scene_index, torch.arange(len(self.scenes))):
            return self.scenes.images  # one example per scene: no copy
        return self.scenes.images[self.scene_index]

    def batch_images(self, idx: torch.Tensor) -> torch.Tensor:
        """The images of examples ``idx`` without gathering all of them."""
        return self.scenes.images[self.scene_index[idx]]

    @property
    def image_size(self) -> tuple[int, int]:
        return cast(tuple[int, int], tuple(self.scenes.images.shape[-2:]))  # images: (N, C, H, W)


def make_referring_dataset(
    composer: SceneComposer,
    n: int,
    seed: int = 0,
    same_kind: float = 0.7,
    extra_objects: tuple[int, int] = (0, 1),
    every_object: bool = False,
) -> ReferringData:
    """``n`` scenes, each with a target, a same-kind distractor (probability ``same_kind``, in another
    colour half the time, else the same colour so only its place tells them apart) and
    ``extra_objects`` (min, max) objects of other kinds. The instruction is ``"find "`` + the
    shortest unambiguous :func:`~vitcore.scenes.referring_expression` of the target.

    With ``every_object`` each scene also gives one example for every other object that has an
    unambiguous expression (more examples per image, at no extra encoder cost)."""
    if n < 1:
        raise ValueError(f"n must be positive, got {n}")
    n_cls, n_col = composer.n_item_classes, len(composer.colour_names)
    if n_cls < 2:
        raise ValueError("the composer needs Fashion-MNIST items of at least two classes")

    def spec_fn(rng: np.random.Generator) -> list[ObjectSpec]:
        c, a = int(rng.integers(n_cls)), int(rng.integers(n_col))
        objs = [ObjectSpec(label=c, colour=a)]
        if rng.random() < same_kind:
            b = a if rng.random() < 0.5 else int((a + rng.integers(1, n_col)) % n_col) if n_col > 1 else a
            objs.append(ObjectSpec(label=c, colour=b))
        others = [k for k in range(n_cls) if k != c]
        for _ in range(int(rng.integers(extra_objects[0], extra_objects[1] + 1))):
            objs.append(ObjectSpec(label=int(rng.choice(others)), colour=int(rng.integers(n_col))))
        return objs

    instr, boxes, target, scene_index = [], [], [], []
    keep: list[tuple[Scenes, int]] = []  # (batch of scenes, index in it)
    rng = np.random.default_rng(seed)
    need, rounds = n, 0
    while need > 0:
        rounds += 1
        if rounds > 20:
            raise ValueError("could not find enough scenes with an unambiguous referring expression")
        s = composer.sample(need + need // 4 + 4, seed=int(rng.integers(2**31)), spec_fn=spec_fn)
        for i in range(len(s)):
            expr = referring_expression(s, i, 0)
            if expr is None or need == 0:
                continue
            for k in range(int(s.num_objects[i]) if every_object else 1):
                e = expr if k == 0 else referring_expression(s, i, k)
                if e is None:
                    continue
                instr.append(f"find {e}")
                boxes.append(s.boxes[i, k])
                target.append(k)
                scene_index.append(len(keep))
            keep.append((s, i))
            need -= 1
    # One Scenes object for all kept scenes (re-indexed), so objects(i) matches example i.
    k_max = max(int(sc.num_objects[i]) for sc, i in keep)

    def stack(attr: str, fill: int) -> torch.Tensor:
        rows = []
        for sc, i in keep:
            t = getattr(sc, attr)[i]
            if attr in ("boxes", "labels", "colours") and t.shape[0] < k_max:
                pad = torch.full((k_max - t.shape[0],) + tuple(t.shape[1:]), fill, dtype=t.dtype)
                t = torch.cat([t, pad])
            rows.append(t)
        return torch.stack(rows)

    first = keep[0][0]
    scenes = Scenes(
        images=torch.stack([sc.images[i] for sc, i in keep]),
        boxes=stack("boxes", -1),
        labels=stack("labels", -1),
        colours=stack("colours", -1),
        instance_masks=stack("instance_masks", 0),
        semantic_masks=stack("semantic_masks", 0),
        num_objects=torch.tensor([int(sc.num_objects[i]) for sc, i in keep]),
        class_names=first.class_names,
        colour_names=first.colour_names,
        backgrounds=[sc.backgrounds[i] for sc, i in keep],
    )
    return ReferringData(instr, torch.stack(boxes), torch.tensor(target), torch.tensor(scene_index), scenes)


# ----------------------------------------------------------------------------- text in, box out
def encode_grounding(
    tok: GroundingTokenizer, instructions: Sequence[str], boxes: torch.Tensor | None, image_size: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids ``(B, L)`` (right-padded with ``<pad>``) and the answer mask ``(B, L)``.

    Sequence: ``<bos> instruction <box> ( x1 , y1 , x2 , y2 ) </box> <eos>`` with the box on the
    tokenizer's grid; with ``boxes=None`` only the prompts (then left-padded, so that every
    prompt ends at the last position, ready for :meth:`~vitcore.vlm.VisionLanguageModel.generate`).
    """
    prompts = [tok.encode(t, bos=True) for t in instructions]
    if boxes is None:
        n = max(map(len, prompts))
        lens = {len(p) for p in prompts}
        if len(lens) > 1:
            raise ValueError("prompts of different lengths: group them by length before generating")
        return torch.tensor(prompts), torch.zeros(len(prompts), n, dtype=torch.long)
    if len(boxes) != len(prompts):
        raise ValueError(f"{len(prompts)} instructions but {len(boxes)} boxes")
    q = quantize_box(boxes, image_size, tok.grid)
    seqs, masks = [], []
    for p, b in zip(prompts, q):
        a = tok.encode(format_box(b), eos=True)
        seqs.append(p + a)
        masks.append([0] * len(p) + [1] * len(a))
    n = max(map(len, seqs))
    ids = torch.full((len(seqs), n), tok.pad_id, dtype=torch.long)
    mask = torch.zeros(len(seqs), n, dtype=torch.long)
    for i, (s, m) in enumerate(zip(seqs, masks)):
        ids[i, : len(s)] = torch.tensor(s)
        mask[i, : len(m)] = torch.tensor(m)
    return ids, mask


@torch.no_grad()
def ground(
    model: VisionLanguageModel,
    tok: GroundingTokenizer,
    images: torch.Tensor,
    instructions: Sequence[str],
    batch_size: int = 256,
    features: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Greedy answers for each (image, instruction): pixel boxes ``(B, 4)`` float, a ``(B,)`` bool
    mask of answers that failed to parse (their box is all zeros) and the generated texts.
    ``features``: precomputed vision tokens ``(B, T, D_v)`` of a frozen encoder."""
    model.eval()
    image_size = cast(tuple[int, int], tuple(images.shape[-2:]))  # images: (B, C, H, W)
    out_boxes = torch.zeros(len(instructions), 4)
    failed = torch.zeros(len(instructions), dtype=torch.bool)
    texts = [""] * len(instructions)
    prompts = [tok.encode(t, bos=True) for t in instructions]
    by_len: dict[int, list[int]] = {}
    for i, p in enumerate(prompts):
        by_len.setdefault(len(p), []).append(i)
    dev = next(model.parameters()).device
    for idx_all in by_len.values():
        for j in range(0, len(idx_all), batch_size):
            idx = idx_all[j : j + batch_size]
            ids = torch.tensor([prompts[i] for i in idx], device=dev)
            vt = features[idx].to(dev) if features is not None else None
            gen = model.generate(
                None if vt is not None else images[idx].to(dev),
                ids,
                max_new_tokens=12,
                eos_id=tok.eos_id,
                vision_tokens=vt,
            ).cpu()
            for i, g in zip(idx, gen):
                texts[i] = tok.decode(g.tolist())
                try:
                    q = torch.tensor(parse_box(texts[i], grid=tok.grid))
                    out_boxes[i] = dequantize_box(q, image_size, tok.grid)
                except BoxParseError:
                    failed[i] = True
    return out_boxes, failed, texts


def localisation_metrics(pred: torch.Tensor, target: torch.Tensor, failed: torch.Tensor | None = None) -> dict:
    """``acc@0.5``, mean IoU, mean absolute corner error in pixels, parse failure rate.

    A failed parse counts as IoU 0 and is left out of the corner error."""
    failed = torch.zeros(len(pred), dtype=torch.bool) if failed is None else failed
    iou = box_iou(pred.float(), target.float()).masked_fill(failed, 0.0)
    ok = ~failed
    err = (pred[ok].float() - target[ok].float()).abs().mean().item() if ok.any() else float("nan")
    return {
        "acc@0.5": (iou >= 0.5).float().mean().item(),
        "mean_iou": iou.mean().item(),
        "corner_err_px": err,
        "parse_fail": failed.float().mean().item(),
    }


# ----------------------------------------------------------------------------- regression baseline
class BoxRegressor(nn.Module):
    """A ViT whose CLS token is read by an MLP into a box: ``sigmoid -> (cx, cy, w, h)`` in [0, 1],
    returned as pixel ``(x1, y1, x2, y2)``. The instruction is given as a bag-of-words vector
    added to the CLS output (``vocab_size`` > 0), enough to say which object is meant."""

    def __init__(self, vision: VisionTransformer, vocab_size: int = 0) -> None:
        super().__init__()
        d = vision.config.embed_dim
        self.vision = vision
        self.text = nn.Embedding(vocab_size, d) if vocab_size > 0 else None
        self.box_head = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, 4))

    def forward(
        self, images: torch.Tensor, words: torch.Tensor | None = None, vision_tokens: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``(B, C, H, W)`` [+ word ids ``(B, L)``, ``0`` = padding] -> pixel boxes ``(B, 4)``.

        ``vision_tokens`` ``(B, T, D)``: precomputed ViT output tokens (a frozen encoder); the
        images then only give the size."""
        tokens = vision_tokens if vision_tokens is not None else self.vision.forward_features(images)
        feats = tokens[:, 0]  # (B, D) CLS
        if self.text is not None:
            if words is None:
                raise ValueError("this BoxRegressor reads an instruction: pass its word ids")
            feats = feats + _bag(self.text, words)  # (B, D)
        cx, cy, w, h = self.box_head(feats).sigmoid().unbind(-1)
        hh, ww = images.shape[-2:]
        box = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1).clamp(0, 1)
        return box * torch.tensor([ww, hh, ww, hh], dtype=box.dtype, device=box.device)


def _bag(bag: nn.Embedding, words: torch.Tensor) -> torch.Tensor:
    """Mean of the non-padding (id 0) word embeddings."""
    emb = bag.weight[words]  # (B, L, D)
    keep = (words != 0).unsqueeze(-1).float()
    return (emb * keep).sum(1) / keep.sum(1).clamp(min=1)


def box_regression_loss(
    pred: torch.Tensor, target: torch.Tensor, image_size: tuple[int, int], giou_weight: float = 1.0
) -> torch.Tensor:
    """L1 on coordinates normalised to [0, 1] plus ``giou_weight * (1 - GIoU)``, averaged."""
    h, w = image_size
    scale = torch.tensor([w, h, w, h], dtype=torch.float32, device=pred.device)
    l1 = F.l1_loss(pred / scale, target.float() / scale)
    return l1 + giou_weight * (1 - generalized_box_iou(pred, target.float())).mean()


def coordinate_smoothed_loss(
    logits: torch.Tensor, target: torch.Tensor, tok: GroundingTokenizer, sigma: float = 0.0
) -> torch.Tensor:
    """Next-token cross-entropy where a coordinate token's target is a Gaussian over its
    neighbours on the grid (std ``sigma`` grid steps) instead of one-hot, so that "23" for "24"
    costs less than "5" for "24"; other tokens keep one-hot targets. ``logits`` ``(B, L, V)``,
    ``target`` ``(B, L)`` ids with ``-100`` where no loss is taken. ``sigma=0`` is plain
    cross-entropy."""
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    keep = target != -100
    t, logp = target[keep], logits[keep].log_softmax(-1)  # (M,), (M, V)
    if sigma == 0:
        return F.nll_loss(logp, t)
    q = F.one_hot(t, logits.shape[-1]).to(logp.dtype)  # (M, V)
    c0, g = tok.stoi["0"], tok.grid  # coordinate tokens are the ids c0 .. c0 + g
    is_coord = (t >= c0) & (t <= c0 + g)
    steps = torch.arange(g + 1, device=t.device, dtype=logp.dtype)
    soft = torch.exp(-0.5 * ((steps[None] - (t - c0)[:, None].to(logp.dtype)) / sigma) ** 2)  # (M, g + 1)
    q[is_coord] = 0
    q[is_coord, c0 : c0 + g + 1] = soft[is_coord] / soft[is_coord].sum(-1, keepdim=True)
    return -(q * logp).sum(-1).mean()


# ----------------------------------------------------------------------------- training loops
def optimise_indexed(
    model: nn.Module,
    loss_of: Callable[[torch.Tensor], torch.Tensor],
    n: int,
    batch_size: int,
    steps: int,
    lr: float,
    weight_decay: float,
    seed: int,
    progress: bool,
    desc: str,
    decay_all: bool = False,
) -> list[float]:
    """The schedule of the chapter 9, 12 and 13 runs: :func:`~vitcore.train.optimise` over shuffled
    whole batches of ``n`` examples (:class:`~vitcore.train.IndexBatches`), warmup for a tenth of the
    steps, cosine down to ``lr / 20``, gradients clipped at norm 1. ``loss_of(batch_indices)``
    gives the loss. Returns the loss of every step."""
    return optimise(
        model,
        loss_of,
        IndexBatches(n, batch_size, seed),
        steps,
        lr,
        weight_decay=weight_decay,
        warmup_steps=max(1, steps // 10),
        min_lr=lr / 20,
        clip_grad=1.0,
        decay_all=decay_all,
        progress=progress,
        desc=desc,
    )


def train_vlm(
    model: VisionLanguageModel,
    tok: GroundingTokenizer,
    data: ReferringData,
    epochs: int = 4,
    batch_size: int = 32,
    lr: float = 2e-3,
    weight_decay: float = 0.05,
    seed: int = 0,
    progress: bool = True,
    desc: str = "SFT",
    features: torch.Tensor | None = None,
    coord_sigma: float = 0.0,
    steps: int | None = None,
    decay_all: bool = False,
) -> list[float]:
    """Supervised fine-tuning on ``(image, instruction, box)``: answer-only cross-entropy
    (:func:`coordinate_smoothed_loss` with ``coord_sigma``), trained by :func:`optimise_indexed` for
    ``epochs`` passes or exactly ``steps`` steps. Returns the loss of every step. ``features``: precomputed
    vision tokens ``(S, T, D_v)`` of a frozen encoder, one row per scene of ``data.scenes``,
    used instead of the images."""
    dev = next(model.parameters()).device
    ids, mask = encode_grounding(tok, data.instructions, data.boxes, data.image_size)
    per_epoch = len(data) // batch_size  # whole batches only
    if per_epoch < 1:
        raise ValueError(f"{len(data)} examples do not fill one batch of {batch_size}; use batch_size <= {len(data)}")

    def loss_of(b: torch.Tensor) -> torch.Tensor:
        n = int(mask[b].nonzero()[:, 1].max()) + 1  # trim padding columns
        x, m = ids[b, :n].to(dev), mask[b, :n].to(dev)
        vt = features[data.scene_index[b]].to(dev) if features is not None else None
        logits = model.logits(None if vt is not None else data.batch_images(b).to(dev), x[:, :-1], vt)
        target = x[:, 1:].masked_fill(~m[:, 1:].bool(), -100)  # predict the answer tokens only
        return coordinate_smoothed_loss(logits, target, tok, coord_sigma)

    return optimise_indexed(
        model,
        loss_of,
        len(data),
        batch_size,
        steps if steps is not None else epochs * per_epoch,
        lr,
        weight_decay,
        seed,
        progress,
        desc,
        decay_all,
    )


def word_ids(tok: GroundingTokenizer, instructions: Sequence[str]) -> torch.Tensor:
    """Instructions -> right-padded word ids ``(B, L)`` (``<pad>`` is id 0) for :class:`BoxRegressor`."""
    enc = [tok.encode(t) for t in instructions]
    out = torch.full((len(enc), max(map(len, enc))), tok.pad_id, dtype=torch.long)
    for i, e in enumerate(enc):
        out[i, : len(e)] = torch.tensor(e)
    return out


def train_regressor(
    model: BoxRegressor,
    data: ReferringData,
    words: torch.Tensor | None = None,
    epochs: int = 4,
    batch_size: int = 32,
    lr: float = 2e-3,
    weight_decay: float = 0.05,
    seed: int = 0,
    progress: bool = True,
    desc: str = "L1+GIoU",
    features: torch.Tensor | None = None,
    decay_all: bool = False,
) -> list[float]:
    """Train the regression baseline with :func:`box_regression_loss`; returns per-step losses.
    Each epoch takes ``len(data) // batch_size`` whole batches (the partial batch is left out, as
    in :func:`train_vlm`); data smaller than one batch is a ``ValueError``.
    ``features``: precomputed tokens ``(S, T, D)`` of a frozen encoder, one row per scene of
    ``data.scenes`` (then only the head trains)."""
    dev = next(model.parameters()).device
    per_epoch = len(data) // batch_size  # whole batches only, as in train_vlm
    if per_epoch < 1:
        raise ValueError(f"{len(data)} examples do not fill one batch of {batch_size}; use batch_size <= {len(data)}")

    def loss_of(b: torch.Tensor) -> torch.Tensor:
        w = words[b].to(dev) if words is not None else None
        vt = features[data.scene_index[b]].to(dev) if features is not None else None
        return box_regression_loss(model(data.batch_images(b).to(dev), w, vt), data.boxes[b].to(dev), data.image_size)

    return optimise_indexed(
        model, loss_of, len(data), batch_size, epochs * per_epoch, lr, weight_decay, seed, progress, desc, decay_all
    )
