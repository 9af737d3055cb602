"""Hugo: hugo.* or a config.* with Hugo's keys (or config/_default/); baseURL, languages, permalinks."""

from __future__ import annotations

import functools
import re
from datetime import datetime
from pathlib import Path
from urllib.parse import unquote_plus

from ..config import Config
from ..content.frontmatter import read_text as field_text
from ..content.links import inside, site_folders
from ..content.slugs import hugo_path, hugo_sanitize
from ..content.text import slugify
from .base import (
    Detected, load_data, lower_keys, markdown_count, posts_folder, rel, set_permalink, translate,
    valid_timezone,
)
from .rules import Engine, Fields, Source, Syntax

NAME = "hugo"
LABEL = "Hugo"


# publisher's hugo dialect fills {stem} with the front matter's slug, else the file's base
# name: Hugo's :slugorcontentbasename. Hugo's :contentbasename (and the older :filename) is the
# base name whatever `slug` says: {contentbasename}.
_HUGO_TOKENS = {"year": "{year}", "month": "{month}", "day": "{day}", "slug": "{slug}",
                "title": "{title}", "filename": "{contentbasename}", "contentbasename": "{contentbasename}",
                "slugorfilename": "{stem}", "slugorcontentbasename": "{stem}", "lang": "{lang}"}


def hugo_permalink(pattern: str, section: str, ugly: bool = False) -> tuple[str, list[str]]:
    """Hugo's tokens as publisher's placeholders. Hugo (uglyURLs false, its default) ends
    every permalink with '/': `/posts/:slug` publishes /posts/x/; with uglyURLs, a page is a
    file: `/posts/:slug/` publishes /posts/x.html."""
    tokens = dict(_HUGO_TOKENS, section=section, sections=section)
    text, unknown = translate(pattern, tokens, r":([a-z_]+)")
    return _page_path(text, ugly), unknown


def _page_path(text: str, ugly: bool) -> str:
    """A permalink as Hugo ends it: '/' (a folder's index.html), or '.html' with uglyURLs;
    a last segment with an extension (`/feeds/:slug.xml`) as it is."""
    if not text or "." in text.rstrip("/").rsplit("/", 1)[-1]:
        return text
    if ugly:
        return text.rstrip("/") + ".html"
    return text if text.endswith("/") else text + "/"


def _ugly(data: dict, section: str) -> bool:
    """uglyURLs: true for every section, or a table of sections (`[uglyURLs] post = true`)."""
    value = data.get("uglyurls")
    if isinstance(value, dict):
        return lower_keys(value).get(section.lower()) is True
    return value is True


_HUGO_KEYS = {"baseurl", "languagecode", "defaultcontentlanguage", "theme", "permalinks",
              "contentdir", "taxonomies", "params", "menu", "menus", "languages", "paginate"}


_CONFIG_NAMES = ("hugo.toml", "hugo.yaml", "hugo.yml", "hugo.json",
                 "config.toml", "config.yaml", "config.yml", "config.json")


def _hugo_config(folder: Path) -> tuple[dict, str] | None:
    for name in _CONFIG_NAMES:
        path = folder / name
        if path.is_file():
            data = load_data(path)
            if data is not None and (name.startswith("hugo.") or _HUGO_KEYS & set(lower_keys(data))):
                return lower_keys(data), name
    default = folder / "config" / "_default"
    if default.is_dir():
        merged: dict = {}
        names = []
        for path in sorted(default.iterdir()):
            if path.suffix not in (".toml", ".yaml", ".yml", ".json"):
                continue
            data = load_data(path)
            if data is None:
                continue
            names.append(path.name)
            key, _, lang = path.stem.lower().partition(".")
            if key in ("hugo", "config"):
                merged = {**lower_keys(data), **merged}
            elif lang:  # languages.en.toml (menus.fr.toml...) is languages.en's value
                section = merged.setdefault(key, {})
                if isinstance(section, dict):
                    section[lang] = lower_keys(data)
            else:  # languages.toml, params.toml, permalinks.toml... are that key's value
                merged[key] = lower_keys(data)
        if names:
            return merged, "config/_default/" + ("hugo.toml" if "hugo.toml" in names else names[0])
    return None


