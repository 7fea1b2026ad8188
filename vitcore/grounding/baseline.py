"""The regression baseline (chapter 13): four numbers from the CLS token, trained with L1 + GIoU
(Rezatofighi et al., 2019; DETR's box loss)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..boxes import generalized_box_iou
from ..vit import VisionTransformer


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
