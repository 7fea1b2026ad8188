"""Training throughput (images/s) of chapter 5's Fashion-MNIST models, and of their data pipelines.

Times full training steps (forward, backward, AdamW with clipping, as in ``vitcore.train.fit``) of the
zoo's ``fmnist_vit`` and its parameter-matched ``fmnist_cnn`` on real, augmented Fashion-MNIST
batches. On the CPU: float32 at the chapter's batch size. On a GPU additionally larger batches in
bfloat16 autocast. A second table compares the two data pipelines for 28x28 images: whole-batch
augmentation from in-memory tensors (``TensorLoader``) against a classic ``DataLoader`` with worker
processes that transforms one image at a time.

Examples::

    python benchmarks/train_throughput.py                      # CPU (2 threads as in CI), prints tables
    python benchmarks/train_throughput.py --device cuda --batches 128 1024 4096
    python benchmarks/train_throughput.py --smoke              # a few steps, seconds
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # run from a checkout

import vitcore  # noqa: E402
from vitcore import data, zoo  # noqa: E402
from vitcore.train import param_groups  # noqa: E402


def time_training(model: torch.nn.Module, loader: data.TensorLoader, device: torch.device, steps: int,
                  warmup: int, bf16: bool, repeats: int) -> list[float]:
    """Images per second of ``steps`` training steps, ``repeats`` times (after ``warmup`` steps)."""
    model.to(device).train()
    opt = torch.optim.AdamW(param_groups(model, 0.05), lr=1e-3)
    batches = iter(())

    def step() -> int:
        nonlocal batches
        try:
            x, y = next(batches)
        except StopIteration:
            batches = iter(loader)
            x, y = next(batches)
        with vitcore.autocast(device, enabled=bf16):
            loss = F.cross_entropy(model(x), y, label_smoothing=0.1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return len(y)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(warmup):
        step()
    sync()
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        n = sum(step() for _ in range(steps))
        sync()
        rates.append(n / (time.perf_counter() - t0))
    return rates


def time_loaders(images: torch.Tensor, labels: torch.Tensor, batch: int, n_batches: int, workers: list[int]) -> list[tuple[str, float]]:
    """Images per second delivered (augmented, normalised) by each pipeline, no model attached."""
    out = []
    loader = data.TensorLoader(images, labels, batch, shuffle=True, augment=True, drop_last=True)
    t0 = time.perf_counter()
    n = 0
    for i, (x, _) in enumerate(loader):
        n += len(x)
        if i + 1 == n_batches:
            break
    out.append(("TensorLoader (whole-batch augmentation)", n / (time.perf_counter() - t0)))
    ds = data.FashionMNIST("train", n=len(images))
    for w in workers:
        dl = torch.utils.data.DataLoader(ds, batch, shuffle=True, num_workers=w, drop_last=True)
        dl.dataset.augment = True
        t0 = time.perf_counter()
        n = 0
        for i, (x, _) in enumerate(dl):
            n += len(x)
            if i + 1 == n_batches:
                break
        out.append((f"DataLoader, per-image transforms, {w} workers", n / (time.perf_counter() - t0)))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default=None, help="cpu, cuda or mps (default: vitcore.get_device())")
    p.add_argument("--threads", type=int, default=2, help="CPU threads (CI has 2)")
    p.add_argument("--batches", type=int, nargs="*", default=None, help="batch sizes (default: 128; GPU: 128 1024 4096)")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--smoke", action="store_true", help="a few steps only")
    args = p.parse_args()

    device = vitcore.get_device(args.device)
    torch.set_num_threads(args.threads)
    gpu = device.type == "cuda"
    batches = args.batches or ([128, 1024, 4096] if gpu else [128])
    steps, repeats = (2, 1) if args.smoke else (args.steps, args.repeats)
    x, y = data.load_fashion_mnist("train")
    print(f"device {device} ({torch.cuda.get_device_name() if gpu else platform.processor() or platform.machine()}), "
          f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")

    print(f"\n{'model':12s} | {'params':>7s} | {'batch':>5s} | {'precision':9s} | {'images/s (median of ' + str(repeats) + ')':>26s}")
    for name in ("fmnist_vit", "fmnist_cnn"):
        rec = zoo.recipe(name, gpu=False)
        for b in batches:
            for bf16 in ([False, True] if gpu else [False]):
                vitcore.seed_everything(0)
                model = zoo.build_model(rec)
                loader = data.TensorLoader(x, y, b, shuffle=True, augment=True, drop_last=True, device=device)
                rates = time_training(model, loader, device, steps, 1 if args.smoke else 3, bf16, repeats)
                print(f"{name:12s} | {vitcore.count_params(model):7d} | {b:5d} | {'bf16' if bf16 else 'fp32':9s} | "
                      f"{statistics.median(rates):26.0f}")

    print("\ndata pipeline only (augmented batches of 128, no model):")
    n_imgs = 2048 if args.smoke else 20000
    for name, rate in time_loaders(x[:n_imgs], y[:n_imgs], 128, 4 if args.smoke else 40, [] if args.smoke else [2]):
        print(f"  {name:48s} {rate:10.0f} images/s")


if __name__ == "__main__":
    main()