def _hugo(folder: Path, data: dict, marker: str) -> Detected:
    d = Detected("hugo", marker)

    def where(section: str, key: str) -> str:
        """'hugo.toml: params.author', or 'config/_default/params.toml: author' for a split config."""
        split = folder / "config" / "_default"
        if marker.startswith("config/_default/"):
            for suffix in (".toml", ".yaml", ".yml", ".json"):
                if (split / (section + suffix)).is_file():
                    return f"config/_default/{section}{suffix}: {key}"
        return f"{marker}: {section}.{key}"
    languages = data.get("languages") if isinstance(data.get("languages"), dict) else {}
    lang = data.get("defaultcontentlanguage")
    if lang:
        d.found("site.language", str(lang), f"{marker}: defaultContentLanguage")
    elif data.get("languagecode"):
        d.found("site.language", str(data["languagecode"]), f"{marker}: languageCode")
    elif languages:
        d.guess("site.language", "en", f"{marker}: languages without defaultContentLanguage, "
                "whose default is en")
    lang_conf = languages.get(str(lang or "en").lower(), {}) if languages else {}
    lang_conf = lang_conf if isinstance(lang_conf, dict) else {}
    code = str(lang or "en").lower()
    if lang_conf.get("title"):  # the default language's own title wins over the site's
        split = next((f"config/_default/languages.{code}{s}" for s in (".toml", ".yaml", ".yml", ".json")
                      if (folder / "config" / "_default" / f"languages.{code}{s}").is_file()), None)
        d.found("site.title", str(lang_conf["title"]),
                f"{split}: title" if split else where("languages", f"{code}.title"))
    elif data.get("title"):
        d.found("site.title", str(data["title"]), f"{marker}: title")
    if data.get("baseurl"):
        d.found("site.url", str(data["baseurl"]), f"{marker}: baseURL")
    params = data.get("params") if isinstance(data.get("params"), dict) else {}
    if isinstance(params.get("description"), str):
        d.found("site.description", params["description"], where("params", "description"))
    author = params.get("author") or data.get("author")
    if isinstance(author, dict):
        author = author.get("name")
    if isinstance(author, str) and author:
        d.found("site.author.name", author, where("params", "author"))
    zone = data.get("timezone")
    if zone and valid_timezone(zone):
        d.found("newsletter.timezone", str(zone), f"{marker}: timeZone")
    content = folder / str(lang_conf.get("contentdir") or data.get("contentdir") or "content")
    posts = posts_folder(content, folder)
    if posts:
        d.guess("content.dir", rel(posts, folder), f"the section of {rel(content, folder)}/ that holds the posts")
        section = posts.name
    else:
        d.guess("content.dir", rel(content, folder), "Hugo's content folder")
        section = ""
    permalinks = data.get("permalinks") if isinstance(data.get("permalinks"), dict) else {}
    page = permalinks.get("page") if isinstance(permalinks.get("page"), dict) else {}
    ugly = _ugly(data, section)
    default = _page_path(f"/{section}/{{path}}/" if section else "/{path}/", ugly)  # the content path
    with_ugly = f", uglyURLs: {marker}" if ugly else ""
    pattern = page.get(section) or permalinks.get(section)
    if isinstance(pattern, str):
        text, unknown = hugo_permalink(pattern, section, ugly)
        label = where("permalinks", ("page." if pattern is page.get(section) else "") + section)
        set_permalink(d, text, unknown, f"{label} = {pattern!r}{with_ugly}", default)
    else:
        d.guess("content.permalink", default, f"Hugo's default URL for the {section or 'content'} section{with_ugly}")
    if (posts and "{path}" not in d.value("content.permalink")
            and any(p.is_dir() and markdown_count(p) and not (p / "index.md").exists()
                    for p in posts.iterdir())):
        d.notes.append(f"{rel(posts, folder)}/ has sub-folders of posts: Hugo puts their folders "
                       f"in the URL, which {d.value('content.permalink')} does not")
    if data.get("defaultcontentlanguageinsubdir") is True:
        d.notes.append(f"{marker}: defaultContentLanguageInSubdir puts the {code} posts under /{code}/: "
                       f"start content.permalink with /{code} (translations keep their own /<lang>/)")
    others = sorted(k for k in languages if k != str(lang or "en").lower())
    if others:
        d.notes.append(f"translations ({', '.join(others)}) get their own feeds under <lang>/")
    d.guess("feeds.output_dir", "static", "Hugo copies static/ to the site's root")
    return d


