import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vitcore.dino import DINOHead, DINOLoss, MultiCrop, cosine_schedule, ema_update, random_resized_crop
from vitcore.tolerance import assert_close, is_close


def test_ema_update_math():
    student, teacher = nn.Linear(3, 2), nn.Linear(3, 2)
    t0 = [p.clone() for p in teacher.parameters()]
    ema_update(teacher, student, 0.9)
    for p_t, p0, p_s in zip(teacher.parameters(), t0, student.parameters()):
        assert_close(p_t, 0.9 * p0 + 0.1 * p_s, reduction=2)  # a sum of two terms
    ema_update(teacher, student, 1.0)  # momentum 1 freezes the teacher
    ema_update(teacher, student, 0.0)  # momentum 0 copies the student
    for p_t, p_s in zip(teacher.parameters(), student.parameters()):
        assert_close(p_t, p_s, reduction=2)


def test_center_update():
    loss = DINOLoss(out_dim=3, center_momentum=0.9)
    batch = torch.tensor([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])
    loss.update_center(batch)
    assert_close(loss.center, 0.1 * torch.tensor([[2.0, 2.0, 2.0]]), reduction=2)  # batch mean of 2, then EMA
    loss.update_center(batch)
    assert_close(loss.center, (0.9 * 0.2 + 0.1 * 2.0) * torch.ones(1, 3), reduction=2)


def test_loss_skips_same_view_pairs():
    torch.manual_seed(0)
    k = 5
    crit = DINOLoss(out_dim=k, center_momentum=1.0)  # momentum 1: center stays 0 for the check
    teacher = [torch.randn(4, k), torch.randn(4, k)]
    student = [torch.randn(4, k) for _ in range(4)]  # 2 global + 2 local

    def ce(t, s):
        q = F.softmax(t / 0.04, -1)
        return (-q * F.log_softmax(s / 0.1, -1)).sum(-1).mean()

    pairs = [(ti, si) for ti in range(2) for si in range(4) if ti != si]
    expected = sum(ce(teacher[ti], student[si]) for ti, si in pairs) / len(pairs)
    size = len(pairs) * 4 * k  # the loss sums over pairs, batch and output dims
    assert_close(crit(student, teacher), expected, reduction=size)
    assert len(pairs) == 6
    # Changing student view 0 only touches pairs with teacher view 1. (Compared as losses, not
    # as a difference of losses: the difference would cancel the digits the tolerance is sized on.)
    student2 = [student[0] + 1.0] + student[1:]
    shift = (ce(teacher[1], student2[0]) - ce(teacher[1], student[0])) / 6
    assert_close(crit(student2, teacher), crit(student, teacher) + shift, reduction=size)
    with pytest.raises(ValueError, match="teacher views"):
        crit(student, teacher[:1])


def test_cosine_schedule_endpoints():
    assert cosine_schedule(0.996, 1.0, 0, 100) == pytest.approx(0.996)
    assert cosine_schedule(0.996, 1.0, 99, 100) == pytest.approx(1.0)
    assert cosine_schedule(0.996, 1.0, 33, 67) == pytest.approx(0.998)


def test_head_and_multicrop_shapes():
    head = DINOHead(16, out_dim=32, hidden_dim=24, bottleneck_dim=8)
    out = head(torch.randn(5, 16))
    assert out.shape == (5, 32)
    w = head.last_layer.weight
    assert_close(w.norm(dim=1), torch.ones(32), reduction=w.shape[1])  # unit-norm output directions
    views = MultiCrop(global_size=28, local_size=14, n_local=3)(torch.rand(4, 1, 28, 28))
    assert [v.shape for v in views] == [(4, 1, 28, 28)] * 2 + [(4, 1, 14, 14)] * 3
    assert not is_close(views[0], views[1])  # two different global crops


def test_random_resized_crop_full_box_is_identity_or_mirror():
    x = torch.rand(4, 2, 12, 12)
    same = random_resized_crop(x, 12, scale=(1.0, 1.0), ratio=(1.0, 1.0))
    # bilinear: each output pixel is a weighted sum of 4 input pixels (the weights are 1, 0, 0, 0)
    assert_close(same, x, reduction=4)
    flipped = random_resized_crop(x, 12, (1.0, 1.0), (1.0, 1.0), flip=True, generator=torch.Generator().manual_seed(0))
    mirrored = [is_close(flipped[i], x[i].flip(-1), reduction=4) for i in range(4)]
    kept = [is_close(flipped[i], x[i], reduction=4) for i in range(4)]
    assert all(m or k for m, k in zip(mirrored, kept)) and any(mirrored)


def test_random_resized_crop_cuts_a_box_of_the_right_size():
    # A horizontal ramp 0..1: a crop of width share f spans about f of the ramp, inside [0, 1].
    ramp = torch.linspace(0, 1, 64).expand(3, 1, 64, 64).contiguous()
    g = torch.Generator().manual_seed(1)
    crops = random_resized_crop(ramp, 16, scale=(0.25, 0.25), ratio=(1.0, 1.0), generator=g)
    assert crops.shape == (3, 1, 16, 16)
    row = crops[:, 0, 8]  # (3, 16)
    assert (row.diff(dim=-1) > 0).all()  # not flipped, increasing
    # The box is half the width: 32 of the 64 ramp pixels, whose values step by 1/63. The centres of
    # the first and last of 16 output pixels lie 15/16 of the box apart: 30 pixels, a span of 30/63.
    span = row[:, -1] - row[:, 0]
    assert_close(span, torch.full((3,), 32 * 15 / 16 / 63), reduction=4)
    assert row.min() >= 0 and row.max() <= 1
    again = random_resized_crop(ramp, 16, (0.25, 0.25), (1.0, 1.0), generator=torch.Generator().manual_seed(1))
    assert torch.equal(crops, again)  # seeded
    with pytest.raises(ValueError, match="scale"):
        random_resized_crop(ramp, 16, scale=(0.5, 1.5))


def test_batched_multicrop_shapes_and_seed():
    imgs = torch.rand(5, 1, 28, 28)
    views = MultiCrop(28, 14, n_local=2, batched=True, generator=torch.Generator().manual_seed(0))(imgs)
    assert [v.shape for v in views] == [(5, 1, 28, 28)] * 2 + [(5, 1, 14, 14)] * 2
    again = MultiCrop(28, 14, n_local=2, batched=True, generator=torch.Generator().manual_seed(0))(imgs)
    assert all(torch.equal(a, b) for a, b in zip(views, again))
    assert not is_close(views[0], views[1])
