"""What each engine means by a post's file and front matter: where its date, slug, URL,
taxonomy and language come from, and what holds it back. One class per engine (sources in
the project's ENGINES.md, in its shared folder); `Engine` is "auto", the contract's
defaults, and each engine overrides only where it differs. posts.py asks `engine_for(config)` and never names an engine itself."""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from datetime import date, datetime, timezone, tzinfo
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

from ..config import Config
from .frontmatter import Skip, read_flag, read_tags, read_text
from .links import inside, site_folders
from .siteconf import eleventy_data_file, hexo_config, hexo_filename, hexo_slugize, uses_jekyll_feed
from .slugs import (ascii_slug, github_slug, hugo_path, hugo_sanitize, jekyll_default_slug, jekyll_pretty,
                    jekyll_tokens, kept_slug)
from .smartypants import smartify
from .text import slugify

# `post.fr.md`, `index.pt-br.md`: a language suffix is two letters, with an optional region
# or script ("pt-br", "zh-hans"); anything longer (`notes.draft.md`) is part of the name.
_LANG_SUFFIX = re.compile(r"^(?P<stem>.+)\.(?P<lang>[a-z]{2}(?:[-_][A-Za-z]{2,4})?)$")
_LANGUAGE_TAG = re.compile(r"[A-Za-z]{2,3}(?:-[A-Za-z0-9]{1,8})*")
# ISO 639-1: only these make a file name's suffix a language (`learn.go.md` is no translation).
_ISO_639_1 = frozenset("""aa ab ae af ak am an ar as av ay az ba be bg bh bi bm bn bo br bs ca ce ch
co cr cs cu cv cy da de dv dz ee el en eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu gv ha he hi
ho hr ht hu hy hz ia id ie ig ii ik io is it iu ja jv ka kg ki kj kk kl km kn ko kr ks ku kv kw ky
la lb lg li ln lo lt lu lv mg mh mi mk ml mn mr ms mt my na nb nd ne ng nl nn no nr nv ny oc oj om
or os pa pi pl ps pt qu rm rn ro ru rw sa sc sd se sg si sk sl sm sn so sq sr ss st su sv sw ta te
tg th ti tk tl tn to tr ts tt tw ty ug uk ur uz ve vi vo wa wo xh yi yo za zh zu""".split())
_DATE_PREFIX = re.compile(r"^(\d{4})-(\d{2})-(\d{2})-(.+)$")
_DATE_ANYWHERE = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
# Jekyll's Document::DATE_FILENAME_MATCHER, on the file name: `2017-3-27-swift-3.1-released.md`
# is a post too (a one-digit month or day, even a two-digit year); the slug runs to the last dot.
_JEKYLL_POST_NAME = re.compile(r"^(\d{2,4})-(\d{1,2})-(\d{1,2})-([^/]*)(\.[^./]+)$")
# Hugo's section pages, in any language (`_index.md`, `_index.ja.md`): never posts.
LISTING_PAGE = re.compile(r"^_index(\.[A-Za-z-]+)?\.(md|markdown|mdx|html?)$", re.I)



@dataclass(frozen=True)
class Source:
    """What a post's path says, before its front matter is read."""

    parts: tuple[str, ...]  # folders under content.dir, then the file name
    name: str  # file name without extension and language suffix (date prefix kept)
    lang: str  # the file name's language suffix, or ""
    date: date | None  # the file name's YYYY-MM-DD- prefix (or the folder's, for index.md)
    base: str  # `name` without the date prefix
    folder_post: bool  # index.md, or a file named as its folder (Eleventy's foo/foo.md)

    @property
    def folders(self) -> tuple[str, ...]:
        return self.parts[:-1]

    @property
    def stem(self) -> str:
        """{stem}: the file name as it is (the folder's name for the folder's own post)."""
        return self.folders[-1] if self.folder_post and self.folders else self.name

    @property
    def section(self) -> str:
        """{section}: the first folder under content.dir, or ""."""
        return self.folders[0] if self.folders else ""

    @property
    def translation_key(self) -> str:
        """The path without the language suffix: what a translation shares with its original."""
        return "/".join(self.folders + (self.name,))


