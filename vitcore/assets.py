"""Data the book needs besides Fashion-MNIST: the Tux Paint stamps, found or fetched once.

The chapters that compose scenes (:mod:`vitcore.scenes`) paste Tux Paint stamps: cut-out RGBA
pictures, each with an English caption in a ``.txt`` file beside it. On Debian and Ubuntu they
come with the package ``tuxpaint-stamps-default`` (``/usr/share/tuxpaint/stamps``). Everywhere
else :func:`download_stamps` fetches the same release from the Tux Paint project
(``tuxpaint-stamps`` 2022.06.04, the version Debian ships), checks its size and SHA-256 before
anything is unpacked, and unpacks the pictures and captions (not the sound files) once into the
data folder. Nothing is downloaded unless asked: ``download_stamps()``, or
``python -m vitcore.assets fetch``, which ``.ci/setup.sh`` runs and which also fetches
Fashion-MNIST through :func:`vitcore.data.download_fashion_mnist` when it is missing.

Where stamps are looked for, in order (:func:`stamp_dirs`):

1. ``$VITCORE_STAMPS``, a folder laid out like Debian's (``animals/``, ``food/``, ...);
2. ``$VITCORE_DATA/tuxpaint-stamps``, when ``VITCORE_DATA`` is set;
3. the Debian folder ``/usr/share/tuxpaint/stamps``;
4. ``$VITCORE_CACHE/data/tuxpaint-stamps`` (default ``~/.cache/vitcore/data/tuxpaint-stamps``),
   beside the cached Fashion-MNIST.

A downloaded folder counts only once it is complete: unpacking happens in a temporary folder that
is renamed into place after the last file, so an interrupted or corrupt download leaves nothing
half-unpacked behind.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from .data import DataMissingError, cache_root

__all__ = [
    "STAMPS_VERSION",
    "STAMPS_ARCHIVE",
    "STAMPS_URLS",
    "STAMPS_SIZE",
    "STAMPS_SHA256",
    "DEBIAN_STAMP_DIR",
    "StampsError",
    "stamp_dirs",
    "find_stamps",
    "stamps_download_dir",
    "download_stamps",
    "fetch_missing",
]

STAMPS_VERSION = "2022.06.04"
STAMPS_ARCHIVE = f"tuxpaint-stamps-{STAMPS_VERSION}.tar.gz"
# The Tux Paint project publishes its releases on SourceForge (tuxpaint.org's download page links
# there); the second address is the same file through SourceForge's download redirector.
STAMPS_URLS: tuple[str, ...] = (
    f"https://downloads.sourceforge.net/project/tuxpaint/tuxpaint-stamps/2022-06-04/{STAMPS_ARCHIVE}",
    f"https://sourceforge.net/projects/tuxpaint/files/tuxpaint-stamps/2022-06-04/{STAMPS_ARCHIVE}/download",
)
# As recorded in Debian's source description of tuxpaint-stamps 2022.06.04-1 (the .orig.tar.gz).
STAMPS_SIZE = 215_615_180
STAMPS_SHA256 = "842065576fae554358e00e51d71a492616a6490b12b592228067477c287a0bf8"
DEBIAN_STAMP_DIR = Path("/usr/share/tuxpaint/stamps")
_KEEP = {".png", ".txt", ".dat"}  # pictures, captions, stamp options; not the 185 MB of sound
_COMPLETE = ".vitcore-complete"  # written last into a downloaded folder: its archive's sha256

_HOW_TO_GET = (
    "Install the Debian/Ubuntu package (`sudo apt-get install tuxpaint-stamps-default`), or run "
    "`python -m vitcore.assets fetch` (or vitcore.assets.download_stamps()) on a machine with internet "
    f"access to download {STAMPS_ARCHIVE} ({STAMPS_SIZE / 1e6:.0f} MB) once, or point VITCORE_STAMPS at a "
    "folder laid out like /usr/share/tuxpaint/stamps."
)


class StampsError(DataMissingError):
    """The Tux Paint stamps are not on this machine, or a download of them failed its checks."""


def _cache_root() -> Path:
    return cache_root() / "data"


def stamps_download_dir() -> Path:
    """Where :func:`download_stamps` unpacks by default: under ``$VITCORE_DATA`` if set, else the cache."""
    base = Path(os.environ["VITCORE_DATA"]) if os.environ.get("VITCORE_DATA") else _cache_root()
    return base / "tuxpaint-stamps"


def stamp_dirs() -> list[tuple[Path, bool]]:
    """The folders searched, in order, each with whether it must carry the completion mark."""
    dirs = []
    if os.environ.get("VITCORE_STAMPS"):
        dirs.append((Path(os.environ["VITCORE_STAMPS"]), False))
    if os.environ.get("VITCORE_DATA"):
        dirs.append((Path(os.environ["VITCORE_DATA"]) / "tuxpaint-stamps", True))
    dirs.append((DEBIAN_STAMP_DIR, False))
    dirs.append((_cache_root() / "tuxpaint-stamps", True))
    return dirs


def _usable(folder: Path, needs_mark: bool) -> bool:
    if not folder.is_dir():
        return False
    if needs_mark:
        return (folder / _COMPLETE).is_file()
    return any(p.is_dir() for p in folder.iterdir())


def find_stamps() -> Path | None:
    """The first folder of :func:`stamp_dirs` that holds stamps, or ``None``."""
    for folder, needs_mark in stamp_dirs():
        if _usable(folder, needs_mark):
            return folder
    return None


def _member_target(name: str) -> PurePosixPath | None:
    """``tuxpaint-stamps-2022.06.04/stamps/animals/frog.png`` -> ``animals/frog.png``; ``None``
    for what is not a kept stamp file, or a name that would leave the folder."""
    parts = PurePosixPath(name).parts
    if "stamps" not in parts or name.startswith("/") or ".." in parts:
        return None
    rest = parts[parts.index("stamps") + 1 :]
    if not rest or PurePosixPath(rest[-1]).suffix.lower() not in _KEEP:
        return None
    return PurePosixPath(*rest)


def _fetch(url: str, out: Path, size: int, timeout: float) -> str:
    """Stream ``url`` into ``out``; refuse more than ``size`` bytes; return the sha256."""
    digest, got = hashlib.sha256(), 0
    with urllib.request.urlopen(url, timeout=timeout) as resp, open(out, "wb") as f:
        while block := resp.read(1 << 20):
            got += len(block)
            if got > size:
                raise ValueError(f"the server sent more than the expected {size:,} bytes")
            digest.update(block)
            f.write(block)
    if got != size:
        raise ValueError(f"got {got:,} bytes, expected {size:,} (an interrupted download?)")
    return digest.hexdigest()


def _unpack(archive: Path, into: Path) -> int:
    """Unpack the kept stamp files of ``archive`` into the new folder ``into``; return the count."""
    count = 0
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            target = _member_target(member.name)
            if target is None or not member.isfile():
                continue
            dest = into.joinpath(*target.parts)
            dest.parent.mkdir(parents=True, exist_ok=True)
            src = tar.extractfile(member)
            assert src is not None
            with src, open(dest, "wb") as f:
                shutil.copyfileobj(src, f)
            count += 1
    return count


def download_stamps(
    dest: str | Path | None = None,
    urls: Sequence[str] = STAMPS_URLS,
    size: int = STAMPS_SIZE,
    sha256: str = STAMPS_SHA256,
    timeout: float = 60.0,
    quiet: bool = False,
) -> Path:
    """Download the stamps release once, check it, unpack it into ``dest`` and return ``dest``.

    ``dest`` defaults to :func:`stamps_download_dir`. A complete folder already there is returned
    as it is. The archive is checked (exact size, then SHA-256) before anything is unpacked;
    unpacking goes into a temporary folder renamed into place at the end; the archive is deleted
    afterwards. An address that fails or serves other bytes is skipped; when none works,
    :class:`StampsError` names every failure, and nothing is left behind.
    """
    dest = Path(dest) if dest is not None else stamps_download_dir()
    if _usable(dest, True):
        return dest
    if dest.exists() and any(dest.iterdir()):
        raise StampsError(f"{dest} exists but is not a complete stamps download; delete it and try again")
    dest.parent.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    for url in urls:
        if not quiet:
            print(f"[vitcore] downloading {url} ({size / 1e6:.0f} MB) ...", file=sys.stderr, flush=True)
        fd, part_name = tempfile.mkstemp(dir=dest.parent, prefix=".stamps-", suffix=".tar.gz.part")
        os.close(fd)
        part = Path(part_name)
        work = Path(tempfile.mkdtemp(dir=dest.parent, prefix=".stamps-unpacking-"))
        try:
            got = _fetch(url, part, size, timeout)
            if got != sha256:
                raise ValueError(f"sha256 {got}, expected {sha256}: not the release archive")
            n = _unpack(part, work)
            if n == 0:
                raise ValueError("the archive holds no stamps/ pictures")
            (work / _COMPLETE).write_text(f"{sha256}  {STAMPS_ARCHIVE}  {n} files\n")
            if dest.exists():
                dest.rmdir()  # empty (checked above)
            work.replace(dest)
            if not quiet:
                print(f"[vitcore] {n} stamp files unpacked into {dest}", file=sys.stderr, flush=True)
            return dest
        except (urllib.error.URLError, OSError, ValueError, tarfile.TarError, EOFError) as err:
            errors.append(f"{url}: {err}")
        finally:
            part.unlink(missing_ok=True)
            shutil.rmtree(work, ignore_errors=True)
    raise StampsError("could not download the Tux Paint stamps; tried " + "; ".join(errors) + f". {_HOW_TO_GET}")


def fetch_missing(
    stamps_urls: Sequence[str] | None = None,
    fashion_mirrors: Sequence[str] | None = None,
    stamps_size: int = STAMPS_SIZE,
    stamps_sha256: str = STAMPS_SHA256,
) -> dict[str, Path]:
    """Make sure Fashion-MNIST and the stamps are on this machine: download what is missing.

    Returns where each was found or put. Used by ``python -m vitcore.assets fetch``.
    """
    from .data import fashion_mnist as data

    found: dict[str, Path] = {}
    fm = data.find_fashion_mnist()
    if fm is None:
        target = Path(os.environ["VITCORE_DATA"]) if os.environ.get("VITCORE_DATA") else data._cache_dir()
        print(f"[vitcore] Fashion-MNIST not found; downloading it into {target}", file=sys.stderr, flush=True)
        fm = data.download_fashion_mnist(target, fashion_mirrors or data.MIRRORS)
        for name in data.FILES:  # verify what arrived, as every load does
            data._read_idx(fm / name)
    found["fashion-mnist"] = fm
    st = find_stamps()
    if st is None:
        st = download_stamps(urls=stamps_urls or STAMPS_URLS, size=stamps_size, sha256=stamps_sha256)
    found["tuxpaint-stamps"] = st
    return found


def _env_list(name: str) -> list[str] | None:
    value = os.environ.get(name, "").strip()
    return [v for v in value.split(",") if v] or None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vitcore.assets", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("where", help="say where Fashion-MNIST and the stamps are found (downloads nothing)")
    sub.add_parser("fetch", help="download whatever of the two is missing (network), verified")
    args = parser.parse_args(argv)
    from .data import fashion_mnist as data

    if args.cmd == "where":
        fm, st = data.find_fashion_mnist(), find_stamps()
        print(f"fashion-mnist: {fm or 'missing'}")
        print(f"tuxpaint-stamps: {st or 'missing'}")
        return 0 if fm and st else 1
    # Other addresses, for a local mirror (the tests' local server); the expected size and digest
    # of a stamps archive other than the release can be given too, and are then said aloud.
    size = int(os.environ.get("VITCORE_STAMPS_SIZE", STAMPS_SIZE))
    sha = os.environ.get("VITCORE_STAMPS_SHA256", STAMPS_SHA256)
    if (size, sha) != (STAMPS_SIZE, STAMPS_SHA256) and find_stamps() is None:
        print(
            f"[vitcore] note: expecting a stamps archive of {size} bytes, sha256 {sha} (not the release's)",
            file=sys.stderr,
        )
    try:
        found = fetch_missing(_env_list("VITCORE_STAMPS_URL"), _env_list("VITCORE_FASHION_MNIST_MIRROR"), size, sha)
    except (DataMissingError, ValueError) as err:  # ValueError: a file that arrived but is corrupt
        print(f"[vitcore] {err}", file=sys.stderr)
        return 1
    for what, where in found.items():
        print(f"{what}: {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
