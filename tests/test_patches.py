import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vitcore import grid_size, num_patches, patchify, unpatchify


@settings(max_examples=40, deadline=None)
@given(b=st.integers(1, 3), c=st.integers(1, 4), p=st.integers(1, 8), gh=st.integers(1, 6), gw=st.integers(1, 6))
def test_unpatchify_inverts_patchify(b, c, p, gh, gw):
    x = torch.randn(b, c, gh * p, gw * p)
    tokens = patchify(x, p)
    assert tokens.shape == (b, gh * gw, p * p * c)
    assert torch.equal(unpatchify(tokens, p, grid=(gh, gw), in_chans=c), x)


def test_patch_order_is_raster_and_pixels_are_p1_p2_c():
    x = torch.arange(2 * 4 * 6, dtype=torch.float32).reshape(1, 2, 4, 6)
    t = patchify(x, 2)  # grid 2x3
    assert t.shape == (1, 6, 8)
    # second patch (row 0, col 1) starts at pixel (0, 2): channel 0 then channel 1
    assert t[0, 1, :2].tolist() == [x[0, 0, 0, 2].item(), x[0, 1, 0, 2].item()]
    # fourth patch is row 1, col 0
    assert t[0, 3, 0].item() == x[0, 0, 2, 0].item()


def test_equals_unfold():
    x = torch.randn(2, 3, 32, 48)
    ref = torch.nn.functional.unfold(x, kernel_size=8, stride=8)  # (B, C*P*P, N), order (c, p1, p2)
    ref = ref.reshape(2, 3, 8, 8, -1).permute(0, 4, 2, 3, 1).reshape(2, -1, 8 * 8 * 3)
    assert torch.equal(patchify(x, 8), ref)


def test_num_patches():
    assert num_patches(224, 16) == 196
    assert num_patches((224, 112), 14) == 16 * 8
    assert grid_size(28, 7) == (4, 4)


def test_bad_size_raises_clear_error():
    with pytest.raises(ValueError, match="not a multiple of the patch size 16x16"):
        patchify(torch.randn(1, 3, 225, 224), 16)
    with pytest.raises(ValueError, match="expected 3 input channels, got 1"):
        patchify(torch.randn(1, 1, 32, 32), 16, in_chans=3)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        patchify(torch.randn(3, 32, 32), 16)
    with pytest.raises(ValueError, match="square grid"):
        unpatchify(torch.randn(1, 6, 48), 4)


def test_image_to_tensor_scales_resizes_and_refuses_other_layouts():
    import numpy as np

    from vitcore.patches import image_to_tensor

    img = np.zeros((4, 6, 3), dtype=np.uint8)
    img[1, 2] = (255, 0, 51)
    x = image_to_tensor(img, size=None)
    assert x.shape == (1, 3, 4, 6) and x.dtype == torch.float32
    # one correctly rounded float32 division per pixel: exactly k / 255 in float32
    assert torch.equal(x[0, :, 1, 2], torch.tensor([255.0, 0.0, 51.0]) / 255)
    assert image_to_tensor(img, size=8).shape == (1, 3, 8, 8)
    with pytest.raises(ValueError, match="uint8"):
        image_to_tensor(img.astype(np.float32))
    with pytest.raises(ValueError, match=r"\(H, W, C\)"):
        image_to_tensor(img[..., 0])
