"""Jekyll: _config.yml, or a _posts/ of YYYY-MM-DD-* files (GitHub Pages' defaults)."""

from __future__ import annotations

import os
import re
from datetime import date, datetime, timezone, tzinfo
from pathlib import Path
from typing import Any

from ..config import PLACEHOLDER_URL, Config
from ..content.frontmatter import read_tags
from ..content.frontmatter import read_text as field_text
from ..content.links import inside, site_folders
from ..content.slugs import jekyll_default_slug, jekyll_pretty, jekyll_tokens
from ..content.smartypants import smartify
from ..content.text import slugify
from ..datafiles import load_yaml
from .base import (
    SKIP_DIRS, Detected, first_file, load_data, read_text, rel, set_permalink, site_yaml, translate,
    valid_timezone,
)
from .rules import Engine, Fields, Source, Syntax

NAME = "jekyll"
LABEL = "Jekyll"


_JEKYLL_STYLES = {  # jekyll/lib/jekyll/utils.rb: the named permalink styles
    "date": "/:categories/:year/:month/:day/:title:output_ext",
    "pretty": "/:categories/:year/:month/:day/:title/",
    "ordinal": "/:categories/:year/:y_day/:title:output_ext",
    "weekdate": "/:categories/:year/W:week/:short_day/:title:output_ext",
    "none": "/:categories/:title:output_ext",
}
_JEKYLL_TOKENS = {"year": "{year}", "month": "{month}", "i_month": "{month}", "day": "{day}",
                  "i_day": "{day}", "title": "{slug}", "slug": "{slug}", "name": "{slug}",
                  "categories": "{categories}", "output_ext": ".html", "lang": "{lang}"}

def jekyll_permalink(style: str) -> tuple[str, list[str]]:
    pattern = _JEKYLL_STYLES.get(style, style)
    return translate(pattern, _JEKYLL_TOKENS, r":([a-z_]+)")



def _jekyll(folder: Path, marker: Path) -> Detected:
    d = Detected("jekyll", marker.name + ("/" if marker.is_dir() else ""))
    if marker.is_dir():  # no _config.yml: GitHub Pages builds such a site with Jekyll's defaults
        data = {}
    else:
        data = load_data(marker)
        if data is None:
            d.notes.append(f"{marker.name}: not readable as YAML; nothing read from it")
            data = {}
    name = "_config.yml" if marker.is_dir() else marker.name
    if data.get("title"):
        d.found("site.title", str(data["title"]), f"{name}: title")
    elif isinstance(data.get("name"), str) and data["name"].strip():  # jekyll-feed's fallback
        d.found("site.title", data["name"].strip(), f"{name}: name")
    else:
        _feed_template(d, folder)
    url = str(data.get("url") or "").rstrip("/")
    # Every URL of the site is under baseurl (a GitHub Pages project site's /<repo>), with a
    # url or without: without one, the address guessed keeps it.
    baseurl = str(data.get("baseurl") or "").strip("/")
    under = "/" + baseurl if baseurl else ""
    if url:
        if data.get("enforce_ssl") and url.startswith("http://"):  # the site redirects to https
            url = "https://" + url.removeprefix("http://")
        d.found("site.url", url + under,
                f"{name}: url" + (" + baseurl" if baseurl else "")
                + (" (https: enforce_ssl)" if data.get("enforce_ssl") else ""))
    elif (folder / "CNAME").is_file() and read_text(folder / "CNAME").strip():
        domain = read_text(folder / "CNAME").split()[0].strip("/")
        d.guess("site.url", "https://" + domain + under,
                "CNAME: the GitHub Pages domain" + (" + baseurl" if baseurl else ""))
    elif baseurl:
        d.guess("site.url", PLACEHOLDER_URL + under, f"{name}: baseurl; no url: set your blog's address")
    for key in ("lang", "locale", "language"):
        if data.get(key):
            d.found("site.language", str(data[key]).replace("_", "-"), f"{name}: {key}")
            break
    if isinstance(data.get("description"), str):
        d.found("site.description", data["description"].strip(), f"{name}: description")
    author = data.get("author")
    if isinstance(author, dict):
        if author.get("name"):
            d.found("site.author.name", str(author["name"]), f"{name}: author.name")
        if author.get("email"):
            d.found("site.author.email", str(author["email"]), f"{name}: author.email")
    elif isinstance(author, str) and author:
        d.found("site.author.name", author, f"{name}: author")
    if isinstance(data.get("email"), str) and data["email"].strip() and "site.author.email" not in d.facts:
        d.found("site.author.email", data["email"].strip(), f"{name}: email")
    if data.get("timezone") and valid_timezone(data["timezone"]):
        d.found("newsletter.timezone", str(data["timezone"]), f"{name}: timezone")
    collections = str(data.get("collections_dir") or "").strip("/")
    posts = folder / collections / "_posts" if collections else folder / "_posts"
    nested = [] if posts.is_dir() else _nested_posts(posts.parent)
    if len(nested) == 1:  # en/news/_posts: folders above _posts are categories to Jekyll
        d.found("content.dir", rel(nested[0], folder), "Jekyll's posts folder (the only _posts/)")
    elif nested:
        common = Path(os.path.commonpath(nested))
        d.guess("content.dir", rel(common, folder) if common != folder else ".",
                f"the folder holding every _posts/ ({', '.join(rel(p, folder) for p in nested)})")
    else:
        d.found("content.dir", rel(posts, folder), "Jekyll's posts folder")
    style, where = _permalink_setting(data, name)
    if style:
        text, unknown = jekyll_permalink(str(style))
        set_permalink(d, text, unknown, f"{where}: {style}", jekyll_permalink("date")[0])
    else:
        d.guess("content.permalink", jekyll_permalink("date")[0],
                "Jekyll's default permalink style (date)")
    d.guess("feeds.output_dir", "public", "Jekyll wipes _site/ at each build: copy public/ to "
            "the site's root when you deploy")
    d.notes.append(f"add config.yaml, public and .publisher to {name}'s exclude: list, so Jekyll "
                   "does not publish them")
    return d

