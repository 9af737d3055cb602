"""Front matter: split it from the body, read its keys (with the aliases real blogs use) and
its dates. Raises Skip with a reason phrased for the user.

Formats: YAML (`---`), TOML (`+++`, with the standard library's tomllib), JSON (`{ ... }` at
the top, or `---json`), and Pelican's `Key: value` header (only for an engine whose posts have it). Eleventy's
`---js` front matter is code, and is refused by name rather than read as YAML."""

from __future__ import annotations

import json
import re
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any, Iterable

import yaml
from yaml.nodes import ScalarNode

from ..config import Config
from ..datafiles import DataError, decode_json, load_json, load_toml, load_yaml
from .text import clean_text

class Skip(Exception):
    """A reason to skip a file, phrased for the user."""


# --- field readers ----------------------------------------------------------------------

_OFFSET_WITH_SPACE = re.compile(r"^(.*\d)\s+([+-]\d{2}:?\d{2}|Z|UTC|GMT)$")
_ORDINAL = re.compile(r"(?<=\d)(st|nd|rd|th)\b", re.I)
# Forms fromisoformat and RFC 2822 do not cover: Astro's starter ('Jul 08 2022'), prose
# ('July 8, 2022', '15 Oct 2023'), slashes ('2022/07/08'). Month names are English, as the
# engines parse them.
_DATE_FORMATS = tuple(
    d + t
    for d in ("%b %d %Y", "%B %d %Y", "%b %d, %Y", "%B %d, %Y", "%d %b %Y", "%d %B %Y",
              "%a %b %d %Y", "%a, %b %d, %Y", "%A, %B %d, %Y", "%Y/%m/%d", "%Y.%m.%d", "%d.%m.%Y")
    for t in ("", " %H:%M", " %H:%M:%S", " %I:%M %p", " %I:%M:%S %p")
)


_UNPADDED = re.compile(r"^(\d{4})[-/](\d{1,2})[-/](\d{1,2})(?:([ T])(\d{1,2}):(\d{2})(:\d{2}(?:\.\d+)?)?)?(.*)$")


def _padded(text: str) -> str:
    """'2014-3-12 2:26' (as Pelican and Ruby accept it) -> '2014-03-12 02:26'."""
    m = _UNPADDED.match(text)
    if not m:
        return text
    y, mo, d, sep, h, mi, sec, rest = m.groups()
    out = f"{y}-{int(mo):02d}-{int(d):02d}"
    if h is not None:
        out += f"{sep}{int(h):02d}:{mi}{sec or ''}"
    return out + rest


def _parse_text_date(text: str) -> datetime | None:
    text = _padded(text)
    m = _OFFSET_WITH_SPACE.match(text)
    iso = text
    if m:
        offset = m.group(2)
        iso = m.group(1) + ("+00:00" if offset in ("UTC", "GMT") else offset)
    try:
        return datetime.fromisoformat(iso)
    except ValueError:
        pass
    # lazy: the email package (~7 ms), for the rare date that is not ISO 8601
    from email.utils import parsedate_to_datetime

    try:
        return parsedate_to_datetime(text)  # RFC 2822, as in RSS
    except (TypeError, ValueError, IndexError):
        pass
    plain = re.sub(r"\s+", " ", _ORDINAL.sub("", text))
    offset = None
    if m:  # 'Jul 08 2022 10:00 +0200'
        plain, offset = re.sub(r"\s+", " ", _ORDINAL.sub("", m.group(1))), m.group(2)
    for fmt in _DATE_FORMATS:
        try:
            parsed = datetime.strptime(plain, fmt)
        except ValueError:
            continue
        if offset:
            tz = "+00:00" if offset in ("Z", "UTC", "GMT") else offset
            parsed = datetime.fromisoformat(parsed.isoformat() + (tz if ":" in tz else tz[:3] + ":" + tz[3:]))
        return parsed
    return None


def _without_repeated_year(text: str) -> datetime | None:
    """'2023-01-29 18:30:22 2023 -0800' (a real Jekyll post: Ruby's Time.parse ignores the
    year said twice): the same date without the repeated year."""
    tokens = text.split()
    if len(tokens) > 2 and re.fullmatch(r"\d{4}", tokens[2]) and tokens[0].startswith(tokens[2] + "-"):
        return _parse_text_date(" ".join(tokens[:2] + tokens[3:]))
    return None


