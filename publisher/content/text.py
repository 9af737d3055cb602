"""Small text helpers every part of content/ (and feeds) shares."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from functools import lru_cache

# Characters XML 1.0 forbids, plus the C1 controls (NEL included) and noncharacters that
# feed validators flag.
_XML_ILLEGAL = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufdd0-\ufdef\ufffe\uffff\ud800-\udfff]"
)


def clean_text(text: str) -> str:
    """Normalise newlines and remove every character that XML 1.0 cannot carry."""
    if text.isascii() and text.isprintable():
        return text  # the common case (titles, names, dates): nothing to remove (~1 µs less)
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    # Most text (a post, its HTML) is printable but for its line breaks and tabs, and then
    # holds nothing to remove (every character _XML_ILLEGAL names is unprintable): one table
    # lookup a character, where the regex tries its ranges in turn at every character (a
    # tenth of a cold build's instructions went there).
    if text.replace("\n", "").replace("\t", "").isprintable():
        return text
    return _XML_ILLEGAL.sub("", text)


@lru_cache(maxsize=4096)  # tags repeat from post to post: a 2,000-post site slugifies ~6,000
def slugify(text: str) -> str:
    """A URL- and path-safe slug: lowercase letters, digits and '-', never '.' or '/'.

    Unicode letters are kept (NFKC), so 'Café Ünïcode' -> 'café-ünïcode'. A text with no
    letters or digits at all gets a stable hash-based slug instead of an empty one."""
    norm = unicodedata.normalize("NFKC", text).lower()
    slug = re.sub(r"[^\w]+|_+", "-", norm).strip("-")
    if not slug:
        slug = "x-" + hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return slug[:120].strip("-")
