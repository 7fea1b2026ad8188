import pytest
import torch
from torch import nn

from vitcore.block import Block, DropPath
from vitcore.tolerance import assert_close, is_close


def test_drop_path_is_the_identity_in_eval_and_at_zero():
    x = torch.randn(4, 3, 5)
    dp = DropPath(0.5).eval()
    assert torch.equal(dp(x), x)
    assert torch.equal(DropPath(0.0).train()(x), x)


def test_drop_path_zeroes_or_rescales_whole_samples():
    # Stochastic depth (Huang et al., 2016; timm's drop_path): per sample, the whole branch is either
    # dropped (0) or kept and divided by the keep probability, so its expected value is unchanged.
    p, keep = 0.25, 0.75
    dp = DropPath(p).train()
    x = torch.randn(64, 3, 5) + 2.0  # no element is 0, so a zero means "dropped"
    torch.manual_seed(1)
    out = dp(x)
    dropped = [bool((out[i] == 0).all()) for i in range(64)]
    for i in range(64):
        if not dropped[i]:
            assert_close(out[i], x[i] / keep)  # one division per element
    assert any(dropped) and not all(dropped)
    torch.manual_seed(1)
    assert torch.equal(dp(x), out)  # the same seed drops the same samples


def test_drop_path_keeps_each_sample_with_probability_one_minus_p():
    n, p = 20000, 0.3
    x = torch.ones(n, 2)
    torch.manual_seed(0)
    out = DropPath(p).train()(x)
    kept = (out[:, 0] != 0).float()
    assert torch.equal(out[:, 0], out[:, 1])  # both elements of a sample share one draw
    # kept share: Binomial(n, 0.7) / n has std sqrt(0.7 * 0.3 / n) = 0.0032; allow 5 std
    assert abs(kept.mean().item() - (1 - p)) < 5 * (p * (1 - p) / n) ** 0.5
    # E[out] = x: the mean over samples is 1 within 5 std of (1 / 0.7) * Bernoulli(0.7), i.e. sqrt(p / (1 - p) / n)
    assert abs(out.mean().item() - 1.0) < 5 * (p / (1 - p) / n) ** 0.5
    values = out[:, 0].unique()
    assert len(values) == 2 and values[0] == 0
    assert_close(values[1:], torch.tensor([1 / (1 - p)]))


def _torch_layer(block: Block, norm_first: bool) -> nn.TransformerEncoderLayer:
    """PyTorch's own encoder layer with ``block``'s weights (GELU, no dropout, batch first)."""
    dim = block.norm1.normalized_shape[0]
    ref = nn.TransformerEncoderLayer(
        dim,
        block.attn.num_heads,
        dim_feedforward=block.mlp.fc1.out_features,
        dropout=0.0,
        activation="gelu",
        layer_norm_eps=block.norm1.eps,
        batch_first=True,
        norm_first=norm_first,
    )
    with torch.no_grad():
        ref.self_attn.in_proj_weight.copy_(block.attn.qkv.weight)
        ref.self_attn.in_proj_bias.copy_(block.attn.qkv.bias)
        ref.self_attn.out_proj.weight.copy_(block.attn.proj.weight)
        ref.self_attn.out_proj.bias.copy_(block.attn.proj.bias)
        for ours, theirs in ((block.mlp.fc1, ref.linear1), (block.mlp.fc2, ref.linear2)):
            theirs.weight.copy_(ours.weight)
            theirs.bias.copy_(ours.bias)
        for ours_n, theirs_n in ((block.norm1, ref.norm1), (block.norm2, ref.norm2)):
            theirs_n.weight.copy_(ours_n.weight)
            theirs_n.bias.copy_(ours_n.bias)
    return ref.eval()


@pytest.mark.parametrize("fused_attn", [True, False])
@pytest.mark.parametrize("norm_style", ["pre", "post"])
def test_block_equals_torch_transformer_encoder_layer(norm_style, fused_attn):
    # Pre-norm (ViT): x + attn(norm1(x)), then x + mlp(norm2(x)): norm_first=True.
    # Post-norm (Vaswani et al.): norm1(x + attn(x)), then norm2(x + mlp(x)): norm_first=False.
    dim, heads = 32, 4
    block = Block(dim, heads, norm_style=norm_style, fused_attn=fused_attn).eval()
    with torch.no_grad():  # not the initial ones and zeros: a swapped norm1/norm2 must show
        for norm in (block.norm1, block.norm2):
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.uniform_(-0.5, 0.5)
    ref = _torch_layer(block, norm_first=norm_style == "pre")
    x = torch.randn(3, 7, dim)
    with torch.no_grad():
        want = ref(x)
        got = block(x)
        # the other style is far off: the comparison can tell them apart
        other = _torch_layer(block, norm_first=norm_style != "pre")(x)
    assert_close(got, want, reduction=4 * dim)  # widest product: the MLP's 128-wide fc2
    assert not is_close(got, other, reduction=4 * dim)


def test_post_norm_block_output_is_layer_normalised():
    # A post-norm block ends in norm2: with its initial weight 1 and bias 0 every token has mean 0
    # and variance 1 over the channels (the pre-norm block's output does not).
    x = 3.0 * torch.randn(2, 5, 32) + 1.0
    with torch.no_grad():
        out = Block(32, 4, norm_style="post").eval()(x)
        pre = Block(32, 4, norm_style="pre").eval()(x)
    assert_close(out.mean(-1), torch.zeros(2, 5), reduction=32)
    assert_close(out.var(-1, unbiased=False), torch.ones(2, 5), reduction=32)
    assert not is_close(pre.var(-1, unbiased=False), torch.ones(2, 5), reduction=32)


@pytest.mark.parametrize("norm_style", ["pre", "post"])
@pytest.mark.parametrize("rates", [dict(proj_drop=0.3), dict(attn_drop=0.3), dict(drop_path=0.3)])
def test_block_dropout_acts_in_training_only(norm_style, rates):
    x = torch.randn(8, 7, 32)
    block = Block(32, 4, norm_style=norm_style, **rates)
    none = Block(32, 4, norm_style=norm_style)  # every rate 0
    none.load_state_dict(block.state_dict())
    block.train()
    with torch.no_grad():
        a, b = block(x), block(x)
        assert not is_close(a, b, reduction=4 * 32)  # two calls, two draws
        block.eval()
        assert torch.equal(block(x), block(x))
        assert torch.equal(block(x), none.eval()(x))  # eval: as if every rate were 0
        none.train()
        assert torch.equal(none(x), none.eval()(x))  # rates 0: training changes nothing
