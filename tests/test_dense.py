import pytest
import torch

from vitcore.dense import DenseHead, mean_iou, tokens_to_map
from vitcore.tolerance import assert_close
from vitcore.vit import ViTConfig, VisionTransformer


def test_tokens_to_map_places_patches_on_grid():
    tokens = torch.arange(1 + 6, dtype=torch.float32).reshape(1, 7, 1)
    m = tokens_to_map(tokens, (2, 3))
    assert m.shape == (1, 1, 2, 3)
    assert m[0, 0].tolist() == [[1, 2, 3], [4, 5, 6]]
    with pytest.raises(ValueError, match="do not fill"):
        tokens_to_map(tokens, (3, 3))


def test_dense_head_output_shape_single_and_multi_layer():
    vit = VisionTransformer(ViTConfig(img_size=32, patch_size=8, in_chans=3, num_classes=0, embed_dim=16,
                                      depth=2, num_heads=2))
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
