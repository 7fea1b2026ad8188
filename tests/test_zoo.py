import json
import multiprocessing as mp
from pathlib import Path

import pytest
import torch

from vitcore import count_params, zoo
from vitcore.zoo import recipes as zoo_recipes
from vitcore.zoo import store as zoo_store


def tiny_recipe(**train):
    return dict(
        model=dict(
            arch="vit",
            img_size=28,
            patch_size=7,
            in_chans=1,
            num_classes=10,
            embed_dim=16,
            depth=1,
            num_heads=2,
            mlp_ratio=2.0,
        ),
        data=dict(dataset="fashion_mnist", n_train=200, n_test=200, batch_size=50, augment=False),
        train={"epochs": 1, "lr": 3e-3, **train},
        seed=0,
    )


def test_cache_miss_then_hit(tmp_path):
    first = zoo.get("tiny", device="cpu", rec=tiny_recipe(), cache=tmp_path, progress=False)
    assert not first.cached and first.path.is_file()
    meta = json.loads(first.path.with_suffix(".json").read_text())
    assert meta["recipe"] == tiny_recipe() and meta["metrics"]["test_acc"] == first.metrics["test_acc"]
    assert 0.0 <= first.metrics["test_acc"] <= 1.0 and len(meta["history"]["step_loss"]) == 4
    second = zoo.get("tiny", device="cpu", rec=tiny_recipe(), cache=tmp_path, progress=False)
    assert second.cached and second.path == first.path and second.metrics == first.metrics
    assert not second.model.training
    for a, b in zip(first.model.state_dict().values(), second.model.state_dict().values()):
        assert torch.equal(a, b)
    x = torch.randn(2, 1, 28, 28)
    assert torch.equal(first.model(x), second.model(x))
    # A changed recipe is a different entry: trained again, cached next to the first.
    other = zoo.get("tiny", device="cpu", rec=tiny_recipe(label_smoothing=0.0), cache=tmp_path, progress=False)
    assert not other.cached and other.path != first.path
    assert len(list(tmp_path.glob("tiny-*.safetensors"))) == 2


def test_training_is_deterministic(tmp_path):
    a = zoo.get("tiny", device="cpu", rec=tiny_recipe(), cache=tmp_path / "a", progress=False)
    b = zoo.get("tiny", device="cpu", rec=tiny_recipe(), cache=tmp_path / "b", progress=False)
    assert a.history.step_loss == b.history.step_loss and a.metrics["test_acc"] == b.metrics["test_acc"]


def test_cache_folder_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("VITCORE_CACHE", str(tmp_path))
    assert zoo.cache_dir() == tmp_path / "zoo"
    got = zoo.get("tiny", device="cpu", rec=tiny_recipe(), progress=False)
    assert got.path.parent == tmp_path / "zoo"


def test_key_depends_on_recipe_and_device_kind():
    rec = tiny_recipe()
    assert zoo.cache_key(rec, "cpu") == zoo.cache_key(tiny_recipe(), torch.device("cpu"))
    assert zoo.cache_key(rec, "cpu") != zoo.cache_key(rec, "cuda")
    assert zoo.cache_key(rec, "cpu") != zoo.cache_key(tiny_recipe(lr=1e-3), "cpu")


def test_registered_recipes():
    assert {"fmnist_vit", "fmnist_cnn", "fmnist_deit"} <= set(zoo.RECIPES)
    for name in zoo.RECIPES:
        cpu, gpu = zoo.recipe(name, gpu=False), zoo.recipe(name, gpu=True)
        assert gpu["train"]["epochs"] > cpu["train"]["epochs"]  # a GPU scales the recipe up
        assert json.loads(json.dumps(cpu)) == cpu  # plain JSON
        assert zoo.build_model(cpu)(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    vit, cnn = (count_params(zoo.build_model(zoo.recipe(n, gpu=False))) for n in ("fmnist_vit", "fmnist_cnn"))
    assert abs(vit - cnn) / vit < 0.1  # the same parameter budget
    with pytest.raises(ValueError, match="unknown zoo model"):
        zoo.recipe("imagenet_vit_huge")
    with pytest.raises(ValueError, match="unknown architecture"):
        zoo.build_model({"model": {"arch": "mlp"}})


# ---- the cache cannot go stale or tear: key, sha256 check, atomic writes, one writer at a time
def test_key_covers_the_teacher_and_the_code(monkeypatch):
    student = zoo.recipe("fmnist_deit", gpu=False)
    key = zoo.cache_key(student, "cpu")
    # The registry and the code hash as the cache looks them up (vitcore.zoo re-exports them).
    changed = dict(zoo_recipes.RECIPES)
    changed["fmnist_cnn"] = lambda gpu: {**zoo_recipes._fmnist_cnn(gpu), "seed": 1}  # another teacher
    monkeypatch.setattr(zoo_recipes, "RECIPES", changed)
    assert zoo.cache_key(student, "cpu") != key
    monkeypatch.setattr(zoo_recipes, "RECIPES", dict(zoo_recipes.RECIPES, fmnist_cnn=zoo_recipes._fmnist_cnn))
    assert zoo.cache_key(student, "cpu") == key
    monkeypatch.setattr(zoo_store, "code_version", lambda: "edited")
    assert zoo.cache_key(student, "cpu") != key


def test_code_version_hashes_every_zoo_module():
    assert {f"zoo/{p.name}" for p in Path(zoo.__file__).parent.glob("*.py")} <= set(zoo._CODE)
    assert len(zoo.code_version()) == 12


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


@pytest.mark.slow
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
