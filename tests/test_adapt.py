from typing import cast

import pytest
import torch
from torch import nn

from vitcore.adapt import LoRALinear, add_adapters, apply_lora, freeze_except
from vitcore.flops import count_params
from vitcore.tolerance import assert_close
from vitcore.vit import VisionTransformer, ViTConfig

# Widest product in these models: the MLP (embed_dim 16 * mlp_ratio 4).
REDUCTION = 16 * 4


def tiny_vit():
    return VisionTransformer(
        ViTConfig(img_size=16, patch_size=4, in_chans=3, num_classes=4, embed_dim=16, depth=2, num_heads=2)
    ).eval()


def test_lora_starts_as_base_and_merges_exactly():
    base = nn.Linear(8, 6)
    lora = LoRALinear(base, r=2, alpha=4)
    x = torch.randn(3, 8)
    assert_close(lora(x), base(x), reduction=8)  # B = 0 at init
    with torch.no_grad():
        lora.lora_B.normal_()
    merged = x @ lora.merged_weight().T + base.bias
    assert_close(lora(x), merged, reduction=8)  # 8 inputs; the rank-2 update is shorter


def test_apply_lora_counts_and_names():
    model = tiny_vit()
    names = apply_lora(model, ["attn.qkv", "mlp.fc1", "mlp.fc2"], r=4)
    assert names == [f"blocks.{i}.{t}" for i in range(2) for t in ("attn.qkv", "mlp.fc1", "mlp.fc2")]
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    per_block = 4 * (16 + 48) + 4 * (16 + 64) + 4 * (64 + 16)  # r * (in + out) per wrapped layer
    assert trainable == 2 * per_block
    with pytest.raises(ValueError, match="match no nn.Linear"):
        apply_lora(tiny_vit(), ["attn.query"])


def test_from_scratch_lora_equals_peft():
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    ref = tiny_vit()
    ours = tiny_vit()
    ours.load_state_dict(ref.state_dict())
    targets = ["attn.qkv", "mlp.fc1", "mlp.fc2"]
    peft_model = get_peft_model(ref, LoraConfig(r=4, lora_alpha=8, target_modules=targets, lora_dropout=0.0))
    apply_lora(ours, targets, r=4, alpha=8)
    peft_vit = cast(VisionTransformer, peft_model.base_model.model)  # ref, with LoRA layers injected
    # Give both the same non-zero LoRA factors.
    with torch.no_grad():
        for name, module in ours.named_modules():
            if isinstance(module, LoRALinear):
                module.lora_B.normal_()
                peft_layer = peft_vit.get_submodule(name)
                peft_layer.get_parameter("lora_A.default.weight").copy_(module.lora_A)
                peft_layer.get_parameter("lora_B.default.weight").copy_(module.lora_B)
    x = torch.randn(2, 3, 16, 16)
    assert_close(ours(x), peft_model(x), reduction=REDUCTION, depth=2)
    # The head is zero at init (logits all 0), so compare the tokens too: they carry every LoRA layer.
    assert_close(ours.forward_features(x), peft_vit.forward_features(x), reduction=REDUCTION, depth=2)
    assert sum(p.numel() for p in ours.parameters() if p.requires_grad) == sum(
        p.numel() for p in peft_model.parameters() if p.requires_grad
    )
    merged = peft_model.merge_and_unload()
    for name, module in ours.named_modules():
        if isinstance(module, LoRALinear):
            assert_close(
                module.merged_weight(), merged.get_parameter(f"{name}.weight"), reduction=4
            )  # W + s * B @ A, r = 4


def test_adapters_start_as_identity_and_count():
    model = tiny_vit()
    x = torch.randn(2, 3, 16, 16)
    before, tokens_before = model(x), model.forward_features(x)
    n = add_adapters(model, bottleneck=4)
    assert n == 2 * (16 * 4 + 4 + 4 * 16 + 16)
    assert_close(model(x), before, reduction=REDUCTION, depth=2)
    assert_close(model.forward_features(x), tokens_before, reduction=REDUCTION, depth=2)  # the head is 0 at init
    assert freeze_except(model, ["head."]) == 16 * 4 + 4


def test_tail_on_cached_tokens_equals_the_whole_model():
    from vitcore.adapt import ViTTail, tokens_after

    torch.manual_seed(0)
    model = VisionTransformer(
        ViTConfig(img_size=16, patch_size=4, in_chans=3, num_classes=4, embed_dim=16, depth=3, num_heads=2)
    ).eval()
    assert isinstance(model.head, nn.Linear)
    nn.init.normal_(model.head.weight)
    x = torch.randn(5, 3, 16, 16)
    for start in (0, 2, 3):
        tail = ViTTail(model, start, num_classes=4).eval()
        tail.head.load_state_dict(model.head.state_dict())
        tokens = tokens_after(model, x, start, batch_size=2)
        assert tokens.shape == (5, 17, 16)
        assert_close(tail(tokens), model(x), reduction=REDUCTION, depth=3)  # cached tokens, batches of 2
        assert len(tail.blocks) == 3 - start
    tail = ViTTail(model, 2, num_classes=4)
    names = apply_lora(tail, ["attn.qkv"], r=2)  # wraps the copied block, not the original model
    assert names == ["blocks.0.attn.qkv"] and count_params(tail, trainable_only=True) == 2 * (16 + 48)
    assert count_params(model, trainable_only=True) == sum(p.numel() for p in model.parameters())
    with pytest.raises(ValueError, match="n_blocks"):
        tokens_after(model, x, 4)
    with pytest.raises(ValueError, match="start"):
        ViTTail(model, -1, 4)
