"""python -m vitcore.doctor reports this machine truthfully and fails when something is missing."""

import json
import shutil
import subprocess
import sys

import torch

from vitcore import assets, doctor, shipped
from vitcore.data import fashion_mnist as data


def by_name(lines):
    return {c.name: c for c in lines}


def test_device_line_tells_the_truth():
    lines = by_name(doctor.check_torch())
    assert lines["torch"].status == "OK" and torch.__version__ in lines["torch"].detail
    device = lines["device"].detail
    if torch.cuda.is_available():
        assert device.startswith("cuda (") and torch.cuda.get_device_name(0) in device
    elif torch.backends.mps.is_available():
        assert device.startswith("mps")
    else:
        assert device.startswith("cpu (") and torch.backends.cpu.get_cpu_capability() in device


def test_packages_are_located_with_their_versions():
    lines = by_name(doctor.check_packages())
    assert lines["numpy"].status == "OK" and lines["numpy"].detail.startswith(__import__("numpy").__version__)
    missing = by_name(doctor.check_packages([("no_such_module_xyz", "no-such-dist", "nothing")]))
    assert missing["no-such-dist"].status == "MISSING" and "setup.sh" in missing["no-such-dist"].detail


def test_missing_data_fail_and_say_how_to_get_them(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(data, "DEBIAN_DIR", tmp_path / "none")
    monkeypatch.setattr(assets, "DEBIAN_STAMP_DIR", tmp_path / "none")
    monkeypatch.setenv("VITCORE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("VITCORE_DATA", raising=False)
    monkeypatch.delenv("VITCORE_STAMPS", raising=False)
    lines = by_name(doctor.check_data())
    for name in ("fashion-mnist", "tuxpaint-stamps"):
        assert lines[name].status == "MISSING" and "python -m vitcore.assets fetch" in lines[name].detail
    assert doctor.main(["--quiet"]) == 1
    out = capsys.readouterr().out
    assert "not ready:" in out and "fashion-mnist" in out and "OK" not in out  # --quiet: only problems


def test_found_data_are_reported_where_they_are(tmp_path, monkeypatch):
    stamps = tmp_path / "stamps" / "animals"
    stamps.mkdir(parents=True)
    monkeypatch.setenv("VITCORE_STAMPS", str(stamps.parent))
    lines = by_name(doctor.check_data())
    assert lines["tuxpaint-stamps"].status == "OK" and lines["tuxpaint-stamps"].detail == str(stamps.parent)
    fm = data.find_fashion_mnist()
    assert lines["fashion-mnist"].status == ("OK" if fm else "MISSING")


def test_a_damaged_shipped_checkpoint_is_caught(tmp_path):
    good = doctor.check_shipped()
    assert good.status == "OK" and f"{len(shipped.names())} verified" in good.detail
    name = shipped.names()[0]
    entry = shipped.entry(name)
    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "manifest.json").write_text(json.dumps({name: entry}))
    assert doctor.check_shipped(folder).status == "BAD"  # the file is missing
    shutil.copy(shipped.CHECKPOINT_DIR / entry["file"], folder / entry["file"])
    assert doctor.check_shipped(folder).status == "OK"
    with open(folder / entry["file"], "r+b") as f:
        f.seek(-1, 2)
        last = f.read(1)
        f.seek(-1, 2)
        f.write(bytes([last[0] ^ 1]))
    bad = doctor.check_shipped(folder)
    assert bad.status == "BAD" and "sha256" in bad.detail


def test_cache_and_chromium_lines(tmp_path, monkeypatch):
    monkeypatch.setenv("VITCORE_CACHE", str(tmp_path / "c"))
    assert doctor.check_cache().status == "OK" and str(tmp_path / "c") in doctor.check_cache().detail
    chromium = doctor.check_chromium()
    assert chromium.status in ("OK", "--") and not chromium.failed  # optional either way


def test_python_line():
    c = doctor.check_python()
    assert c.status == "OK" and sys.executable in c.detail


def test_the_command_runs_and_its_exit_code_matches_its_report():
    res = subprocess.run([sys.executable, "-m", "vitcore.doctor"], capture_output=True, text=True, timeout=300)
    lines = res.stdout.splitlines()
    assert any(line.startswith("OK      python") for line in lines)
    assert any(line.startswith("OK      device") for line in lines)
    failed = [line for line in lines if line.startswith(("MISSING", "BAD"))]
    assert res.returncode == (1 if failed else 0), res.stdout


def test_a_chromium_that_cannot_run_is_not_reported_as_ready(monkeypatch):
    monkeypatch.setattr(doctor.os, "access", lambda path, mode: False)
    assert doctor.check_chromium().status == "--"
