"""vitcore.train's one optimiser (ScheduledAdamW), its driver optimise() and IndexBatches,
against AdamW and the schedule written out by hand."""

import re
from typing import cast

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vitcore.tolerance import assert_close
from vitcore.train import IndexBatches, ScheduledAdamW, optimise, param_groups, warmup_cosine


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 8), nn.LayerNorm(8), nn.GELU(), nn.Linear(8, 3))


def _data(n: int = 40) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 6, generator=g), torch.randint(0, 3, (n,), generator=g)


def test_optimise_equals_adamw_and_the_schedule_by_hand():
    x, y = _data()
    steps, lr, wd, warm, min_lr, clip = 7, 0.05, 0.1, 2, 1e-3, 0.5
    # by hand: AdamW over the book's groups, this step's learning rate, clipping
    ref = _model()
    opt = torch.optim.AdamW(param_groups(ref, wd), lr=lr)
    batches = [torch.arange(i * 8, i * 8 + 8) for i in range(5)]
    for step in range(steps):
        b = batches[step % 5]
        for g in opt.param_groups:
            g["lr"] = warmup_cosine(step, steps, warm, lr, min_lr)
        loss = F.cross_entropy(ref(x[b]), y[b])
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(ref.parameters(), clip)
        opt.step()
    model = _model()
    seen: list[tuple[int, float]] = []
    losses = optimise(
        model,
        lambda b: F.cross_entropy(model(x[b]), y[b]),
        batches,
        steps,
        lr,
        weight_decay=wd,
        warmup_steps=warm,
        min_lr=min_lr,
        clip_grad=clip,
        on_step=lambda s, loss: seen.append((s, loss)),
        progress=False,
    )
    assert len(losses) == steps and [s for s, _ in seen] == list(range(steps))  # the batches were repeated
    assert [loss for _, loss in seen] == losses
    for (name, a), b in zip(ref.state_dict().items(), model.state_dict().values()):
        assert_close(b, a, reduction=8, msg=name)


def test_weight_decay_spares_biases_and_norms_unless_decay_all():
    lr, wd = 0.1, 0.5
    for decay_all in (False, True):
        model = _model()
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        opt = ScheduledAdamW(model, 1, lr, wd, warmup=0.0, clip_grad=None, decay_all=decay_all)
        zero = cast(torch.Tensor, sum(p.sum() for p in model.parameters())) * 0.0
        opt.step(zero)  # zero gradients: only the decay acts
        for n, p in model.named_parameters():
            decayed = decay_all or p.ndim > 1
            want = before[n] * (1 - lr * wd) if decayed else before[n]
            assert_close(p.detach(), want, msg=f"{n}, decay_all={decay_all}")


def test_the_schedule_is_followed_and_ends():
    model = _model()
    opt = ScheduledAdamW(model, 4, lr=1.0, warmup_steps=2, min_lr=0.1)
    x, y = _data(8)
    got = [opt.step(F.cross_entropy(model(x), y)) for _ in range(4)]
    assert got == [warmup_cosine(s, 4, 2, 1.0, 0.1) for s in range(4)]
    with pytest.raises(RuntimeError, match="all 4 steps"):
        opt.step(F.cross_entropy(model(x), y))
    state = opt.state_dict()
    again = ScheduledAdamW(model, 4, lr=1.0, warmup_steps=2, min_lr=0.1)
    again.load_state_dict(state)
    assert again.steps_done == 4 and again.lr == pytest.approx(0.1)


def test_a_scaler_skips_the_step_with_an_infinite_gradient():
    model = _model()
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    opt = ScheduledAdamW(model, 3, lr=0.1, warmup=0.0, scaler=scaler)
    before = [p.detach().clone() for p in model.parameters()]
    x, y = _data(8)
    # a finite loss whose scaled gradients overflow float32: the step is skipped, the scale halved
    opt.step(F.cross_entropy(model(x), y) * 1e36)
    assert all(torch.equal(a, p) for a, p in zip(before, model.parameters()))
    assert scaler.get_scale() == 2.0**9
    opt.step(F.cross_entropy(model(x), y))  # a finite step is taken
    assert not all(torch.equal(a, p) for a, p in zip(before, model.parameters()))


def test_bad_arguments_and_bad_losses_are_named():
    model = _model()
    with pytest.raises(ValueError, match="warmup"):
        ScheduledAdamW(model, 10, 0.1, warmup=1.5)
    with pytest.raises(ValueError, match="warmup_steps"):
        ScheduledAdamW(model, 10, 0.1, warmup_steps=11)
    frozen = _model().requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        ScheduledAdamW(frozen, 10, 0.1)
    with pytest.raises(FloatingPointError, match="step 0"):
        optimise(model, lambda b: torch.tensor(float("nan"), requires_grad=True), [0], 3, 0.1, progress=False)
    with pytest.raises(ValueError, match="empty"):
        optimise(model, lambda b: model(b).sum(), [], 3, 0.1, progress=False)
    with pytest.raises(TypeError, match="min_lrr"):  # optimise's other keywords are ScheduledAdamW's
        optimise(model, lambda b: model(b).sum(), [0], 3, 0.1, min_lrr=0.0, progress=False)


def test_index_batches_shuffle_each_pass_and_cover_the_data():
    batches = IndexBatches(10, 3, seed=0)
    assert len(batches) == 3
    first, second = (torch.cat(list(batches)) for _ in range(2))
    assert len(first) == 9 and len(set(first.tolist())) == 9  # whole batches, no repeats
    assert not torch.equal(first, second)  # a new permutation each pass
    again = IndexBatches(10, 3, seed=0)
    assert torch.equal(torch.cat(list(again)), first)  # seeded
    tail = IndexBatches(10, 3, seed=0, drop_last=False)
    assert len(tail) == 4 and sorted(torch.cat(list(tail)).tolist()) == list(range(10))
    with pytest.raises(ValueError, match="do not fill one batch"):
        IndexBatches(2, 3)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_a_non_finite_loss_is_refused_before_any_update(bad):
    model = _model()
    opt = ScheduledAdamW(model, 5, 0.1)
    x, y = _data(8)
    opt.step(F.cross_entropy(model(x), y))
    before = [p.detach().clone() for p in model.parameters()]
    adam_state = {k: v.clone() for k, v in opt.adamw.state[opt.params[0]].items()}
    loss = F.cross_entropy(model(x), y) * bad
    with pytest.raises(FloatingPointError, match=rf"the loss is {bad} at step 1 \(0-based\) of 5"):
        opt.step(loss)
    assert opt.steps_done == 1 and all(torch.equal(a, p) for a, p in zip(before, model.parameters()))
    assert all(torch.equal(v, opt.adamw.state[opt.params[0]][k]) for k, v in adam_state.items())


def test_a_state_of_other_settings_is_refused():
    model = _model()
    a = ScheduledAdamW(model, 10, 0.1)
    x, y = _data(8)
    a.step(F.cross_entropy(model(x), y))
    saved = a.state_dict()
    ScheduledAdamW(_model(), 10, 0.1).load_state_dict(saved)  # the same settings: fine
    for other, what in (
        (ScheduledAdamW(_model(), 10, 0.2), "lr: 0.1 saved, 0.2 now"),
        (ScheduledAdamW(_model(), 12, 0.1), "total_steps: 10 saved, 12 now"),
        (ScheduledAdamW(_model(), 10, 0.1, weight_decay=0.1), "weight_decay: [0.05, 0.0] saved, [0.1, 0.0] now"),
    ):
        with pytest.raises(ValueError, match=rf"settings differ.*{re.escape(what)}"):
            other.load_state_dict(saved)
