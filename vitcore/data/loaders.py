"""Loaders of in-memory image tensors (chapter 5). For 28x28 images a :class:`TensorLoader` that
crops, flips and normalises a whole batch at once (on the training device) is far faster than a
``DataLoader`` that transforms one image at a time in worker processes (:class:`WorkerLoader`);
``benchmarks/train_throughput.py`` measures both."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from .augment import augment_batch, normalise
from .fashion_mnist import CLASSES, load_fashion_mnist, stratified_indices


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
                x = normalise(x)
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
        x = augment_batch(x, generator=self.item_generator(i)) if self.augment else normalise(x)
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
