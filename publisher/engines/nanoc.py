"""nanoc: nanoc.yaml (nanoc 3: config.yaml with data_sources beside Rules)."""

from __future__ import annotations

from pathlib import Path

from .base import Detected, load_data, posts_folder, rel
from .rules import Engine, Source

NAME = "nanoc"
LABEL = "nanoc"


def _nanoc(folder: Path, marker: Path) -> Detected:
    d = Detected("nanoc", marker.name)
    data = load_data(marker) or {}
    if isinstance(data.get("title"), str):
        d.found("site.title", data["title"], f"{marker.name}: title")
    url = data.get("base_url")
    if isinstance(url, str) and url:
        d.found("site.url", url, f"{marker.name}: base_url")
    posts = posts_folder(folder / "content", folder)
    if posts:
        d.guess("content.dir", rel(posts, folder), "the folder of content/ that holds the posts")
        d.guess("content.permalink", f"/{posts.name}/{{path}}/",
                "nanoc's default route (the file's path); check the route rules in Rules")
    else:
        d.guess("content.dir", "content", "nanoc's content folder")
        d.guess("content.permalink", "/{path}/", "nanoc's default route; check the route rules in Rules")
    d.guess("feeds.output_dir", "public", "copy public/ to the site's root when you deploy")
    return d

def detect(folder: Path) -> Detected | None:
    if (folder / "nanoc.yaml").is_file():
        return _nanoc(folder, folder / "nanoc.yaml")
    if (folder / "Rules").is_file() and (folder / "config.yaml").is_file():
        data = load_data(folder / "config.yaml") or {}
        if "data_sources" in data:  # nanoc 3 kept its config in config.yaml
            return _nanoc(folder, folder / "config.yaml")
    return None


# --- the engine's posts: what its files and front matter mean -------------------------

class Nanoc(Engine):
    """The Blogging helper's articles: `kind: article`, dated by `created_at` (or the file
    name). Other items are pages of the site, not posts."""

    name = "nanoc"
    date_keys = ("created_at", "pubDate", "date", "publishDate", "published")

    def is_post(self, meta: dict, src: Source, path: Path) -> bool:
        return meta.get("kind") == "article"


RULES = Nanoc()
