"""Astro: astro.config.* names it; site/base, the content collection's glob base, the post route."""

from __future__ import annotations

import os
import re
from datetime import date, datetime, timezone, tzinfo
from pathlib import Path
from typing import Any

from ..config import Config
from ..content.frontmatter import Skip
from ..content.frontmatter import read_text as field_text
from ..content.slugs import github_slug
from ..datafiles import brace_end
from .base import (
    POST_FOLDERS, Detected, first_file, js_object, js_string, js_top_level, posts_folder, read_text, rel,
    strip_js_comments,
)
from .rules import MARKDOWN_PLUGINS, Engine, Source, Syntax

NAME = "astro"
LABEL = "Astro"


def _astro(folder: Path, marker: Path) -> Detected:
    d = Detected("astro", marker.name)
    config = strip_js_comments(read_text(marker))
    site_url(d, folder, marker, config)
    lang = js_string(config, "defaultLocale")
    if lang:
        d.found("site.language", lang, f"{marker.name}: i18n.defaultLocale")
    consts = first_file(folder / "src", "consts.ts", "consts.js", "config.ts", "site.config.ts")
    if consts:
        source = read_text(consts)
        for key, names in (("site.title", ("SITE_TITLE", "title")),
                           ("site.description", ("SITE_DESCRIPTION", "description"))):
            for name in names:
                value = js_string(source, name)
                if value:
                    d.found(key, value, f"{rel(consts, folder)}: {name}")
                    break
    if "site.language" not in d.facts:
        for layout in sorted((folder / "src").glob("**/*.astro")):
            m = re.search(r"<html[^>]*\blang=[\"']([A-Za-z-]+)[\"']", read_text(layout))
            if m:
                d.found("site.language", m.group(1), f"{rel(layout, folder)}: <html lang>")
                break
    # The posts folder: the collection named like a blog's (its name or folder), else the one
    # a post route renders (getCollection("x")), else the first; a glob() loader's base, or
    # src/content/<name> for a collection without a loader (Astro 5's legacy collections).
    collections = first_file(folder / "src", "content.config.ts", "content.config.mjs",
                             "content.config.js", "content/config.ts", "content/config.mjs",
                             "content/config.js")
    found = _collections(strip_js_comments(read_text(collections))) if collections else {}
    pages = folder / "src" / "pages"
    routes = sorted((p for p in pages.glob("**/*.astro") if _post_route(rel(p, pages))), key=_route_rank)
    rendered = {p: _rendered_collection(p) for p in routes}

    def bloglike(text: str) -> bool:
        return any(f in text.lower() for f in POST_FOLDERS)

    name = next((n for n, base in found.items() if bloglike(n) or bloglike(base or "")), None)
    name = name or next((c for c in rendered.values() if c in found), None) or next(iter(found), None)
    base = found.get(name) if name else None
    chosen = base or (f"src/content/{name}" if name else None)
    if chosen and (folder / chosen).is_dir():
        d.found("content.dir", rel(folder / chosen, folder),
                f"{rel(collections, folder)}: glob base" if base else
                f"{rel(collections, folder)}: collection {name} (no loader: {chosen})")
    else:
        posts = posts_folder(folder / "src" / "content", folder)
        if posts:
            d.guess("content.dir", rel(posts, folder), "the content collection that looks like the blog")
    # The URL: the dynamic route that renders a post, its [params] as placeholders; of several,
    # the one that renders the posts' collection, else one under a blog-like folder; never one
    # that only redirects old addresses (AstroPaper's aliases) while another is there.
    routes.sort(key=lambda p: (_route_rank(p)[0], rendered[p] != name if name else False,
                               not bloglike(rel(p, pages)), *_route_rank(p)[1:]))
    if routes:
        route = routes[0]
        pattern = "/" + "".join(_placeholder(p) + "/" for p in _post_route(rel(route, pages)))
        if "{year}" in pattern and d.value("content.dir") and _dated_names(folder / d.value("content.dir")):
            d.guess("content.dialect", "auto", f"src/pages/{rel(route, pages)} takes the date from "
                    "the YYYY-MM-DD- file names, which the astro dialect does not read")
        if "build" in config and re.search(r"format\s*:\s*['\"]file['\"]", config):
            pattern = pattern.rstrip("/") + ".html"
        d.found("content.permalink", pattern, f"src/pages/{rel(route, pages)}")
        if list((folder / "src" / "pages").glob("rss.xml.*")):
            d.notes.append("src/pages/rss.xml.* already makes /rss.xml: publisher's feeds go to "
                           "public/, so rename one of them (e.g. set feeds.output_dir: public/feeds "
                           "and serve that folder at the root), or keep Astro's")
    d.guess("feeds.output_dir", "public", "Astro copies public/ to the site's root")
    return d


