"""When a check of the test command may skip, and when a skip is a failure.

Two steps of ``.ci/test`` need something a machine may lack: the lock check (``tests/check_lock.py``:
uv and the package index) and the browser check (``tests/check_site.py``: Chromium). Where that is
missing they say ``SKIPPED`` and why. On a reader's machine that is the end of it (exit 0). Under
``CI=true`` (GitHub Actions and most CI services set it) a skip fails the step, so that CI cannot be
green without the check, unless ``VITCORE_ALLOW_SKIP`` names the step (``lock``, ``browser`` or both,
comma-separated): the README says when that is right (a CI machine with no network, or none that
can run Chromium).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

STEPS = {"lock": "the lock check (uv and the package index)", "browser": "the browser check (Chromium)"}


def on_ci(env: Mapping[str, str] = os.environ) -> bool:
    """Whether this runs under CI: ``CI`` is ``true`` or ``1`` (any case)."""
    return env.get("CI", "").strip().lower() in ("true", "1")


def allowed(env: Mapping[str, str] = os.environ) -> set[str]:
    """The steps ``VITCORE_ALLOW_SKIP`` lets skip under CI; an unknown name is an error (a typo
    would otherwise make CI fail on a skip it meant to allow, or hide which step it meant)."""
    names = {n.strip() for n in env.get("VITCORE_ALLOW_SKIP", "").split(",") if n.strip()}
    unknown = names - set(STEPS)
    if unknown:
        raise ValueError(f"VITCORE_ALLOW_SKIP names unknown step(s) {sorted(unknown)}; known: {', '.join(STEPS)}")
    return names


def skip(step: str, why: str, env: Mapping[str, str] = os.environ) -> int:
    """Say that ``step`` is skipped and why; return its exit status: 0, or 1 under CI unless allowed."""
    if step not in STEPS:
        raise ValueError(f"unknown step {step!r}; known: {', '.join(STEPS)}")
    print(f"[{step}] SKIPPED: {why}", flush=True)
    if not on_ci(env):
        return 0
    try:
        ok = step in allowed(env)
    except ValueError as err:
        print(f"[{step}] FAILED: {err}", flush=True)
        return 1
    if ok:
        print(
            f"[{step}] CI=true and VITCORE_ALLOW_SKIP={env.get('VITCORE_ALLOW_SKIP')}: this skip is allowed", flush=True
        )
        return 0
    print(
        f"[{step}] FAILED: CI=true, and a skipped step is not a passed one: {STEPS[step]} did not run. Give the "
        f"machine what it lacks, or set VITCORE_ALLOW_SKIP={step} where the README says a skip is right",
        flush=True,
    )
    return 1
