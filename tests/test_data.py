import functools
import gzip
import http.server
import shutil
import threading
from pathlib import Path

import pytest
import torch

from vitcore import data
from vitcore.data import (
    CLASSES,
    FILES,
    DataMissingError,
    FashionMNIST,
    TensorLoader,
    augment_batch,
    load_fashion_mnist,
    make_loader,
    normalise,
    random_crop,
    stratified_indices,
)
from vitcore.tolerance import is_close


@pytest.fixture(scope="module")
def fmnist(fmnist_train, fmnist_test):
    return fmnist_train, fmnist_test


def test_shapes_dtypes_and_label_counts(fmnist):
    (xtr, ytr), (xte, yte) = fmnist
    assert xtr.shape == (60000, 28, 28) and xtr.dtype == torch.uint8
    assert xte.shape == (10000, 28, 28) and xte.dtype == torch.uint8
    assert ytr.dtype == torch.int64 and ytr.shape == (60000,)
    assert torch.equal(torch.bincount(ytr), torch.full((10,), 6000))  # balanced classes
    assert torch.equal(torch.bincount(yte), torch.full((10,), 1000))
    assert len(CLASSES) == 10 and CLASSES[9] == "Ankle boot"
    x = xtr.float() / 255
    assert abs(x.mean().item() - data.MEAN) < 1e-3 and abs(x.std().item() - data.STD) < 1e-3


def test_bad_split():
    with pytest.raises(ValueError, match="split"):
        load_fashion_mnist("valid")


def test_stratified_subset_is_balanced_and_seeded(fmnist):
    (_, ytr), _ = fmnist
    a = stratified_indices(ytr, 1005, seed=3)
    assert len(a) == 1005 and len(a.unique()) == 1005
    counts = torch.bincount(ytr[a], minlength=10)
    assert counts.min() == 100 and counts.max() == 101 and counts.sum() == 1005
    assert torch.equal(a, stratified_indices(ytr, 1005, seed=3))
    assert not torch.equal(a, stratified_indices(ytr, 1005, seed=4))
    with pytest.raises(ValueError, match="subset size"):
        stratified_indices(ytr, 0)


def test_tensor_loader_batches_and_normalisation(fmnist):
    (xtr, ytr), _ = fmnist
    x, y = xtr[:1000], ytr[:1000]
    loader = TensorLoader(x, y, batch_size=300, shuffle=True, augment=True, drop_last=False, seed=1)
    batches = list(loader)
    assert len(loader) == 4 and [len(b[1]) for b in batches] == [300, 300, 300, 100]
    assert batches[0][0].shape == (300, 1, 28, 28) and batches[0][0].dtype == torch.float32
    seen = torch.cat([b[1] for b in batches])
    assert torch.equal(torch.bincount(seen, minlength=10), torch.bincount(y, minlength=10))  # a permutation
    plain = normalise(x)
    assert abs(plain.mean().item()) < 0.1 and abs(plain.std().item() - 1) < 0.1
    again = list(TensorLoader(x, y, batch_size=300, shuffle=True, augment=True, seed=1))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(batches, again))  # same seed, same batches
    with pytest.raises(ValueError, match="uint8"):
        TensorLoader(x.float(), y)


