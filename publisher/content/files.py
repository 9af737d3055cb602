"""Which files under content.dir are post files (the walk, content.exclude), and the
signature of their paths, sizes and mtimes: what load_posts reads, and what an idle
`publisher run` compares without reading any file (idle.still_idle).

Its imports stay light (no PyYAML, Markdown, sanitiser or engine rules: ~20 ms together):
the idle shortcut imports this module alone. What an engine adds to the walk (its other
post formats, and the fingerprint of the files it reads besides the posts) is passed in by
the caller, or asked of the engine lazily.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import Config

POST_SUFFIXES = (".md", ".markdown", ".mdx")
# Hugo's section pages, in any language (`_index.md`, `_index.ja.md`): never posts.
LISTING_PAGE = re.compile(r"^_index(\.[A-Za-z-]+)?\.(md|markdown|mdx|html?)$", re.I)


def walk(content_dir: Path, unreadable: list[tuple[tuple[str, ...], str]] | None = None,
         roots: tuple[Path, ...] = (), refused: list[tuple[tuple[str, ...], str]] | None = None,
         suffixes: tuple[str, ...] = POST_SUFFIXES) -> list[tuple[tuple[str, ...], os.DirEntry]]:
    """(path parts relative to content_dir, entry) of every post file, sorted by parts (the
    order Path objects sort in). os.scandir rather than Path.rglob: the directory entries
    come with their type, and their stat() is what the scan cache compares. A folder that
    cannot be listed is added to `unreadable` as (its parts, the reason). A post file that is
    a symlink out of content_dir and `roots` (the site folder) is never read: a blog
    repository could otherwise publish any file of the machine that builds it; it is added
    to `refused` as (its parts, its real path)."""
    folders = tuple(dict.fromkeys(os.path.realpath(f) for f in (content_dir, *roots)))
    found: list[tuple[tuple[str, ...], os.DirEntry]] = []
    stack: list[tuple[str, tuple[str, ...]]] = [(str(content_dir), ())]
    while stack:
        folder, parts = stack.pop()
        try:
            entries = os.scandir(folder)
        except (PermissionError, FileNotFoundError, NotADirectoryError) as e:
            if unreadable is not None:  # (gone since it was listed: not worth a word)
                if not isinstance(e, FileNotFoundError):
                    unreadable.append((parts, e.strerror or type(e).__name__))
            continue
        with entries:
            for entry in entries:
                name = entry.name
                if name.startswith("."):
                    continue  # hidden files and folders
                try:
                    # Like rglob: never descend through a symlinked folder (no loops).
                    if entry.is_dir(follow_symlinks=False):
                        stack.append((entry.path, parts + (name,)))
                        continue
                    if (name.lower().endswith(suffixes) and not LISTING_PAGE.match(name)
                            and entry.is_file()):
                        if entry.is_symlink():
                            real = os.path.realpath(entry.path)
                            if not any(real == f or real.startswith(f.rstrip(os.sep) + os.sep) for f in folders):
                                if refused is not None:
                                    refused.append((parts + (name,), real))
                                continue
                        found.append((parts + (name,), entry))
                except OSError:
                    continue
    found.sort(key=lambda item: item[0])
    return found


def post_files(config: Config, unreadable: list[tuple[tuple[str, ...], str]] | None = None,
               refused: list[tuple[tuple[str, ...], str]] | None = None,
               other_formats: tuple[str, ...] | None = None,
               ) -> list[tuple[tuple[str, ...], os.DirEntry]]:
    """walk without the files content.exclude names (globs against the path under
    content.dir, '/'-separated; a pattern without '/' also matches the file name alone).
    The engine's other post formats too (Hugo's .html content, Pelican's .rst):
    `other_formats`, or the engine's own."""
    if other_formats is None:
        other_formats = _engine(config).other_formats
    found = walk(config.content_dir, unreadable, (config.root,), refused, POST_SUFFIXES + tuple(other_formats))
    patterns = config.content.exclude
    if not patterns:
        return found
    return [(parts, entry) for parts, entry in found if not _excluded(parts, patterns)]


