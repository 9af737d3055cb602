"""The run lock: one planning run per site at a time."""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from typing import Iterator

import sqlalchemy as sa

from ..errors import LockedError


class RunLock:
    """The site's run lock.
    Mixed into State (state/__init__.py), which gives it read(), write() and meta."""

    @contextlib.contextmanager
    def run_lock(self, wait: float = 0.0, poll: float = 0.2) -> Iterator[None]:
        """Hold the site's run lock; raise LockedError if another run keeps it past `wait` s.

        SQLite: an OS lock (flock) on a file beside the database, which the kernel releases
        when the holder dies, so a crash can never leave a stale lock. PostgreSQL: a session
        advisory lock, released when its connection closes."""
        if self.is_sqlite:
            import fcntl  # lazy: POSIX only (~1 ms); PostgreSQL sites lock without it

            db_path = self.url.split("///", 1)[1]
            lock_path = db_path + ".lock"
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                deadline = time.monotonic() + wait
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if time.monotonic() >= deadline:
                            raise LockedError("another publisher run is in progress; nothing done") from None
                        time.sleep(poll)
                try:
                    yield
                finally:
                    fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)
        else:
            # One lock per database (and schema): sites sharing a server never block each other.
            key = int.from_bytes(hashlib.sha256(self.url.encode()).digest()[:8], "big") >> 1
            with self.engine.connect() as conn:
                deadline = time.monotonic() + wait
                while not conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar():
                    conn.rollback()
                    if time.monotonic() >= deadline:
                        raise LockedError("another publisher run is in progress; nothing done")
                    time.sleep(poll)
                conn.commit()
                try:
                    yield
                finally:
                    conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                    conn.commit()
