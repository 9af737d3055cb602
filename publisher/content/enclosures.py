"""A post's enclosure (podcast episode, video, download): `enclosure`, `audio` or `video` in
the front matter, as a URL or {url, length, type}. The length and MIME type come from the
local file when the site has it (beside the post, or under the site's static folders), since
an RSS <enclosure> must state both; a remote file gets length 0 ("unknown", as RSS allows).
Only a file inside the site (links.inside) is measured: one that a `..` or a symlink puts
outside it is left out as if the site did not have it, and named."""

from __future__ import annotations

import logging
import mimetypes
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from ..config import Config
from .frontmatter import Skip, first_key, read_text
from .links import absolutize_url, inside, site_folders

log = logging.getLogger(__name__)

# Where engines keep files served at the site's root: Hugo static/, Astro and Eleventy
# public/, Jekyll and others the site folder itself.
_STATIC_FOLDERS = ("static", "public", "")
_UNKNOWN_TYPE = "application/octet-stream"
_MEDIA_TYPE = re.compile(r"[A-Za-z0-9][\w.+-]*/[A-Za-z0-9][\w.+-]*")
# Media types by extension from a fixed table, never the machine's /etc/mime.types (which the
# module-level mimetypes functions read): the same site gives the same feed bytes anywhere.
# Python's own table lacks the common podcast formats below.
_EXTRA_TYPES = {".m4a": "audio/mp4", ".m4v": "video/x-m4v", ".ogg": "audio/ogg",
                ".oga": "audio/ogg", ".ogv": "video/ogg", ".flac": "audio/flac",
                ".epub": "application/epub+zip", ".mkv": "video/x-matroska"}
_TYPES: mimetypes.MimeTypes | None = None  # built on first use: it reads the system tables too

Enclosure = tuple  # (absolute URL, length in bytes or 0, MIME type), or () for none


def read_enclosure(meta: dict, path: Path, url: str, config: Config) -> Enclosure:
    key, value = first_key(meta, "enclosure", "audio", "video")
    if value is None or value == "":
        return ()
    length: Any = 0
    mime = ""
    if isinstance(value, dict):
        length = value.get("length", 0)
        mime = read_text(value.get("type"), f"{key}.type")
        value = value.get("url") or value.get("src")
    where = read_text(value, key)
    if not where:
        raise Skip(f"'{key}' has no URL")
    if isinstance(length, bool) or not isinstance(length, int) or length < 0:
        raise Skip(f"'{key}.length' should be a number of bytes, got {length!r}")
    absolute = absolutize_url(where, url)
    if not absolute.startswith(("http://", "https://")):
        raise Skip(f"'{key}' should be an http(s) URL or a path, got {where!r}")
    local = _local_file(where, absolute, path, config)
    if local is not None and not length:
        length = local.stat().st_size
    if not mime:
        mime = _media_type(urlsplit(absolute).path)
    elif not _MEDIA_TYPE.fullmatch(mime):
        raise Skip(f"'{key}.type' should be a media type such as audio/mpeg, got {mime!r}")
    return (absolute, length, mime)


def _local_file(where: str, absolute: str, path: Path, config: Config) -> Path | None:
    """The file on disk that `where` names, if the site has it."""
    candidates: list[Path] = []
    site = config.site.url + "/"
    if absolute.startswith(site):
        rel = unquote(urlsplit(absolute).path[len(urlsplit(site).path):])
        candidates += [config.root / folder / rel for folder in _STATIC_FOLDERS]
        candidates.append(config.output_dir / rel)
    if not urlsplit(where).scheme and not where.startswith("/"):
        candidates.insert(0, path.parent / unquote(urlsplit(where).path))  # beside the post
    # The published output too: a file the build itself copied there is the site's.
    folders = site_folders(config, config.output_dir)
    refused = []
    for candidate in candidates:
        real = inside(candidate, folders)
        if real is None:
            refused.append(candidate)
            continue
        try:
            if os.path.isfile(real):
                return Path(real)
        except OSError:
            continue
    if refused:
        log.warning("%s: enclosure %s: length unknown: %s is outside the site folder",
                    os.path.relpath(path, config.root), where, refused[0])
    return None


def _media_type(path: str) -> str:
    global _TYPES
    suffix = Path(unquote(path)).suffix.lower()
    if suffix in _EXTRA_TYPES:
        return _EXTRA_TYPES[suffix]
    if _TYPES is None:
        _TYPES = mimetypes.MimeTypes()  # its own table is Python's defaults only
    return _TYPES.guess_type("x" + suffix)[0] or _UNKNOWN_TYPE
