"""Astro: astro.config.* names it; site/base, the content collection's glob base, the post route."""

from __future__ import annotations

import re
from pathlib import Path

from .base import (
    Detected, first_file, js_string, POST_FOLDERS, posts_folder, read_text, rel,
    strip_js_comments,
)

NAME = "astro"
LABEL = "Astro"


def _astro(folder: Path, marker: Path) -> Detected:
    d = Detected("astro", marker.name)
    config = strip_js_comments(read_text(marker))
    site = js_string(config, "site")
    base = (js_string(config, "base") or "").strip("/")
    if site and base:  # a site deployed to a sub-folder: every URL starts with base
        d.found("site.url", site.rstrip("/") + "/" + base, f"{marker.name}: site + base")
    elif site:
        d.found("site.url", site, f"{marker.name}: site")
    lang = js_string(config, "defaultLocale")
    if lang:
        d.found("site.language", lang, f"{marker.name}: i18n.defaultLocale")
    consts = first_file(folder / "src", "consts.ts", "consts.js", "config.ts", "site.config.ts")
    if consts:
        source = read_text(consts)
        for key, names in (("site.title", ("SITE_TITLE", "title")),
                           ("site.description", ("SITE_DESCRIPTION", "description"))):
            for name in names:
                value = js_string(source, name)
                if value:
                    d.found(key, value, f"{rel(consts, folder)}: {name}")
                    break
    if "site.language" not in d.facts:
        for layout in sorted((folder / "src").glob("**/*.astro")):
            m = re.search(r"<html[^>]*\blang=[\"']([A-Za-z-]+)[\"']", read_text(layout))
            if m:
                d.found("site.language", m.group(1), f"{rel(layout, folder)}: <html lang>")
                break
    # The posts folder: the base of a glob() loader in the content config, else src/content/blog.
    collections = first_file(folder / "src", "content.config.ts", "content.config.mjs",
                         "content.config.js", "content/config.ts", "content/config.mjs",
                         "content/config.js")
    bases: list[str] = []
    if collections:
        source = strip_js_comments(read_text(collections))
        for m in re.finditer(r"glob\s*\(\s*\{(.*?)\}\s*\)", source, flags=re.S):
            base = js_string(m.group(1), "base")
            if base is None:  # base: `./${BLOG_PATH}` with BLOG_PATH a constant in this file
                ref = re.search(r"base\s*:\s*`\.?/?\$\{(\w+)\}`", m.group(1))
                base = js_string(source, ref.group(1)) if ref else None
            if base:
                bases.append(base)
    # Several collections: the one whose folder is named like a blog's, else the first.
    chosen = next((b for b in bases if any(n in b for n in POST_FOLDERS)), bases[0] if bases else None)
    if chosen and (folder / chosen).is_dir():
        d.found("content.dir", rel(folder / chosen, folder), f"{rel(collections, folder)}: glob base")
    else:
        posts = posts_folder(folder / "src" / "content", folder)
        if posts:
            d.guess("content.dir", rel(posts, folder), "the content collection that looks like the blog")
    # The URL: the folder of the dynamic route that renders a post.
    routes = sorted(p for p in (folder / "src" / "pages").glob("**/[[]*[]].astro")
                    if re.fullmatch(r"\[(\.\.\.)?(slug|id|post)\]\.astro", p.name))
    if routes:
        route = routes[0]
        prefix = rel(route.parent, folder / "src" / "pages")
        parts = ["{lang}" if re.fullmatch(r"\[(lang|locale)\]", p) else p for p in prefix.split("/") if p != "."]
        pattern = "/" + "".join(p + "/" for p in parts) + "{slug}/"
        if "build" in config and re.search(r"format\s*:\s*['\"]file['\"]", config):
            pattern = pattern.rstrip("/") + ".html"
        d.found("content.permalink", pattern, f"src/pages/{rel(route, folder / 'src' / 'pages')}")
        if list((folder / "src" / "pages").glob("rss.xml.*")):
            d.notes.append("src/pages/rss.xml.* already makes /rss.xml: publisher's feeds go to "
                           "public/, so rename one of them (e.g. set feeds.output_dir: public/feeds "
                           "and serve that folder at the root), or keep Astro's")
    d.guess("feeds.output_dir", "public", "Astro copies public/ to the site's root")
    return d


MARKERS = ("astro.config.mjs", "astro.config.js", "astro.config.ts", "astro.config.mts", "astro.config.cjs")


def detect(folder: Path) -> Detected | None:
    marker = first_file(folder, *MARKERS)
    return _astro(folder, marker) if marker else None