def _route_rank(route: Path) -> tuple:
    """A page that only redirects (a meta refresh, Astro.redirect: AstroPaper-style aliases)
    last; then the shallower."""
    redirect = bool(re.search(r"http-equiv=[\"']?refresh|Astro\.redirect\s*\(", read_text(route), re.I))
    return (redirect, len(route.parts), str(route))


def _rendered_collection(route: Path) -> str | None:
    """The collection a route's getCollection("x") (or getEntry) reads, if it names one."""
    m = re.search(r"\bget(?:Collection|Entry)\s*\(\s*[\"']([\w$-]+)[\"']", read_text(route))
    return m.group(1) if m else None


def _collections(source: str) -> dict[str, str | None]:
    """The content config's collections, by the name getCollection() takes: each its glob()
    loader's base, or None for one defined without a loader (Astro 5 reads such a legacy
    collection from src/content/<name>). Collections with another loader are left out."""
    bodies: dict[str, str] = {}
    for m in re.finditer(r"(?:const|let|var)\s+([A-Za-z_$][\w$]*)\s*=\s*defineCollection\s*\(\s*\{", source):
        end = brace_end(source, m.end() - 1)
        bodies[m.group(1)] = source[m.end():end - 1] if end != -1 else ""
    listed = js_object(source, r"(?<![\w$.])collections\s*=")
    pairs = re.findall(r"""(?:^|,)\s*(?:["']?([\w$-]+)["']?\s*:\s*)?([A-Za-z_$][\w$]*)\s*(?=,|$)""",
                       js_top_level(listed).strip()) if listed is not None else []
    names = {(key or var): var for key, var in pairs} or {var: var for var in bodies}
    found: dict[str, str | None] = {}
    for name, var in names.items():
        body = bodies.get(var)
        if body is None:
            continue
        g = re.search(r"glob\s*\(\s*\{(.*?)\}\s*\)", body, flags=re.S)
        if g:
            base = js_string(g.group(1), "base")
            if base is None:  # base: `./${BLOG_PATH}` with BLOG_PATH a constant in this file
                ref = re.search(r"base\s*:\s*`\.?/?\$\{(\w+)\}`", g.group(1))
                base = js_string(source, ref.group(1)) if ref else None
            if base:
                found[name] = base.removeprefix("./")
        elif not re.search(r"\bloader\s*:", body):
            found[name] = None
    return found


# A post route's segments: [slug].astro, [...slug].astro, [...slug]/index.astro, [id], [post],
# under folders and [year]/[month]/[day]/[lang] params. Not a listing ([...page], [tag]).
_ROUTE_PARAMS = {"year": "{year}", "month": "{month}", "day": "{day}", "lang": "{lang}",
                 "locale": "{lang}", "slug": "{slug}", "id": "{slug}", "post": "{slug}"}
_POST_PARAM = re.compile(r"\[(\.\.\.)?(slug|id|post)\]")


def _placeholder(segment: str) -> str:
    """A route folder's name as it is in the URL; a [param] as publisher's placeholder."""
    return _ROUTE_PARAMS[segment.strip("[]").lstrip(".")] if segment.startswith("[") else segment


def _post_route(path: str) -> list[str] | None:
    """The URL segments of a route file that renders one post (its last parameter names the
    post), or None."""
    parts = path.split("/")
    last = parts.pop()
    if last == "index.astro" and parts and _POST_PARAM.fullmatch(parts[-1]):
        pass
    elif _POST_PARAM.fullmatch(last.removesuffix(".astro")):
        parts.append(last.removesuffix(".astro"))
    else:
        return None
    params = [p.strip("[]").lstrip(".") for p in parts if p.startswith("[")]
    if any(p not in _ROUTE_PARAMS for p in params):
        return None
    return parts


