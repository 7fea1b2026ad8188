"""The book's image data (chapter 5): Fashion-MNIST on disk (``vitcore.data.fashion_mnist``), batch
augmentation (``vitcore.data.augment``) and fast loaders (``vitcore.data.loaders``), all importable
from ``vitcore.data``.

>>> from vitcore.data import load_fashion_mnist, TensorLoader
>>> x, y = load_fashion_mnist("train")          # (60000, 28, 28) uint8, (60000,) int64
>>> loader = TensorLoader(x, y, batch_size=256, augment=True, shuffle=True)
"""

from .augment import augment_batch, normalise, random_crop, random_flip
from .fashion_mnist import (
    CLASSES,
    DEBIAN_DIR,
    FILES,
    MEAN,
    MIRRORS,
    STD,
    DataMissingError,
    cache_root,
    download_fashion_mnist,
    find_fashion_mnist,
    load_fashion_mnist,
    stratified_indices,
)
from .loaders import FashionMNIST, TensorLoader, WorkerLoader, make_loader

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
    "normalise",
    "random_crop",
    "random_flip",
    "augment_batch",
    "TensorLoader",
    "FashionMNIST",
    "WorkerLoader",
    "make_loader",
]