def parse_date(value: Any, tz: tzinfo, key: str, *, timestamp_tz: tzinfo | None = None) -> datetime:
    """YAML/TOML timestamps and the string forms real blogs use; no offset means `tz`.
    `timestamp_tz`: the zone of a YAML/TOML timestamp without offset, where the engine reads
    it otherwise than a string (Jekyll: Ruby's YAML reads `2016-06-13 02:00:00` as UTC,
    while the string "2016-06-13 02:00:00" is in the site's zone)."""
    if isinstance(value, datetime):
        parsed = value
        if timestamp_tz is not None and (parsed.tzinfo is None or parsed.utcoffset() is None):
            parsed = parsed.replace(tzinfo=timestamp_tz)
    elif isinstance(value, date):
        parsed = datetime.combine(value, time(0, 0))
    elif isinstance(value, time):
        raise Skip(f"'{key}' is not a date: got a time of day only ({value})")
    elif isinstance(value, str) and value.strip():
        found = _parse_text_date(value.strip())
        if found is None:
            found = _without_repeated_year(value.strip())
        if found is None:
            raise Skip(
                f"'{key}' is not a date: {value.strip()[:60]!r} "
                "(expected e.g. 2024-04-20, 2024-04-20T10:00:00Z, 2024-04-20 10:00:00 +0200 or Jul 08 2022)"
            )
        parsed = found
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


def read_tags(value: Any, key: str = "tags", separator: str | None = ",") -> tuple[str, ...]:
    """A list of terms, or one string split on `separator` (None: on whitespace, as Jekyll
    splits; ";" if the string has one, else ",", as Pelican does, with separator ";,")."""
    if value is None:
        return ()
    if isinstance(value, str):
        if separator == ";,":
            separator = ";" if ";" in value else ","
        items: Iterable[Any] = value.split(separator) if separator != "" else [value]
    elif isinstance(value, (list, tuple)):
        items = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        items = [value]  # `category: 2024` is a term, not an error
    else:
        raise Skip(f"'{key}' should be a list or a comma-separated string, got {_short(value)}")
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




# --- splitting ----------------------------------------------------------------------------

_FENCE_LINE = re.compile(r"^(---|\+\+\+)[ \t]*(\w*)[ \t]*$")
_PELICAN_KEY = re.compile(r"^[ ]{0,3}([A-Za-z0-9_-]+):\s*(.*)$")
_PELICAN_MORE = re.compile(r"^[ ]{4,}(.*)$")


_LEADING_BLANK_LINES = re.compile(r"\A(?:[ \t]*\n)+")


def _body(text: str) -> str:
    """The body without the blank lines around it; every line kept as written (the first
    line's indentation makes an indented code block, the last line's trailing spaces are in one)."""
    m = _LEADING_BLANK_LINES.match(text)  # (sub would try \A at every position: slow)
    if m:
        text = text[m.end():]
    end = len(text.rstrip())  # (a regex anchored at the end would try every position: slow)
    while end < len(text) and text[end] in " \t":
        end += 1
    return text[:end]


# A closing fence: a line that is one of the fences, with trailing whitespace (what
# str.rstrip() strips: [^\S\n] is exactly str.isspace() less the newline).
_CLOSING = {fences: re.compile("^(?:" + "|".join(map(re.escape, fences)) + r")[^\S\n]*$", re.M)
            for fences in (("+++",), ("---", "..."), ("---",))}


def _close(text: str, at: int, fences: tuple[str, ...]) -> tuple[int, int] | None:
    """The first line of `text` from offset `at` (a line's start) that is one of `fences`,
    trailing whitespace aside: (its start, the next line's start or len(text)), or None.
    Only the front matter's lines are looked at: splitting a whole post into lines (and
    joining its body again) cost a tenth of reading it."""
    m = _CLOSING[fences].search(text, at)
    if m is None:
        return None
    return m.start(), min(m.end() + 1, len(text))


