import pytest
import torch

from vitcore.mae import MaskedAutoencoder, random_masking
from vitcore.patches import unpatchify
from vitcore.tolerance import assert_close
from vitcore.vit import ViTConfig


def tiny_mae(**kw):
    cfg = ViTConfig(img_size=16, patch_size=4, in_chans=1, embed_dim=16, depth=1, num_heads=2, pos_embed="sincos2d")
    return MaskedAutoencoder(cfg, decoder_dim=8, decoder_depth=1, decoder_heads=2, **kw)


@pytest.mark.parametrize("ratio", [0.0, 0.25, 0.75, 0.9])
def test_masking_keeps_exact_count_and_restore_inverts(ratio):
    x = torch.randn(3, 16, 5)
    vis, mask, ids_restore = random_masking(x, ratio, torch.Generator().manual_seed(0))
    keep = int(round(16 * (1 - ratio)))
    assert vis.shape == (3, keep, 5)
    assert mask.sum(1).tolist() == [16 - keep] * 3
    # The visible tokens are exactly the unmasked rows of x.
    for b in range(3):
        kept = x[b][mask[b] == 0]
        assert sorted(map(tuple, kept.tolist())) == sorted(map(tuple, vis[b].tolist()))
    # ids_restore undoes the shuffle: a full "shuffled" sequence is put back in order.
    ids_shuffle = ids_restore.argsort(1)
    shuffled = torch.gather(x, 1, ids_shuffle.unsqueeze(-1).expand(-1, -1, 5))
    assert torch.equal(torch.gather(shuffled, 1, ids_restore.unsqueeze(-1).expand(-1, -1, 5)), x)


def test_masking_rejects_bad_ratio():
    with pytest.raises(ValueError, match="mask_ratio"):
        random_masking(torch.randn(1, 4, 2), 1.0)


def test_shapes():
    mae = tiny_mae()
    loss, pred, mask = mae(torch.randn(2, 1, 16, 16), 0.75)
    assert pred.shape == (2, 16, 16) and mask.shape == (2, 16) and loss.ndim == 0
    latent, _, _ = mae.forward_encoder(torch.randn(2, 1, 16, 16), 0.75)
    assert latent.shape == (2, 1 + 4, 16)  # the encoder saw only a quarter of the patches


def test_loss_ignores_visible_patch_predictions():
    mae = tiny_mae()
    images = torch.randn(2, 1, 16, 16)
    _, pred, mask = mae(images, 0.5)
    base = mae.loss(images, pred, mask)
    perturbed = pred + 5.0 * (1 - mask).unsqueeze(-1)  # change only visible-patch predictions
    assert_close(mae.loss(images, perturbed, mask), base, reduction=2 * 16 * 16)  # 2 images x 16 patches x 16 pixels
    worse = pred + 5.0 * mask.unsqueeze(-1)  # change masked-patch predictions
    assert mae.loss(images, worse, mask) > base


def test_perfect_prediction_gives_zero_loss_and_norm_pix_target():
    mae = tiny_mae()
    images = torch.rand(2, 1, 16, 16)
    target = mae.target(images)
    assert mae.loss(images, target, torch.ones(2, 16)) == 0
    assert torch.equal(unpatchify(target, 4, in_chans=1), images)
    t = tiny_mae(norm_pix_loss=True).target(images)
    assert_close(t.mean(-1), torch.zeros(2, 16), reduction=16)  # per-patch mean of 16 normalised pixels


def test_norm_pix_loss_by_hand_on_masked_patches_only():
    # MAE (He et al., 2022, sec. 3 and models_mae.forward_loss): the target of each patch is its pixels
    # normalised by the patch's own mean and (unbiased) variance, (x - mean) / sqrt(var + 1e-6); the loss is
    # the per-patch mean squared error, averaged over the masked patches only.
    cfg = ViTConfig(img_size=4, patch_size=2, in_chans=2, embed_dim=8, depth=1, num_heads=2, pos_embed="sincos2d")
    mae = MaskedAutoencoder(cfg, decoder_dim=4, decoder_depth=1, decoder_heads=1, norm_pix_loss=True)
    # 2 images, 2 channels, a 2x2 grid of 2x2 patches; pixel (b, c, y, x) = a value that differs everywhere
    images = torch.tensor(
        [
            [[[(b + 1) * (1 + c) * (y * 4 + x) ** 1.5 - 3 * c for x in range(4)] for y in range(4)] for c in range(2)]
            for b in range(2)
        ]
    )
    mask = torch.tensor([[1.0, 0.0, 0.0, 1.0], [0.0, 1.0, 0.0, 0.0]])  # 3 hidden patches in all
    # a prediction per patch, written in MAE's pixel order within a patch: row, column, channel fastest
    pred = torch.tensor(
        [[[0.1 * (n + 1) * ((-1) ** k) + 0.05 * k for k in range(8)] for n in range(4)] for b in range(2)]
    )
    pred[mask == 0] += 100.0  # visible patches: far off, yet they must not count

    def patch_pixels(b, n):  # patch n in raster order: rows 2 * (n // 2) .., columns 2 * (n % 2) ..
        r, q = 2 * (n // 2), 2 * (n % 2)
        return [images[b, c, r + i, q + j].item() for i in range(2) for j in range(2) for c in range(2)]

    per_patch_losses = []
    for b in range(2):
        for n in range(4):
            if mask[b, n] == 0:
                continue
            x = patch_pixels(b, n)
            mean = sum(x) / 8
            var = sum((v - mean) ** 2 for v in x) / 7  # unbiased, as torch.var and the MAE code
            target = [(v - mean) / (var + 1e-6) ** 0.5 for v in x]
            per_patch_losses.append(sum((p - t) ** 2 for p, t in zip(pred[b, n].tolist(), target)) / 8)
    expected = sum(per_patch_losses) / 3
    assert_close(mae.loss(images, pred, mask), torch.tensor(expected), reduction=2 * 4 * 8)
    # without norm_pix_loss the target is the raw pixels
    mae.norm_pix_loss = False
    raw = (
        sum(
            sum((p - t) ** 2 for p, t in zip(pred[b, n].tolist(), patch_pixels(b, n))) / 8
            for b in range(2)
            for n in range(4)
            if mask[b, n] == 1
        )
        / 3
    )
    assert_close(mae.loss(images, pred, mask), torch.tensor(raw), reduction=2 * 4 * 8)
