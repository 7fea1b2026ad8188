"""DINO and MAE pre-training loops (vitcore.dino.pretrain, vitcore.mae.pretrain) and their judges."""

import copy
from typing import Any

import pytest
import torch

import vitcore
from vitcore import selfsup
from vitcore.data import normalise
from vitcore.dino import DINOModel, knn_hits
from vitcore.dino import pretrain as dino_pretrain
from vitcore.mae import MaskedAutoencoder
from vitcore.mae import pretrain as mae_pretrain

BACKBONE: dict[str, Any] = dict(
    img_size=28,
    patch_size=7,
    in_chans=1,
    num_classes=0,
    embed_dim=32,
    depth=2,
    num_heads=2,
    mlp_ratio=2.0,
    dynamic_img_size=True,
    global_pool="avg",
)
ENCODER: dict[str, Any] = dict(
    img_size=28,
    patch_size=7,
    in_chans=1,
    num_classes=0,
    embed_dim=32,
    depth=2,
    num_heads=2,
    mlp_ratio=2.0,
    pos_embed="sincos2d",
    global_pool="avg",
)


@pytest.fixture(scope="module")
def images(fmnist_train):
    x, _ = fmnist_train
    return normalise(x[:256])


class Stop(Exception):
    pass


def _dino_pair():
    torch.manual_seed(0)
    student = DINOModel(vitcore.VisionTransformer(vitcore.ViTConfig(**BACKBONE)), 32, out_dim=64)
    return student, copy.deepcopy(student)


def _stop_at(epoch_to_stop):
    def on_epoch(epoch, _model):
        if epoch == epoch_to_stop:
            raise Stop
        return {"acc": float(epoch)}

    return on_epoch


def test_dino_resumes_to_the_same_weights(images, tmp_path):
    student, teacher = _dino_pair()
    log = dino_pretrain(
        student,
        teacher,
        images,
        steps=12,
        batch_size=64,
        jitter=0.4,
        progress=False,
        on_epoch=_stop_at(-1),
        state_path=tmp_path / "a.pt",
    )
    assert len(log) == 12 and [r["epoch"]["acc"] for r in log if "epoch" in r] == [0.0, 1.0, 2.0]
    s2, t2 = _dino_pair()
    with pytest.raises(Stop):  # dies at the end of the second epoch, after the first epoch's state was saved
        dino_pretrain(
            s2,
            t2,
            images,
            steps=12,
            batch_size=64,
            jitter=0.4,
            progress=False,
            on_epoch=_stop_at(1),
            state_path=tmp_path / "b.pt",
        )
    assert torch.load(tmp_path / "b.pt", weights_only=False)["step"] == 4
    s3, t3 = _dino_pair()
    resumed = dino_pretrain(
        s3,
        t3,
        images,
        steps=12,
        batch_size=64,
        jitter=0.4,
        progress=False,
        on_epoch=_stop_at(-1),
        state_path=tmp_path / "b.pt",
    )
    assert [r["loss"] for r in resumed] == [r["loss"] for r in log]
    for (k, a), b in zip(teacher.state_dict().items(), t3.state_dict().values()):
        assert torch.equal(a, b), f"teacher {k} differs after resuming"  # same kernels, same order
    for (k, a), b in zip(student.state_dict().items(), s3.state_dict().values()):
        assert torch.equal(a, b), f"student {k} differs after resuming"


def test_dino_teacher_moves_slowly_and_gets_no_gradients(images):
    student, teacher = _dino_pair()
    start = copy.deepcopy(teacher)
    dino_pretrain(student, teacher, images, steps=4, batch_size=64, m0=0.9, progress=False)
    assert all(not p.requires_grad for p in teacher.parameters())
    moved_t = sum((a - b).norm() for a, b in zip(teacher.parameters(), start.parameters()))
    moved_s = sum((a - b).norm() for a, b in zip(student.parameters(), start.parameters()))
    assert 0 < moved_t < moved_s  # the EMA follows the student, a fraction of the way


def test_dino_refuses_too_few_images(images):
    student, teacher = _dino_pair()
    with pytest.raises(ValueError, match="at least one batch"):
        dino_pretrain(student, teacher, images[:10], steps=1, batch_size=64, progress=False)


def test_mae_resumes_to_the_same_weights(images, tmp_path):
    def model():
        torch.manual_seed(0)
        return MaskedAutoencoder(vitcore.ViTConfig(**ENCODER), decoder_dim=16, decoder_depth=1, decoder_heads=2)

    straight = model()
    log = mae_pretrain(straight, images, steps=12, batch_size=64, progress=False)
    partial = model()
    with pytest.raises(Stop):
        mae_pretrain(
            partial, images, steps=12, batch_size=64, progress=False, on_epoch=_stop_at(1), state_path=tmp_path / "m.pt"
        )
    resumed = model()
    log2 = mae_pretrain(
        resumed, images, steps=12, batch_size=64, progress=False, on_epoch=_stop_at(-1), state_path=tmp_path / "m.pt"
    )
    assert [r["loss"] for r in log2] == [r["loss"] for r in log]
    for (k, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), f"{k} differs after resuming"


