"""`publisher init`: detect a blog's engine and write a commented config.yaml.

`detect(folder)` only reads: it finds the engine by its marker file (astro.config.*, a Hugo
config, _config.yml, eleventy.config.*, pelicanconf.py, nanoc.yaml), then reads the site's
title, URL, language, time zone, posts folder and URL pattern from the engine's own config.
Every value is a Fact that says where it came from, or why it is a guess. JavaScript,
TypeScript and Python configs are read with regular expressions and never executed: a value
computed at run time is a guess, said so. `write_config` renders the facts as YAML with a
comment per key and writes it, never over an existing file. An empty folder gets a starter
site instead: config.yaml and one example post.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tomllib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from .config import PLACEHOLDER_URL
from .datafiles import DataError, load_json, load_toml, load_yaml
from .errors import ConfigError

log = logging.getLogger(__name__)

ENGINE_NAMES = {"astro": "Astro", "hugo": "Hugo", "jekyll": "Jekyll", "eleventy": "Eleventy",
                "pelican": "Pelican", "nanoc": "nanoc"}
# Folders a blog's posts usually live in, most likely first.
_POST_FOLDERS = ("posts", "post", "blog", "articles", "article")
_MARKDOWN = (".md", ".markdown", ".mdx")
_SKIP_DIRS = {"node_modules", ".git", "vendor", "_site", "public", "dist", "output", "themes"}


@dataclass
class Fact:
    value: Any
    source: str  # where it was read ("hugo.toml: baseURL"), or why it is a guess
    guessed: bool = False


@dataclass
class Detected:
    """What `detect` found in a blog's folder: the engine and a Fact per config key."""

    engine: str | None
    marker: str = ""  # the file that named the engine
    facts: dict[str, Fact] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # things the owner should know

    def found(self, key: str, value: Any, source: str) -> None:
        self.facts[key] = Fact(value, source)

    def guess(self, key: str, value: Any, why: str) -> None:
        self.facts[key] = Fact(value, why, guessed=True)

    def value(self, key: str, default: Any = None) -> Any:
        fact = self.facts.get(key)
        return fact.value if fact else default


@dataclass
class InitReport:
    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    exit_status: int = 0


# --- reading without executing ----------------------------------------------------------

def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _strip_js_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"(?m)(^|[^:\\'\"])//.*$", r"\1", text)  # not the // of https://


def _js_string(text: str, key: str) -> str | None:
    """The string literal given to `key:` (or `key =`) in JS/TS source; None if absent or
    computed (a template literal with ${...} counts as computed)."""
    m = re.search(r"(?<![\w$.])[\"']?" + re.escape(key) + r"""[\"']?\s*[:=]\s*(["'`])((?:\\.|(?!\1).)*)\1""", text)
    if not m or (m.group(1) == "`" and "${" in m.group(2)):
        return None
    return m.group(2)


def _py_string(text: str, name: str) -> str | None:
    """The string assigned to NAME at the top level of Python source (u'', (...) allowed)."""
    m = re.search(r"(?m)^" + re.escape(name) + r"""\s*=\s*\(?\s*[uUrR]?(["'])(.*?)\1\s*\)?\s*(#.*)?$""", text)
    return m.group(2) if m else None


def _py_strings(text: str, name: str) -> list[str] | None:
    m = re.search(r"(?m)^" + re.escape(name) + r"\s*=\s*[\[(]([^\])]*)[\])]", text)
    if not m:
        return None
    return [s for _q, s in re.findall(r"""(["'])(.*?)\1""", m.group(1))]


def _lower_keys(value: Any) -> Any:
    """Hugo's config keys are case-insensitive: baseURL, baseurl and BaseURL are one key."""
    if isinstance(value, dict):
        return {str(k).lower(): _lower_keys(v) for k, v in value.items()}
    return value


def _load_data(path: Path) -> dict | None:
    """A TOML, YAML or JSON file as a mapping; None if it is not one. A file refused for
    what reading it would cost (an alias bomb, thousands of levels deep) is named."""

    text = _text(path)
    try:
        if path.suffix == ".toml":
            data = load_toml(text)
        elif path.suffix == ".json":
            data = load_json(text)
        else:
            data = load_yaml(text)
    except DataError as e:
        log.warning("%s: not read: %s", path.name, e)
        return None
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, yaml.YAMLError, ValueError) as e:
        log.debug("%s: not readable as data: %s", path, e)
        return None
    return data if isinstance(data, dict) else None


