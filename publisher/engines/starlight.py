"""Starlight: an Astro site whose astro.config uses @astrojs/starlight. Its pages are docs,
not posts, unless the starlight-blog plugin publishes src/content/docs/blog/ as a blog."""

from __future__ import annotations

import re
from pathlib import Path

from ..content.frontmatter import read_text as field_text
from .astro import MARKERS, Astro, site_url
from .base import Detected, first_file, js_object, js_string, js_top_level, read_text, strip_js_comments
from .rules import Fields, Source, Syntax

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


def _blog_posts(d: Detected, marker: Path, docs: Path) -> None:
    """starlight-blog's posts: docs/blog/ at /blog/<id>/; with posts in other languages too
    (docs/<lang>/blog/, at /<lang>/blog/<id>/), the whole docs collection at /<id>/ with every
    other page excluded (docs pages have no dates: they would be skipped, each with a warning)."""
    others = sorted(p.parent.name for p in docs.glob("*/blog") if p.is_dir() and p.parent != docs)
    if not others:
        d.found("content.dir", "src/content/docs/blog", f"{marker.name}: starlight-blog publishes "
                "src/content/docs/blog/")
        d.found("content.permalink", "/blog/{slug}/", "starlight-blog's URLs: /blog/ and the post's id")
        return
    # A pattern without '/' matches that file name anywhere (content.exclude): a docs page
    # named as some post's file (index.mdx) is left in, to be skipped with a warning.
    in_blogs = {p.name for b in [docs / "blog", *(docs / o / "blog" for o in others)] for p in b.rglob("*")}
    exclude = [p.name for p in sorted(docs.iterdir())
               if not p.name.startswith(".") and p.name != "blog" and p.name not in others
               and not (p.is_file() and p.name in in_blogs)]
    for lang in others:
        exclude += [f"{lang}/{p.name}" for p in sorted((docs / lang).iterdir())
                    if not p.name.startswith(".") and p.name != "blog"]
    where = f"{marker.name}: starlight-blog publishes blog/ and {', '.join(o + '/blog/' for o in others)}"
    d.found("content.dir", "src/content/docs", where)
    d.found("content.permalink", "/{slug}/", "Starlight's URLs: the page's id (blog/..., <lang>/blog/...)")
    if exclude:
        d.found("content.exclude", exclude, "the docs pages besides the blog's")


def _starlight(folder: Path, marker: Path) -> Detected:
    d = Detected(NAME, marker.name)
    config = strip_js_comments(read_text(marker))
    site_url(d, folder, marker, config)
    block = js_object(config, r"\bstarlight\s*\(") or ""
    _language(d, marker, block)
    blog = js_object(config, r"\bstarlightBlog\s*\(")
    if blog is None and re.search(r"\bstarlightBlog\s*\(\s*\)", config):
        blog = ""  # the plugin with no options (as its docs write it)
    title = js_string(js_top_level(blog), "title") if blog else None
    if title is None and blog:  # title: { en: '...', fr: '...' }: the default's
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
        _blog_posts(d, marker, docs)
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


# --- the engine's posts: what its files and front matter mean -------------------------

# Starlight's asides (`:::note[Title]`), with their default titles.
ASIDES = (("note", "Note", "note"), ("tip", "Tip", "tip"), ("caution", "Caution", "caution"),
          ("danger", "Danger", "danger"))


class Starlight(Astro):
    """Astro's docs theme: Astro's ids; its asides (`:::note[Title]`) are resolved (syntax.py).
    A page is published at /<id>/, its id the path under src/content/docs: a front matter
    `slug` is that whole id (`slug: blog/x` is /blog/x/ whatever folder the post is in, as
    starlight-blog links it), not a name under content.dir."""

    name = "starlight"
    syntax = Syntax(admonitions=ASIDES, js_yaml=True)  # Astro's front matter: js-yaml
    # starlight-blog's schema dates a post by `date` alone (an Astro-blog `pubDate` left in a
    # migrated post's front matter is not read)
    date_keys = ("date",)

    def explicit_path(self, meta: dict, src: Source, fields: Fields) -> str | None:
        explicit = field_text(meta.get("slug"), "slug").strip("/")
        if explicit:
            return f"/{explicit}/"
        return super().explicit_path(meta, src, fields)


RULES = Starlight()
