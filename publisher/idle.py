"""The idle stamp: how `publisher run`, which cron repeats all day, knows in a few milliseconds
that there is nothing to do.

Most runs find no post changed, no feed to rewrite, no digest due and no mail owed. Proving
that the long way costs more than the work itself: importing SQLAlchemy alone takes longer
than a walk over 2,000 post files. So a run that did nothing leaves a stamp in the state
database saying what its outcome depended on, until when it holds, and what it reported.
The next run recomputes the same signature from the files (a walk and a stat each, no file
read, no SQLAlchemy) and, if the stamp matches and has not expired, reports the same again
and stops.

The signature covers:
- every post file's path, size and mtime (the scan cache's own test, and its residual risk);
- the feed files last written, by size and mtime (deleted or edited by hand: a full run);
- the whole config, and publisher's own code: every file of the package, subpackages and
  templates included (an upgrade or an edit never reuses an old stamp).
The stamp expires at the next firing of newsletter.schedule and at the date of the first
post held back for the future, whichever comes first.
Owed mail always takes the full path: state.create_digest removes the stamp in the
transaction that records a digest or an alert, and a stamp is only written by a transaction
that finds no digest still owing mail (State.save_idle_stamp).

SQLite only. The stamp is read with the standard library's sqlite3, the one read outside
state.py, because avoiding SQLAlchemy's import is the point. On PostgreSQL every run takes
the full path.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from . import __version__

if TYPE_CHECKING:
    from .config import Config

log = logging.getLogger(__name__)

STAMP_KEY = "idle_stamp"
_FORMAT = 1
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


def stat_files(output_dir: Path, rels) -> dict[str, list[int]]:
    """{relative path: [size, mtime_ns]} of the files that exist."""
    found = {}
    for rel in rels:
        try:
            st = (output_dir / rel).stat()
        except OSError:
            continue
        found[rel] = [st.st_size, st.st_mtime_ns]
    return found


def _signature(config: Config, content: str, feeds: dict[str, list[int]]) -> str:
    parts = [_FORMAT, _code_signature(), repr(config), content, sorted(feeds.items())]
    return hashlib.sha256(json.dumps(parts).encode("utf-8", "surrogatepass")).hexdigest()


def sqlite_path(config: Config) -> str | None:
    """The SQLite file behind state.database, or None for any other database."""
    url = config.database_url
    if not url.startswith("sqlite:///"):
        return None
    path = url[len("sqlite:///"):]
    return path if path and path != ":memory:" else None


def stamp(config: Config, *, files_signature: str, feed_files: dict[str, list[int]],
          expires: datetime | None, lines: list[str], problems: list[str]) -> str:
    """The stamp of a run that did nothing: `files_signature` as its scan saw the posts,
    `feed_files` as it found the feeds (unchanged), and what it reported."""
    return json.dumps({
        "signature": _signature(config, files_signature, feed_files),
        "feeds": sorted(feed_files),
        "expires": expires.isoformat() if expires else None,
        "lines": lines,
        "problems": problems,
    }, ensure_ascii=False)


def _read_stamp(path: str) -> str | None:
    import sqlite3

    try:
        # Read-only: a missing database stays missing, and this run never writes.
        conn = sqlite3.connect(f"file:{quote(path)}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error:
        return None
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = ?", (STAMP_KEY,)).fetchone()
    except sqlite3.Error:
        return None  # no meta table yet, locked, or not a database: the full run says which
    finally:
        conn.close()
    return row[0] if row else None


def still_idle(config: Config, now: datetime) -> dict[str, Any] | None:
    """The last idle run's stamp, if nothing it depended on changed and it has not expired:
    {"lines": [...], "problems": [...]}, what that run reported. Else None."""
    from .content import content_signature

    if not config.content_dir.is_dir():
        return None  # the full run says so, and touches nothing (not even the database)
    path = sqlite_path(config)
    value = _read_stamp(path) if path else None
    if not value:
        return None
    try:
        found = json.loads(value)
        expires = datetime.fromisoformat(found["expires"]) if found["expires"] else None
        feed_files = stat_files(config.output_dir, found["feeds"])
        lines, problems = list(found["lines"]), list(found["problems"])
    except (ValueError, KeyError, TypeError):
        return None
    if expires is not None and now >= expires:
        return None
    if len(feed_files) != len(found["feeds"]):
        return None  # a feed file is gone
    if _signature(config, content_signature(config), feed_files) != found["signature"]:
        return None
    return {"lines": lines, "problems": problems}
