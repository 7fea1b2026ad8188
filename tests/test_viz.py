import pytest
import torch

from vitcore.viz import (
    attention_maps,
    attention_rollout,
    cls_attention,
    mean_attention_distance,
    patch_distances,
    pca_colors,
    upsample_map,
)
from vitcore.tolerance import assert_close
from vitcore.vit import ViTConfig, VisionTransformer


def tiny_vit():
    return VisionTransformer(ViTConfig(img_size=16, patch_size=4, in_chans=1, num_classes=3, embed_dim=16,
                                       depth=3, num_heads=2))


def test_attention_maps_shapes_and_rows_sum_to_one():
    maps = attention_maps(tiny_vit(), torch.randn(2, 1, 16, 16))
    assert len(maps) == 3 and maps[0].shape == (2, 2, 17, 17)
    for m in maps:
        assert_close(m.sum(-1), torch.ones(2, 2, 17), reduction=17)  # softmax rows over 17 tokens
    cls = cls_attention(maps[-1], (4, 4))
    assert cls.shape == (2, 2, 4, 4)
    assert_close(cls.flatten(-2).sum(-1) + maps[-1][:, :, 0, 0], torch.ones(2, 2), reduction=17)
    with pytest.raises(ValueError, match="does not match"):
        cls_attention(maps[-1], (3, 3))


def test_rollout_of_identity_is_identity_and_rows_sum_to_one():
    eye = torch.eye(5).expand(2, 3, 5, 5)
    assert_close(attention_rollout([eye, eye, eye]), torch.eye(5).expand(2, 5, 5), reduction=5, depth=3)
    maps = attention_maps(tiny_vit(), torch.randn(2, 1, 16, 16))
    r = attention_rollout(maps)
    assert_close(r.sum(-1), torch.ones(2, 17), reduction=17, depth=3)  # three 17 x 17 products
    # Without the residual term, rollout is the plain product of head-averaged maps.
    a = [m.mean(1) for m in maps]
    assert_close(attention_rollout(maps, residual=False), a[2] @ a[1] @ a[0], reduction=17, depth=3)


def test_attention_distance_on_constructed_maps():
    grid, p = (3, 3), 10
    d = patch_distances(grid, p)
    assert d[0, 1] == 10  # sqrt(100): exact
    assert_close(d[0, 4], torch.tensor(10 * 2**0.5))
    n = 9
    attn = torch.zeros(1, 2, n + 1, n + 1)
    attn[0, 0, :, 1:] = torch.eye(n + 1)[:, 1:] + 0  # head 0: each patch attends to itself
    attn[0, 0, 0, 1] = 1
    attn[0, 1, :, 1:] = 1.0 / n  # head 1: uniform over patches
    dist = mean_attention_distance(attn, grid, p)
    assert dist[0] == 0  # weight 1 on a distance of exactly 0
    assert_close(dist[1], d.mean(), reduction=n * n)  # both average the 81 patch distances


def test_upsample_and_pca_colors():
    heat = torch.arange(4.0).reshape(1, 2, 2)
    up = upsample_map(heat, (8, 8))
    assert up.shape == (1, 8, 8) and up.min() == 0 and up.max() == 1
    feats = torch.randn(2, 10, 6)
    cols = pca_colors(feats)
    assert cols.shape == (2, 10, 3) and cols.min() >= 0 and cols.max() <= 1
    # The first component separates two clusters.
    two = torch.cat([torch.randn(5, 6) * 0.01 + 3, torch.randn(5, 6) * 0.01 - 3])
    c = pca_colors(two)[:, 0]
    assert (c[:5] > 0.9).all() and (c[5:] < 0.1).all() or (c[:5] < 0.1).all() and (c[5:] > 0.9).all()