def _feed_template(d: Detected, folder: Path) -> None:
    """No title in the config (GitHub Pages sites often have none): the site's own feed
    template (atom.xml, feed.xml, rss.xml at its root) may hold it, and the author, literally."""
    for feed_name in ("atom.xml", "feed.xml", "rss.xml"):
        text = read_text(folder / feed_name)
        title = re.search(r"<title>([^<{]+)</title>", text)
        if title and title.group(1).strip():
            d.guess("site.title", title.group(1).strip(), f"{feed_name}: the feed's <title>")
            author = re.search(r"<author>\s*<name>([^<{]+)</name>", text)
            if author and author.group(1).strip():
                d.guess("site.author.name", author.group(1).strip(), f"{feed_name}: the feed's <author>")
            return


def _nested_posts(base: Path) -> list[Path]:
    """The _posts/ folders below `base` (a site per language: en/news/_posts, fr/news/_posts)."""
    found = []
    for root, dirs, _files in os.walk(base):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.startswith(".") and d != "_site")
        if "_posts" in dirs:
            found.append(Path(root) / "_posts")
            dirs.remove("_posts")
    return found


def _permalink_setting(data: dict, name: str) -> tuple[object, str]:
    """The permalink a post gets, as Jekyll decides it: a front matter default for the posts
    (`defaults:` with `scope: {type: posts}` and no narrower path) beats the posts
    collection's `permalink`, which beats the site's `permalink`."""
    defaults = data.get("defaults") if isinstance(data.get("defaults"), list) else []
    for i, entry in enumerate(defaults):
        if not isinstance(entry, dict):
            continue
        scope = entry.get("scope") if isinstance(entry.get("scope"), dict) else {}
        values = entry.get("values") if isinstance(entry.get("values"), dict) else {}
        if scope.get("type") == "posts" and not str(scope.get("path") or "").strip("/") and values.get("permalink"):
            return values["permalink"], f"{name}: defaults[{i}] (type posts) permalink"
    collections = data.get("collections") if isinstance(data.get("collections"), dict) else {}
    posts = collections.get("posts") if isinstance(collections.get("posts"), dict) else {}
    if posts.get("permalink"):
        return posts["permalink"], f"{name}: collections.posts.permalink"
    return data.get("permalink"), f"{name}: permalink"


def detect(folder: Path) -> Detected | None:
    marker = first_file(folder, "_config.yml", "_config.yaml")
    if marker:
        return _jekyll(folder, marker)
    posts = folder / "_posts"
    if posts.is_dir() and any(re.match(r"\d{4}-\d\d-\d\d-", p.name) for p in posts.iterdir()):
        return _jekyll(folder, posts)  # _posts/YYYY-MM-DD-*: Jekyll's alone
    return None


# --- the engine's posts: what its files and front matter mean -------------------------

# Jekyll's Document::DATE_FILENAME_MATCHER, on the file name: `2017-3-27-swift-3.1-released.md`
# is a post too (a one-digit month or day, even a two-digit year); the slug runs to the last dot.
_JEKYLL_POST_NAME = re.compile(r"^(\d{2,4})-(\d{1,2})-(\d{1,2})-([^/]*)(\.[^./]+)$")


