import pytest
import torch

from vitcore.swin import (
    PatchMerging,
    SwinBlock,
    SwinConfig,
    SwinStage,
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
    mask = torch.tensor(
        [[True, True, False, False], [True, True, False, False], [False, False, True, True], [False, False, True, True]]
    )[None]
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
        cfg = SwinConfig(
            img_size=size,
            patch_size=size // 14 if size == 112 else 2,
            in_chans=1,
            num_classes=10,
            embed_dim=16,
            depths=(2, 2),
            num_heads=(2, 4),
            window_size=7,
        )
        model = SwinTransformer(cfg)
        assert model(torch.randn(2, 1, size, size)).shape == (2, 10)
    with pytest.raises(ValueError, match="expected images"):
        model(torch.randn(1, 3, 112, 112))


def _timm_state_dict(model: SwinTransformer) -> dict[str, torch.Tensor]:
    """vitcore Swin weights under timm's names: timm merges patches at the *start* of the next
    stage (``layers.{i+1}.downsample``) and its classifier is ``head.fc``."""
    out = {}
    for name, tensor in model.state_dict().items():
        parts = name.split(".")
        if parts[0] == "layers" and parts[2] == "downsample":
            parts[1] = str(int(parts[1]) + 1)
        elif parts[0] == "head":
            parts.insert(1, "fc")
        out[".".join(parts)] = tensor
    return out


@pytest.mark.parametrize(
    "cfg",
    [
        # chapter 15's model: a 14x14 grid in 7x7 windows (shifted by 3), then one 7x7 window
        SwinConfig(
            img_size=28,
            patch_size=2,
            in_chans=1,
            num_classes=10,
            embed_dim=32,
            depths=(2, 2),
            num_heads=(2, 4),
            window_size=7,
        ),
        # three stages, shifted windows in the first two, RGB input, 4x4 patches
        SwinConfig(
            img_size=64,
            patch_size=4,
            in_chans=3,
            num_classes=5,
            embed_dim=24,
            depths=(2, 2, 2),
            num_heads=(2, 3, 6),
            window_size=4,
        ),
    ],
)
def test_forward_equals_timm_swin_with_the_same_weights(cfg):
    """Reference: timm's SwinTransformer built with the same configuration (no download) and
    given vitcore's weights by name must compute the same logits."""
    from timm.models.swin_transformer import SwinTransformer as TimmSwin

    model = SwinTransformer(cfg).eval()
    for p in model.parameters():  # no zero-initialised tensor may hide a wrong mapping
        torch.nn.init.normal_(p, std=0.2)
    ref = TimmSwin(
        img_size=cfg.img_size,
        patch_size=cfg.patch_size,
        in_chans=cfg.in_chans,
        num_classes=cfg.num_classes,
        embed_dim=cfg.embed_dim,
        depths=cfg.depths,
        num_heads=cfg.num_heads,
        window_size=cfg.window_size,
        drop_path_rate=0.0,
    ).eval()
    missing, unexpected = ref.load_state_dict(_timm_state_dict(model), strict=True)
    assert not missing and not unexpected
    x = torch.randn(2, cfg.in_chans, cfg.img_size, cfg.img_size)
    with torch.no_grad():
        ours, theirs = model(x), ref(x)
    width = cfg.embed_dim * 2 ** (len(cfg.depths) - 1)
    assert_close(ours, theirs, reduction=4 * width, depth=sum(cfg.depths))


def test_patch_merging_concatenation_order_is_the_papers():
    # One channel, a 2x2 grid holding 0, 1 (top row) and 2, 3 (bottom row): the Swin paper's code
    # and timm concatenate top left, bottom left, top right, bottom right.
    merge = PatchMerging(1, (2, 2))
    merge.add_module("norm", torch.nn.Identity())  # (add_module: the attributes are typed LayerNorm, Linear)
    merge.add_module("reduction", torch.nn.Identity())
    grid = torch.tensor([[0.0, 1.0], [2.0, 3.0]]).reshape(1, 4, 1)
    assert merge(grid).flatten().tolist() == [0.0, 2.0, 1.0, 3.0]


def test_window_attention_explicit_path_equals_fused():
    # count_macs switches to the explicit path to count the attention products: it must
    # compute the same function, masked windows included
    attn = WindowAttention(dim=16, window=4, num_heads=2).eval()
    with torch.no_grad():
        attn.relative_position_bias_table.normal_()
    x = torch.randn(2 * 4, 16, 16)  # two images of 4 windows
    mask = shift_attention_mask(8, 8, 4, 2)
    with torch.no_grad():
        fused = attn(x, mask)
        attn.fused_attn = False
        explicit = attn(x, mask)
    assert_close(explicit, fused, reduction=16)


def test_swin_stage_alternates_shifts_and_merges_after_its_blocks():
    # Swin (Liu et al., 2021, Fig. 3 and the official BasicLayer): a stage is blocks with W-MSA and
    # SW-MSA alternating (shift = window // 2 in every second block), then patch merging.
    torch.manual_seed(0)
    stage = SwinStage(
        dim=4, grid=(4, 4), depth=3, num_heads=2, window=2, downsample=True, drop_paths=[0.0, 0.0, 0.0]
    ).eval()
    assert [blk.shift for blk in stage.blocks] == [0, 1, 0]
    x = torch.randn(2, 16, 4)
    out = stage(x)
    assert out.shape == (2, 4, 8)  # a 2x2 grid of 2 * dim channels
    y = x
    for blk in stage.blocks:
        y = blk(y)
    # patch merging by hand: the 2x2 group at rows 2i, 2i+1 and columns 2j, 2j+1 of the 4x4 grid,
    # concatenated as (top left, bottom left, top right, bottom right), then LayerNorm and the reduction
    grid = y.reshape(2, 4, 4, 4)
    groups = torch.stack(
        [
            torch.cat(
                [
                    grid[:, 2 * i, 2 * j],
                    grid[:, 2 * i + 1, 2 * j],
                    grid[:, 2 * i, 2 * j + 1],
                    grid[:, 2 * i + 1, 2 * j + 1],
                ],
                -1,
            )
            for i in range(2)
            for j in range(2)
        ],
        1,
    )  # (2, 4, 16)
    merge = stage.downsample
    assert isinstance(merge, PatchMerging)
    mu = groups.mean(-1, keepdim=True)
    var = ((groups - mu) ** 2).mean(-1, keepdim=True)
    normed = (groups - mu) / (var + merge.norm.eps).sqrt() * merge.norm.weight + merge.norm.bias
    expected = normed @ merge.reduction.weight.T
    assert_close(out, expected, reduction=16)  # the blocks ran the same code; the merge sums 16 channels
    last = SwinStage(dim=4, grid=(4, 4), depth=2, num_heads=2, window=2, downsample=False, drop_paths=[0.0, 0.0])
    assert isinstance(last.downsample, torch.nn.Identity) and last(x).shape == (2, 16, 4)
