"""Zola: a config.toml with `base_url` beside a content/ folder of TOML (`+++`) front matter."""

from __future__ import annotations

import functools
import re
from datetime import date, datetime
from pathlib import Path

from ..content.frontmatter import read_text as field_text
from ..config import Config
from ..content.links import inside, site_folders
from ..content.slugs import kept_slug, zola_slug
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


@functools.lru_cache(maxsize=8)
def _slugify_settings(path: str, _mtime_ns: int, _size: int) -> tuple[str, bool]:
    try:
        data = load_toml(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, DataError):
        return ("on", False)
    table = data.get("slugify") if isinstance(data, dict) else None
    table = table if isinstance(table, dict) else {}
    paths = str(table.get("paths", "on")).lower()
    return (paths if paths in ("on", "safe", "off") else "on", table.get("paths_keep_dates") is True)


def slugify_settings(config: Config) -> tuple[str, bool]:
    """The Zola site's `[slugify] paths` ("on", Zola's default; "safe"; "off") and
    `paths_keep_dates` (false), from its config.toml at the folder of config.yaml or above
    content.dir; the defaults when there is none inside the site."""
    folders = site_folders(config)
    for folder in dict.fromkeys((Path(config.root), config.content_dir.parent, config.content_dir.parent.parent)):
        path = folder / "config.toml"
        try:
            st = path.stat()
        except OSError:
            continue
        if inside(path, folders) is not None:
            return _slugify_settings(str(path), st.st_mtime_ns, st.st_size)
    return ("on", False)


def _strip_invalid_path_chars(text: str) -> str:
    """slugify_paths "safe": NTFS's forbidden characters dropped, trailing spaces and dots too."""
    return re.sub(r'[<>:"/\\|?*]', "", text.rstrip(" ."))


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
    paths = "on"  # config.toml's [slugify] paths
    keep_dates = False  # and paths_keep_dates

    def for_site(self, config: Config) -> Engine:
        paths, keep_dates = slugify_settings(config)
        return _VARIANTS[(paths, keep_dates)]

    def fingerprint(self, config: Config) -> str:
        return "slugify paths=%s keep_dates=%s" % slugify_settings(config)

    def _slugified(self, text: str) -> str:
        """components/utils/src/slugs.rs slugify_paths, with the site's strategy."""
        if self.paths == "on":  # (a name of CJK letters only: as written, see zola_slug)
            return zola_slug(text) or kept_slug(text)
        return kept_slug(_strip_invalid_path_chars(text) if self.paths == "safe" else text)

    def _dated_name(self, src: Source) -> re.Match | None:
        own = src.folders[-1] if src.folder_post and src.folders else src.name
        return _ZOLA_DATE_PREFIX.match(own)

    def date_from_path(self, src: Source, path: Path) -> date | datetime | None:
        return match_date(self._dated_name(src))

    def slug(self, meta: dict, src: Source, title: str) -> str:
        """page.rs: the front matter's `slug`, else the file's name (its folder's, for
        index.md) without its date prefix (unless paths_keep_dates), through slugify_paths:
        `1.94.1-release.md` is /1-94-1-release/ by default."""
        explicit = field_text(meta.get("slug"), "slug")
        if explicit:
            return self._slugified(explicit)
        own = src.folders[-1] if src.folder_post and src.folders else src.name
        m = self._dated_name(src)
        return self._slugified(m.group(4) if m and not self.keep_dates else own)

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


def _variant(paths: str, keep_dates: bool) -> Zola:
    rules = Zola()
    rules.paths, rules.keep_dates = paths, keep_dates
    return rules


_VARIANTS = {(p, k): _variant(p, k) for p in ("on", "safe", "off") for k in (False, True)}
