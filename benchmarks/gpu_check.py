"""The whole GPU check in one command: environment, tests, throughput, the zoo's GPU runs.

    python benchmarks/gpu_check.py OUT_DIR --data DIR            # on the GPU machine, < 8 minutes
    python benchmarks/gpu_check.py OUT_DIR --dry-run             # the same steps on the CPU, tiny

Every step runs as its own process (``PYTHONPATH`` = the repository root, nothing installed),
with its own timeout, in this order, while the budget (``--budget-s``, default 480 s) lasts;
a step that no longer fits is skipped and the reason logged:

1. ``env``: Python, torch, timm and the other versions, the GPU, ``nvidia-smi``, the
   ``torch.backends.cuda.matmul`` settings; vitcore imported and its recipes listed.
2. ``pytest``: ``pytest tests -v`` with CUDA visible (counts and failures recorded, failures by
   name even in a run cut short; a failure stops nothing).
3. ``bench_*``: ``benchmarks/vit_throughput.py`` on CUDA: ViT-Ti/S/B inference and training in
   bf16 and fp32, eager, and ViT-B bf16 under ``torch.compile``; one JSON per configuration. MFU
   uses the script's table of dense peaks (``--peak-tflops`` overrides).
4. ``live_*``: the chapters' GPU live recipes, ``python -m vitcore.zoo train NAME --device cuda``
   (fmnist_vit, fmnist_cnn, fmnist_deit), with ``VITCORE_CACHE=OUT_DIR/cache``.
5. ``full_*``: the zoo's ``--full`` recipes, ``python -m vitcore.zoo train NAME --full --device
   cuda --out OUT_DIR/checkpoints``, fmnist_cnn first (the DeiT students are taught by it: by
   the one trained here if it finished, else by the one shipped in vitcore/checkpoints), then
   fmnist_vit, then the deit_* pairs seed by seed; each gets what is left of the budget.

Everything lands in OUT_DIR: ``logs/`` (stdout and stderr of every step), ``bench_*.json``,
``env.json``, ``check.json`` (every step: command, status, seconds, parsed result),
``checkpoints/`` (safetensors files and their manifest lines, to be copied into
vitcore/checkpoints) and ``summary.md``, a section ready to paste into benchmarks/RESULTS.md.
``check.json`` and ``summary.md`` are rewritten after every step, so a run cut short still
leaves what it measured.

Fashion-MNIST: ``--data DIR`` (a folder with the four ``.gz`` files) sets ``VITCORE_DATA`` for
every step; without it the usual places are searched (``$VITCORE_DATA``, the Debian folder) and
the zoo steps are skipped, with the reason logged, when the data is in none of them.

``--dry-run`` runs every step on the CPU with tiny settings (one small test file,
``vit_throughput.py --smoke`` without ``--compile``, the zoo's ``--full --quick`` and a one-epoch,
512-image variant of the live recipes), so that the structure is tested before GPU time is spent.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH_SCRIPT = ROOT / "benchmarks" / "vit_throughput.py"
# The four files vitcore.data looks for (vitcore.data.FILES; a test keeps the two in step).
FASHION_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                 "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
LIVE = ("fmnist_vit", "fmnist_cnn", "fmnist_deit")  # the chapters' live recipes, in this order
FULL_FIRST = ("fmnist_cnn", "fmnist_vit")  # then the rest (the deit_* pairs), seed by seed
FULL_FALLBACK = ("fmnist_cnn", "fmnist_vit")  # if vitcore cannot be imported to list them
RESERVE_S = 5.0  # kept back for writing the summary
DRY_PYTEST_FILE = "tests/test_tolerance.py"

# name, title, vit_throughput.py settings, own timeout (s), least time worth starting it (s)
BENCHMARKS = [
    ("bench_bf16", "bf16 autocast, eager, batch 256",
     dict(models="tiny,small,base", dtype="bf16", batch=256, modes="infer,train", repeats=5, iters=10, warmup=3),
     150, 30),
    ("bench_bf16_compile_train", "bf16 autocast, torch.compile, ViT-B training, batch 256",
     dict(models="base", dtype="bf16", batch=256, modes="train", repeats=5, iters=10, warmup=3, compile=True),
     180, 60),
    ("bench_fp32", "fp32 (TF32 off), eager, batch 128",
     dict(models="tiny,small,base", dtype="fp32", batch=128, modes="infer,train", repeats=3, iters=5, warmup=2),
     150, 30),
    ("bench_bf16_compile_infer", "bf16 autocast, torch.compile, ViT-B inference, batch 256",
     dict(models="base", dtype="bf16", batch=256, modes="infer", repeats=5, iters=10, warmup=3, compile=True),
     120, 45),
]

ENV_PROBE = r"""
import importlib.metadata as md, json, platform, sys, warnings
out = {"python": sys.version.split()[0], "platform": platform.platform()}
def version(name):
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None
out["packages"] = {n: version(n) for n in ("torch", "timm", "einops", "numpy", "safetensors", "filelock", "tqdm",
    "torchvision", "transformers", "peft", "matplotlib", "onnx", "onnxruntime", "pytest", "hypothesis", "triton")}
