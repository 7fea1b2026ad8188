import pytest
import torch

from vitcore.swin import (
    PatchMerging,
    SwinBlock,
    SwinConfig,
    SwinTransformer,
    WindowAttention,
    relative_position_index,
    shift_attention_mask,
    window_partition,
    window_reverse,
)
from vitcore.tolerance import assert_close


def test_window_partition_round_trip_and_order():
    x = torch.randn(2, 8, 12, 3)
    w = window_partition(x, 4)
    assert w.shape == (2 * 2 * 3, 16, 3)
    assert torch.equal(w[1], x[0, :4, 4:8].reshape(16, 3))  # second window = top row, second column
    assert torch.equal(window_reverse(w, 4, 8, 12), x)
    with pytest.raises(ValueError, match="not a multiple of the window size"):
        window_partition(torch.randn(1, 6, 8, 1), 4)


def test_relative_position_index_2x2_by_hand():
    # Window tokens (0,0),(0,1),(1,0),(1,1); offset (dr, dc) -> (dr + 1) * 3 + (dc + 1).
    expected = torch.tensor([[4, 3, 1, 0], [5, 4, 2, 1], [7, 6, 4, 3], [8, 7, 5, 4]])
    assert torch.equal(relative_position_index(2), expected)


def test_shift_mask_blocks_exactly_cross_region_pairs():
    h = w = 8
    win, shift = 4, 2
    mask = shift_attention_mask(h, w, win, shift)
    assert mask.shape == (4, 16, 16)
    # Build the region of every original position, shift it like the block does, and compare.
    rows = torch.arange(h)
    region_r = (rows >= h - win).long() + (rows >= h - shift).long()  # 0, 1, 2 along each axis
    region = (region_r[:, None] * 3 + region_r[None, :]).float()  # (H, W) in the shifted frame
    ids = window_partition(region[None, :, :, None], win).squeeze(-1)  # (nW, 16)
    assert torch.equal(mask, ids[:, :, None] == ids[:, None, :])
    assert mask[0].all()  # the top-left window holds one region only
    assert not mask[3].all() and mask[3].diagonal().all()
    # The bottom-right window mixes 4 regions of 2x2 tokens each: 4 * 4 * 4 allowed pairs.
    assert mask[3].sum() == 64


def test_window_attention_mask_isolates_regions():
    attn = WindowAttention(dim=8, window=2, num_heads=2)
    x = torch.randn(1, 4, 8)
    mask = torch.tensor([[True, True, False, False], [True, True, False, False],
                         [False, False, True, True], [False, False, True, True]])[None]
    out = attn(x, mask)
    x2 = x.clone()
    x2[0, 2:] += 1.0  # change tokens of the other region
    out2 = attn(x2, mask)
    assert_close(out[0, :2], out2[0, :2], reduction=8)  # first region unaffected (dim 8)


def test_shifted_block_patch_merging_and_model_shapes():
    blk = SwinBlock(dim=8, grid=(8, 8), num_heads=2, window=4, shift=2)
    assert blk(torch.randn(2, 64, 8)).shape == (2, 64, 8)
    assert PatchMerging(8, (8, 8))(torch.randn(2, 64, 8)).shape == (2, 16, 16)
    for size in (28, 112):
        cfg = SwinConfig(img_size=size, patch_size=size // 14 if size == 112 else 2, in_chans=1, num_classes=10,
                         embed_dim=16, depths=(2, 2), num_heads=(2, 4), window_size=7)
        model = SwinTransformer(cfg)
        assert model(torch.randn(2, 1, size, size)).shape == (2, 10)
    with pytest.raises(ValueError, match="expected images"):
        model(torch.randn(1, 3, 112, 112))
