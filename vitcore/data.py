"""Fashion-MNIST (Xiao et al., 2017): loading, subsets, augmentation and fast loaders.

The data comes from the Debian package ``dataset-fashion-mnist``
(``/usr/share/datasets/fashion-mnist/*-idx?-ubyte.gz``). Elsewhere, point ``data_dir`` (or the
environment variable ``VITCORE_DATA``) at a folder holding the four ``.gz`` files, or let
:func:`load_fashion_mnist` download them once from the dataset's official release. Every file is
checked: the idx header, and the SHA-256 of its *decompressed* bytes (so the Debian repack and the
official archive, compressed differently, both pass).

The whole dataset is 55 MB of bytes, so it lives in memory as ``uint8`` tensors. For 28x28 images
a :class:`TensorLoader` that crops, flips and normalises a whole batch at once (on the training
device) is far faster than a ``DataLoader`` that transforms one image at a time in worker
processes; ``benchmarks/train_throughput.py`` measures both.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

__all__ = [
    "CLASSES",
    "MEAN",
    "STD",
    "DEBIAN_DIR",
    "MIRRORS",
    "FILES",
    "DataMissingError",
    "cache_root",
    "find_fashion_mnist",
    "download_fashion_mnist",
    "load_fashion_mnist",
    "stratified_indices",
    "normalize",
    "random_crop",
    "random_flip",
    "augment_batch",
    "TensorLoader",
    "FashionMNIST",
    "WorkerLoader",
    "make_loader",
]

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


# ----------------------------------------------------------------------------- files
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
            fd, tmp_name = tempfile.mkstemp(dir=dest, suffix=".part")
            tmp = Path(tmp_name)
            try:
                with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
                    shutil.copyfileobj(resp, out)
                got_md5 = hashlib.md5(tmp.read_bytes()).hexdigest()
                if got_md5 != md5:  # not the official archive: accept it only if the contents match
                    _read_idx(tmp, verify=True, name=name)
                tmp.replace(target)
                break
            except (urllib.error.URLError, OSError, ValueError) as err:
                errors.append(f"{url}: {err}")
            finally:
                tmp.unlink(missing_ok=True)
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


# ----------------------------------------------------------------------------- augmentation
def normalize(x: torch.Tensor, mean: float = MEAN, std: float = STD) -> torch.Tensor:
    """uint8 images ``(B, 28, 28)`` or ``(B, 1, 28, 28)`` -> float ``(B, 1, 28, 28)``, mean 0, std 1."""
    if x.ndim == 3:
        x = x.unsqueeze(1)
    return (x.float() / 255.0 - mean) / std


def random_crop(x: torch.Tensor, padding: int = 2, generator: torch.Generator | None = None) -> torch.Tensor:
    """Pad ``(B, C, H, W)`` with zeros by ``padding`` and cut a random ``H x W`` window per image."""
    if padding == 0:
        return x
    b, _, h, w = x.shape
    xp = F.pad(x, (padding,) * 4)  # (B, C, H+2p, W+2p)
    oy = torch.randint(0, 2 * padding + 1, (b,), generator=generator).to(x.device)
    ox = torch.randint(0, 2 * padding + 1, (b,), generator=generator).to(x.device)
    rows = (oy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]  # (B, 1, H, 1)
    cols = (ox[:, None] + torch.arange(w, device=x.device))[:, None, None, :]  # (B, 1, 1, W)
    bi = torch.arange(b, device=x.device)[:, None, None, None]
    ci = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    return xp[bi, ci, rows, cols]  # (B, C, H, W)


def random_flip(x: torch.Tensor, p: float = 0.5, generator: torch.Generator | None = None) -> torch.Tensor:
    """Mirror each image of ``(B, C, H, W)`` left-right with probability ``p``."""
    flip = (torch.rand(x.shape[0], generator=generator) < p).to(x.device)
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def augment_batch(
    x: torch.Tensor,
    padding: int = 2,
    flip: bool = True,
    randaugment: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """uint8 ``(B, 28, 28)`` -> augmented, normalised float ``(B, 1, 28, 28)``.

    Crop and flip act on the whole batch at once. ``randaugment`` adds torchvision's RandAugment
    (Cubuk et al., 2020), applied image by image (much slower; for longer GPU runs).
    """
    x = x.unsqueeze(1) if x.ndim == 3 else x  # (B, 1, H, W) uint8
    if randaugment:
        from torchvision.transforms import v2

        ra = v2.RandAugment(num_ops=2, magnitude=9)
        x = torch.stack([ra(img) for img in x.cpu()]).to(x.device)
    x = random_crop(x, padding, generator)
    if flip:
        x = random_flip(x, 0.5, generator)
    return normalize(x)


# ----------------------------------------------------------------------------- loaders
class TensorLoader:
    """Batches from in-memory uint8 tensors, augmented a whole batch at a time.

    The data is moved to ``device`` once; each epoch is a fresh seeded shuffle. ``len()`` is the
    number of batches, and iterating yields ``(images (B, 1, 28, 28) float, labels (B,))``.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int = 256,
        shuffle: bool = False,
        augment: bool = False,
        drop_last: bool = False,
        device: str | torch.device = "cpu",
        seed: int = 0,
        padding: int = 2,
        flip: bool = True,
        randaugment: bool = False,
    ) -> None:
        if images.dtype != torch.uint8 or images.ndim not in (3, 4):
            raise ValueError(
                f"images must be uint8 (N, H, W) or (N, 1, H, W), got {images.dtype} {tuple(images.shape)}"
            )
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.device = torch.device(device)
        self.images = images.to(self.device)
        self.labels = labels.to(self.device)
        self.batch_size, self.shuffle, self.augment, self.drop_last = batch_size, shuffle, augment, drop_last
        self.padding, self.flip, self.randaugment = padding, flip, randaugment
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        n, b = len(self.images), self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.images)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        order = order.to(self.device)
        for i in range(len(self)):
            idx = order[i * self.batch_size : (i + 1) * self.batch_size]
            x, y = self.images[idx], self.labels[idx]
            if self.augment:
                x = augment_batch(x, self.padding, self.flip, self.randaugment, self.generator)
            else:
                x = normalize(x)
            yield x, y


