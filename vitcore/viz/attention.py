"""Looking inside a ViT (chapter 7): attention maps, attention rollout, attention distance, PCA colours.

Fused attention (``F.scaled_dot_product_attention``) never materialises the attention matrix,
so it cannot return it. :meth:`vitcore.vit.VisionTransformer.forward_with_attention` runs the explicit path
(same result, tested) and returns each block's weights ``(B, heads, T, T)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..vit import VisionTransformer


@torch.no_grad()
def attention_maps(model: VisionTransformer, images: torch.Tensor) -> list[torch.Tensor]:
    """Every block's attention weights, a list of ``depth`` tensors ``(B, heads, T, T)``."""
    was_training = model.training
    model.eval()
    _, maps = model.forward_with_attention(images)
    model.train(was_training)
    return maps


def cls_attention(attn: torch.Tensor, grid: tuple[int, int], num_prefix_tokens: int = 1) -> torch.Tensor:
    """How much the CLS token (query 0) attends to each patch: ``(B, h, T, T) -> (B, h, gh, gw)``."""
    n = grid[0] * grid[1]
    if attn.shape[-1] != num_prefix_tokens + n:
        raise ValueError(f"attention over {attn.shape[-1]} tokens does not match {num_prefix_tokens} + {grid} patches")
    return attn[..., 0, num_prefix_tokens:].reshape(*attn.shape[:-2], *grid)


def attention_rollout(attns: list[torch.Tensor], head_fusion: str = "mean", residual: bool = True) -> torch.Tensor:
    """Attention rollout (Abnar & Zuidema, 2020): how much each output token draws on each input token.

    Heads are fused (``mean``/``max``/``min``), the residual connection is modelled as
    ``0.5 * A + 0.5 * I`` with rows renormalised, and the layers' matrices are multiplied from the
    first block to the last. ``-> (B, T, T)``.
    """
    fuse = {"mean": lambda a: a.mean(1), "max": lambda a: a.amax(1), "min": lambda a: a.amin(1)}
    if head_fusion not in fuse:
        raise ValueError(f"head_fusion must be one of {sorted(fuse)}, got {head_fusion!r}")
    rollout = None
    for attn in attns:
        a = fuse[head_fusion](attn.float())  # (B, T, T)
        if residual:
            a = 0.5 * a + 0.5 * torch.eye(a.shape[-1], device=a.device)
        a = a / a.sum(-1, keepdim=True)
        rollout = a if rollout is None else a @ rollout
    if rollout is None:
        raise ValueError("no attention maps given")
    return rollout


def patch_distances(grid: tuple[int, int], patch_size: int) -> torch.Tensor:
    """Euclidean distance in pixels between patch centres: ``(N, N)``."""
    r, c = torch.meshgrid(torch.arange(grid[0]), torch.arange(grid[1]), indexing="ij")
    centres = torch.stack([r.flatten(), c.flatten()], -1).float() * patch_size  # (N, 2)
    return torch.cdist(centres, centres)


def mean_attention_distance(
    attn: torch.Tensor, grid: tuple[int, int], patch_size: int, num_prefix_tokens: int = 1
) -> torch.Tensor:
    """Mean pixel distance between a query patch and the patches it attends to, per head.

    The ViT paper's Figure 7 (right): attention weights among patch tokens (prefix tokens
    dropped, rows renormalised) weight the distance matrix; averaged over queries and images.
    ``(B, h, T, T) -> (h,)``.
    """
    p = attn[..., num_prefix_tokens:, num_prefix_tokens:].float()  # (B, h, N, N)
    p = p / p.sum(-1, keepdim=True).clamp(min=1e-12)
    dist = patch_distances(grid, patch_size).to(p.device)  # (N, N)
    return (p * dist).sum(-1).mean(dim=(0, 2))  # (h,)


def upsample_map(heat: torch.Tensor, size: tuple[int, int], normalise: bool = True) -> torch.Tensor:
    """A patch-grid map ``(..., gh, gw)`` -> image size ``(..., H, W)`` (bilinear), scaled to [0, 1]."""
    lead = heat.shape[:-2]
    x = F.interpolate(heat.reshape(-1, 1, *heat.shape[-2:]).float(), size=size, mode="bilinear", align_corners=False)
    x = x.reshape(*lead, *size)
    if normalise:
        lo = x.flatten(-2).amin(-1)[..., None, None]
        hi = x.flatten(-2).amax(-1)[..., None, None]
        x = (x - lo) / (hi - lo).clamp(min=1e-12)
    return x


def pca_colours(features: torch.Tensor, n_components: int = 3) -> torch.Tensor:
    """Project features ``(..., D)`` on their first principal components, scaled to [0, 1] per component.

    All leading dimensions share one PCA (fit on every row), so colours compare across images.
    """
    flat = features.reshape(-1, features.shape[-1]).float()
    centred = flat - flat.mean(0, keepdim=True)
    _, _, v = torch.linalg.svd(centred, full_matrices=False)
    proj = centred @ v[:n_components].T  # (M, k)
    lo, hi = proj.amin(0, keepdim=True), proj.amax(0, keepdim=True)
    return ((proj - lo) / (hi - lo).clamp(min=1e-12)).reshape(*features.shape[:-1], n_components)