import torch
out["torch"], out["cuda"] = torch.__version__, torch.version.cuda
out["cuda_available"] = torch.cuda.is_available()
if out["cuda_available"]:
    p = torch.cuda.get_device_properties(0)
    out["gpu"] = {"name": p.name, "capability": f"{p.major}.{p.minor}", "memory_gib": round(p.total_memory / 2**30, 1),
                  "multiprocessors": p.multi_processor_count, "count": torch.cuda.device_count()}
    out["cudnn"] = torch.backends.cudnn.version()
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    m = torch.backends.cuda.matmul
    matmul = {}
    for k in ("allow_tf32", "allow_bf16_reduced_precision_reduction", "allow_fp16_reduced_precision_reduction",
              "fp32_precision"):
        try:
            matmul[k] = getattr(m, k)
        except Exception as err:
            matmul[k] = f"n/a ({type(err).__name__})"
    matmul["float32_matmul_precision"] = torch.get_float32_matmul_precision()
    out["matmul"] = {k: v if isinstance(v, (bool, int, float, str)) or v is None else str(v) for k, v in matmul.items()}
    out["cudnn_allow_tf32"] = torch.backends.cudnn.allow_tf32
    out["sdpa"] = {k: getattr(torch.backends.cuda, k)() for k in ("flash_sdp_enabled", "mem_efficient_sdp_enabled",
                   "math_sdp_enabled", "cudnn_sdp_enabled") if hasattr(torch.backends.cuda, k)}
out["cpu_threads"] = torch.get_num_threads()
try:
    import vitcore
    from vitcore import shipped, zoo
    out["vitcore"] = {"version": vitcore.__version__, "live": list(zoo.RECIPES),
                      "full": {n: zoo.recipe(n, full=True).get("teacher_shipped") for n in zoo.FULL_RECIPES},
                      "shipped": shipped.names(), "code_version": zoo.code_version()}
except Exception as err:
    out["vitcore_error"] = f"{type(err).__name__}: {err}"
