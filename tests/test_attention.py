from collections import Counter

import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from vitcore import Attention, scaled_dot_product_attention
from vitcore.tolerance import assert_close, is_close


def test_explicit_equals_fused_and_returns_rows_summing_to_one():
    attn = Attention(dim=32, num_heads=4).eval()
    x = torch.randn(2, 10, 32)
    fused = attn(x)
    explicit, weights = attn(x, return_attention=True)
    assert_close(fused, explicit, reduction=32)  # widest product: the D = 32 projections
    assert weights.shape == (2, 4, 10, 10)
    assert_close(weights.sum(-1), torch.ones(2, 4, 10), reduction=10)  # a sum over 10 keys


def test_matches_nn_multihead_attention():
    dim, heads = 24, 3
    ours = Attention(dim, heads).eval()
    ref = nn.MultiheadAttention(dim, heads, batch_first=True).eval()
    with torch.no_grad():
        ref.in_proj_weight.copy_(ours.qkv.weight)
        ref.in_proj_bias.copy_(ours.qkv.bias)
        ref.out_proj.weight.copy_(ours.proj.weight)
        ref.out_proj.bias.copy_(ours.proj.bias)
    x = torch.randn(3, 7, dim)
    out_ref, w_ref = ref(x, x, x, average_attn_weights=False)
    out, w = ours(x, return_attention=True)
    assert_close(out, out_ref, reduction=dim)
    assert_close(w, w_ref, reduction=dim)  # scores from the D-long qkv projection


def test_boolean_mask_blocks_positions():
    q, k, v = torch.randn(3, 1, 4, 8).unbind(0)
    mask = torch.tensor([[True, False, True, False]]).expand(4, 4)
    out, w = scaled_dot_product_attention(q, k, v, mask)
    assert torch.all(w[..., 1] == 0) and torch.all(w[..., 3] == 0)
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert_close(out, ref, reduction=8)  # head dim 8, 4 keys


def _pair(dim: int, heads: int, attn_drop: float = 0.0, proj_drop: float = 0.0) -> tuple[Attention, Attention]:
    """The fused (SDPA) and the explicit path with the same weights."""
    fused = Attention(dim, heads, attn_drop=attn_drop, proj_drop=proj_drop, fused_attn=True)
    explicit = Attention(dim, heads, attn_drop=attn_drop, proj_drop=proj_drop, fused_attn=False)
    explicit.load_state_dict(fused.state_dict())
    return fused, explicit


def test_explicit_path_equals_sdpa_in_eval_mode_with_dropout_configured():
    # In eval mode attention dropout is off on both paths: the explicit softmax(q k^T / sqrt(d)) v and
    # F.scaled_dot_product_attention compute the same thing; a mask too.
    fused, explicit = _pair(32, 4, attn_drop=0.3, proj_drop=0.2)
    fused.eval(), explicit.eval()
    x = torch.randn(2, 9, 32)
    mask = torch.rand(9, 9) > 0.3
    mask.fill_diagonal_(True)  # every query may attend to something
    for m in (None, mask):
        assert_close(explicit(x, attn_mask=m), fused(x, attn_mask=m), reduction=32)


class _CountOps(TorchDispatchMode):
    """Counts the ATen operators a forward pass dispatches (below autograd, after decompositions)."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops[str(func.overloadpacket)] += 1
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("training", [False, True])
def test_explicit_path_computes_each_attention_product_once(training):
    # Two batched products per forward: q k^T and weights @ v (the linear layers are addmm/mm). The
    # training branch with attention dropout once also computed weights @ v without dropout and threw
    # it away.
    attn = Attention(32, 4, attn_drop=0.5, fused_attn=False).train(training)
    with _CountOps() as count:
        attn(torch.randn(2, 9, 32))
    assert count.ops["aten.bmm"] == 2, count.ops


@pytest.mark.parametrize("fused_attn", [True, False])
def test_attention_dropout_acts_in_training_only(fused_attn):
    x = torch.randn(2, 9, 32)
    attn = Attention(32, 4, attn_drop=0.5, fused_attn=fused_attn)
    off = Attention(32, 4, attn_drop=0.0, fused_attn=fused_attn)
    off.load_state_dict(attn.state_dict())
    attn.train()
    torch.manual_seed(0)
    a, b = attn(x), attn(x)
    assert not is_close(a, b, reduction=32)  # two calls, two dropout masks
    torch.manual_seed(0)
    assert torch.equal(attn(x), a)  # the same seed, the same mask
    attn.eval()
    assert torch.equal(attn(x), attn(x))  # eval: deterministic
    assert torch.equal(attn(x), off.eval()(x))  # ... and the same as no dropout at all
    off.train()
    assert torch.equal(off(x), off(x))  # rate 0 in training: nothing dropped
    assert torch.equal(off(x), off.eval()(x))


def test_explicit_attention_dropout_drops_weights_and_rescales():
    # The explicit path in training: softmax weights, each kept with probability 1 - p and divided by
    # 1 - p, then times v. Reproduced by hand with the same random draw.
    p = 0.5
    attn = Attention(16, 2, attn_drop=p, fused_attn=False).train()
    x = torch.randn(1, 6, 16)
    torch.manual_seed(3)
    out = attn(x)
    q, k, v = attn.qkv(x).reshape(1, 6, 3, 2, 8).permute(2, 0, 3, 1, 4).unbind(0)
    weights = scaled_dot_product_attention(q, k, v)[1]
    torch.manual_seed(3)
    dropped = torch.nn.functional.dropout(weights, p, training=True)
    ref = attn.proj((dropped @ v).transpose(1, 2).reshape(1, 6, 16))
    assert_close(out, ref, reduction=16)
