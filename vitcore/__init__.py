"""vitcore: the small, tested PyTorch package behind the ViT textbook."""

from .attention import Attention, scaled_dot_product_attention
from .block import Block, DropPath, LayerScale, Mlp
from .checkpoint import CheckpointMismatchError, load_state_dict_strict, load_weights, save_weights
from .device import autocast, get_device, on_gpu, seed_everything
from .embed import PatchEmbed, build_pos_embed, resample_pos_embed, sincos_pos_embed_1d, sincos_pos_embed_2d
from .flops import count_macs, count_params
from .patches import check_image, grid_size, num_patches, patchify, unpatchify
from .tolerance import assert_close, is_close
from .vit import PRESETS, VisionTransformer, ViTConfig, create_vit, vit_config

__version__ = "0.1.0"

__all__ = [
    "Attention",
    "scaled_dot_product_attention",
    "Block",
    "DropPath",
    "LayerScale",
    "Mlp",
    "CheckpointMismatchError",
    "load_state_dict_strict",
    "load_weights",
    "save_weights",
    "autocast",
    "get_device",
    "on_gpu",
    "seed_everything",
    "PatchEmbed",
    "build_pos_embed",
    "resample_pos_embed",
    "sincos_pos_embed_1d",
    "sincos_pos_embed_2d",
    "count_macs",
    "count_params",
    "check_image",
    "grid_size",
    "num_patches",
    "patchify",
    "unpatchify",
    "assert_close",
    "is_close",
    "PRESETS",
    "ViTConfig",
    "VisionTransformer",
    "create_vit",
    "vit_config",
]