def _markdown_count(folder: Path) -> int:
    count = 0
    for _root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if d not in _SKIP_DIRS and not d.startswith(".")]
        count += sum(1 for f in files if f.endswith(_MARKDOWN))
    return count


def _posts_folder(base: Path, folder: Path) -> Path | None:
    """The usual posts folder under `base`, else its sub-folder holding the most Markdown."""
    for name in _POST_FOLDERS:
        if (base / name).is_dir():
            return base / name
    if not base.is_dir():
        return None
    counts = [(_markdown_count(d), d.name, d) for d in base.iterdir()
              if d.is_dir() and d.name not in _SKIP_DIRS and not d.name.startswith((".", "_"))]
    counts = [c for c in counts if c[0]]
    return max(counts)[2] if counts else None


def _rel(path: Path, folder: Path) -> str:
    return Path(os.path.relpath(path, folder)).as_posix()


def _valid_timezone(name: Any) -> bool:
    try:
        ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return bool(name)


# --- URL patterns: each engine's tokens -> publisher's placeholders ------------------------

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
_HUGO_TOKENS = {"year": "{year}", "month": "{month}", "day": "{day}", "slug": "{slug}",
                "title": "{title}", "filename": "{stem}", "contentbasename": "{stem}",
                "slugorfilename": "{slug}", "slugorcontentbasename": "{slug}", "lang": "{lang}"}


def _translate(pattern: str, tokens: dict[str, str], token_re: str) -> tuple[str, list[str]]:
    """Replace an engine's tokens; return the result and the tokens that have no equivalent."""
    unknown: list[str] = []

    def sub(m: re.Match) -> str:
        name = m.group(1)
        if name in tokens:
            return tokens[name]
        unknown.append(m.group(0))
        return m.group(0)

    return re.sub(token_re, sub, pattern), unknown


def jekyll_permalink(style: str) -> tuple[str, list[str]]:
    pattern = _JEKYLL_STYLES.get(style, style)
    return _translate(pattern, _JEKYLL_TOKENS, r":([a-z_]+)")


def hugo_permalink(pattern: str, section: str) -> tuple[str, list[str]]:
    tokens = dict(_HUGO_TOKENS, section=section, sections=section)
    return _translate(pattern, tokens, r":([a-z_]+)")


def pelican_permalink(pattern: str) -> tuple[str, list[str]]:
    tokens = {"slug": "{slug}", "lang": "{lang}", "category": "{categories}",
              "date:%Y": "{year}", "date:%m": "{month}", "date:%d": "{day}"}
    text, unknown = _translate(pattern, tokens, r"\{([^}]+)\}")
    return ("/" + text.lstrip("/")), unknown


def eleventy_permalink(template: str) -> tuple[str, list[str]]:
    tokens = {"page.fileSlug": "{slug}", "title | slugify": "{title}", "title | slug": "{title}",
              "slug": "{slug}", "page.lang": "{lang}", "lang": "{lang}"}
    text, unknown = _translate(template, tokens, r"\{\{-?\s*(.*?)\s*-?\}\}")
    text = re.sub(r"/index\.html$", "/", text)
    return text, unknown


def _set_permalink(d: Detected, pattern: str, unknown: list[str], source: str, fallback: str) -> None:
    if unknown or "{" not in pattern:
        d.guess("content.permalink", fallback,
                f"{source} uses {', '.join(unknown) or 'no placeholder'}, which publisher has no "
                f"placeholder for; check the URLs")
    else:
        d.found("content.permalink", pattern, source)


# --- the engines ------------------------------------------------------------------------

def _first(folder: Path, *names: str) -> Path | None:
    for name in names:
        if (folder / name).is_file():
            return folder / name
    return None


