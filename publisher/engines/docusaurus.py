"""Docusaurus: docusaurus.config.{js,mjs,ts}. Its blog plugin publishes blog/ (or the
plugin's `path`) under `routeBasePath`: `2024-05-01-name.md` at /blog/2024/05/01/name, with
no trailing slash unless the site sets `trailingSlash: true`."""

from __future__ import annotations

import json
import os
import re
from datetime import date, timezone, tzinfo
from pathlib import Path
from typing import Any

from ..config import Config
from ..content.frontmatter import read_flag
from ..content.frontmatter import read_text as field_text

from .base import Detected, first_file, js_object, js_string, js_top_level, read_text, rel, strip_js_comments
from .rules import Engine, Source, Syntax

NAME = "docusaurus"
LABEL = "Docusaurus"
MARKERS = ("docusaurus.config.js", "docusaurus.config.mjs", "docusaurus.config.ts",
           "docusaurus.config.mts", "docusaurus.config.cjs")


def _from_package_json(folder: Path, marker: Path, config: str, top: str, key: str) -> tuple[str, str] | None:
    """`key: pkg.homepage` (in `top`, the config object) where pkg is a package.json the config
    reads (require, import or `new URL("../package.json", import.meta.url)`): that file's
    value, if a string."""
    m = re.search(r"(?<![\w$.])" + key + r"\s*:\s*[A-Za-z_$][\w$]*\.(\w+)", top)
    ref = re.search(r"""["']((?:\.\.?/)+package\.json)["']""", config)
    if not (m and ref):
        return None
    path = (marker.parent / ref.group(1)).resolve()
    try:
        data = json.loads(read_text(path))
    except ValueError:
        return None
    value = data.get(m.group(1)) if isinstance(data, dict) else None
    if isinstance(value, str) and value:
        return value, f"{Path(os.path.relpath(path, folder)).as_posix()}: {m.group(1)}"
    return None


def _docusaurus(folder: Path, marker: Path) -> Detected:
    d = Detected(NAME, marker.name)
    config = strip_js_comments(read_text(marker))
    top = js_object(config, r"(?:module\.exports\s*=|export\s+default|(?:const|let)\s+config\s*(?::\s*\w+)?\s*=)")
    top = js_top_level(top) if top is not None else config
    url = js_string(top, "url")
    where = f"{marker.name}: url"
    if url is None:
        found = _from_package_json(folder, marker, config, top, "url")
        url, where = found if found else (None, "")
    base = (js_string(top, "baseUrl") or "/").strip("/")
    if url:
        d.found("site.url", url.rstrip("/") + ("/" + base if base else ""),
                where + (" + baseUrl" if base else ""))
    title = js_string(top, "title")
    if title:
        d.found("site.title", title, f"{marker.name}: title")
    tagline = js_string(top, "tagline")
    if tagline:
        d.found("site.description", tagline, f"{marker.name}: tagline")
    blog = js_object(config, r"(?<![\w$.])blog\s*:")
    options = js_top_level(blog) if blog is not None else ""
    path = (js_string(options, "path") or "blog").strip("/") or "blog"
    route = (js_string(options, "routeBasePath") if "routeBasePath" in options else None)
    route = "blog" if route is None else route.strip("/")
    posts = (folder / path).resolve()
    d.found("content.dir", rel(posts, folder), f"{marker.name}: blog.path" if js_string(options, "path")
            else "Docusaurus's blog folder")
    slash = "/" if re.search(r"\btrailingSlash\s*:\s*true", top) else ""
    prefix = "/" + (route + "/" if route else "")
    # The date folders are the path's date as the dialect reads it: none for a post whose path
    # has no date or whose front matter gives `slug` (/blog/<slug>, as Docusaurus publishes it).
    how = (f"Docusaurus's blog URL ({prefix}, date folders from the file's path, "
           + ("a trailing slash: trailingSlash is true)" if slash else "no trailing slash unless trailingSlash: true)"))
    d.found("content.permalink", prefix + "{year}/{month}/{day}/{slug}" + slash, how)
    d.guess("feeds.output_dir", "static", "Docusaurus copies static/ to the site's root")
    return d


def detect(folder: Path) -> Detected | None:
    marker = first_file(folder, *MARKERS)
    return _docusaurus(folder, marker) if marker else None


# --- the engine's posts: what its files and front matter mean -------------------------

# The admonitions plugin's types (theme-classic's Admonition/Types), and the legacy aliases
# Docusaurus 3 still accepts, shown as the type they stand for.
ADMONITIONS = (("note", "Note", "note"), ("tip", "Tip", "tip"), ("info", "Info", "info"),
               ("warning", "Warning", "warning"), ("danger", "Danger", "danger"),
               ("caution", "Caution", "caution"), ("secondary", "Note", "note"),
               ("important", "Info", "info"), ("success", "Tip", "tip"))


