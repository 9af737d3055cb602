"""Eleventy: eleventy.config.* or .eleventy.js; dir.input, _data/metadata, the permalink in the
posts folder's data file."""

from __future__ import annotations

import re
from pathlib import Path

from .base import (
    Detected, first_file, js_string, load_data, posts_folder, read_text, rel, set_permalink,
    strip_js_comments, translate,
)

NAME = "eleventy"
LABEL = "Eleventy"


def eleventy_permalink(template: str) -> tuple[str, list[str]]:
    tokens = {"page.fileSlug": "{slug}", "title | slugify": "{title}", "title | slug": "{title}",
              "slug": "{slug}", "page.lang": "{lang}", "lang": "{lang}"}
    text, unknown = translate(template, tokens, r"\{\{-?\s*(.*?)\s*-?\}\}")
    text = re.sub(r"/index\.html$", "/", text)
    return text, unknown


def _eleventy(folder: Path, marker: Path) -> Detected:
    d = Detected("eleventy", marker.name)
    config = strip_js_comments(read_text(marker))
    dirs = re.search(r"\bdir\s*:\s*\{(.*?)\}", config, flags=re.S)
    block = dirs.group(1) if dirs else ""
    input_dir = js_string(block, "input") or "."
    data_dir = js_string(block, "data") or "_data"
    source = f"{marker.name}: dir.input" if dirs and js_string(block, "input") else "Eleventy's default input folder"
    base = (folder / input_dir).resolve()
    data_base = (base / data_dir).resolve()
    meta = None
    for name in ("metadata.json", "metadata.js", "metadata.mjs", "metadata.cjs", "site.json", "site.js"):
        if (data_base / name).is_file():
            meta = data_base / name
            break
    if meta:
        label = rel(meta, folder)
        if meta.suffix == ".json":
            values = load_data(meta) or {}
            get = lambda key: values.get(key) if isinstance(values.get(key), str) else None  # noqa: E731
            author = values.get("author") if isinstance(values.get("author"), dict) else {}
            author_name = author.get("name")
            author_email = author.get("email")
        else:
            text = strip_js_comments(read_text(meta))
            get = lambda key: js_string(text, key)  # noqa: E731
            block_m = re.search(r"\bauthor\s*:\s*\{(.*?)\}", text, flags=re.S)
            author_name = js_string(block_m.group(1), "name") if block_m else None
            author_email = js_string(block_m.group(1), "email") if block_m else None
        for key, name in (("site.title", "title"), ("site.url", "url"),
                          ("site.language", "language"), ("site.description", "description")):
            value = get(name)
            if value:
                d.found(key, value, f"{label}: {name}")
        if author_name:
            d.found("site.author.name", author_name, f"{label}: author.name")
        if author_email:
            d.found("site.author.email", author_email, f"{label}: author.email")
    posts = posts_folder(base, folder)
    if posts:
        where = rel(base, folder) + "/" if base != folder.resolve() else "the input folder"
        d.guess("content.dir", rel(posts, folder), f"the posts folder in {where} ({source})")
        prefix = "/" + rel(posts, base) + "/"
    else:
        d.guess("content.dir", rel(base, folder), source)
        prefix = "/"
    default = prefix + "{slug}/"
    data_file = None
    if posts:
        for name in (f"{posts.name}.11tydata.js", f"{posts.name}.11tydata.json", f"{posts.name}.json"):
            if (posts / name).is_file():
                data_file = posts / name
                break
    template = js_string(strip_js_comments(read_text(data_file)), "permalink") if data_file else None
    if template:
        text, unknown = eleventy_permalink(template)
        set_permalink(d, text, unknown, f"{rel(data_file, folder)}: permalink", default)
    else:
        d.guess("content.permalink", default, "Eleventy's default URL: the file's folder and name")
    passthrough = re.search(r"""addPassthroughCopy\(\s*\{\s*["']\./?public/?["']\s*:\s*["']/["']""", config)
    if passthrough:
        d.found("feeds.output_dir", "public", f"{marker.name}: public/ is copied to the site's root")
    else:
        d.guess("feeds.output_dir", "public", "add eleventyConfig.addPassthroughCopy({\"public\": \"/\"}) "
                "so Eleventy copies it to the site's root")
    return d

def detect(folder: Path) -> Detected | None:
    marker = first_file(folder, "eleventy.config.js", "eleventy.config.mjs", "eleventy.config.cjs",
                        "eleventy.config.ts", ".eleventy.js", ".eleventy.cjs")
    return _eleventy(folder, marker) if marker else None
