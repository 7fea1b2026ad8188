from typing import Any, cast

import pytest
import torch

from vitcore import VisionTransformer, ViTConfig
from vitcore.prune import (
    PatchDropout,
    cls_attention_scores,
    forward_pruned,
    forward_with_patch_dropout,
    patch_dropout,
    select_tokens,
)
from vitcore.tolerance import assert_close, is_close

# Widest product: the MLP (32 -> 128); three blocks.
SIZE: dict[str, Any] = dict(reduction=32 * 4, depth=3)


def tiny_vit(**kw):
    cfg = dict(img_size=32, patch_size=8, in_chans=3, num_classes=5, embed_dim=32, depth=3, num_heads=4)
    model = VisionTransformer(ViTConfig(**{**cfg, **kw})).eval()
    assert isinstance(model.head, torch.nn.Linear)
    torch.nn.init.normal_(model.head.weight, std=0.1)  # the head starts at zero; make logits informative
    return model


def test_select_tokens_keeps_top_k_by_cls_attention_in_order():
    # Constructed attention: 2 heads, [CLS] + 6 patches. Head means of the CLS row over the patches
    # are (0.05, 0.30, 0.10, 0.25, 0.02, 0.28) -> the top 3 are patches 1, 5, 3 (kept as 1, 3, 5).
    cls_row = torch.tensor([0.05, 0.30, 0.10, 0.25, 0.02, 0.28])
    weights = torch.zeros(1, 2, 7, 7)
    weights[0, 0, 0, 1:] = cls_row + torch.tensor([0.04, -0.1, 0.0, 0.1, 0.0, -0.04])
    weights[0, 1, 0, 1:] = cls_row - torch.tensor([0.04, -0.1, 0.0, 0.1, 0.0, -0.04])
    scores = cls_attention_scores(weights)
    assert_close(scores, cls_row.unsqueeze(0), reduction=2)  # a mean over 2 heads
    x = torch.arange(7.0).view(1, 7, 1).expand(1, 7, 3)  # token t carries the value t
    kept, idx = select_tokens(x, scores, keep=3)
    assert idx.tolist() == [[1, 3, 5]]
    assert kept[0, :, 0].tolist() == [0.0, 2.0, 4.0, 6.0]  # CLS first, then patches 1, 3, 5 (tokens 2, 4, 6)
    # Fusing appends the score-weighted mean of the dropped patches 0, 2, 4 (tokens 1, 3, 5).
    fused, _ = select_tokens(x, scores, keep=3, fuse=True)
    assert fused.shape == (1, 5, 3)
    expected = (0.05 * 1 + 0.10 * 3 + 0.02 * 5) / (0.05 + 0.10 + 0.02)
    assert_close(fused[0, -1, 0], torch.tensor(expected), reduction=3)  # a weighted mean of 3


def test_pruning_keeps_cls_and_requested_counts():
    model = tiny_vit()
    x = torch.randn(2, 3, 32, 32)
    logits, kept = forward_pruned(model, x, keep=[10, 0.5], at_blocks=[0, 1], return_kept=True)
    assert logits.shape == (2, 5)
    assert kept.shape == (2, 5)  # 16 patches -> 10 -> ceil(0.5 * 10) = 5
    assert (kept.diff(dim=1) > 0).all()  # image order kept
    assert kept.min() >= 0 and kept.max() < 16
    # The [CLS] token is kept: the logits are the head applied to the surviving token 0.
    captured: dict[str, torch.Tensor] = {}
    handle = model.norm.register_forward_hook(lambda m, i, o: captured.setdefault("tokens", o))
    forward_pruned(model, x, keep=[10, 0.5], at_blocks=[0, 1])
    handle.remove()
    assert captured["tokens"].shape == (2, 1 + 5, 32)
    assert_close(model.head(captured["tokens"][:, 0]), logits, reduction=32)
    with torch.no_grad():
        full = model.forward_features(x)
    assert not is_close(captured["tokens"][:, 0], full[:, 0], **SIZE)  # pruning changed CLS's context


