import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vitcore.dino import DINOHead, DINOLoss, MultiCrop, cosine_schedule, ema_update


def test_ema_update_math():
    student, teacher = nn.Linear(3, 2), nn.Linear(3, 2)
    t0 = [p.clone() for p in teacher.parameters()]
    ema_update(teacher, student, 0.9)
    for p_t, p0, p_s in zip(teacher.parameters(), t0, student.parameters()):
        torch.testing.assert_close(p_t, 0.9 * p0 + 0.1 * p_s)
    ema_update(teacher, student, 1.0)  # momentum 1 freezes the teacher
    ema_update(teacher, student, 0.0)  # momentum 0 copies the student
    for p_t, p_s in zip(teacher.parameters(), student.parameters()):
        torch.testing.assert_close(p_t, p_s)


def test_center_update():
    loss = DINOLoss(out_dim=3, center_momentum=0.9)
    batch = torch.tensor([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])
    loss.update_center(batch)
    torch.testing.assert_close(loss.center, 0.1 * torch.tensor([[2.0, 2.0, 2.0]]))
    loss.update_center(batch)
    torch.testing.assert_close(loss.center, (0.9 * 0.2 + 0.1 * 2.0) * torch.ones(1, 3))


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
    torch.testing.assert_close(crit(student, teacher), expected)
    assert len(pairs) == 6
    # Changing student view 0 only touches pairs with teacher view 1.
    student2 = [student[0] + 1.0] + student[1:]
    delta = crit(student2, teacher) - crit(student, teacher)
    torch.testing.assert_close(delta, (ce(teacher[1], student2[0]) - ce(teacher[1], student[0])) / 6)
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
    torch.testing.assert_close(w.norm(dim=1), torch.ones(32))  # unit-norm output directions
    views = MultiCrop(global_size=28, local_size=14, n_local=3)(torch.rand(4, 1, 28, 28))
    assert [v.shape for v in views] == [(4, 1, 28, 28)] * 2 + [(4, 1, 14, 14)] * 3
    assert not math.isclose(views[0].sum().item(), views[1].sum().item())
