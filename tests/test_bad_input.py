"""Bad input gets a clear error that names the problem: never a silent wrong answer, a NaN, or an
unrelated exception from deep inside a library. Property-based where the space of bad inputs is
large (image sizes, box strings, damaged files)."""

import gzip
import pickle
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from vitcore import ViTConfig, VisionTransformer, patchify, unpatchify
from vitcore.boxes import BoxParseError, parse_box
from vitcore.checkpoint import load_weights, save_weights

FAST = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
SMALL = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


# ------------------------------------------------------------------------- checkpoint files
def _state():
    g = torch.Generator().manual_seed(0)
    return {"w": torch.randn(8, 8, generator=g), "b": torch.arange(8), "n": torch.zeros(3, dtype=torch.float16)}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """A good ``.pt`` (zip format), a legacy ``.pt`` and a ``.safetensors`` file, as bytes."""
    d = tmp_path_factory.mktemp("ckpt")
    torch.save(_state(), d / "zip.pt")
    torch.save(_state(), d / "legacy.pt", _use_new_zipfile_serialization=False)
    save_weights(_state(), d / "w.safetensors")
    return {name: (d / name).read_bytes() for name in ("zip.pt", "legacy.pt", "w.safetensors")}


@pytest.mark.parametrize("name", ["zip.pt", "legacy.pt", "w.safetensors"])
def test_good_checkpoints_load(tmp_path, checkpoints, name):
    path = tmp_path / name
    path.write_bytes(checkpoints[name])
    got = load_weights(path)
    assert set(got) == {"w", "b", "n"} and all(torch.equal(got[k], v) for k, v in _state().items())


@pytest.mark.parametrize("name", ["zip.pt", "legacy.pt"])
@pytest.mark.parametrize("keep", [0, 1, 10, 0.5, 0.9])
def test_truncated_torch_file_is_called_corrupt_or_truncated(tmp_path, checkpoints, name, keep):
    raw = checkpoints[name]
    path = tmp_path / name
    path.write_bytes(raw[: int(keep * len(raw)) if isinstance(keep, float) else keep])
    with pytest.raises(ValueError, match=r"corrupt or truncated") as err:
        load_weights(path)
    assert str(path) in str(err.value) and "untrusted" not in str(err.value)


def test_not_a_checkpoint_at_all(tmp_path):
    path = tmp_path / "notes.pt"
    path.write_text("these are my notes, not weights\n" * 20)
    with pytest.raises(ValueError, match=rf"{path}.*corrupt or truncated"):
        load_weights(path)


@pytest.mark.parametrize("keep", [0, 5, 8, 40, 0.5, 0.99])
def test_truncated_safetensors_file_is_called_corrupt(tmp_path, checkpoints, keep):
    raw = checkpoints["w.safetensors"]
    path = tmp_path / "w.safetensors"
    path.write_bytes(raw[: int(keep * len(raw)) if isinstance(keep, float) else keep])
    with pytest.raises(ValueError, match=rf"corrupt or truncated safetensors file {path}"):
        load_weights(path)


def test_pickled_objects_are_refused_as_untrusted(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    for blob, name in (({"w": torch.zeros(1), "obj": Evil()}, "zip.pt"), ({"w": Evil()}, "legacy.pt")):
        path = tmp_path / name
        torch.save(blob, path, _use_new_zipfile_serialization=name == "zip.pt")
        with pytest.raises(ValueError, match=r"refusing to load .*untrusted pickle") as err:
            load_weights(path)
        assert "print" in str(err.value) and "corrupt" not in str(err.value)


@pytest.mark.parametrize(
    "blob, message",
    [
        ({"w": torch.zeros(2), "step": 7}, r"not a flat dict of tensors: 'step' holds int"),
        ({"w": torch.zeros(2), "cfg": {"lr": 0.1}}, r"'cfg' holds dict"),
        ([torch.zeros(2)], r"not a flat dict of tensors: it holds a list"),
        (torch.zeros(2), r"it holds a Tensor"),
        ({"w": torch.zeros(2), 3: torch.zeros(1)}, r"key 3 is not a string"),
    ],
)
def test_wrong_content_is_named(tmp_path, blob, message):
    path = tmp_path / "odd.pt"
    torch.save(blob, path)
    with pytest.raises(ValueError, match=message):
        load_weights(path)


def test_a_directory_or_missing_file_is_not_a_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        load_weights(tmp_path / "nothing.pt")
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        load_weights(tmp_path)
