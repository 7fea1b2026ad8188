import math
from typing import Any

import pytest
import torch

from vitcore import VisionTransformer, count_params, seed_everything
from vitcore.cnn import ResNet, resnet_for_params
from vitcore.data import TensorLoader, stratified_indices
from vitcore.tolerance import tolerance
from vitcore.train import History, ResumableRun, evaluate, fit, param_groups, predict, warmup_cosine


def test_warmup_cosine_values():
    lr = [warmup_cosine(s, 110, 10, 1.0, 0.0) for s in range(111)]
    assert lr[0] == pytest.approx(0.1) and lr[4] == pytest.approx(0.5) and lr[9] == pytest.approx(1.0)
    assert lr[10] == pytest.approx(1.0)  # cosine starts at the peak
    assert lr[60] == pytest.approx(0.5)  # half way through the decay
    assert lr[35] == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))
    assert lr[110] == pytest.approx(0.0)
    assert all(a >= b for a, b in zip(lr[10:], lr[11:]))  # monotone decay
    assert warmup_cosine(100, 100, 0, 2.0, 0.1) == pytest.approx(0.1)
    assert warmup_cosine(0, 100, 0, 2.0, 0.1) == pytest.approx(2.0)  # no warmup: start at the peak
    with pytest.raises(ValueError, match="warmup_steps"):
        warmup_cosine(0, 10, 20, 1.0)


def tiny_vit(**kw):
    cfg = dict(img_size=28, patch_size=7, in_chans=1, num_classes=10, embed_dim=32, depth=1, num_heads=2, mlp_ratio=2.0)
    return VisionTransformer(**{**cfg, **kw})


def test_param_groups_skip_decay_for_biases_norms_tokens():
    names = {id(p): n for n, p in tiny_vit().named_parameters()}
    model = tiny_vit()
    ids = {id(p): n for n, p in model.named_parameters()}
    groups = param_groups(model, 0.05)
    no_decay = {ids[id(p)] for p in groups[1]["params"]}
    decay = {ids[id(p)] for p in groups[0]["params"]}
    assert {"cls_token", "pos_embed", "norm.weight", "head.bias", "blocks.0.attn.qkv.bias"} <= no_decay
    assert {"patch_embed.proj.weight", "blocks.0.attn.qkv.weight", "head.weight"} <= decay
    assert groups[0]["weight_decay"] == 0.05 and groups[1]["weight_decay"] == 0.0
    assert len(decay) + len(no_decay) == len(names)


@pytest.fixture(scope="module")
def small_data(fmnist_train, fmnist_test):
    x, y = fmnist_train
    keep = stratified_indices(y, 512, seed=0)
    xt, yt = fmnist_test
    return (x[keep], y[keep]), (xt[:500], yt[:500])


def _train(small_data, epochs=4, **kw):
    (x, y), (xt, yt) = small_data
    seed_everything(0)
    model = tiny_vit()
    loader = TensorLoader(x, y, batch_size=32, shuffle=True, augment=False, drop_last=True, seed=0)
    hist = fit(
        model,
        loader,
        epochs=epochs,
        lr=1e-2,
        progress=False,
        device="cpu",
        eval_loader=TensorLoader(xt, yt, batch_size=250),
        **kw,
    )
    return model, hist


