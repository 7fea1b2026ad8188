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

import shutil
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

LANG = "zh_CN"
# Translated in the change that introduced the Chinese edition; the list may only grow.
TRANSLATED_AT_LEAST = {
    "book/intro", "book/how_to_use", "book/notation", "book/glossary_zh", "book/multi_gpu",
    "book/api", "book/bibliography", "notebooks/01_patches", "notebooks/03_attention",
    "notebooks/07_attention_maps", "notebooks/09_clip", "notebooks/14_efficiency",
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


def test_every_message_of_a_translated_document_is_translated(pots):
    listed = bilingual.translated_docs(LANG)
    assert set(listed) <= set(pots), f"not in the book: {sorted(set(listed) - set(pots))}"
    problems = po.check(pots, LANG, listed)
    hint = ("\nRun `python locales/po.py update`, translate the empty and fuzzy entries of "
            "locales/zh_CN/LC_MESSAGES/<doc>.po (and drop their fuzzy flags).")
    assert not problems, f"{len(problems)} problem(s):\n" + "\n".join(map(str, problems[:40])) + hint


def test_no_catalogue_is_left_for_a_document_that_is_gone(pots):
    catalogues = sorted((LOCALES / LANG / "LC_MESSAGES").rglob("*.po"))
    stale = [p for p in catalogues
             if p.relative_to(LOCALES / LANG / "LC_MESSAGES").with_suffix("").as_posix() not in pots]
    assert not stale, stale


def _small_book(tmp: Path, doc: str = "book/how_to_use") -> Path:
    """A temporary copy of the book holding one document, its .po and the build machinery."""
    book = tmp / "book_copy"
    for rel in ["_config.yml", "book/references.bib", f"{doc}.md", "locales/bilingual.py",
                "locales/build_edition.py", f"locales/{LANG}/LC_MESSAGES/{doc}.po"]:
        (book / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / rel, book / rel)
    (book / "_toc.yml").write_text(f"format: jb-book\nroot: {doc}\n")
    (book / "locales" / LANG / "TRANSLATED").write_text(doc + "\n")
    return book


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
