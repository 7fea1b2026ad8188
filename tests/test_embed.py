import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

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


# ------------------------------------------------------------- resample_pos_embed, property-based
_grid = st.tuples(st.integers(1, 7), st.integers(1, 7))
_RESAMPLE = settings(max_examples=40, deadline=None)


def _pos(prefix: int, grid: tuple[int, int], dim: int, seed: int, dtype=torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(1, prefix + grid[0] * grid[1], dim, generator=g).to(dtype)


@_RESAMPLE
@given(old=_grid, new=_grid, prefix=st.integers(0, 3), dim=st.integers(1, 6), seed=st.integers(0, 9))
def test_resample_shape_prefix_and_identity(old, new, prefix, dim, seed):
    pe = _pos(prefix, old, dim, seed)
    assert resample_pos_embed(pe, old, old_grid=old, num_prefix_tokens=prefix) is pe  # same grid: untouched
    out = resample_pos_embed(pe, new, old_grid=old, num_prefix_tokens=prefix)
    assert out.shape == (1, prefix + new[0] * new[1], dim)
    assert torch.equal(out[:, :prefix], pe[:, :prefix])  # CLS and registers are not positions on the grid


@_RESAMPLE
@given(
    old=_grid,
    new=_grid,
    prefix=st.integers(0, 2),
    mode=st.sampled_from(["bicubic", "bilinear", "nearest", "nearest-exact", "area"]),
    values=st.lists(st.floats(-3, 3), min_size=1, max_size=5),
)
def test_resampling_a_constant_grid_keeps_it_constant(old, new, prefix, mode, values):
    dim = len(values)
    pe = torch.cat([torch.randn(1, prefix, dim), torch.tensor(values).expand(1, old[0] * old[1], dim)], dim=1)
    out = resample_pos_embed(pe, new, old_grid=old, num_prefix_tokens=prefix, mode=mode)
    expected = torch.tensor(values).expand(1, new[0] * new[1], dim)
    # an interpolated value is a weighted mean of at most 4 x 4 taps (bicubic) whose weights sum to 1
    assert_close(out[:, prefix:], expected, reduction=16)


@_RESAMPLE
@given(old=_grid, k=st.integers(1, 3), prefix=st.integers(0, 2), seed=st.integers(0, 9))
def test_nearest_upsampling_by_an_integer_factor_repeats_each_position(old, k, prefix, seed):
    pe = _pos(prefix, old, 3, seed)
    new = (old[0] * k, old[1] * k)
    out = resample_pos_embed(pe, new, old_grid=old, num_prefix_tokens=prefix, mode="nearest")
    grid = pe[0, prefix:].reshape(*old, 3)
    expected = grid.repeat_interleave(k, 0).repeat_interleave(k, 1).reshape(1, -1, 3)
    assert torch.equal(out[:, prefix:], expected)  # a copy: exact


@_RESAMPLE
@given(dtype=st.sampled_from([torch.float32, torch.float16, torch.bfloat16, torch.float64]), new=_grid)
def test_resample_keeps_the_dtype(dtype, new):
    pe = _pos(1, (3, 3), 4, 0, dtype)
    assert resample_pos_embed(pe, new).dtype == dtype


def test_resample_names_bad_grids_and_prefix_counts():
    pe = torch.randn(1, 1 + 9, 4)
    with pytest.raises(ValueError, match=r"new_grid must be \(rows, cols\), both positive, got \(0, 3\)"):
        resample_pos_embed(pe, (0, 3))
    with pytest.raises(ValueError, match="num_prefix_tokens=10 leaves no patch positions"):
        resample_pos_embed(pe, (2, 2), num_prefix_tokens=10)
    with pytest.raises(ValueError, match="num_prefix_tokens=-1"):
        resample_pos_embed(pe, (2, 2), num_prefix_tokens=-1)
    with pytest.raises(ValueError, match="unknown interpolation mode 'cubic'"):
        resample_pos_embed(pe, (2, 2), mode="cubic")
