import dataclasses
from typing import Any

import pytest
import torch

from vitcore import (
    CheckpointMismatchError,
    VisionTransformer,
    ViTConfig,
    count_macs,
    count_params,
    create_vit,
    load_state_dict_strict,
    load_weights,
    save_weights,
    seed_everything,
    vit_config,
)
from vitcore.tolerance import assert_close, is_close

# Widest product of small_vit: the MLP (32 -> 128); two blocks.
SIZE: dict[str, Any] = dict(reduction=32 * 4, depth=2)


def small_vit(**kw):
    cfg = dict(img_size=32, patch_size=8, in_chans=3, num_classes=5, embed_dim=32, depth=2, num_heads=4)
    return VisionTransformer(ViTConfig(**{**cfg, **kw}))


# Reference: timm's own models of the same sizes (ViT paper Table 1), built here on the meta
# device (no weights, no download) with a 1000-class head (timm's ViT-H defaults to none):
# ViT-Ti/S/B/L with 16x16 patches, ViT-H with 14x14.
TIMM_NAMES = {
    "tiny": "vit_tiny_patch16_224",
    "small": "vit_small_patch16_224",
    "base": "vit_base_patch16_224",
    "large": "vit_large_patch16_224",
    "huge": "vit_huge_patch14_224",
}


@pytest.mark.parametrize("name", list(TIMM_NAMES))
def test_parameter_counts_match_timm(name):
    timm = pytest.importorskip("timm")
    with torch.device("meta"):  # no memory, no time, even for ViT-H
        model = create_vit(name)
        reference = timm.create_model(TIMM_NAMES[name], pretrained=False, num_classes=1000)
    assert count_params(model) == count_params(reference)
    # and tensor by tensor, under timm's names (the names checkpoints and peft target)
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in reference.state_dict().items()}
    assert ours == theirs


def test_macs_match_published_gmacs():
    with torch.device("meta"):
        base = create_vit("base")
    # timm lists 17.58 GMACs for ViT-B/16 at 224 (counting convention differs by <1%)
    assert abs(count_macs(base) / 1e9 - 17.58) / 17.58 < 0.01


@pytest.mark.parametrize("norm_style", ["pre", "post"])
@pytest.mark.parametrize("pool", ["token", "avg"])
def test_forward_shapes(norm_style, pool):
    model = small_vit(norm_style=norm_style, global_pool=pool).eval()
    x = torch.randn(2, 3, 32, 32)
    assert model.forward_features(x).shape == (2, 1 + 16, 32)
    assert model(x).shape == (2, 5)
    feats, maps = model.forward_with_attention(x)
    assert len(maps) == 2 and maps[0].shape == (2, 4, 17, 17)
    assert_close(feats, model.forward_features(x), **SIZE)  # explicit vs fused attention


def test_registers_layerscale_and_intermediate_layers():
    model = small_vit(reg_tokens=4, init_values=1e-5, no_embed_class=True).eval()
    assert model.pos_embed.shape == (1, 16, 32)  # patches only
    assert model.blocks[0].ls1.gamma.shape == (32,)
    x = torch.randn(1, 3, 32, 32)
    outs = model.get_intermediate_layers(x, [0, -1], norm=True)
    assert [o.shape for o in outs] == [(1, 21, 32)] * 2
    assert_close(outs[-1], model.forward_features(x), **SIZE)
    # the default, as in timm: the blocks' raw outputs, before the final norm
    raw = model.get_intermediate_layers(x, [0, -1])
    assert torch.equal(model.norm(raw[0]), outs[0]) and torch.equal(model.norm(raw[1]), outs[1])
    assert not torch.allclose(raw[1], outs[1])


def test_fixed_sincos_embedding_is_not_trained():
    model = small_vit(pos_embed="sincos2d")
    assert not model.pos_embed.requires_grad
    assert count_params(model, trainable_only=True) == count_params(model) - model.pos_embed.numel()


def test_dynamic_image_size_resamples_positions():
    model = small_vit(dynamic_img_size=True).eval()
    assert model(torch.randn(1, 3, 48, 64)).shape == (1, 5)
    with pytest.raises(ValueError, match="built for 32x32"):
        small_vit()(torch.randn(1, 3, 48, 48))


def test_bad_config_errors():
    with pytest.raises(ValueError, match="not divisible by num_heads"):
        ViTConfig(embed_dim=30, num_heads=4)
    with pytest.raises(ValueError, match="needs class_token=True"):
        ViTConfig(class_token=False)
    with pytest.raises(ValueError, match="unknown preset"):
        vit_config("gigantic")


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("num_classes", -1, r"num_classes must be >= 0 \(0: no head.*got -1"),
        ("depth", 0, "depth must be >= 1, got 0"),
        ("embed_dim", 0, "embed_dim must be >= 1, got 0"),
        ("num_heads", 0, "num_heads must be >= 1, got 0"),
        ("reg_tokens", -2, "reg_tokens must be >= 0, got -2"),
        ("pos_embed", "rope", "pos_embed must be one of 'learn', 'sincos1d', 'sincos2d', 'none'; got 'rope'"),
        ("pos_embed", "sincos", "pos_embed must be one of .*; got 'sincos'"),
        ("norm_style", "sandwich", "norm_style must be one of 'pre', 'post'; got 'sandwich'"),
        ("drop_rate", 1.5, r"drop_rate must be in \[0, 1\] \(a dropout probability\), got 1.5"),
        ("attn_drop_rate", -0.1, r"attn_drop_rate must be in \[0, 1\].*got -0.1"),
    ],
)
def test_config_refuses_values_no_model_has(field, value, message):
    # Refused when the config is made (and by dataclasses.replace and vit_config), naming the field and
    # what it allows, instead of a model with a negative-width head, no blocks, or an unknown scheme.
    with pytest.raises(ValueError, match=message):
        ViTConfig(**{field: value})
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(ViTConfig(), **{field: value})
    with pytest.raises(ValueError, match=message):
        vit_config("tiny", **{field: value})