def _astro(folder: Path, marker: Path) -> Detected:
    d = Detected("astro", marker.name)
    config = _strip_js_comments(_text(marker))
    site = _js_string(config, "site")
    base = (_js_string(config, "base") or "").strip("/")
    if site and base:  # a site deployed to a sub-folder: every URL starts with base
        d.found("site.url", site.rstrip("/") + "/" + base, f"{marker.name}: site + base")
    elif site:
        d.found("site.url", site, f"{marker.name}: site")
    lang = _js_string(config, "defaultLocale")
    if lang:
        d.found("site.language", lang, f"{marker.name}: i18n.defaultLocale")
    consts = _first(folder / "src", "consts.ts", "consts.js", "config.ts", "site.config.ts")
    if consts:
        source = _text(consts)
        for key, names in (("site.title", ("SITE_TITLE", "title")),
                           ("site.description", ("SITE_DESCRIPTION", "description"))):
            for name in names:
                value = _js_string(source, name)
                if value:
                    d.found(key, value, f"{_rel(consts, folder)}: {name}")
                    break
    if "site.language" not in d.facts:
        for layout in sorted((folder / "src").glob("**/*.astro")):
            m = re.search(r"<html[^>]*\blang=[\"']([A-Za-z-]+)[\"']", _text(layout))
            if m:
                d.found("site.language", m.group(1), f"{_rel(layout, folder)}: <html lang>")
                break
    # The posts folder: the base of a glob() loader in the content config, else src/content/blog.
    collections = _first(folder / "src", "content.config.ts", "content.config.mjs",
                         "content.config.js", "content/config.ts", "content/config.mjs",
                         "content/config.js")
    bases: list[str] = []
    if collections:
        source = _strip_js_comments(_text(collections))
        for m in re.finditer(r"glob\s*\(\s*\{(.*?)\}\s*\)", source, flags=re.S):
            base = _js_string(m.group(1), "base")
            if base is None:  # base: `./${BLOG_PATH}` with BLOG_PATH a constant in this file
                ref = re.search(r"base\s*:\s*`\.?/?\$\{(\w+)\}`", m.group(1))
                base = _js_string(source, ref.group(1)) if ref else None
            if base:
                bases.append(base)
    # Several collections: the one whose folder is named like a blog's, else the first.
    chosen = next((b for b in bases if any(n in b for n in _POST_FOLDERS)), bases[0] if bases else None)
    if chosen and (folder / chosen).is_dir():
        d.found("content.dir", _rel(folder / chosen, folder), f"{_rel(collections, folder)}: glob base")
    else:
        posts = _posts_folder(folder / "src" / "content", folder)
        if posts:
            d.guess("content.dir", _rel(posts, folder), "the content collection that looks like the blog")
    # The URL: the folder of the dynamic route that renders a post.
    routes = sorted(p for p in (folder / "src" / "pages").glob("**/[[]*[]].astro")
                    if re.fullmatch(r"\[(\.\.\.)?(slug|id|post)\]\.astro", p.name))
    if routes:
        route = routes[0]
        prefix = _rel(route.parent, folder / "src" / "pages")
        parts = ["{lang}" if re.fullmatch(r"\[(lang|locale)\]", p) else p for p in prefix.split("/") if p != "."]
        pattern = "/" + "".join(p + "/" for p in parts) + "{slug}/"
        if "build" in config and re.search(r"format\s*:\s*['\"]file['\"]", config):
            pattern = pattern.rstrip("/") + ".html"
        d.found("content.permalink", pattern, f"src/pages/{_rel(route, folder / 'src' / 'pages')}")
        if list((folder / "src" / "pages").glob("rss.xml.*")):
            d.notes.append("src/pages/rss.xml.* already makes /rss.xml: publisher's feeds go to "
                           "public/, so rename one of them (e.g. set feeds.output_dir: public/feeds "
                           "and serve that folder at the root), or keep Astro's")
    d.guess("feeds.output_dir", "public", "Astro copies public/ to the site's root")
    return d


_HUGO_KEYS = {"baseurl", "languagecode", "defaultcontentlanguage", "theme", "permalinks",
              "contentdir", "taxonomies", "params", "menu", "menus", "languages", "paginate"}


