"""Pelican: pelicanconf.py (and publishconf.py); read as text, never executed."""

from __future__ import annotations

import re
from pathlib import Path

from .base import (
    Detected, py_string, py_strings, read_text, rel, set_permalink, translate,
    valid_timezone,
)

NAME = "pelican"
LABEL = "Pelican"


def pelican_permalink(pattern: str) -> tuple[str, list[str]]:
    tokens = {"slug": "{slug}", "lang": "{lang}", "category": "{categories}",
              "date:%Y": "{year}", "date:%m": "{month}", "date:%d": "{day}"}
    text, unknown = translate(pattern, tokens, r"\{([^}]+)\}")
    return ("/" + text.lstrip("/")), unknown



def _pelican(folder: Path, marker: Path) -> Detected:
    d = Detected("pelican", marker.name)
    conf = read_text(marker)
    publish = read_text(folder / "publishconf.py")
    for key, name in (("site.title", "SITENAME"), ("site.description", "SITESUBTITLE"),
                      ("site.language", "DEFAULT_LANG"), ("site.author.name", "AUTHOR"),
                      ("site.author.email", "EMAIL")):
        value = py_string(conf, name)
        if value:
            d.found(key, value, f"{marker.name}: {name}")
    # publishconf.py is what `pelican -s publishconf.py` publishes with: its SITEURL wins.
    for text, label in ((publish, "publishconf.py"), (conf, marker.name)):
        url = py_string(text, "SITEURL")
        if url:
            d.found("site.url", url, f"{label}: SITEURL")
            break
        m = re.search(r"""(?m)^SITEURL\s*=\s*[^#\n]*?[uUrR]?(["'])([^"'\n]+)\1""", text)
        if m:  # SITEURL = 'x' if os.environ.get(...) else 'y': computed when Pelican runs
            d.guess("site.url", m.group(2), f"{label}: SITEURL is computed; its first address was taken")
            break
    zone = py_string(conf, "TIMEZONE")
    if zone and valid_timezone(zone):
        d.found("newsletter.timezone", zone, f"{marker.name}: TIMEZONE")
    path = py_string(conf, "PATH")
    content = folder / (path or "content")
    articles = py_strings(conf, "ARTICLE_PATHS")
    if articles and len(articles) == 1:
        d.found("content.dir", rel(content / articles[0], folder), f"{marker.name}: PATH + ARTICLE_PATHS")
    elif path:
        d.found("content.dir", rel(content, folder), f"{marker.name}: PATH")
    else:
        d.guess("content.dir", "content", "Pelican's default PATH")
    pages = py_strings(conf, "PAGE_PATHS")
    pages = ["pages"] if pages is None else pages  # Pelican's default PAGE_PATHS
    if not (articles and len(articles) == 1):  # pages are inside the posts folder: not posts
        excluded = [p.strip("/") + "/**" for p in pages if p and (content / p).is_dir()]
        if excluded:
            d.found("content.exclude", excluded,
                    f"{marker.name}: PAGE_PATHS" if py_strings(conf, "PAGE_PATHS") is not None
                    else "Pelican's default PAGE_PATHS: pages are not articles")
    pattern = py_string(publish, "ARTICLE_URL") or py_string(conf, "ARTICLE_URL")
    if pattern:
        text, unknown = pelican_permalink(pattern)
        set_permalink(d, text, unknown, f"ARTICLE_URL = {pattern!r}", "/{slug}.html")
    else:
        d.guess("content.permalink", "/{slug}.html", "Pelican's default ARTICLE_URL")
    d.found("content.markdown", "python-markdown", "Pelican renders Markdown with Python-Markdown")
    d.guess("feeds.output_dir", "public", "copy public/ to the site's root when you deploy "
            "(Pelican may empty output/ at each build)")
    return d

def detect(folder: Path) -> Detected | None:
    marker = folder / "pelicanconf.py"
    return _pelican(folder, marker) if marker.is_file() else None
