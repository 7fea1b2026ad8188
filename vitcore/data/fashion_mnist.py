"""Fashion-MNIST (Xiao et al., 2017) on disk: find, verify, download once, load; stratified subsets.

The data comes from the Debian package ``dataset-fashion-mnist``
(``/usr/share/datasets/fashion-mnist/*-idx?-ubyte.gz``). Elsewhere, point ``data_dir`` (or the
environment variable ``VITCORE_DATA``) at a folder holding the four ``.gz`` files, or let
:func:`load_fashion_mnist` download them once from the dataset's official release. Every file is
checked: the idx header, and the SHA-256 of its *decompressed* bytes (so the Debian repack and the
official archive, compressed differently, both pass). The whole dataset is 55 MB of bytes, so it
lives in memory as ``uint8`` tensors. Chapter 5 teaches it.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import urllib.error
import urllib.request
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..checkpoint import atomic_write

CLASSES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
MEAN, STD = 0.2860, 0.3530  # pixel mean and std of the 60k training images (in [0, 1])

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
# The official release (dataset README): the S3 site, and the same files in the GitHub repository.
MIRRORS: tuple[str, ...] = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
)

# name -> (split, kind, count, md5 of the official .gz, sha256 of the decompressed idx bytes)
FILES: dict[str, tuple[str, str, int, str, str]] = {
    "train-images-idx3-ubyte.gz": (
        "train",
        "images",
        60000,
        "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    ),
    "train-labels-idx1-ubyte.gz": (
        "train",
        "labels",
        60000,
        "25c81989df183df01b3e8a0aad5dffbe",
        "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    ),
    "t10k-images-idx3-ubyte.gz": (
        "test",
        "images",
        10000,
        "bef4ecab320f06d8554ea6380940ec79",
        "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    ),
    "t10k-labels-idx1-ubyte.gz": (
        "test",
        "labels",
        10000,
        "bb300cfdad3c16e7a12a480ee83cd310",
        "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    ),
}

_HOW_TO_GET = (
    "Install the Debian/Ubuntu package (`sudo apt-get install dataset-fashion-mnist`, files land in "
    f"{DEBIAN_DIR}), or put the four files {', '.join(FILES)} from "
    "https://github.com/zalandoresearch/fashion-mnist into a folder and pass it as data_dir= or set "
    "VITCORE_DATA, or call load_fashion_mnist(download=True) on a machine with internet access."
)


class DataMissingError(FileNotFoundError):
    """Fashion-MNIST is not on this machine (and could not be downloaded)."""


def cache_root() -> Path:
    """vitcore's one cache folder: ``$VITCORE_CACHE`` if set (and not empty), else
    ``~/.cache/vitcore``. Downloads go to ``data/``, the zoo to ``zoo/`` and ``zoo-state/``,
    converted pretrained weights to the folder itself."""
    return Path(os.environ.get("VITCORE_CACHE") or "~/.cache/vitcore").expanduser()


def _cache_dir() -> Path:
    return cache_root() / "data" / "fashion-mnist"


def _candidate_dirs(data_dir: str | Path | None) -> list[Path]:
    """Where to look: the explicit folder only, else $VITCORE_DATA, the Debian folder, the cache."""
    if data_dir is not None:
        return [Path(data_dir)]
    dirs = [Path(os.environ["VITCORE_DATA"])] if os.environ.get("VITCORE_DATA") else []
    return dirs + [DEBIAN_DIR, _cache_dir()]


def find_fashion_mnist(data_dir: str | Path | None = None) -> Path | None:
    """The first candidate folder that holds all four files, or ``None``."""
    for d in _candidate_dirs(data_dir):
        if all((d / name).is_file() for name in FILES):
            return d
    return None


def _read_idx(path: Path, verify: bool = True, name: str | None = None) -> np.ndarray:
    """Decompress and parse one idx file (``name``: which of ``FILES``, default its own name)
    -> ``uint8`` array ``(N, 28, 28)`` or ``(N,)``."""
    name = name or path.name
    _, kind, count, _, sha = FILES[name]
    compressed = path.read_bytes()
    if not compressed:
        raise ValueError(f"{path} is empty (0 bytes); it is corrupt (an interrupted download?). {_HOW_TO_GET}")
    try:
        raw = gzip.decompress(compressed)
    except (OSError, EOFError, zlib.error) as err:  # BadGzipFile is an OSError; damaged deflate data a zlib.error
        raise ValueError(f"{path} is not a readable gzip file ({err}); it is corrupt. {_HOW_TO_GET}") from err
    if verify and hashlib.sha256(raw).hexdigest() != sha:
        raise ValueError(
            f"{path} has the wrong checksum (SHA-256 of its contents); the file is corrupt or not "
            f"Fashion-MNIST. Delete it and get it again. {_HOW_TO_GET}"
        )
    magic, n = int.from_bytes(raw[0:4], "big"), int.from_bytes(raw[4:8], "big")
    want_magic, header = (2051, 16) if kind == "images" else (2049, 8)
    if magic != want_magic or n != count or len(raw) != header + n * (784 if kind == "images" else 1):
        raise ValueError(f"{path} does not have a valid idx header for {count} {kind}. {_HOW_TO_GET}")
    arr = np.frombuffer(raw, dtype=np.uint8, offset=header)
    return arr.reshape(n, 28, 28) if kind == "images" else arr


def download_fashion_mnist(
    dest: str | Path | None = None, mirrors: Sequence[str] = MIRRORS, timeout: float = 60.0
) -> Path:
    """Download the four files into ``dest`` (default ``$VITCORE_CACHE/data/fashion-mnist``).

    Each file is verified before it is moved into place; a mirror that fails or serves a bad file
    is skipped. Raises :class:`DataMissingError` naming every failure when no mirror works.
    """
    dest = Path(dest) if dest is not None else _cache_dir()
    dest.mkdir(parents=True, exist_ok=True)
    for name, (_, _, _, md5, _) in FILES.items():
        target = dest / name
        if target.is_file():
            continue
        errors = []
        for base in mirrors:
            url = base.rstrip("/") + "/" + name
            try:  # a file that fails its check never replaces the target
                with atomic_write(target) as out, urllib.request.urlopen(url, timeout=timeout) as resp:
                    shutil.copyfileobj(resp, out)
                    out.flush()
                    tmp = Path(out.name)
                    got_md5 = hashlib.md5(tmp.read_bytes()).hexdigest()
                    if got_md5 != md5:  # not the official archive: accept it only if the contents match
                        _read_idx(tmp, verify=True, name=name)
                break
            except (urllib.error.URLError, OSError, ValueError) as err:
                errors.append(f"{url}: {err}")
        else:
            raise DataMissingError(f"could not download {name}; tried " + "; ".join(errors) + f". {_HOW_TO_GET}")
    return dest


def load_fashion_mnist(
    split: str = "train",
    data_dir: str | Path | None = None,
    download: bool = True,
    verify: bool = True,
    mirrors: Sequence[str] = MIRRORS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images ``(N, 28, 28)`` uint8 and labels ``(N,)`` int64 of the ``"train"`` or ``"test"`` split.

    Looks in ``data_dir`` if given, else in ``$VITCORE_DATA``, the Debian folder and the cache;
    downloads into ``data_dir`` (or the cache) when nothing is found and ``download`` is true.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    root = find_fashion_mnist(data_dir)
    if root is None:
        tried = ", ".join(str(d) for d in _candidate_dirs(data_dir))
        if not download:
            raise DataMissingError(f"Fashion-MNIST not found (looked in {tried}). {_HOW_TO_GET}")
        target = (
            Path(data_dir)
            if data_dir is not None
            else (Path(os.environ["VITCORE_DATA"]) if os.environ.get("VITCORE_DATA") else _cache_dir())
        )
        root = download_fashion_mnist(target, mirrors)
    prefix = "train" if split == "train" else "t10k"
    images = _read_idx(root / f"{prefix}-images-idx3-ubyte.gz", verify)
    labels = _read_idx(root / f"{prefix}-labels-idx1-ubyte.gz", verify)
    return torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64))


def stratified_indices(labels: torch.Tensor, n: int, seed: int = 0) -> torch.Tensor:
    """``n`` indices with (as nearly as possible) equal counts per class, drawn with ``seed``.

    Sorted, so a subset keeps the original order; the same ``seed`` gives the same subset.
    """
    classes = labels.unique()
    if not 0 < n <= len(labels):
        raise ValueError(f"subset size must be in 1..{len(labels)}, got {n}")
    g = torch.Generator().manual_seed(seed)
    per_class, extra = divmod(n, len(classes))
    bonus = set(torch.randperm(len(classes), generator=g)[:extra].tolist())  # who gets one more
    picks = []
    for i, c in enumerate(classes):
        idx = (labels == c).nonzero().squeeze(1)
        k = per_class + (i in bonus)
        if k > len(idx):
            raise ValueError(f"class {int(c)} has only {len(idx)} examples, {k} wanted")
        picks.append(idx[torch.randperm(len(idx), generator=g)[:k]])
    return torch.cat(picks).sort().values
