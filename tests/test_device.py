import pytest
import torch

from vitcore import autocast, get_device, on_gpu, seed_everything


@pytest.mark.parametrize(
    "cuda, mps, expected", [(True, True, "cuda"), (True, False, "cuda"), (False, True, "mps"), (False, False, "cpu")]
)
def test_get_device_prefers_cuda_then_mps_then_cpu(monkeypatch, cuda, mps, expected):
    monkeypatch.delenv("VITCORE_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    assert get_device() == torch.device(expected)
    assert on_gpu() is (expected != "cpu")


def test_get_device_override(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert get_device("cpu") == torch.device("cpu")  # an explicit choice wins over the cascade
    monkeypatch.setenv("VITCORE_DEVICE", "cpu")
    assert get_device() == torch.device("cpu")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="MPS was requested"):
        get_device("mps")


def test_unavailable_device_is_an_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="CUDA was requested"):
        get_device("cuda")


def test_autocast_is_noop_on_cpu():
    with autocast("cpu"):
        y = torch.ones(2, 2) @ torch.ones(2, 2)
    assert y.dtype == torch.float32


def test_seed_everything_repeats_random_streams():
    g1 = seed_everything(7)
    a = (torch.rand(3), torch.rand(3, generator=g1))
    g2 = seed_everything(7)
    b = (torch.rand(3), torch.rand(3, generator=g2))
    assert all(torch.equal(x, y) for x, y in zip(a, b))


def _draws() -> tuple:
    import random

    import numpy as np

    return random.random(), float(np.random.rand()), torch.rand(3)


def test_seeded_and_preserved_rng_restore_every_global_stream():
    from vitcore.device import preserved_rng, seeded

    seed_everything(3)
    expected = _draws()
    seed_everything(3)
    torch.backends.cudnn.benchmark = True
    with seeded(11) as gen:
        inside = torch.rand(3, generator=gen), torch.rand(3)
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    assert torch.backends.cudnn.benchmark  # the caller's flag is back
    torch.backends.cudnn.benchmark = False
    got = _draws()
    assert got[:2] == expected[:2] and torch.equal(got[2], expected[2])
    seed_everything(11)
    assert torch.equal(inside[1], torch.rand(3))  # inside, the seed was in force
    seed_everything(3)
    with pytest.raises(ZeroDivisionError), preserved_rng():
        torch.rand(5)
        raise ZeroDivisionError("inside the block")
    assert torch.equal(_draws()[2], expected[2])  # restored on an error too


def test_preserved_mode_restores_each_submodule():
    from vitcore.device import preserved_mode

    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout(0.5))
    model.train()
    model[1].eval()
    with preserved_mode(model):
        model.eval()
        assert not model.training
    assert model.training and model[0].training and not model[1].training
