"""benchmarks/gpu_check.py: its dry run (every step on the CPU, tiny) and its parts."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import load_benchmark_script

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"


def load_script():
    return load_benchmark_script("gpu_check")


gc = load_script()


@pytest.mark.slow
def test_dry_run_writes_summary_json_and_checkpoints(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), str(out), "--dry-run", "--budget-s", "900"],
        capture_output=True,
        text=True,
        timeout=1200,
        env=env,
        cwd=tmp_path,
    )
    print(f"dry run: {time.perf_counter() - t0:.1f} s")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    check = json.loads((out / "check.json").read_text())
    steps = {s["name"]: s for s in check["steps"]}
    assert check["dry_run"] and list(steps)[:2] == ["env", "pytest"]

    # environment: versions recorded, vitcore imported and its recipes listed
    env_info = json.loads((out / "env.json").read_text())
    assert env_info["torch"] and env_info["packages"]["timm"] and "allow_tf32" in env_info["matmul"]
    assert "fmnist_cnn" in env_info["vitcore"]["full"] and "fmnist_vit" in env_info["vitcore"]["live"]

    # pytest on one small file, counted
    assert steps["pytest"]["status"] == "ok"
    counts = steps["pytest"]["result"]["counts"]
    assert counts["passed"] > 0 and counts.get("failed", 0) == 0 and steps["pytest"]["result"]["complete"]

    # throughput: the eager configurations ran (--smoke), the compiled ones had their GPU command checked
    for name in ("bench_bf16", "bench_fp32"):
        assert steps[name]["status"] == "ok", steps[name]
        res = json.loads((out / f"{name}.json").read_text())
        assert [(r["mode"], r["impl"]) for r in res["results"]] == [
            ("infer", "vitcore"),
            ("infer", "timm"),
            ("train", "vitcore"),
            ("train", "timm"),
        ]
        assert steps[name]["result"]["table"] == res["table"]
    for name in ("bench_bf16_compile_train", "bench_bf16_compile_infer"):
        assert steps[name]["status"] == "skipped" and "parse_args" in steps[name]["reason"]
        assert "--compile" in steps[name]["gpu_cmd"] and "--device" in steps[name]["gpu_cmd"]

    # the zoo: a live recipe, a full recipe and a DeiT student taught by the teacher trained here
    data, _ = gc.find_data(None)
    zoo_steps = [s for s in check["steps"] if s["phase"] in ("live", "full")]
    if data is None:  # no Fashion-MNIST on this machine: every zoo step skipped, saying why
        assert all(s["status"] == "skipped" and "Fashion-MNIST" in s["reason"] for s in zoo_steps)
    else:
        assert steps["live_fmnist_vit"]["status"] == "ok"
        assert 0.0 < steps["live_fmnist_vit"]["result"]["test_acc"] <= 1.0
        assert steps["full_fmnist_cnn"]["status"] == steps["full_deit_student_s0"]["status"] == "ok"
        manifest = json.loads((out / "checkpoints" / "manifest.json").read_text())
        assert {"fmnist_cnn", "deit_student_s0"} <= set(manifest)
        assert all((out / "checkpoints" / e["file"]).is_file() for e in manifest.values())
        teacher = steps["full_deit_student_s0"]["result"]["teacher"]
        assert teacher["sha256"] == manifest["fmnist_cnn"]["sha256"]
        assert steps["full_fmnist_vit"]["status"] == "skipped"
        assert (out / "cache" / "zoo").is_dir()
    for s in check["steps"]:
        if s["status"] != "skipped":
            assert (out / "logs" / f"{s['name']}.out").is_file()

    summary = (out / "summary.md").read_text()
    assert summary.startswith("## GPU check: DRY RUN")
    for text in (
        "--dry-run",
        "| step | status | seconds | note |",
        "### Tests",
        "passed",
        "### Throughput",
        "| micro | infer |",
        "| micro | train |",
        "### Zoo",
        "| live_fmnist_vit |",
        "torch.backends.cuda.matmul",
    ):
        assert text in summary, text
    assert str(out) not in summary.split("\n", 3)[3], "commands in the summary name OUT_DIR, not a local path"


def test_constants_follow_vitcore():
    from vitcore import data, zoo

    assert set(gc.FASHION_FILES) == set(data.FILES)
    assert gc.DEBIAN_DIR == data.DEBIAN_DIR
    assert set(gc.LIVE) <= set(zoo.RECIPES)
    assert set(gc.FULL_FIRST) <= set(zoo.FULL_RECIPES)


def test_gpu_command_lines_are_accepted(tmp_path):
    check = gc.Check(gc.parse_args([str(tmp_path), "--peak-tflops", "989.4"]))
    for name, _, settings, _, _ in gc.BENCHMARKS:
        cmd = check.bench_cmd(name, settings, dry=False)
        assert gc.check_bench_args(cmd[2:]) is None, cmd
        assert "--device" in cmd and cmd[cmd.index("--device") + 1] == "cuda"
        assert ("--compile" in cmd) == bool(settings.get("compile"))
    assert gc.check_bench_args(["--modes", "sample"]) is not None


def test_parse_pytest_closing_line_and_a_run_cut_short():
    done = gc.parse_pytest(
        "..F.s\nFAILED tests/test_x.py::test_y - AssertionError\n1 failed, 3 passed, 1 skipped, 2 warnings in 4.20s\n"
    )
    assert done["complete"] and done["counts"] == {"failed": 1, "passed": 3, "skipped": 1, "warnings": 2}
    assert done["failures"] == ["FAILED tests/test_x.py::test_y - AssertionError"]
    cut = gc.parse_pytest("....F.s.                                   [ 40%]\n..E\n")
    assert not cut["complete"] and cut["counts"]["passed"] == 8 and cut["counts"]["failed"] == 1
    assert cut["counts"]["errors"] == 1 and cut["counts"]["skipped"] == 1
    # -v, cut short: the failing test is named although pytest never printed its summary
    verbose = gc.parse_pytest(
        "tests/test_a.py::test_one PASSED   [ 1%]\n"
        "tests/test_a.py::test_two[cuda] FAILED   [ 2%]\n"
        "tests/test_b.py::test_three SKIPPED (no GPU)   [ 3%]\n"
    )
    assert not verbose["complete"]
    assert verbose["counts"] == {"passed": 1, "failed": 1, "skipped": 1}
    assert verbose["failures"] == ["FAILED tests/test_a.py::test_two[cuda]"]


def test_parse_last_json_skips_noise():
    text = 'progress 10%\r{not json\n{\n "test_acc": 0.9,\n "device": "cuda"\n}\n'
    assert gc.parse_last_json(text) == {"test_acc": 0.9, "device": "cuda"}
    assert gc.parse_last_json("no json here") is None


def test_full_order_teacher_first_then_pairs_by_seed():
    names = ["deit_baseline_s1", "deit_student_s0", "fmnist_vit", "deit_baseline_s0", "fmnist_cnn", "deit_student_s1"]
    assert gc.full_order(names) == [
        "fmnist_cnn",
        "fmnist_vit",
        "deit_student_s0",
        "deit_baseline_s0",
        "deit_student_s1",
        "deit_baseline_s1",
    ]


def test_find_data(tmp_path):
    assert gc.find_data(str(tmp_path))[0] is None and "lacks" in gc.find_data(str(tmp_path))[1]
    for f in gc.FASHION_FILES:
        (tmp_path / f).write_bytes(b"")
    assert gc.find_data(str(tmp_path))[0] == tmp_path.resolve()


def test_budget_skips_and_timeouts(tmp_path):
    check = gc.Check(gc.parse_args([str(tmp_path), "--budget-s", "30", "--skip", "pytest"]))
    slow = check.run(gc.Step("too_long", "bench", [sys.executable, "-c", "pass"], cap_s=60, min_s=120))
    assert slow.status == "skipped" and "needs at least 120 s" in slow.reason and slow.rc is None
    t0 = time.perf_counter()
    hung = check.run(gc.Step("hangs", "bench", [sys.executable, "-c", "import time; time.sleep(60)"], cap_s=2, min_s=1))
    assert hung.status == "timeout" and time.perf_counter() - t0 < 20
    failed = check.run(gc.Step("fails", "bench", [sys.executable, "-c", "raise SystemExit('broken')"], 20, 1))
    assert failed.status == "failed" and failed.rc == 1 and "broken" in failed.reason
    skipped = check.run(gc.Step("pytest", "pytest", [sys.executable, "-c", "pass"], 20, 1))
    assert skipped.status == "skipped" and skipped.reason == "--skip"
    state = json.loads((tmp_path / "check.json").read_text())
    assert [s["status"] for s in state["steps"]] == ["skipped", "timeout", "failed", "skipped"]
    assert "| hangs | timeout |" in (tmp_path / "summary.md").read_text()


def test_vitb_training_figures():
    res = {
        "peak_tflops": 100.0,
        "models": {"base": {"train_flop_per_img": 3e11}},
        "results": [
            {"model": "base", "mode": "train", "impl": "vitcore", "img_per_s": [100.0, 110.0, 120.0]},
            {"model": "base", "mode": "train", "impl": "timm", "img_per_s": [100.0, 100.0, 100.0]},
        ],
    }
    text = gc.vitb_train_figures(res)
    assert "vitcore/timm **1.100** (1.00-1.20, n=3)" in text
    assert "MFU vitcore **33.0%** / timm 30.0%" in text  # 110 img/s x 0.3 TFLOP / 100 TFLOP/s
    assert gc.vitb_train_figures({"results": [], "models": {}}) is None


@pytest.mark.parametrize("argv", [[], ["out", "--budget-s", "0"]])
def test_bad_arguments_are_refused(argv):
    with pytest.raises(SystemExit):
        gc.parse_args(argv)
