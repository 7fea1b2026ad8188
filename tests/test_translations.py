"""The Chinese edition is never stale (issue 18).

The messages of the current sources are extracted afresh (``sphinx-build -b gettext`` through
Jupyter Book's configuration, notebook execution off) and every message of every document listed
in locales/zh_CN/TRANSLATED must be in that document's .po file, translated and not fuzzy. So a
changed English paragraph of a translated document fails this test until it is translated again:

    python locales/po.py update      # merge the new messages into the .po files (fuzzy / empty)
    # translate the new and fuzzy entries, remove their fuzzy flag, then
    python locales/po.py check       # what this test asserts

A document not (yet) listed renders in English inside the Chinese edition under a note saying so;
the list only grows.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from docutils import nodes

ROOT = Path(__file__).resolve().parent.parent
LOCALES = ROOT / "locales"
sys.path.insert(0, str(LOCALES))
import bilingual  # noqa: E402
import po  # noqa: E402
from babel.messages.catalog import Catalog  # noqa: E402

LANG = "zh_CN"
# Every document of the book is translated (since 2026-12-06); the list may only grow.
TRANSLATED_AT_LEAST = {
    "book/intro",
    "book/how_to_use",
    "book/notation",
    "book/glossary_zh",
    "book/multi_gpu",
    "book/api",
    "book/bibliography",
    *(
        f"notebooks/{n}"
        for n in (
            "01_patches",
            "02_embeddings",
            "03_attention",
            "04_vit",
            "05_training",
            "06_deit",
            "07_attention_maps",
            "08_adaptation",
            "09_clip",
            "10_mae",
            "11_dino",
            "12_vlm",
            "13_grounding",
            "14_efficiency",
            "15_dense_swin",
        )
    ),
}
EXTRACTION_BUDGET_S = 300  # about 40 s on an idle 2-core machine; a loaded one is slower


@pytest.fixture(scope="module")
def pots(tmp_path_factory) -> dict[str, Path]:
    start = time.perf_counter()
    found = po.extract(tmp_path_factory.mktemp("gettext") / "gettext")
    elapsed = time.perf_counter() - start
    print(f"\n[translations] extracted {len(found)} catalogues in {elapsed:.1f} s")
    assert elapsed < EXTRACTION_BUDGET_S, "message extraction must not execute notebooks"
    return found


def test_the_list_of_translated_documents_only_grows():
    listed = bilingual.translated_docs(LANG)
    assert len(listed) == len(set(listed)), "a document is listed twice in TRANSLATED"
    assert TRANSLATED_AT_LEAST <= set(listed), sorted(TRANSLATED_AT_LEAST - set(listed))


@pytest.mark.slow
def test_every_message_of_a_translated_document_is_translated(pots):
    listed = bilingual.translated_docs(LANG)
    assert set(listed) <= set(pots), f"not in the book: {sorted(set(listed) - set(pots))}"
    problems = po.check(pots, LANG, listed)
    hint = (
        "\nRun `python locales/po.py update`, translate the empty and fuzzy entries of "
        "locales/zh_CN/LC_MESSAGES/<doc>.po (and drop their fuzzy flags)."
    )
    assert not problems, f"{len(problems)} problem(s):\n" + "\n".join(map(str, problems[:40])) + hint


@pytest.mark.slow
def test_no_catalogue_is_left_for_a_document_that_is_gone(pots):
    catalogues = sorted((LOCALES / LANG / "LC_MESSAGES").rglob("*.po"))
    stale = [
        p for p in catalogues if p.relative_to(LOCALES / LANG / "LC_MESSAGES").with_suffix("").as_posix() not in pots
    ]
    assert not stale, stale


def _small_book(tmp: Path, doc: str = "book/how_to_use") -> Path:
    """A temporary copy of the book holding one document, its .po and the build machinery."""
    book = tmp / "book_copy"
    for rel in [
        "_config.yml",
        "book/references.bib",
        f"{doc}.md",
        "locales/bilingual.py",
        "locales/build_edition.py",
        f"locales/{LANG}/LC_MESSAGES/{doc}.po",
    ]:
        (book / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / rel, book / rel)
    (book / "_toc.yml").write_text(f"format: jb-book\nroot: {doc}\n")
    (book / "locales" / LANG / "TRANSLATED").write_text(doc + "\n")
    return book


@pytest.mark.slow
def test_the_check_fails_when_an_english_paragraph_is_added(tmp_path):
    doc = "book/how_to_use"
    book = _small_book(tmp_path, doc)
    locales = book / "locales"
    runs = iter(range(10))

    def messages() -> dict[str, Path]:
        return po.extract(tmp_path / f"pot{next(runs)}", root=book)

    pots = messages()
    assert po.check(pots, LANG, [doc], locales) == []

    # Add a paragraph in English only, and edit a heading (the longest one, so that the edited
    # message still resembles the old one and the merge below can recognise it).
    source = book / f"{doc}.md"
    text = source.read_text(encoding="utf-8")
    headings = [m.id for m in po.read_catalog(pots[doc]) if m.id and f"## {m.id}\n" in text]
    heading = max(headings, key=len)
    added = "A new paragraph, written in English only."
    edited = heading + " (revised)"
    source.write_text(text.replace(f"## {heading}\n", f"## {edited}\n\n{added}\n"), encoding="utf-8")
    pots = messages()
    problems = {(p.kind, p.msgid) for p in po.check(pots, LANG, [doc], locales)}
    assert problems == {("missing", added), ("missing", edited)}

    # Merged as `sphinx-intl update` would: the new message empty, the edited one fuzzy (its old
    # translation kept as a suggestion). Both still fail until a translator has been there.
    po.update(pots, LANG, [doc], locales)
    problems = {(p.kind, p.msgid) for p in po.check(pots, LANG, [doc], locales)}
    assert problems == {("untranslated", added), ("fuzzy", edited)}
    catalog = po.read_catalog(po.po_path(LANG, doc, locales), LANG)
    catalog.get(added).string = "只用英文写成的一个新段落。"
    fuzzy = catalog.get(edited)
    fuzzy.flags.discard("fuzzy")
    po.write_catalog(catalog, po.po_path(LANG, doc, locales))
    assert po.check(pots, LANG, [doc], locales) == []


@pytest.mark.slow
def test_glued_numbers_show_in_translated_text(tmp_path):
    """A {glue:text} role in a translated paragraph shows the notebook's value, as in English."""
    book = tmp_path / "glue_book"
    for rel in [
        "_config.yml",
        "book/references.bib",
        "locales/bilingual.py",
        "locales/build_edition.py",
        "book/_templates/lang-switch.html",
    ]:
        (book / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / rel, book / rel)
    (book / "_toc.yml").write_text("format: jb-book\nroot: notebooks/g\n")
    record = "application/papermill.record/"  # how myst_nb.glue stores a value it does not display
    outputs = [
        {
            "output_type": "display_data",
            "data": {record + "text/plain": value},
            "metadata": {"scrapbook": {"mime_prefix": record, "name": key}},
        }
        for key, value in [("n", "42.0"), ("w", "'unseen 38%'")]
    ]
    notebook = {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
        "cells": [
            {
                "cell_type": "markdown",
                "id": "m",
                "metadata": {},
                "source": "# Glue\n\nThe answer is {glue:text}`n:.1f` and then {glue:text}`w`.",
            },
            {
                "cell_type": "code",
                "id": "c",
                "metadata": {},
                "execution_count": 1,
                "source": "glue('n', 42.0); glue('w', 'unseen 38%')",
                "outputs": outputs,
            },
        ],
    }
    (book / "notebooks").mkdir()
    (book / "notebooks" / "g.ipynb").write_text(json.dumps(notebook))
    catalog = Catalog(locale=LANG, domain="notebooks/g")
    catalog.add("Glue", "粘贴")
    catalog.add(
        "The answer is {glue:text}`n:.1f` and then {glue:text}`w`.",
        "答案是 {glue:text}`n:.1f`，然后是 {glue:text}`w`。",
    )
    po.write_catalog(catalog, po.po_path(LANG, "notebooks/g", book / "locales"))
    (book / "locales" / LANG / "TRANSLATED").write_text("notebooks/g\n")

    out = book / "_build" / "zh" / "html"
    run = subprocess.run(
        [
            sys.executable,
            str(book / "locales" / "build_edition.py"),
            "html",
            str(out),
            "--lang",
            LANG,
            "--execute",
            "off",
            "-q",
        ],
        cwd=book,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "glue data" not in run.stderr, run.stderr[-2000:]
    text = re.sub(r"<[^>]+>", "", (out / "notebooks" / "g.html").read_text(encoding="utf-8"))
    assert "答案是 42.0，然后是 unseen 38%。" in text


def test_a_chinese_page_links_to_the_english_one_and_back():
    assert bilingual.switch_link("notebooks/05_training", "en")["url"] == "../zh/notebooks/05_training.html"
    assert bilingual.switch_link("notebooks/05_training", "zh_CN")["url"] == "../../notebooks/05_training.html"
    assert bilingual.switch_link("genindex", "zh_CN")["url"] == "../genindex.html"
    assert bilingual.switch_link("genindex", None)["label"] == "中文"


def test_an_untranslated_chapter_gets_the_note_in_chinese():
    class App:
        class config:
            language = "zh_CN"

    def doctree(title: str) -> nodes.document:
        doc = nodes.document(None, None)
        section = nodes.section()
        section += nodes.title(text=title)
        section += nodes.paragraph(text="Body.")
        doc += section
        return doc

    untranslated = doctree("Not yet")
    bilingual.on_doctree_resolved(App, untranslated, "notebooks/not_a_listed_chapter")
    note = untranslated[0][1]
    assert "bilingual-untranslated" in note["classes"] and "尚未翻译" in note.astext()

    listed = doctree("Done")
    bilingual.on_doctree_resolved(App, listed, bilingual.translated_docs(LANG)[0])
    assert not list(listed.findall(nodes.admonition))
