"""Loading Hugging Face ``ViT`` and ``Dinov2`` checkpoints (chapters 4, 8, 11): keys renamed to
``vitcore``'s, query, key and value concatenated into one ``qkv`` layer, configs translated."""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from typing import Any

import torch

from ..checkpoint import load_state_dict_strict
from ..vit import VisionTransformer, ViTConfig

# Hugging Face weights that a plain ViT encoder has no use for: the tanh "pooler" of ViTModel
# (trained for nothing in most checkpoints) and the [MASK] embedding used in masked pretraining.
HF_IGNORED = ("pooler.dense.weight", "pooler.dense.bias", "embeddings.mask_token")

_StateDict = Mapping[str, torch.Tensor]


# ------------------------------------------------------------------------- Hugging Face, shared
def _cfg_get(cfg: Any, name: str, default: Any = None) -> Any:
    """Read a field of a transformers config object or of its ``to_dict()``."""
    return cfg.get(name, default) if isinstance(cfg, Mapping) else getattr(cfg, name, default)


def _side(value: Any) -> int:
    if isinstance(value, (list, tuple)):
        if value[0] != value[1]:
            raise ValueError(f"only square sizes are supported here, got {value}")
        return int(value[0])
    return int(value)


def _check_gelu(cfg: Any) -> None:
    act = _cfg_get(cfg, "hidden_act", "gelu")
    if act != "gelu":  # vitcore's Mlp uses exact (erf) GELU, as HF's "gelu"
        raise ValueError(f"hidden_act {act!r} is not supported; vitcore's MLP uses exact GELU ('gelu')")


def _strip_prefix(state_dict: _StateDict, prefix: str) -> dict[str, torch.Tensor]:
    """Drop a model prefix (``vit.``, ``dinov2.``) when present; other keys are kept as they are."""
    return {k[len(prefix) :] if k.startswith(prefix) else k: v for k, v in state_dict.items()}


_EMBED_KEYS = {
    "embeddings.cls_token": "cls_token",
    "embeddings.position_embeddings": "pos_embed",
    "embeddings.patch_embeddings.projection.weight": "patch_embed.proj.weight",
    "embeddings.patch_embeddings.projection.bias": "patch_embed.proj.bias",
    "layernorm.weight": "norm.weight",
    "layernorm.bias": "norm.bias",
    "classifier.weight": "head.weight",
    "classifier.bias": "head.bias",
}


