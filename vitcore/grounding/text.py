"""Text in, box out (chapter 13): instructions and boxes as token ids for a VLM, greedy decoding
and parsing of the ``<box>`` answer, the localisation metrics, word ids for the baseline."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch

from ..boxes import BoxParseError, box_iou, dequantize_box, format_box, parse_box, quantize_box
from ..vlm import GroundingTokenizer, VisionLanguageModel


def _check_instructions(instructions: Sequence[str]) -> None:
    """A non-empty batch of instruction strings (a single string would be read letter by letter)."""
    if isinstance(instructions, str):
        raise TypeError(f"instructions must be a list of strings, got the string {instructions!r}: wrap it in a list")
    if len(instructions) == 0:
        raise ValueError("empty batch: no instructions to encode (give at least one)")
    bad = [type(t).__name__ for t in instructions if not isinstance(t, str)]
    if bad:
        raise TypeError(f"instructions must be strings, got {sorted(set(bad))}")


def encode_grounding(
    tok: GroundingTokenizer, instructions: Sequence[str], boxes: torch.Tensor | None, image_size: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids ``(B, L)`` (right-padded with ``<pad>``) and the answer mask ``(B, L)``.

    Sequence: ``<bos> instruction <box> ( x1 , y1 , x2 , y2 ) </box> <eos>`` with the box on the
    tokenizer's grid; with ``boxes=None`` only the prompts (then left-padded, so that every
    prompt ends at the last position, ready for :meth:`~vitcore.vlm.VisionLanguageModel.generate`).
    An empty batch, and text the tokenizer refuses (unknown words, typed special tokens), is a
    ``ValueError``.
    """
    _check_instructions(instructions)
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
        a = tok.encode(format_box(b), eos=True, answer=True)
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
    _check_instructions(instructions)
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


def word_ids(tok: GroundingTokenizer, instructions: Sequence[str]) -> torch.Tensor:
    """Instructions -> right-padded word ids ``(B, L)`` (``<pad>`` is id 0) for :class:`BoxRegressor`."""
    _check_instructions(instructions)
    enc = [tok.encode(t) for t in instructions]
    out = torch.full((len(enc), max(map(len, enc))), tok.pad_id, dtype=torch.long)
    for i, e in enumerate(enc):
        out[i, : len(e)] = torch.tensor(e)
    return out