_OWN = ("hugo.toml", "hugo.yaml", "hugo.yml", "hugo.json")


def detect(folder: Path) -> Detected | None:
    """A hugo.* file: Hugo's alone, so it is asked first."""
    if any((folder / name).is_file() for name in _OWN):
        found = _hugo_config(folder)
        return _hugo(folder, *found) if found else None
    return None


def detect_late(folder: Path) -> Detected | None:
    """A config.* with Hugo's keys, or config/_default/: asked after every other engine, whose
    markers are surer. Not when a hugo.* file was there (read once: a refused file is named once)."""
    if any((folder / name).is_file() for name in _OWN):
        return None
    found = _hugo_config(folder)
    return _hugo(folder, *found) if found else None


# --- the engine's posts: what its files and front matter mean -------------------------

def _config_stamp(folder: Path) -> tuple:
    """(name, mtime, size) of the Hugo config files in `folder` (config/_default/ too): what a
    change of the site's config changes."""
    stamp = []
    for path in [folder / name for name in _CONFIG_NAMES] + sorted((folder / "config" / "_default").glob("*")):
        try:
            st = path.stat()
        except OSError:
            continue
        stamp.append((path.name, st.st_mtime_ns, st.st_size))
    return tuple(stamp)


@functools.lru_cache(maxsize=8)
def _site_settings(folder: str, _stamp: tuple) -> dict:
    found = _hugo_config(Path(folder))
    return found[0] if found else {}


def site_settings(config: Config) -> dict:
    """The Hugo site's own config (keys lowercased), at the folder of config.yaml or above
    content.dir (content/posts); {} when there is none inside the site."""
    folders = site_folders(config)
    for folder in dict.fromkeys((Path(config.root), config.content_dir.parent, config.content_dir.parent.parent)):
        stamp = _config_stamp(folder)
        if stamp and inside(folder, folders) is not None:
            return _site_settings(str(folder), stamp)
    return {}


