"""Per-chapter execution times of the last book build, read from its execution cache.

    python benchmarks/chapter_times.py [_build/.jupyter_cache]   # a markdown table on stdout

The book build (``.ci/execute_notebooks.py``, then ``jupyter-book build .``) executes every notebook
once and records, in the jupyter-cache database, how long each one ran and when it finished. This
prints them as the table the README shows, with the machine they ran on; the budget is 3 minutes per
chapter and 15 minutes for the whole book on 2 CPU cores. Chapters run two at a time, so the whole
book's time is the wall clock from the first start to the last finish, not the sum.
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

BUDGET_CHAPTER_S = 180
BUDGET_BOOK_S = 900


def chapter_times(cache: str | Path) -> dict[str, float]:
    """Notebook file name -> execution seconds, for every notebook in the cache."""
    return _seconds(_records(cache))


def wall_seconds(cache: str | Path) -> float:
    """Seconds from the first notebook's start to the last one's finish (one build's cache)."""
    return _wall(_records(cache))


def _seconds(records: dict[str, tuple[float, float]]) -> dict[str, float]:
    return {name: seconds for name, (seconds, _) in records.items()}


def _wall(records: dict[str, tuple[float, float]]) -> float:
    runs = records.values()
    return max(end for _, end in runs) - min(end - seconds for seconds, end in runs)


def _records(cache: str | Path) -> dict[str, tuple[float, float]]:
    """Notebook file name -> (execution seconds, finish time as a Unix timestamp)."""
    from jupyter_cache import get_cache

    if not Path(cache).is_dir():
        raise FileNotFoundError(f"no execution cache at {cache}: build the book first (bash .ci/book)")
    times = {}
    for record in get_cache(str(cache)).list_cache_records():
        seconds = (record.data or {}).get("execution_seconds")
        if seconds is not None:
            times[Path(record.uri).name] = (float(seconds), record.created.timestamp())
    return dict(sorted(times.items()))


def table(times: dict[str, float], wall: float | None = None) -> str:
    """The markdown table; ``wall``: the whole book's wall clock (default: the sum, as when the
    chapters ran one after the other)."""
    rows = ["| chapter | seconds | within 3 min |", "|---|---:|:-:|"]
    for name, s in times.items():
        rows.append(f"| {name} | {s:.0f} | {'yes' if s <= BUDGET_CHAPTER_S else '**no**'} |")
    total = sum(times.values()) if wall is None else wall
    label = "all" if wall is None else "all, wall clock"
    rows.append(f"| **{label}** | **{total:.0f}** | {'yes' if total <= BUDGET_BOOK_S else '**no**'} (15 min) |")
    return "\n".join(rows)


def main(argv: list[str]) -> int:
    records = _records(argv[1] if len(argv) > 1 else "_build/.jupyter_cache")  # the database, read once
    times = _seconds(records)
    print(f"Measured by the book build on {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores:\n")
    print(table(times, _wall(records)))
    return 0 if all(s <= BUDGET_CHAPTER_S for s in times.values()) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
