import pytest
import torch

from vitcore import PatchEmbed, build_pos_embed, patchify, resample_pos_embed, sincos_pos_embed_1d, sincos_pos_embed_2d
from vitcore.tolerance import assert_close, is_close


def test_patch_embed_equals_linear_on_patches():
    pe = PatchEmbed(img_size=32, patch_size=8, in_chans=3, embed_dim=20)
    x = torch.randn(2, 3, 32, 32)
    # Conv weight (D, C, p1, p2) -> linear weight over (p1 p2 c)-ordered pixels.
    w = pe.proj.weight.permute(0, 2, 3, 1).reshape(20, -1)
    assert pe.proj.bias is not None
    ref = patchify(x, 8) @ w.T + pe.proj.bias
    assert_close(pe(x), ref, reduction=3 * 8 * 8)  # conv vs matmul over C * P * P = 192 pixels
    assert pe(x).shape == (2, 16, 20)


def test_patch_embed_rejects_bad_input():
    pe = PatchEmbed(img_size=32, patch_size=8, in_chans=3, embed_dim=8)
    with pytest.raises(ValueError, match="expected 3 input channels, got 1"):
        pe(torch.randn(1, 1, 32, 32))
    with pytest.raises(ValueError, match="not a multiple of the patch size"):
        pe(torch.randn(1, 3, 36, 32))
    with pytest.raises(ValueError, match="built for 32x32 images, got 40x40"):
        pe(torch.randn(1, 3, 40, 40))
    with pytest.raises(ValueError, match="not a multiple"):
        PatchEmbed(img_size=30, patch_size=8)


def test_sincos_1d_values():
    e = sincos_pos_embed_1d(5, 8)
    assert e.shape == (5, 8)
    assert_close(e[0], torch.tensor([0, 0, 0, 0, 1, 1, 1, 1.0]))  # sin 0, cos 0
    assert_close(e[1, 0], torch.sin(torch.tensor(1.0)))  # highest frequency is 1
    # Dot products depend only on the offset between positions.
    g = e @ e.T
    assert_close(g[0, 2], g[1, 3], reduction=8)  # cos of the offset, summed over 8 dims


def test_sincos_2d_rows_and_columns():
    e = sincos_pos_embed_2d((3, 4), 16)
    assert e.shape == (12, 16)
    # Same row -> same first half; same column -> same second half.
    # (the same sin/cos of the same angles, but at other places of a vectorised loop: not bitwise)
    assert_close(e[0, :8], e[3, :8])
    assert not is_close(e[0, 8:], e[3, 8:])
    assert_close(e[0, 8:], e[4, 8:])
    assert not is_close(e[0, :8], e[4, :8])
    with pytest.raises(ValueError, match="divisible by 4"):
        sincos_pos_embed_2d((2, 2), 6)


def test_build_pos_embed_prefix():
    pe = build_pos_embed("sincos2d", (2, 2), 8, num_prefix_tokens=1)
    assert pe.shape == (1, 5, 8) and torch.equal(pe[0, 0], torch.zeros(8))
    with pytest.raises(ValueError, match="unknown position embedding"):
        build_pos_embed("rope", (2, 2), 8)


def test_resample_keeps_prefix_and_is_identity_on_same_grid():
    pe = torch.randn(1, 1 + 16, 8)
    assert resample_pos_embed(pe, (4, 4)) is pe
    out = resample_pos_embed(pe, (6, 8))
    assert out.shape == (1, 1 + 48, 8)
    assert torch.equal(out[:, :1], pe[:, :1])
    # A constant grid stays constant under interpolation.
    flat = torch.ones(1, 2 + 9, 4)
    # bicubic: 4 x 4 taps whose weights sum to 1
    assert_close(resample_pos_embed(flat, (5, 5), num_prefix_tokens=2), torch.ones(1, 27, 4), reduction=16)
    with pytest.raises(ValueError, match="not a square grid"):
        resample_pos_embed(torch.randn(1, 1 + 6, 4), (3, 3))
