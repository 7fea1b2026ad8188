"""Throughput and peak memory of vitcore's ViT next to timm's, with the same weights.

For each model (ViT-Ti/S/B at 224, patch 16) both implementations are built, timm's random
weights are loaded into vitcore's model key for key, their outputs are checked to agree, and then
inference and training steps are timed *interleaved*: repeat ``r`` times ``vitcore, timm`` (and
``timm, vitcore`` on odd repeats), so that a slow moment of a shared machine hits both. The table
gives the median images per second, the vitcore/timm ratio (median of the per-repeat ratios, with
its range), peak memory, and on a GPU the model FLOPs utilisation (MFU).

Examples::

    python benchmarks/vit_throughput.py --device cpu --models small --batch 32
    python benchmarks/vit_throughput.py --device cuda --models base --batch 256 --dtype bf16 --compile
    python benchmarks/vit_throughput.py --smoke          # a tiny model, seconds; used by the tests

Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` during one extra step, minus what was
allocated before it (weights, gradients and optimizer state of both models), i.e. the activations
and workspace of that step. On the CPU there is no allocator counter; we use the growth of the
process's resident-set high-water mark (``VmHWM``, reset by writing 5 to ``/proc/self/clear_refs``
after ``malloc_trim``) over the resident set before the step: the same quantity, measured by the
kernel, so it is coarser (page granularity, allocator caching). Where that is not available (not
Linux) the memory column says n/a.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import json
import os
import platform
import re
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # run from a checkout

import vitcore  # noqa: E402
from vitcore.checkpoint import load_state_dict_strict  # noqa: E402
from vitcore.flops import count_macs  # noqa: E402

TIMM_NAMES = {
    "tiny": "vit_tiny_patch16_224",
    "small": "vit_small_patch16_224",
    "base": "vit_base_patch16_224",
    "large": "vit_large_patch16_224",
}
# The --smoke model: a few thousand parameters, 32x32 images.
MICRO = dict(img_size=32, patch_size=8, embed_dim=64, depth=2, num_heads=2, num_classes=10)
# "process": CPU seconds used by this process (all threads): on a shared CPU it is not inflated by
# other programs' time slices, so it gives steadier ratios; img/s then means images per CPU-second.
CLOCKS = {"wall": time.perf_counter, "process": time.process_time}
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}

# Dense peak TFLOP/s from the vendors' data sheets (no sparsity): (bf16/fp16 tensor cores, fp32).
GPU_PEAK_TFLOPS = [
    ("H100 PCIe", (756.0, 51.2)),
    ("H100 NVL", (835.0, 60.0)),
    ("H100", (989.4, 66.9)),  # SXM
    ("H200", (989.4, 66.9)),
    ("GH200", (989.4, 66.9)),
    ("A100", (312.0, 19.5)),
    ("L40S", (362.0, 91.6)),
    ("L4", (121.0, 30.3)),
    ("RTX 4090", (165.2, 82.6)),
    ("V100", (125.0, 15.7)),
    ("T4", (65.0, 8.1)),
]


@dataclass
class Result:
    model: str
    mode: str  # "infer" or "train"
    impl: str  # "vitcore" or "timm"
    img_per_s: list[float] = field(default_factory=list)
    peak_mib: float | None = None
    compile_s: float | None = None

    @property
    def median(self) -> float:
        return statistics.median(self.img_per_s)


# ----------------------------------------------------------------------------- models
def build_pair(name: str, device: torch.device) -> tuple[nn.Module, nn.Module, int]:
    """(vitcore model, timm model, image size) with identical weights."""
    import timm
    from timm.models.vision_transformer import VisionTransformer as TimmViT

    if name == "micro":
        ref = TimmViT(**MICRO)
        ours = vitcore.VisionTransformer(**MICRO)
        size = MICRO["img_size"]
    elif name in TIMM_NAMES:
        ref = timm.create_model(TIMM_NAMES[name], pretrained=False)
        ours = vitcore.create_vit(name)
        size = 224
    else:
        raise ValueError(f"unknown model {name!r}; choose from {['micro', *TIMM_NAMES]}")
    load_state_dict_strict(ours, ref.state_dict())  # keys match one to one
    return ours.to(device), ref.to(device), size


def check_same_outputs(ours: nn.Module, ref: nn.Module, size: int, device: torch.device) -> float:
    """Largest |vitcore - timm| logit difference on random images (fp32, eval)."""
    ours.eval(), ref.eval()
    x = torch.randn(2, 3, size, size, device=device, generator=None)
    with torch.no_grad():
        a, b = ours(x), ref(x)
    diff = (a - b).abs().max().item()
    if diff > 1e-4 * max(1.0, b.abs().max().item()):
        raise RuntimeError(f"vitcore and timm disagree by {diff:.3g} with the same weights")
    return diff


# ----------------------------------------------------------------------------- memory
def _proc_status_kib(key: str) -> int:
    with open("/proc/self/status") as f:
        return int(re.search(rf"{key}:\s+(\d+)", f.read()).group(1))


def _cpu_peak_supported() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def measure_peak_mib(step: Callable[[], None], device: torch.device) -> float | None:
    """Extra memory one call of ``step`` needs at its peak, in MiB (see the module docstring)."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        step()
        torch.cuda.synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - base) / 2**20
    if device.type == "cpu" and _cpu_peak_supported():
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)  # hand freed pages back, so RSS = live memory
        base = _proc_status_kib("VmRSS")
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # VmHWM := VmRSS
        step()
        return (_proc_status_kib("VmHWM") - base) / 1024
    return None


