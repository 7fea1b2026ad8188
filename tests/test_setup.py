"""The setup's shell logic, run on a copy of .ci/ with stand-ins for python, pip and apt.

What is checked: without apt, root or sudo the setup says what it skips and goes on; apt's errors
are shown (its progress is not) and a failed apt-get does not stop the setup; a failed pip
install, import check, data fetch or doctor stops it with a non-zero exit and no install stamp; a
complete install writes the stamp and a second run installs nothing.
"""

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parents[1]
BASH = shutil.which("bash")
pytestmark = pytest.mark.skipif(BASH is None or os.name == "nt", reason="needs bash (Linux or macOS)")

FAKE_PYTHON = f"""#!{BASH}
echo "$*" >> "$STUB_LOG"
if [ "$1" = -m ]; then
  case "$2" in
    pip)
      if [ -n "${{FAIL_PIP:-}}" ] && [[ "$*" == *"$FAIL_PIP"* ]]; then
        echo "ERROR: No matching distribution found for nosuch==1.0" >&2; exit 1
      fi
      echo "WARNING: Location 'file:///opt/x' is ignored: it is neither a file nor a directory."
      exit 0 ;;
    vitcore.assets) exit "${{FETCH_RC:-0}}" ;;
    vitcore.doctor) echo "not ready: tuxpaint-stamps"; exit "${{DOCTOR_RC:-0}}" ;;
  esac
fi
if [ "$1" = -c ]; then
  case "$2" in
    *hashlib*) exec {sys.executable} "$@" ;;
    *) exit "${{IMPORT_RC:-0}}" ;;
  esac
fi
exit 0
"""


@pytest.fixture
def repo(tmp_path):
    """A copy of the setup scripts and the files the stamp hashes, with a stand-in .venv."""
    root = tmp_path / "repo"
    (root / ".ci").mkdir(parents=True)
    for name in ("setup.sh", "system_packages.sh"):
        shutil.copy(ROOT / ".ci" / name, root / ".ci" / name)
    for name in ("requirements.txt", "requirements-nodeps.txt", "pyproject.toml"):
        shutil.copy(ROOT / name, root / name)
    py = root / ".venv" / "bin" / "python"
    py.parent.mkdir(parents=True)
    py.write_text(FAKE_PYTHON)
    py.chmod(0o755)
    mj = root / "book" / "_mathjax" / "mathjax" / "tex-chtml.js"
    mj.parent.mkdir(parents=True)
    mj.write_text("")
    return root


def setup(repo: Path, **env: str) -> subprocess.CompletedProcess:
    assert BASH is not None  # (pytestmark skips the module without bash)
    log = repo / "calls.log"
    full = {**os.environ, "STUB_LOG": str(log), "VITCORE_APT": "0", **env}
    return subprocess.run([BASH, str(repo / ".ci" / "setup.sh")], capture_output=True, text=True, env=full)


def calls(repo: Path) -> list[str]:
    log = repo / "calls.log"
    lines = log.read_text().splitlines() if log.exists() else []
    log.unlink(missing_ok=True)
    return lines


def test_complete_install_writes_the_stamp_and_a_second_run_installs_nothing(repo):
    res = setup(repo)
    assert res.returncode == 0, res.stderr
    assert "WARNING: Location" not in res.stdout + res.stderr  # this machine's notes are filtered
    stamp = repo / ".venv" / ".vitcore-setup-stamp"
    digest = hashlib.sha256(
        b"".join((repo / f).read_bytes() for f in ("requirements.txt", "requirements-nodeps.txt", "pyproject.toml"))
    ).hexdigest()
    assert stamp.read_text().strip() == digest
    first = calls(repo)
    assert any("-m pip install -q --no-compile -r requirements.txt" in c for c in first)
    assert any("-m pip install -q --no-compile --no-deps --no-build-isolation -e ." in c for c in first)
    assert first[-3:-1] == ["-m vitcore.assets fetch", "-m vitcore.doctor --quiet"]  # data, then the doctor
    res = setup(repo)
    assert res.returncode == 0 and not any("pip" in c for c in calls(repo))
    (repo / "requirements.txt").write_text((repo / "requirements.txt").read_text() + "\n")
    assert setup(repo).returncode == 0 and any("pip install" in c for c in calls(repo))  # the lock changed


