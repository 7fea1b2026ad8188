"""Library calls leave the caller's world as it was: the global random streams (Python, NumPy,
torch) and cuDNN flags after ``zoo.get`` or ``shipped.load``, and the mode of a model passed in."""

import random

import numpy as np
import pytest
import torch

from vitcore import seed_everything, shipped, zoo
from vitcore.vit import VisionTransformer, ViTConfig


def _tiny_recipe():
    return dict(
        model=dict(
            arch="vit", img_size=28, patch_size=7, in_chans=1, num_classes=10, embed_dim=16, depth=1, num_heads=2
        ),
        data=dict(dataset="fashion_mnist", n_train=100, n_test=100, batch_size=50, augment=False),
        train={"epochs": 1, "lr": 3e-3},
        seed=5,
    )


def _draws():
    return random.random(), float(np.random.rand()), torch.rand(4)


def _same(a, b) -> bool:
    return a[:2] == b[:2] and torch.equal(a[2], b[2])


def test_zoo_get_leaves_the_callers_random_streams_alone(tmp_path):
    seed_everything(123)
    torch.rand(2)  # somewhere in the middle of the caller's stream
    expected = _draws()
    for cached in (False, True):  # trained now (the recipe seeds itself), then loaded from the cache
        seed_everything(123)
        torch.rand(2)
        torch.backends.cudnn.benchmark = True
        got = zoo.get("tiny", device="cpu", rec=_tiny_recipe(), cache=tmp_path, progress=False)
        assert got.cached is cached
        assert _same(_draws(), expected), f"cached={cached}: zoo.get moved the caller's random streams"
        assert torch.backends.cudnn.benchmark and not got.model.training
        torch.backends.cudnn.benchmark = False


@pytest.mark.slow
def test_training_inside_get_is_still_seeded_by_the_recipe(tmp_path):
    torch.manual_seed(1)
    a = zoo.get("tiny", device="cpu", rec=_tiny_recipe(), cache=tmp_path / "a", progress=False)
    torch.manual_seed(2)  # another caller's state: the same model
    b = zoo.get("tiny", device="cpu", rec=_tiny_recipe(), cache=tmp_path / "b", progress=False)
    assert a.history.step_loss == b.history.step_loss


def test_shipped_load_leaves_the_callers_random_streams_alone():
    name = "fmnist_cnn" if "fmnist_cnn" in shipped.names() else shipped.names()[0]
    seed_everything(7)
    expected = _draws()
    seed_everything(7)
    shipped.load(name, device="cpu")
    assert _same(_draws(), expected)


def test_vit_tokens_gives_the_callers_vit_back_in_its_mode():
    from vitcore.vlm_runs import vit_tokens

    vit = VisionTransformer(
        ViTConfig(img_size=28, patch_size=14, in_chans=3, num_classes=0, embed_dim=16, depth=2, num_heads=2)
    )
    vit.train()
    vit.blocks[1].eval()
    tokens = vit_tokens(vit, torch.rand(3, 3, 28, 28), [0, 1])  # (B, 1 + N, 2 * D)
    assert tokens.shape == (3, 5, 32)
    assert vit.training and vit.blocks[0].training and not vit.blocks[1].training