# ----------------------------------------------------------------------------- steps
def make_step(
    model: nn.Module, mode: str, x: torch.Tensor, y: torch.Tensor, dtype: torch.dtype, device: torch.device
) -> Callable[[], None]:
    """A closure that runs one inference or training step (forward, backward, AdamW)."""
    amp = dtype != torch.float32
    autocast = lambda: torch.autocast(device.type, dtype=dtype, enabled=amp)  # noqa: E731
    if mode == "infer":
        model.eval()

        def infer() -> None:
            with torch.inference_mode(), autocast():
                model(x)

        return infer
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device.type == "cuda")
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)  # fp16 gradients underflow

    def train() -> None:
        opt.zero_grad(set_to_none=True)
        with autocast():
            loss = F.cross_entropy(model(x), y)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    return train


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(step: Callable[[], None], iters: int, device: torch.device, clock: Callable[[], float] = time.perf_counter) -> float:
    sync(device)
    t0 = clock()
    for _ in range(iters):
        step()
    sync(device)
    return clock() - t0


# ----------------------------------------------------------------------------- main loop
def bench_model(name: str, args: argparse.Namespace, device: torch.device) -> tuple[list[Result], dict]:
    vitcore.seed_everything(0)
    ours, ref, size = build_pair(name, device)
    diff = check_same_outputs(ours, ref, size, device)
    with torch.device("meta"):
        meta = vitcore.VisionTransformer(**MICRO) if name == "micro" else vitcore.create_vit(name)
    fwd_flops = 2 * count_macs(meta, (1, 3, size, size))  # per image; training = 3x (fwd + 2x bwd)
    info = {"model": name, "img_size": size, "max_abs_logit_diff": diff, "gflop_fwd_per_img": fwd_flops / 1e9}
    print(f"[{name}] {size}x{size}, vitcore == timm on the same weights (max |diff| {diff:.2e}), "
          f"{fwd_flops / 1e9:.2f} GFLOP/img forward", flush=True)

    dtype = DTYPES[args.dtype]
    x = torch.randn(args.batch, 3, size, size, device=device)
    y = torch.randint(0, ours.config.num_classes, (args.batch,), device=device)
    results = []
    for mode in args.modes:
        impls = {"vitcore": ours, "timm": ref}
        steps, res = {}, {}
        for impl, model in impls.items():
            runner = torch.compile(model) if args.compile else model
            steps[impl] = make_step(runner, mode, x, y, dtype, device)
            res[impl] = Result(name, mode, impl)
            t = timed(steps[impl], args.warmup, device)  # includes compilation with --compile
            if args.compile:
                res[impl].compile_s = t
        for r in range(args.repeats):
            order = ["vitcore", "timm"] if r % 2 == 0 else ["timm", "vitcore"]
            for impl in order:
                dt = timed(steps[impl], args.iters, device, CLOCKS[args.clock])
                res[impl].img_per_s.append(args.batch * args.iters / dt)
        for impl in ("vitcore", "timm"):
            res[impl].peak_mib = measure_peak_mib(steps[impl], device)
        results += [res["vitcore"], res["timm"]]
        ratios = [a / b for a, b in zip(res["vitcore"].img_per_s, res["timm"].img_per_s)]
        print(f"  {mode:5s} vitcore {res['vitcore'].median:8.1f} img/s | timm {res['timm'].median:8.1f} img/s "
              f"| ratio {statistics.median(ratios):.3f} (per-repeat {min(ratios):.3f}..{max(ratios):.3f})",
              flush=True)
        del steps
        gc.collect()
    info["train_flop_per_img"] = 3 * fwd_flops
    return results, info


def peak_tflops(device: torch.device, dtype: torch.dtype, override: float | None) -> float | None:
    if override:
        return override
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, (tc, fp32) in GPU_PEAK_TFLOPS:
        if key in name:
            return fp32 if dtype == torch.float32 else tc
    return None


