"""The caches' rows through SQLAlchemy: what the state keeps so work is not done twice: the
rendered-HTML cache, the scan cache (files read before) and the idle stamp (a run that found
nothing to do). publisher/cache.py and idle.py decide what is still valid; this stores it. State
implements cache.CacheStorage with these methods; cache_sqlite3.py reads and writes the same
rows without SQLAlchemy, the other implementation. The state never imports from cache.py
(above it): what both need is in cache_sqlite3.py."""

from __future__ import annotations

from datetime import datetime
from typing import Iterable

import sqlalchemy as sa

from ..cache_sqlite3 import IDLE_STAMP_KEY
from .schema import digests, insert_on_conflict, meta, render_cache, scan_cache, utcnow


class CacheRows:
    """Render cache, scan cache and idle stamp.
    Mixed into State (state/__init__.py), which gives it read(), write() and meta."""

    def save_idle_stamp(self, value: str) -> bool:
        """Store the idle stamp (see idle.py), unless some digest still owes mail: checked and
        written in one write transaction, so a digest recorded at the same moment by another
        process either comes first (no stamp) or removes the stamp itself (create_digest)."""
        with self.write() as conn:
            owing = conn.execute(sa.select(digests.c.id).where(digests.c.status == "sending").limit(1)).first()
            if owing is not None:
                conn.execute(meta.delete().where(meta.c.key == IDLE_STAMP_KEY))
                return False
            self._set_meta(conn, IDLE_STAMP_KEY, value)
            return True

    def cached_html(self, keys: Iterable[str]) -> dict[str, str]:
        keys = list(keys)
        found: dict[str, str] = {}
        with self.read() as conn:
            for i in range(0, len(keys), 500):
                chunk = keys[i : i + 500]
                rows = conn.execute(
                    sa.select(render_cache.c.key, render_cache.c.html).where(render_cache.c.key.in_(chunk))
                )
                found.update({r.key: r.html for r in rows})
        return found

    def store_html(self, rendered: dict[str, str], now: datetime | None = None) -> None:
        if not rendered:
            return
        now = now or utcnow()
        rows = [{"key": k, "html": v, "used_at": now} for k, v in rendered.items()]
        with self.write() as conn:
            for i in range(0, len(rows), 500):
                conn.execute(insert_on_conflict(conn, render_cache).on_conflict_do_nothing(), rows[i : i + 500])

    def drop_html(self, prefix: str) -> None:
        """Drop the cached rows whose key starts with `prefix` (hex digits: feed_cache.FeedFragments
        drops the feed entries of an older config or code so)."""
        with self.write() as conn:
            conn.execute(render_cache.delete().where(render_cache.c.key >= prefix,
                                                     render_cache.c.key < prefix + "g"))

    def prune_html(self, keep: Iterable[str]) -> int:
        """Drop cached HTML of versions no longer in use; returns rows removed."""
        keep = set(keep)
        with self.write() as conn:
            stale = [k for k in conn.execute(sa.select(render_cache.c.key)).scalars() if k not in keep]
            for i in range(0, len(stale), 500):
                conn.execute(render_cache.delete().where(render_cache.c.key.in_(stale[i : i + 500])))
        return len(stale)

    def scan_cache(self, fingerprint: str) -> dict[str, tuple[int, int, str, str | None, str | None]]:
        """{path: (size, mtime_ns, content_hash, post JSON, problem)} of the entries stored
        under `fingerprint` (content.ScanEntry's fields); entries under another are stale."""
        c = scan_cache.c
        with self.read() as conn:
            rows = conn.execute(
                sa.select(c.path, c.size, c.mtime_ns, c.content_hash, c.post, c.problem)
                .where(c.fingerprint == fingerprint)
            )
            return {r[0]: (r[1], r[2], r[3], r[4], r[5]) for r in rows}

    def store_scan_cache(self, fingerprint: str, changed: dict[str, tuple], removed: Iterable[str]) -> None:
        """Store new and changed entries ({path: (size, mtime_ns, content_hash, post JSON,
        problem)}), drop `removed` paths and every stale entry, in one transaction."""
        removed = list(removed)
        rows = [
            {"path": path, "size": size, "mtime_ns": mtime_ns, "content_hash": content_hash,
             "fingerprint": fingerprint, "post": post, "problem": problem}
            for path, (size, mtime_ns, content_hash, post, problem) in changed.items()
        ]
        with self.write() as conn:
            conn.execute(scan_cache.delete().where(scan_cache.c.fingerprint != fingerprint))
            for i in range(0, len(removed), 500):
                conn.execute(scan_cache.delete().where(scan_cache.c.path.in_(removed[i : i + 500])))
            for i in range(0, len(rows), 500):
                stmt = insert_on_conflict(conn, scan_cache)
                stmt = stmt.on_conflict_do_update(
                    index_elements=[scan_cache.c.path],
                    set_={name: stmt.excluded[name] for name in
                          ("size", "mtime_ns", "content_hash", "fingerprint", "post", "problem")},
                )
                conn.execute(stmt, rows[i : i + 500])
