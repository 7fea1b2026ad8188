"""Open every page of the built book in headless Chromium and check what a reader would see.

Fails on: a request that does not load (missing image, script, stylesheet), an image with no
pixels, an internal link to a missing page or anchor, math left as raw LaTeX, or a Python
traceback in a cell output. Saves screenshots of the landing page and one chapter, in both
editions.

The Chinese edition (_build/html/zh, .ci/build_zh.sh) is checked the same way, and also: every
page of each edition has the language switch link (and it resolves, like any link); a Chinese
page of a document listed in locales/zh_CN/TRANSLATED has no English paragraph left (prose outside
code, math, outputs, docstrings (lang="en") and citations with no Chinese character and three or more English
words), and one not listed carries the "not translated yet" note.

Run after the book is built:  .venv/bin/python tests/check_site.py [_build/html]

It drives the Chromium at /usr/bin/chromium (Debian/Ubuntu package chromium; ``VITCORE_CHROMIUM``
names another). Without it the check says SKIPPED: exit 0, except under ``CI=true``, where a skip
fails unless ``VITCORE_ALLOW_SKIP`` names ``browser`` (``tests/ci_skip.py``; the README says when).
"""

from __future__ import annotations

import os
import re
import sys
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser
from pathlib import Path
from typing import cast
from urllib.parse import unquote, urldefrag, urlparse

from ci_skip import skip
from playwright.sync_api import sync_playwright

CHROMIUM = os.environ.get("VITCORE_CHROMIUM", "/usr/bin/chromium")
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SKIP = {"genindex.html", "search.html", "index.html"}  # index.html is only a redirect
RAW_TEX = re.compile(r"\$\$|\\begin\{|\\frac|\\mathbf|\\mathbb|\\sqrt\{|\\\(|\\\[")
SCREENSHOTS = {
    "book/intro.html": "landing.png",
    "notebooks/01_patches.html": "chapter.png",
    "zh/book/intro.html": "landing_zh.png",
    "zh/notebooks/01_patches.html": "chapter_zh.png",
}
ZH = "zh"  # folder of the Chinese edition inside the English site
TRANSLATED = Path(__file__).resolve().parent.parent / "locales" / "zh_CN" / "TRANSLATED"
SWITCH = "a.bilingual-switch"
UNTRANSLATED_NOTE = ".bilingual-untranslated"
GENERATED = {"py-modindex"}  # index pages Sphinx writes itself: no document, no catalogue

# Text of the article after MathJax ran, leaving out code, rendered math and hidden helpers.
VISIBLE_TEXT_JS = """() => {
  const main = document.querySelector('article') || document.body;
  const clone = main.cloneNode(true);
  clone.querySelectorAll('pre, code, mjx-container, script, style, .highlight, .cell_input, .output')
       .forEach(e => e.remove());
  return clone.innerText;
}"""


# Prose units of the article (paragraphs, list items, headings, captions, table rows) that hold no
# Chinese character and at least three English words: an untranslated message on a Chinese page.
ENGLISH_UNITS_JS = r"""() => {
  const main = document.querySelector('article') || document.body;
  const skip = 'pre, code, mjx-container, script, style, .highlight, .cell_input, .cell_output, .output, '
             + '.toctree-wrapper, .prev-next-area, .bilingual-untranslated, dl.py, .citation-list, .citation, '
             + '.footnote, .footnote-list, [lang|="en"]';
  const han = /[\u3400-\u9fff\uf900-\ufaff]/;
  const units = Array.from(main.querySelectorAll('p, li, h1, h2, h3, h4, h5, h6, figcaption, caption, dt, tr'))
    .filter(e => !e.closest(skip) && (e.tagName === 'TR' || !e.closest('table')));
  const found = [];
  for (const e of units) {
    const c = e.cloneNode(true);
    c.querySelectorAll('pre, code, mjx-container, .math, script, style, a.headerlink').forEach(x => x.remove());
    const text = c.textContent.replace(/\s+/g, ' ').trim();
    if (!han.test(text) && (text.match(/[A-Za-z]{2,}/g) || []).length >= 3) found.push(text);
  }
  return found;
}"""


def translated_docs(path: Path = TRANSLATED) -> set[str] | None:
    """Docnames of the Chinese edition that must be fully translated (None: no such list)."""
    if not path.exists():
        return None
    lines = (line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines())
    return {line for line in lines if line}


def chinese_page_problems(page, rel: str, translated: set[str] | None) -> list[str]:
    """What a Chinese page must show: translated prose, or the note that it is not translated."""
    doc = rel[len(ZH) + 1 :].removesuffix(".html")
    if doc in GENERATED:
        return []
    has_note = page.query_selector(UNTRANSLATED_NOTE) is not None
    if translated is not None and doc in translated and has_note:
        return ["listed in TRANSLATED but shows the 'not translated yet' note"]
    if translated is not None and doc not in translated and not has_note:
        return ["not in TRANSLATED but has no 'not translated yet' note"]
    if has_note:
        return []
    return [f"untranslated paragraph: {t[:90]!r}" for t in page.evaluate(ENGLISH_UNITS_JS)]