def _hugo_config(folder: Path) -> tuple[dict, str] | None:
    for name in ("hugo.toml", "hugo.yaml", "hugo.yml", "hugo.json",
                 "config.toml", "config.yaml", "config.yml", "config.json"):
        path = folder / name
        if path.is_file():
            data = _load_data(path)
            if data is not None and (name.startswith("hugo.") or _HUGO_KEYS & set(_lower_keys(data))):
                return _lower_keys(data), name
    default = folder / "config" / "_default"
    if default.is_dir():
        merged: dict = {}
        names = []
        for path in sorted(default.iterdir()):
            if path.suffix not in (".toml", ".yaml", ".yml", ".json"):
                continue
            data = _load_data(path)
            if data is None:
                continue
            names.append(path.name)
            if path.stem in ("hugo", "config"):
                merged = {**_lower_keys(data), **merged}
            else:  # languages.toml, params.toml, permalinks.toml... are that key's value
                merged[path.stem.lower()] = _lower_keys(data)
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
    title = data.get("title") or lang_conf.get("title")
    if title:
        d.found("site.title", str(title), f"{marker}: title")
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
    if zone and _valid_timezone(zone):
        d.found("newsletter.timezone", str(zone), f"{marker}: timeZone")
    content = folder / str(lang_conf.get("contentdir") or data.get("contentdir") or "content")
    posts = _posts_folder(content, folder)
    if posts:
        d.guess("content.dir", _rel(posts, folder), f"the section of {_rel(content, folder)}/ that holds the posts")
        section = posts.name
    else:
        d.guess("content.dir", _rel(content, folder), "Hugo's content folder")
        section = ""
    permalinks = data.get("permalinks") if isinstance(data.get("permalinks"), dict) else {}
    page = permalinks.get("page") if isinstance(permalinks.get("page"), dict) else {}
    default = f"/{section}/{{path}}/" if section else "/{path}/"  # the content path
    pattern = page.get(section) or permalinks.get(section)
    if isinstance(pattern, str):
        text, unknown = hugo_permalink(pattern, section)
        label = where("permalinks", ("page." if pattern is page.get(section) else "") + section)
        _set_permalink(d, text, unknown, f"{label} = {pattern!r}", default)
    else:
        d.guess("content.permalink", default, f"Hugo's default URL for the {section or 'content'} section")
    if (posts and "{path}" not in d.value("content.permalink")
            and any(p.is_dir() and _markdown_count(p) and not (p / "index.md").exists()
                    for p in posts.iterdir())):
        d.notes.append(f"{_rel(posts, folder)}/ has sub-folders of posts: Hugo puts their folders "
                       f"in the URL, which {d.value('content.permalink')} does not")
    others = sorted(k for k in languages if k != str(lang or "en").lower())
    if others:
        d.notes.append(f"translations ({', '.join(others)}) get their own feeds under <lang>/")
    d.guess("feeds.output_dir", "static", "Hugo copies static/ to the site's root")
    return d


def _jekyll(folder: Path, marker: Path) -> Detected:
    d = Detected("jekyll", marker.name + ("/" if marker.is_dir() else ""))
    if marker.is_dir():  # no _config.yml: GitHub Pages builds such a site with Jekyll's defaults
        data = {}
    else:
        data = _load_data(marker)
        if data is None:
            d.notes.append(f"{marker.name}: not readable as YAML; nothing read from it")
            data = {}
    name = "_config.yml" if marker.is_dir() else marker.name
    if data.get("title"):
        d.found("site.title", str(data["title"]), f"{name}: title")
    url = str(data.get("url") or "").rstrip("/")
    if url:
        baseurl = str(data.get("baseurl") or "").strip("/")
        d.found("site.url", url + ("/" + baseurl if baseurl else ""),
                f"{name}: url" + (" + baseurl" if baseurl else ""))
    elif (folder / "CNAME").is_file() and _text(folder / "CNAME").strip():
        domain = _text(folder / "CNAME").split()[0].strip("/")
        d.guess("site.url", "https://" + domain, "CNAME: the GitHub Pages domain")
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
    if data.get("timezone") and _valid_timezone(data["timezone"]):
        d.found("newsletter.timezone", str(data["timezone"]), f"{name}: timezone")
    collections = str(data.get("collections_dir") or "").strip("/")
    posts = folder / collections / "_posts" if collections else folder / "_posts"
    d.found("content.dir", _rel(posts, folder), "Jekyll's posts folder")
    style = data.get("permalink")
    if style:
        text, unknown = jekyll_permalink(str(style))
        _set_permalink(d, text, unknown, f"{name}: permalink: {style}",
                       jekyll_permalink("date")[0])
    else:
        d.guess("content.permalink", jekyll_permalink("date")[0],
                "Jekyll's default permalink style (date)")
    d.guess("feeds.output_dir", "public", "Jekyll wipes _site/ at each build: copy public/ to "
            "the site's root when you deploy")
    d.notes.append(f"add config.yaml, public and .publisher to {name}'s exclude: list, so Jekyll "
                   "does not publish them")
    return d


