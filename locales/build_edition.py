"""Build the book with Sphinx's translation machinery, through Jupyter Book's own configuration.

    python locales/build_edition.py gettext OUT              extract every message (no notebook runs)
    python locales/build_edition.py html OUT --lang zh_CN    build an edition; notebooks come from the cache

The configuration is the one `jupyter-book build .` uses (_config.yml with its locale_dirs and one
catalogue per document, _toc.yml), with overrides: the language of a translated edition, the
execution mode and the jupyter-cache shared with the English build (_build/.jupyter_cache).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Values that differ in a translated edition (the rest comes from _config.yml).
EDITIONS = {
    "zh_CN": {"html_title": "从零搭建视觉Transformer",
              "html_theme_options": {"search_bar_text": "搜索本书……"},
              # myst-nb's toggle of a hidden cell ("Show code cell content"), not a message
              "nb_code_prompt_show": "显示代码单元", "nb_code_prompt_hide": "隐藏代码单元"},
}


def overrides(builder: str, lang: str | None, execute: str, cache: Path, nitpicky: bool) -> dict:
    conf: dict = {
        "external_toc_path": (ROOT / "_toc.yml").as_posix(),
        "latex_individualpages": False,
        "nb_execution_mode": execute,
        "nb_execution_cache_path": cache.as_posix(),
    }
    if nitpicky:
        conf["nitpicky"] = True
    if lang:
        conf["language"] = lang
        conf.update(EDITIONS.get(lang, {}))
    return conf


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("builder", choices=["gettext", "html"])
    p.add_argument("out", type=Path, help="output folder (doctrees go beside it, in OUT.doctrees)")
    p.add_argument("--lang", default=None, help="edition language, e.g. zh_CN (default: English)")
    p.add_argument("--execute", default=None, choices=["off", "cache", "force", "auto"],
                   help="notebook execution (default: off for gettext, cache for html)")
    p.add_argument("--cache", type=Path, default=ROOT / "_build" / ".jupyter_cache",
                   help="jupyter-cache shared with the English build")
    p.add_argument("-W", action="store_true", help="warnings are errors (with --keep-going)")
    p.add_argument("-n", action="store_true", help="nitpicky")
    p.add_argument("-E", action="store_true", help="fresh environment: read every document again")
    p.add_argument("-q", action="store_true", help="no status output")
    p.add_argument("-Q", action="store_true", help="no status output and no warnings")
    a = p.parse_args(argv)
    execute = a.execute or ("off" if a.builder == "gettext" else "cache")

    from jupyter_book.sphinx import build_sphinx

    out = a.out.resolve()
    result = build_sphinx(
        ROOT, out, use_external_toc=True, noconfig=True, path_config=ROOT / "_config.yml",
        confoverrides=overrides(a.builder, a.lang, execute, a.cache.resolve(), a.n),
        doctreedir=out.with_name(out.name + ".doctrees"), builder=a.builder,
        warningiserror=a.W, keep_going=a.W, freshenv=a.E, quiet=a.q or a.Q, really_quiet=a.Q)
    return result if isinstance(result, int) else 1


if __name__ == "__main__":
    sys.exit(main())
