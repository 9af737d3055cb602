"""content/ -> Post objects: files are read, never written; nothing here sends or writes feeds.

frontmatter.py reads front matter and dates; what each engine means by a post (slugs, URLs,
dates, languages, its syntax) is in engines/ (one module per engine), which posts.py asks;
enclosures.py reads a post's enclosure, syntax.py resolves Liquid, shortcodes and MDX,
markup.py renders Markdown, links.py absolutises links, sanitize.py makes the HTML safe for
readers, text.py holds the shared text helpers, and posts.py walks the folder and builds Post
objects (with the scan cache that cache.py keeps).

The names below are imported when first asked for (PEP 562), so that engines/, which reads
frontmatter.py and slugs.py, can be imported before posts.py, which asks engines/."""

from __future__ import annotations

import hashlib
import importlib
from pathlib import Path
from typing import Any

_CODE_HASH: str | None = None


def code_hash() -> str:
    """A digest of this package's source and of the engines' rules: parsed posts and rendered
    HTML cached by an older version of either are never reused."""
    global _CODE_HASH
    if _CODE_HASH is None:
        h = hashlib.sha256()
        here = Path(__file__).parent
        for path in sorted([*here.glob("*.py"), *(here.parent / "engines").glob("*.py")]):
            h.update(f"{path.parent.name}/{path.name}".encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
        _CODE_HASH = h.hexdigest()
    return _CODE_HASH


_FROM = {
    "absolutize_html": "links", "absolutize_url": "links",
    "cache_key": "markup", "derive_summary": "markup", "render_body": "markup", "render_html": "markup",
    "LoadResult": "posts", "Post": "posts", "ScanEntry": "posts", "content_signature": "files",
    "find_post_files": "files", "load_posts": "posts", "read_post": "posts",
    "clean_text": "text", "slugify": "text", "permalink": "urls",
}

__all__ = ["code_hash", *_FROM]


def __getattr__(name: str) -> Any:
    module = _FROM.get(name)
    if module is None:
        try:  # a submodule not imported yet (`content.parallel`)
            return importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"{__name__}.{name}":
                raise
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
