"""One way to write a file: vitcore.checkpoint.atomic_write (unique temporary name, fsync, replace)."""

import json
import os

import pytest
import torch

from vitcore.checkpoint import atomic_write, load_weights, save_weights


def test_a_failing_writer_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "meta.json"
    path.write_text('{"old": 1}')

    class Boom(Exception):
        pass

    with pytest.raises(Boom), atomic_write(path, "w") as f:
        f.write('{"new": ')
        raise Boom
    assert path.read_text() == '{"old": 1}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["meta.json"]


def test_the_new_file_replaces_the_old_whole(tmp_path):
    path = tmp_path / "sub" / "state.pt"
    with atomic_write(path) as f:
        torch.save({"w": torch.arange(3)}, f)
    with atomic_write(path) as f:
        torch.save({"w": torch.arange(5)}, f)
    assert torch.equal(torch.load(path, weights_only=True)["w"], torch.arange(5))
    assert [p.name for p in path.parent.iterdir()] == ["state.pt"]
    assert path.stat().st_mode & 0o777 == 0o644  # readable like any file written with open()


def test_two_writers_get_different_temporary_names_in_the_same_folder(tmp_path):
    path = tmp_path / "w.json"
    with atomic_write(path, "w") as a, atomic_write(path, "w") as b:
        assert a.name != b.name
        assert os.path.dirname(a.name) == os.path.dirname(b.name) == str(tmp_path)
        json.dump({"a": 1}, a)
        json.dump({"b": 2}, b)
    assert json.loads(path.read_text()) == {"a": 1}  # the last one to finish wins, whole


def test_atomic_write_refuses_append_and_read_modes(tmp_path):
    with pytest.raises(ValueError, match="mode 'wb' or 'w'"), atomic_write(tmp_path / "x", "a"):
        pass


def test_save_weights_writes_safetensors_and_refuses_other_suffixes(tmp_path):
    state = {"a": torch.ones(2, 3), "b": torch.zeros(4)}
    path = save_weights(state, tmp_path / "w.safetensors", metadata={"source": "test"})
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        assert f.metadata() == {"source": "test"}
    assert all(torch.equal(load_weights(path)[k], v) for k, v in state.items())
    for name in ("w.pt", "w.pth", "w.bin", "w"):
        with pytest.raises(ValueError, match=r"writes safetensors files.*not '\.safetensors'"):
            save_weights(state, tmp_path / name)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.safetensors"]
