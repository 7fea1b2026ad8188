"""Looking inside a ViT: attention maps, attention rollout, attention distance, PCA colours;
and the book's architecture diagrams (``draw_*``), drawn with matplotlib so they stay editable.

Fused attention (``F.scaled_dot_product_attention``) never materialises the attention matrix,
so it cannot return it. :meth:`vitcore.vit.VisionTransformer.forward_with_attention` runs the explicit path
(same result, tested) and returns each block's weights ``(B, heads, T, T)``.

The parts, all importable from ``vitcore.viz``: ``.attention`` (the analysis) and the diagrams
``.diagrams_models``, ``.diagrams_selfsup`` and ``.diagrams_adapt`` (drawn with the kit in ``._drawing``).
"""

from .attention import (
    attention_maps,
    attention_rollout,
    cls_attention,
    mean_attention_distance,
    patch_distances,
    pca_colours,
    upsample_map,
)
from .diagrams_adapt import draw_lora, draw_vlm_sequence
from .diagrams_models import draw_deit_tokens, draw_encoder_block, draw_swin
from .diagrams_selfsup import draw_dino, draw_mae

__all__ = [
    "attention_maps",
    "cls_attention",
    "attention_rollout",
    "patch_distances",
    "mean_attention_distance",
    "upsample_map",
    "pca_colours",
    "draw_encoder_block",
    "draw_deit_tokens",
    "draw_mae",
    "draw_dino",
    "draw_lora",
    "draw_vlm_sequence",
    "draw_swin",
]
