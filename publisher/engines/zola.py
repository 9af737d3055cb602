"""Zola: a config.toml with `base_url` beside a content/ folder of TOML (`+++`) front matter."""

from __future__ import annotations

import re
from datetime import date, datetime
from pathlib import Path

from ..content.frontmatter import read_text as field_text
from ..content.slugs import kept_slug
from ..datafiles import DataError, load_toml
from .base import MARKDOWN, POST_FOLDERS, SKIP_DIRS, Detected, load_data, posts_folder, read_text, rel
from .rules import Engine, Fields, Source, Syntax, match_date

NAME = "zola"
LABEL = "Zola"


def _toml_front_matter(content: Path) -> bool:
    """Some Markdown file under content/ opens with `+++` (the first few looked at)."""
    seen = 0
    for path in sorted(content.rglob("*")):
        if path.suffix not in MARKDOWN or SKIP_DIRS & set(path.parts):
            continue
        if read_text(path).lstrip("\ufeff").startswith("+++"):
            return True
        seen += 1
        if seen >= 20:
            break
    return False


def _zola(folder: Path, marker: Path, data: dict) -> Detected:
    d = Detected(NAME, marker.name)
    d.found("site.url", str(data["base_url"]), f"{marker.name}: base_url")
    content = folder / "content"
    index = _front_matter(content / "_index.md")
    if isinstance(data.get("title"), str) and data["title"].strip():
        d.found("site.title", data["title"].strip(), f"{marker.name}: title")
    elif isinstance(index.get("title"), str) and index["title"].strip():
        d.found("site.title", index["title"].strip(), "content/_index.md: title")
    if isinstance(data.get("description"), str) and data["description"].strip():
        d.found("site.description", data["description"].strip(), f"{marker.name}: description")
    if isinstance(data.get("default_language"), str):
        d.found("site.language", data["default_language"], f"{marker.name}: default_language")
    own = [p for p in content.iterdir() if p.suffix in MARKDOWN and not p.name.startswith("_index.")]
    posts = None if own else posts_folder(content, folder)  # posts right in content/: all of it
    feeds = data.get("generate_feeds", data.get("generate_feed")) is True  # (generate_feed: Zola < 0.19)
    if posts and feeds and posts.name not in POST_FOLDERS:
        # No blog/ or posts/ section, and the site's feed lists the dated pages of every
        # section: all of content/, less the sections with no dated page (an about page, a
        # render = false folder of pages) and those the theme keeps out of the main feed
        # (tabi's `hide_from_feed`, `hide_from_main_feed` in the section's [extra]).
        undated = [p.name for p in sorted(content.iterdir())
                   if p.is_dir() and not p.name.startswith((".", "_"))
                   and (not _dated_pages(p) or _hidden_from_feed(p))]
        d.guess("content.dir", "content", f"Zola's feed ({marker.name}: "
                f"{'generate_feeds' if 'generate_feeds' in data else 'generate_feed'}) lists every section's dated pages")
        d.guess("content.permalink", "/{path}/",
                "Zola's URL: the file's path under content/; a page's `path` or `slug` replaces it")
        if undated:
            d.guess("content.exclude", undated, "the sections without a dated page (not in Zola's feed)")
    elif posts and (posts / "_index.md").is_file():
        d.guess("content.dir", rel(posts, folder), "the section of content/ that holds the posts")
        d.guess("content.permalink", f"/{posts.name}/{{path}}/",
                "Zola's URL: the file's path in its section; a page's `path` or `slug` replaces it")
    else:
        d.guess("content.dir", "content", "Zola's content folder")
        d.guess("content.permalink", "/{path}/",
                "Zola's URL: the file's path under content/; a page's `path` or `slug` replaces it")
    d.guess("feeds.output_dir", "static", "Zola copies static/ to the site's root")
    return d


def _hidden_from_feed(section: Path) -> bool:
    extra = _front_matter(section / "_index.md").get("extra")
    return isinstance(extra, dict) and any(extra.get(k) is True for k in ("hide_from_feed", "hide_from_main_feed"))