class Jekyll(Engine):
    """{slug} is Jekyll's :title (the front matter's slug or the file name's, cased, dots
    kept); tags and categories given as a string are split on whitespace; {categories} is
    lowercased, not slugified; `_drafts/` is never published."""

    name = "jekyll"
    # kramdown: `{#id}`, `{: #id}` on the next line or inline
    syntax = Syntax(liquid=True, heading_ids=True, kramdown_ial=True, inline_ial=True)
    tag_separator = None
    category_separator = None
    prefix_explicit_url = False

    def site_variables(self, root: str, files: Any) -> dict[str, Any]:
        """`site`: the site's _config.yml (its url and baseurl always come from site.url)."""
        return jekyll_site(root, files)

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
        explicit = field_text(meta.get("slug"), "slug")
        if not explicit:
            m = _JEKYLL_POST_NAME.match(src.parts[-1])
            explicit = m.group(4).rstrip(".") if m else src.base
        return jekyll_pretty(explicit) or slugify(src.base)

    def shown_title(self, title: str, config: Config) -> str:
        """jekyll-feed (and jekyll-seo-tag) write `post.title | smartify`: typographic quotes,
        dashes and ellipses, by kramdown's SmartyPants rules. A site with its own feed
        template (no jekyll-feed) shows the title as written."""
        return smartify(title) if uses_jekyll_feed(config) else title

    def untitled(self, body: str, src: Source, path: Path) -> str:
        """PostReader takes every YYYY-MM-DD-name file in _posts, front matter or not, and
        Document#populate_title titles one without `title` Utils.titleize_slug(name): the
        name after the date (trailing dots dropped), each '-'-separated word capitalized
        (`2017-07-08-predict-RNN-part-1.md` is "Predict Rnn Part 1"). A draft's name is
        its whole file name."""
        m = _JEKYLL_POST_NAME.match(path.name)
        if m:
            name = m.group(4)
        elif "_drafts" in path.parent.parts:
            name = path.name.rsplit(".", 1)[0]
        else:
            return ""
        return " ".join(word.capitalize() for word in name.rstrip(".").split("-")).strip()

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
        raw_slug = field_text(meta.get("slug"), "slug") or (m.group(4).rstrip(".") if m else src.base)
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


def uses_jekyll_feed(config: Config) -> bool:
    """Whether the Jekyll site's feed is jekyll-feed's: named in its _config.yml's `plugins`
    (`gems` before Jekyll 3.5), or in its Gemfile's jekyll_plugins group. The site is the
    folder of config.yaml, or of content.dir (`.` or `_posts`) when _config.yml is there."""
    folders = site_folders(config)
    for folder in (config.root, config.content_dir, config.content_dir.parent):
        path = Path(folder) / "_config.yml"
        if path.is_file() and inside(path, folders) is not None:
            try:
                st = path.stat()
            except OSError:
                return False
            return _names_jekyll_feed(str(path), st.st_mtime_ns, st.st_size)
    return False


def _names_jekyll_feed(path: str, mtime_ns: int, size: int) -> bool:
    data = site_yaml(path, mtime_ns, size)
    for key in ("plugins", "gems"):
        if isinstance(data.get(key), list) and "jekyll-feed" in data[key]:
            return True
    try:
        gemfile = Path(path).with_name("Gemfile").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    return "jekyll_plugins" in gemfile and re.search(r"""gem\s+["']jekyll-feed["']""", gemfile) is not None


def jekyll_site(root: str, files: Any) -> dict[str, Any]:
    """`site`: the site's _config.yml (its url and baseurl always come from site.url), and
    `site.data`: the data folder's YAML and JSON files (`_data/releases.yml` is
    site.data.releases, `_data/locales/en.yml` site.data.locales.en)."""
    path = os.path.join(root, "_config.yml")
    data = files.load(path, load_yaml) if os.path.isfile(path) else None
    if not isinstance(data, dict):
        return {}
    site = {k: v for k, v in data.items() if k not in ("url", "baseurl")}
    folder = os.path.join(root, str(data.get("data_dir") or "_data"))
    if "data" not in site and os.path.isdir(folder):
        site["data"] = _data_folder(folder, files, 4)
    return {"site": site}


def _data_folder(folder: str, files: Any, depth: int) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name in files.names(folder):
        path = os.path.join(folder, name)
        stem, ext = os.path.splitext(name)
        if os.path.isdir(path) and depth > 1 and not name.startswith("."):
            found[name] = _data_folder(path, files, depth - 1)
        elif ext in (".yml", ".yaml", ".json"):  # (JSON is YAML)
            value = files.load(path, load_yaml)
            if value is not None:
                found[stem] = value
    return found


RULES = Jekyll()
