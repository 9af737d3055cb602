"""URLs: every relative href/src in a post's HTML made absolute (its permalink: dialects.py)."""

from __future__ import annotations

import html
import re
from urllib.parse import urljoin, urlsplit


_TAG = re.compile(r"<[a-zA-Z][^<>]*>")
_URL_ATTR = re.compile(
    r"""(\s(?:href|src|poster|cite|action|data)\s*=\s*)("[^"]*"|'[^']*'|[^\s"'>]+)""", re.I
)
_SRCSET_ATTR = re.compile(r"""(\ssrcset\s*=\s*)("[^"]*"|'[^']*')""", re.I)


def absolutize_url(value: str, base: str) -> str:
    value = value.strip()
    if not value:
        return base
    try:
        scheme = urlsplit(value).scheme
        if scheme and scheme.lower() not in ("http", "https"):
            return value  # mailto:, data:, tel:, ... stay as written
        return urljoin(base, value)
    except ValueError:  # e.g. "http://[i]/": urllib refuses a malformed bracketed host
        return value


def absolutize_html(fragment: str, base: str) -> str:
    """Make every relative href/src/srcset in an HTML fragment absolute against `base`."""

    def fix_attr(m: re.Match) -> str:
        raw = m.group(2)
        quote_char = raw[0] if raw[0] in "\"'" else ""
        value = raw[1:-1] if quote_char else raw
        fixed = html.escape(absolutize_url(html.unescape(value), base), quote=True)
        return f'{m.group(1)}"{fixed}"'

    def fix_srcset(m: re.Match) -> str:
        items = []
        for candidate in html.unescape(m.group(2)[1:-1]).split(","):
            parts = candidate.strip().split(None, 1)
            if parts:
                parts[0] = absolutize_url(parts[0], base)
                items.append(" ".join(parts))
        return f'{m.group(1)}"{html.escape(", ".join(items), quote=True)}"'

    def fix_tag(m: re.Match) -> str:
        tag = _URL_ATTR.sub(fix_attr, m.group(0))
        return _SRCSET_ATTR.sub(fix_srcset, tag)

    return _TAG.sub(fix_tag, fragment)
