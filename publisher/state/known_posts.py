"""Posts the state has seen: which were announced in a digest, which owe a featured alert."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from .schema import posts


@dataclass(frozen=True)
class KnownPost:
    id: str
    featured: bool
    announced: bool
    alert_due: bool
    alerted: bool
    url: str = ""
    source: str | None = None
    title: str = ""
    published_at: datetime | None = None


class KnownPosts:
    """Posts seen, announced and alerted.
    Mixed into State (state/__init__.py), which gives it read(), write() and meta."""

    def known_posts(self) -> dict[str, KnownPost]:
        with self.read() as conn:
            rows = conn.execute(
                sa.select(posts.c.id, posts.c.featured, posts.c.announced_at, posts.c.alert_due,
                          posts.c.alerted_at, posts.c.url, posts.c.source, posts.c.title,
                          posts.c.published_at)
            )
            return {
                r.id: KnownPost(r.id, bool(r.featured), r.announced_at is not None, bool(r.alert_due),
                                r.alerted_at is not None, r.url, r.source, r.title, r.published_at)
                for r in rows
            }

    def record_posts(self, new: list[dict], changed: list[dict], *, baseline_at: datetime | None = None) -> None:
        """Insert newly seen posts and update changed ones, in one transaction.

        Each dict has id, url, source, title, published_at, featured, alert_due (and, for new
        rows, first_seen_at / announced_at). A changed row with `old_id` is a known post under
        a new id (its URL rule changed, or its file was renamed): the row is re-keyed, and keeps
        its history. `baseline_at` set: this is the site's first run, and it is recorded in
        the same transaction, so a crash can never mail the back catalogue."""
        with self.write() as conn:
            if new:
                conn.execute(posts.insert(), new)
            for row in changed:
                key = row.get("old_id", row["id"])
                values = {k: v for k, v in row.items() if k != "old_id"}
                conn.execute(posts.update().where(posts.c.id == key).values(**values))
            if baseline_at is not None:
                self._set_meta(conn, "baseline_at", baseline_at.isoformat())

    def unannounced_post_ids(self) -> list[str]:
        with self.read() as conn:
            return list(conn.execute(sa.select(posts.c.id).where(posts.c.announced_at.is_(None))).scalars())

    def alert_due_post_ids(self) -> list[str]:
        with self.read() as conn:
            return list(
                conn.execute(
                    sa.select(posts.c.id).where(posts.c.alert_due.is_(True), posts.c.alerted_at.is_(None))
                ).scalars()
            )
