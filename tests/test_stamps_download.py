"""The Tux Paint stamps fallback: found, or downloaded once from a (local) server, checked, unpacked.

No test touches the network: a local HTTP server serves a small archive laid out like the release
(``tuxpaint-stamps-<version>/stamps/<category>/...``), and the expected size and sha256 are that
archive's.
"""

import functools
import hashlib
import http.server
import io
import shutil
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vitcore import assets
from vitcore.assets import StampsError, download_stamps, find_stamps
from vitcore.data import fashion_mnist as data
from vitcore.scenes import load_stamps

TOP = f"tuxpaint-stamps-{assets.STAMPS_VERSION}"


def _png(colour: tuple[int, int, int]) -> bytes:
    rgba = np.zeros((20, 12, 4), np.uint8)
    rgba[4:16, 2:10] = (*colour, 255)  # an opaque block in a transparent frame
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, format="PNG")
    return buf.getvalue()


def _archive() -> bytes:
    files = {
        f"{TOP}/Makefile": b"install:\n",
        f"{TOP}/stamps/animals/amphibians/frog-1.png": _png((20, 200, 30)),
        f"{TOP}/stamps/animals/amphibians/frog-1.txt": b"A green frog.\nxx.utf8=...\n",
        f"{TOP}/stamps/animals/amphibians/frog-1_desc_fr.ogg": b"OggS" + b"\0" * 100,  # sound: not kept
        f"{TOP}/stamps/food/apple.png": _png((220, 20, 20)),
        f"{TOP}/stamps/../../escape.png": _png((0, 0, 0)),  # would leave the folder: refused
    }
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, payload in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
        link = tarfile.TarInfo(f"{TOP}/stamps/food/link.png")  # a link: not a file, refused
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    return buf.getvalue()


ARCHIVE = _archive()
SIZE, SHA = len(ARCHIVE), hashlib.sha256(ARCHIVE).hexdigest()