print(json.dumps(out))
"""

# Dry run only: a live recipe on 512 images for one epoch (the CLI has no such switch).
DRY_LIVE = r"""
import json, sys
from vitcore import zoo
name = sys.argv[1]
rec = zoo.recipe(name, gpu=False)
rec["data"].update(n_train=512, n_test=500)
rec["train"]["epochs"] = 1
trained = zoo.get(name, device="cpu", rec=rec, retrain=True, progress=False)
print(json.dumps(trained.metrics, indent=1))
"""

# The zoo CLI with the shipped teacher read from another folder (the one trained in this run).
WITH_TEACHER = r"""
import sys
from pathlib import Path
import vitcore.shipped as shipped
shipped.CHECKPOINT_DIR = Path(sys.argv[1])
from vitcore.zoo import main
sys.exit(main(sys.argv[2:]))
"""


@dataclass
class Step:
    name: str
    phase: str  # env, pytest, bench, live, full
    cmd: list[str]
    cap_s: float  # its own timeout
    min_s: float  # skipped when less than this is left
    title: str = ""
    status: str = "pending"  # ok, failed, timeout, skipped
    reason: str = ""
    rc: int | None = None
    seconds: float = 0.0
    started_at_s: float | None = None  # seconds after the check began
    result: dict = field(default_factory=dict)

    gpu_cmd: list[str] = field(default_factory=list)  # dry run: the command the GPU run would use (checked)

    @property
    def command(self) -> str:
        return shlex.join(display(self.cmd))


SCRIPTS = {}  # inline scripts -> how logs and the summary name them (filled below)


def display(cmd: list[str], out: Path | None = None) -> list[str]:
    """A command as one would type it in the repository: ``python``, relative paths, scripts named."""
    shown = []
    for i, part in enumerate(cmd):
        if i == 0 and part == sys.executable:
            part = "python"
        elif part in SCRIPTS:
            part = SCRIPTS[part]
        elif out is not None and (part == str(out) or part.startswith(str(out) + os.sep)):
            part = "OUT_DIR" + part[len(str(out)):]
        elif part.startswith(str(ROOT) + os.sep):
            part = os.path.relpath(part, ROOT)
        shown.append(part)
    return shown


SCRIPTS.update({ENV_PROBE: "<env probe: versions, device, matmul settings, vitcore's recipes>",
                DRY_LIVE: "<dry run: the live recipe on 512 images, 1 epoch>",
                WITH_TEACHER: "<the zoo CLI, shipped teacher read from the folder that follows>"})


# ----------------------------------------------------------------------------- parsing
def parse_pytest(text: str) -> dict:
    """Counts from pytest's closing line (or, for a run cut short, from its progress dots)."""
    counts: dict[str, int] = {}
    tail = [ln for ln in text.strip().splitlines() if ln.strip()]
    for line in reversed(tail[-5:]):
        found = re.findall(r"(\d+) (passed|failed|skipped|errors?|xfailed|xpassed|deselected|warnings?)", line)
        if found:
            for n, what in found:
                counts[{"error": "errors", "warning": "warnings"}.get(what, what)] = int(n)
            break
    complete = bool(counts)
    # -v prints one line per test as it ends ("tests/a.py::test_b PASSED   [ 3%]"): a run cut short
    # still names its failures (the closing summary of failures never comes)
    verbose = re.findall(r"^(\S+::\S+) (PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)\b", text, flags=re.M)
    if not complete and verbose:
        for _, what in verbose:
            key = {"PASSED": "passed", "FAILED": "failed", "ERROR": "errors", "SKIPPED": "skipped",
                   "XFAIL": "xfailed", "XPASS": "xpassed"}[what]
            counts[key] = counts.get(key, 0) + 1
    elif not complete:  # no closing line: count the progress characters of the lines printed so far
        for line in text.splitlines():
            m = re.match(r"^([.FEsxX]+)\s*(\[\s*\d+%\])?\s*$", line.strip())
            if m:
                for ch, key in ((".", "passed"), ("F", "failed"), ("E", "errors"), ("s", "skipped"),
                                ("x", "xfailed"), ("X", "xpassed")):
                    counts[key] = counts.get(key, 0) + m.group(1).count(ch)
    failures = [ln.strip() for ln in text.splitlines() if ln.startswith(("FAILED ", "ERROR "))]
    named = {f.split()[1] for f in failures}
    failures += [f"{what} {test}" for test, what in verbose if what in ("FAILED", "ERROR") and test not in named]
    return {"counts": counts, "complete": complete, "failures": failures}


def parse_last_json(text: str) -> dict | None:
    """The last JSON object printed on stdout (the zoo CLI prints its metrics last)."""
    starts = [m.start() for m in re.finditer(r"^\{", text, flags=re.M)]
    for start in reversed(starts):
        try:
            obj = json.loads(text[start:])
        except json.JSONDecodeError:
            try:
                obj, _ = json.JSONDecoder().raw_decode(text[start:])
            except json.JSONDecodeError:
                continue
        if isinstance(obj, dict):
            return obj
    return None


def full_order(names: list[str]) -> list[str]:
    """fmnist_cnn, fmnist_vit, then the others by seed (``..._s0`` pairs first), student before baseline."""
    def key(name: str) -> tuple:
        if name in FULL_FIRST:
            return (0, FULL_FIRST.index(name), 0, "")
        m = re.search(r"_s(\d+)$", name)
        return (1, int(m.group(1)) if m else 99, 0 if "student" in name else 1, name)

    return sorted(names, key=key)


def check_bench_args(argv: list[str]) -> str | None:
    """None if benchmarks/vit_throughput.py accepts these arguments, else why not (for the dry run)."""
    import importlib.util

    if "vit_throughput" not in sys.modules:
        spec = importlib.util.spec_from_file_location("vit_throughput", BENCH_SCRIPT)
        module = importlib.util.module_from_spec(spec)
        sys.modules["vit_throughput"] = module  # its dataclasses look the module up there
        spec.loader.exec_module(module)
    try:
        sys.modules["vit_throughput"].parse_args(argv)
    except SystemExit as err:
        return f"argparse exit {err.code}"
    return None


