"""Keep the translation catalogues in step with the English sources.

    python locales/po.py extract [POT_DIR]          messages of the current sources (.pot files)
    python locales/po.py update  [--lang zh_CN] [--all] [DOCNAME ...]
                                                     merge new/changed messages into the .po files
    python locales/po.py check   [--lang zh_CN]     every message of every TRANSLATED document
                                                     present, translated and not fuzzy

`update` does what `sphinx-intl update -p POT_DIR -l zh_CN -d locales` does (Babel's catalogue
merge: new messages added empty, changed ones matched to their old translation and marked fuzzy,
vanished ones kept as obsolete), for the documents listed in locales/<lang>/TRANSLATED (or the
given ones, or --all). A translator then fills the empty and fuzzy entries (and removes the fuzzy
flag). `check` is what tests/test_translations.py asserts.

Extraction runs `sphinx-build -b gettext` through Jupyter Book's configuration with notebook
execution off (locales/build_edition.py): only markdown is read, nothing is executed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po, write_po

LOCALES = Path(__file__).resolve().parent
ROOT = LOCALES.parent
DEFAULT_LANG = "zh_CN"

sys.path.insert(0, str(LOCALES))
from bilingual import translated_docs  # noqa: E402


def extract(pot_dir: Path, root: Path = ROOT, quiet: bool = True) -> dict[str, Path]:
    """Run the gettext builder (execution off) into pot_dir; return {docname: .pot path}."""
    cmd = [sys.executable, str(root / "locales" / "build_edition.py"), "gettext", str(pot_dir), "-E"]
    if quiet:  # extraction reads notebooks unexecuted: its glue warnings say nothing
        cmd.append("-Q")
    env = dict(os.environ, PYTHONHASHSEED="0")
    subprocess.run(cmd, cwd=root, env=env, check=True)
    return pot_files(pot_dir)


def pot_files(pot_dir: Path) -> dict[str, Path]:
    """{docname: path} of the .pot files under pot_dir (Sphinx's own 'sphinx.pot' left out)."""
    out = {}
    for path in sorted(pot_dir.rglob("*.pot")):
        doc = path.relative_to(pot_dir).with_suffix("").as_posix()
        if doc != "sphinx":  # messages of the HTML templates, translated by Sphinx and the theme
            out[doc] = path
    return out


def po_path(lang: str, docname: str, locales: Path = LOCALES) -> Path:
    return locales / lang / "LC_MESSAGES" / f"{docname}.po"


def read_catalog(path: Path, lang: str | None = None) -> Catalog:
    with open(path, "rb") as f:
        return read_po(f, locale=lang)


def write_catalog(catalog: Catalog, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    for message in catalog:  # no "#: file:line" comments: they name the machine's checkout path
        message.locations = []
    with open(path, "wb") as f:
        write_po(f, catalog, width=0, omit_header=False, sort_output=False)


def update(pots: dict[str, Path], lang: str, docs: list[str], locales: Path = LOCALES) -> list[Path]:
    """Merge each document's .pot into its .po (created if missing), as sphinx-intl update does."""
    written = []
    for doc in docs:
        if doc not in pots:
            raise SystemExit(f"no messages extracted for {doc!r} (is it in _toc.yml?)")
        template = read_catalog(pots[doc])
        target = po_path(lang, doc, locales)
        if target.exists():
            catalog = read_catalog(target, lang)
            catalog.update(template)
        else:
            catalog = Catalog(locale=lang, domain=doc, project="Vision Transformers, Built Up",
                              fuzzy=False)
            catalog.update(template)
        write_catalog(catalog, target)
        written.append(target)
    return written


@dataclass
class Problem:
    doc: str
    kind: str  # "missing .po", "missing", "untranslated", "fuzzy"
    msgid: str

    def __str__(self) -> str:
        text = self.msgid if len(self.msgid) < 100 else self.msgid[:97] + "..."
        return f"{self.doc}: {self.kind}: {text!r}"


def check(pots: dict[str, Path], lang: str, docs: list[str], locales: Path = LOCALES) -> list[Problem]:
    """Every message of every listed document must be in its .po, translated and not fuzzy."""
    problems: list[Problem] = []
    for doc in docs:
        if doc not in pots:
            problems.append(Problem(doc, "no such document in the book", ""))
            continue
        target = po_path(lang, doc, locales)
        if not target.exists():
            problems.append(Problem(doc, "missing .po", str(target)))
            continue
        catalog = read_catalog(target, lang)
        for msg in read_catalog(pots[doc]):
            if not msg.id:
                continue  # the header
            have = catalog.get(msg.id, context=msg.context)
            if have is None:
                problems.append(Problem(doc, "missing", str(msg.id)))
            elif not (have.string if isinstance(have.string, str) else all(have.string)):
                problems.append(Problem(doc, "untranslated", str(msg.id)))
            elif have.fuzzy:
                problems.append(Problem(doc, "fuzzy", str(msg.id)))
    return problems


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("extract")
    e.add_argument("pot_dir", nargs="?", type=Path, default=ROOT / "_build" / "gettext")
    for name in ("update", "check"):
        s = sub.add_parser(name)
        s.add_argument("--lang", default=DEFAULT_LANG)
        s.add_argument("--pot-dir", type=Path, default=None,
                       help="use these .pot files instead of extracting afresh")
        if name == "update":
            s.add_argument("--all", action="store_true", help="every document, listed or not")
            s.add_argument("docs", nargs="*")
    a = p.parse_args(argv)

    if a.cmd == "extract":
        pots = extract(a.pot_dir.resolve())
        print(f"{len(pots)} catalogues in {a.pot_dir}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        pots = pot_files(a.pot_dir) if a.pot_dir else extract(Path(tmp) / "gettext")
        if a.cmd == "update":
            docs = sorted(pots) if a.all else (a.docs or translated_docs(a.lang))
            for path in update(pots, a.lang, docs):
                print(f"updated {path.relative_to(ROOT)}")
            return 0
        problems = check(pots, a.lang, translated_docs(a.lang))
        for prob in problems:
            print(prob)
        print(f"{len(problems)} problem(s) in {len(translated_docs(a.lang))} translated documents")
        return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
