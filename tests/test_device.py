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
