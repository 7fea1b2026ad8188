import torch
from torch import nn

from vitcore import Attention, scaled_dot_product_attention
from vitcore.tolerance import assert_close


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