def test_fit_reduces_loss_and_records_history(small_data):
    model, hist = _train(small_data)
    steps = 4 * (512 // 32)
    assert len(hist.step_loss) == len(hist.step_lr) == len(hist.step_acc) == steps
    assert len(hist.epoch_loss) == len(hist.eval_acc) == 4
    assert hist.epoch_loss[-1] < hist.epoch_loss[0] - 0.25  # it learns
    assert hist.eval_acc[-1] > 0.3  # well above chance (0.1) after 64 steps on 512 images
    warm = round(0.1 * steps)
    assert hist.step_lr == pytest.approx([warmup_cosine(s, steps, warm, 1e-2, 1e-5) for s in range(steps)])
    assert hist.images_seen == steps * 32 and hist.seconds > 0
    again = History.from_dict(hist.to_dict())
    assert again.step_loss == hist.step_loss
    xt, yt = small_data[1]
    ev = evaluate(model, TensorLoader(xt, yt, batch_size=100))
    assert ev["acc"] == pytest.approx(hist.eval_acc[-1])
    logits, labels = predict(model, TensorLoader(xt, yt, batch_size=100))
    assert logits.shape == (500, 10) and torch.equal(labels, yt)


def test_fit_is_deterministic(small_data):
    m1, h1 = _train(small_data, epochs=1)
    m2, h2 = _train(small_data, epochs=1)
    assert h1.step_loss == h2.step_loss
    assert all(torch.equal(a, b) for a, b in zip(m1.state_dict().values(), m2.state_dict().values()))


def test_fit_rejects_bad_arguments(small_data):
    (x, y), _ = small_data
    loader = TensorLoader(x[:10], y[:10], batch_size=64, drop_last=True)
    with pytest.raises(ValueError, match="no batches"):
        fit(tiny_vit(), loader, progress=False, device="cpu")
    with pytest.raises(ValueError, match="warmup"):
        fit(tiny_vit(), loader, warmup=2.0, progress=False, device="cpu")


def test_gradient_clipping_limits_the_update(small_data, monkeypatch):
    """What fit hands the optimiser: gradients whose global norm is at most ``clip_grad``."""
    (x, y), _ = small_data
    model = tiny_vit()
    seen = []  # global gradient norm at each optimiser step, measured from the gradients themselves
    step = torch.optim.AdamW.step

    def spy(self, *a, **k):
        grads = [p.grad for g in self.param_groups for p in g["params"] if p.grad is not None]
        seen.append(torch.sqrt(sum(g.double().pow(2).sum() for g in grads)).item())
        return step(self, *a, **k)

    monkeypatch.setattr(torch.optim.AdamW, "step", spy)
    loader = TensorLoader(x, y, batch_size=64, drop_last=True)
    fit(model, loader, clip_grad=0.01, progress=False, device="cpu")
    assert len(seen) == len(loader)
    assert max(seen) <= 0.01 * (1 + tolerance(reduction=count_params(model)).rtol)  # every step clipped
    seen.clear()
    fit(tiny_vit(), loader, clip_grad=None, progress=False, device="cpu")
    assert min(seen) > 0.01  # without clipping these gradients are larger: the bound above was active


def test_resnet_shapes_and_parameter_matching():
    m = ResNet(width=8)
    assert m(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    assert m.forward_features(torch.randn(2, 1, 28, 28)).shape == (2, 32, 7, 7)
    target = count_params(tiny_vit(embed_dim=64, depth=4, num_heads=4))
    cnn = resnet_for_params(target)
    assert abs(count_params(cnn) - target) / target < 0.1
    assert abs(count_params(ResNet(cnn.width + 1)) - target) >= abs(count_params(cnn) - target)
    with pytest.raises(ValueError):
        ResNet(width=0)


def _resumable(path, stop_at_epoch=-1):
    """7 steps over 10 examples in batches of 3 (3 steps an epoch, the last epoch cut short); the
    body moves a module and a tensor and draws from the generator that also shuffles."""
    torch.manual_seed(0)
    model, count, gen = torch.nn.Linear(2, 1), torch.zeros(1), torch.Generator().manual_seed(0)

    def on_epoch(epoch):
        if epoch == stop_at_epoch:
            raise KeyboardInterrupt
        return {"epoch": epoch}

    run = ResumableRun(7, 10, 3, path, on_epoch, progress=False)
    run.resume(model=model, count=count, rng=gen)
    batches = []
    for step, idx in run.batches(gen):
        with torch.no_grad():
            model.weight += idx.float().sum() + torch.rand(1, generator=gen)
        count += 1
        batches.append(idx.tolist())
        run.log.append({"step": step})
    return run.log, model.weight.detach().clone(), count, batches


def test_resumable_run_saves_after_each_epoch_and_resumes_to_the_same_end(tmp_path):
    log, weight, count, batches = _resumable(tmp_path / "straight.pt")
    assert [r["step"] for r in log] == list(range(7)) and len({len(b) for b in batches}) == 1
    assert [r["epoch"]["epoch"] for r in log if "epoch" in r] == [0, 1, 2]  # after steps 2, 5 and the last
    with pytest.raises(KeyboardInterrupt):  # dies at the end of the second epoch
        _resumable(tmp_path / "cut.pt", stop_at_epoch=1)
    state = torch.load(tmp_path / "cut.pt", weights_only=True)
    assert list(state) == ["model", "count", "step", "log", "signature", "rng"] and state["step"] == 3
    log2, weight2, count2, batches2 = _resumable(tmp_path / "cut.pt")
    assert log2 == log and batches2 == batches[3:]
    assert torch.equal(weight2, weight) and torch.equal(count2, count)  # count: 3 restored + 4 steps


def test_resumable_run_refuses_too_few_examples_and_a_mid_epoch_state(tmp_path):
    with pytest.raises(ValueError, match="at least one batch of 3"):
        ResumableRun(5, 2, 3)
    signature = {"steps": 7, "n": 10, "batch_size": 3}
    torch.save({"step": 4, "log": [{}] * 4, "signature": signature}, tmp_path / "mid.pt")
    run = ResumableRun(7, 10, 3, tmp_path / "mid.pt", progress=False)
    with pytest.raises(ValueError, match="mid.pt: it was saved at step 4, not at the end of one of the first epochs"):
        run.resume()


# ---- no silent NaN, no resuming another run
class _GoesNaN(torch.nn.Module):
    """A linear classifier whose output becomes NaN from its ``at``-th forward pass in training."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.fc, self.at, self.calls = torch.nn.Linear(28 * 28, 10), at, 0

    def forward(self, x):
        out = self.fc(x.flatten(1))  # (B, 10)
        if self.training:
            self.calls += 1
            if self.calls >= self.at:
                out = out * float("nan")
        return out


def _nan_loader(fmnist_train, n=64):
    x, y = fmnist_train
    return TensorLoader(x[:n], y[:n], batch_size=16, shuffle=True, drop_last=True, seed=0)


def test_fit_stops_at_a_nan_loss_and_keeps_it_out_of_history_and_state(fmnist_train, tmp_path):
    torch.manual_seed(0)
    model, state = _GoesNaN(at=6), tmp_path / "run.pt"  # 4 steps an epoch: NaN at the 2nd of epoch 2
    with pytest.raises(FloatingPointError, match=r"the loss is nan at step 5 \(0-based\) of 8"):
        fit(model, _nan_loader(fmnist_train), epochs=2, device="cpu", progress=False, state_path=state)
    saved = torch.load(state, weights_only=True)  # written after the first, finite, epoch
    assert saved["epochs_done"] == 1 and len(saved["history"]["step_loss"]) == 4
    assert all(math.isfinite(v) for k, vs in saved["history"].items() if isinstance(vs, list) for v in vs)
    assert all(torch.isfinite(p).all() for p in model.parameters())  # the NaN step changed nothing


def test_fit_refuses_a_state_of_another_run_naming_the_file(fmnist_train, tmp_path):
    torch.manual_seed(0)
    state = tmp_path / "run.pt"
    fit(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10)), _nan_loader(fmnist_train), epochs=1,
        device="cpu", progress=False, state_path=state)  # fmt: skip
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
    for kwargs, what in (
        (dict(loader=_nan_loader(fmnist_train, 128)), r"data_size: 64 saved, 128 now; steps_per_epoch: 4 saved, 8"),
        (dict(lr=2e-3), r"lr: 0.001 saved, 0.002 now"),
        (dict(label_smoothing=0.0), r"label_smoothing: 0.1 saved, 0.0 now"),
    ):
        loader = kwargs.pop("loader", _nan_loader(fmnist_train))
        with pytest.raises(ValueError, match=rf"cannot resume from {state}: .*{what}.*same .*settings.*delete"):
            fit(model, loader, epochs=1, device="cpu", progress=False, state_path=state, **kwargs)
    old = torch.load(state, weights_only=True)
    del old["signature"]  # as an older vitcore wrote it
    torch.save(old, tmp_path / "old.pt")
    with pytest.raises(ValueError, match=r"old.pt: it was saved without a run signature"):
        fit(model, _nan_loader(fmnist_train), device="cpu", progress=False, state_path=tmp_path / "old.pt")


def _run_state(tmp_path, steps=7, n=10, batch_size=3, **settings):
    """A ResumableRun (3 steps an epoch with the defaults) cut after its first epoch: its state file."""
    path = tmp_path / "run.pt"
    run = ResumableRun(steps, n, batch_size, path, progress=False, settings=settings)
    run.resume(model=torch.nn.Linear(2, 1))
    for step, _ in run.batches(torch.Generator().manual_seed(0)):
        if step == 3:  # the state of the first epoch is written before this step begins
            break
        run.log.append({"step": step})
    return path


def test_resumable_run_refuses_a_state_of_another_run(tmp_path):
    path = _run_state(tmp_path, recipe="abc")
    assert torch.load(path, weights_only=True)["signature"] == {"steps": 7, "n": 10, "batch_size": 3, "recipe": "abc"}
    ResumableRun(7, 10, 3, path, progress=False, settings={"recipe": "abc"}).resume(model=torch.nn.Linear(2, 1))
    for args, settings, what in (
        ((2, 10, 3), {"recipe": "abc"}, "steps: 7 saved, 2 now"),  # a state past the end: not an old log
        ((7, 12, 3), {"recipe": "abc"}, "n: 10 saved, 12 now"),
        ((7, 10, 2), {"recipe": "abc"}, "batch_size: 3 saved, 2 now"),
        ((7, 10, 3), {"recipe": "xyz"}, "recipe: 'abc' saved, 'xyz' now"),
    ):
        run = ResumableRun(*args, path, progress=False, settings=settings)
        with pytest.raises(ValueError, match=rf"cannot resume from {path}: .*{what}.*delete the file"):
            run.resume(model=torch.nn.Linear(2, 1))
        assert run.log == [] and run.start == 0
    with pytest.raises(ValueError, match=rf"{path}: its 'model' does not fit"):
        ResumableRun(7, 10, 3, path, progress=False, settings={"recipe": "abc"}).resume(model=torch.nn.Linear(3, 1))
    path.write_bytes(b"not a state")
    with pytest.raises(ValueError, match=rf"cannot resume from {path}: the state file is unreadable"):
        ResumableRun(7, 10, 3, path, progress=False).resume()


def test_the_vlm_token_cache_refuses_other_images(tmp_path):
    from vitcore.vlm_runs.common import _cached_tokens

    path = tmp_path / "grounding.state.pt"
    train, test = torch.zeros(6, 3, 14, 14), torch.zeros(4, 3, 14, 14)
    signature = {"n_train": 6, "n_test": 4, "layers": [11]}
    torch.save({"train": torch.ones(6, 2, 8), "test": torch.ones(4, 2, 8), "signature": signature}, path)
    no_vit: Any = None  # read back from the file: no ViT is needed
    got = _cached_tokens(no_vit, train, test, [11], path, progress=False)
    assert got[0].shape == (6, 2, 8) and got[1].shape == (4, 2, 8)
    with pytest.raises(ValueError, match=r"grounding.state.pt: .*n_train: 6 saved, 5 now.*delete the file"):
        _cached_tokens(no_vit, train[:5], test, [11], path, progress=False)
    with pytest.raises(ValueError, match=r"layers: \[11\] saved, \[3, 11\] now"):
        _cached_tokens(no_vit, train, test, [3, 11], path, progress=False)
