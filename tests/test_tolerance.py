import ast
import math
from pathlib import Path
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


def test_a_comparison_looser_than_the_ceiling_is_refused_not_passed():
    """bfloat16 against float32 at ViT-B size (MLP sums of 3072, 12 blocks) would need rtol = atol
    = 41.6: any tensor would pass, even zeros. The rule refuses to compare rather than accept."""
    g = torch.Generator().manual_seed(0)
    expected = torch.randn(4, 197, 768, generator=g)
    for actual in (expected.bfloat16(), torch.zeros_like(expected).bfloat16()):
        with pytest.raises(
            ValueError, match=r"bfloat16 with reduction=3072, depth=12 would need a tolerance of 41\.6"
        ) as err:
            assert_close(actual, expected, reduction=3072, depth=12)
        assert "actual is torch.bfloat16 and expected torch.float32" in str(err.value)
        assert "common, finer dtype" in str(err.value) and "smaller piece" in str(err.value)
        with pytest.raises(ValueError, match="ceiling"):  # not False: there was no comparison
            is_close(actual, expected, reduction=3072, depth=12)
    with pytest.raises(ValueError, match=r"float16 with reduction=768, depth=1 would need a tolerance of 0\.2"):
        assert_close(expected.half(), expected, reduction=768)
    with pytest.raises(ValueError, match="ceiling"):  # an explicit dtype is held to the same ceiling
        assert_close(expected, expected, dtype=torch.bfloat16, reduction=4)


def test_comparisons_under_the_ceiling_still_work():
    from vitcore.tolerance import MAX_TOLERANCE

    assert tolerance(torch.bfloat16, reduction=2).rtol <= MAX_TOLERANCE < tolerance(torch.bfloat16, reduction=3).rtol
    x = torch.randn(64, 32)
    assert_close(x.bfloat16(), x, reduction=2)  # rounding to bfloat16 is within one eps
    assert not is_close(x.bfloat16() * 1.5, x)  # and a 50% scale bug still shows
    assert_close(x + 1e-7 * x, x, reduction=3072, depth=12)  # float32 at ViT-B size: 6e-4


def _float_comparisons(path: Path) -> dict[str, bool]:
    """Test functions of a file that compare floats through the tolerance rule or torch's
    comparisons, each with whether it carries ``@pytest.mark.numerics``."""
    compare = {"assert_close", "is_close", "tolerance", "allclose"}
    found = {}
    for node in ast.parse(path.read_text()).body:
        if not isinstance(node, ast.FunctionDef) or not node.name.startswith("test"):
            continue
        calls = {
            c.func.attr if isinstance(c.func, ast.Attribute) else getattr(c.func, "id", "")
            for c in ast.walk(node)
            if isinstance(c, ast.Call)
        }
        if calls & compare:
            found[node.name] = any("numerics" in ast.unparse(d) for d in node.decorator_list)
    return found


def test_float_comparisons_in_not_numerics_files_carry_the_numerics_marker():
    """conftest marks whole files as not depending on the CPU's rounding; a test in such a file
    that compares floats must say ``@pytest.mark.numerics`` itself, so that it runs on the second
    kernel path too."""
    from conftest import NOT_NUMERICS

    tests = Path(__file__).parent
    unmarked = [
        f"{name}::{fn}"
        for name in sorted(NOT_NUMERICS)
        for fn, marked in _float_comparisons(tests / name).items()
        if not marked
    ]
    assert not unmarked, f"float comparisons without @pytest.mark.numerics: {unmarked}"
    assert _float_comparisons(tests / "test_benchmarks.py") == {
        "test_smoke_run_as_a_script": True,
        "test_micro_pair_computes_the_same_logits": True,
    }