def test_random_crop_is_a_shift():
    x = torch.arange(2 * 28 * 28, dtype=torch.float32).reshape(2, 1, 28, 28) + 1
    out = random_crop(x, padding=2, generator=torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    for i in range(2):  # every output equals the input shifted by some (dy, dx) in [-2, 2]
        ok = False
        xp = torch.nn.functional.pad(x[i], (2, 2, 2, 2))
        for dy in range(5):
            for dx in range(5):
                ok |= torch.equal(out[i], xp[:, dy : dy + 28, dx : dx + 28])
        assert ok


def test_augment_changes_images_but_keeps_shape(fmnist):
    (xtr, _), _ = fmnist
    out = augment_batch(xtr[:64], generator=torch.Generator().manual_seed(0))
    assert out.shape == (64, 1, 28, 28)
    assert not is_close(out, normalise(xtr[:64]))
    ra = augment_batch(xtr[:4], randaugment=True)
    assert ra.shape == (4, 1, 28, 28) and ra.dtype == torch.float32


def test_dataset_and_make_loader(fmnist):
    ds = FashionMNIST("test", n=200, seed=0)
    x, y = ds[0]
    assert len(ds) == 200 and x.shape == (1, 28, 28) and y.dtype == torch.int64
    loader = make_loader("train", n=500, batch_size=128)
    assert isinstance(loader, TensorLoader) and len(loader) == 3  # drop_last for training
    test_loader = make_loader("test", batch_size=4096)
    assert isinstance(test_loader, TensorLoader)
    assert not test_loader.augment and len(test_loader) == 3


# ----------------------------------------------------------------------------- files and errors
def _copy_data(dest: Path, recompress: bool = True) -> Path:
    """The Debian files into ``dest``; the small test files recompressed (other bytes, same contents)."""
    dest.mkdir(parents=True, exist_ok=True)
    src = data.find_fashion_mnist(None)
    assert src is not None
    for name in FILES:
        if recompress and name.startswith("t10k"):
            (dest / name).write_bytes(gzip.compress(gzip.decompress((src / name).read_bytes()), compresslevel=1))
        else:
            shutil.copy(src / name, dest / name)
    return dest


def test_missing_files_give_a_clear_error(tmp_path):
    with pytest.raises(DataMissingError, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist("test", data_dir=tmp_path, download=False)


def test_env_var_data_dir(tmp_path, monkeypatch):
    _copy_data(tmp_path / "mine")
    monkeypatch.setenv("VITCORE_DATA", str(tmp_path / "mine"))
    assert data.find_fashion_mnist() == tmp_path / "mine"
    x, y = load_fashion_mnist("test")
    assert x.shape == (10000, 28, 28)


def test_corrupt_file_is_refused(tmp_path):
    d = _copy_data(tmp_path)
    name = "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(gzip.decompress((d / name).read_bytes()))
    raw[100] = (raw[100] + 1) % 10  # one wrong label: still a valid gzip and idx file
    (d / name).write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(ValueError, match="wrong checksum.*corrupt"):
        load_fashion_mnist("test", data_dir=d)
    (d / name).write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match="not a readable gzip"):
        load_fashion_mnist("test", data_dir=d)


@pytest.fixture
def local_server(tmp_path):
    """An HTTP server on 127.0.0.1 serving ``tmp_path / "www"``; yields (base_url, folder)."""
    www = tmp_path / "www"
    www.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(www)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", www
    server.shutdown()
    server.server_close()


def test_download_fallback_from_a_local_server(tmp_path, local_server, fmnist_test):
    url, www = local_server
    _copy_data(www)
    target = tmp_path / "downloaded"
    # The first mirror is dead; the loader moves on to the second and verifies every file.
    x, y = load_fashion_mnist("test", data_dir=target, mirrors=["http://127.0.0.1:9/", url])
    assert sorted(p.name for p in target.iterdir()) == sorted(FILES)
    ref_x, ref_y = fmnist_test  # read from the installed copy
    assert torch.equal(x, ref_x) and torch.equal(y, ref_y)


def test_download_refuses_a_bad_file(tmp_path, local_server):
    url, www = local_server
    _copy_data(www)
    (www / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(b"\0" * 7840016))
    target = tmp_path / "downloaded"
    with pytest.raises(DataMissingError, match="t10k-images.*wrong checksum"):
        load_fashion_mnist("test", data_dir=target, mirrors=[url])
    assert not (target / "t10k-images-idx3-ubyte.gz").exists()
    assert not [p.name for p in target.iterdir() if p.name not in FILES]  # no temporary file left


def test_dataset_augmentation_is_seeded_per_item(fmnist):
    ds = FashionMNIST("test", n=40, seed=0, augment=True)
    a, b = ds[3][0], ds[3][0]
    assert torch.equal(a, b)  # the same item draws the same crop and flip: no global RNG
    assert torch.equal(FashionMNIST("test", n=40, seed=0, augment=True)[3][0], a)
    torch.manual_seed(123)  # the global RNG plays no part
    assert torch.equal(ds[3][0], a)
    others = [FashionMNIST("test", n=40, seed=s, augment=True)[3][0] for s in (1, 2, 3, 4)]
    assert any(not is_close(o, a) for o in others)  # another seed, another draw
    ds.set_epoch(1)
    assert any(not is_close(ds[i][0], FashionMNIST("test", n=40, seed=0, augment=True)[i][0]) for i in range(8))


def test_worker_loader_is_deterministic_and_moves_batches_to_the_device(fmnist):
    def run(device="cpu"):
        loader = make_loader("test", n=40, batch_size=10, train=True, augment=True, workers=1, device=device)
        return [list(loader) for _ in range(2)], len(loader)

    (epochs_a, n), (epochs_b, _) = run(), run()
    assert n == 4
    for ea, eb in zip(epochs_a, epochs_b):
        assert all(torch.equal(xa, xb) and torch.equal(ya, yb) for (xa, ya), (xb, yb) in zip(ea, eb))
    assert not is_close(epochs_a[0][0][0], epochs_a[1][0][0])  # a new shuffle and new draws each epoch
    (meta_epochs, _) = run("meta")  # "meta" tensors stand in for an accelerator
    assert all(x.device.type == "meta" and y.device.type == "meta" for x, y in meta_epochs[0])
    with pytest.raises(TypeError, match="padding"):
        make_loader("test", n=40, workers=1, padding=4)