@pytest.mark.parametrize("failing", ["-r requirements.txt", "--no-deps -r requirements-nodeps.txt", "-e ."])
def test_a_failed_pip_install_stops_the_setup_and_writes_no_stamp(repo, failing):
    res = setup(repo, FAIL_PIP=failing)
    assert res.returncode != 0
    assert "No matching distribution found" in res.stdout + res.stderr  # pip's own words reach the reader
    assert not (repo / ".venv" / ".vitcore-setup-stamp").exists()
    assert not any("vitcore.doctor" in c for c in calls(repo))


def test_an_import_failure_stops_the_setup(repo):
    res = setup(repo, IMPORT_RC="1")
    assert res.returncode != 0 and "do not import" in res.stderr
    assert not (repo / ".venv" / ".vitcore-setup-stamp").exists()


def test_data_and_doctor_decide(repo):
    res = setup(repo, FETCH_RC="1")
    assert res.returncode != 0 and "could not be fetched" in res.stderr
    res = setup(repo, DOCTOR_RC="1")
    assert res.returncode != 0 and "not ready" in res.stdout
    calls(repo)
    res = setup(repo, VITCORE_FETCH="0")
    assert res.returncode == 0 and not any("vitcore.assets" in c for c in calls(repo))


# ----------------------------------------------------------------------------- system packages
def system_packages(tmp_path: Path, tools: dict[str, str], **env: str) -> tuple[subprocess.CompletedProcess, str]:
    """Run .ci/system_packages.sh with PATH holding only the given stand-in tools."""
    assert BASH is not None  # (pytestmark skips the module without bash)
    stub = tmp_path / "bin"
    stub.mkdir(exist_ok=True)
    log = tmp_path / "apt.log"
    for name, body in tools.items():
        (stub / name).write_text(f"#!{BASH}\n{body}\n")
        (stub / name).chmod(0o755)
    res = subprocess.run(
        [BASH, str(ROOT / ".ci" / "system_packages.sh")],
        capture_output=True,
        text=True,
        env={"PATH": str(stub), "APT_LOG": str(log), **env},
    )
    return res, log.read_text() if log.exists() else ""


# apt-get's progress on stdout; on failure (APT_RC) an error line on stderr, as apt prints them.
APT = """echo "apt-get $*" >> "$APT_LOG"
echo "Reading package lists... Done"
if [ "${APT_RC:-0}" != 0 ]; then echo "E: Unable to locate package ${@: -1}" >&2; fi
exit ${APT_RC:-0}"""
SUDO = 'if [ "$1" = -n ] && [ "$2" = true ]; then exit ${SUDO_RC:-1}; fi; shift; echo "sudo:" >> "$APT_LOG"; exec "$@"'
DPKG = 'case "$2" in chromium) exit 1;; *) exit 0;; esac'  # only chromium is missing


def test_no_apt_means_skip_and_go_on(tmp_path):
    res, log = system_packages(tmp_path, {"id": "echo 1000"})
    assert res.returncode == 0 and "no apt-get/dpkg here" in res.stdout and "skipping" in res.stdout
    assert "vitcore.assets fetch" in res.stdout and "browser check is skipped" in res.stdout


def test_no_root_and_no_sudo_means_skip_and_go_on(tmp_path):
    res, log = system_packages(tmp_path, {"id": "echo 1000", "apt-get": APT, "dpkg": DPKG, "sudo": SUDO})
    assert res.returncode == 0 and "not root and no passwordless sudo" in res.stdout and "chromium" in res.stdout
    assert "apt-get" not in log