def _eleventy(folder: Path, marker: Path) -> Detected:
    d = Detected("eleventy", marker.name)
    config = _strip_js_comments(_text(marker))
    dirs = re.search(r"\bdir\s*:\s*\{(.*?)\}", config, flags=re.S)
    block = dirs.group(1) if dirs else ""
    input_dir = _js_string(block, "input") or "."
    data_dir = _js_string(block, "data") or "_data"
    source = f"{marker.name}: dir.input" if dirs and _js_string(block, "input") else "Eleventy's default input folder"
    base = (folder / input_dir).resolve()
    data_base = (base / data_dir).resolve()
    meta = None
    for name in ("metadata.json", "metadata.js", "metadata.mjs", "metadata.cjs", "site.json", "site.js"):
        if (data_base / name).is_file():
            meta = data_base / name
            break
    if meta:
        label = _rel(meta, folder)
        if meta.suffix == ".json":
            values = _load_data(meta) or {}
            get = lambda key: values.get(key) if isinstance(values.get(key), str) else None  # noqa: E731
            author = values.get("author") if isinstance(values.get("author"), dict) else {}
            author_name = author.get("name")
            author_email = author.get("email")
        else:
            text = _strip_js_comments(_text(meta))
            get = lambda key: _js_string(text, key)  # noqa: E731
            block_m = re.search(r"\bauthor\s*:\s*\{(.*?)\}", text, flags=re.S)
            author_name = _js_string(block_m.group(1), "name") if block_m else None
            author_email = _js_string(block_m.group(1), "email") if block_m else None
        for key, name in (("site.title", "title"), ("site.url", "url"),
                          ("site.language", "language"), ("site.description", "description")):
            value = get(name)
            if value:
                d.found(key, value, f"{label}: {name}")
        if author_name:
            d.found("site.author.name", author_name, f"{label}: author.name")
        if author_email:
            d.found("site.author.email", author_email, f"{label}: author.email")
    posts = _posts_folder(base, folder)
    if posts:
        where = _rel(base, folder) + "/" if base != folder.resolve() else "the input folder"
        d.guess("content.dir", _rel(posts, folder), f"the posts folder in {where} ({source})")
        prefix = "/" + _rel(posts, base) + "/"
    else:
        d.guess("content.dir", _rel(base, folder), source)
        prefix = "/"
    default = prefix + "{slug}/"
    data_file = None
    if posts:
        for name in (f"{posts.name}.11tydata.js", f"{posts.name}.11tydata.json", f"{posts.name}.json"):
            if (posts / name).is_file():
                data_file = posts / name
                break
    template = _js_string(_strip_js_comments(_text(data_file)), "permalink") if data_file else None
    if template:
        text, unknown = eleventy_permalink(template)
        _set_permalink(d, text, unknown, f"{_rel(data_file, folder)}: permalink", default)
    else:
        d.guess("content.permalink", default, "Eleventy's default URL: the file's folder and name")
    passthrough = re.search(r"""addPassthroughCopy\(\s*\{\s*["']\./?public/?["']\s*:\s*["']/["']""", config)
    if passthrough:
        d.found("feeds.output_dir", "public", f"{marker.name}: public/ is copied to the site's root")
    else:
        d.guess("feeds.output_dir", "public", "add eleventyConfig.addPassthroughCopy({\"public\": \"/\"}) "
                "so Eleventy copies it to the site's root")
    return d


def _pelican(folder: Path, marker: Path) -> Detected:
    d = Detected("pelican", marker.name)
    conf = _text(marker)
    publish = _text(folder / "publishconf.py")
    for key, name in (("site.title", "SITENAME"), ("site.description", "SITESUBTITLE"),
                      ("site.language", "DEFAULT_LANG"), ("site.author.name", "AUTHOR"),
                      ("site.author.email", "EMAIL")):
        value = _py_string(conf, name)
        if value:
            d.found(key, value, f"{marker.name}: {name}")
    url = _py_string(publish, "SITEURL") or _py_string(conf, "SITEURL")
    if url:
        d.found("site.url", url, ("publishconf.py" if _py_string(publish, "SITEURL") else marker.name) + ": SITEURL")
    zone = _py_string(conf, "TIMEZONE")
    if zone and _valid_timezone(zone):
        d.found("newsletter.timezone", zone, f"{marker.name}: TIMEZONE")
    path = _py_string(conf, "PATH")
    content = folder / (path or "content")
    articles = _py_strings(conf, "ARTICLE_PATHS")
    if articles and len(articles) == 1:
        d.found("content.dir", _rel(content / articles[0], folder), f"{marker.name}: PATH + ARTICLE_PATHS")
    elif path:
        d.found("content.dir", _rel(content, folder), f"{marker.name}: PATH")
    else:
        d.guess("content.dir", "content", "Pelican's default PATH")
    pages = _py_strings(conf, "PAGE_PATHS")
    pages = ["pages"] if pages is None else pages  # Pelican's default PAGE_PATHS
    if not (articles and len(articles) == 1):  # pages are inside the posts folder: not posts
        excluded = [p.strip("/") + "/**" for p in pages if p and (content / p).is_dir()]
        if excluded:
            d.found("content.exclude", excluded,
                    f"{marker.name}: PAGE_PATHS" if _py_strings(conf, "PAGE_PATHS") is not None
                    else "Pelican's default PAGE_PATHS: pages are not articles")
    pattern = _py_string(publish, "ARTICLE_URL") or _py_string(conf, "ARTICLE_URL")
    if pattern:
        text, unknown = pelican_permalink(pattern)
        _set_permalink(d, text, unknown, f"ARTICLE_URL = {pattern!r}", "/{slug}.html")
    else:
        d.guess("content.permalink", "/{slug}.html", "Pelican's default ARTICLE_URL")
    d.found("content.markdown", "python-markdown", "Pelican renders Markdown with Python-Markdown")
    d.guess("feeds.output_dir", "public", "copy public/ to the site's root when you deploy "
            "(Pelican may empty output/ at each build)")
    return d