def find_data(explicit: str | None) -> tuple[Path | None, str]:
    """The Fashion-MNIST folder and how it was found (or why it was not)."""
    if explicit:
        d = Path(explicit).resolve()
        missing = [f for f in FASHION_FILES if not (d / f).is_file()]
        if missing:
            return None, f"--data {d} lacks {', '.join(missing)}"
        return d, f"--data {d}"
    candidates = ([Path(os.environ["VITCORE_DATA"])] if os.environ.get("VITCORE_DATA") else []) + [DEBIAN_DIR]
    for d in candidates:
        if all((d / f).is_file() for f in FASHION_FILES):
            return d.resolve(), f"found in {d}"
    return None, ("Fashion-MNIST not found (looked in " + ", ".join(map(str, candidates)) +
                  "); pass --data DIR with the four .gz files")


# ----------------------------------------------------------------------------- the check
class Check:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.out = Path(args.out_dir).resolve()
        self.logs = self.out / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.ckpt_dir = self.out / "checkpoints"
        self.t0 = time.monotonic()
        self.started = datetime.datetime.now(datetime.timezone.utc)
        self.steps: list[Step] = []
        self.env_info: dict = {}
        self.nvidia_smi: str | None = None
        self.data_dir, self.data_note = find_data(args.data)
        self.skip = {s.strip() for s in (args.skip or "").split(",") if s.strip()}
        self.caps = args.cap
        self.py = sys.executable
        self.env = self._child_env()
        self._child: subprocess.Popen | None = None

    # -- bookkeeping
    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def remaining(self) -> float:
        return self.args.budget_s - self.elapsed()

    def log(self, msg: str) -> None:
        line = f"[{self.elapsed():6.1f} s | {self.remaining():6.1f} s left] {msg}"
        print(line, flush=True)
        with open(self.out / "gpu_check.log", "a") as f:
            f.write(line + "\n")

    def _child_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
        env["VITCORE_CACHE"] = str(self.out / "cache")
        env.setdefault("MPLBACKEND", "Agg")
        env.setdefault("PYTHONHASHSEED", "0")
        for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
            env.setdefault(var, "1")
        if self.data_dir is not None:
            env["VITCORE_DATA"] = str(self.data_dir)
        if self.args.dry_run:
            env["CUDA_VISIBLE_DEVICES"] = ""  # the dry run is the CPU's, even on a GPU machine
        return env

    def save(self) -> None:
        """Write check.json and summary.md as they stand (after every step)."""
        state = {"dry_run": self.args.dry_run, "budget_s": self.args.budget_s, "elapsed_s": round(self.elapsed(), 1),
                 "started_utc": self.started.isoformat(timespec="seconds"), "command": self.command_line(),
                 "data": self.data_note, "env": self.env_info, "steps": [asdict(s) for s in self.steps]}
        tmp = self.out / "check.json.tmp"
        tmp.write_text(json.dumps(state, indent=1))
        tmp.replace(self.out / "check.json")
        (self.out / "summary.md").write_text(render_summary(self))

    def command_line(self) -> str:
        return "python benchmarks/gpu_check.py " + shlex.join(self.args.argv)

    # -- running one step
    def add(self, step: Step) -> Step:
        self.steps.append(step)
        return step

    def skip_step(self, step: Step, reason: str) -> Step:
        step.status, step.reason = "skipped", reason
        self.log(f"{step.name}: skipped ({reason})")
        self.save()
        return step

    def run(self, step: Step) -> Step:
        """Run ``step`` under min(its own timeout, the budget left); skip it when too little is left."""
        self.add(step)
        if any(step.name == s or step.name.startswith(s + "_") or step.phase == s for s in self.skip):
            return self.skip_step(step, "--skip")
        left = self.remaining() - RESERVE_S
        if left < step.min_s:
            return self.skip_step(step, f"needs at least {step.min_s:.0f} s, {max(left, 0):.0f} s of the budget left")
        cap = self.caps.get(step.name, self.caps.get(step.phase, step.cap_s))
        timeout = min(cap, left)
        self.log(f"{step.name}: start (timeout {timeout:.0f} s): {shlex.join(display(step.cmd, self.out))}")
        step.started_at_s = round(self.elapsed(), 1)
        t = time.monotonic()
        with open(self.logs / f"{step.name}.out", "w") as fo, open(self.logs / f"{step.name}.err", "w") as fe:
            fo.write(f"$ {step.command}\n")
            fo.flush()
            self._child = subprocess.Popen(step.cmd, cwd=ROOT, env=self.env, stdout=fo, stderr=fe,
                                           stdin=subprocess.DEVNULL, start_new_session=True)
            try:
                step.rc = self._child.wait(timeout=timeout)
                step.status = "ok" if step.rc == 0 else "failed"
            except subprocess.TimeoutExpired:
                self._kill_child()
                step.rc, step.status, step.reason = None, "timeout", f"stopped after {timeout:.0f} s"
            finally:
                self._child = None
        step.seconds = round(time.monotonic() - t, 1)
        stdout = (self.logs / f"{step.name}.out").read_text(errors="replace")
        if step.status == "failed" and not step.reason:
            err = (self.logs / f"{step.name}.err").read_text(errors="replace").strip().splitlines()
            step.reason = (err[-1] if err else f"exit status {step.rc}")[:300]
        self.log(f"{step.name}: {step.status} in {step.seconds:.1f} s" + (f" ({step.reason})" if step.reason else ""))
        self._parse(step, stdout)
        self.save()
        return step

    def _kill_child(self) -> None:
        if self._child is None or self._child.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
            try:
                os.killpg(self._child.pid, sig)
            except ProcessLookupError:
                return
            try:
                self._child.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                continue

    def _parse(self, step: Step, stdout: str) -> None:
        try:
            if step.phase == "env" and step.status == "ok":
                self.env_info.update(parse_last_json(stdout) or {})
                (self.out / "env.json").write_text(json.dumps(self.env_info, indent=1))
            elif step.phase == "pytest":
                step.result = parse_pytest(stdout)
            elif step.phase == "bench":
                path = self.out / f"{step.name}.json"
                if path.is_file():
                    step.result = json.loads(path.read_text())
            elif step.phase in ("live", "full"):
                step.result = parse_last_json(stdout) or {}
                if step.phase == "full":
                    man = self.ckpt_dir / "manifest.json"
                    name = step.name.removeprefix("full_")
                    if man.is_file() and name in (entries := json.loads(man.read_text())):
                        e = entries[name]
                        step.result.update(manifest={k: e.get(k) for k in ("file", "sha256", "device", "wall_seconds",
                                                                             "metrics", "command")})
        except (OSError, ValueError) as err:  # a malformed output is recorded, not fatal
            step.result = {"parse_error": f"{type(err).__name__}: {err}"}

    # -- the plan
    def main(self) -> int:
        a = self.args
        self.log(f"gpu check{' (DRY RUN, CPU)' if a.dry_run else ''} into {self.out}; budget {a.budget_s:.0f} s; "
                 f"data: {self.data_note}")
        self.save()
        self.step_env()
        self.step_pytest()
        for name, title, settings, cap, least in BENCHMARKS:
            step = Step(name, "bench", self.bench_cmd(name, settings, self.args.dry_run), cap, least, title=title)
            if self.args.dry_run:
                step.gpu_cmd = self.bench_cmd(name, settings, False)
                refused = check_bench_args(step.gpu_cmd[2:])
                if refused:
                    step.status, step.reason = "failed", f"vit_throughput.py refuses the GPU command line: {refused}"
                    self.add(step)
                    self.log(f"{name}: {step.reason}")
                    continue
                if settings.get("compile"):
                    self.skip_step(self.add(step), "dry run: not run (inductor on a CPU takes minutes); its GPU "
                                                   "command line passed vit_throughput.parse_args")
                    continue
            self.run(step)
        if self.data_dir is None:
            for name in LIVE:
                self.skip_step(self.add(Step(f"live_{name}", "live", [], 0, 0)), self.data_note)
        else:
            for name in LIVE:
                self.step_live(name)
        self.step_full_all()
        self.log(f"done in {self.elapsed():.1f} s; summary: {self.out / 'summary.md'}")
        self.save()
        return 0

    def step_env(self) -> None:
        smi = shutil.which("nvidia-smi")
        if smi:
            try:
                full = subprocess.run([smi], capture_output=True, text=True, timeout=30)
                query = subprocess.run([smi, "--query-gpu=name,driver_version,memory.total,power.limit,clocks.max.sm",
                                        "--format=csv"], capture_output=True, text=True, timeout=30)
                self.nvidia_smi = query.stdout.strip()
                (self.logs / "nvidia-smi.txt").write_text(full.stdout + full.stderr + "\n" + query.stdout)
            except (OSError, subprocess.SubprocessError) as err:
                self.nvidia_smi = f"nvidia-smi failed: {err}"
        self.run(Step("env", "env", [self.py, "-c", ENV_PROBE], 120, 5, title="versions and device"))
        self.env_info["nvidia_smi"] = self.nvidia_smi
        rows = [r.split(", ") for r in (self.nvidia_smi or "").splitlines()]  # csv: a header, then one GPU a line
        if len(rows) > 1 and len(rows[1]) >= 2:
            self.env_info["nvidia_smi_driver"] = rows[1][1]
        info = self.env_info
        self.log("env: python {} | torch {} (CUDA {}) | timm {} | device {} | matmul {}".format(
            info.get("python"), info.get("torch"), info.get("cuda"), (info.get("packages") or {}).get("timm"),
            (info.get("gpu") or {}).get("name", "cpu"), info.get("matmul")))
        if "vitcore_error" in info:
            self.log(f"env: vitcore does not import: {info['vitcore_error']}")
        self.save()

    def step_pytest(self) -> None:
        # On the GPU: the whole suite but this script's own test (its dry run was tested before)
        target = [DRY_PYTEST_FILE] if self.args.dry_run else ["tests", "--ignore=tests/test_gpu_check.py"]
        # a test file that cannot be imported (a package missing there) must not stop the others
        step = Step("pytest", "pytest", [self.py, "-m", "pytest", *target, "-v", "-rfE",
                                         "--continue-on-collection-errors"], 120, 30,
                    title="pytest " + " ".join(target[:1]) + " -v")
        if (self.env_info.get("packages") or {}).get("pytest") is None and self.env_info:
            self.add(step)
            self.skip_step(step, "pytest is not installed")
            return
        self.run(step)

    def bench_cmd(self, name: str, s: dict, dry: bool) -> list[str]:
        cmd = [self.py, str(BENCH_SCRIPT), "--dtype", s["dtype"], "--modes", s["modes"],
               "--json", str(self.out / f"{name}.json")]
        if dry:  # the micro model, a few steps
            return cmd + ["--smoke", "--device", "cpu", "--threads", "1"]
        cmd += ["--device", "cuda", "--models", s["models"], "--batch", str(s["batch"]), "--repeats", str(s["repeats"]),
                "--iters", str(s["iters"]), "--warmup", str(s["warmup"])]
        if s.get("compile"):
            cmd.append("--compile")
        if self.args.peak_tflops:
            cmd += ["--peak-tflops", str(self.args.peak_tflops)]
        return cmd

    def step_live(self, name: str) -> None:
        if self.args.dry_run:
            if name != LIVE[0]:  # the same command; fmnist_deit's teacher would train the whole CPU recipe
                self.skip_step(self.add(Step(f"live_{name}", "live", [], 0, 0)),
                               f"dry run: {LIVE[0]} runs the same command")
                return
            cmd = [self.py, "-c", DRY_LIVE, name]
        else:
            cmd = [self.py, "-m", "vitcore.zoo", "train", name, "--device", "cuda"]
        self.run(Step(f"live_{name}", "live", cmd, 150, 30, title=f"live recipe {name}"))

    def step_full_all(self) -> None:
        listed = (self.env_info.get("vitcore") or {}).get("full")
        teachers = dict(listed) if listed else {n: None for n in FULL_FALLBACK}
        names = full_order(list(teachers))
        if self.args.dry_run:  # one teacher-free and one taught recipe test both code paths
            taught = [n for n in names if teachers[n]][:1]
            keep = set(names[:1] + taught)
        for name in names:
            step = Step(f"full_{name}", "full", [], 0, 30 if teachers[name] else 45, title=f"--full recipe {name}")
            if self.data_dir is None:
                self.skip_step(self.add(step), self.data_note)
                continue
            if self.args.dry_run and name not in keep:
                self.skip_step(self.add(step), "dry run: one recipe of each kind is enough")
                continue
            zoo_args = ["train", name, "--full", "--out", str(self.ckpt_dir),
                        "--device", "cpu" if self.args.dry_run else "cuda"] + (["--quick"] if self.args.dry_run else [])
            if teachers[name]:
                folder = self.teacher_folder(teachers[name])
                if folder is None:
                    self.skip_step(self.add(step), f"no {teachers[name]} checkpoint to teach it (neither trained here "
                                                   "nor shipped in vitcore/checkpoints)")
                    continue
                step.cmd = [self.py, "-c", WITH_TEACHER, str(folder), *zoo_args]
                step.result = {"teacher_folder": str(folder)}
            else:
                step.cmd = [self.py, "-m", "vitcore.zoo", *zoo_args]
            step.cap_s = max(self.remaining() - RESERVE_S, 0)
            self.run(step)
            if teachers[name]:
                step.result["teacher"] = self._teacher_entry(teachers[name], folder)

    def teacher_folder(self, teacher: str) -> Path | None:
        """This run's checkpoints if it trained the teacher, else the shipped ones if they hold it."""
        for folder in (self.ckpt_dir, ROOT / "vitcore" / "checkpoints"):
            if self._teacher_entry(teacher, folder):
                return folder
        return None

    @staticmethod
    def _teacher_entry(teacher: str, folder: Path) -> dict | None:
        man = folder / "manifest.json"
        try:
            e = json.loads(man.read_text()).get(teacher) if man.is_file() else None
        except (OSError, ValueError):
            return None
        return {"name": teacher, "folder": str(folder), "sha256": e["sha256"], "device": e.get("device")} if e else None


