"""The build's and the idle run's cache reads and writes on a SQLite state database, with the
standard library's sqlite3: importing SQLAlchemy costs more than what these paths do (~0.2 s).

This is the one module besides state.py that holds SQL; it belongs to the state layer (and
moves under it). It never creates or migrates a database: where the schema is not the one it
knows, its callers take the full path through State.
"""

from __future__ import annotations

import logging
import sqlite3
from urllib.parse import quote

log = logging.getLogger(__name__)


def read_meta(path: str, key: str) -> str | None:
    """One value of the meta table, read-only: a missing database stays missing, and the
    caller never writes. None when there is no such database, table or key."""
    try:
        conn = sqlite3.connect(f"file:{quote(path)}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error:
        return None
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    except sqlite3.Error:
        return None  # no meta table yet, locked, or not a database: the full run says which
    finally:
        conn.close()
    return row[0] if row else None
