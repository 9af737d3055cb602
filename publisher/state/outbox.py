"""Digests and alerts recorded with one owed delivery per subscriber, and the claims
by which several senders share the owed rows; `ledger()` records each message sent."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Iterable, Iterator

import sqlalchemy as sa

from ..cache import STAMP_KEY as IDLE_STAMP_KEY
from .ledger import Ledger
from .schema import ACTIVE, OWED, UTCDateTime, deliveries, digests, meta, posts, subscribers, utcnow


@dataclass(frozen=True)
class DigestRow:
    id: int
    kind: str
    created_at: datetime
    status: str
    subject: str
    html: str
    text: str
    post_ids: tuple[str, ...]


@dataclass(frozen=True)
class OwedDelivery:
    digest_id: int
    subscriber_id: int
    email: str
    name: str
    token: str
    status: str
    attempts: int


class Outbox:
    """Digests, owed deliveries and claims.
    Mixed into State (state/__init__.py), which gives it read(), write() and meta."""

    def create_digest(self, *, kind: str, subject: str, html: str, text: str, post_ids: Iterable[str],
                      now: datetime) -> int:
        """Record a digest, its owed deliveries (one per active subscriber) and the posts it
        announces, atomically: either all of it exists or none."""
        post_ids = list(post_ids)
        with self.write() as conn:
            # Mail is owed from now on: a run may no longer take the idle shortcut.
            conn.execute(meta.delete().where(meta.c.key == IDLE_STAMP_KEY))
            digest_id = conn.execute(
                digests.insert().values(
                    kind=kind, created_at=now, status="sending", subject=subject, html=html,
                    text=text, post_ids=json.dumps(post_ids),
                )
            ).inserted_primary_key[0]
            conn.execute(
                deliveries.insert().from_select(
                    ["digest_id", "subscriber_id", "status", "attempts", "updated_at"],
                    sa.select(
                        sa.literal(digest_id), subscribers.c.id, sa.literal("pending"), sa.literal(0),
                        sa.literal(now, UTCDateTime),
                    ).where(subscribers.c.status == ACTIVE),
                )
            )
            for i in range(0, len(post_ids), 500):
                chunk = post_ids[i : i + 500]
                if kind == "digest":
                    conn.execute(
                        posts.update()
                        .where(posts.c.id.in_(chunk), posts.c.announced_at.is_(None))
                        .values(announced_at=now, announced_digest_id=digest_id)
                    )
                else:
                    conn.execute(
                        posts.update().where(posts.c.id.in_(chunk)).values(alerted_at=now, alert_due=False)
                    )
            if kind == "digest":
                self._set_meta(conn, "last_digest_at", now.isoformat())
        return int(digest_id)

    def open_digests(self) -> list[DigestRow]:
        """Digests with deliveries still owed, oldest first."""
        with self.read() as conn:
            rows = conn.execute(sa.select(digests).where(digests.c.status == "sending").order_by(digests.c.id))
            return [
                DigestRow(r.id, r.kind, r.created_at, r.status, r.subject, r.html, r.text,
                          tuple(json.loads(r.post_ids)))
                for r in rows
            ]

    def get_digest(self, digest_id: int) -> DigestRow | None:
        with self.read() as conn:
            r = conn.execute(sa.select(digests).where(digests.c.id == digest_id)).first()
        if r is None:
            return None
        return DigestRow(r.id, r.kind, r.created_at, r.status, r.subject, r.html, r.text,
                         tuple(json.loads(r.post_ids)))

    def claim_batch(self, digest_id: int, sender: str, *, limit: int, now: datetime,
                    stale_before: datetime, dead_senders: Iterable[str] = ()) -> list[OwedDelivery]:
        """Claim up to `limit` owed deliveries of a digest for `sender`, and return them.

        A row is claimable when nobody holds it, or its holder is known dead, or the holder
        showed no sign of life since `stale_before`. On PostgreSQL the candidates are locked
        with FOR UPDATE SKIP LOCKED, so concurrent senders on several machines never claim the
        same row; on SQLite the write transaction itself is exclusive."""
        free = [deliveries.c.claimed_by.is_(None), deliveries.c.claimed_at < stale_before]
        dead = list(dead_senders)
        if dead:
            free.append(deliveries.c.claimed_by.in_(dead))
        claimable = sa.or_(*free)
        with self.write() as conn:
            # The rows are read with the candidates: claiming changes neither their status
            # nor their attempts, and a second query for them was a fifth of a claim's time.
            candidates = (
                sa.select(deliveries.c.subscriber_id, deliveries.c.status, deliveries.c.attempts,
                          subscribers.c.email, subscribers.c.name, subscribers.c.token)
                .join(subscribers, subscribers.c.id == deliveries.c.subscriber_id)
                .where(deliveries.c.digest_id == digest_id, deliveries.c.status.in_(OWED),
                       subscribers.c.status == ACTIVE, claimable)
                .order_by(deliveries.c.subscriber_id)
                .limit(limit)
            )
            if conn.dialect.name == "postgresql":
                candidates = candidates.with_for_update(skip_locked=True, of=deliveries)
            rows = conn.execute(candidates).all()
            if not rows:
                return []
            conn.execute(
                deliveries.update()
                .where(deliveries.c.digest_id == digest_id,
                       deliveries.c.subscriber_id.in_([r.subscriber_id for r in rows]))
                .values(claimed_by=sender, claimed_at=now)
            )
        return [OwedDelivery(digest_id, r.subscriber_id, r.email, r.name, r.token, r.status, r.attempts)
                for r in rows]

    def claimants(self, digest_id: int) -> list[str]:
        """Senders holding owed rows of a digest (to spot dead ones)."""
        with self.read() as conn:
            return list(conn.execute(
                sa.select(deliveries.c.claimed_by).distinct()
                .where(deliveries.c.digest_id == digest_id, deliveries.c.status.in_(OWED),
                       deliveries.c.claimed_by.is_not(None))
            ).scalars())

    def release_claims(self, digest_id: int, sender: str) -> int:
        """Give back the rows `sender` claimed but did not finish (stopped, or deferred)."""
        with self.write() as conn:
            return conn.execute(
                deliveries.update()
                .where(deliveries.c.digest_id == digest_id, deliveries.c.claimed_by == sender)
                .values(claimed_by=None, claimed_at=None)
            ).rowcount

    def count_status(self, digest_id: int, status: str) -> int:
        with self.read() as conn:
            return conn.execute(
                sa.select(sa.func.count()).select_from(deliveries)
                .where(deliveries.c.digest_id == digest_id, deliveries.c.status == status)
            ).scalar()

    def count_owed(self, digest_id: int) -> int:
        with self.read() as conn:
            return conn.execute(
                sa.select(sa.func.count())
                .select_from(deliveries.join(subscribers, subscribers.c.id == deliveries.c.subscriber_id))
                .where(deliveries.c.digest_id == digest_id, deliveries.c.status.in_(OWED),
                       subscribers.c.status == ACTIVE)
            ).scalar()

    def finish_digest_if_done(self, digest_id: int, now: datetime | None = None) -> bool:
        """Close a digest when no active subscriber is still owed it."""
        if self.count_owed(digest_id):
            return False
        with self.write() as conn:
            conn.execute(
                digests.update().where(digests.c.id == digest_id).values(status="done", finished_at=now or utcnow())
            )
            return True

    def delivery_counts(self, digest_id: int) -> dict[str, int]:
        with self.read() as conn:
            rows = conn.execute(
                sa.select(deliveries.c.status, sa.func.count())
                .where(deliveries.c.digest_id == digest_id)
                .group_by(deliveries.c.status)
            )
            return {status: count for status, count in rows}

    @contextlib.contextmanager
    def ledger(self, digest_id: int, sender: str | None = None,
               refresh_every: timedelta | None = None) -> Iterator[Ledger]:
        """The delivery ledger of one digest for the length of a send (see `Ledger`).
        A result still held back is written on the way out, whatever ended the send: the
        server accepted that message. With `sender`, the claims it holds are renewed with an
        intent at least every `refresh_every` (the sign of life other senders look for)."""
        ledger = Ledger(self, digest_id, sender, refresh_every)
        try:
            yield ledger
        finally:
            try:
                ledger.flush()
            finally:
                ledger.close()
