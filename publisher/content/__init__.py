"""content/ -> Post objects: files are read, never written; nothing here sends or writes feeds.

frontmatter.py reads front matter and dates, dialects.py says what each engine means (slugs,
URLs, dates, languages), enclosures.py reads a post's enclosure, syntax.py resolves Liquid,
shortcodes and MDX, markup.py renders Markdown, links.py absolutises links, sanitize.py makes
the HTML safe for readers, text.py holds the shared text helpers, and posts.py walks the
folder and builds Post objects (with the scan cache that cache.py keeps)."""

from __future__ import annotations

import hashlib
from pathlib import Path

_CODE_HASH: str | None = None


def code_hash() -> str:
    """A digest of this package's source: parsed posts and rendered HTML cached by an older
    version of it are never reused."""
    global _CODE_HASH
    if _CODE_HASH is None:
        h = hashlib.sha256()
        for path in sorted(Path(__file__).parent.glob("*.py")):
            h.update(path.name.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
        _CODE_HASH = h.hexdigest()
    return _CODE_HASH


from .links import absolutize_html, absolutize_url  # noqa: E402
from .markup import cache_key, derive_summary, render_body, render_html  # noqa: E402
from .posts import (LoadResult, Post, ScanEntry, content_signature, find_post_files,  # noqa: E402
                    load_posts, read_post)
from .text import clean_text, slugify  # noqa: E402
from .urls import permalink  # noqa: E402

__all__ = ["LoadResult", "Post", "ScanEntry", "absolutize_html", "absolutize_url", "cache_key",
           "clean_text", "code_hash", "content_signature", "derive_summary", "find_post_files",
           "load_posts", "permalink", "read_post", "render_body", "render_html", "slugify"]
