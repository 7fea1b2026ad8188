from typing import Any

import pytest
import torch

from vitcore import VisionTransformer, ViTConfig, load_state_dict_strict
from vitcore.deit import DistilledVisionTransformer, hard_distillation_loss
from vitcore.tolerance import assert_close

CFG: dict[str, Any] = dict(
    img_size=28, patch_size=7, in_chans=1, num_classes=10, embed_dim=32, depth=2, num_heads=2, mlp_ratio=2.0
)
SIZE: dict[str, Any] = dict(reduction=32 * 2, depth=2)  # widest product: the MLP (32 -> 64); two blocks


def test_tokens_heads_and_names():
    m = DistilledVisionTransformer(**CFG)
    assert m.pos_embed is not None
    assert m.num_prefix_tokens == 2 and m.pos_embed.shape == (1, 2 + 16, 32)
    x = torch.randn(3, 1, 28, 28)
    assert m.forward_features(x).shape == (3, 18, 32)
    c, d = m.forward_both(x)
    assert c.shape == d.shape == (3, 10)
    assert_close(m(x), (c + d) / 2, **SIZE)
    keys = set(m.state_dict())
    assert {"cls_token", "dist_token", "pos_embed", "head.weight", "head_dist.weight"} <= keys
    assert keys - {"dist_token", "head_dist.weight", "head_dist.bias"} == set(VisionTransformer(**CFG).state_dict())


def test_matches_timm_deit():
    from timm.models.deit import VisionTransformerDistilled

    ref = VisionTransformerDistilled(**CFG).eval()
    for p in ref.parameters():  # timm zero-inits nothing we rely on: randomise so heads matter
        torch.nn.init.normal_(p, std=0.1)
    ours = DistilledVisionTransformer(ViTConfig(**CFG)).eval()
    load_state_dict_strict(ours, ref.state_dict())  # same names and shapes
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        assert_close(ours(x), ref(x), **SIZE)  # timm averages the heads at inference
        ref.set_distilled_training(True)
        ref.train()
        ours.train()
        rc, rd = ref(x)
        oc, od = ours.forward_both(x)
    assert_close(oc, rc, **SIZE)
    assert_close(od, rd, **SIZE)


def test_hard_distillation_trains_each_head_on_its_target():
    student = DistilledVisionTransformer(**CFG)
    for p in student.parameters():
        torch.nn.init.normal_(p, std=0.05)
    teacher = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
    x, y = torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,))
    # alpha = 1: only the distillation head learns (from the teacher's argmax); the CLS head gets no gradient.
    loss, logits = hard_distillation_loss(teacher, alpha=1.0)(student, x, y)
    loss.backward()
    assert _grad_sum(student.head) == 0 and _grad_sum(student.head_dist) > 0
    assert logits.shape == (8, 10)
    assert all(not p.requires_grad for p in teacher.parameters())  # the teacher is frozen
    student.zero_grad()
    loss, _ = hard_distillation_loss(teacher, alpha=0.0)(student, x, y)
    loss.backward()
    assert _grad_sum(student.head_dist) == 0 and _grad_sum(student.head) > 0
    # alpha = 0.5 with a teacher that agrees with the labels is plain cross-entropy on both heads
    onehot_teacher = lambda imgs: torch.nn.functional.one_hot(y, 10).float()  # noqa: E731
    c, d = student.forward_both(x)
    ce = torch.nn.functional.cross_entropy
    fn = hard_distillation_loss(_Const(onehot_teacher(x)), alpha=0.5)
    loss, _ = fn(student, x, y)
    assert_close(loss, 0.5 * ce(c, y) + 0.5 * ce(d, y), reduction=8 * 10)  # mean over 8 of log-sum-exp over 10


def _grad_sum(head: torch.nn.Module) -> torch.Tensor:
    """Sum of the absolute gradients of a linear head's weight."""
    assert isinstance(head, torch.nn.Linear) and head.weight.grad is not None
    return head.weight.grad.abs().sum()


class _Const(torch.nn.Module):
    def __init__(self, out):
        super().__init__()
        self.out = out

    def forward(self, x):
        return self.out


def test_bad_configs():
    with pytest.raises(ValueError, match="class_token"):
        DistilledVisionTransformer(**{**CFG, "global_pool": "avg"})
    with pytest.raises(ValueError, match="alpha"):
        hard_distillation_loss(torch.nn.Identity(), alpha=1.5)


def test_deit_is_a_vit_whose_prefix_tokens_are_cls_and_dist():
    cfg = ViTConfig(img_size=16, patch_size=4, in_chans=1, num_classes=3, embed_dim=16, depth=1, num_heads=2)
    deit = DistilledVisionTransformer(cfg)
    assert deit.config.dist_token and deit.num_prefix_tokens == 2
    assert deit.prefix_tokens() == [deit.cls_token, deit.dist_token]
    assert deit.pos_embed is not None and deit.pos_embed.shape == (1, 2 + 16, 16)
    tokens = deit.embed(torch.zeros(1, 1, 16, 16))  # (1, 2 + 16, 16): CLS, DIST, patches
    assert deit.cls_token is not None and deit.dist_token is not None
    assert torch.equal(tokens[0, 0], (deit.cls_token + deit.pos_embed[:, 0])[0, 0])
    assert torch.equal(tokens[0, 1], (deit.dist_token + deit.pos_embed[:, 1])[0, 0])
    plain = VisionTransformer(cfg)  # the same config without the flag: CLS only
    assert plain.dist_token is None and plain.prefix_tokens() == [plain.cls_token]
    with pytest.raises(ValueError, match="dist_token=True needs class_token=True"):
        ViTConfig(class_token=False, dist_token=True, global_pool="avg")