def test_pruned_tokens_are_top_k_of_the_blocks_own_attention():
    model = tiny_vit()
    x = torch.randn(3, 3, 32, 32)
    _, maps = model.forward_with_attention(x)
    expected = cls_attention_scores(maps[0]).topk(6, dim=1).indices.sort(dim=1).values
    _, kept = forward_pruned(model, x, keep=6, at_blocks=[0], return_kept=True)
    assert torch.equal(kept, expected)


@pytest.mark.parametrize("norm_style", ["pre", "post"])
def test_keeping_everything_equals_the_plain_model(norm_style):
    model = tiny_vit(norm_style=norm_style, reg_tokens=2)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        logits = cast(torch.Tensor, forward_pruned(model, x, keep=1.0, at_blocks=[0, 2]))  # no return_kept
        assert_close(logits, model(x), **SIZE)


def test_fused_token_is_marked():
    model = tiny_vit()
    _, kept = forward_pruned(model, torch.randn(1, 3, 32, 32), keep=8, at_blocks=[1], fuse=True, return_kept=True)
    assert kept.shape == (1, 9) and kept[0, -1] == -1


def test_pruning_errors():
    model = tiny_vit()
    x = torch.randn(1, 3, 32, 32)
    with pytest.raises(ValueError, match="out of range"):
        forward_pruned(model, x, at_blocks=[3])
    with pytest.raises(ValueError, match="keep rate"):
        forward_pruned(model, x, keep=1.5, at_blocks=[0])
    with pytest.raises(ValueError, match="cannot keep 20 of 16"):
        forward_pruned(model, x, keep=20, at_blocks=[0])
    with pytest.raises(ValueError, match="2 keep values for 1"):
        forward_pruned(model, x, keep=[4, 2], at_blocks=[0])
    with pytest.raises(ValueError, match="no class token"):
        forward_pruned(tiny_vit(class_token=False, global_pool="avg"), x)


def test_patch_dropout_keeps_prefix_and_count():
    x = torch.randn(4, 1 + 16, 8)
    g = torch.Generator().manual_seed(0)
    out, idx = patch_dropout(x, 0.75, generator=g)
    assert out.shape == (4, 1 + 4, 8)
    assert torch.equal(out[:, 0], x[:, 0])  # CLS kept
    assert (idx.diff(dim=1) > 0).all()
    assert torch.equal(out[:, 1:], x[:, 1:].gather(1, idx.unsqueeze(-1).expand(-1, -1, 8)))  # a gather: exact
    assert len({tuple(r) for r in idx.tolist()}) > 1  # each image draws its own subset
    with pytest.raises(ValueError, match="drop_prob"):
        patch_dropout(x, 1.0)


def test_patch_dropout_only_when_training():
    model = tiny_vit()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert_close(forward_with_patch_dropout(model, x, 0.5), model(x), **SIZE)
        model.train()
        assert not is_close(forward_with_patch_dropout(model, x, 0.5), model(x), **SIZE)
    layer = PatchDropout(0.5)
    assert layer.eval()(torch.ones(1, 17, 4)).shape == (1, 17, 4)
    assert layer.train()(torch.ones(1, 17, 4)).shape == (1, 9, 4)


@pytest.mark.slow
@pytest.mark.skipif(
    torch.backends.cpu.get_cpu_capability() == "DEFAULT",
    reason="under ATEN_CPU_CAPABILITY=default torch.compile's generated C++ can fail to build "
    "(\"'at::vec' has not been declared\"); the eager kernels are what that path checks",
)
def test_compiled_vit_matches_eager():
    model = tiny_vit(depth=1)
    x = torch.randn(2, 3, 32, 32)
    compiled = torch.compile(model)
    with torch.no_grad():
        assert_close(compiled(x), model(x), reduction=32 * 4)  # fused kernels vs eager, one block