def test_root_installs_only_what_is_missing_and_a_failure_is_not_fatal(tmp_path):
    tools = {"id": "echo 0", "apt-get": APT, "dpkg": DPKG}
    res, log = system_packages(tmp_path, tools)
    assert res.returncode == 0 and log.splitlines() == ["apt-get install -y -q chromium"]
    (tmp_path / "apt.log").unlink()
    res, log = system_packages(tmp_path, tools, APT_RC="100")  # e.g. Ubuntu has no package 'chromium'
    assert res.returncode == 0 and "WARNING: apt-get could not install chromium" in res.stdout
    assert "apt-get update -q" in log


def test_passwordless_sudo_is_used(tmp_path):
    res, log = system_packages(tmp_path, {"id": "echo 1000", "apt-get": APT, "dpkg": DPKG, "sudo": SUDO}, SUDO_RC="0")
    assert res.returncode == 0 and log.splitlines() == ["sudo:", "apt-get install -y -q chromium"]


def test_nothing_missing_means_nothing_done(tmp_path):
    res, log = system_packages(tmp_path, {"id": "echo 0", "apt-get": APT, "dpkg": "exit 0"})
    assert res.returncode == 0 and res.stdout == "" and log == ""


def test_apt_errors_are_shown_and_its_progress_is_not(tmp_path):
    tools = {"id": "echo 0", "apt-get": APT, "dpkg": DPKG}
    res, log = system_packages(tmp_path, tools)
    assert res.returncode == 0 and "Reading package lists" not in res.stdout + res.stderr  # success: quiet
    (tmp_path / "apt.log").unlink()
    res, log = system_packages(tmp_path, tools, APT_RC="100")
    out = res.stdout + res.stderr
    assert res.returncode == 0  # a failed apt-get never fails the setup ...
    # ... but says what apt said, for the first try, the update and the one-at-a-time retry
    assert "[setup] apt-get install -y -q chromium failed (exit 100); apt said:" in out
    assert "[setup]   E: Unable to locate package chromium" in out
    assert "[setup] apt-get update -q failed (exit 100)" in out
    assert "Reading package lists" not in out  # only the error lines where apt printed some
    assert "WARNING: apt-get could not install chromium" in out


def test_apt_output_is_shown_whole_when_it_has_no_error_line(tmp_path):
    apt = 'echo "apt-get $*" >> "$APT_LOG"; echo "dpkg was interrupted, you must manually run dpkg"; exit 100'
    res, _ = system_packages(tmp_path, {"id": "echo 0", "apt-get": apt, "dpkg": DPKG})
    assert res.returncode == 0 and "[setup]   dpkg was interrupted, you must manually run" in res.stdout


def test_requires_python_starts_where_the_setup_and_the_lock_do():
    # pyproject.toml must not promise a Python the setup refuses and the lock was not compiled for.
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    spec = SpecifierSet(pyproject["project"]["requires-python"])
    setup_sh = (ROOT / ".ci" / "setup.sh").read_text()
    m = re.search(r"\(3, (\d+)\) <= sys\.version_info\[:2\] < \(3, (\d+)\)", setup_sh)
    assert m, "the setup's version check moved: update this test"
    lowest, highest = int(m.group(1)), int(m.group(2)) - 1
    assert f"3.{lowest - 1}" not in spec and f"3.{lowest}" in spec and f"3.{highest}" in spec
    assert pyproject["tool"]["ruff"]["target-version"] == f"py3{lowest}"
    assert pyproject["tool"]["mypy"]["python_version"] == f"3.{lowest}"
    lock = (ROOT / "tests" / "check_lock.py").read_text()
    assert f'PYTHONS = ("3.{lowest}", "3.{highest}")' in lock  # the lock check tries both ends
    assert f"--python-version 3.{lowest}" in (ROOT / "requirements.txt").read_text().splitlines()[1]
