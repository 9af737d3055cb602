"""What every engine means by a post's file and front matter, where it does not differ:
the contract's defaults. `Source` is what a post's path says, `Fields` what its URL is made
of, `Syntax` which engine syntaxes its body may hold, and `Engine` the rules (where its date,
slug, URL, taxonomy and language come from, and what holds it back) that each engine module
(engines/hugo.py ...) overrides where its engine differs. content/posts.py asks
`engines.engine_for(config)` and never names an engine itself."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from pathlib import Path
from typing import Any, Callable

from ..config import Config
from ..content.frontmatter import Skip, read_flag, read_tags, read_text
from ..content.slugs import kept_slug
from ..content.text import slugify

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

# The site variables' key for the Markdown plugins a site's config adds (Syntax.markdown_plugins):
# {"admonitions": ((written, title, type), ...), "text_directives": bool, "leaf_directives": bool,
# "github_alerts": bool, "containers": {name: rendered as <div class=name> (else by the site's
# own render function)}}. A space: no template variable, no data file's name.
MARKDOWN_PLUGINS = "markdown plugins"


@dataclass(frozen=True)
class Syntax:
    """Which of the engines' syntaxes a post's body may hold, resolved by content/syntax.py,
    blocks.py and links.py (which know how, never for which engine)."""

    liquid: bool = False  # Liquid tags and outputs ({% %}, {{ }})
    shortcodes: bool = False  # {{< >}} / {{% %}}
    tera_shortcodes: bool = False  # Zola's {{ name(args) }} and {% name(args) %}...{% end %}
    tag_plugins: bool = False  # Nunjucks tag plugins ({% raw %} as Liquid's)
    liquid_tags_plugin: bool = False  # pelican-plugins' liquid_tags ({% img %})
    # Admonitions (`:::note[Title]`): the types the engine knows, each (as written, its default
    # title, the type it is); none: `:::` lines are text
    admonitions: tuple[tuple[str, str, str], ...] = ()
    # `:::type Title` (Docusaurus's older form): text after the type is its title; otherwise, as
    # remark-directive parses, a container opens only on a line of its own
    admonition_title_after_name: bool = False
    text_directives: bool = False  # remark-directive's `:name[label]{attrs}`
    # The Markdown plugins the site's own config adds (remark-directive and GitHub alerts in an
    # astro.config, markdown-it-container in an Eleventy config): which, site_variables reads,
    # under MARKDOWN_PLUGINS
    markdown_plugins: bool = False
    heading_ids: bool = False  # `## Title {#id}`
    kramdown_ial: bool = False  # `{: #id}` on the line after a heading
    inline_ial: bool = False  # `## Title {: #id}` (kramdown's inline form)
    md_is_mdx: bool = False  # .md files are compiled as MDX too
    page_bundles: bool = False  # an index.md's folder holds its images (published beside it)
    internal_links: bool = False  # `@/blog/x.md`: a link from the content folder
    key_value_header: bool = False  # a `Key: value` header instead of --- front matter
    # YAML front matter read by js-yaml (gray-matter): an impossible date rolls over as
    # JavaScript's Date.UTC does (2017-02-29 is March 1st) where PyYAML refuses it
    js_yaml: bool = False


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
    # {year}, {month}, {day} as the engine's URL takes them from the file's path, "" each where
    # it takes none (Docusaurus); None: the date's (Engine.url_date)
    url_date: tuple[str, str, str] | None = None


class Engine:
    """The contract's defaults; each engine module's subclass differs only where it says so."""

    name = ""  # its content.dialect
    syntax = Syntax()  # none: each engine names its own
    date_keys: tuple[str, ...] = ("pubDate", "date", "publishDate", "published", "created_at", "pubdate",
                                  "pubDatetime")
    updated_keys: tuple[str, ...] = ("updatedDate", "updated", "lastmod", "modified", "last_modified_at",
                                     "modDatetime")
    tag_separator: str | None = ","  # how a string of tags is split
    category_separator: str | None = ","
    date_from_file_name = True
    other_formats: tuple[str, ...] = ()  # post files besides Markdown (syntax.source_format)

    def for_site(self, config: Config) -> Engine:
        """These rules as the site's own engine config sets them (Hugo's disablePathToLower):
        themselves, by default."""
        return self

    def is_post(self, meta: dict, src: Source, path: Path) -> bool:
        """False: the file is a page of the site, not a post (no noise, no problem line)."""
        return True

    def data(self, meta: dict, path: Path, src: Source, config: Config) -> dict:
        """The post's data: its front matter, and whatever else the engine adds to it."""
        return meta

    def site_variables(self, root: str, load: Callable[[str, Callable[[Any], Any]], Any]) -> dict[str, Any]:
        """The variables the site defines for its posts' templates (Jekyll's `site`,
        Eleventy's global data), read from the site folder `root` with `load(path, parse)`
        (which refuses a file outside the site and gives None for one it cannot read)."""
        return {}

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

    def date_zone(self, value: Any, config: Config) -> tzinfo:
        """The zone of `value`, a date written without offset (a string, a YAML/TOML date, a
        file name's date): newsletter.timezone, the README's rule, unless the engine reads it
        in another (a timestamp's is timestamp_zone's, where that is set)."""
        return config.tz

    def url_date_parts(self, meta: dict, src: Source) -> tuple[str, str, str] | None:
        """{year}, {month} and {day} where the engine's URL takes them from the file's path
        rather than from the post's date (Fields.url_date); None: from the date."""
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

    # Must a post have front matter? (Docusaurus publishes a Markdown file without any.)
    front_matter_required = True

    def shown_title(self, title: str, config: Config) -> str:
        """The title as the engine's feed shows it: as written, by default."""
        return title

    def untitled(self, body: str, src: Source, path: Path) -> str:
        """The title the engine gives a post whose file has no `title` (or no front matter at
        all, which then is a post too, as is an empty one); "": none, such a file is skipped
        and named."""
        return ""

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


def as_list(value: Any) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]