@pytest.fixture
def server(tmp_path):
    """A local HTTP server over ``tmp_path / "www"``; yields (base_url, folder, list of requested paths)."""
    www = tmp_path / "www"
    www.mkdir()
    hits: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            hits.append(self.path)
            super().do_GET()

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(www)))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/", www, hits
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def no_stamps(tmp_path, monkeypatch):
    """A machine with no stamps anywhere: no Debian folder, an empty cache, no VITCORE_* folders."""
    monkeypatch.setattr(assets, "DEBIAN_STAMP_DIR", tmp_path / "no-debian")
    monkeypatch.setenv("VITCORE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("VITCORE_DATA", raising=False)
    monkeypatch.delenv("VITCORE_STAMPS", raising=False)
    return tmp_path / "cache" / "data"


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_download_unpacks_pictures_and_captions_once(server, no_stamps):
    url, www, hits = server
    (www / assets.STAMPS_ARCHIVE).write_bytes(ARCHIVE)
    assert find_stamps() is None
    with pytest.raises(ValueError, match="no Tux Paint stamps found.*vitcore.assets fetch"):
        load_stamps()
    # The first address is dead; the download moves on to the second.
    got = download_stamps(
        urls=["http://127.0.0.1:9/x.tar.gz", url + assets.STAMPS_ARCHIVE], size=SIZE, sha256=SHA, quiet=True
    )
    assert got == no_stamps / "tuxpaint-stamps" == find_stamps()
    files = sorted(p.relative_to(got).as_posix() for p in got.rglob("*") if p.is_file())
    assert files == [
        assets._COMPLETE,
        "animals/amphibians/frog-1.png",
        "animals/amphibians/frog-1.txt",
        "food/apple.png",
    ]  # no sound, no link, nothing outside the folder
    assert not (no_stamps.parent / "escape.png").exists() and not (no_stamps / "escape.png").exists()
    assert _leftovers(no_stamps) == ["tuxpaint-stamps"]  # archive and work folder gone
    stamps = load_stamps()  # the default root is the downloaded folder
    assert [s.name for s in stamps] == ["frog", "apple"] and stamps[0].caption == "A green frog."
    assert load_stamps(["food"])[0].rgb[..., 0].mean() > 0.8  # the red apple's own colours
    n = len(hits)
    assert download_stamps(urls=[url + assets.STAMPS_ARCHIVE], size=SIZE, sha256=SHA, quiet=True) == got
    assert len(hits) == n  # already there: nothing fetched again


def test_vitcore_data_and_vitcore_stamps_are_honoured(server, no_stamps, tmp_path, monkeypatch):
    url, www, _ = server
    (www / assets.STAMPS_ARCHIVE).write_bytes(ARCHIVE)
    monkeypatch.setenv("VITCORE_DATA", str(tmp_path / "mydata"))
    assert assets.stamps_download_dir() == tmp_path / "mydata" / "tuxpaint-stamps"
    got = download_stamps(urls=[url + assets.STAMPS_ARCHIVE], size=SIZE, sha256=SHA, quiet=True)
    assert got == tmp_path / "mydata" / "tuxpaint-stamps" == find_stamps()
    mine = tmp_path / "mine"
    shutil.copytree(got / "food", mine / "food")
    monkeypatch.setenv("VITCORE_STAMPS", str(mine))  # an explicit folder comes first
    assert find_stamps() == mine and [s.name for s in load_stamps()] == ["apple"]


@pytest.mark.parametrize("damage", ["wrong bytes", "truncated", "not a tar archive", "too long"])
def test_a_bad_archive_gives_a_clear_error_and_leaves_nothing(server, no_stamps, damage):
    url, www, _ = server
    size, sha = SIZE, SHA
    if damage == "wrong bytes":
        damaged = bytearray(ARCHIVE)
        damaged[SIZE // 2] ^= 0xFF
        body, match = bytes(damaged), "sha256 .* expected .*not the release archive"
    elif damage == "truncated":
        body, match = ARCHIVE[: SIZE // 2], "expected .*interrupted download"
    elif damage == "too long":
        body, match = ARCHIVE + b"\0" * 10, "more than the expected"
    else:  # the right digest, but the bytes are no gzip'd tar: refused while unpacking
        body = b"\x1f\x8b" + b"garbage" * 100
        size, sha = len(body), hashlib.sha256(body).hexdigest()
        match = "could not download"
    (www / assets.STAMPS_ARCHIVE).write_bytes(body)
    with pytest.raises(StampsError, match=match) as err:
        download_stamps(urls=[url + assets.STAMPS_ARCHIVE], size=size, sha256=sha, quiet=True)
    assert "tuxpaint-stamps-default" in str(err.value)  # says how else to get them
    assert _leftovers(no_stamps) == []  # no archive, no half-unpacked folder
    assert find_stamps() is None


def test_an_incomplete_folder_is_not_taken_for_stamps(no_stamps):
    half = no_stamps / "tuxpaint-stamps" / "animals"
    half.mkdir(parents=True)
    (half / "frog.png").write_bytes(_png((1, 2, 3)))
    assert find_stamps() is None  # no completion mark: an interrupted unpack by other means
    with pytest.raises(StampsError, match="not a complete stamps download"):
        download_stamps(urls=[], quiet=True)


def test_the_release_is_pinned():
    assert assets.STAMPS_SIZE == 215_615_180
    assert assets.STAMPS_SHA256 == "842065576fae554358e00e51d71a492616a6490b12b592228067477c287a0bf8"
    assert all(u.startswith("https://") and assets.STAMPS_ARCHIVE in u for u in assets.STAMPS_URLS)


def test_fetch_command_gets_what_is_missing_from_local_mirrors(server, no_stamps, tmp_path, monkeypatch, capsys):
    src = data.find_fashion_mnist()
    if src is None:
        pytest.skip("Fashion-MNIST is not on this machine to serve")
    url, www, _ = server
    (www / assets.STAMPS_ARCHIVE).write_bytes(ARCHIVE)
    for name in data.FILES:
        shutil.copy(src / name, www / name)
    monkeypatch.setattr(data, "DEBIAN_DIR", tmp_path / "no-debian-fmnist")
    monkeypatch.setenv("VITCORE_DATA", str(tmp_path / "mydata"))
    assert assets.main(["where"]) == 1
    monkeypatch.setenv("VITCORE_STAMPS_URL", url + assets.STAMPS_ARCHIVE)
    monkeypatch.setenv("VITCORE_FASHION_MNIST_MIRROR", url)
    monkeypatch.setenv("VITCORE_STAMPS_SIZE", str(SIZE))
    monkeypatch.setenv("VITCORE_STAMPS_SHA256", SHA)
    assert assets.main(["fetch"]) == 0
    out = capsys.readouterr()
    assert "not the release's" in out.err  # an overridden digest is said aloud
    assert data.find_fashion_mnist() == tmp_path / "mydata"
    assert find_stamps() == tmp_path / "mydata" / "tuxpaint-stamps"
    assert assets.main(["where"]) == 0
    monkeypatch.setenv("VITCORE_STAMPS_SHA256", "0" * 64)  # nothing missing: nothing fetched or checked
    assert assets.main(["fetch"]) == 0
