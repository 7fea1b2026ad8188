import pytest
import torch

from vitcore.dense import DenseHead, mean_iou, tokens_to_map
from vitcore.tolerance import assert_close
from vitcore.vit import VisionTransformer, ViTConfig


def test_tokens_to_map_places_patches_on_grid():
    tokens = torch.arange(1 + 6, dtype=torch.float32).reshape(1, 7, 1)
    m = tokens_to_map(tokens, (2, 3))
    assert m.shape == (1, 1, 2, 3)
    assert m[0, 0].tolist() == [[1, 2, 3], [4, 5, 6]]
    with pytest.raises(ValueError, match="do not fill"):
        tokens_to_map(tokens, (3, 3))


def test_dense_head_output_shape_single_and_multi_layer():
    vit = VisionTransformer(
        ViTConfig(img_size=32, patch_size=8, in_chans=3, num_classes=0, embed_dim=16, depth=2, num_heads=2)
    )
    x = torch.randn(2, 3, 32, 32)
    feats = [tokens_to_map(t, (4, 4)) for t in vit.get_intermediate_layers(x, [0, 1])]
    assert DenseHead(16, 5)(feats[-1], (32, 32)).shape == (2, 5, 32, 32)
    assert DenseHead([16, 16], 5)(feats, (32, 32)).shape == (2, 5, 32, 32)


def test_mean_iou_on_known_masks():
    target = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1]])
    assert mean_iou(target, target, 2) == 1.0
    pred = torch.tensor([[0, 0, 0, 1], [0, 0, 0, 1]])

    # class 0: inter 4, union 6; class 1: inter 2, union 4
    def miou(*args, **kw):
        return torch.tensor(float(mean_iou(*args, **kw)))

    assert_close(miou(pred, target, 2), torch.tensor((4 / 6 + 2 / 4) / 2), reduction=2)
    assert_close(miou(pred, target, 3), torch.tensor((4 / 6 + 2 / 4) / 2), reduction=2)  # class 2 absent: skipped
    assert_close(miou(pred, target, 3, ignore_absent=False), torch.tensor((4 / 6 + 2 / 4 + 1) / 3), reduction=3)
    with pytest.raises(ValueError, match="differ in shape"):
        mean_iou(pred, target[:1], 2)


def _gelu(v: float) -> float:
    import math

    return 0.5 * v * (1.0 + math.erf(v / math.sqrt(2.0)))


def _bias(conv: torch.nn.Conv2d) -> list[float]:
    assert conv.bias is not None
    return conv.bias.tolist()


