import pytest
import torch

from vitcore import autocast, get_device, seed_everything


def test_get_device_defaults_and_override(monkeypatch):
    monkeypatch.delenv("VITCORE_DEVICE", raising=False)
    expected = "cuda" if torch.cuda.is_available() else ("mps" if torch.backends.mps.is_available() else "cpu")
    assert get_device().type == expected
    assert get_device("cpu") == torch.device("cpu")
    monkeypatch.setenv("VITCORE_DEVICE", "cpu")
    assert get_device().type == "cpu"


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
