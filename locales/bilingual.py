"""Sphinx extension: one source, two editions (English in _build/html, Chinese in _build/html/zh).

- Every page links to the same page in the other edition (``lang-switch.html`` in the article
  header; a ``<link rel="alternate" hreflang>`` in the head).
- In a translated edition, a document that is not listed in ``locales/<lang>/TRANSLATED`` renders
  in English with a note at its top saying so; the list is re-read on every build and a document
  whose status changed is rebuilt.
- The API reference's docstrings (autodoc) are code documentation: they are not offered for
  translation and stay in English (marked lang="en"), while the page's own prose and headings
  are translated.
- The part captions of the table of contents (_toc.yml) are translated from the root document's
  catalogue.
- ``{glue:text}`` numbers show in translated paragraphs too (see glue_in_translated_text).

Loaded by _config.yml (``sphinx.local_extensions``) for both editions; ``locales/build.py`` sets
the language for a translated edition.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from docutils import nodes
from sphinx import addnodes
from sphinx.application import Sphinx
from sphinx.locale import init as init_locale
from sphinx.transforms import SphinxTransform
from sphinx.util.i18n import docname_to_domain

LOCALES = Path(__file__).resolve().parent
ROOT = LOCALES.parent

# language -> (folder of its edition under the English site, its name in its own language)
EDITIONS = {"en": ("", "English"), "zh_CN": ("zh", "中文")}
UNTRANSLATED_NOTE = {
    "zh_CN": ("本章尚未翻译",
              "本章的中文译文还没有完成，以下暂时显示英文原文（代码和输出与英文版相同）。"
              "点击右上角的“English”可以切换到英文版的同一页。"),
}


def edition(lang: str | None) -> str:
    """The edition a Sphinx ``language`` value belongs to ("en" for English and unset)."""
    return lang if lang in EDITIONS else "en"


def translated_docs(lang: str) -> list[str]:
    """Docnames listed in locales/<lang>/TRANSLATED (one per line; '#' starts a comment)."""
    path = LOCALES / lang / "TRANSLATED"
    if not path.exists():
        return []
    names = (line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [n for n in names if n]


def switch_link(pagename: str, lang: str) -> dict[str, str]:
    """The relative URL of ``pagename`` in the other edition, seen from this edition's page."""
    here = edition(lang)
    other = "zh_CN" if here == "en" else "en"
    up = "../" * pagename.count("/")
    if here == "en":
        url = f"{up}{EDITIONS[other][0]}/{pagename}.html"
    else:
        url = f"{up}../{pagename}.html"
    title = "Read this page in Chinese" if here == "en" else "阅读本页的英文原版"
    return {"url": url, "label": EDITIONS[other][1], "hreflang": other.replace("_", "-"), "title": title}


class KeepDocstringsEnglish(SphinxTransform):
    """Mark autodoc's docstring text as not translatable (before Locale, priority 20) and as
    English (class ``language-en``, which the HTML writer turns into ``lang="en"``)."""

    default_priority = 15

    def apply(self, **kwargs: Any) -> None:
        for node in list(self.document.findall(nodes.TextElement)):
            if ":docstring of " in (node.source or ""):
                node["translatable"] = False
                # The paragraph, and the list items around it: a compact list drops its <p>.
                marked: nodes.Element | None = node
                while isinstance(marked, (nodes.TextElement, nodes.list_item, nodes.definition_list_item,
                                          nodes.definition, nodes.field_body, nodes.entry)):
                    if "language-en" not in marked["classes"]:
                        marked["classes"].append("language-en")
                    marked = marked.parent


class TranslateTocCaptions(SphinxTransform):
    """Translate the part captions of the table of contents ("Getting started", ...).

    sphinx-external-toc inserts the toctrees from _toc.yml (priority 100) after Sphinx's Locale
    transform (20) has run, so gettext extracts their captions into the root document's
    catalogue but nothing translates them; this does, before the toctrees are collected (880).
    """

    default_priority = 150

    def apply(self, **kwargs: Any) -> None:
        if edition(self.config.language) == "en":
            return
        toctrees = [n for n in self.document.findall(addnodes.toctree) if n.get("caption")]
        if not toctrees:
            return
        dirs = [str(Path(self.env.srcdir) / d) for d in self.config.locale_dirs]
        domain = docname_to_domain(self.env.docname, self.config.gettext_compact)
        catalog, found = init_locale(dirs, self.config.language, domain)
        if not found:
            return
        for node in toctrees:
            text = catalog.gettext(node["caption"])
            if text:
                node["caption"] = text


