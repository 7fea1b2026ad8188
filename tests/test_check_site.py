"""The site checker must catch what a reader would notice."""

import importlib.util
from pathlib import Path

import pytest

spec = importlib.util.spec_from_file_location("check_site", Path(__file__).with_name("check_site.py"))
assert spec is not None and spec.loader is not None  # a .py file has both
check_site = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check_site)
needs_chromium = pytest.mark.skipif(
    not Path(check_site.CHROMIUM).is_file(), reason=f"needs Chromium at {check_site.CHROMIUM} (.ci/test says so)"
)


@pytest.mark.slow
@needs_chromium
def test_checker_flags_broken_pages_and_passes_clean_ones(tmp_path, capsys):
    site = tmp_path / "html"
    (site / "ch").mkdir(parents=True)
    (site / "ch" / "good.html").write_text(
        '<html><body><article id="top"><p>Fine text.</p><a href="good.html#top">self</a></article></body></html>'
    )
    assert check_site.main(site) == 0
    (site / "ch" / "bad.html").write_text(
        '<html><body><article><p>Raw $$ \\frac{a}{b} $$</p><img src="missing.png">'
        '<a href="nope.html">x</a><a href="good.html#nowhere">y</a>'
        '<div class="cell_output"><pre>Traceback (most recent call last):\nValueError</pre></div>'
        "</article></body></html>"
    )
    assert check_site.main(site) == 1
    out = capsys.readouterr().out
    for expected in [
        "image did not load",
        "raw LaTeX",
        "Python traceback",
        "broken link 'nope.html'",
        "missing anchor 'good.html#nowhere'",
    ]:
        assert expected in out


def _page(body: str, switch: str | None) -> str:
    link = f'<a class="btn bilingual-switch" href="{switch}">x</a>' if switch else ""
    return f'<html><body>{link}<article id="top">{body}</article></body></html>'


@pytest.mark.slow
@needs_chromium
def test_checker_covers_the_chinese_edition(tmp_path, capsys):
    site = tmp_path / "html"
    (site / "ch").mkdir(parents=True)
    (site / "zh" / "ch").mkdir(parents=True)
    en, zh = site / "ch" / "a.html", site / "zh" / "ch" / "a.html"
    en.write_text(_page("<h1>A chapter</h1><p>Plain English text here.</p>", "../zh/ch/a.html"))
    zh.write_text(
        _page(
            "<h1>一章</h1><p>中文的段落，含 $x$ 之外的 English words 也可以。</p>"
            "<table><tr><td>learning rate, warmup</td><td>学习率、预热</td></tr></table>"
            "<pre>print('code stays English')</pre>"
            '<p class="language-en" lang="en">A docstring stays in English on purpose.</p>',
            "../../ch/a.html",
        ),
        encoding="utf-8",
    )
    assert check_site.main(site, translated={"ch/a"}) == 0

    # A Chinese page of a translated document with an English paragraph left in it.
    zh.write_text(
        _page("<h1>一章</h1><p>This paragraph was never translated at all.</p>", "../../ch/a.html"), encoding="utf-8"
    )
    assert check_site.main(site, translated={"ch/a"}) == 1
    assert "untranslated paragraph: 'This paragraph was never translated at all.'" in capsys.readouterr().out

    # Not listed as translated: English is fine, but only under the note that says so.
    assert check_site.main(site, translated=set()) == 1
    assert "has no 'not translated yet' note" in capsys.readouterr().out
    zh.write_text(
        _page(
            '<div class="admonition bilingual-untranslated"><p>本章尚未翻译</p></div>'
            "<p>This paragraph was never translated at all.</p>",
            "../../ch/a.html",
        ),
        encoding="utf-8",
    )
    assert check_site.main(site, translated=set()) == 0

    # Every page of each edition links to the other one, and the link must resolve.
    en.write_text(_page("<p>No switch here.</p>", None))
    zh.write_text(
        _page('<div class="admonition bilingual-untranslated"><p>本章尚未翻译</p></div>', "../../ch/missing.html"),
        encoding="utf-8",
    )
    assert check_site.main(site, translated=set()) == 1
    out = capsys.readouterr().out
    assert "no link to this page in the other edition" in out
    assert "broken link '../../ch/missing.html' (language switch" in out
