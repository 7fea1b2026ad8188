"""The zoo cache cannot go stale or tear: key, sha256 check, atomic writes, one writer at a time."""

import json
import multiprocessing as mp

import pytest
import torch

from vitcore import zoo


def tiny_recipe(**train):
    return dict(
        model=dict(arch="vit", img_size=28, patch_size=7, in_chans=1, num_classes=10,
                   embed_dim=16, depth=1, num_heads=2, mlp_ratio=2.0),
        data=dict(dataset="fashion_mnist", n_train=200, n_test=200, batch_size=50, augment=False),
        train={"epochs": 1, "lr": 3e-3, **train},
        seed=0,
    )


def test_key_covers_the_teacher_and_the_code(monkeypatch):
    student = zoo.recipe("fmnist_deit", gpu=False)
    key = zoo.cache_key(student, "cpu")
    changed = dict(zoo.RECIPES)
    changed["fmnist_cnn"] = lambda gpu: {**zoo._fmnist_cnn(gpu), "seed": 1}  # another teacher
    monkeypatch.setattr(zoo, "RECIPES", changed)
    assert zoo.cache_key(student, "cpu") != key
    monkeypatch.setattr(zoo, "RECIPES", dict(zoo.RECIPES, fmnist_cnn=zoo._fmnist_cnn))
    assert zoo.cache_key(student, "cpu") == key
    monkeypatch.setattr(zoo, "code_version", lambda: "edited")
    assert zoo.cache_key(student, "cpu") != key


def test_corrupt_entry_is_detected_and_rebuilt(tmp_path):
    first = zoo.get("tiny", device="cpu", rec=tiny_recipe(), cache=tmp_path, progress=False)
    blob = bytearray(first.path.read_bytes())
    blob[len(blob) // 2] ^= 0xFF  # one flipped byte inside the weights
    first.path.write_bytes(bytes(blob))
    with pytest.warns(UserWarning, match="unusable.*sha256"):
        again = zoo.get("tiny", device="cpu", rec=tiny_recipe(), cache=tmp_path, progress=False)
    assert not again.cached
    for a, b in zip(first.model.state_dict().values(), again.model.state_dict().values()):
        assert torch.equal(a, b)  # retrained with the same seed: the same model
    meta = first.path.with_suffix(".json")
    meta.write_text("{not json")
    with pytest.warns(UserWarning, match="unusable"):
        assert not zoo.get("tiny", device="cpu", rec=tiny_recipe(), cache=tmp_path, progress=False).cached
    assert zoo.get("tiny", device="cpu", rec=tiny_recipe(), cache=tmp_path, progress=False).cached


def _get_in_process(folder: str, queue) -> None:
    got = zoo.get("tiny", device="cpu", rec=tiny_recipe(), cache=folder, progress=False)
    queue.put(got.cached)


def test_two_processes_train_once_and_agree(tmp_path):
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_get_in_process, args=(str(tmp_path), queue)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    cached = sorted(queue.get(timeout=5) for _ in procs)
    assert cached == [False, True]  # one trained, the other waited for the lock and loaded
    entries = list(tmp_path.glob("tiny-*.json"))
    assert len(entries) == 1 and json.loads(entries[0].read_text())["sha256"]
    assert not list(tmp_path.glob("tmp*")), "no temporary file is left behind"