def device_description(device: torch.device) -> str:
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        return f"{p.name} ({p.total_memory / 2**30:.0f} GiB), CUDA {torch.version.cuda}"
    cpu = platform.processor() or "cpu"
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as f:
            m = re.search(r"model name\s*:\s*(.+)", f.read())
            cpu = m.group(1).strip() if m else cpu
    return f"{cpu}, {os.cpu_count()} logical CPUs, torch threads {torch.get_num_threads()}"


def format_table(results: list[Result], infos: dict, args: argparse.Namespace, peak: float | None) -> str:
    lines = [
        "| model | mode | vitcore img/s | timm img/s | vitcore/timm (range) | peak MiB vitcore / timm | MFU vitcore / timm |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for ours, ref in zip(results[::2], results[1::2]):
        ratios = [a / b for a, b in zip(ours.img_per_s, ref.img_per_s)]
        mem = "n/a" if ours.peak_mib is None else f"{ours.peak_mib:.0f} / {ref.peak_mib:.0f}"
        flop = infos[ours.model]["train_flop_per_img" if ours.mode == "train" else "gflop_fwd_per_img"]
        flop = flop if ours.mode == "train" else flop * 1e9
        mfu = "n/a" if peak is None else " / ".join(f"{100 * r.median * flop / (peak * 1e12):.1f}%" for r in (ours, ref))
        lines.append(
            f"| {ours.model} | {ours.mode} | {ours.median:.1f} | {ref.median:.1f} | "
            f"{statistics.median(ratios):.3f} ({min(ratios):.2f}-{max(ratios):.2f}) | {mem} | {mfu} |"
        )
    if args.compile:
        lines.append("")
        lines.append("compile + warm-up time (s): " + ", ".join(
            f"{r.model}/{r.mode}/{r.impl} {r.compile_s:.1f}" for r in results if r.compile_s is not None))
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--models", default="tiny,small,base", help="comma-separated: tiny, small, base, large, micro")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--dtype", choices=sorted(DTYPES), default="fp32",
                   help="fp32, or autocast to bf16/fp16 (fp16 training uses a GradScaler)")
    p.add_argument("--modes", default="infer,train", help="comma-separated: infer, train")
    p.add_argument("--compile", action="store_true", help="torch.compile both models (compile time reported)")
    p.add_argument("--repeats", type=int, default=None, help="interleaved repeats per implementation")
    p.add_argument("--iters", type=int, default=None, help="steps per repeat")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps first")
    p.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                   help="wall (default) or process: CPU time of this process, steadier on a shared CPU "
                   "(with --threads 1 img/s is then images per CPU-second)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--peak-tflops", type=float, default=None, help="device peak for MFU if not in the table")
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    p.add_argument("--smoke", action="store_true", help="tiny model, batch 4, one step per repeat (for CI)")
    args = p.parse_args(argv)
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if bad := [m for m in args.modes if m not in ("infer", "train")]:
        p.error(f"unknown mode(s) {bad}; use infer and/or train")
    if args.smoke:
        args.models, args.batch = "micro", min(args.batch, 4)
        args.repeats, args.iters, args.warmup = args.repeats or 2, args.iters or 1, args.warmup or 1
    on_cuda = args.device.startswith("cuda")
    args.repeats = args.repeats or (10 if on_cuda else 5)
    args.iters = args.iters or (20 if on_cuda else 2)
    args.warmup = args.warmup or (5 if on_cuda else 1)
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    if args.clock == "process" and on_cuda:
        p.error("--clock process measures CPU time; use the wall clock on a GPU")
    if args.batch < 1 or args.repeats < 1 or args.iters < 1 or args.warmup < 1:
        p.error("--batch, --repeats, --iters and --warmup must be positive")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    device = vitcore.get_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32 for both implementations
    desc = device_description(device)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"device: {desc} | torch {torch.__version__} | dtype {args.dtype} | batch {args.batch} | "
          f"compile {args.compile} | clock {args.clock} | load avg {load:.2f}", flush=True)
    results, infos = [], {}
    for name in args.models:
        res, info = bench_model(name, args, device)
        results += res
        infos[name] = info
    peak = peak_tflops(device, DTYPES[args.dtype], args.peak_tflops)
    table = format_table(results, infos, args, peak)
    print()
    print(table)
    if peak is not None:
        print(f"\nMFU against a peak of {peak:.1f} TFLOP/s ({args.dtype}); training FLOPs = 3 x forward "
              "(count_macs x 2), attention counted as matmuls.")
    out = {
        "device": desc, "torch": torch.__version__, "args": {k: v for k, v in vars(args).items()},
        "load_avg_1min_start": load, "load_avg_1min_end": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "peak_tflops": peak, "models": infos, "results": [asdict(r) for r in results], "table": table,
    }
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return out


if __name__ == "__main__":
    main()
