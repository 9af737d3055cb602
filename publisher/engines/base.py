"""What every engine module shares: the Fact/Detected a detection returns, and the helpers
that read an engine's config without executing it (JavaScript, TypeScript and Python are
read with regular expressions: a value computed at run time is a guess, said so)."""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from ..datafiles import DataError, brace_end, load_json, load_toml, load_yaml

log = logging.getLogger(__name__)

# Folders a blog's posts usually live in, most likely first.
POST_FOLDERS = ("posts", "post", "blog", "articles", "article")
MARKDOWN = (".md", ".markdown", ".mdx")
SKIP_DIRS = {"node_modules", ".git", "vendor", "_site", "public", "dist", "output", "themes"}


@dataclass
class Fact:
    value: Any
    source: str  # where it was read ("hugo.toml: baseURL"), or why it is a guess
    guessed: bool = False


@dataclass
class Detected:
    """What `detect` found in a blog's folder: the engine and a Fact per config key."""

    engine: str | None
    marker: str = ""  # the file that named the engine
    facts: dict[str, Fact] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # things the owner should know

    def found(self, key: str, value: Any, source: str) -> None:
        self.facts[key] = Fact(value, source)

    def guess(self, key: str, value: Any, why: str) -> None:
        self.facts[key] = Fact(value, why, guessed=True)

    def value(self, key: str, default: Any = None) -> Any:
        fact = self.facts.get(key)
        return fact.value if fact else default


# --- reading without executing ----------------------------------------------------------

def read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def strip_js_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"(?m)(^|[^:\\'\"])//.*$", r"\1", text)  # not the // of https://


def js_string(text: str, key: str) -> str | None:
    """The string literal given to `key:` (or `key =`) in JS/TS source; None if absent or
    computed (a template literal with ${...} counts as computed)."""
    m = re.search(r"(?<![\w$.])[\"']?" + re.escape(key) + r"""[\"']?\s*[:=]\s*(["'`])((?:\\.|(?!\1).)*)\1""", text)
    if not m or (m.group(1) == "`" and "${" in m.group(2)):
        return None
    return m.group(2)


def py_string(text: str, name: str) -> str | None:
    """The string assigned to NAME at the top level of Python source (u'', (...) allowed)."""
    m = re.search(r"(?m)^" + re.escape(name) + r"""\s*=\s*\(?\s*[uUrR]?(["'])((?:(?!\1).)*)\1\s*\)?\s*(#.*)?$""", text)
    return m.group(2) if m else None


def py_strings(text: str, name: str) -> list[str] | None:
    m = re.search(r"(?m)^" + re.escape(name) + r"\s*=\s*[\[(]([^\])]*)[\])]", text)
    if not m:
        return None
    return [s for _q, s in re.findall(r"""(["'])(.*?)\1""", m.group(1))]


def lower_keys(value: Any) -> Any:
    """Hugo's config keys are case-insensitive: baseURL, baseurl and BaseURL are one key."""
    if isinstance(value, dict):
        return {str(k).lower(): lower_keys(v) for k, v in value.items()}
    return value


def load_data(path: Path) -> dict | None:
    """A TOML, YAML or JSON file as a mapping; None if it is not one. A file refused for
    what reading it would cost (an alias bomb, thousands of levels deep) is named."""

    text = read_text(path)
    try:
        if path.suffix == ".toml":
            data = load_toml(text)
        elif path.suffix == ".json":
            data = load_json(text)
        else:
            data = load_yaml(text)
    except DataError as e:
        log.warning("%s: not read: %s", path.name, e)
        return None
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, yaml.YAMLError, ValueError) as e:
        log.debug("%s: not readable as data: %s", path, e)
        return None
    return data if isinstance(data, dict) else None


def markdown_count(folder: Path) -> int:
    count = 0
    for _root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS and not d.startswith(".")]
        count += sum(1 for f in files if f.endswith(MARKDOWN))
    return count


def posts_folder(base: Path, folder: Path) -> Path | None:
    """The usual posts folder under `base`, else its sub-folder holding the most Markdown."""
    for name in POST_FOLDERS:
        if (base / name).is_dir():
            return base / name
    if not base.is_dir():
        return None
    counts = [(markdown_count(d), d.name, d) for d in base.iterdir()
              if d.is_dir() and d.name not in SKIP_DIRS and not d.name.startswith((".", "_"))]
    counts = [c for c in counts if c[0]]
    return max(counts)[2] if counts else None


def rel(path: Path, folder: Path) -> str:
    return Path(os.path.relpath(path, folder)).as_posix()


def valid_timezone(name: Any) -> bool:
    try:
        ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return bool(name)


# --- URL patterns: each engine's tokens -> publisher's placeholders ------------------------
def translate(pattern: str, tokens: dict[str, str], token_re: str) -> tuple[str, list[str]]:
    """Replace an engine's tokens; return the result and the tokens that have no equivalent."""
    unknown: list[str] = []

    def sub(m: re.Match) -> str:
        name = m.group(1)
        if name in tokens:
            return tokens[name]
        unknown.append(m.group(0))
        return m.group(0)

    return re.sub(token_re, sub, pattern), unknown


def set_permalink(d: Detected, pattern: str, unknown: list[str], source: str, fallback: str) -> None:
    """The URL pattern read from the engine, or `fallback` said to be a guess. Hexo's, Eleventy's
    and Jekyll's patterns are root-relative with or without their leading '/': it is added."""
    pattern = "/" + pattern.lstrip("/")
    if unknown or "{" not in pattern:
        d.guess("content.permalink", fallback,
                f"{source} uses {', '.join(unknown) or 'no placeholder'}, which publisher has no "
                f"placeholder for; check the URLs")
    else:
        d.found("content.permalink", pattern, source)


def first_file(folder: Path, *names: str) -> Path | None:
    for name in names:
        if (folder / name).is_file():
            return folder / name
    return None


def js_object(text: str, start: str) -> str | None:
    """The object literal that follows the regular expression `start` in JS source (the `{...}`
    of `starlight({...})` or `blog: {...}`), braces balanced, without its own braces; None if
    absent. Braces inside string literals are skipped."""
    m = re.search(start + r"\s*\{", text)
    if not m:
        return None
    end = brace_end(text, m.end() - 1)
    return text[m.end():end - 1] if end != -1 else None


def js_top_level(block: str) -> str:
    """`block` with what its nested objects and arrays hold blanked out, so that a key read
    from it is the block's own (`title:` of starlight({...}), not of a plugin inside)."""
    out, depth = [], 0
    for c in block:
        if c in "{[":
            depth += 1
            out.append(c)
        elif c in "}]":
            depth = max(depth - 1, 0)
            out.append(c)
        else:
            out.append(c if depth == 0 else " ")
    return "".join(out)


@functools.lru_cache(maxsize=8)
def site_yaml(path: str, _mtime_ns: int, _size: int) -> dict:
    """A site config file's mapping ({} for none or a broken one), read once per change (the
    post rules ask for every post: Hexo's new_post_name, Jekyll's plugins)."""
    try:
        data = load_yaml(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, DataError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}