def match_date(m: re.Match | None) -> date | None:
    """The date a match's first three groups (year, month, day) name, or None for no match
    or an impossible date (2024-13-45)."""
    if m is None:
        return None
    try:
        return date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError:
        return None


def source_of(parts: tuple[str, ...]) -> Source:
    file_name = parts[-1]
    name = file_name.rsplit(".", 1)[0] if "." in file_name else file_name
    lang = ""
    m = _LANG_SUFFIX.match(name)
    if m and m.group("lang")[:2].lower() in _ISO_639_1:
        name, lang = m.group("stem"), m.group("lang").lower().replace("_", "-")
    folders = parts[:-1]
    folder_post = bool(folders) and (name.lower() == "index" or name == folders[-1])
    own = folders[-1] if folder_post else name
    d = _DATE_PREFIX.match(own)
    found_date = match_date(d)  # 2024-13-45-x is a name, not a date
    base = d.group(4) if found_date is not None else own
    return Source(parts=parts, name=name, lang=lang, date=found_date, base=base, folder_post=folder_post)


def same_language(lang: str, site_language: str) -> bool:
    """'en' and 'en-US' are the site's language for a site in 'en' or 'en-US'."""
    a, b = lang.lower().replace("_", "-"), site_language.lower().replace("_", "-")
    return a == b or a.split("-")[0] == b or b.split("-")[0] == a


# --- the engines ------------------------------------------------------------------------

@dataclass(frozen=True)
class Fields:
    """What the URL is made of, once the front matter is read."""

    slug: str
    stem: str
    title_slug: str
    section: str
    categories: str  # already joined with '/'
    lang: str  # "" for the site's language
    path: str = ""  # the folders under content.dir and the stem, '/'-joined (Hugo's content path)
    basename: str = ""  # {contentbasename}: the file's name whatever `slug` says