def _rename_hf(
    state_dict: _StateDict, layer_map: dict[str, str], model_prefix: str
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """HF keys -> vitcore keys. Returns the new dict and the ignored keys.

    Two layouts are read: the one of checkpoint files on the Hub (``encoder.layer.N.attention.
    attention.query``) and the one of transformers 5 modules (``layers.N.attention.q_proj``).
    ``layer_map`` renames the part after the layer index; q, k, v are merged into ``qkv``.
    Keys we do not know are passed through unchanged, so the strict load names them.
    """
    sd = _strip_prefix(state_dict, model_prefix)
    out: dict[str, torch.Tensor] = {}
    qkv: dict[tuple[int, str], dict[str, torch.Tensor]] = {}  # (layer, weight|bias) -> {q, k, v}
    ignored = []
    for key, value in sd.items():
        if key in HF_IGNORED:
            ignored.append(key)
            continue
        if key in _EMBED_KEYS:
            out[_EMBED_KEYS[key]] = value
            continue
        m = re.fullmatch(r"(?:encoder\.layer|layers)\.(\d+)\.(.+)", key)
        if m is None:
            out[key] = value
            continue
        i, rest = int(m.group(1)), m.group(2)
        m_qkv = re.fullmatch(r"attention\.(?:attention\.(query|key|value)|(q|k|v)_proj)\.(weight|bias)", rest)
        if m_qkv:
            which = m_qkv.group(1) or {"q": "query", "k": "key", "v": "value"}[m_qkv.group(2)]
            qkv.setdefault((i, m_qkv.group(3)), {})[which] = value
        elif rest in layer_map:
            out[f"blocks.{i}.{layer_map[rest]}"] = value
        else:
            out[key] = value
    for (i, kind), parts in qkv.items():
        if set(parts) != {"query", "key", "value"}:
            missing = sorted({"query", "key", "value"} - set(parts))
            raise ValueError(f"layer {i}: attention {kind} is missing for {', '.join(missing)}")
        # nn.Linear weights are (out, in): stacking q, k, v along "out" is exactly one qkv layer.
        out[f"blocks.{i}.attn.qkv.{kind}"] = torch.cat([parts["query"], parts["key"], parts["value"]], dim=0)
    return out, ignored


def _warn_ignored(ignored: list[str]) -> None:
    dropped = [k for k in ignored if k.startswith("pooler")]
    if dropped:
        warnings.warn(f"ignored Hugging Face weights with no vitcore counterpart: {', '.join(dropped)}", stacklevel=3)


# --------------------------------------------------------------------------- Hugging Face ViT
_SHARED_LAYER = {  # transformers >= 5 module names, common to ViT and DINOv2
    "attention.o_proj.weight": "attn.proj.weight",
    "attention.o_proj.bias": "attn.proj.bias",
    "mlp.fc1.weight": "mlp.fc1.weight",
    "mlp.fc1.bias": "mlp.fc1.bias",
    "mlp.fc2.weight": "mlp.fc2.weight",
    "mlp.fc2.bias": "mlp.fc2.bias",
}

_HF_VIT_LAYER = {
    **_SHARED_LAYER,
    "layernorm_before.weight": "norm1.weight",
    "layernorm_before.bias": "norm1.bias",
    "attention.output.dense.weight": "attn.proj.weight",
    "attention.output.dense.bias": "attn.proj.bias",
    "layernorm_after.weight": "norm2.weight",
    "layernorm_after.bias": "norm2.bias",
    "intermediate.dense.weight": "mlp.fc1.weight",
    "intermediate.dense.bias": "mlp.fc1.bias",
    "output.dense.weight": "mlp.fc2.weight",
    "output.dense.bias": "mlp.fc2.bias",
}


def hf_vit_config(hf_config: Any, num_classes: int = 0, **overrides: Any) -> ViTConfig:
    """:class:`~vitcore.vit.ViTConfig` equal to a ``transformers.ViTConfig`` (object or dict)."""
    _check_gelu(hf_config)
    d = int(_cfg_get(hf_config, "hidden_size"))
    cfg = dict(
        img_size=_side(_cfg_get(hf_config, "image_size", 224)),
        patch_size=_side(_cfg_get(hf_config, "patch_size", 16)),
        in_chans=int(_cfg_get(hf_config, "num_channels", 3)),
        num_classes=num_classes,
        embed_dim=d,
        depth=int(_cfg_get(hf_config, "num_hidden_layers")),
        num_heads=int(_cfg_get(hf_config, "num_attention_heads")),
        mlp_ratio=int(_cfg_get(hf_config, "intermediate_size", 4 * d)) / d,
        qkv_bias=bool(_cfg_get(hf_config, "qkv_bias", True)),
        norm_eps=float(_cfg_get(hf_config, "layer_norm_eps", 1e-12)),  # HF ViT uses 1e-12, timm 1e-6
    )
    return ViTConfig(**{**cfg, **overrides})


def hf_vit_state_dict(state_dict: _StateDict) -> tuple[dict[str, torch.Tensor], list[str]]:
    """``ViTModel`` / ``ViTForImageClassification`` keys -> vitcore keys, plus the ignored keys."""
    return _rename_hf(state_dict, _HF_VIT_LAYER, "vit.")


def vit_from_hf_vit(state_dict: _StateDict, hf_config: Any, **overrides: Any) -> VisionTransformer:
    """A :class:`~vitcore.vit.VisionTransformer` equal to a Hugging Face ``ViTModel`` or ``ViTForImageClassification``.

    ``forward_features`` returns ``last_hidden_state``; with a ``classifier`` the logits match too.
    The ``ViTModel`` pooler is dropped with a warning.
    """
    sd, ignored = hf_vit_state_dict(state_dict)
    _warn_ignored(ignored)
    num_classes = sd["head.weight"].shape[0] if "head.weight" in sd else 0
    model = VisionTransformer(hf_vit_config(hf_config, num_classes=num_classes, **overrides))
    load_state_dict_strict(model, sd)
    return model.eval()


# ------------------------------------------------------------------------ Hugging Face DINOv2
_HF_DINOV2_LAYER = {
    **_SHARED_LAYER,
    "norm1.weight": "norm1.weight",
    "norm1.bias": "norm1.bias",
    "attention.output.dense.weight": "attn.proj.weight",
    "attention.output.dense.bias": "attn.proj.bias",
    "layer_scale1.lambda1": "ls1.gamma",
    "norm2.weight": "norm2.weight",
    "norm2.bias": "norm2.bias",
    "layer_scale2.lambda1": "ls2.gamma",
}


def hf_dinov2_config(hf_config: Any, **overrides: Any) -> ViTConfig:
    """:class:`~vitcore.vit.ViTConfig` equal to a ``transformers.Dinov2Config`` (object or dict).

    DINOv2 always resamples its position embeddings to the input's patch grid (bicubic,
    ``align_corners=False``, as :func:`vitcore.embed.resample_pos_embed`), so ``dynamic_img_size`` is on.
    """
    _check_gelu(hf_config)
    if _cfg_get(hf_config, "use_swiglu_ffn", False):
        raise ValueError("SwiGLU DINOv2 models (ViT-g) are not supported: vitcore's MLP is fc1 -> GELU -> fc2")
    cfg = dict(
        img_size=_side(_cfg_get(hf_config, "image_size", 518)),
        patch_size=_side(_cfg_get(hf_config, "patch_size", 14)),
        in_chans=int(_cfg_get(hf_config, "num_channels", 3)),
        num_classes=0,
        embed_dim=int(_cfg_get(hf_config, "hidden_size")),
        depth=int(_cfg_get(hf_config, "num_hidden_layers")),
        num_heads=int(_cfg_get(hf_config, "num_attention_heads")),
        mlp_ratio=float(_cfg_get(hf_config, "mlp_ratio", 4)),
        qkv_bias=bool(_cfg_get(hf_config, "qkv_bias", True)),
        init_values=float(_cfg_get(hf_config, "layerscale_value", 1.0)),
        norm_eps=float(_cfg_get(hf_config, "layer_norm_eps", 1e-6)),
        dynamic_img_size=True,
    )
    return ViTConfig(**{**cfg, **overrides})


def hf_dinov2_state_dict(state_dict: _StateDict) -> tuple[dict[str, torch.Tensor], list[str]]:
    """``Dinov2Model`` keys -> vitcore keys, plus the ignored keys (``mask_token``)."""
    sd, ignored = _rename_hf(state_dict, _HF_DINOV2_LAYER, "dinov2.")
    head = sorted(k for k in sd if k.startswith("head."))
    if head:
        raise ValueError(
            f"found a DINOv2 classifier ({', '.join(head)}): it reads [CLS; mean of patches], which "
            "vitcore's head does not; convert the backbone (drop the 'classifier.*' keys) and add your own head"
        )
    return sd, ignored


def vit_from_hf_dinov2(state_dict: _StateDict, hf_config: Any, **overrides: Any) -> VisionTransformer:
    """A :class:`~vitcore.vit.VisionTransformer` (``num_classes=0``) equal to a Hugging Face ``Dinov2Model``.

    ``forward_features`` returns ``last_hidden_state`` (CLS first, then the patches).
    """
    sd, ignored = hf_dinov2_state_dict(state_dict)
    _warn_ignored(ignored)
    model = VisionTransformer(hf_dinov2_config(hf_config, **overrides))
    load_state_dict_strict(model, sd)
    return model.eval()
