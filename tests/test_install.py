"""The lock, pyproject.toml and the installed environment agree (no network; tests/check_lock.py
checks with the package index that the lock installs on every platform)."""

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
CUDA = re.compile(r"^(nvidia-|cuda-|triton$)")


def requirements(path: Path) -> list[Requirement]:
    reqs = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        text = raw.split(" #", 1)[0].strip()
        if text and not text.startswith(("#", "-")):
            reqs.append(Requirement(text))
    return reqs


LOCK = requirements(ROOT / "requirements.txt")
INPUT = requirements(ROOT / "requirements.in")
_PYPROJECT_TOML = tomllib.loads((ROOT / "pyproject.toml").read_text())
PYPROJECT, PYPROJECT_TOOL = _PYPROJECT_TOML["project"], _PYPROJECT_TOML["tool"]


def locked(env: dict[str, str] | None = None) -> dict[str, str]:
    """name -> pinned version for an environment (default: this one)."""
    out: dict[str, str] = {}
    for r in LOCK:
        if r.marker is None or r.marker.evaluate(env):
            out[canonicalize_name(r.name)] = next(iter(r.specifier)).version
    return out


def test_the_lock_pins_every_package_exactly_and_says_how_it_was_made():
    assert LOCK and all(len(r.specifier) == 1 and next(iter(r.specifier)).operator == "==" for r in LOCK)
    head = (ROOT / "requirements.txt").read_text().splitlines()[:2]
    assert "uv pip compile --universal" in head[1] and "requirements.in" in head[1]


def test_everything_the_input_asks_for_is_locked_at_a_version_it_allows():
    pins: dict[str, set[str]] = {}
    for r in LOCK:
        pins.setdefault(canonicalize_name(r.name), set()).add(next(iter(r.specifier)).version)
    for r in INPUT:
        got = pins.get(canonicalize_name(r.name))
        assert got, f"{r.name} is in requirements.in but not in requirements.txt: compile the lock again"
        assert all(r.specifier.contains(v, prereleases=True) for v in got), (r, got)


def test_cuda_packages_come_only_through_linux_markers():
    cuda = [r for r in LOCK if CUDA.match(canonicalize_name(r.name))]
    assert cuda, "torch's CUDA dependencies should be in the lock for Linux"
    for r in cuda:
        assert r.marker is not None and 'sys_platform == "linux"' in str(r.marker), r
    assert not [r for r in INPUT if CUDA.match(canonicalize_name(r.name))]
    for platform in (
        {"sys_platform": "darwin", "platform_system": "Darwin", "platform_machine": "arm64", "os_name": "posix"},
        {"sys_platform": "win32", "platform_system": "Windows", "platform_machine": "AMD64", "os_name": "nt"},
    ):
        names = locked(platform)
        assert "torch" in names and not [n for n in names if CUDA.match(n)], platform


def test_the_lock_keeps_torch_and_torchvision_together():
    for env in (None, {"sys_platform": "darwin", "platform_machine": "arm64"}):
        pins = locked(env)
        assert (pins["torch"], pins["torchvision"]) == ("2.14.1", "0.29.1")


def test_this_environment_is_the_lock():
    """What is installed is what the lock pins for this platform (so setup re-installs nothing)."""
    pins = locked()
    for name in ("requirements-nodeps.txt",):
        pins.update({canonicalize_name(r.name): next(iter(r.specifier)).version for r in requirements(ROOT / name)})
    wrong, missing = [], []
    for name, version in sorted(pins.items()):
        try:
            have = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(name)
            continue
        if have.split("+")[0] != version:
            wrong.append(f"{name} {have} (lock: {version})")
    assert not missing and not wrong, f"run bash .ci/setup.sh; missing {missing}, other versions {wrong}"


def test_pyproject_ranges_admit_the_locked_versions():
    pins = locked()
    extras = PYPROJECT["optional-dependencies"]
    for spec in PYPROJECT["dependencies"] + [s for group in extras.values() for s in group]:
        r = Requirement(spec)
        if canonicalize_name(r.name) == "vitcore":
            assert set(r.extras) <= set(extras), r
            continue
        assert canonicalize_name(r.name) in pins, f"{r.name} (pyproject) is not in the lock"
        assert r.specifier.contains(pins[canonicalize_name(r.name)], prereleases=True), (r, pins[r.name])


def _third_party_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    mods = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            mods |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            mods.add(node.module.split(".")[0])
    return {m for m in mods if m not in sys.stdlib_module_names and m != "vitcore"}


def test_every_import_in_vitcore_is_declared():
    """`pip install .` (with the extra a module names) gives everything vitcore imports."""
    declared = {canonicalize_name(Requirement(s).name) for s in PYPROJECT["dependencies"]}
    for group in PYPROJECT["optional-dependencies"].values():
        declared |= {canonicalize_name(Requirement(s).name) for s in group}
    dists = importlib.metadata.packages_distributions()
    undeclared: dict[str, list[str]] = {}  # module -> the vitcore files importing it
    files = sorted((ROOT / "vitcore").rglob("*.py"))
    assert ROOT / "vitcore" / "zoo" / "store.py" in files  # subpackages are read too
    for path in files:
        for module in _third_party_imports(path):
            names = {canonicalize_name(d) for d in dists.get(module, [module])}
            if not names & declared:
                undeclared.setdefault(module, []).append(str(path.relative_to(ROOT)))
    assert not undeclared, f"imported by vitcore but not in pyproject.toml: {undeclared}"


def test_core_dependencies_are_what_import_vitcore_and_fit_need():
    core = {canonicalize_name(Requirement(s).name) for s in PYPROJECT["dependencies"]}
    assert {"torch", "torchvision", "numpy", "einops", "safetensors", "tqdm", "filelock"} <= core


@pytest.mark.parametrize("word", ["macOS 14", "Windows", "aarch64", "jupyter lab notebooks/"])
def test_the_readme_states_the_platforms(word):
    assert word in (ROOT / "README.md").read_text()


def test_lock_check_names_the_minimum_macos_the_readme_states():
    text = (ROOT / "tests" / "check_lock.py").read_text()
    assert re.search(r'MIN_MACOS = "14\.0"', text) and "macOS 14" in (ROOT / "README.md").read_text()


def test_every_subpackage_is_listed_for_setuptools():
    """A subpackage missing from ``[tool.setuptools] packages`` is left out of a non-editable install."""
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "vitcore").rglob("__init__.py")} | {
        "vitcore.checkpoints"
    }
    assert set(PYPROJECT_TOOL["setuptools"]["packages"]) == found