class FashionMNIST(Dataset):
    """A map-style ``Dataset`` of ``(image (1, 28, 28) float, label)``, optionally a stratified subset.

    For a classic ``DataLoader`` with worker processes; :class:`TensorLoader` is the fast path.
    With ``augment``, item ``i`` is cropped and flipped with its own generator seeded from
    ``(seed, epoch, i)``: the same item gives the same draw in any process and any worker (the
    global RNG plays no part), and :meth:`set_epoch` gives every epoch new draws.
    """

    classes = CLASSES

    def __init__(
        self,
        split: str = "train",
        n: int | None = None,
        seed: int = 0,
        augment: bool = False,
        data_dir: str | Path | None = None,
        download: bool = True,
    ) -> None:
        images, labels = load_fashion_mnist(split, data_dir, download)
        if n is not None:
            keep = stratified_indices(labels, n, seed)
            images, labels = images[keep], labels[keep]
        self.images, self.labels, self.augment = images, labels, augment
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:
        """Draw other augmentations from now on (call before each epoch, as with ``DistributedSampler``)."""
        self.epoch = int(epoch)

    def item_generator(self, i: int) -> torch.Generator:
        """The generator that augments item ``i`` in the current epoch."""
        state = np.random.SeedSequence([self.seed, self.epoch, int(i)]).generate_state(1, np.uint64)[0]
        return torch.Generator().manual_seed(int(state))

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.images[i : i + 1]  # (1, 28, 28)
        x = augment_batch(x, generator=self.item_generator(i)) if self.augment else normalize(x)
        return x[0], self.labels[i]


class WorkerLoader:
    """A ``DataLoader`` over :class:`FashionMNIST` with worker processes, made deterministic and
    device-aware: each pass calls :meth:`FashionMNIST.set_epoch` (new, seeded augmentations; the
    workers start afresh each pass so they see it) and moves every batch to ``device``."""

    def __init__(
        self,
        dataset: FashionMNIST,
        batch_size: int,
        shuffle: bool,
        drop_last: bool,
        workers: int,
        device: str | torch.device = "cpu",
        seed: int = 0,
    ) -> None:
        if workers < 1:
            raise ValueError(f"WorkerLoader needs workers >= 1, got {workers}; use TensorLoader without workers")
        self.dataset, self.device, self.epoch = dataset, torch.device(device), 0
        self.loader = DataLoader(
            dataset,
            batch_size,
            shuffle=shuffle,
            num_workers=workers,
            generator=torch.Generator().manual_seed(seed),
            drop_last=drop_last,
            pin_memory=self.device.type == "cuda",
        )

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        self.dataset.set_epoch(self.epoch)
        self.epoch += 1
        non_blocking = self.device.type == "cuda"
        for x, y in self.loader:
            yield x.to(self.device, non_blocking=non_blocking), y.to(self.device, non_blocking=non_blocking)


def make_loader(
    split: str = "train",
    n: int | None = None,
    batch_size: int = 256,
    train: bool | None = None,
    device: str | torch.device = "cpu",
    seed: int = 0,
    workers: int = 0,
    augment: bool | None = None,
    **kwargs: Any,
) -> TensorLoader | WorkerLoader:
    """A loader over Fashion-MNIST (or a stratified subset of ``n`` images).

    ``train`` (default: ``split == "train"``) shuffles, drops the last partial batch and (unless
    ``augment`` says otherwise) augments. With ``workers=0`` (the
    default, fastest for these small images) it is a :class:`TensorLoader` on ``device``; with
    ``workers > 0`` a :class:`WorkerLoader` (a ``DataLoader`` over :class:`FashionMNIST` with that
    many processes, seeded, yielding batches on ``device``). ``kwargs`` go to :class:`TensorLoader`
    and are refused with workers, where the crop and flip are fixed.
    """
    train = (split == "train") if train is None else train
    augment = train if augment is None else augment
    if workers > 0:
        if kwargs:
            raise TypeError(
                f"make_loader(workers={workers}) does not take {', '.join(sorted(kwargs))} "
                "(TensorLoader options); use workers=0"
            )
        ds = FashionMNIST(split, n, seed, augment=augment)
        return WorkerLoader(ds, batch_size, shuffle=train, drop_last=train, workers=workers, device=device, seed=seed)
    images, labels = load_fashion_mnist(split)
    if n is not None:
        keep = stratified_indices(labels, n, seed)
        images, labels = images[keep], labels[keep]
    return TensorLoader(
        images, labels, batch_size, shuffle=train, augment=augment, drop_last=train, device=device, seed=seed, **kwargs
    )
