import torch

from vitcore.block import DropPath
from vitcore.tolerance import assert_close


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
