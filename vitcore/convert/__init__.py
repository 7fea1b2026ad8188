"""Loading real checkpoints into ``vitcore`` (chapter 4; chapters 8 and 11 load Hugging Face
weights with it): timm, Hugging Face ``ViT`` and ``Dinov2`` layouts.

``vitcore`` uses timm's parameter names, so a timm ``vit_*`` state dict loads as it is; only its
architecture has to be read off the tensor shapes. Hugging Face keeps query, key and value as
three linear layers and names everything differently; we rename its keys and concatenate
``q, k, v`` into our single ``qkv`` layer. Every converter ends in
:func:`vitcore.checkpoint.load_state_dict_strict`, so a key that does not fit is named, never
silently dropped (except the few listed in ``HF_IGNORED``, which have no place in a ViT
encoder and are reported with a warning).

The parts, all importable from ``vitcore.convert``: ``.from_timm`` (timm's layout) and
``.from_hf`` (Hugging Face's).
"""

from .from_hf import (
    HF_IGNORED,
    hf_dinov2_config,
    hf_dinov2_state_dict,
    hf_vit_config,
    hf_vit_state_dict,
    vit_from_hf_dinov2,
    vit_from_hf_vit,
)
from .from_timm import infer_timm_config, vit_from_timm

__all__ = [
    "HF_IGNORED",
    "infer_timm_config",
    "vit_from_timm",
    "hf_vit_config",
    "hf_vit_state_dict",
    "vit_from_hf_vit",
    "hf_dinov2_config",
    "hf_dinov2_state_dict",
    "vit_from_hf_dinov2",
]