class Engine:
    """The contract's defaults ("auto"); every engine below differs only where it says so."""

    name = "auto"
    date_keys: tuple[str, ...] = ("pubDate", "date", "publishDate", "published", "created_at", "pubdate",
                                  "pubDatetime")
    updated_keys: tuple[str, ...] = ("updatedDate", "updated", "lastmod", "modified", "last_modified_at",
                                     "modDatetime")
    tag_separator: str | None = ","  # how a string of tags is split
    category_separator: str | None = ","
    date_from_file_name = True
    other_formats: tuple[str, ...] = ()  # post files besides Markdown (syntax.source_format)

    def is_post(self, meta: dict, src: Source, path: Path) -> bool:
        """False: the file is a page of the site, not a post (no noise, no problem line)."""
        return True

    def data(self, meta: dict, path: Path, src: Source, config: Config) -> dict:
        """The post's data: its front matter, and whatever else the engine adds to it."""
        return meta

    def fingerprint(self, config: Config) -> str:
        """What else than a post's own file its parsing depends on (for the scan cache)."""
        return ""

    def date_from_path(self, src: Source, path: Path) -> date | datetime | None:
        return src.date if self.date_from_file_name else None

    def date_from_url(self, meta: dict) -> date | None:
        """A date the post's own URL carries, for a post with none otherwise; None: no post
        is dated so (only Zola's `path`, below)."""
        return None

    def timestamp_zone(self, config: Config) -> tzinfo | None:
        """The zone of a YAML/TOML timestamp without offset; None: config.tz, as for a string."""
        return None

    def shown(self, published: datetime, config: Config) -> datetime:
        """The date in the offset the engine shows it in: as written, by default."""
        return published

    def url_date(self, published: datetime, config: Config) -> datetime:
        """The date whose year, month and day {year}, {month} and {day} are: in
        newsletter.timezone (the README's rule), unless the engine says otherwise."""
        return published.astimezone(config.tz)

    def slug(self, meta: dict, src: Source, title: str) -> str:
        explicit = read_text(meta.get("slug"), "slug")
        # The file name as written, as the README says (`3.9.0.md` is /3.9.0/), unless no
        # URL segment can carry it.
        return kept_slug(explicit or src.base)

    def path(self, meta: dict, src: Source) -> str:
        """{path}: the folders under content.dir (not the post's own folder, for index.md or
        foo/foo.md) and then {stem}: the file's path, as Hugo and nanoc make URLs by default."""
        folders = src.folders[:-1] if src.folder_post else src.folders
        return "/".join((*(self.folder_segment(f) for f in folders), self.stem(meta, src)))

    def folder_segment(self, folder: str) -> str:
        return folder

    def stem(self, meta: dict, src: Source) -> str:
        return src.stem

    def basename(self, src: Source) -> str:
        """{contentbasename}: the file name as it is (the folder's name for the folder's own
        post), whatever the front matter's `slug` says."""
        return src.stem

    def title_slug(self, title: str) -> str:
        return slugify(title)

    def shown_title(self, title: str, config: Config) -> str:
        """The title as the engine's feed shows it: as written, by default."""
        return title

    def tags(self, meta: dict, src: Source) -> tuple[str, ...]:
        return read_tags(meta.get("tags"), "tags", self.tag_separator)

    def categories(self, meta: dict, src: Source) -> tuple[str, ...]:
        key = "categories" if meta.get("categories") is not None else "category"
        return read_tags(meta.get(key), key, self.category_separator)

    def categories_path(self, categories: tuple[str, ...]) -> str:
        return "/".join(slugify(c) for c in categories)

    def held_back(self, meta: dict, src: Source) -> str:
        """Why the post is not published whatever the date ("" if it is)."""
        if read_flag(meta.get("draft"), "draft"):
            return "draft"
        published = meta.get("published")
        if isinstance(published, bool) and not published:  # Jekyll's flag; a date is a date
            return "published: false"
        return ""

    def lang(self, meta: dict, src: Source, config: Config) -> str:
        explicit = read_text(meta.get("lang"), "lang").replace("_", "-")
        if explicit and not _LANGUAGE_TAG.fullmatch(explicit):
            raise Skip(f"'lang' is not a language tag such as fr or pt-BR: {explicit[:40]!r}")
        return (explicit or src.lang).lower() or config.site.language

    def translation_key(self, meta: dict, src: Source) -> str:
        return read_text(meta.get("translationKey"), "translationKey") or src.translation_key

    def explicit_path(self, meta: dict, src: Source, fields: Fields) -> str | None:
        """The URL path front matter gives (`url`, `permalink`), or None."""
        for key in ("url", "permalink"):
            value = meta.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()
        return None

    # Why a post with no date is skipped (the engine may publish it, but not in a feed).
    undated = "front matter has no 'pubDate' (or 'date'), and the file name has no YYYY-MM-DD- prefix"

    # Does a translation's explicit `url` get its language in front? (Hugo: no, the front
    # matter's url is the whole path.)
    prefix_explicit_url = True

    def translated(self, path: str, lang: str) -> str:
        """A translation's path when the permalink has no {lang}: under /<lang>/."""
        return f"/{lang}{path}"

    def finished_path(self, path: str, explicit: bool, template: str) -> str:
        """The URL path as the engine writes it once its parts are filled in: as it is."""
        return path

    def explicit_dates(self, path: str, local: datetime) -> str:
        """A front matter path with the date's parts the engine fills in (none, by default)."""
        return path