# plugin-content-blog's DATE_FILENAME_REGEX (blogUtils.ts), on the path under the blog folder:
# the last YYYY-M-D or YYYY/MM/DD in it (`2024-3-12-x.md`, `2024/02/03/x.md`, `news/2024-03-11-x.md`),
# one-digit parts too; what follows is the name, `/index` dropped.
_DATE_FILENAME = re.compile(
    r"^(?P<folder>.*)(?P<date>(\d{4})[-/](\d{1,2})[-/](\d{1,2}))[-/]?(?P<text>.*?)(?:/index)?\.mdx?$", re.S)
# parseMarkdownContentTitle (@docusaurus/utils): an `# h1` or a setext `===` title first in the
# body (after MDX import blocks), its trailing `#`s or `{#id}` and inline code ticks dropped.
_IMPORTS = re.compile(r"^(?:import\s(?:.|\r?\n(?!\r?\n))*(?:\r?\n){2,})*")
_ATX_TITLE = re.compile(r"^#[ \t]+(?P<title>[^ \t].*)(?:\r?\n|$)")
_SETEXT_TITLE = re.compile(r"^(?P<title>.*)\r?\n=+(?:\r?\n|$)")


class Docusaurus(Engine):
    """Docusaurus 3's blog plugin (plugin-content-blog/src/blogUtils.ts): a post's URL is
    routeBasePath and its slug: the front matter's `slug` as written, else
    `/YYYY/MM/DD/<folders><name>` from the date in its path as written there (one-digit parts
    stay one digit; `date:` changes the post's date, never its URL), else its path without the
    extension. Its date: `date` (a string read as UTC), else the path's date (UTC midnight); a
    post without either is dated by git or the file's creation time, which a feed cannot
    keep: skipped. The title: `title`, else the body's first h1, else the name. `draft` and
    `unlisted` posts are not in the blog's lists or feeds. With content.permalink
    `/blog/{year}/{month}/{day}/{slug}`, {year}/{month}/{day} are the path's date, empty for a
    post whose URL has none."""

    name = "docusaurus"
    # its admonitions plugin, heading ids, and .md compiled as MDX (siteConfig.markdown.format:
    # 'mdx', the default in Docusaurus 3)
    syntax = Syntax(admonitions=ADMONITIONS, admonition_title_after_name=True, heading_ids=True, md_is_mdx=True,
                    js_yaml=True)  # gray-matter's js-yaml
    date_keys = ("date",)
    front_matter_required = False
    undated = ("front matter has no 'date' and the path no YYYY-MM-DD (Docusaurus would date it by git "
               "or the file's creation time, which a feed cannot keep)")

    def _dated(self, src: Source) -> re.Match | None:
        return _DATE_FILENAME.match("/".join(src.parts))

    def date_from_path(self, src: Source, path: Path) -> date | None:
        m = self._dated(src)
        try:
            return date(int(m.group(3)), int(m.group(4)), int(m.group(5))) if m else None
        except ValueError:  # 2024-13-45: no date
            return None

    def date_zone(self, value: Any, config: Config) -> tzinfo:
        """Every date without offset is UTC: a string gets a `Z` appended, js-yaml reads a
        timestamp or a date as UTC, the path's date is UTC midnight."""
        return timezone.utc

    def slug(self, meta: dict, src: Source, title: str) -> str:
        explicit = field_text(meta.get("slug"), "slug")
        if explicit:
            return explicit.strip("/")
        m = self._dated(src)
        if m:
            return m.group("folder") + m.group("text")
        return re.sub(r"(?:/index)?\.(?:mdx?|markdown)$", "", "/".join(src.parts))

    def url_date_parts(self, meta: dict, src: Source) -> tuple[str, str, str]:
        m = self._dated(src)
        if m is None or field_text(meta.get("slug"), "slug"):
            return ("", "", "")
        return (m.group(3), m.group(4), m.group(5))

    def untitled(self, body: str, src: Source, path: Path) -> str:
        """The body's first heading (after its imports), else the name's text after its date."""
        content = _IMPORTS.sub("", body.strip(), count=1).strip()
        m = _ATX_TITLE.match(content)
        if m:
            title = re.sub(r"\s*(?:\{#*[\w-]+\}|#+)$", "", m.group("title").strip())
        else:
            m = _SETEXT_TITLE.match(content)
            title = re.sub(r"\s*=+$", "", m.group("title").strip()) if m else ""
        if title:
            return re.sub(r"`([^`]*)`", r"\1", title).strip()
        m = self._dated(src)
        return m.group("text") if m else re.sub(r"(?:/index)?\.mdx?$", "", "/".join(src.parts))

    def held_back(self, meta: dict, src: Source) -> str:
        if read_flag(meta.get("unlisted"), "unlisted"):
            return "unlisted"
        return super().held_back(meta, src)


RULES = Docusaurus()