def test_dense_head_logits_of_one_token_by_hand():
    # DenseHead in eval mode: 1x1 conv -> BatchNorm (running stats) -> GELU, 3x3 conv (zero padding)
    # -> BatchNorm -> GELU, 1x1 conv. Two feature maps (2 and 1 channels) are concatenated first.
    torch.manual_seed(0)
    head = DenseHead([2, 1], num_classes=2, hidden=2).eval()
    fuse_conv, fuse_bn, refine_conv, refine_bn = head.fuse[0], head.fuse[1], head.refine[0], head.refine[1]
    assert isinstance(fuse_conv, torch.nn.Conv2d) and isinstance(refine_conv, torch.nn.Conv2d)
    assert isinstance(fuse_bn, torch.nn.BatchNorm2d) and isinstance(refine_bn, torch.nn.BatchNorm2d)
    with torch.no_grad():  # BatchNorm statistics and affine parameters that are not the identity
        for norm, mean, var, w, b in (
            (fuse_bn, [0.5, -0.2], [4.0, 0.25], [1.5, -1.0], [0.1, 0.2]),
            (refine_bn, [0.1, 0.0], [2.0, 9.0], [0.5, 2.0], [-0.3, 0.0]),
        ):
            assert norm.running_mean is not None and norm.running_var is not None  # track_running_stats
            norm.running_mean.copy_(torch.tensor(mean))
            norm.running_var.copy_(torch.tensor(var))
            norm.weight.copy_(torch.tensor(w))
            norm.bias.copy_(torch.tensor(b))
    a = torch.randn(1, 2, 3, 3)  # block 1: 2 channels on a 3x3 patch grid
    c = torch.randn(1, 1, 3, 3)  # block 2: 1 channel
    feats = [a[0, 0].tolist(), a[0, 1].tolist(), c[0, 0].tolist()]  # channel-concatenated, by hand

    def bn(v, m):  # eval-mode BatchNorm: (x - running mean) / sqrt(running var + eps) * weight + bias
        return [
            (x - mu) / (var + m.eps) ** 0.5 * w + b
            for x, mu, var, w, b in zip(
                v, m.running_mean.tolist(), m.running_var.tolist(), m.weight.tolist(), m.bias.tolist()
            )
        ]

    w1, b1 = fuse_conv.weight[:, :, 0, 0].tolist(), _bias(fuse_conv)  # (2, 3)

    def fused(r, q):  # the hidden vector at grid cell (r, q); zero outside the grid (the 3x3 conv's padding)
        if not (0 <= r < 3 and 0 <= q < 3):
            return [0.0, 0.0]
        x = [f[r][q] for f in feats]
        h = [sum(wij * xj for wij, xj in zip(row, x)) + bi for row, bi in zip(w1, b1)]
        return [_gelu(t) for t in bn(h, fuse_bn)]

    w2, b2 = refine_conv.weight.tolist(), _bias(refine_conv)  # (2, 2, 3, 3)
    w3, b3 = head.classifier.weight[:, :, 0, 0].tolist(), _bias(head.classifier)  # (2, 2)

    def logits_at(r, q):
        h = []
        for o in range(2):
            h.append(
                b2[o]
                + sum(
                    w2[o][i][dr + 1][dq + 1] * fused(r + dr, q + dq)[i]
                    for i in range(2)
                    for dr in (-1, 0, 1)
                    for dq in (-1, 0, 1)
                )
            )
        h = [_gelu(t) for t in bn(h, refine_bn)]
        return [sum(wij * hj for wij, hj in zip(row, h)) + bi for row, bi in zip(w3, b3)]

    out = head([a, c], (3, 3))  # the grid size: the bilinear resize is the identity
    assert_close(out[0, :, 0, 0], torch.tensor(logits_at(0, 0)), reduction=18, depth=3)  # a corner: padding counts
    assert_close(
        out[0, :, 1, 1], torch.tensor(logits_at(1, 1)), reduction=18, depth=3
    )  # centre: 2 x 3 x 3 inputs, 3 convs
    # bilinear upsampling by 2 (align_corners=False): output pixel i samples input (i + 0.5) / 2 - 0.5,
    # so pixel (3, 2) lies at (1.25, 0.75): 3/4 of row 1 + 1/4 of row 2, 1/4 of column 0 + 3/4 of column 1
    up = head([a, c], (6, 6))
    grid = [[logits_at(r, q) for q in range(3)] for r in range(3)]
    want = [
        sum(wr * wq * grid[r][q][k] for r, wr in ((1, 0.75), (2, 0.25)) for q, wq in ((0, 0.25), (1, 0.75)))
        for k in range(2)
    ]
    assert_close(up[0, :, 3, 2], torch.tensor(want), reduction=18, depth=3)
    assert_close(up[0, :, 0, 0], out[0, :, 0, 0], reduction=18)  # the border clamps to the corner cell


def test_tokens_to_map_skips_any_number_of_prefix_tokens_and_keeps_channels():
    # 1 CLS + 2 registers, then a 2x2 grid of 3-channel tokens: token n, channel d holds 10 * n + d
    tokens = torch.tensor([[[10.0 * n + d for d in range(3)] for n in range(3 + 4)]])
    m = tokens_to_map(tokens, (2, 2), num_prefix_tokens=3)
    assert m.shape == (1, 3, 2, 2)
    for d in range(3):
        assert m[0, d].tolist() == [[30 + d, 40 + d], [50 + d, 60 + d]]
    assert torch.equal(tokens_to_map(tokens[:, 3:], (2, 2), num_prefix_tokens=0), m)
