"""Counting parameters and multiply-accumulates (MACs)."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["count_params", "count_macs"]


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of (trainable) parameters, including frozen position embeddings unless asked."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def count_macs(model: nn.Module, input_shape: tuple[int, ...] = (1, 3, 224, 224)) -> int:
    """Multiply-accumulates of one forward pass, counted by ``torch.utils.flop_counter``.

    Runs on the ``meta`` device, so even ViT-H costs no memory or time. Attention is
    counted on the explicit path (matmuls), the way timm's published GMACs count it.
    """
    restore = {}
    for m in model.modules():
        if hasattr(m, "fused_attn"):
            restore[m] = m.fused_attn
            # nn.Module.__setattr__ is typed for Tensor/Module values only; fused_attn is a bool
            m.fused_attn = False  # type: ignore[assignment]
    try:
        device = next(model.parameters()).device
        x = torch.empty(input_shape, device=device) if device.type == "meta" else torch.zeros(input_shape)
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            model(x)
    finally:
        for m, v in restore.items():
            m.fused_attn = v
    return counter.get_total_flops() // 2