def _dated_names(posts: Path) -> bool:
    """Most of the collection's files are named YYYY-MM-DD-slug (a route that dates posts then
    reads the date from the id, as the site's own getStaticPaths does)."""
    names = [p.name for p in posts.rglob("*") if p.suffix in (".md", ".mdx", ".markdown")]
    dated = sum(1 for n in names if re.match(r"\d{4}-\d\d-\d\d-", n))
    return bool(names) and dated * 2 > len(names)


def _imported(folder: Path, marker: Path, config: str, name: str) -> Path | None:
    """The file `name` is imported from (`import { SITE } from "./src/config"`), if local."""
    m = re.search(r"import\s*\{[^}]*\b" + re.escape(name) + r"\b[^}]*\}\s*from\s*[\"'](\.[^\"']+)[\"']", config)
    if not m:
        return None
    base = (marker.parent / m.group(1)).resolve()
    for candidate in (base, *(base.with_name(base.name + s) for s in (".ts", ".js", ".mjs", ".mts"))):
        if candidate.is_file() and folder.resolve() in candidate.parents:
            return candidate
    return None


def _config_value(folder: Path, marker: Path, config: str, key: str, top: str) -> tuple[str, str, bool] | None:
    """`key`'s value in astro.config (`top`: the config object's own keys, what its nested
    objects hold blanked): a string literal; `key: SITE.website` with SITE imported from a
    local file where `website:` is a literal; or `key` naming a const computed from several
    values, whose first URL literal is a guess. (value, where, guessed) or None."""
    value = js_string(top, key)
    if value is not None:
        return value, f"{marker.name}: {key}", False
    m = re.search(r"(?<![\w$.])" + key + r"\s*:\s*([A-Za-z_$][\w$]*)\.([A-Za-z_$][\w$]*)", top)
    if m:
        source = _imported(folder, marker, config, m.group(1))
        value = js_string(strip_js_comments(read_text(source)), m.group(2)) if source else None
        if value is not None:
            return value, f"{rel(source, folder)}: {m.group(1)}.{m.group(2)}", False
        return None
    m = re.search(r"(?<![\w$.])" + key + r"\s*(?::\s*([A-Za-z_$][\w$]*))?\s*[,}\n]", top)
    name = (m.group(1) or key) if m else None
    const = re.search(r"(?:const|let|var)\s+" + re.escape(name) + r"\s*=(.*?)(?:;|\n\s*\n|\n(?=\S))",
                      config, flags=re.S) if name else None
    if const:
        urls = [s for q, s in re.findall(r"""(["'])((?:https?:)?//[^"'$]+)\1""", const.group(1))]
        if urls:
            return urls[0], f"{marker.name}: the first address in const {name} (computed at build)", True
    return None


def site_url(d: Detected, folder: Path, marker: Path, config: str) -> None:
    """site.url from astro.config's `site` and `base` (a site deployed to a sub-folder: every
    URL starts with base). Only the config's own keys: a `base` in an integration's options
    (a sidebar link's, a changelog plugin's) is not Astro's."""
    block = js_object(config, r"defineConfig\s*\(")
    if block is None:
        block = js_object(config, r"export\s+default")
    top = js_top_level(block) if block is not None else config
    site = _config_value(folder, marker, config, "site", top)
    if not site:
        return
    base = _config_value(folder, marker, config, "base", top)
    url, where, guessed = site
    if base and base[0].strip("/"):
        url, where = url.rstrip("/") + "/" + base[0].strip("/"), f"{where} + {base[1].split(': ', 1)[-1]}"
    (d.guess if guessed else d.found)("site.url", url, where)


MARKERS = ("astro.config.mjs", "astro.config.js", "astro.config.ts", "astro.config.mts", "astro.config.cjs")


def detect(folder: Path) -> Detected | None:
    marker = first_file(folder, *MARKERS)
    return _astro(folder, marker) if marker else None


