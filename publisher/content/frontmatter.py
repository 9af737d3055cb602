"""Front matter: split it from the body, read its keys (with the aliases real blogs use) and
its dates. Raises Skip with a reason phrased for the user."""

from __future__ import annotations

import re
from datetime import date, datetime, time, tzinfo
from email.utils import parsedate_to_datetime
from typing import Any, Iterable

from ..config import Config
from .text import clean_text

class Skip(Exception):
    """A reason to skip a file, phrased for the user."""


# --- field readers ----------------------------------------------------------------------

_OFFSET_WITH_SPACE = re.compile(r"^(.*\d)\s+([+-]\d{2}:?\d{2}|Z|UTC|GMT)$")


def parse_date(value: Any, tz: tzinfo, key: str) -> datetime:
    """YAML timestamps and the string forms real blogs use; no offset means `tz`."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime.combine(value, time(0, 0))
    elif isinstance(value, str) and value.strip():
        text = value.strip()
        m = _OFFSET_WITH_SPACE.match(text)
        if m:
            offset = m.group(2)
            text = m.group(1) + ("+00:00" if offset in ("UTC", "GMT") else offset)
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            try:
                parsed = parsedate_to_datetime(value.strip())  # RFC 2822, as in RSS
            except (TypeError, ValueError, IndexError):
                raise Skip(
                    f"'{key}' is not a date: {value.strip()[:60]!r} "
                    "(expected e.g. 2024-04-20, 2024-04-20T10:00:00Z or 2024-04-20 10:00:00 +0200)"
                ) from None
    else:
        raise Skip(f"'{key}' is not a date: got {_short(value)}")
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        parsed = parsed.replace(tzinfo=tz)
    if not 1900 <= parsed.year <= 9999:
        raise Skip(f"'{key}' is out of range: {parsed.year}")
    return parsed


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def read_text(value: Any, key: str) -> str:
    if value is None:
        return ""
    if isinstance(value, bool) or isinstance(value, (dict, list)):
        raise Skip(f"'{key}' should be text, got {_short(value)}")
    return clean_text(str(value)).strip()


def read_flag(value: Any, key: str) -> bool:
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "yes", "on", "1"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("false", "no", "off", "0", ""):
        return False
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise Skip(f"'{key}' should be true or false, got {_short(value)}")


def read_tags(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        items: Iterable[Any] = value.split(",")
    elif isinstance(value, (list, tuple)):
        items = value
    else:
        raise Skip(f"'tags' should be a list or a comma-separated string, got {_short(value)}")
    seen: dict[str, str] = {}
    for item in items:
        if isinstance(item, (dict, list)) or item is None:
            continue
        tag = re.sub(r"\s+", " ", clean_text(str(item))).strip()
        if tag and tag.lower() not in seen:
            seen[tag.lower()] = tag
    return tuple(seen.values())


def read_author(value: Any, config: Config) -> tuple[str, str]:
    if isinstance(value, dict):
        return read_text(value.get("name"), "author.name"), read_text(value.get("email"), "author.email")
    if isinstance(value, list):  # several authors: keep them all, by name
        names = [read_text(v.get("name") if isinstance(v, dict) else v, "author") for v in value]
        return ", ".join(n for n in names if n), ""
    name = read_text(value, "author")
    if name:
        return name, ""
    return config.site.author.name, config.site.author.email


def first_key(meta: dict, *keys: str) -> tuple[str, Any]:
    for key in keys:
        if key in meta and meta[key] is not None:
            return key, meta[key]
    return keys[0], None



def split_front_matter(text: str, *, load: bool = True) -> tuple[Any, str]:
    """(metadata, body) as python-frontmatter's parse() returns them (YAML, JSON or TOML front
    matter), except that the body keeps its first line's indentation (a post may start with an
    indented code block): only blank lines around it are dropped. load=False skips parsing the
    metadata: a post restored from the scan cache needs only its body, which does not depend on it."""
    import frontmatter

    head = text.lstrip()
    handler = frontmatter.detect_format(head, frontmatter.handlers)
    if handler is None:
        return {}, _body(text)
    try:
        fm, content = handler.split(head)
    except ValueError:
        return {}, _body(text)
    if not load:
        return {}, _body(content)
    data = handler.load(fm)
    return (data if isinstance(data, dict) else {}), _body(content)


_LEADING_BLANK_LINES = re.compile(r"\A(?:[ \t]*\n)+")


def _body(text: str) -> str:
    """The body without the blank lines around it; every line kept as written (the first
    line's indentation makes an indented code block, the last line's trailing spaces are in one)."""
    text = _LEADING_BLANK_LINES.sub("", text)
    end = len(text.rstrip())  # (a regex anchored at the end would try every position: slow)
    while end < len(text) and text[end] in " \t":
        end += 1
    return text[:end]


def has_closing_fence(text: str) -> bool:
    return any(line.strip() == "---" for line in text.split("\n")[1:200])