def _nanoc(folder: Path, marker: Path) -> Detected:
    d = Detected("nanoc", marker.name)
    data = _load_data(marker) or {}
    if isinstance(data.get("title"), str):
        d.found("site.title", data["title"], f"{marker.name}: title")
    url = data.get("base_url")
    if isinstance(url, str) and url:
        d.found("site.url", url, f"{marker.name}: base_url")
    posts = _posts_folder(folder / "content", folder)
    if posts:
        d.guess("content.dir", _rel(posts, folder), "the folder of content/ that holds the posts")
        d.guess("content.permalink", f"/{posts.name}/{{path}}/",
                "nanoc's default route (the file's path); check the route rules in Rules")
    else:
        d.guess("content.dir", "content", "nanoc's content folder")
        d.guess("content.permalink", "/{path}/", "nanoc's default route; check the route rules in Rules")
    d.guess("feeds.output_dir", "public", "copy public/ to the site's root when you deploy")
    return d


def detect(folder: Path) -> Detected:
    """Find the engine of the blog in `folder` and read what its config says. Reads only."""
    folder = Path(folder)
    for pattern in ("astro.config.mjs", "astro.config.js", "astro.config.ts", "astro.config.mts",
                    "astro.config.cjs"):
        if (folder / pattern).is_file():
            return _finish(_astro(folder, folder / pattern), folder)
    hugo_read = any((folder / name).is_file() for name in ("hugo.toml", "hugo.yaml", "hugo.yml", "hugo.json"))
    if hugo_read:  # (read once: a file refused is named once)
        found = _hugo_config(folder)
        if found:
            return _finish(_hugo(folder, *found), folder)
    jekyll = _first(folder, "_config.yml", "_config.yaml")
    if jekyll:
        return _finish(_jekyll(folder, jekyll), folder)
    posts = folder / "_posts"
    if posts.is_dir() and any(re.match(r"\d{4}-\d\d-\d\d-", p.name) for p in posts.iterdir()):
        return _finish(_jekyll(folder, posts), folder)  # _posts/YYYY-MM-DD-*: Jekyll's alone
    eleventy = _first(folder, "eleventy.config.js", "eleventy.config.mjs", "eleventy.config.cjs",
                      "eleventy.config.ts", ".eleventy.js", ".eleventy.cjs")
    if eleventy:
        return _finish(_eleventy(folder, eleventy), folder)
    if (folder / "pelicanconf.py").is_file():
        return _finish(_pelican(folder, folder / "pelicanconf.py"), folder)
    if (folder / "nanoc.yaml").is_file():
        return _finish(_nanoc(folder, folder / "nanoc.yaml"), folder)
    if (folder / "Rules").is_file() and (folder / "config.yaml").is_file():
        data = _load_data(folder / "config.yaml") or {}
        if "data_sources" in data:  # nanoc 3 kept its config in config.yaml
            return _finish(_nanoc(folder, folder / "config.yaml"), folder)
    found = None if hugo_read else _hugo_config(folder)
    if found:
        return _finish(_hugo(folder, *found), folder)
    return _finish(Detected(None), folder)


def _finish(d: Detected, folder: Path) -> Detected:
    """Fill what the engine's config did not say with guesses, each saying why."""
    f = d.facts
    if "site.title" not in f:
        d.guess("site.title", folder.resolve().name or "My blog", "the folder's name")
    if "site.url" not in f:
        d.guess("site.url", PLACEHOLDER_URL, "no site URL found: set your blog's address")
    else:  # an address without scheme ("//example.com", "example.com") cannot make links
        url = str(f["site.url"].value).rstrip("/")
        if url.startswith("//"):
            url = "https:" + url
        elif not re.match(r"https?://", url):
            url = "https://" + url
        f["site.url"].value = url
    if "site.language" not in f:
        d.guess("site.language", "en", "no language found")
    if d.engine and "content.dir" not in f:
        d.guess("content.dir", "content", "no posts folder found")
    if d.engine and "content.permalink" not in f:
        d.guess("content.permalink", "/blog/{slug}/", "no URL pattern found")
    if d.engine:
        d.found("content.dialect", d.engine, d.marker)
    return d


