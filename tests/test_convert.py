"""Converted checkpoints must compute what the original models compute."""

import re
from typing import TypeVar, cast

import pytest
import timm
import torch
import transformers

from vitcore import CheckpointMismatchError, ViTConfig
from vitcore.convert import hf_dinov2_state_dict, infer_timm_config, vit_from_hf_dinov2, vit_from_hf_vit, vit_from_timm
from vitcore.tolerance import assert_close

M = TypeVar("M", bound=torch.nn.Module)


def jitter_(model: M, scale: float = 0.05) -> M:
    """Move every parameter off its init (LayerNorm at 1/0, LayerScale at a constant) so that a
    swapped or missing weight cannot hide behind identical values."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))
    return model.eval()


def same(ours: torch.Tensor, ref: torch.Tensor, cfg: ViTConfig) -> None:
    """Converted and original outputs agree within the book's rule for this architecture:
    the widest product is the MLP (or the attention over all tokens), stacked ``depth`` times."""
    n_tokens = ours.shape[1] if ours.ndim == 3 else 1  # token outputs (B, T, D) or logits (B, C)
    reduction = max(int(cfg.embed_dim * cfg.mlp_ratio), n_tokens)
    assert_close(ours, ref, reduction=reduction, depth=cfg.depth)


# ---------------------------------------------------------------------------------------- timm
def test_timm_vit_tiny_gives_same_logits():
    from timm.models.vision_transformer import VisionTransformer as TimmViT

    ref = jitter_(cast(TimmViT, timm.create_model("vit_tiny_patch16_224", pretrained=False)))
    model = vit_from_timm(ref.state_dict())
    cfg = model.config
    assert (cfg.embed_dim, cfg.depth, cfg.num_heads, cfg.patch_size, cfg.img_size, cfg.num_classes) == (
        192,
        12,
        3,
        16,
        224,
        1000,
    )
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        same(model(x), ref(x), cfg)
        same(model.forward_features(x), ref.forward_features(x), cfg)


@pytest.mark.parametrize("extra", [dict(), dict(reg_tokens=4, no_embed_class=True)])
def test_timm_layerscale_and_registers(extra):
    from timm.models.vision_transformer import VisionTransformer as TimmViT

    ref = jitter_(
        TimmViT(img_size=32, patch_size=8, embed_dim=64, depth=2, num_heads=4, num_classes=7, init_values=1e-5, **extra)
    )
    sd = ref.state_dict()
    assert "blocks.0.ls1.gamma" in sd
    cfg = infer_timm_config(sd, num_heads=4)
    assert cfg.init_values is not None and cfg.reg_tokens == extra.get("reg_tokens", 0)
    assert cfg.no_embed_class == extra.get("no_embed_class", False) and cfg.img_size == 32
    model = vit_from_timm(sd, num_heads=4)
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        same(model(x), ref(x), cfg)
        same(model.forward_features(x), ref.forward_features(x), cfg)


def test_timm_with_explicit_config():
    from timm.models.vision_transformer import VisionTransformer as TimmViT

    ref = jitter_(TimmViT(img_size=32, patch_size=8, embed_dim=48, depth=2, num_heads=3, num_classes=0))
    cfg = ViTConfig(img_size=32, patch_size=8, embed_dim=48, depth=2, num_heads=3, num_classes=0)
    model = vit_from_timm(ref.state_dict(), cfg)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        same(model(x), ref(x), cfg)
    with pytest.raises(ValueError, match="num_heads"):
        infer_timm_config({**ref.state_dict(), "patch_embed.proj.weight": torch.zeros(50, 3, 8, 8)})


def test_missing_and_unexpected_keys_are_named():
    from timm.models.vision_transformer import VisionTransformer as TimmViT

    sd = TimmViT(img_size=32, patch_size=8, embed_dim=64, depth=2, num_heads=4, num_classes=7).state_dict()
    sd.pop("blocks.1.mlp.fc2.bias")
    sd["blocks.1.mlp.fc3.weight"] = torch.zeros(3)
    with pytest.raises(CheckpointMismatchError) as err:
        vit_from_timm(sd, num_heads=4)
    assert "blocks.1.mlp.fc2.bias" in str(err.value) and "blocks.1.mlp.fc3.weight" in str(err.value)
    assert "missing" in str(err.value) and "unexpected" in str(err.value)


# ----------------------------------------------------------------------------- Hugging Face ViT
def tiny_hf_vit_config(**kw):
    return transformers.ViTConfig(
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        image_size=32,
        patch_size=8,
        **kw,
    )


def to_hub_layout(state_dict, vit: bool):
    """transformers-5 module names -> the names inside checkpoint files on the Hub (transformers 4)."""
    out = {}
    for k, v in state_dict.items():
        k = re.sub(r"(^|\.)layers\.(\d+)\.", r"\1encoder.layer.\2.", k)
        k = re.sub(
            r"attention\.([qkv])_proj",
            lambda m: "attention.attention." + dict(q="query", k="key", v="value")[m.group(1)],
            k,
        )
        k = k.replace("attention.o_proj", "attention.output.dense")
        if vit:
            k = k.replace("mlp.fc1", "intermediate.dense").replace("mlp.fc2", "output.dense")
        out[k] = v
    return out


@pytest.mark.parametrize("layout", ["modules", "hub"])
def test_hf_vit_model_gives_same_features(layout):
    ref = jitter_(transformers.ViTModel(tiny_hf_vit_config()))
    sd = ref.state_dict() if layout == "modules" else to_hub_layout(ref.state_dict(), vit=True)
    if layout == "hub":
        assert (
            "encoder.layer.1.intermediate.dense.weight" in sd and "encoder.layer.1.attention.attention.key.bias" in sd
        )
    with pytest.warns(UserWarning, match="pooler"):
        model = vit_from_hf_vit(sd, ref.config)
    assert model.config.norm_eps == 1e-12 and model.config.num_classes == 0
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        out = ref(pixel_values=x).last_hidden_state
        same(model.forward_features(x), out, model.config)


def test_hf_vit_for_classification_gives_same_logits():
    ref = jitter_(transformers.ViTForImageClassification(tiny_hf_vit_config(num_labels=5)))
    assert any(k.startswith("vit.") for k in ref.state_dict())
    model = vit_from_hf_vit(ref.state_dict(), ref.config.to_dict())  # a plain dict config works too
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        same(model(x), ref(pixel_values=x).logits, model.config)


def test_hf_vit_bad_checkpoint_is_named():
    sd = transformers.ViTModel(tiny_hf_vit_config(), add_pooling_layer=False).state_dict()
    sd.pop("layers.1.layernorm_after.bias")
    sd["layers.1.extra.weight"] = torch.zeros(2)
    with pytest.raises(CheckpointMismatchError, match=r"blocks\.1\.norm2\.bias.*layers\.1\.extra\.weight"):
        vit_from_hf_vit(sd, tiny_hf_vit_config())
    sd = transformers.ViTModel(tiny_hf_vit_config(), add_pooling_layer=False).state_dict()
    sd.pop("layers.0.attention.k_proj.weight")
    with pytest.raises(ValueError, match="layer 0: attention weight is missing for key"):
        vit_from_hf_vit(sd, tiny_hf_vit_config())


# -------------------------------------------------------------------------- Hugging Face DINOv2
def tiny_dinov2():
    cfg = transformers.Dinov2Config(
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        mlp_ratio=4,
        image_size=56,
        patch_size=14,
        layerscale_value=0.5,
    )
    return jitter_(transformers.Dinov2Model(cfg))


@pytest.mark.parametrize(
    "size, layout", [((56, 56), "modules"), ((56, 56), "hub"), ((84, 84), "hub"), ((42, 70), "hub")]
)
def test_hf_dinov2_gives_same_features(size, layout):
    ref = tiny_dinov2()
    sd = ref.state_dict() if layout == "modules" else to_hub_layout(ref.state_dict(), vit=False)
    assert "embeddings.mask_token" in sd and "encoder.layer.0.layer_scale1.lambda1" in sd
    model = vit_from_hf_dinov2(sd, ref.config)
    assert model.config.init_values is not None and model.config.dynamic_img_size
    assert torch.equal(model.get_parameter("blocks.1.ls2.gamma"), sd["encoder.layer.1.layer_scale2.lambda1"])  # a copy
    x = torch.randn(2, 3, *size)  # other sizes resample the position embeddings, as DINOv2 does
    with torch.no_grad():
        same(model.forward_features(x), ref(pixel_values=x).last_hidden_state, model.config)


def test_hf_dinov2_drops_mask_token_only():
    sd, ignored = hf_dinov2_state_dict(tiny_dinov2().state_dict())
    assert ignored == ["embeddings.mask_token"]
    assert "pos_embed" in sd and "blocks.0.attn.qkv.weight" in sd and sd["blocks.0.attn.qkv.weight"].shape == (192, 64)
    with pytest.raises(ValueError, match="DINOv2 classifier"):
        hf_dinov2_state_dict({**sd, "classifier.weight": torch.zeros(3, 128)})


def test_guessed_num_heads_is_announced():
    from timm.models.vision_transformer import VisionTransformer as TimmViT

    sd = TimmViT(img_size=32, patch_size=8, embed_dim=128, depth=2, num_heads=4, num_classes=0).state_dict()
    with pytest.warns(UserWarning, match=r"guessing num_heads=2 \(head size 64\).*pass num_heads="):
        cfg = infer_timm_config(sd)
    assert cfg.num_heads == 2
    with pytest.warns(UserWarning, match="guessing num_heads=2"):
        vit_from_timm(sd)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an explicit num_heads is no guess
        assert vit_from_timm(sd, num_heads=4).config.num_heads == 4
        assert infer_timm_config(sd, num_heads=4).num_heads == 4
    with pytest.raises(ValueError, match="embed_dim 50 is not a multiple of 64.*pass num_heads="):
        infer_timm_config({**sd, "patch_embed.proj.weight": torch.zeros(50, 3, 8, 8)})