def _excluded(parts: tuple[str, ...], patterns: tuple[str, ...]) -> bool:
    rel = "/".join(parts)
    for pattern in patterns:
        pattern = pattern.strip("/")
        if fnmatch.fnmatchcase(rel, pattern) or fnmatch.fnmatchcase(rel, pattern + "/*"):
            return True
        if "/" not in pattern and fnmatch.fnmatchcase(parts[-1], pattern):
            return True
    return False


def _engine(config: Config):
    # lazy: engines/ imports the front matter, slug and text rules (~10 ms); the idle
    # shortcut passes what it needs of the engine instead (engine_walk)
    from ..engines import engine_for

    return engine_for(config)


def engine_walk(config: Config) -> tuple[tuple[str, ...], str | None]:
    """What the site's engine adds to the walk, for the idle stamp to keep: its other post
    formats, and its fingerprint (FilesSignature) when that is a constant of the config and
    code, or None when it reads files (Jekyll's _config.yml, Eleventy's data files), which
    then must be read again each time."""
    engine = _engine(config)
    from ..engines.rules import Engine  # imported by _engine

    constant = type(engine).fingerprint is Engine.fingerprint
    return tuple(engine.other_formats), (engine.fingerprint(config) if constant else None)


class FilesSignature:
    """A digest of the post files' paths, sizes and mtimes: equal signatures, same files (the
    scan cache's own test, with its residual risk). load_posts and content_signature feed it
    the same walk, so a later walk that finds nothing changed gives the same signature.
    `fingerprint`: the engine's (what else it reads: Eleventy's data files), or None to ask it."""

    def __init__(self, content_dir: Path, config: Config | None = None, fingerprint: str | None = None):
        is_dir = content_dir.is_dir()
        self._lines = [f"{content_dir}\0{is_dir}\n"]
        if config is not None and is_dir:
            # What else the engine reads (Eleventy's data files): a change there is a change.
            self._lines.append(fingerprint if fingerprint is not None else _engine(config).fingerprint(config))

    def add(self, parts: tuple[str, ...], st: os.stat_result | None) -> None:
        """A file, by its path parts under content.dir (joined with "/": os.path.join costs
        a fifth of an idle run's walk), as its stat found it (None: it could not be)."""
        stamp = f"{st.st_size} {st.st_mtime_ns}" if st is not None else "unreadable"
        self._lines.append(f"{'/'.join(parts)}\0{stamp}\n")

    def hexdigest(self) -> str:
        # One hash over the joined lines: the same digest as line by line, at a fraction of
        # the calls (2,000 files: ~1 ms less).
        return hashlib.sha256("".join(self._lines).encode("utf-8", "surrogatepass")).hexdigest()


def content_signature(config: Config, walk_of_engine: tuple[tuple[str, ...], str | None] | None = None) -> str:
    """The signature load_posts would record now, from a walk and a stat of each file (no
    file is read): what `publisher run` compares to know that no post changed.
    `walk_of_engine`: engine_walk(config) as an earlier run recorded it (the idle stamp,
    whose signature covers the config and the code the answer depends on)."""
    formats, fingerprint = walk_of_engine if walk_of_engine is not None else (None, None)
    signature = FilesSignature(config.content_dir, config, fingerprint)
    for parts, entry in post_files(config, other_formats=formats):
        try:
            st = entry.stat()
        except OSError:
            st = None
        signature.add(parts, st)
    return signature.hexdigest()


def find_post_files(content_dir: Path) -> list[Path]:
    """Every Markdown file under content_dir, any depth, in a stable order.

    Hidden files and folders are ignored, and so are Hugo's section pages (_index.md)."""
    return [Path(entry.path) for _parts, entry in walk(content_dir)]