class Astro(Engine):
    """Content collections: the id is the path under the collection, github-slugged, or the
    front matter's `slug`; the starter publishes /blog/<id>/. No date from the file name."""

    name = "astro"
    # The blog starter's pubDate/updatedDate; AstroPaper's (a very common theme's)
    # pubDatetime/modDatetime; then the contract's other aliases.
    date_keys = ("pubDate", "pubDatetime", *Engine.date_keys[1:-1])
    updated_keys = ("updatedDate", "modDatetime", *Engine.updated_keys[1:-1])
    date_from_file_name = False

    def slug(self, meta: dict, src: Source, title: str) -> str:
        explicit = read_text(meta.get("slug"), "slug")
        if explicit:
            return explicit.strip("/")
        segments = [github_slug(p) for p in src.folders] + [github_slug(src.name)]
        if segments[-1] == "index" and len(segments) > 1:
            segments.pop()
        return "/".join(segments)

    def stem(self, meta: dict, src: Source) -> str:
        return self.slug(meta, src, "")

    def path(self, meta: dict, src: Source) -> str:
        return self.slug(meta, src, "")  # the id is the path under the collection already


class Hugo(Engine):
    """:slug is the front matter's slug, else the title; the default URL (content path) is
    /{section}/{stem}/ with `slug` replacing the last segment; paths are lowercased."""

    name = "hugo"
    prefix_explicit_url = False
    # .Date: the first of these (Hugo 0.111 dates a post with only `lastmod` by it).
    date_keys = ("date", "publishDate", "pubdate", "published", "pubDate", "lastmod", "modified", "created_at")
    tag_separator = ""  # a string is one term
    category_separator = ""
    date_from_file_name = False  # [frontmatter] :filename is not the default
    other_formats = (".html", ".htm")  # content files in HTML, published as they are

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
        explicit = read_text(meta.get("slug"), "slug")
        return hugo_path(explicit or title) or slugify(title)

    def stem(self, meta: dict, src: Source) -> str:
        explicit = read_text(meta.get("slug"), "slug")
        return hugo_path(explicit or src.stem) or slugify(src.stem)

    def basename(self, src: Source) -> str:
        """Hugo's :contentbasename (0.111's :filename, pageToPermalinkFilename): the file's
        name without language suffix, a bundle's folder name for index.md, urlized; `slug` is
        not read (that is :slugorcontentbasename)."""
        return hugo_path(src.stem) or slugify(src.stem)

    def folder_segment(self, folder: str) -> str:
        return hugo_path(folder) or slugify(folder)

    def title_slug(self, title: str) -> str:
        return hugo_path(title) or slugify(title)

    def categories_path(self, categories: tuple[str, ...]) -> str:
        return "/".join(hugo_path(c) for c in categories)

    def explicit_path(self, meta: dict, src: Source, fields: Fields) -> str | None:
        value = meta.get("url")  # Hugo's `permalink` is not a front matter key
        return value.strip() if isinstance(value, str) and value.strip() else None


