"""Digests and alerts recorded with one owed delivery per subscriber, and the claims
by which several senders share the owed rows; `ledger()` records each message sent."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable, Iterable, Iterator

import sqlalchemy as sa

from .ledger import Ledger
from ..cache_sqlite3 import IDLE_STAMP_KEY, ArchivedIssue
from .schema import (ACTIVE, OWED, archive_issues, UTCDateTime, deliveries, digest_variants, digests, meta, posts,
                     sender_leases, subscribers, utcnow)

# A lease that ran out this long ago is deleted by the next sender that starts, whatever it
# holds: rows still claimed under it then fall under the rule for claims without a lease
# (free once claimed_at is stale), which they meet by then.
LEASE_FORGOTTEN = timedelta(days=1)


def lease_clock(conn: sa.Connection) -> datetime:
    """Now, as leases count it. PostgreSQL: the server's clock, the one that every machine
    sharing the database reads alike (a sender's clock running ahead must not make it take
    a live sender's rows). SQLite: this machine's, the only one that opens the file."""
    if conn.dialect.name == "postgresql":
        return conn.execute(sa.select(sa.func.clock_timestamp())).scalar_one()
    return utcnow()


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
    variant: int = 0  # the digest's body for this subscriber (0: the digest's own)


@dataclass(frozen=True)
class Claim:
    """Owed rows of a digest that one sender holds, and what its lease says of it (both
    None for a claim without a lease: an older publisher's). `clock`: the lease clock when
    this was read."""

    sender: str
    owed: int
    renewed_at: datetime | None
    expires_at: datetime | None
    clock: datetime


@dataclass(frozen=True)
class DigestPlan:
    """What newsletter/topics.py planned for a digest: its other bodies (variant n is
    variants[n-1]) and {subscriber id: variant} for everyone who gets it (0: the digest's own
    body). A subscriber left out gets no mail of this digest."""

    variants: tuple[DigestVariant, ...]
    recipients: dict[int, int]


@dataclass(frozen=True)
class DigestVariant:
    """One of a digest's bodies besides its own (see digest_variants)."""

    subject: str
    html: str
    text: str
    post_ids: tuple[str, ...]


class Outbox:
    """Digests, owed deliveries and claims.
    Mixed into State (state/__init__.py), which gives it read(), write() and meta."""

    def create_digest(self, *, kind: str, subject: str, html: str, text: str, post_ids: Iterable[str],
                      now: datetime, plan: DigestPlan | None = None, archive: str | None = None) -> int:
        """Record a digest, its owed deliveries (one per active subscriber, or, with `plan`,
        one per planned subscriber still active, with its variant), the posts it announces
        and, given `archive` (archive.snapshot), its archive page's content, atomically:
        either all of it exists or none."""
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
            if archive is not None:
                conn.execute(archive_issues.insert().values(digest_id=digest_id, posts=archive))
            if plan is None:
                conn.execute(
                    deliveries.insert().from_select(
                        ["digest_id", "subscriber_id", "status", "attempts", "updated_at"],
                        sa.select(
                            sa.literal(digest_id), subscribers.c.id, sa.literal("pending"), sa.literal(0),
                            sa.literal(now, UTCDateTime),
                        ).where(subscribers.c.status == ACTIVE),
                    )
                )
            else:
                self._record_plan(conn, digest_id, plan, now)
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

    # --- topics (newsletter/topics.py decides; this stores) ---

    def _record_plan(self, conn: sa.Connection, digest_id: int, plan: DigestPlan, now: datetime) -> None:
        """A planned digest's variants and its deliveries: each planned subscriber who is
        still active gets a row with its variant. Someone who became active while the plan
        was made waits for the next digest (its posts count as mailed for them)."""
        for number, variant in enumerate(plan.variants, 1):
            conn.execute(digest_variants.insert().values(
                digest_id=digest_id, variant=number, subject=variant.subject, html=variant.html,
                text=variant.text, post_ids=json.dumps(list(variant.post_ids))))
        by_variant: dict[int, list[int]] = {}
        for sid, number in plan.recipients.items():
            by_variant.setdefault(number, []).append(sid)
        # INSERT ... SELECT, as without a plan: the database filters the active ones itself.
        for number, ids in sorted(by_variant.items()):
            for i in range(0, len(ids), 500):
                conn.execute(deliveries.insert().from_select(
                    ["digest_id", "subscriber_id", "status", "attempts", "updated_at", "variant"],
                    sa.select(sa.literal(digest_id), subscribers.c.id, sa.literal("pending"), sa.literal(0),
                              sa.literal(now, UTCDateTime), sa.literal(number))
                    .where(subscribers.c.id.in_(ids[i : i + 500]), subscribers.c.status == ACTIVE)))

    def digest_variants(self, digest_id: int) -> dict[int, DigestVariant]:
        with self.read() as conn:
            rows = conn.execute(sa.select(digest_variants).where(digest_variants.c.digest_id == digest_id))
            return {r.variant: DigestVariant(r.subject, r.html, r.text, tuple(json.loads(r.post_ids)))
                    for r in rows}

    def alerted_to(self, post_ids: Iterable[str]) -> dict[str, set[int]]:
        """{post id: subscribers an alert carrying it was sent to, or is still owed to}."""
        wanted = set(post_ids)
        found: dict[str, set[int]] = {}
        with self.read() as conn:
            alerted = set(conn.execute(sa.select(posts.c.id).where(
                posts.c.id.in_(list(wanted)), posts.c.alerted_at.is_not(None))).scalars()) if wanted else set()
            if not alerted:
                return found
            alerts = conn.execute(sa.select(digests.c.id, digests.c.post_ids).where(digests.c.kind == "alert"))
            for digest_id, ids in alerts:
                for post_id in set(json.loads(ids)) & alerted:
                    found.setdefault(post_id, set()).update(conn.execute(
                        sa.select(deliveries.c.subscriber_id).where(
                            deliveries.c.digest_id == digest_id,
                            deliveries.c.status.in_(("sent",) + OWED))).scalars())
        return found

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

    def archived_issues(self) -> list[ArchivedIssue]:
        """Every issue recorded for the public archive, newest first."""
        d = digests.c
        with self.read() as conn:
            rows = conn.execute(
                sa.select(d.id, d.kind, d.subject, d.created_at, archive_issues.c.posts)
                .join(archive_issues, archive_issues.c.digest_id == d.id).order_by(d.id.desc()))
            return [ArchivedIssue(r.id, r.kind, r.subject, r.created_at, r.posts) for r in rows]

    def claim_batch(self, digest_id: int, sender: str, *, limit: int, now: datetime,
                    stale_before: datetime, dead_senders: Iterable[str] = ()) -> list[OwedDelivery]:
        """Claim up to `limit` owed deliveries of a digest for `sender`, and return them.

        A row is claimable when nobody holds it, or its holder is known dead (`dead_senders`:
        a process gone on this machine), or its holder's lease (sender_leases) has run out. A
        claim without a lease (an older publisher's) is claimable once its holder showed no
        sign of life since `stale_before`. On PostgreSQL the candidates are locked with FOR
        UPDATE SKIP LOCKED, so concurrent senders on several machines never claim the same
        row; on SQLite the write transaction itself is exclusive."""
        lease = sender_leases.c
        claimed_by = deliveries.c.claimed_by
        with self.write() as conn:
            clock = lease_clock(conn)
            expired = sa.select(lease.sender).where(lease.digest_id == digest_id,
                                                    lease.expires_at < clock)
            free = [claimed_by.is_(None), claimed_by.in_(expired),
                    sa.and_(deliveries.c.claimed_at < stale_before,
                            ~sa.exists().where(lease.sender == claimed_by))]
            dead = list(dead_senders)
            if dead:
                free.append(claimed_by.in_(dead))
            # The rows are read with the candidates: claiming changes neither their status
            # nor their attempts, and a second query for them was a fifth of a claim's time.
            candidates = (
                sa.select(deliveries.c.subscriber_id, deliveries.c.status, deliveries.c.attempts,
                          deliveries.c.variant, subscribers.c.email, subscribers.c.name,
                          subscribers.c.token)
                .join(subscribers, subscribers.c.id == deliveries.c.subscriber_id)
                .where(deliveries.c.digest_id == digest_id, deliveries.c.status.in_(OWED),
                       subscribers.c.status == ACTIVE, sa.or_(*free))
                .order_by(deliveries.c.subscriber_id)
                .limit(limit)
            )
            if conn.dialect.name == "postgresql":
                candidates = candidates.with_for_update(skip_locked=True, of=deliveries)
            rows = conn.execute(candidates).all()
            if rows:
                conn.execute(
                    deliveries.update()
                    .where(deliveries.c.digest_id == digest_id,
                           deliveries.c.subscriber_id.in_([r.subscriber_id for r in rows]))
                    .values(claimed_by=sender, claimed_at=now)
                )
            if len(rows) < limit or dead:
                self._forget_leases(conn, digest_id, clock, dead)
        return [OwedDelivery(digest_id, r.subscriber_id, r.email, r.name, r.token, r.status, r.attempts,
                             r.variant) for r in rows]

    @staticmethod
    def _forget_leases(conn: sa.Connection, digest_id: int, clock: datetime,
                       dead: list[str]) -> None:
        """Delete the leases of a digest that ran out and hold no owed row any more (all
        taken over), and those of `dead` senders (their rows stay claimable by that name).
        Locked with SKIP LOCKED on PostgreSQL: two senders doing this at once never wait for
        each other (nor deadlock)."""
        lease = sender_leases.c
        held = sa.exists().where(deliveries.c.digest_id == digest_id,
                                 deliveries.c.status.in_(OWED),
                                 deliveries.c.claimed_by == lease.sender)
        gone = sa.select(lease.sender).where(lease.digest_id == digest_id, sa.or_(
            sa.and_(lease.expires_at < clock, ~held), lease.sender.in_(dead)))
        if conn.dialect.name == "postgresql":
            gone = gone.with_for_update(skip_locked=True)
        conn.execute(sender_leases.delete().where(lease.sender.in_(gone)))

    def claimants(self, digest_id: int) -> list[str]:
        """Senders holding owed rows of a digest (to spot dead ones)."""
        with self.read() as conn:
            return list(conn.execute(
                sa.select(deliveries.c.claimed_by).distinct()
                .where(deliveries.c.digest_id == digest_id, deliveries.c.status.in_(OWED),
                       deliveries.c.claimed_by.is_not(None))
            ).scalars())

    def claims(self, digest_id: int) -> list[Claim]:
        """Who holds the owed rows of a digest (active subscribers only, as count_owed), with
        their leases: which of them still answer, and when the others' rows come free."""
        lease = sender_leases.c
        with self.read() as conn:
            clock = lease_clock(conn)
            rows = conn.execute(
                sa.select(deliveries.c.claimed_by, sa.func.count(), lease.renewed_at, lease.expires_at)
                .select_from(deliveries.join(subscribers, subscribers.c.id == deliveries.c.subscriber_id)
                             .outerjoin(sender_leases, lease.sender == deliveries.c.claimed_by))
                .where(deliveries.c.digest_id == digest_id, deliveries.c.status.in_(OWED),
                       subscribers.c.status == ACTIVE, deliveries.c.claimed_by.is_not(None))
                .group_by(deliveries.c.claimed_by, lease.renewed_at, lease.expires_at)
                .order_by(deliveries.c.claimed_by)).all()
        return [Claim(r[0], r[1], r[2], r[3], clock) for r in rows]

    # --- leases (newsletter/sending.py keeps one per sender, renewed by a heartbeat) ---

    def take_lease(self, digest_id: int, sender: str, *, lease: timedelta) -> None:
        """Start `sender`'s lease on the rows it is going to claim of a digest."""
        with self.write() as conn:
            clock = lease_clock(conn)
            conn.execute(sender_leases.delete().where(
                sender_leases.c.expires_at < clock - LEASE_FORGOTTEN))
            conn.execute(sender_leases.insert().values(
                sender=sender, digest_id=digest_id, renewed_at=clock, expires_at=clock + lease))

    def renew_lease(self, sender: str, *, lease: timedelta) -> bool:
        """Extend `sender`'s lease to `lease` from now. False if it had already run out (or
        is gone): other senders may have taken its rows over, and it must stop."""
        with self.write() as conn:
            clock = lease_clock(conn)
            return conn.execute(
                sender_leases.update()
                .where(sender_leases.c.sender == sender, sender_leases.c.expires_at >= clock)
                .values(renewed_at=clock, expires_at=clock + lease)).rowcount == 1

    def release_claims(self, digest_id: int, sender: str) -> int:
        """Give back the rows `sender` claimed but did not finish (stopped, or deferred), and
        end its lease."""
        with self.write() as conn:
            released = conn.execute(
                deliveries.update()
                .where(deliveries.c.digest_id == digest_id, deliveries.c.claimed_by == sender)
                .values(claimed_by=None, claimed_at=None)
            ).rowcount
            conn.execute(sender_leases.delete().where(sender_leases.c.sender == sender))
            return released

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
               refresh_every: timedelta | None = None,
               hold_results: int = 1, lease_held: Callable[[], bool] | None = None) -> Iterator[Ledger]:
        """The delivery ledger of one digest for the length of a send (see `Ledger`).
        A result still held back is written on the way out, whatever ended the send: the
        server accepted that message. With `sender`, only rows it still holds are written,
        and the claims it holds are renewed with an intent at least every `refresh_every`
        (the sign of life older publishers look for); `lease_held` says whether its lease
        still holds (an intent is written only while it does)."""
        ledger = Ledger(self, digest_id, sender, refresh_every, hold_results, lease_held)
        try:
            yield ledger
        finally:
            try:
                ledger.flush()
            finally:
                ledger.close()
