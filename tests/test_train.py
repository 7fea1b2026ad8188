import math

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
    assert list(state) == ["model", "count", "step", "log", "rng"] and state["step"] == 3
    log2, weight2, count2, batches2 = _resumable(tmp_path / "cut.pt")
    assert log2 == log and batches2 == batches[3:]
    assert torch.equal(weight2, weight) and torch.equal(count2, count)  # count: 3 restored + 4 steps


def test_resumable_run_refuses_too_few_examples_and_a_mid_epoch_state(tmp_path):
    with pytest.raises(ValueError, match="at least one batch of 3"):
        ResumableRun(5, 2, 3)
    torch.save({"step": 4, "log": [{}] * 4}, tmp_path / "mid.pt")
    run = ResumableRun(7, 10, 3, tmp_path / "mid.pt", progress=False)
    run.resume()
    with pytest.raises(ValueError, match="mid-epoch"):
        next(iter(run.batches(torch.Generator())))