def _dated_pages(section: Path) -> bool:
    """Some page of the section has a date (`date`, or a YYYY-MM-DD file or folder name)."""
    for path in sorted(section.rglob("*")):
        if path.suffix not in MARKDOWN or path.name.startswith("_index."):
            continue
        name = path.parent.name if path.stem == "index" else path.stem
        if _ZOLA_DATE_PREFIX.match(name) or "date" in _front_matter(path):
            return True
    return False


def _front_matter(path: Path) -> dict:
    """The TOML front matter of a Zola page (`+++ ... +++`), or {}."""
    m = re.match(r"\ufeff?\+\+\+\s*\n(.*?)\n\+\+\+", read_text(path), flags=re.S)
    if not m:
        return {}
    try:
        data = load_toml(m.group(1))
    except (DataError, ValueError):  # tomllib.TOMLDecodeError is a ValueError
        return {}
    return data if isinstance(data, dict) else {}


def detect(folder: Path) -> Detected | None:
    marker = folder / "config.toml"
    if not (marker.is_file() and (folder / "content").is_dir()):
        return None
    data = load_data(marker) or {}
    if isinstance(data.get("base_url"), str) and data["base_url"] and _toml_front_matter(folder / "content"):
        return _zola(folder, marker, data)
    return None


# --- the engine's posts: what its files and front matter mean -------------------------

_ZOLA_DATE_PREFIX = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:T[\d:.]+(?:Z|[+-]\d{2}:?\d{2})?)?[_-](.+)$")


_PATH_DATE = re.compile(r"/(\d{4})/(\d{2})/(\d{2})/")


class Zola(Engine):
    """Zola (docs/content/documentation/content/page.md and components/content/src/page.rs in
    getzola/zola): the front matter's `path` is the page's URL, relative to base_url, as
    written with a '/' added at the end (no language prefix: that is only for the path
    made from the file's); the date is `date`, else a file name starting with a YYYY-mm-dd
    (or RFC 3339) date and '_' or '-', which the slug then leaves out; `updated` is
    the update date. Heading ids and `@/` internal links are resolved (syntax.py, links.py)."""

    name = "zola"
    # pulldown-cmark's `{#id}`; `@/x.md`; shortcodes (the site's and its theme's Tera templates)
    syntax = Syntax(heading_ids=True, internal_links=True, tera_shortcodes=True)
    date_keys = ("date",)
    updated_keys = ("updated",)
    prefix_explicit_url = False
    undated = ("Zola publishes a page without a date, but a feed item needs one: give it "
               "`date` (or a YYYY-MM-DD- file name prefix, or a `path` with /YYYY/MM/DD/)")

    def _dated_name(self, src: Source) -> re.Match | None:
        own = src.folders[-1] if src.folder_post and src.folders else src.name
        return _ZOLA_DATE_PREFIX.match(own)

    def date_from_path(self, src: Source, path: Path) -> date | datetime | None:
        return match_date(self._dated_name(src))

    def slug(self, meta: dict, src: Source, title: str) -> str:
        explicit = field_text(meta.get("slug"), "slug")
        m = self._dated_name(src)
        return kept_slug(explicit or (m.group(4) if m else src.base))

    def path(self, meta: dict, src: Source) -> str:
        """{path}: the page's folders under content.dir, then its slug (page.rs: components,
        then `slug`), so a file name's date prefix is left out here too
        (content/2018-03-15-newsletter-1.md is /newsletter-1/)."""
        folders = src.folders[:-1] if src.folder_post else src.folders
        return "/".join((*folders, self.slug(meta, src, "")))

    def date_from_url(self, meta: dict) -> date | None:
        """A page Zola leaves undated whose `path` files it by date (`2024/03/26/x`, or
        `inside-rust/2024/03/26/x`): such sites date the page by that path in their own feed
        template (Zola gives it no other date), so its feed item has that day."""
        value = meta.get("path")
        return match_date(_PATH_DATE.search("/" + value.strip("/") + "/")) if isinstance(value, str) else None

    def explicit_path(self, meta: dict, src: Source, fields: Fields) -> str | None:
        value = meta.get("path")  # Zola has no `url` or `permalink` key
        if not isinstance(value, str) or not value.strip():
            return None
        path = "/" + value.strip().lstrip("/")
        return path if path.endswith("/") else path + "/"


RULES = Zola()