class Hugo(Engine):
    """:slug is the front matter's slug, else the title; the default URL (content path) is
    /{section}/{stem}/ with `slug` replacing the last segment; paths are lowercased unless
    the site sets disablePathToLower."""

    name = "hugo"
    lower = True  # URLize lowercases (PathSpec.MakePathSanitized), unless disablePathToLower
    # goldmark: `{#id}` after a heading (parser.attribute.title is on)
    syntax = Syntax(shortcodes=True, heading_ids=True, page_bundles=True)
    prefix_explicit_url = False
    # .Date: the first of these (Hugo 0.111 dates a post with only `lastmod` by it).
    date_keys = ("date", "publishDate", "pubdate", "published", "pubDate", "lastmod", "modified", "created_at")
    tag_separator = ""  # a string is one term
    category_separator = ""
    date_from_file_name = False  # [frontmatter] :filename is not the default
    other_formats = (".html", ".htm")  # content files in HTML, published as they are

    def for_site(self, config: Config) -> Engine:
        """`disablePathToLower = true` in the site's config: every path keeps its case
        (restic.net's /blog/2016-02-24/Documentation/)."""
        return _CASE_KEPT if site_settings(config).get("disablepathtolower") is True else self

    def fingerprint(self, config: Config) -> str:
        return "" if self.for_site(config).lower else "disablePathToLower"

    def urlize(self, text: str) -> str:
        """Hugo's URLize: sanitized, lowercased unless the site keeps the case."""
        return hugo_path(text) if self.lower else hugo_sanitize(text)

    def is_post(self, meta: dict, src: Source, path: Path) -> bool:
        """A headless bundle is no page; the other Markdown files of a leaf bundle (a folder
        with an index.md, and its subfolders) are its resources, not pages."""
        if meta.get("headless") is True:
            return False
        if src.folder_post and src.name.lower() == "index":
            return True
        folder = path.parent
        for _ in src.folders:
            if any(folder.glob("index.md")) or any(folder.glob("index.*.md")):
                return False
            folder = folder.parent
        return True

    def finished_path(self, path: str, explicit: bool, template: str) -> str:
        """A `[permalinks]` pattern, once expanded, is query-unescaped and sanitized again as
        a whole (hugolib/page__paths.go, then URLizeFilename): '+' is a space there, so the
        title 'C++ UPPER' (urlized 'c++-upper') is /c-upper/, and 'C++' under /:slug/ is /c-/.
        The content path (`/{path}/`, or `/{section}/{stem}/` as older configs write it) and a
        front matter `url` are not: a pattern without {slug}, {title} or a date is taken for it."""
        if explicit:
            # A front matter `url` without an extension is a folder: Hugo adds its '/'
            # (`/a/no-slash` is /a/no-slash/; `/c/v1.2` and `/b/page.html` stay).
            return path if path.endswith("/") or "." in path.rsplit("/", 1)[-1] else path + "/"
        if not re.search(r"\{(slug|title|year|month|day)\}", template):
            return path
        return hugo_sanitize(unquote_plus(path))

    def url_date(self, published: datetime, config: Config) -> datetime:
        """:year/:month/:day are the date as written, in its own offset (Hugo 0.111:
        `2017-09-10T20:24:43-04:00` is /2017/09/10/ whatever `timeZone` says); a date
        without offset is in `timeZone` (newsletter.timezone) already."""
        return published

    def lang(self, meta: dict, src: Source, config: Config) -> str:
        """The file name's language suffix only: Hugo reads no `lang` key in front matter
        (Hugo 0.111 publishes a `lang: fr` page in the default language)."""
        return src.lang or config.site.language

    def slug(self, meta: dict, src: Source, title: str) -> str:
        explicit = field_text(meta.get("slug"), "slug")
        return self.urlize(explicit or title) or slugify(title)

    def stem(self, meta: dict, src: Source) -> str:
        explicit = field_text(meta.get("slug"), "slug")
        return self.urlize(explicit or src.stem) or slugify(src.stem)

    def basename(self, src: Source) -> str:
        """Hugo's :contentbasename (0.111's :filename, pageToPermalinkFilename): the file's
        name without language suffix, a bundle's folder name for index.md, urlized; `slug` is
        not read (that is :slugorcontentbasename)."""
        return self.urlize(src.stem) or slugify(src.stem)

    def folder_segment(self, folder: str) -> str:
        return self.urlize(folder) or slugify(folder)

    def title_slug(self, title: str) -> str:
        return self.urlize(title) or slugify(title)

    def categories_path(self, categories: tuple[str, ...]) -> str:
        return "/".join(self.urlize(c) for c in categories)

    def explicit_path(self, meta: dict, src: Source, fields: Fields) -> str | None:
        value = meta.get("url")  # Hugo's `permalink` is not a front matter key
        return value.strip() if isinstance(value, str) and value.strip() else None


RULES = Hugo()
_CASE_KEPT = Hugo()
_CASE_KEPT.lower = False