class Jekyll(Engine):
    """{slug} is Jekyll's :title (the front matter's slug or the file name's, cased, dots
    kept); tags and categories given as a string are split on whitespace; {categories} is
    lowercased, not slugified; `_drafts/` is never published."""

    name = "jekyll"
    tag_separator = None
    category_separator = None
    prefix_explicit_url = False

    def date_from_path(self, src: Source, path: Path) -> date | datetime | None:
        m = _JEKYLL_POST_NAME.match(path.name)
        if m:
            year = int(m.group(1))
            if len(m.group(1)) == 2:  # Ruby's Time.parse: '17-3-27' is 2017, '99-1-1' 1999
                year += 1900 if year >= 69 else 2000
            try:
                return date(year, int(m.group(2)), int(m.group(3)))
            except ValueError:
                return None  # 2024-13-45-x: Jekyll refuses the date; the front matter's counts
        if src.date is None and "_drafts" in path.parent.parts:
            try:  # a draft is dated by its file's modification time
                return datetime.fromtimestamp(path.stat().st_mtime, tz=timezone.utc)
            except OSError:
                return None
        return src.date

    def timestamp_zone(self, config: Config) -> tzinfo | None:
        """Ruby's YAML reads a timestamp without offset (`date: 2016-6-13 2:00:00`) as UTC;
        a string without offset ("2016-06-13 02:00:00") is Time.parse's, in the site's zone."""
        return timezone.utc

    def shown(self, published: datetime, config: Config) -> datetime:
        """Utils.parse_date: `Time.parse(date).localtime`, the site's `timezone:` (or the
        machine's zone without one: newsletter.timezone stands for either)."""
        return published.astimezone(config.tz)

    def is_post(self, meta: dict, src: Source, path: Path) -> bool:
        """Posts are the files in a `_posts` (or `_drafts`) folder named YYYY-MM-DD-title
        (PostReader skips the others). With content.dir at the site's root (its _config.yml
        there), every other file is a page of the site; elsewhere, every file counts."""
        folders = path.parent.parts
        if "_drafts" in folders:
            return True
        if "_posts" in folders:
            return _JEKYLL_POST_NAME.match(path.name) is not None
        content_dir = Path(*path.parts[:len(path.parts) - len(src.parts)])
        return not (content_dir / "_config.yml").is_file()

    def slug(self, meta: dict, src: Source, title: str) -> str:
        """:title: the front matter's slug, else the file name's (Document#populate_title:
        after the date, up to the last dot, a language suffix included, trailing dots
        dropped), slugified "pretty" with its case kept."""
        explicit = read_text(meta.get("slug"), "slug")
        if not explicit:
            m = _JEKYLL_POST_NAME.match(src.parts[-1])
            explicit = m.group(4).rstrip(".") if m else src.base
        return jekyll_pretty(explicit) or slugify(src.base)

    def shown_title(self, title: str, config: Config) -> str:
        """jekyll-feed (and jekyll-seo-tag) write `post.title | smartify`: typographic quotes,
        dashes and ellipses, by kramdown's SmartyPants rules. A site with its own feed
        template (no jekyll-feed) shows the title as written."""
        return smartify(title) if uses_jekyll_feed(config) else title

    def fingerprint(self, config: Config) -> str:
        return "jekyll-feed" if uses_jekyll_feed(config) else ""

    def tags(self, meta: dict, src: Source) -> tuple[str, ...]:
        # Utils.pluralized_array_from_hash: the singular key, as it is, wins; the plural
        # key's string is split on whitespace.
        if meta.get("tag") is not None:
            return read_tags(meta["tag"], "tag", "")
        return read_tags(meta.get("tags"), "tags", None)

    def categories(self, meta: dict, src: Source) -> tuple[str, ...]:
        """Document#categories_from_path (the folders above _posts/_drafts), merged with the
        front matter's `categories` (split), then `category` as it is (populate_categories)."""
        special = "_drafts" if "_drafts" in src.folders else "_posts"
        above = src.folders[:src.folders.index(special)] if special in src.folders else ()
        found = list(above) + list(read_tags(meta.get("categories"), "categories", None))
        if meta.get("category") is not None:
            found += read_tags(meta["category"], "category", "")
        return tuple(dict.fromkeys(found))

    def categories_path(self, categories: tuple[str, ...]) -> str:
        return "/".join(c.lower() for c in categories)

    def held_back(self, meta: dict, src: Source) -> str:
        if "_drafts" in src.folders:
            return "in _drafts"
        return super().held_back(meta, src)

    def finished_path(self, path: str, explicit: bool, template: str) -> str:
        """URL#sanitize_url: every '..' becomes '/' (`trailing..fr.md` is /trailing/fr.html),
        './' is dropped, runs of '/' are one."""
        return re.sub(r"/{2,}", "/", ("/" + path).replace("..", "/").replace("./", ""))

    def explicit_path(self, meta: dict, src: Source, fields: Fields) -> str | None:
        """The front matter's `permalink` (or `url`), its placeholders filled as Jekyll fills
        them (`/blog/:title/` is /blog/a_b/); the date's are filled by explicit_dates."""
        path = super().explicit_path(meta, src, fields)
        if path is None or ":" not in path:
            return path
        m = _JEKYLL_POST_NAME.match(src.parts[-1])
        raw_slug = read_text(meta.get("slug"), "slug") or (m.group(4).rstrip(".") if m else src.base)
        basename = src.parts[-1].rsplit(".", 1)[0]
        return jekyll_tokens(path, {
            "title": fields.slug, "slug": jekyll_default_slug(raw_slug), "name": jekyll_default_slug(basename),
            "categories": fields.categories, "output_ext": ".html", "collection": "posts",
            "slugified_categories": "/".join(jekyll_default_slug(c) for c in self.categories(meta, src)),
        })

    def explicit_dates(self, path: str, local: datetime) -> str:
        if ":" not in path:
            return path
        return jekyll_tokens(path, {
            "year": local.strftime("%Y"), "month": local.strftime("%m"), "day": local.strftime("%d"),
            "i_month": str(local.month), "i_day": str(local.day), "short_year": local.strftime("%y"),
            "hour": local.strftime("%H"), "minute": local.strftime("%M"), "second": local.strftime("%S"),
            "y_day": local.strftime("%j"),
        })

    def translated(self, path: str, lang: str) -> str:
        """Jekyll has no languages: a translation's URL is the one Jekyll gives it (its
        folders, `fr/news/_posts/`, are its categories, which are in the URL already)."""
        return path


