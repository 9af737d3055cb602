"""The idle stamp: how `publisher run`, which cron repeats all day, knows in a few
milliseconds that there is nothing to do (one of the "has this changed?" answers, kept apart
from cache.py's others: __main__.py imports it before anything heavy).

Most runs find no post changed, no feed to rewrite, no digest due and no mail owed. Proving
that the long way costs more than the work itself: importing SQLAlchemy alone takes longer
than a walk over 2,000 post files. So a run that did nothing leaves a stamp in the state
database saying what its outcome depended on, until when it holds, and what it reported.
The next run recomputes the same signature from the files (a walk and a stat each, no file
read, no SQLAlchemy) and, if the stamp matches and has not expired, reports the same again
and stops.

The signature covers:
- every post file's path, size and mtime (the scan cache's own test, and its residual risk),
  walked by content/files.py alone: what the engine adds to the walk (its other post
  formats, its fingerprint when constant) is kept in the stamp, a function of the config
  and code below; an engine whose fingerprint reads files (Jekyll, Eleventy, Hexo) is asked;
- the feed files last written, by size and mtime (deleted or edited by hand: a full run),
  and the files they took images and Liquid data from;
- the whole config, and publisher's own code: every file of the package, subpackages and
  templates included (an upgrade or an edit never reuses an old stamp).
The stamp expires at the next firing of newsletter.schedule, at the date of the first post
held back for the future and at the first expiryDate of a published post, whichever comes
first.
Owed mail always takes the full path: state.create_digest removes the stamp in the
transaction that records a digest or an alert, and a stamp is only written by a transaction
that finds no digest still owing mail (State.save_idle_stamp).

SQLite only. The stamp is read with the standard library's sqlite3 (cache_sqlite3.py),
because avoiding SQLAlchemy's import is the point. On PostgreSQL every run takes
the full path.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import datetime
from typing import TYPE_CHECKING, Any

from . import __version__
from .cache import sqlite_path, stat_files

if TYPE_CHECKING:
    from .config import Config
    from .content import LoadResult
    from .state import State

_FORMAT = 2  # 2: the stamp keeps the engine's walk
_CODE_SIGNATURE: str | None = None


def _code_signature() -> str:
    """publisher's version and the size and mtime of every file of the package, at any depth
    (code, subpackages and templates alike): a reinstall, an edited checkout or a new module
    changes it."""
    global _CODE_SIGNATURE
    if _CODE_SIGNATURE is None:
        h = hashlib.sha256(__version__.encode())
        package = os.path.dirname(os.path.abspath(__file__))
        for folder, subfolders, files in os.walk(package):
            # Compiled bytecode follows the sources; hidden folders are no part of the code.
            subfolders[:] = sorted(d for d in subfolders
                                   if d != "__pycache__" and not d.startswith("."))
            rel = os.path.relpath(folder, package).replace(os.sep, "/")
            for name in sorted(files):
                try:
                    st = os.stat(os.path.join(folder, name))
                except OSError:
                    continue  # removed while we walked: the next run sees the new tree
                h.update(f"{rel}/{name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode("utf-8", "surrogatepass"))
        _CODE_SIGNATURE = h.hexdigest()
    return _CODE_SIGNATURE


def _signature(config: Config, content: str, feeds: dict[str, list[int]]) -> str:
    parts = [_FORMAT, _code_signature(), repr(config), content, sorted(feeds.items())]
    return hashlib.sha256(json.dumps(parts).encode("utf-8", "surrogatepass")).hexdigest()


def stamp(config: Config, *, files_signature: str, feed_files: dict[str, list[int]],
          expires: datetime | None, lines: list[str], problems: list[str]) -> str:
    """The stamp of a run that did nothing: `files_signature` as its scan saw the posts,
    `feed_files` as it found the feeds (unchanged), and what it reported."""
    # lazy: content/ (PyYAML, cmarkgfm, nh3: ~60 ms); imported by the run that stamps
    from .content.files import engine_walk

    return json.dumps({
        "signature": _signature(config, files_signature, feed_files),
        # What the engine adds to the walk (engine_walk): the idle check walks with it
        # rather than importing the engines' rules (~20 ms): a function of the config and
        # the code, which the signature covers.
        "walk": engine_walk(config),
        "feeds": sorted(feed_files),
        "expires": expires.isoformat() if expires else None,
        "lines": lines,
        "problems": problems,
    }, ensure_ascii=False)


def still_idle(config: Config, now: datetime) -> dict[str, Any] | None:
    """The last idle run's stamp, if nothing it depended on changed and it has not expired:
    {"lines": [...], "problems": [...]}, what that run reported. Else None."""
    # lazy: cache_sqlite3 (sqlite3) ~7 ms, only where a SQLite file is read
    from . import cache_sqlite3
    # lazy, and this one module of content/: the walk without the engines' rules, PyYAML,
    # cmark-gfm or nh3 (the rest of content/ costs ~20 ms more)
    from .content.files import content_signature

    if not config.content_dir.is_dir():
        return None  # the full run says so, and touches nothing (not even the database)
    path = sqlite_path(config)
    value = cache_sqlite3.read_meta(path, cache_sqlite3.IDLE_STAMP_KEY) if path else None
    if not value:
        return None
    try:
        found = json.loads(value)
        expires = datetime.fromisoformat(found["expires"]) if found["expires"] else None
        feed_files = stat_files(config.output_dir, found["feeds"])
        lines, problems = list(found["lines"]), list(found["problems"])
        formats, fingerprint = found["walk"]
        walk = (tuple(formats), fingerprint if isinstance(fingerprint, str) else None)
    except (ValueError, KeyError, TypeError):
        return None
    if expires is not None and now >= expires:
        return None
    if len(feed_files) != len(found["feeds"]):
        return None  # a feed file is gone
    if _signature(config, content_signature(config, walk), feed_files) != found["signature"]:
        return None
    return {"lines": lines, "problems": problems}


def save_idle_stamp(config: Config, state: State, loaded: LoadResult,
                    feed_files: dict[str, list[int]], now: datetime, since_last_digest: datetime,
                    lines: list[str], problems: list[str]) -> None:
    """A run did nothing: let the next ones say so cheaply, until something changes or the
    schedule fires or a post held back for the future comes due."""
    # lazy: newsletter.owed pulls in content/ (~60 ms with PyYAML), not needed by the idle shortcut
    from .newsletter.owed import next_firing

    due = [p.published for p in loaded.held_back if not p.draft and p.published > now]
    due += [p.expires for p in loaded.posts if p.expires is not None]  # Hugo's expiryDate
    firing = next_firing(config, since_last_digest)
    if firing is not None:
        due.append(firing)
    state.save_idle_stamp(stamp(config, files_signature=loaded.files_signature,
                                feed_files=feed_files, expires=min(due, default=None),
                                lines=lines, problems=problems))