@pytest.mark.parametrize(
    "overrides",
    [
        dict(num_classes=0),  # no head: forward() returns the pooled features
        dict(depth=1),
        dict(pos_embed="none"),
        dict(pos_embed="sincos1d"),
        dict(pos_embed="sincos2d", no_embed_class=True),
        dict(norm_style="post"),
        dict(drop_rate=0.0, attn_drop_rate=1.0),
    ],
)
def test_config_accepts_every_legal_edge(overrides):
    model = small_vit(**overrides).eval()
    out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, overrides.get("num_classes", 5) or 32)


def test_vit_dropout_acts_in_training_only():
    x = torch.randn(4, 3, 32, 32)
    model = small_vit(drop_rate=0.2, attn_drop_rate=0.2, drop_path_rate=0.2)
    plain = small_vit()
    plain.load_state_dict(model.state_dict())
    model.train()
    f = model.forward_features  # (B, N, D): the head starts at zero, so its output would not show
    with torch.no_grad():
        assert not is_close(f(x), f(x), **SIZE)
        model.eval()
        assert torch.equal(f(x), f(x))
        assert torch.equal(f(x), plain.eval().forward_features(x))
        assert torch.equal(plain.train().forward_features(x), plain.eval().forward_features(x))  # rates 0


def test_seed_makes_runs_identical():
    seed_everything(123)
    a = small_vit().forward_features(torch.randn(2, 3, 32, 32))
    seed_everything(123)
    b = small_vit().forward_features(torch.randn(2, 3, 32, 32))
    assert torch.equal(a, b)
    seed_everything(124)
    assert not is_close(a, small_vit().forward_features(torch.randn(2, 3, 32, 32)), **SIZE)


def test_strict_loading_names_problem_keys(tmp_path):
    model = small_vit()
    state = model.state_dict()
    state.pop("blocks.1.mlp.fc2.bias")
    state["blocks.9.attn.qkv.weight"] = torch.zeros(1)
    state["head.weight"] = torch.zeros(7, 32)
    with pytest.raises(CheckpointMismatchError) as err:
        load_state_dict_strict(small_vit(), state)
    msg = str(err.value)
    assert "missing keys (1): blocks.1.mlp.fc2.bias" in msg
    assert "unexpected keys (1): blocks.9.attn.qkv.weight" in msg
    assert "head.weight: checkpoint (7, 32) vs model (5, 32)" in msg


def test_save_load_round_trip(tmp_path):
    model = small_vit().eval()
    path = save_weights(model, tmp_path / "w.safetensors")
    other = small_vit().eval()
    load_state_dict_strict(other, load_weights(path))
    x = torch.randn(1, 3, 32, 32)
    assert torch.equal(model(x), other(x))


def test_untrusted_pickle_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pt"
    torch.save({"w": torch.zeros(1), "obj": Evil()}, path)
    with pytest.raises(ValueError, match="refusing to load"):
        load_weights(path)


def test_intermediate_layers_count_must_fit_the_depth():
    model = small_vit(depth=3).eval()
    x = torch.randn(1, 3, 32, 32)
    outs = model.get_intermediate_layers(x, 3)
    assert len(outs) == 3
    for got, want in zip(outs, model.get_intermediate_layers(x, [0, 1, 2])):
        assert torch.equal(got, want)  # the same blocks in the same order
    for n in (0, 4, 25, -1):
        with pytest.raises(ValueError, match=rf"1 <= n <= 3 \(the model's depth\), got {n}"):
            model.get_intermediate_layers(x, n)
    with pytest.raises(ValueError, match="empty"):
        model.get_intermediate_layers(x, [])
    with pytest.raises(IndexError, match="block index 7 out of range for depth 3"):
        model.get_intermediate_layers(x, [0, 7])
    with pytest.raises(IndexError, match="block index -4 out of range for depth 3"):
        model.get_intermediate_layers(x, [-4])


def test_drop_path_probability_must_be_below_one():
    from vitcore import DropPath

    with pytest.raises(ValueError, match=r"drop_prob must be in \[0, 1\), got 1.0"):
        DropPath(1.0)
    with pytest.raises(ValueError, match=r"drop_prob must be in \[0, 1\), got -0.1"):
        DropPath(-0.1)
    with pytest.raises(ValueError, match="drop_prob"):
        small_vit(drop_path_rate=1.0)  # the last block would drop every sample
    layer = DropPath(0.5).train()
    out = layer(torch.ones(64, 3))
    assert torch.isfinite(out).all() and set(out[:, 0].tolist()) <= {0.0, 2.0}
