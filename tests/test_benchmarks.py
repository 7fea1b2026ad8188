import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import load_benchmark_script

from vitcore.tolerance import assert_close, tolerance

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "vit_throughput.py"


def load_script():
    return load_benchmark_script("vit_throughput")


@pytest.mark.slow
@pytest.mark.numerics  # compares logits with timm's (the file's other tests do not depend on rounding)
def test_smoke_run_as_a_script(tmp_path):
    out = tmp_path / "smoke.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke", "--threads", "2", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "| micro | infer |" in proc.stdout and "| micro | train |" in proc.stdout
    res = json.loads(out.read_text())
    # Same weights, same outputs: the script only reports max |diff|; for logits of size <= 1 (the
    # micro model's are ~0.2) the rule allows atol + rtol. The exact check is the test below.
    tol = tolerance(reduction=MICRO_REDUCTION, depth=MICRO_DEPTH)
    assert res["models"]["micro"]["max_abs_logit_diff"] <= tol.atol + tol.rtol
    assert [(r["mode"], r["impl"]) for r in res["results"]] == [
        ("infer", "vitcore"),
        ("infer", "timm"),
        ("train", "vitcore"),
        ("train", "timm"),
    ]
    for r in res["results"]:
        assert len(r["img_per_s"]) == 2 and all(v > 0 for v in r["img_per_s"])


MICRO_REDUCTION, MICRO_DEPTH = 4 * 64, 2  # the micro model: embed_dim 64, MLP 256, two blocks


@pytest.mark.numerics
def test_micro_pair_computes_the_same_logits():
    bench = load_script()
    assert (bench.MICRO["embed_dim"], bench.MICRO["depth"]) == (64, MICRO_DEPTH)
    ours, ref, size = bench.build_pair("micro", torch.device("cpu"))
    torch.nn.init.normal_(ours.head.weight)  # logits of size ~1, so that the head takes part
    ref.head.weight.data.copy_(ours.head.weight)
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        assert_close(ours.eval()(x), ref.eval()(x), reduction=MICRO_REDUCTION, depth=MICRO_DEPTH)


def test_bf16_inference_in_process():
    bench = load_script()
    res = bench.main(["--smoke", "--modes", "infer", "--dtype", "bf16", "--repeats", "1"])
    assert [r["impl"] for r in res["results"]] == ["vitcore", "timm"]
    assert res["models"]["micro"]["gflop_fwd_per_img"] > 0


def test_bad_arguments_are_refused():
    bench = load_script()
    with pytest.raises(SystemExit):
        bench.parse_args(["--modes", "infer,sample"])
    with pytest.raises(SystemExit):
        bench.parse_args(["--batch", "0"])
    with pytest.raises(ValueError, match="unknown model"):
        bench.build_pair("gigantic", torch.device("cpu"))


def test_cpu_peak_memory_sees_a_large_allocation():
    bench = load_script()

    def step():
        x = torch.ones(64 * 2**20 // 4)  # 64 MiB of float32, touched
        x.add_(1)

    peak = bench.measure_peak_mib(step, torch.device("cpu"))
    if bench._cpu_peak_supported():
        assert 60 <= peak <= 200
    else:
        assert peak is None


@pytest.mark.slow
def test_chapter_times_reads_seconds_and_the_wall_clock_from_the_cache(tmp_path):
    """Two chapters cached a second apart, the second one short enough to have run beside the
    first: each keeps its own seconds; the book's time is the wall clock from the first start to
    the last finish, not the sum."""
    import time

    import nbformat
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    ct = load_benchmark_script("chapter_times")
    cache = get_cache(str(tmp_path / "cache"))
    for name, seconds, code in (("a.ipynb", 30.0, "1 + 1"), ("b.ipynb", 5.0, "2 + 2")):
        path = tmp_path / name
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
        nbformat.write(nb, path)
        record = cache.add_nb_to_project(str(path))
        cache.cache_notebook_bundle(
            CacheBundleIn(nb, record.uri, data={"execution_seconds": seconds}), check_validity=False, overwrite=True
        )
        time.sleep(1.0)
    assert ct.chapter_times(tmp_path / "cache") == {"a.ipynb": 30.0, "b.ipynb": 5.0}
    wall = ct.wall_seconds(tmp_path / "cache")
    assert 30.0 < wall < 35.0  # a's 30 s and the second or two until b finished; the sum is 35
    table = ct.table(ct.chapter_times(tmp_path / "cache"), wall)
    assert "| a.ipynb | 30 | yes |" in table and f"| **all, wall clock** | **{wall:.0f}** | yes" in table
    with pytest.raises(FileNotFoundError, match="build the book first"):
        ct.chapter_times(tmp_path / "nothing")