# ----------------------------------------------------------------------------- summary.md
def _fmt(v: object, spec: str = ".4f") -> str:
    return format(v, spec) if isinstance(v, (int, float)) else "n/a"


def vitb_train_figures(result: dict) -> str | None:
    """'ratio (range), MFU vitcore / timm' of the ViT-B training rows of a vit_throughput JSON."""
    rows = {r["impl"]: r for r in result.get("results", []) if r["mode"] == "train" and r["model"] == "base"}
    if set(rows) != {"vitcore", "timm"}:
        return None
    ours, ref = rows["vitcore"]["img_per_s"], rows["timm"]["img_per_s"]
    ratios = [a / b for a, b in zip(ours, ref)]
    text = (f"vitcore {statistics.median(ours):.0f} img/s, timm {statistics.median(ref):.0f} img/s, "
            f"vitcore/timm **{statistics.median(ratios):.3f}** ({min(ratios):.2f}-{max(ratios):.2f}, n={len(ratios)})")
    peak, flop = result.get("peak_tflops"), result["models"]["base"].get("train_flop_per_img")
    if peak and flop:
        mfu = [100 * statistics.median(v) * flop / (peak * 1e12) for v in (ours, ref)]
        text += f", MFU vitcore **{mfu[0]:.1f}%** / timm {mfu[1]:.1f}% of {peak:.1f} TFLOP/s"
    return text