def pages(root: Path) -> list[Path]:
    return sorted(
        p for p in root.rglob("*.html") if "_static" not in p.parts and "_sources" not in p.parts and p.name not in SKIP
    )


class _PageLinks(HTMLParser):
    """One pass over a page's HTML, no tree: its element ids and its links (href, classes)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.links: list[tuple[str, list[str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id") is not None:
            self.ids.add(cast(str, a["id"]))
        if tag == "a" and a.get("href") is not None:
            self.links.append((cast(str, a["href"]), (a.get("class") or "").split()))


def parse_page(path: Path, cache: dict[Path, _PageLinks]) -> _PageLinks:
    if path not in cache:
        parsed = _PageLinks()
        parsed.feed(path.read_text(encoding="utf-8"))
        parsed.close()
        cache[path] = parsed
    return cache[path]


def check_links(page: Path, root: Path, cache: dict[Path, _PageLinks]) -> list[str]:
    """Every local link of ``page`` leads to a file, and every #fragment to an id in it."""
    problems = []
    for href, classes in parse_page(page, cache).links:
        if urlparse(href).scheme in ("http", "https", "mailto", "javascript"):
            continue
        target, frag = urldefrag(href)
        dest = page if not target else (page.parent / unquote(target)).resolve()
        if not dest.exists():
            hint = (
                " (language switch: build the other edition, bash .ci/build_zh.sh)"
                if "bilingual-switch" in classes
                else ""
            )
            problems.append(f"broken link {href!r}{hint}")
        elif frag and dest.suffix == ".html" and frag not in parse_page(dest, cache).ids:
            problems.append(f"missing anchor {href!r}")
    return problems


def main(root: Path, translated: set[str] | None = None) -> int:
    root = root.resolve()
    all_pages = pages(root)
    bilingual = (root / ZH).is_dir()
    if translated is None:
        translated = translated_docs()
    if not all_pages:
        print(f"no pages under {root}; build the book first")
        return 1
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        return skip(
            "browser",
            f"the browser check needs Chromium at {CHROMIUM}, which this machine lacks "
            "(install the package chromium, e.g. sudo apt-get install chromium, and run again)",
        )
    shots = root.parent / "screenshots"
    shots.mkdir(exist_ok=True)
    failures: dict[str, list[str]] = {}
    # The links are checked from the HTML files in a second thread (each page parsed once) while
    # Chromium renders the pages; this thread mostly waits on Chromium.
    parsed: dict[Path, _PageLinks] = {}
    with ThreadPoolExecutor(max_workers=1) as links, sync_playwright() as pw:
        link_problems = {path: links.submit(check_links, path, root, parsed) for path in all_pages}
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        failed: list[str] = []
        page.on("requestfailed", lambda r: failed.append(r.url))
        for path in all_pages:
            rel = path.relative_to(root).as_posix()
            failed.clear()
            page.goto(path.as_uri(), wait_until="load")
            if page.evaluate("() => !!(window.MathJax && MathJax.startup)"):
                page.evaluate("() => MathJax.startup.promise")
            problems = [f"request failed: {u}" for u in failed if u.startswith("file:")]
            blank = page.evaluate(
                "() => Array.from(document.images).filter(i => i.complete && i.naturalWidth === 0).map(i => i.src)"
            )
            problems += [f"image did not load: {src}" for src in blank]
            text = page.evaluate(VISIBLE_TEXT_JS)
            problems += [
                f"raw LaTeX: ...{text[max(m.start() - 30, 0) : m.end() + 30]!r}..." for m in RAW_TEX.finditer(text)
            ]
            outputs = page.evaluate(
                "() => Array.from(document.querySelectorAll('.cell_output, .output')).map(e => e.innerText).join('\\n')"
            )
            if "Traceback (most recent call last)" in outputs or page.query_selector(".output.traceback"):
                problems.append("a cell output shows a Python traceback")
            problems += link_problems[path].result()
            if bilingual and page.query_selector(SWITCH) is None:
                problems.append("no link to this page in the other edition (language switch)")
            if rel.startswith(ZH + "/"):
                problems += chinese_page_problems(page, rel, translated)
            if rel in SCREENSHOTS:
                page.screenshot(path=str(shots / SCREENSHOTS[rel]))
            status = "ok" if not problems else f"{len(problems)} problem(s)"
            print(f"[site] {rel:45s} {status}")
            if problems:
                failures[rel] = problems
        browser.close()
    for rel, problems in failures.items():
        print(f"\n{rel}:")
        for p in problems[:20]:
            print("  -", p)
    n_zh = sum(p.relative_to(root).as_posix().startswith(ZH + "/") for p in all_pages)
    print(
        f"\n[site] {len(all_pages)} pages checked in Chromium ({n_zh} of the Chinese edition), "
        f"{len(failures)} with problems; screenshots in {shots}"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "_build/html")))