# --- the engine's posts: what its files and front matter mean -------------------------

# ECMAScript's date-only forms (YYYY, YYYY-MM, YYYY-MM-DD), which Date.parse reads as UTC.
_ISO_DATE_ONLY = re.compile(r"\d{4}(?:-\d{2}(?:-\d{2})?)?")


class Astro(Engine):
    """Content collections: the id is the path under the collection, github-slugged, or the
    front matter's `slug`; the starter publishes /blog/<id>/. No date from the file name."""

    name = "astro"
    # Astro's Markdown has no directives; a site's astro.config may add some (site_variables)
    syntax = Syntax(markdown_plugins=True, js_yaml=True)  # (its front matter: js-yaml)
    # The blog starter's pubDate/updatedDate; AstroPaper's (a very common theme's)
    # pubDatetime/modDatetime; then the contract's other aliases.
    date_keys = ("pubDate", "pubDatetime", *Engine.date_keys[1:-1])
    updated_keys = ("updatedDate", "modDatetime", *Engine.updated_keys[1:-1])
    date_from_file_name = False

    def date_zone(self, value: Any, config: Config) -> tzinfo:
        """z.coerce.date() is `new Date(value)`: a YAML timestamp or date (js-yaml) and an ISO
        date-only string are UTC; any other string without offset (`2024-05-03T23:30`,
        `Jul 08 2022`) is in the build's local zone, which newsletter.timezone stands for."""
        if isinstance(value, (date, datetime)) or (isinstance(value, str) and _ISO_DATE_ONLY.fullmatch(value.strip())):
            return timezone.utc
        return config.tz

    def data(self, meta: dict, path: Path, src: Source, config: Config) -> dict:
        """The glob loader opens `new URL(encodeURI(entry), base)`: a '#' or '?' in the path
        starts the URL's fragment or query, so Astro reads no such file (it logs ENOENT and
        publishes nothing)."""
        if any(c in part for part in src.parts for c in "#?"):
            raise Skip("Astro cannot load a file whose path holds '#' or '?' (its glob loader logs ENOENT "
                       "and publishes nothing): rename it")
        return meta

    def site_variables(self, root: str, files: Any) -> dict[str, Any]:
        """The Markdown plugins astro.config's markdown options add (content/syntax.py renders
        what they would): remark-directive, or satteri's `directive: true` (Fuwari, Cactus: `:::note` asides, their
        [label] the title; a leaf `::name{...}` a theme component; `:name[text]` its text), and
        a plugin turning GitHub's `> [!NOTE]` alerts into admonitions."""
        marker = next((os.path.join(root, m) for m in MARKERS if os.path.isfile(os.path.join(root, m))), None)
        text = files.load(marker, str) if marker else None
        return {MARKDOWN_PLUGINS: remark_plugins(strip_js_comments(text))} if isinstance(text, str) else {}

    def slug(self, meta: dict, src: Source, title: str) -> str:
        explicit = field_text(meta.get("slug"), "slug")
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


# The admonitions a remark-directive site's components render: GitHub's alert types (what
# remark-github-admonitions-to-directives makes) and the other usual ones, titled by type.
_DIRECTIVE_TYPES = tuple((t, t.capitalize(), t) for t in
                         ("note", "tip", "important", "warning", "caution", "danger", "info"))
_GITHUB_ALERTS = re.compile(r"github[\w-]*(?:alert|admonition|blockquote|callout)"
                            r"|(?:alert|admonition|callout)s?[\w-]*github", re.I)


def remark_plugins(config: str) -> dict[str, Any]:
    """What an astro.config's Markdown plugins add, as Syntax.markdown_plugins describes."""
    found: dict[str, Any] = {}
    # remark-directive, or Astro 7's satteri processor with `features: { directive: true }`
    if re.search(r"""(?:from\s+|require\s*\(\s*)["']remark-directive["']|(?<![\w$])directive\s*:\s*true""", config):
        found.update(admonitions=_DIRECTIVE_TYPES, text_directives=True, leaf_directives=True)
    if _GITHUB_ALERTS.search(config):
        found["github_alerts"] = True
    return found


RULES = Astro()