class Eleventy(Engine):
    """The default URL keeps the file name as it is, date prefix included ({stem}); a date is
    the first YYYY-MM-DD anywhere in the path; `permalink: false` and
    `eleventyExcludeFromCollections` keep a post out of the feeds; `permalink` may use
    {{ page.fileSlug }} and {{ title | slugify }}."""

    name = "eleventy"

    def data(self, meta: dict, path: Path, src: Source, config: Config) -> dict:
        """Directory data files (`blog/blog.json`, `blog/blog.11tydata.json`, from the top
        folder down) and the template's own (`x.11tydata.json`), under the front matter:
        later ones win key by key, and `tags` add up, as Eleventy's data cascade does."""
        merged: dict = {}
        folder = config.content_dir
        files = [folder / f"{folder.name}.json", folder / f"{folder.name}.11tydata.json"]
        for name in src.folders:
            folder = folder / name
            files += [folder / f"{name}.json", folder / f"{name}.11tydata.json"]
        files += [path.with_name(f"{src.parts[-1].rsplit('.', 1)[0]}{ext}")
                  for ext in (".json", ".11tydata.json")]
        folders = site_folders(config)  # a data file is read only inside the site
        for layer in [eleventy_data_file(f, folders) for f in files] + [meta]:
            tags = _as_list(merged.get("tags")) + _as_list(layer.get("tags"))
            merged.update(layer)
            if tags:
                merged["tags"] = list(dict.fromkeys(tags))
        return merged

    def fingerprint(self, config: Config) -> str:
        h = hashlib.sha256()
        folders = site_folders(config)
        for root, dirs, names in os.walk(config.content_dir):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(n for n in names if n.endswith(".json")):
                path = os.path.join(root, name)
                if os.path.islink(path) and inside(path, folders) is None:
                    continue  # never read (_json_file)
                try:
                    data = Path(root, name).read_bytes()
                except OSError:
                    continue
                h.update(f"{root}/{name}\0".encode("utf-8", "surrogatepass") + hashlib.sha256(data).digest())
        return h.hexdigest()

    def date_from_path(self, src: Source, path: Path) -> date | datetime | None:
        for part in src.parts:
            found = match_date(_DATE_ANYWHERE.search(part))
            if found is not None:
                return found
        return None

    def slug(self, meta: dict, src: Source, title: str) -> str:
        explicit = read_text(meta.get("slug"), "slug")
        if explicit:
            return kept_slug(explicit)
        # page.fileSlug (TemplateFileSlug.getSlug): the date prefix is stripped first, then an
        # `index` slug is the parent folder's name, its own date prefix stripped too
        # (`buildless/2024-09-08-index.md` is `buildless`).
        if src.base == "index" and not src.folder_post and src.folders:
            d = _DATE_PREFIX.match(src.folders[-1])
            return d.group(4) if d else src.folders[-1]
        return src.base

    def title_slug(self, title: str) -> str:
        return ascii_slug(title)

    def held_back(self, meta: dict, src: Source) -> str:
        if meta.get("permalink") is False:
            return "permalink: false"
        if read_flag(meta.get("eleventyExcludeFromCollections"), "eleventyExcludeFromCollections"):
            return "eleventyExcludeFromCollections"
        return super().held_back(meta, src)

    def explicit_path(self, meta: dict, src: Source, fields: Fields) -> str | None:
        value = meta.get("permalink")
        if not isinstance(value, str) or not value.strip():
            return None
        path = value.strip()
        subs = {r"page\.fileSlug": fields.slug, r"title\s*\|\s*slugify": fields.title_slug,
                r"page\.filePathStem": "/" + "/".join(src.folders + (src.name,)),
                r"page\.lang": fields.lang}
        for pattern, replacement in subs.items():
            path = re.sub(r"\{\{-?\s*" + pattern + r"\s*-?\}\}", lambda _m: replacement, path)
        if "{{" in path or "{%" in path:
            raise Skip(f"'permalink' is a template publisher cannot evaluate: {value.strip()[:80]!r} "
                       "(it understands {{ page.fileSlug }} and {{ title | slugify }})")
        # page.url: a permalink written to a folder's index.html is served at the folder.
        return path[:-len("index.html")] if path.endswith("/index.html") else path