# --- writing ----------------------------------------------------------------------------

def _yaml_str(value: Any) -> str:
    return json.dumps(str(value), ensure_ascii=False)  # a JSON string is a YAML string


def _comment(fact: Fact | None) -> str:
    if fact is None:
        return ""
    return f"  # {'guessed: ' if fact.guessed else 'from '}{fact.source}"


def render_config(d: Detected) -> str:
    """The config.yaml text for what `detect` found: every key commented with its source."""
    f = d.facts
    engine = ENGINE_NAMES.get(d.engine or "", "")
    head = (f"# publisher's config for a {engine} blog, written by `publisher init` from {d.marker}.\n"
            if engine else "# publisher's config, written by `publisher init`.\n")
    lines = [head.rstrip("\n"),
             "# Each value says where it came from; check the guessed ones. Every key is documented",
             "# in publisher's README; `publisher check` validates this file.",
             "site:"]

    def key(indent: str, name: str, dotted: str, always: bool = True) -> None:
        fact = f.get(dotted)
        if fact is None and not always:
            return
        value = fact.value if fact else ""
        lines.append(f"{indent}{name}: {_yaml_str(value)}{_comment(fact)}")

    key("  ", "title", "site.title")
    key("  ", "url", "site.url")
    key("  ", "description", "site.description", always=False)
    key("  ", "language", "site.language")
    if "site.author.name" in f or "site.author.email" in f:
        lines.append("  author:")
        key("    ", "name", "site.author.name", always=False)
        key("    ", "email", "site.author.email", always=False)
    lines.append("content:")
    key("  ", "dir", "content.dir")
    if "content.dialect" in f:
        key("  ", "dialect", "content.dialect")
    else:
        lines.append("  dialect: auto  # posts as publisher reads them; astro|hugo|jekyll|eleventy|pelican|nanoc")
    key("  ", "permalink", "content.permalink")
    if "content.exclude" in f:
        lines.append(f"  exclude: {json.dumps(f['content.exclude'].value)}{_comment(f['content.exclude'])}")
    key("  ", "markdown", "content.markdown", always=False)
    lines.append("feeds:")
    if "feeds.output_dir" in f:
        key("  ", "output_dir", "feeds.output_dir")
    else:
        lines.append('  output_dir: "public"  # feeds are served at the site\'s root')
    lines.append("  limit: 20  # newest N items per feed; 0 = all")
    lines.append("newsletter:")
    lines.append('  from: ""  # e.g. "Blog <news@example.org>": set it to mail digests')
    lines.append('  schedule: "0 9 * * 1"  # 5-field cron: when a digest may go out (Mondays 09:00)')
    if "newsletter.timezone" in f:
        key("  ", "timezone", "newsletter.timezone")
    else:
        lines.append('  timezone: "UTC"  # of the schedule, and of post dates without an offset')
    lines.append("smtp:")
    lines.append('  host: "127.0.0.1"  # your mail relay; the password comes only from PUBLISHER_SMTP_PASSWORD')
    lines.append("  port: 25")
    lines.append("  security: none  # none | starttls | ssl")
    lines.append("state:")
    lines.append('  database: ".publisher/state.db"  # what was mailed to whom; keep it, back it up')
    return "\n".join(lines) + "\n"


_STARTER_POST = """\
---
title: "Hello, world"
description: "The first post of this blog: how publisher turns it into feeds and a newsletter."
pubDate: {date}
author: "{author}"
tags: ["meta"]
featured: true
---

This is the first post. Write the next one beside it, in `content/blog/`, with the same
front matter: a `title`, a `pubDate`, and optionally a `description`, `tags` and `featured`.

## What happens next

- `publisher build` writes `rss.xml`, `atom.xml` and `feed.json` into `public/`.
- `publisher run`, from cron, also mails a weekly digest of new posts to your subscribers.

Edit `config.yaml` to set your blog's title and address.
"""


def _is_empty(folder: Path) -> bool:
    return not any(not p.name.startswith(".") for p in folder.iterdir())


