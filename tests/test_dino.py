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


def _gelu(v: float) -> float:
    """GELU as in the paper (Hendrycks & Gimpel, 2016): ``x * Phi(x)`` with the exact normal CDF."""
    import math

    return 0.5 * v * (1.0 + math.erf(v / math.sqrt(2.0)))


def _linear(w: torch.Tensor, b: torch.Tensor | None, x: list[float]) -> list[float]:
    """``y_i = sum_j w_ij x_j + b_i`` written out, in Python floats (double precision)."""
    rows = w.tolist()
    bias = b.tolist() if b is not None else [0.0] * len(rows)
    return [sum(wij * xj for wij, xj in zip(row, x)) + bi for row, bi in zip(rows, bias)]


def test_head_matches_a_by_hand_mlp_l2_norm_and_weight_normalised_layer():
    # DINO's head (Caron et al., 2021, main.py/vision_transformer.py DINOHead): Linear-GELU-Linear-GELU-
    # Linear to the bottleneck, x / ||x||, then a bias-free linear layer whose weight is g * v / ||v||
    # per output unit, with g fixed to 1 (norm_last_layer=True).
    torch.manual_seed(0)
    head = DINOHead(3, out_dim=4, hidden_dim=5, bottleneck_dim=2, nlayers=3)
    v = head.last_layer.parametrizations.weight.original1
    with torch.no_grad():  # rows of very different norms: only their directions may matter
        v.copy_(torch.tensor([[3.0, 4.0], [-0.1, 0.0], [1.0, 1.0], [0.0, -20.0]]))
    x = torch.tensor([[0.5, -1.0, 2.0], [-0.3, 0.8, 0.1]])
    linears = [m for m in head.mlp if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 3
    expected = []
    for row in x.tolist():
        h = row
        for i, lin in enumerate(linears):
            h = _linear(lin.weight, lin.bias, h)
            if i < 2:
                h = [_gelu(t) for t in h]
        norm = sum(t * t for t in h) ** 0.5
        z = [t / norm for t in h]  # a point on the unit circle of the 2-d bottleneck
        unit_rows = [[3 / 5, 4 / 5], [-1.0, 0.0], [2**-0.5, 2**-0.5], [0.0, -1.0]]  # v / ||v||, by hand
        expected.append([sum(a * b for a, b in zip(r, z)) for r in unit_rows])
    out = head(x)
    assert_close(out, torch.tensor(expected), reduction=5, depth=4)  # sums of <= 5 terms, 4 stacked layers
    # the logits are cosines between unit vectors: |logit| <= 1, whatever the input scale
    assert head(1000 * x).abs().max() <= 1 + 1e-6
    # g is frozen at 1, v trains
    assert not head.last_layer.parametrizations.weight.original0.requires_grad
    assert v.requires_grad


def test_loss_equals_an_explicit_sum_over_cross_view_pairs_with_a_centre():
    # DINO's loss (Caron et al., 2021, Alg. 1 and DINOLoss in main_dino.py): for each teacher view t
    # and each student view s != t, H(P_t, P_s) = -sum_k P_t[k] log P_s[k], with
    # P_t = softmax((g_t - C) / tau_t) and P_s = softmax(g_s / tau_s); averaged over the batch and
    # then over the pairs. Written out here with exp/log on Python floats.
    import math

    tau_s, tau_t, m = 0.5, 0.25, 0.8
    crit = DINOLoss(out_dim=3, student_temp=tau_s, teacher_temp=tau_t, center_momentum=m, n_global=2)
    c0 = [0.3, -0.2, 0.1]
    crit.center.copy_(torch.tensor([c0]))
    teacher = [
        [[1.0, 0.0, -1.0], [0.2, 0.4, 0.0]],  # view 0: 2 images x 3 outputs
        [[0.0, 2.0, 0.5], [-0.5, 0.1, 0.3]],
    ]  # view 1
    student = [
        [[0.1, 0.2, 0.3], [1.0, -1.0, 0.0]],  # view 0 (global)
        [[-0.4, 0.0, 0.4], [0.3, 0.3, -0.6]],  # view 1 (global)
        [[2.0, 0.0, 1.0], [0.0, 0.5, -0.5]],
    ]  # view 2 (local)

    def softmax(row, tau, shift=(0.0, 0.0, 0.0)):
        e = [math.exp((a - c) / tau) for a, c in zip(row, shift)]
        return [v / sum(e) for v in e]

    terms = []
    for t in range(2):
        for s in range(3):
            if s == t:
                continue
            per_image = []
            for b in range(2):
                p_t = softmax(teacher[t][b], tau_t, c0)
                p_s = softmax(student[s][b], tau_s)
                per_image.append(-sum(q * math.log(p) for q, p in zip(p_t, p_s)))
            terms.append(sum(per_image) / 2)
    assert len(terms) == 4  # (t0, s1), (t0, s2), (t1, s0), (t1, s2)
    expected = sum(terms) / len(terms)

    s_tensors = [torch.tensor(v, requires_grad=True) for v in student]
    t_tensors = [torch.tensor(v, requires_grad=True) for v in teacher]
    loss = crit(s_tensors, t_tensors)
    assert_close(loss, torch.tensor(expected), reduction=4 * 2 * 3)
    # the centre moved afterwards (targets used the old one): m * C + (1 - m) * mean of all 4 teacher rows
    rows = teacher[0] + teacher[1]
    mean = [sum(r[k] for r in rows) / 4 for k in range(3)]
    assert_close(crit.center, torch.tensor([[m * c + (1 - m) * u for c, u in zip(c0, mean)]]), reduction=4)
    # gradients flow into the student only; d loss / d g_s[b] = sum over its pairs of (P_s - P_t) / (tau_s * B * pairs)
    loss.backward()
    assert all(t.grad is None for t in t_tensors)
    for s in range(3):
        grad = s_tensors[s].grad
        assert grad is not None
        for b in range(2):
            p_s = softmax(student[s][b], tau_s)
            g = [0.0, 0.0, 0.0]
            for t in range(2):
                if t != s:
                    p_t = softmax(teacher[t][b], tau_t, c0)
                    g = [gk + (a - q) / (tau_s * 2 * 4) for gk, a, q in zip(g, p_s, p_t)]
            assert_close(grad[b], torch.tensor(g), reduction=3)


def test_teacher_probs_centre_then_sharpen():
    # a centre equal to the teacher output makes every output equally likely (collapse to uniform is what
    # centring alone would do); a lower temperature sharpens towards the arg max
    crit = DINOLoss(out_dim=4, teacher_temp=0.5)
    out = torch.tensor([[1.0, 2.0, 3.0, 5.0]])
    crit.center.copy_(out)
    assert_close(crit.teacher_probs(out), torch.full((1, 4), 0.25), reduction=4)
    crit.center.zero_()
    import math

    e = [math.exp(v / 0.5) for v in (1.0, 2.0, 3.0, 5.0)]
    assert_close(crit.teacher_probs(out), torch.tensor([[v / sum(e) for v in e]]), reduction=4)
