"""The Vision Transformer (Dosovitskiy et al., 2021).

Module and parameter names follow timm's ``vision_transformer.py`` (``patch_embed.proj``,
``cls_token``, ``reg_token``, ``pos_embed``, ``blocks.N.attn.qkv``, ``blocks.N.mlp.fc1``,
``norm``, ``head``) so that real checkpoints map onto it key for key.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .block import Block
from .embed import PatchEmbed, build_pos_embed, resample_pos_embed

__all__ = ["ViTConfig", "VisionTransformer", "PRESETS", "vit_config", "create_vit"]


POS_EMBEDS = ("learn", "sincos1d", "sincos2d", "none")  # ViTConfig.pos_embed
NORM_STYLES = ("pre", "post")  # ViTConfig.norm_style


@dataclass
class ViTConfig:
    """Everything that defines a ViT's architecture."""

    img_size: int | tuple[int, int] = 224
    patch_size: int = 16
    in_chans: int = 3
    num_classes: int = 1000  # 0 -> no head, forward() returns pooled features
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    class_token: bool = True
    dist_token: bool = False  # DeiT's distillation token, after CLS (Touvron et al., 2021; chapter 6)
    reg_tokens: int = 0  # register tokens (Darcet et al., 2024)
    global_pool: str = "token"  # "token" (CLS) or "avg" (mean of patch tokens)
    pos_embed: str = "learn"  # "learn", "sincos1d", "sincos2d" or "none"
    no_embed_class: bool = False  # True: prefix tokens get no position embedding
    norm_style: str = "pre"  # "pre" (ViT) or "post" (original Transformer)
    init_values: float | None = None  # LayerScale init (CaiT, DINOv2); None = off
    drop_rate: float = 0.0
    attn_drop_rate: float = 0.0
    drop_path_rate: float = 0.0
    norm_eps: float = 1e-6
    fused_attn: bool = True
    dynamic_img_size: bool = False  # accept other image sizes by resampling pos_embed

    def __post_init__(self) -> None:
        if self.num_classes < 0:
            raise ValueError(
                f"num_classes must be >= 0 (0: no head, forward() returns features), got {self.num_classes}"
            )
        for name in ("depth", "embed_dim", "num_heads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.reg_tokens < 0:
            raise ValueError(f"reg_tokens must be >= 0, got {self.reg_tokens}")
        if self.pos_embed not in POS_EMBEDS:
            raise ValueError(f"pos_embed must be one of {', '.join(map(repr, POS_EMBEDS))}; got {self.pos_embed!r}")
        if self.norm_style not in NORM_STYLES:
            raise ValueError(f"norm_style must be one of {', '.join(map(repr, NORM_STYLES))}; got {self.norm_style!r}")
        for name in ("drop_rate", "attn_drop_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1] (a dropout probability), got {getattr(self, name)}")
        if self.global_pool not in ("token", "avg"):
            raise ValueError(f"global_pool must be 'token' or 'avg', got {self.global_pool!r}")
        if self.global_pool == "token" and not self.class_token:
            raise ValueError("global_pool='token' needs class_token=True")
        if self.dist_token and not self.class_token:
            raise ValueError("dist_token=True needs class_token=True (the distillation token follows CLS)")
        if not 0.0 <= self.drop_path_rate < 1.0:  # the last block drops its branches with this probability
            raise ValueError(
                f"drop_path_rate must be in [0, 1) (the last block's DropPath drop_prob), got {self.drop_path_rate}"
            )
        if self.embed_dim % self.num_heads:
            raise ValueError(f"embed_dim {self.embed_dim} is not divisible by num_heads {self.num_heads}")

    @property
    def num_prefix_tokens(self) -> int:
        """The number of tokens before the patches (CLS, DIST, then the registers)."""
        return int(self.class_token) + int(self.dist_token) + self.reg_tokens


# (embed_dim, depth, num_heads, patch_size): ViT paper Table 1, DeiT for tiny/small.
PRESETS: dict[str, dict[str, int]] = {
    "tiny": dict(embed_dim=192, depth=12, num_heads=3, patch_size=16),
    "small": dict(embed_dim=384, depth=12, num_heads=6, patch_size=16),
    "base": dict(embed_dim=768, depth=12, num_heads=12, patch_size=16),
    "large": dict(embed_dim=1024, depth=24, num_heads=16, patch_size=16),
    "huge": dict(embed_dim=1280, depth=32, num_heads=16, patch_size=14),
}


def vit_config(name: str, **overrides: Any) -> ViTConfig:
    """A preset (``tiny``, ``small``, ``base``, ``large``, ``huge``) with optional overrides."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose from {sorted(PRESETS)}")
    return ViTConfig(**{**PRESETS[name], **overrides})


def create_vit(name: str, **overrides: Any) -> VisionTransformer:
    """Build a preset ViT, e.g. ``create_vit("small", num_classes=10)``."""
    return VisionTransformer(vit_config(name, **overrides))


class VisionTransformer(nn.Module):
    """Patch embedding -> [CLS] + positions -> encoder blocks -> norm -> pool -> head."""

    def __init__(self, config: ViTConfig | None = None, **kwargs: Any) -> None:
        super().__init__()
        cfg = config if config is not None else ViTConfig(**kwargs)
        if config is not None and kwargs:
            cfg = dataclasses.replace(config, **kwargs)
        self.config = cfg
        d = cfg.embed_dim
        self.num_prefix_tokens = cfg.num_prefix_tokens
        self.patch_embed = PatchEmbed(
            cfg.img_size, cfg.patch_size, cfg.in_chans, d, dynamic_img_size=cfg.dynamic_img_size
        )
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d)) if cfg.class_token else None
        self.dist_token = nn.Parameter(torch.zeros(1, 1, d)) if cfg.dist_token else None
        self.reg_token = nn.Parameter(torch.zeros(1, cfg.reg_tokens, d)) if cfg.reg_tokens else None
        if cfg.pos_embed == "none":
            self.pos_embed = None
        else:
            n_pe_prefix = 0 if cfg.no_embed_class else self.num_prefix_tokens
            pe = build_pos_embed(cfg.pos_embed, self.patch_embed.grid_size, d, n_pe_prefix)
            self.pos_embed = nn.Parameter(pe, requires_grad=cfg.pos_embed == "learn")
        self.pos_drop = nn.Dropout(cfg.drop_rate)
        dpr = [cfg.drop_path_rate * i / max(cfg.depth - 1, 1) for i in range(cfg.depth)]  # stochastic depth
        self.blocks = nn.ModuleList(
            Block(
                d,
                cfg.num_heads,
                cfg.mlp_ratio,
                cfg.qkv_bias,
                cfg.drop_rate,
                cfg.attn_drop_rate,
                dpr[i],
                cfg.init_values,
                cfg.norm_style,
                cfg.norm_eps,
                cfg.fused_attn,
            )
            for i in range(cfg.depth)
        )
        # Post-norm blocks already end in a LayerNorm; pre-norm needs a final one.
        self.norm = nn.LayerNorm(d, eps=cfg.norm_eps) if cfg.norm_style == "pre" else nn.Identity()
        self.head_drop = nn.Dropout(cfg.drop_rate)
        self.head = nn.Linear(d, cfg.num_classes) if cfg.num_classes > 0 else nn.Identity()
        self.init_weights()

    # ------------------------------------------------------------------ init
    def init_weights(self) -> None:
        """timm-style init: truncated normal (std 0.02) for linear layers and embeddings."""
        if self.pos_embed is not None and self.pos_embed.requires_grad:
            nn.init.trunc_normal_(self.pos_embed, std=0.02)
        for tok in (self.cls_token, self.reg_token):
            if tok is not None:
                nn.init.normal_(tok, std=1e-6)
        if self.dist_token is not None:
            nn.init.trunc_normal_(self.dist_token, std=0.02)  # as DeiT
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        w = self.patch_embed.proj.weight
        nn.init.trunc_normal_(w.view(w.shape[0], -1), std=0.02)  # like a linear layer
        if isinstance(self.head, nn.Linear):
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    # --------------------------------------------------------------- helpers
    def grid_for(self, x: torch.Tensor) -> tuple[int, int]:
        p = self.patch_embed.patch_size
        return x.shape[-2] // p[0], x.shape[-1] // p[1]

    def prefix_tokens(self) -> list[nn.Parameter]:
        """The learned tokens put before the patches, in order: CLS, DIST, registers (those present)."""
        return [t for t in (self.cls_token, self.dist_token, self.reg_token) if t is not None]

    def _pos_embed(self, x: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """Patch tokens ``(B, N, D)`` -> ``(B, prefix + N, D)`` with prefix tokens and positions."""
        prefix = [t.expand(x.shape[0], -1, -1) for t in self.prefix_tokens()]
        if self.pos_embed is None:
            return self.pos_drop(torch.cat(prefix + [x], dim=1))
        pos_embed: torch.Tensor = self.pos_embed
        if grid != self.patch_embed.grid_size:  # only reachable with dynamic_img_size
            n_prefix = 0 if self.config.no_embed_class else self.num_prefix_tokens
            pos_embed = resample_pos_embed(pos_embed, grid, self.patch_embed.grid_size, n_prefix)
        if self.config.no_embed_class:
            x = torch.cat(prefix + [x + pos_embed], dim=1)
        else:
            x = torch.cat(prefix + [x], dim=1) + pos_embed
        return self.pos_drop(x)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``(B, C, H, W)`` -> input tokens ``z0`` of shape ``(B, prefix + N, D)``."""
        return self._pos_embed(self.patch_embed(x), self.grid_for(x))

    # --------------------------------------------------------------- forward
    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``(B, C, H, W)`` -> normalised tokens ``(B, prefix + N, D)``."""
        x = self.embed(x)
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x)

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        """Tokens ``(B, T, D)`` -> one vector per image ``(B, D)``."""
        if self.config.global_pool == "avg":
            return x[:, self.num_prefix_tokens :].mean(dim=1)
        return x[:, 0]

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.head_drop(self.pool(x))
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``(B, C, H, W)`` -> logits ``(B, num_classes)``."""
        return self.forward_head(self.forward_features(x))

    def forward_with_attention(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Like :meth:`forward_features`, also returning each block's attention ``(B, heads, T, T)``.

        Uses the explicit attention path, since fused attention never forms the matrix.
        """
        x = self.embed(x)
        maps = []
        for blk in self.blocks:
            x, w = blk(x, return_attention=True)
            maps.append(w)
        return self.norm(x), maps

    def get_intermediate_layers(
        self, x: torch.Tensor, indices: int | list[int] = 1, norm: bool = False
    ) -> list[torch.Tensor]:
        """Token outputs ``(B, prefix + N, D)`` of chosen blocks.

        ``indices``: an int ``n`` (``1 <= n <= depth``) takes the last ``n`` blocks, in order; a
        list names blocks by index (negative counts from the end, as in Python), returned in the
        order given. ``norm=True`` passes every output through the final ``norm`` (the features a
        probe, a decoder or a VLM reads); the default, as in timm's method of the same name, is
        the blocks' raw outputs.
        """
        depth = len(self.blocks)
        if isinstance(indices, int):
            if not 1 <= indices <= depth:
                raise ValueError(
                    f"get_intermediate_layers(n) takes the last n blocks: need 1 <= n <= {depth} "
                    f"(the model's depth), got {indices}"
                )
            wanted = list(range(depth - indices, depth))
        else:
            wanted = list(indices)
            if not wanted:
                raise ValueError("get_intermediate_layers got an empty list of block indices")
            for i in wanted:
                if not -depth <= i < depth:
                    raise IndexError(f"block index {i} out of range for depth {depth}")
            wanted = [i % depth for i in wanted]
        x = self.embed(x)
        outs = {}
        last = max(wanted)
        for i, blk in enumerate(self.blocks):
            x = blk(x)
            if i in wanted:
                outs[i] = self.norm(x) if norm else x
            if i >= last:
                break
        return [outs[i] for i in wanted]