def split_front_matter(text: str, *, load: bool = True, key_value_header: bool = False,
                       js_yaml: bool = False) -> tuple[Any, str]:
    """(metadata, body). The metadata is a dict ({} when the file has no front matter); a
    front matter that cannot be read raises Skip naming the format and the file's line.
    load=False skips parsing the metadata: a post restored from the scan cache needs only
    its body, which does not depend on it. js_yaml: the engine reads YAML with js-yaml, where
    an impossible date rolls over (see _load_yaml)."""
    text = text.lstrip("\ufeff")
    first_end = text.find("\n")
    head = (text if first_end == -1 else text[:first_end]).rstrip()
    if key_value_header and head not in ("+++",) and not head.startswith("{"):
        return _pelican(text.split("\n"), load)
    if head.startswith("{"):
        return _json_object(text, load)
    m = _FENCE_LINE.match(head)
    if not m:
        return {}, _body(text)
    fence, kind = m.group(1), m.group(2).lower()
    if fence == "---" and kind in ("js", "javascript"):
        raise Skip("JavaScript front matter is not supported (---js): "
                   "write it as YAML (---) or JSON (---json)")
    if fence == "---" and kind not in ("", "yaml", "yml", "json"):
        raise Skip(f"front matter format '---{kind}' is not supported (expected YAML, TOML or JSON)")
    fences = ("+++",) if fence == "+++" else ("---", "...") if not kind.startswith("j") else ("---",)
    closing = _close(text, first_end + 1, fences) if first_end != -1 else None
    if closing is None:
        raise Skip(f"front matter opened with '{head}' at line 1 has no closing '{fence}'")
    start, after = closing
    source = text[first_end + 1:start - 1]  # the lines between the fences ("" for none)
    body = _body(text[after:])
    if not load:
        return {}, body
    if fence == "+++":
        data = _load_toml(source)
    elif kind == "json":
        data = _load_json(source, first_line=2)
    else:
        data = _load_yaml(source, js_yaml)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise Skip("front matter is empty or not a mapping of keys")
    return data, body  # {} for an empty block: a Jekyll page, or a post missing its keys


# --- YAML's flat fast path ------------------------------------------------------------------
# Most front matter is one `key: value` per line: quoted or plain scalars and flow lists of
# them. PyYAML's loader costs ~0.15 ms per post even with libyaml (its constructor and
# resolver are Python); for 2,000 posts that was a fifth of a cold build. _flat_yaml reads
# that shape itself, with PyYAML's own resolver and scalar constructors deciding what a
# plain scalar is (so '2024-04-20' is a date, 'yes' True and '1:30' 90, as yaml.safe_load
# says), and gives up (None) on anything else: the loader then reads the text as before,
# errors and their line numbers included. tests/test_frontmatter_fast.py proves it equal.

_FLAT_KEY_LINE = re.compile(r"([A-Za-z_][A-Za-z0-9_-]*):(?: (.*))?")
# What a plain scalar this path accepts never holds: an indicator first (a '-' only before a
# digit or '.'), ': ' or ' #' inside, ':' last, or a flow indicator anywhere.
_FLAT_NOT_PLAIN = re.compile(r"\A(?:[?:,\[\]{}#&*!|>'\"%@`]|-(?![0-9.]))|[\[\]{}]|: | #|:\Z")
_FLAT_QUOTED = re.compile(r'"([^"\\]*)"|\'([^\']*)\'')
_FLAT_ITEM = re.compile(r' *(?:"([^"\\]*)"|\'([^\']*)\'|([A-Za-z0-9_.][A-Za-z0-9_. +/-]*?)) *(,|$)')
# What PyYAML's reader refuses, and what this path leaves to it: tabs, CRs and YAML 1.1's
# other line breaks (NEL, U+2028, U+2029: folded to a space or a newline, even in quotes).
_FLAT_REFUSED_ASCII = re.compile("[^\x0A\x20-\x7E]")
_flat_refused = None  # the same for any text: compiled when a non-ASCII front matter comes (~3 ms)
_flat_scalars = None  # (resolver, {tag: constructor}, ScalarNode) once PyYAML is imported
_flat_tags: dict[str, str] = {}  # plain scalar -> the tag PyYAML's resolver gives it


