"""vitcore.book.glue keeps NumPy and torch scalars in a form myst-nb can format on the page."""

import numpy as np
import pytest
import torch
from myst_nb.core.variables import format_plain_text

from vitcore.book import plain


@pytest.mark.parametrize(
    "value", [np.float64(0.4412), np.float32(0.4412), np.int64(3), np.bool_(True), torch.tensor(0.4412)]
)
def test_scalars_become_python_numbers_that_format(value):
    with pytest.raises(ValueError):  # what myst-nb would have been given
        format_plain_text(repr(value), ".1%")
    text = repr(plain(value))
    assert format_plain_text(text, ".1%") == f"{float(plain(value)):.1%}"


def test_other_values_are_unchanged():
    for value in ("a sentence", 3, 0.5, [1, 2]):
        assert plain(value) is value
    t = torch.ones(2)
    assert plain(t) is t
