"""The site checker must catch what a reader would notice."""

import importlib.util
from pathlib import Path

spec = importlib.util.spec_from_file_location("check_site", Path(__file__).with_name("check_site.py"))
check_site = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check_site)


def test_checker_flags_broken_pages_and_passes_clean_ones(tmp_path, capsys):
    site = tmp_path / "html"
    (site / "ch").mkdir(parents=True)
    (site / "ch" / "good.html").write_text('<html><body><article id="top"><p>Fine text.</p>'
                                           '<a href="good.html#top">self</a></article></body></html>')
    assert check_site.main(site) == 0
    (site / "ch" / "bad.html").write_text(
        '<html><body><article><p>Raw $$ \\frac{a}{b} $$</p><img src="missing.png">'
        '<a href="nope.html">x</a><a href="good.html#nowhere">y</a>'
        '<div class="cell_output"><pre>Traceback (most recent call last):\nValueError</pre></div>'
        "</article></body></html>")
    assert check_site.main(site) == 1
    out = capsys.readouterr().out
    for expected in ["image did not load", "raw LaTeX", "Python traceback", "broken link 'nope.html'",
                     "missing anchor 'good.html#nowhere'"]:
        assert expected in out
