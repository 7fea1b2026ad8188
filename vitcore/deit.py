"""DeiT (Touvron et al., 2021): a ViT with a distillation token next to CLS.

The distillation token ``dist_token`` is one more learned vector in the input sequence. It
attends and is attended to like every other token; at the output it feeds its own head,
``head_dist``, trained to agree with a *teacher* (here a CNN), while the CLS head learns the
true labels. At test time the two heads' logits are averaged. Names follow timm's
``VisionTransformerDistilled`` (``cls_token, dist_token, pos_embed, head, head_dist``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from .train import LossFn
from .vit import VisionTransformer, ViTConfig

__all__ = ["DistilledVisionTransformer", "hard_distillation_loss"]


class DistilledVisionTransformer(VisionTransformer):
    """``[CLS, DIST, patches] + positions -> blocks -> norm``; ``head`` reads CLS, ``head_dist`` reads DIST.

    A :class:`~vitcore.vit.VisionTransformer` with ``dist_token=True`` (its prefix tokens are CLS
    and DIST) and a second head.
    """

    def __init__(self, config: ViTConfig | None = None, **kwargs: Any) -> None:
        cfg = config if config is not None else ViTConfig(**kwargs)
        if config is not None and kwargs:
            cfg = dataclasses.replace(config, **kwargs)
        if not cfg.class_token or cfg.global_pool != "token" or cfg.reg_tokens:
            raise ValueError("DeiT needs class_token=True, global_pool='token' and no register tokens")
        if cfg.num_classes <= 0:
            raise ValueError("DeiT needs num_classes > 0 (it has two classification heads)")
        super().__init__(dataclasses.replace(cfg, dist_token=True))
        self.head_dist = nn.Linear(cfg.embed_dim, cfg.num_classes)
        nn.init.zeros_(self.head_dist.weight)
        nn.init.zeros_(self.head_dist.bias)

    def forward_both(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images -> ``(CLS-head logits, distillation-head logits)``, each ``(B, num_classes)``."""
        t = self.forward_features(x)  # (B, 2 + N, D)
        return self.head(self.head_drop(t[:, 0])), self.head_dist(self.head_drop(t[:, 1]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images -> the average of both heads' logits ``(B, num_classes)`` (DeiT's inference rule)."""
        cls_logits, dist_logits = self.forward_both(x)
        return (cls_logits + dist_logits) / 2


def hard_distillation_loss(teacher: nn.Module, alpha: float = 0.5, label_smoothing: float = 0.0) -> LossFn:
    """DeiT's hard-label distillation as a :func:`vitcore.train.fit` ``loss_fn``.

    ``(1 - alpha) * CE(cls_logits, y) + alpha * CE(dist_logits, argmax teacher(x))``; the teacher
    sees the same (augmented) images and is not trained. Reports the averaged logits.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)

    def loss_fn(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            y_teacher = teacher(x).argmax(-1)  # (B,) the teacher's hard decision
        cls_logits, dist_logits = cast(DistilledVisionTransformer, model).forward_both(x)
        loss = (1 - alpha) * F.cross_entropy(cls_logits, y, label_smoothing=label_smoothing) + alpha * F.cross_entropy(
            dist_logits, y_teacher
        )
        return loss, (cls_logits + dist_logits) / 2

    return loss_fn