def init_site(folder: Path, config_path: Path, today: datetime | None = None) -> InitReport:
    """Detect the blog in `folder` and write `config_path`; in an empty folder, a starter site.
    Raises ConfigError (exit 2) if config_path exists: it is never overwritten."""
    folder = Path(folder)
    config_path = Path(config_path)
    if config_path.exists():
        raise ConfigError(f"{config_path}: already exists; nothing written (publisher init never "
                          f"overwrites a config: move it away, or pass --config OTHER.yaml)")
    if not folder.is_dir():
        raise ConfigError(f"{folder}: no such folder")
    report = InitReport()
    if _is_empty(folder):
        today = today or datetime.now(timezone.utc)
        d = Detected(None)
        d.guess("site.title", "My Blog", "a starter site")
        d.guess("site.url", PLACEHOLDER_URL, "a starter site: set your blog's address")
        d.guess("site.language", "en", "a starter site")
        d.found("content.dir", "content", "the starter's posts folder")
        d.found("content.permalink", "/blog/{slug}/", "the starter's URLs")
        post = folder / "content" / "blog" / "hello-world.md"
        post.parent.mkdir(parents=True, exist_ok=True)
        post.write_text(_STARTER_POST.format(date=today.strftime("%Y-%m-%dT00:00:00Z"),
                                             author="My Blog"), encoding="utf-8")
        _write(config_path, render_config(d))
        report.lines.append(f"empty folder: wrote a starter site: {config_path.name} and "
                            f"{_rel(post, folder)}")
        report.lines.append(ignore_private_files(config_path.parent))
        report.lines.append("next: edit config.yaml (title, url), then run `publisher build`")
        return report
    d = detect(folder)
    if d.engine:
        report.lines.append(f"found: {ENGINE_NAMES[d.engine]} blog ({d.marker})")
    else:
        report.lines.append("found: no known engine (Astro, Hugo, Jekyll, Eleventy, Pelican, nanoc); "
                            "writing a plain config")
        content = folder / "content"
        posts = content if content.is_dir() else _posts_folder(folder, folder)
        if posts:
            d.guess("content.dir", _rel(posts, folder), "the folder holding the most Markdown")
        else:
            d.guess("content.dir", "content", "no Markdown found")
        d.guess("content.permalink", "/blog/{slug}/", "publisher's default URLs")
        d.guess("feeds.output_dir", "public", "publisher's default")
    for key, fact in d.facts.items():
        if key == "content.dialect":
            continue
        kind = "guessed" if fact.guessed else "found"
        report.lines.append(f"{kind}: {key} = {fact.value} ({fact.source})")
    for note in d.notes:
        report.lines.append(f"note: {note}")
    _write(config_path, render_config(d))
    report.lines.append(f"wrote {config_path}; check the guessed values, then run `publisher check`")
    report.lines.append(ignore_private_files(config_path.parent))
    return report


# What publisher keeps beside config.yaml that holds subscribers' addresses and tokens: the
# state database (render_config's state.database) and its backups, the --dry-run messages and
# the preview. None of it belongs in the blog's repository (often public).
PRIVATE_PATHS = (".publisher/", "outbox/", "preview/")


def ignore_private_files(folder: Path) -> str:
    """Add PRIVATE_PATHS to folder/.gitignore (the entries missing only); the report line."""
    path = folder / ".gitignore"
    try:
        text = path.read_text(encoding="utf-8") if path.exists() else ""
        present = {line.strip().lstrip("/") for line in text.splitlines()}
        missing = [entry for entry in PRIVATE_PATHS if entry not in present and entry.rstrip("/") not in present]
        if not missing:
            return f"{path.name}: already ignores {', '.join(PRIVATE_PATHS)}"
        block = "# publisher: subscribers' addresses and tokens, never committed\n" + "\n".join(missing) + "\n"
        with open(path, "a", encoding="utf-8") as f:
            f.write(("\n" if text and not text.endswith("\n") else "") + block)
    except (OSError, UnicodeDecodeError) as e:
        why = e.strerror if isinstance(e, OSError) else "not UTF-8"
        return (f"warning: {path}: cannot add {', '.join(PRIVATE_PATHS)} ({why}): keep them out of "
                f"git yourself, they hold subscribers' addresses")
    return f"{path.name}: ignoring {', '.join(missing)} (subscribers' addresses and tokens)"


def _write(path: Path, text: str) -> None:
    try:
        with open(path, "x", encoding="utf-8") as f:  # "x": never over a file that appeared meanwhile
            f.write(text)
    except FileExistsError as e:
        raise ConfigError(f"{path}: already exists; nothing written") from e
    except OSError as e:
        raise ConfigError(f"{path}: cannot write: {e.strerror}") from e
