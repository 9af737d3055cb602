"""Docusaurus: docusaurus.config.{js,mjs,ts}. Its blog plugin publishes blog/ (or the
plugin's `path`) under `routeBasePath`: `2024-05-01-name.md` at /blog/2024/05/01/name, with
no trailing slash unless the site sets `trailingSlash: true`."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from .base import Detected, first_file, js_object, js_string, js_top_level, read_text, rel, strip_js_comments
from ..content.frontmatter import read_text as field_text
from .rules import Engine, Fields, Source, Syntax

NAME = "docusaurus"
LABEL = "Docusaurus"
MARKERS = ("docusaurus.config.js", "docusaurus.config.mjs", "docusaurus.config.ts",
           "docusaurus.config.mts", "docusaurus.config.cjs")
_DATED = re.compile(r"^\d{4}-\d\d-\d\d[-_]")


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
    names = [p.name for p in posts.iterdir()] if posts.is_dir() else []
    dated = sum(1 for n in names if _DATED.match(n))
    how = (f"Docusaurus's blog URL ({prefix}, date folders from the file name, "
           + ("a trailing slash: trailingSlash is true)" if slash else "no trailing slash unless trailingSlash: true)"))
    if dated * 2 > len(names):
        d.found("content.permalink", prefix + "{year}/{month}/{day}/{slug}" + slash, how)
        if dated < len(names):
            d.notes.append(f"{rel(posts, folder)}: posts without a YYYY-MM-DD- name are at {prefix}<slug>"
                           f"{slash} in Docusaurus, not under the date folders")
    else:
        d.found("content.permalink", prefix + "{slug}" + slash, how)
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


# plugin-content-blog's blogUtils.ts DATE_FILENAME_REGEX, on the path under the blog folder:
# a date anywhere in it (the folders before it come after the date folders in the URL).
_DATE_FILENAME = re.compile(r"^(?P<folder>.*?)(?P<y>\d{4})[-/](?P<m>\d{1,2})[-/](?P<d>\d{1,2})[-/]?"
                            r"(?P<text>.*?)(?:/index)?\.mdx?$")


class Docusaurus(Engine):
    """Docusaurus's blog (plugin-content-blog's blogUtils.ts, parseBlogFileName and
    processBlogSourceFile): a post's URL is routeBasePath and then its slug, the front
    matter's `slug` if it has one, else the path under the blog folder: `2021-02-22-x.md` is
    2021/02/22/x (the date folders are the file name's, as written, whatever `date` says),
    `x.md` is x, the text kept as written (`es2015+`); the date is `date`, else the file
    name's. Its .md files are MDX; its admonitions and heading ids are resolved (syntax.py)."""

    name = "docusaurus"
    # its admonitions plugin, heading ids, and .md compiled as MDX (siteConfig.markdown.format:
    # 'mdx', the default in Docusaurus 3)
    syntax = Syntax(admonitions=ADMONITIONS, admonition_title_after_name=True, heading_ids=True, md_is_mdx=True,
                    js_yaml=True)  # gray-matter's js-yaml

    @staticmethod
    def _relative(src: Source) -> str:
        return "/".join(src.parts)

    def url_date_parts(self, src: Source) -> tuple[str, str, str]:
        m = _DATE_FILENAME.match(self._relative(src))
        return (m.group("y"), m.group("m"), m.group("d")) if m else ("", "", "")

    def slug(self, meta: dict, src: Source, title: str) -> str:
        rel = self._relative(src)
        m = _DATE_FILENAME.match(rel)
        if m:
            return m.group("folder") + m.group("text")
        return re.sub(r"(?:/index)?\.(?:mdx?|markdown)$", "", rel)

    def stem(self, meta: dict, src: Source) -> str:
        return self.slug(meta, src, "")

    def explicit_path(self, meta: dict, src: Source, fields: Fields) -> str | None:
        """The front matter's `slug` (Docusaurus has no `url` or `permalink` key): the URL is
        the blog's route and that slug (finished_path puts the route in front)."""
        value = field_text(meta.get("slug"), "slug")
        return "/" + value.strip("/") if value.strip("/") else None

    def finished_path(self, path: str, explicit: bool, template: str) -> str:
        if not explicit:
            return path
        # A `slug` replaces what follows the blog's route: the permalink's part before its
        # first placeholder (/blog/{year}/... is /blog), a trailing '/' kept as it has one.
        route = template.split("{", 1)[0].rstrip("/") if "{" in template else ""
        path = route + path
        return path if not template.endswith("/") or path.endswith("/") else path + "/"


RULES = Docusaurus()
