"""Check that requirements.txt is what requirements.in compiles to, and installs on every platform.

For each platform the book supports (Linux x86_64 and aarch64, macOS arm64 from MIN_MACOS on,
Windows x86_64) ``uv pip install --dry-run --python-platform ...`` plans an install of the lock
(and of requirements-nodeps.txt) into an empty environment: every pinned version must have a
wheel (or a source release) for that platform and every dependency must be pinned.

It needs ``uv`` (in the lock) and the package index. Without either it says SKIPPED: it never
decides anything from a machine it cannot see. A skip exits 0, except under ``CI=true``, where it
fails unless ``VITCORE_ALLOW_SKIP`` names ``lock`` (``tests/ci_skip.py``; the README says when).
The test command runs it (``.ci/test``); by hand::

    .venv/bin/python tests/check_lock.py
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from ci_skip import skip

ROOT = Path(__file__).resolve().parents[1]
MIN_MACOS = "14.0"  # onnxruntime 1.32.0 has macOS wheels for 14.0 and later only (README says so)
PYTHONS = ("3.11", "3.13")  # the ends of the range the lock serves; 3.12 resolved too when last tried
PLATFORMS = {  # uv's --python-platform -> what a reader would call it
    "x86_64-manylinux_2_28": "Linux x86_64",
    "aarch64-manylinux_2_28": "Linux aarch64",
    "aarch64-apple-darwin": f"macOS arm64 (>= {MIN_MACOS})",
    "x86_64-pc-windows-msvc": "Windows x86_64",
}
COMPILE = ["pip", "compile", "--universal", "--python-version", "3.11", "requirements.in"]
PIN = re.compile(r"^([A-Za-z0-9_.\-\[\]]+==[^\s;#]+(?:\s*;[^#]*)?)", re.M)


def find_uv() -> list[str] | None:
    exe = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if exe:
        return [exe]
    try:
        import uv  # the PyPI package ships the binary

        return [uv.find_uv_bin()]
    except (ImportError, FileNotFoundError):
        return None


def index_reachable(timeout: float = 15.0) -> str | None:
    """None if the package index answers, else why not."""
    url = (os.environ.get("UV_INDEX_URL") or os.environ.get("UV_DEFAULT_INDEX") or "https://pypi.org/simple").rstrip(
        "/"
    )
    try:
        with urllib.request.urlopen(f"{url}/uv/", timeout=timeout) as resp:
            resp.read(1)
        return None
    except OSError as err:
        return f"{url} did not answer ({err})"


def pins(text: str) -> list[str]:
    """The pinned lines of a requirements file, without comments, spaces normalised."""
    return [re.sub(r"\s+", " ", m.group(1).strip()) for m in PIN.finditer(text)]


# uv's words for a network that failed part-way (after the index answered the first probe).
NETWORK = re.compile(
    r"Failed to fetch|error sending request|connection (reset|refused|closed)|timed out|"
    r"dns error|failed to lookup address|network is unreachable",
    re.I,
)


class NetworkFailed(Exception):
    """The package index stopped answering: nothing can be concluded about the lock."""


def run(cmd: list[str], **env: str) -> subprocess.CompletedProcess:
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env={**os.environ, **env})
    if res.returncode != 0 and NETWORK.search(res.stderr):
        raise NetworkFailed(res.stderr.strip().splitlines()[-1] if res.stderr.strip() else "no answer")
    return res


def main() -> int:
    try:
        return check()
    except NetworkFailed as err:
        return skip("lock", f"the package index stopped answering part-way ({err})")


def check() -> int:
    uv = find_uv()
    if uv is None:
        return skip("lock", "uv is not installed (pip install uv, or bash .ci/setup.sh)")
    why = index_reachable()
    if why:
        return skip("lock", f"the package index is not reachable: {why}")
    failures = []
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        # 1. The lock is up to date: compiling requirements.in again, with the lock's own versions
        #    as preferences, gives the same pins.
        out = Path(tmp) / "requirements.txt"
        shutil.copy(ROOT / "requirements.txt", out)
        res = run([*uv, *COMPILE, "-q", "-o", str(out)])
        if res.returncode != 0:
            failures.append(f"requirements.in does not compile:\n{res.stderr[-3000:]}")
        elif pins(out.read_text()) != pins((ROOT / "requirements.txt").read_text()):
            old, new = set(pins((ROOT / "requirements.txt").read_text())), set(pins(out.read_text()))
            failures.append(
                "requirements.txt is not what requirements.in compiles to; regenerate it with\n"
                f"  uv {' '.join(COMPILE)} -o requirements.txt\n"
                f"  only in requirements.txt: {sorted(old - new)}\n  only in the new compile: {sorted(new - old)}"
            )
        else:
            print(f"[lock] requirements.txt is what requirements.in compiles to ({len(pins(out.read_text()))} pins)")
        # 2. Each platform, into an empty environment (installed packages would hide missing wheels).
        venv = Path(tmp) / "empty"
        res = run([*uv, "venv", "-q", "--python", sys.executable, str(venv)])
        if res.returncode != 0:
            print(f"[lock] could not make an empty environment: {res.stderr}")
            return 1
        python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
        for version in PYTHONS:
            for platform, words in PLATFORMS.items():
                plan = []
                for req, extra in (("requirements.txt", []), ("requirements-nodeps.txt", ["--no-deps"])):
                    res = run(
                        [
                            *uv,
                            "pip",
                            "install",
                            "--dry-run",
                            *extra,
                            "--python",
                            str(python),
                            "--python-version",
                            version,
                            "--python-platform",
                            platform,
                            "-r",
                            req,
                        ],
                        MACOSX_DEPLOYMENT_TARGET=MIN_MACOS,
                    )
                    if res.returncode != 0:
                        failures.append(f"{words}, Python {version}, {req}:\n{res.stderr[-2000:]}")
                        break
                    plan += [
                        line for line in res.stderr.splitlines() + res.stdout.splitlines() if line.startswith(" + ")
                    ]
                else:
                    torch = next((p.split("==")[1] for p in plan if p.startswith(" + torch==")), "?")
                    print(f"[lock] {words:26s} Python {version}: installs ({len(plan)} packages, torch {torch})")
    for f in failures:
        print(f"[lock] FAILED: {f}")
    print(
        f"[lock] {'all platforms resolve' if not failures else f'{len(failures)} problem(s)'} "
        f"({time.time() - t0:.0f} s)"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
