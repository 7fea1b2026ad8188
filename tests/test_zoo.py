import json
import multiprocessing as mp
import os
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
    monkeypatch.setattr(zoo_store, "code_version", lambda package=None: "edited")
    assert zoo.cache_key(student, "cpu") != key


def test_code_version_hashes_every_source_file():
    package = Path(zoo.__file__).parent.parent
    files = set(zoo.code_files())
    assert {p.relative_to(package).as_posix() for p in package.rglob("*.py") if "__pycache__" not in p.parts} == files
    assert {"patches.py", "device.py", "checkpoint.py", "data/loaders.py", "zoo/store.py"} <= files  # _CODE missed 3
    assert len(zoo.code_version()) == 12


def _copy_package(dest: Path) -> Path:
    import shutil

    src = Path(zoo.__file__).parent.parent
    shutil.copytree(src, dest / "vitcore", ignore=shutil.ignore_patterns("__pycache__", "*.safetensors"))
    return dest / "vitcore"


def test_editing_a_low_level_module_changes_the_key(tmp_path):
    """A copy of the package with one comment added to patches.py (no zoo module imports it by
    name) hashes differently, and `cache_key` in an interpreter running that copy is new."""
    import subprocess
    import sys

    copy = _copy_package(tmp_path)
    assert zoo.code_version(copy) == zoo.code_version()  # the same bytes, the same hash
    with open(copy / "patches.py", "a") as f:
        f.write("\n# an edit\n")
    zoo.store._code_version.cache_clear()  # the copy's hash was read before the edit
    assert zoo.code_version(copy) != zoo.code_version()
    script = "import json, sys, vitcore.zoo as z; print(z.__file__, z.cache_key(json.loads(sys.argv[1]), 'cpu'))"
    out = subprocess.run(
        [sys.executable, "-c", script, json.dumps(tiny_recipe())],
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        cwd=tmp_path,  # not the repository, whose vitcore/ would come first
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    assert out[0].startswith(str(copy))  # the copy ran, not the installed package
    assert out[1] != zoo.cache_key(tiny_recipe(), "cpu")


def test_key_records_the_kernel_path_on_the_cpu(monkeypatch):
    for var in zoo.KERNEL_PATH_VARS:
        monkeypatch.delenv(var, raising=False)
    rec = tiny_recipe()
    native_cpu, native_cuda, run = zoo.cache_key(rec, "cpu"), zoo.cache_key(rec, "cuda"), zoo.run_key(rec, "cpu")
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "default")
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX")
    assert zoo.kernel_path("cpu") == {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "AVX"}
    assert zoo.cache_key(rec, "cpu") != native_cpu  # the second kernel path trains its own model
    assert zoo.cache_key(rec, "cuda") == native_cuda  # the variables choose CPU kernels only
    assert zoo.run_key(rec, "cpu") == run  # a --full run's state resumes on either path


def test_run_key_names_the_run_not_the_code(monkeypatch):
    rec = zoo.recipe("fmnist_deit", gpu=False)
    run, cache = zoo.run_key(rec, "cpu"), zoo.cache_key(rec, "cpu")
    monkeypatch.setattr(zoo_store, "code_version", lambda package=None: "edited")
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "default")
    assert zoo.run_key(rec, "cpu") == run and zoo.cache_key(rec, "cpu") != cache
    assert zoo.run_key(rec, "cuda") != run
    assert zoo.run_key({**rec, "seed": 1}, "cpu") != run


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