def test_mae_loss_falls(images):
    torch.manual_seed(0)
    mae = MaskedAutoencoder(vitcore.ViTConfig(**ENCODER), decoder_dim=16, decoder_depth=1, decoder_heads=2)
    log = mae_pretrain(mae, images, steps=40, batch_size=64, lr=3e-3, progress=False)
    first, last = sum(r["loss"] for r in log[:4]) / 4, sum(r["loss"] for r in log[-4:]) / 4
    assert last < 0.9 * first


def test_knn_hits_votes_by_similarity():
    bank = torch.eye(3)  # three unit vectors, labels 0, 1, 2
    bank_y = torch.tensor([0, 1, 2])
    query = torch.nn.functional.normalize(torch.tensor([[0.9, 0.1, 0.0], [0.0, 0.2, 1.0]]), dim=-1)
    hits = knn_hits(bank, bank_y, query, torch.tensor([0, 1]), k=2, num_classes=3)
    assert hits.tolist() == [True, False]  # nearest is label 0, then label 2
    with pytest.raises(ValueError, match="dims"):
        knn_hits(bank, bank_y, query[:, :2], torch.tensor([0, 1]), k=2)


def test_knn_accuracy_of_pixels_beats_chance(fmnist_train):
    x, y = fmnist_train
    sets = (normalise(x[:2000]), y[:2000], normalise(x[2000:2500]), y[2000:2500])
    flatten = torch.nn.Flatten()  # a "backbone" that returns the pixels
    flatten.register_parameter("dummy", torch.nn.Parameter(torch.zeros(1)))  # embed() reads the device
    assert selfsup.knn_accuracy(flatten, sets) > 0.6


# ----------------------------------------------------------------------------- item scenes (ch. 10, 11)
def test_item_scenes_are_seeded_labelled_and_split_by_garment():
    from vitcore.scenes import item_scenes, normalise_scenes

    x, y = item_scenes("train", 40, seed=3)
    assert x.shape == (40, 3, 32, 32) and x.dtype == torch.float32 and y.shape == (40,)
    assert 0 <= float(x.min()) and float(x.max()) <= 1
    x2, y2 = item_scenes("train", 40, seed=3)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    assert not torch.equal(item_scenes("train", 40, seed=4)[0], x)
    assert not torch.equal(item_scenes("test", 40, seed=3)[0], x)  # other garments
    assert set(y.tolist()) <= set(range(10))
    z = normalise_scenes(x)
    assert z.shape == x.shape and abs(float(z.mean())) < 1.0
    with pytest.raises(ValueError, match="RGB scenes"):
        normalise_scenes(x[:, :1])


def test_colour_change_reorders_channels_or_greys():
    from vitcore.dino import _colour_change

    x = torch.rand(64, 3, 5, 5)
    out = _colour_change(x, torch.Generator().manual_seed(0), grey_p=0.3)
    grey = (out[:, 0] == out[:, 1]).all(-1).all(-1) & (out[:, 1] == out[:, 2]).all(-1).all(-1)
    assert 0 < int(grey.sum()) < 64  # some images grey, most not
    vitcore.tolerance.assert_close(out[grey][:, 0], x[grey].mean(1))
    # every other image holds the same three channels, in some order
    assert torch.equal(out[~grey].sort(dim=1).values, x[~grey].sort(dim=1).values)
    assert not torch.equal(out[~grey], x[~grey])  # and the order changed for some


def test_initial_model_leaves_the_callers_random_stream_alone():
    rec = dict(method="dino", model=dict(arch="vit", **BACKBONE), seed=5)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    first = selfsup.initial_model(rec)
    assert torch.equal(torch.rand(3), expected)
    again = selfsup.initial_model(rec)  # the same weights whatever came before
    for a, b in zip(first.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)


def test_pixel_knn_accuracy_is_the_pixels_own_vote():
    bank = torch.eye(10).repeat(3, 1).view(30, 1, 2, 5)  # three copies of ten one-hot "images"
    bank_y = torch.arange(10).repeat(3)
    query = bank[:10] + 0.01 * torch.randn(10, 1, 2, 5, generator=torch.Generator().manual_seed(0))
    assert selfsup.pixel_knn_accuracy((bank, bank_y, query, torch.arange(10))) == 1.0
    assert selfsup.pixel_knn_accuracy((bank, bank_y, query, (torch.arange(10) + 1) % 10)) == 0.0
