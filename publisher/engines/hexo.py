"""Hexo: a package.json depending on "hexo", or a _config.yml with Hexo's own keys beside
source/_posts/. Asked before Jekyll, which also keeps its config in _config.yml."""

from __future__ import annotations

import json
from pathlib import Path

from .base import Detected, first_file, load_data, read_text, rel, set_permalink, translate, valid_timezone

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