def glue_in_translated_text() -> None:
    """Let ``{glue:text}`` roles in a translated message find the notebook's glued values.

    Sphinx parses a translated message as a small document of its own, which myst-nb reads as
    plain MyST, without the notebook whose outputs ``{glue:text}`key``` reads ("No key 'x'
    found in glue data"). Those outputs are on disk by then: myst-nb writes every notebook's
    glue data to its output folder while reading the notebook, before translation. So when the
    lookup fails inside translated text, read the value from there. The English text is
    untouched, and a key that really is missing still fails (a warning, an error under -W).
    """
    try:
        from myst_nb.core.variables import RetrievalError, VariableOutput
        from myst_nb.ext.glue import roles
        from myst_nb.ext.glue.crossref import read_glue_cache
    except ImportError:  # a myst-nb without glue: nothing to do
        return
    original = roles.retrieve_glue_data
    if getattr(original, "bilingual", False):
        return

    def retrieve_glue_data(document: nodes.document, key: str) -> Any:
        try:
            return original(document, key)
        except RetrievalError:
            env = getattr(document.settings, "env", None)
            if env is None or not str(document.current_source or "").endswith("<translated>"):
                raise
            data = read_glue_cache(env.mystnb_config.output_folder, env.docname)
            if key not in data:
                raise
            return VariableOutput(data=data[key]["data"], metadata=data[key].get("metadata", {}),
                                  nb_renderer=None, vtype="glue")

    retrieve_glue_data.bilingual = True  # type: ignore[attr-defined]
    roles.retrieve_glue_data = retrieve_glue_data


def on_config(app: Sphinx, config: Any) -> None:
    templates = (ROOT / "book" / "_templates").as_posix()
    if templates not in config.templates_path:
        config.templates_path.append(templates)
    options = dict(config.html_theme_options or {})
    options.setdefault("article_header_end", ["lang-switch.html"])  # it includes the theme's buttons
    config.html_theme_options = options


def on_outdated(app: Sphinx, env: Any, added: set, changed: set, removed: set) -> list[str]:
    """Rebuild the documents that joined or left TRANSLATED since the last build."""
    current = set(translated_docs(edition(app.config.language)))
    previous = getattr(env, "bilingual_translated", None)
    env.bilingual_translated = current
    if previous is None:
        return []
    return sorted((previous ^ current) & set(env.found_docs))


def on_doctree_resolved(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    lang = edition(app.config.language)
    if lang == "en" or docname in translated_docs(lang):
        return
    title, text = UNTRANSLATED_NOTE[lang]
    note = nodes.admonition(classes=["attention", "bilingual-untranslated"])
    note += nodes.title(text=title)
    note += nodes.paragraph(text=text)
    section = next(iter(doctree.findall(nodes.section)), None)
    if section is not None and section.children and isinstance(section[0], nodes.title):
        section.insert(1, note)
    else:
        doctree.insert(0, note)


def on_page_context(app: Sphinx, pagename: str, templatename: str, context: dict, doctree: Any) -> None:
    link = switch_link(pagename, app.config.language)
    context["bilingual_switch"] = link
    context["metatags"] = (context.get("metatags") or "") + (
        f'\n<link rel="alternate" hreflang="{link["hreflang"]}" href="{link["url"]}" />')


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_transform(KeepDocstringsEnglish)
    app.add_transform(TranslateTocCaptions)
    glue_in_translated_text()
    app.connect("config-inited", on_config)
    app.connect("env-get-outdated", on_outdated)
    app.connect("doctree-resolved", on_doctree_resolved)
    app.connect("html-page-context", on_page_context)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True,
            "env_version": 1}
