"""vitcore.timing.race: warm-up, interleaved rounds, median or minimum."""

import pytest

from vitcore.timing import race


def test_race_calls_each_function_once_more_than_the_rounds_and_interleaves_them():
    calls = []
    out = race(repeat=3, a=lambda: calls.append("a"), b=lambda: calls.append("b"))
    assert calls == ["a", "b"] * 4  # warm-up, then three interleaved rounds
    assert set(out) == {"a", "b"} and all(v >= 0 for v in out.values())


def test_race_reduces_by_median_or_minimum():
    import time

    durations = iter([0.0, 0.03, 0.0, 0.0])  # warm-up, then rounds: 30 ms, 0 ms, 0 ms

    def fn():
        time.sleep(next(durations))

    assert race(repeat=3, reduce="min", f=fn)["f"] < 0.02
    durations = iter([0.0, 0.03, 0.03, 0.0])  # the median round sleeps 30 ms
    assert race(repeat=3, reduce="median", f=fn)["f"] >= 0.03
    with pytest.raises(ValueError, match="reduce"):
        race(reduce="mean", f=fn)