class Pelican(Engine):
    """`Key: value` header (keys lowercased); slug = `Slug:` or the title, ASCII-slugified;
    `Tags:` split on ';' if present, else ','; one `Category:`, else the parent folder;
    `Status: draft|hidden|skip` held back; another language is `{slug}-{lang}.html`."""

    name = "pelican"
    date_keys = ("date",)
    updated_keys = ("modified", "updated")
    tag_separator = ";,"
    category_separator = ""
    other_formats = (".rst",)  # reStructuredText, Pelican's other reader (rst.py)

    def slug(self, meta: dict, src: Source, title: str) -> str:
        explicit = read_text(meta.get("slug"), "slug")
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
        status = read_text(meta.get("status"), "status").lower()
        if status in ("draft", "hidden", "skip"):
            return f"Status: {status}"
        return super().held_back(meta, src)

    def translation_key(self, meta: dict, src: Source) -> str:
        return "slug:" + (read_text(meta.get("slug"), "slug") or ascii_slug(read_text(meta.get("title"), "title")))

    def translated(self, path: str, lang: str) -> str:
        m = re.match(r"^(.*?)(\.html?)?(/?)$", path)
        return f"{m.group(1)}-{lang}{m.group(2) or ''}{m.group(3)}"


class Nanoc(Engine):
    """The Blogging helper's articles: `kind: article`, dated by `created_at` (or the file
    name). Other items are pages of the site, not posts."""

    name = "nanoc"
    date_keys = ("created_at", "pubDate", "date", "publishDate", "published")

    def is_post(self, meta: dict, src: Source, path: Path) -> bool:
        return meta.get("kind") == "article"


class Starlight(Astro):
    """Astro's docs theme: Astro's ids; its asides (`:::note[Title]`) are resolved (syntax.py)."""

    name = "starlight"


class Docusaurus(Engine):
    """Docusaurus's blog: the contract's defaults; its .md files are MDX and its admonitions
    and heading ids are resolved (syntax.py)."""

    name = "docusaurus"


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
        explicit = read_text(meta.get("slug"), "slug")
        m = self._dated_name(src)
        return kept_slug(explicit or (m.group(4) if m else src.base))

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


