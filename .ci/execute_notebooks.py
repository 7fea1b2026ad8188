"""Execute the book's chapter notebooks into the build's execution cache, two at a time.

    .venv/bin/python .ci/execute_notebooks.py [--jobs 2] [--cache _build/.jupyter_cache]

The book build (``execute_notebooks: cache`` in _config.yml) executes a notebook whose code is
not in ``_build/.jupyter_cache`` one after the other, each with every CPU core. On a small CPU
model a second core buys little (a 2-core run is far from twice as fast), so this script runs
the chapters in parallel first, each in a fresh kernel with one thread, and stores each executed
notebook in the cache exactly as the build would (the same jupyter-cache calls as myst-nb's
cache mode). The build that follows then finds every chapter there and only renders it: each
notebook still executes once, top to bottom, in a fresh kernel.

Chapters that time computations against each other (``vitcore.timing.race``: 14 and 15) run
afterwards, alone and with every core, so that no other chapter shares the machine with their
timings and their comparisons are those of a reader's run.

A chapter that fails prints its traceback; the script goes on with the others and exits 1.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import nbformat
from jupyter_cache import get_cache
from jupyter_cache.base import CacheBundleIn
from jupyter_cache.executors.utils import single_nb_execution

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 600  # _config.yml execute.timeout
# Previous execution seconds, longest first, so the two workers finish together (list order is a
# schedule only; a chapter missing here runs last).
LONGEST_FIRST = ["05", "02", "13", "10", "06", "11", "12", "09", "08", "04", "07", "03", "01"]


def chapters() -> list[Path]:
    """The chapter notebooks in _toc.yml, in book order."""
    toc = (ROOT / "_toc.yml").read_text()
    return [ROOT / f"{m}.ipynb" for m in re.findall(r"^\s*- file: (notebooks/\S+)\s*$", toc, flags=re.M)]


def times_itself(path: Path) -> bool:
    return "timing.race" in path.read_text()


def execute(path: Path, threads: int | None) -> tuple[Path, str, float, str | None]:
    """Run one notebook in a fresh kernel (in its folder, as the build does): the executed
    notebook as JSON, seconds, and the traceback if a cell failed."""
    if threads is not None:  # the kernel inherits this process's environment
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(threads)
    nb = nbformat.read(path, as_version=4)
    result = single_nb_execution(nb, cwd=str(path.parent), timeout=TIMEOUT_S, allow_errors=False, meta_override=True)
    return path, nbformat.writes(result.nb), result.time, result.exc_string if result.err else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2, help="notebooks at a time (default 2)")
    parser.add_argument("--cache", default=str(ROOT / "_build" / ".jupyter_cache"))
    args = parser.parse_args(argv)

    cache = get_cache(args.cache)
    todo = []
    for path in chapters():
        try:
            cache.match_cache_notebook(nbformat.read(path, as_version=4))
            print(f"[execute] {path.name}: in the cache already")
        except KeyError:
            todo.append(path)
    order = {n: i for i, n in enumerate(LONGEST_FIRST)}
    parallel = sorted((p for p in todo if not times_itself(p)), key=lambda p: order.get(p.name[:2], len(order)))
    alone = [p for p in todo if times_itself(p)]

    failed = []

    def store(path: Path, nb_json: str, seconds: float, error: str | None, how: str) -> None:
        if error is not None:
            failed.append(path.name)
            print(f"[execute] {path.name}: FAILED after {seconds:.0f} s ({how})\n{error}", flush=True)
            return
        record = cache.add_nb_to_project(str(path))
        cache.cache_notebook_bundle(
            CacheBundleIn(nbformat.reads(nb_json, as_version=4), record.uri, data={"execution_seconds": seconds}),
            check_validity=False,
            overwrite=True,
        )
        print(f"[execute] {path.name}: {seconds:.0f} s ({how})", flush=True)

    start = time.perf_counter()
    if parallel:
        with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            futures = [pool.submit(execute, p, 1 if args.jobs > 1 else None) for p in parallel]
            for future in as_completed(futures):
                store(*future.result(), how=f"{args.jobs} at a time, 1 thread each" if args.jobs > 1 else "alone")
    for path in alone:
        store(*execute(path, None), how="alone, every core")
    print(f"[execute] {len(todo)} notebooks in {time.perf_counter() - start:.0f} s", flush=True)
    if failed:
        print(f"[execute] failed: {', '.join(failed)}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