def _flat_plain(text: str) -> Any:
    """A plain scalar as yaml.safe_load reads it; raises LookupError for a kind left to it."""
    global _flat_scalars
    if _flat_scalars is None:
        constructor = yaml.constructor.SafeConstructor()
        tags = {f"tag:yaml.org,2002:{name}": getattr(constructor, f"construct_yaml_{name}")
                for name in ("null", "bool", "int", "float", "timestamp")}
        tags["tag:yaml.org,2002:str"] = None
        _flat_scalars = (yaml.resolver.Resolver(), tags, ScalarNode)
    resolver, tags, node = _flat_scalars
    tag = _flat_tags.get(text)
    if tag is None:
        tag = resolver.resolve(node, text, (True, False))
        if len(_flat_tags) < 4096:  # keys, booleans and the like repeat from post to post
            _flat_tags[text] = tag
    construct = tags[tag]  # LookupError: '=' or '<<', say
    return text if construct is None else construct(node(tag, text))


def _flat_value(text: str) -> Any:
    if not text:
        return None
    first = text[0]
    if first in "\"'":
        m = _FLAT_QUOTED.fullmatch(text)
        if m is None:
            raise LookupError(text)
        return m.group(1) if m.group(1) is not None else m.group(2)
    if first == "[":
        if not text.endswith("]"):
            raise LookupError(text)
        inner, items, at = text[1:-1], [], 0
        if inner.strip(" ") == "":
            return items
        while at < len(inner):
            m = _FLAT_ITEM.match(inner, at)
            if m is None or (m.group(4) == "," and m.end() == len(inner)):
                raise LookupError(text)  # not a simple list, or a trailing comma
            quoted = m.group(1) if m.group(1) is not None else m.group(2)
            items.append(quoted if quoted is not None else _flat_plain(m.group(3)))
            at = m.end()
        return items
    if _FLAT_NOT_PLAIN.search(text):
        raise LookupError(text)
    return _flat_plain(text)


def _flat_yaml(source: str) -> dict | None:
    """`source` as yaml.safe_load reads it, if it is flat (see above); else None."""
    global _flat_refused
    if source.isascii():
        refused = _FLAT_REFUSED_ASCII
    else:
        if _flat_refused is None:
            _flat_refused = re.compile(
                "[^\x0A\x20-\x7E\xA0-\u2027\u202A-\uD7FF\uE000-\uFFFD\U00010000-\U0010FFFF]")
        refused = _flat_refused
    if refused.search(source):
        return None
    data: dict[Any, Any] = {}
    try:
        for line in source.split("\n"):
            if not line:
                continue
            m = _FLAT_KEY_LINE.fullmatch(line)
            if m is None:
                return None
            key = _flat_plain(m.group(1))
            if not isinstance(key, str) or key in data:
                return None  # 'on:' is True in YAML 1.1; a repeated key is left to PyYAML
            data[key] = _flat_value((m.group(2) or "").strip(" "))
    except (LookupError, ValueError):  # ValueError: a date such as 2024-13-45
        return None
    return data or None


def _rolled_timestamp(loader: Any, node: Any) -> Any:
    """A YAML timestamp as js-yaml reads it: Date.UTC(year, month - 1, day, ...), so a day past
    the month's end rolls into the next (`2017-02-29 11:00:00` is 2017-03-01 11:00)."""
    try:
        return yaml.constructor.SafeConstructor.construct_yaml_timestamp(loader, node)
    except ValueError:
        m = yaml.constructor.SafeConstructor.timestamp_regexp.match(node.value)
        if m is None:
            raise
        year, month, day = int(m.group("year")), int(m.group("month")), int(m.group("day"))
        if not (1 <= month <= 12 and 1 <= day <= 31):
            raise
        rolled = date(year, month, 1) + timedelta(days=day - 1)
        node = ScalarNode(node.tag, rolled.isoformat() + node.value[m.end("day"):])
        return yaml.constructor.SafeConstructor.construct_yaml_timestamp(loader, node)


_js_yaml_loader = None  # the loader with _rolled_timestamp, made when a js-yaml engine needs it


