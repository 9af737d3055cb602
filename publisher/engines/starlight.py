"""Starlight: an Astro site whose astro.config uses @astrojs/starlight. Its pages are docs,
not posts, unless the starlight-blog plugin publishes src/content/docs/blog/ as a blog."""

from __future__ import annotations

import re
from pathlib import Path

from .astro import MARKERS, site_url
from .base import Detected, first_file, js_object, js_string, js_top_level, read_text, strip_js_comments

NAME = "starlight"
LABEL = "Starlight"


def _language(d: Detected, marker: Path, block: str) -> None:
    """The default locale's language. Starlight's `root` locale (served at /) is no language
    code: its `lang` is."""
    locales = js_object(block, r"\blocales\s*:")
    default = js_string(js_top_level(block), "defaultLocale") or ("root" if locales and
                                                                  re.search(r"\broot\s*:", locales) else None)
    if locales and default:
        own = js_object(locales, r"(?<![\w$])[\"']?" + re.escape(default) + r"[\"']?\s*:")
        lang = js_string(own, "lang") if own is not None else None
        if lang:
            d.found("site.language", lang, f"{marker.name}: starlight locales.{default}.lang")
            return
    if default and default != "root":
        d.found("site.language", default, f"{marker.name}: starlight defaultLocale")


def _starlight(folder: Path, marker: Path) -> Detected:
    d = Detected(NAME, marker.name)
    config = strip_js_comments(read_text(marker))
    site_url(d, folder, marker, config)
    block = js_object(config, r"\bstarlight\s*\(") or ""
    _language(d, marker, block)
    blog = js_object(config, r"\bstarlightBlog\s*\(")
    title = js_string(js_top_level(blog), "title") if blog is not None else None
    if title is None and blog is not None:  # title: { en: '...', fr: '...' }: the default's
        titles = js_object(blog, r"\btitle\s*:")
        lang = d.value("site.language", "en")
        title = (js_string(titles, lang) or next(iter(re.findall(r""":\s*["']([^"']+)["']""", titles)), None)
                 if titles else None)
    if title:
        d.found("site.title", title, f"{marker.name}: starlightBlog title")
    elif js_string(js_top_level(block), "title"):
        d.found("site.title", js_string(js_top_level(block), "title"), f"{marker.name}: starlight title")
    docs = folder / "src" / "content" / "docs"
    if blog is not None:
        posts = docs / "blog"
        d.found("content.dir", "src/content/docs/blog", f"{marker.name}: starlight-blog publishes "
                "src/content/docs/blog/")
        d.found("content.permalink", "/blog/{slug}/", "starlight-blog's URLs: /blog/ and the post's id")
        others = sorted(p.parent.name for p in docs.glob("*/blog") if p.is_dir() and p != posts)
        if others:
            d.notes.append(f"posts in other languages ({', '.join(others)}) are in src/content/docs/<lang>/blog/: "
                           "to include them, set content.dir: src/content/docs and content.permalink: /{slug}/ "
                           "(the docs' other pages have no dates and are skipped)")
    else:
        d.guess("content.dir", "src/content/docs", "Starlight's docs collection: its pages are docs, "
                "not posts (no starlight-blog plugin); point content.dir at your posts")
        d.guess("content.permalink", "/{slug}/", "Starlight's URLs: the page's id")
    d.guess("feeds.output_dir", "public", "Astro copies public/ to the site's root")
    return d


def detect(folder: Path) -> Detected | None:
    marker = first_file(folder, *MARKERS)
    if marker and "@astrojs/starlight" in read_text(marker):
        return _starlight(folder, marker)
    return None