class Hexo(Engine):
    """Hexo 8 (hexo/dist/plugins/processor/post.js, filter/post_permalink.js): posts are the
    files under source/_posts (source/_drafts are not published). The file's path under _posts
    is read with the site's `new_post_name` (`:year-:month-:day-:title.md`): its :title is the
    post's slug (the front matter's `slug` is overwritten by it), its date the date when the
    front matter has none; a path the pattern does not match is slugized whole
    (`guides/x.md` is guides-x). No date at all: Hexo takes the file's creation time, which a
    feed cannot keep, so the post is skipped. {slug} is :title, {stem} :name, {title}
    :post_title (slugized, lowercased), {categories} :category (the last category's path,
    `uncategorized` without one), {i_month} {i_day} :i_month :i_day; a front matter
    `permalink` is the post's path (a '/' added with post_asset_folder). Tag plugins are
    resolved (blocks.py)."""

    name = "hexo"
    date_keys = ("date",)
    updated_keys = ("updated",)
    category_separator = None
    date_from_file_name = False  # new_post_name's date, put in `date` by data()
    undated = ("front matter has no 'date' and the file name none by new_post_name (Hexo would "
               "date it by the file's creation time, which a feed cannot keep)")

    def data(self, meta: dict, path: Path, src: Source, config: Config) -> dict:
        site = hexo_config(config)
        under = src.parts[src.parts.index("_posts") + 1:] if "_posts" in src.parts[:-1] else src.parts
        rel = "/".join(under).rsplit(".", 1)[0]
        info = hexo_filename(str(site.get("new_post_name") or ":title.md"), rel)
        meta = dict(meta)
        meta["slug"] = info.get("title", hexo_slugize(rel))
        if meta.get("date") in (None, "") and "year" in info and ("month" in info or "i_month" in info) \
                and ("day" in info or "i_day" in info):
            try:
                meta["date"] = date(int(info["year"]), int(info.get("month") or info["i_month"]),
                                    int(info.get("day") or info["i_day"]))
            except ValueError:
                pass
        fixed = meta.get("permalink")
        if isinstance(fixed, str) and fixed.strip() and site.get("post_asset_folder") is True \
                and not fixed.strip().endswith(("/", ".html")):
            meta["permalink"] = fixed.strip() + "/"
        return meta

    def fingerprint(self, config: Config) -> str:
        site = hexo_config(config)
        return json.dumps([str(site.get(k)) for k in ("new_post_name", "post_asset_folder")])

    def slug(self, meta: dict, src: Source, title: str) -> str:
        return read_text(meta.get("slug"), "slug") or src.base

    def stem(self, meta: dict, src: Source) -> str:
        return self.slug(meta, src, "").rsplit("/", 1)[-1]

    def title_slug(self, title: str) -> str:
        return hexo_slugize(title).lower() or slugify(title)

    def categories_path(self, categories: tuple[str, ...]) -> str:
        return "/".join(hexo_slugize(c) for c in categories) or "uncategorized"

    def held_back(self, meta: dict, src: Source) -> str:
        if "_drafts" in src.folders:
            return "in _drafts"
        return super().held_back(meta, src)

    def explicit_path(self, meta: dict, src: Source, fields: Fields) -> str | None:
        value = meta.get("permalink")
        return value.strip() if isinstance(value, str) and value.strip() else None


def _as_list(value: Any) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


ENGINES: dict[str, Engine] = {e.name: e for e in (Engine(), Astro(), Hugo(), Jekyll(), Eleventy(),
                                                   Pelican(), Nanoc(), Starlight(), Docusaurus(), Zola(),
                                                   Hexo())}


def engine_for(config: Config) -> Engine:
    return ENGINES[config.content.dialect]
