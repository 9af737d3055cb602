"""Hexo: a package.json depending on "hexo", or a _config.yml with Hexo's own keys beside
source/_posts/. Asked before Jekyll, which also keeps its config in _config.yml."""

from __future__ import annotations

import json
import re
import unicodedata
from datetime import date
from pathlib import Path

from ..config import Config
from ..content.frontmatter import read_text as field_text
from ..content.links import inside, site_folders
from ..content.text import slugify
from .base import (
    Detected, first_file, load_data, read_text, rel, set_permalink, site_yaml, translate, valid_timezone,
)
from .rules import Engine, Fields, Source, Syntax

NAME = "hexo"
LABEL = "Hexo"

# Hexo's permalink tokens (hexo/lib/plugins/filter/post_permalink.js). :title is the file's
# path under _posts/ without its extension (or the front matter's slug); :post_title the title.
_TOKENS = {"year": "{year}", "month": "{month}", "i_month": "{i_month}", "day": "{day}",
           "i_day": "{i_day}", "title": "{slug}", "name": "{slug}", "post_title": "{title}",
           "category": "{categories}", "lang": "{lang}"}
_DEFAULT = ":year/:month/:day/:title/"  # Hexo's default permalink
_OWN_KEYS = {"new_post_name", "source_dir", "public_dir", "default_layout", "render_drafts",
             "post_asset_folder", "relative_link", "future", "deploy"}


def hexo_permalink(pattern: str) -> tuple[str, list[str]]:
    """Hexo's tokens as publisher's placeholders; the pattern is root-relative, '/' added."""
    text, unknown = translate(pattern, _TOKENS, r":([a-z_]+)")
    return "/" + text.lstrip("/"), unknown


def _hexo(folder: Path, marker: Path, config: Path | None) -> Detected:
    d = Detected(NAME, marker.name)
    data = (load_data(config) if config else None) or {}
    name = config.name if config else "_config.yml"
    for key, setting in (("site.title", "title"), ("site.description", "description"),
                         ("site.author.name", "author"), ("site.language", "language")):
        value = data.get(setting)
        if isinstance(value, list):  # language: [en, fr]: the first is the default
            value = value[0] if value else None
        if isinstance(value, str) and value.strip():
            d.found(key, value.strip(), f"{name}: {setting}")
    url = str(data.get("url") or "").rstrip("/")
    if url and "example.com" not in url:  # Hexo's scaffold ships url: http://example.com
        d.found("site.url", url, f"{name}: url")
    zone = data.get("timezone")
    if zone and valid_timezone(zone):
        d.found("newsletter.timezone", str(zone), f"{name}: timezone")
    source = str(data.get("source_dir") or "source").strip("/")
    d.found("content.dir", rel(folder / source / "_posts", folder),
            f"{name}: source_dir" if data.get("source_dir") else "Hexo's posts folder (source/_posts)")
    pattern = str(data.get("permalink") or _DEFAULT)
    text, unknown = hexo_permalink(pattern)
    set_permalink(d, text, unknown, f"{name}: permalink: {pattern}" if data.get("permalink")
                  else f"Hexo's default permalink {_DEFAULT}", hexo_permalink(_DEFAULT)[0])
    d.guess("feeds.output_dir", f"{source}", f"Hexo copies {source}/ (files not starting with _) "
            "to the site's root")
    return d


def detect(folder: Path) -> Detected | None:
    config = first_file(folder, "_config.yml", "_config.yaml")
    package = folder / "package.json"
    if package.is_file():
        try:
            manifest = json.loads(read_text(package))
        except ValueError:
            manifest = {}
        deps = {}
        for key in ("dependencies", "devDependencies"):
            if isinstance(manifest, dict) and isinstance(manifest.get(key), dict):
                deps.update(manifest[key])
        if "hexo" in deps:
            return _hexo(folder, package, config)
    if config and (folder / "source" / "_posts").is_dir():
        data = load_data(config) or {}
        if _OWN_KEYS & set(data) or str(data.get("permalink") or "").startswith(":year"):
            return _hexo(folder, config, config)
    return None


# --- the engine's posts: what its files and front matter mean -------------------------

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
    syntax = Syntax(tag_plugins=True)
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
        return field_text(meta.get("slug"), "slug") or src.base

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


def hexo_slugize(text: str) -> str:
    """hexo-util's slugize (what :post_title is): diacritics dropped, control characters
    removed, each run of spaces and ~`!@#$%^&*()-_+=[]{}|\\;:"'<>,.?/ one '-', trimmed; case kept
    (filename_case: 0, the default)."""
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    text = re.sub(r"[\x00-\x1f]", "", text)
    text = re.sub(r"""[\s~`!@#$%^&*()\-_+=\[\]{}|\\;:"'<>,.?/]+""", "-", text)
    return text.strip("-")


_HEXO_SEGMENTS = {"year": r"(\d{4})", "month": r"(\d{2})", "day": r"(\d{2})", "i_month": r"(\d{1,2})",
                  "i_day": r"(\d{1,2})", "hash": r"([0-9a-f]{12})"}


def hexo_filename(pattern: str, rel: str) -> dict[str, str]:
    """hexo-util's Permalink(new_post_name without its extension).parse(path): {} when the
    path does not match."""
    pattern = pattern.rsplit(".", 1)[0] if "." in pattern.rsplit("/", 1)[-1] else pattern
    names: list[str] = []

    def segment(m: re.Match) -> str:
        names.append(m.group(1))
        return _HEXO_SEGMENTS.get(m.group(1), "(.+?)")
    regex = re.sub(r":(\w+)", segment, re.escape(pattern).replace("\\:", ":"))
    m = re.fullmatch(regex, rel)
    return dict(zip(names, m.groups())) if m else {}


def hexo_config(config: Config) -> dict:
    """The Hexo site's _config.yml (at the site folder, or above content.dir's source/_posts)."""
    folders = site_folders(config)
    for folder in (config.root, config.content_dir, config.content_dir.parent, config.content_dir.parent.parent):
        path = Path(folder) / "_config.yml"
        if path.is_file() and inside(path, folders) is not None:
            try:
                st = path.stat()
            except OSError:
                return {}
            return site_yaml(str(path), st.st_mtime_ns, st.st_size)
    return {}


RULES = Hexo()