def render_summary(check: Check) -> str:
    info, a = check.env_info, check.args
    gpu = info.get("gpu") or {}
    device = gpu.get("name") or ("CPU (dry run)" if a.dry_run else "no CUDA device")
    date = check.started.strftime("%Y-%m-%d")
    lines = ["## GPU check: DRY RUN on the CPU (tiny settings, not GPU figures)" if a.dry_run else f"## GPU: {device}", ""]
    lines.append(f"Measured {date} with `{check.command_line()}` (all steps: {check.elapsed():.0f} s of a "
                 f"{a.budget_s:.0f} s budget; logs and JSON in the output folder).")
    lines.append("")
    pk = info.get("packages") or {}
    lines.append(f"- **Device:** {device}" + (f", {gpu.get('memory_gib')} GiB, compute capability {gpu.get('capability')}, "
                                             f"{gpu.get('multiprocessors')} SMs" if gpu else "")
                 + (f"; driver {info['nvidia_smi_driver']}" if info.get("nvidia_smi_driver") else "")
                 + (f"; CUDA {info.get('cuda')}, cuDNN {info.get('cudnn')}" if info.get("cuda") else ""))
    lines.append(f"- **Software:** Python {info.get('python', 'n/a')}, torch {info.get('torch', 'n/a')}, "
                 f"timm {pk.get('timm')}, einops {pk.get('einops')}, triton {pk.get('triton')}, pytest {pk.get('pytest')}")
    if info.get("matmul"):
        mm = ", ".join(f"{k}={v}" for k, v in info["matmul"].items())
        lines.append(f"- **torch.backends.cuda.matmul** (at start): {mm}; cudnn.allow_tf32={info.get('cudnn_allow_tf32')}. "
                     "vit_throughput.py switches TF32 off on CUDA, so fp32 means fp32.")
    if info.get("sdpa"):
        lines.append("- **SDPA backends enabled:** " + ", ".join(k.removesuffix("_enabled") for k, v in info["sdpa"].items() if v))
    lines.append(f"- **Data:** {check.data_note}")
    if "vitcore_error" in info:
        lines.append(f"- **vitcore did not import:** {info['vitcore_error']}")
    lines += ["", "| step | status | seconds | note |", "|---|---|---:|---|"]
    for s in check.steps:
        lines.append(f"| {s.name} | {s.status} | {s.seconds:.1f} | {s.reason.replace('|', '/')} |")

    for s in check.steps:
        if s.phase == "pytest" and s.status != "skipped":
            c = s.result.get("counts", {})
            counts = ", ".join(f"{v} {k}" for k, v in c.items()) or "no counts"
            lines += ["", "### Tests", "", f"`{s.title}` with CUDA {'hidden (dry run)' if a.dry_run else 'available'}: "
                      f"{counts}" + ("" if s.result.get("complete") else f" (cut short: {s.reason or s.status})")
                      + f", {s.seconds:.0f} s."]
            fails = s.result.get("failures", [])
            if fails:
                lines += [""] + [f"- `{f[:200]}`" for f in fails[:25]]
                if len(fails) > 25:
                    lines.append(f"- ... and {len(fails) - 25} more (logs/pytest.out)")

    bench = [s for s in check.steps if s.phase == "bench"]
    if bench:
        lines += ["", "### Throughput: benchmarks/vit_throughput.py", ""]
        for s in bench:
            lines.append(f"**{s.title}** ({s.status}, {s.seconds:.0f} s): `{shlex.join(display(s.cmd, check.out))}`")
            lines.append("")
            if s.result.get("table"):
                lines += [s.result["table"], ""]
                if s.result.get("peak_tflops"):
                    lines += [f"MFU against {s.result['peak_tflops']:.1f} TFLOP/s (dense, the script's table); "
                              "training FLOPs = 3 x forward.", ""]
            elif s.reason:
                lines += [f"No table: {s.reason}", ""]
        vitb = [(s.title, vitb_train_figures(s.result)) for s in bench if s.result]
        vitb = [(t, f) for t, f in vitb if f]
        if vitb:
            lines += ["**ViT-B/16 training** (the targets: vitcore/timm >= 1.0, MFU >= 45% in bf16):", ""]
            lines += [f"- {t}: {f}" for t, f in vitb] + [""]

    zoo = [s for s in check.steps if s.phase in ("live", "full")]
    if zoo:
        lines += ["### Zoo", "", f"`VITCORE_CACHE=<out>/cache`; full recipes published into `<out>/checkpoints` "
                  "(copy the files and their manifest entries into vitcore/checkpoints).", "",
                  "| run | status | test acc | test loss | train s | img/s | wall s | note |",
                  "|---|---|---:|---:|---:|---:|---:|---|"]
        for s in zoo:
            r = s.result or {}
            m = r.get("metrics", r)
            note = s.reason
            if r.get("teacher"):
                note = (note + "; " if note else "") + f"teacher {r['teacher']['sha256'][:12]} ({r['teacher']['device']})"
            if r.get("sha256"):
                note = (note + "; " if note else "") + f"{r.get('file')} sha256 {r['sha256'][:12]}"
            lines.append(f"| {s.name} | {s.status} | {_fmt(m.get('test_acc'))} | {_fmt(m.get('test_loss'))} | "
                         f"{_fmt(m.get('train_seconds'), '.1f')} | {_fmt(m.get('images_per_second'), '.0f')} | "
                         f"{_fmt(r.get('wall_seconds', m.get('total_seconds')), '.1f')} | {note.replace('|', '/')} |")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- CLI
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out_dir", help="folder for logs, JSON, checkpoints and summary.md (created)")
    p.add_argument("--dry-run", action="store_true", help="every step on the CPU with tiny settings")
    p.add_argument("--budget-s", type=float, default=480.0, help="wall-clock budget of the whole check (default 480)")
    p.add_argument("--data", help="folder with the four Fashion-MNIST .gz files (sets VITCORE_DATA)")
    p.add_argument("--peak-tflops", type=float, default=None, help="device peak for MFU if not in vit_throughput's table")
    p.add_argument("--skip", default="", help="comma-separated steps or phases to leave out, e.g. pytest,full "
                   "(phases: env, pytest, bench, live, full; steps: bench_fp32, full_deit_student_s2, ...)")
    p.add_argument("--cap", default="", help="own timeouts to change, e.g. pytest=240,bench_fp32=60 (seconds; a step "
                   "name or a phase)")
    args = p.parse_args(argv)
    try:
        args.cap = {k.strip(): float(v) for k, v in (item.split("=") for item in args.cap.split(",") if item.strip())}
    except ValueError:
        p.error(f"--cap takes NAME=SECONDS,...; got {args.cap!r}")
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.budget_s <= 0:
        p.error("--budget-s must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    check = Check(parse_args(argv))

    def stop(signum: int, _frame: object) -> None:  # killed from outside: keep what was measured
        check._kill_child()
        check.log(f"stopped by signal {signum}")
        check.save()
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    try:
        return check.main()
    except KeyboardInterrupt:
        check._kill_child()
        check.log("interrupted")
        check.save()
        return 130


if __name__ == "__main__":
    sys.exit(main())
