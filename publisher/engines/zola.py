"""Zola: a config.toml with `base_url` beside a content/ folder of TOML (`+++`) front matter."""

from __future__ import annotations

import re
from pathlib import Path

from ..datafiles import DataError, load_toml
from .base import MARKDOWN, SKIP_DIRS, Detected, load_data, posts_folder, read_text, rel

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
    if posts and (posts / "_index.md").is_file():
        d.guess("content.dir", rel(posts, folder), "the section of content/ that holds the posts")
        d.guess("content.permalink", f"/{posts.name}/{{path}}/",
                "Zola's URL: the file's path in its section; a page's `path` or `slug` replaces it")
    else:
        d.guess("content.dir", "content", "Zola's content folder")
        d.guess("content.permalink", "/{path}/",
                "Zola's URL: the file's path under content/; a page's `path` or `slug` replaces it")
    d.guess("feeds.output_dir", "static", "Zola copies static/ to the site's root")
    return d


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
