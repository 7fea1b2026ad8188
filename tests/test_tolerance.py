import math
from typing import cast

import pytest
import torch

from vitcore.tolerance import assert_close, is_close, tolerance


def test_tolerance_grows_with_reduction_and_depth():
    base = tolerance()
    assert base.rtol == pytest.approx(8 * torch.finfo(torch.float32).eps)
    assert tolerance(reduction=100).rtol == pytest.approx(10 * base.rtol)
    assert tolerance(depth=12).rtol == pytest.approx(12 * base.rtol)
    assert tolerance(torch.bfloat16).rtol > 1e4 * base.rtol


def test_tolerance_rejects_nonsense():
    with pytest.raises(ValueError, match="floating-point"):
        tolerance(torch.int64)
    with pytest.raises(ValueError, match="reduction and depth"):
        tolerance(reduction=0)


def test_a_matmul_summed_in_another_order_passes_and_a_bug_fails():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(64, 1536, generator=g), torch.randn(1536, 32, generator=g)
    ref = (a.double() @ b.double()).float()
    chunked = cast(torch.Tensor, sum(a[:, i : i + 7] @ b[i : i + 7] for i in range(0, 1536, 7)))  # another order
    assert not torch.equal(chunked, ref)  # the bits differ ...
    assert_close(chunked, ref, reduction=1536)  # ... within the rule
    assert not is_close(chunked * 1.001, ref, reduction=1536)  # a 0.1% scale bug is caught


def test_atol_follows_the_size_of_the_expected_tensor():
    x = torch.full((10,), 1e-3)
    assert is_close(x + 1e-10, x)
    assert not is_close(x + 1e-6, x)  # 1e-3 relative: far outside float32 rounding
    big = torch.full((10,), 1e3)
    assert is_close(big + 1e-5, big)


def test_shape_mismatch_is_named():
    with pytest.raises(AssertionError, match="shapes differ"):
        assert_close(torch.zeros(2, 3), torch.zeros(3, 2))


def test_message_is_kept():
    with pytest.raises(AssertionError, match="hand-built attention"):
        assert_close(torch.ones(3), torch.zeros(3), msg="hand-built attention")


def test_sqrt_rule():
    assert tolerance(reduction=4, depth=3).rtol == pytest.approx(8 * torch.finfo(torch.float32).eps * math.sqrt(4) * 3)