def _load_yaml(source: str, js_yaml: bool = False) -> Any:
    global _js_yaml_loader
    flat = _flat_yaml(source)
    if flat is not None:
        return flat
    try:
        try:
            return load_yaml(source)  # libyaml's loader, aliases and depth bounded
        except ValueError:
            if not js_yaml:
                raise
            if _js_yaml_loader is None:
                base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # as datafiles.load_yaml's
                _js_yaml_loader = type("JsYamlLoader", (base,), {})
                _js_yaml_loader.add_constructor("tag:yaml.org,2002:timestamp", _rolled_timestamp)
            return load_yaml(source, _js_yaml_loader)
    except DataError as e:
        raise Skip(f"front matter refused: {e}") from None
    except yaml.YAMLError as e:
        # The construct's start (context_mark) points at the line to fix; the YAML text
        # starts on the file's line 2 (after the opening '---'), and marks count from 0.
        mark = getattr(e, "context_mark", None) or getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 2}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise Skip(f"front matter is not valid YAML{where}: {problem}") from None
    except ValueError as e:  # e.g. a timestamp such as 2024-13-45: PyYAML's own ValueError
        raise Skip(f"front matter is not valid YAML: {e}") from None


def _load_toml(source: str) -> dict:
    import tomllib  # lazy: ~10 ms, for TOML front matter (Hugo's +++) alone

    try:
        # With its final newline, tomllib names the line of an error found at the last
        # line, rather than "end of document".
        return load_toml(source + "\n")
    except DataError as e:
        raise Skip(f"front matter refused: {e}") from None
    except tomllib.TOMLDecodeError as e:
        # tomllib says "(at line N, column M)" of the TOML text, which starts on line 2.
        message = str(e)
        m = re.search(r"\s*\(at line (\d+), column (\d+)\)$", message)
        where = ""
        message = re.sub(r"\s*\(at end of document\)$", "", message)
        if m:
            message = message[: m.start()]
            where = f" at line {int(m.group(1)) + 1}, column {m.group(2)}"
        raise Skip(f"front matter is not valid TOML{where}: {message}") from None


def _load_json(source: str, first_line: int) -> Any:
    try:
        return load_json(source)
    except DataError as e:
        raise Skip(f"front matter refused: {e}") from None
    except json.JSONDecodeError as e:
        raise Skip(f"front matter is not valid JSON at line {e.lineno + first_line - 1}, "
                   f"column {e.colno}: {e.msg}") from None


def _json_object(text: str, load: bool) -> tuple[Any, str]:
    """Hugo's JSON front matter: an object at the top of the file, the body after it."""
    start = text.index("{")
    try:
        data, end = decode_json(json.JSONDecoder(), text, start)
    except DataError as e:
        raise Skip(f"front matter refused: {e}") from None
    except json.JSONDecodeError as e:
        raise Skip(f"front matter is not valid JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None
    if not isinstance(data, dict):
        raise Skip("front matter is empty or not a mapping of keys")
    return (data if load else {}), _body(text[end:])


def _pelican(lines: list[str], load: bool) -> tuple[dict, str]:
    """Python-Markdown's meta header, as Pelican reads it: `Key: value` lines at the top
    (keys lowercased, 4-space continuation lines), ending at the first blank line; an
    optional `---` line before and a `---`/`...` line after."""
    i = 1 if lines and lines[0].rstrip() == "---" else 0
    meta: dict[str, Any] = {}
    key = None
    while i < len(lines):
        line = lines[i]
        if line.strip() == "" or line.rstrip() in ("---", "..."):
            if line.rstrip() in ("---", "..."):
                i += 1
            break
        m = _PELICAN_KEY.match(line)
        more = _PELICAN_MORE.match(line)
        if more and key is not None:
            meta[key] = (meta[key] + "\n" + more.group(1).strip()).strip()
        elif m:
            key = m.group(1).lower()
            meta[key] = m.group(2).strip()
        else:
            break  # not a header line: the body starts here
        i += 1
    return (meta if load else {}), _body("\n".join(lines[i:]))


def frontmatter_date_key(meta: dict, keys: tuple[str, ...]) -> tuple[str, Any]:
    """The first of `keys` that holds a date (a boolean `published` is Jekyll's flag)."""
    for key in keys:
        value = meta.get(key)
        if value is None or isinstance(value, bool) or value == "":
            continue
        return key, value
    return keys[0], None
