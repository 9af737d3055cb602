"""Bounces and complaints reported after a message was accepted (newsletter/bounces.py
decides what they are; this stores them and applies the suppression rules), the owner's
reactivations, webhook nonces, and bounce rates per digest."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterable

import sqlalchemy as sa

from .schema import ACTIVE, BOUNCED, UNSUBSCRIBED, bounce_events, deliveries, digests, meta, subscribers
from .subscriber_list import Subscriber, subscriber_from_row

UNVERIFIED = "unverified:"  # meta key prefix of the reports kept for a person
UNVERIFIED_KEEP = 200  # the newest ones; a flood of forged reports cannot grow the state


@dataclass(frozen=True)
class BounceOutcome:
    recorded: bool  # False: the same event was recorded before (event_key)
    suppressed: bool  # this event stopped mail to the subscriber
    streak: int  # soft bounces in a row, counting this one (0 for other kinds)


@dataclass(frozen=True)
class Bounce:
    """One bounce or complaint to record (newsletter/bounces.py says what it is)."""

    kind: str  # hard | soft | complaint
    status: str
    detail: str
    source: str
    event_key: str | None  # the same report twice is recorded once
    digest_id: int | None  # None: the newest digest sent to the subscriber


class _SoftRun:
    """Soft bounces in a row, for one subscriber: walk the digests sent to them, newest first,
    while each has a soft bounce; a digest without one (a delivery) ends the run. Events
    before the owner's latest reactivation do not count. Read once; `add` keeps it current,
    recounting only when a digest gets its first soft bounce (a few times, not per event)."""

    def __init__(self, conn: sa.Connection, subscriber_id: int):
        e = bounce_events.c
        since = conn.execute(sa.select(sa.func.max(e.id)).where(
            e.subscriber_id == subscriber_id, e.kind == "reactivated")).scalar() or 0
        counts = conn.execute(sa.select(e.digest_id, sa.func.count()).where(
            e.subscriber_id == subscriber_id, e.kind == "soft", e.id > since).group_by(e.digest_id)).all()
        self.undated = sum(n for d, n in counts if d is None)  # soft bounces about no digest
        self.bounced = {d for d, _n in counts if d is not None}
        self.sent = conn.execute(  # newest first
            sa.select(deliveries.c.digest_id)
            .where(deliveries.c.subscriber_id == subscriber_id, deliveries.c.status == "sent")
            .order_by(deliveries.c.digest_id.desc())).scalars().all()
        self.streaks: dict[int, int] = {}

    def add(self, digest_id: int | None) -> int:
        """Count one more soft bounce about `digest_id`; the streak up to that digest."""
        if digest_id is None:
            self.undated += 1
            return self.undated
        if digest_id not in self.bounced:
            self.bounced.add(digest_id)
            self.streaks.clear()
        if digest_id not in self.streaks:
            streak = 0
            for digest in self.sent:
                if digest > digest_id:
                    continue
                if digest not in self.bounced:
                    break
                streak += 1
            self.streaks[digest_id] = max(streak, 1)
        return self.streaks[digest_id]


class Suppressions:
    """Bounces, complaints, suppressions.
    Mixed into State (state/__init__.py), which gives it read(), write() and meta."""

    BounceOutcome = BounceOutcome  # State.BounceOutcome, as before the split

    def bounce_secret(self) -> str:
        """The key that signs VERP envelope senders; made on first use, kept in `meta`."""
        return self.secret("bounce_secret")

    def record_bounce(self, subscriber_id: int, *, kind: str, status: str, detail: str, source: str,
                      event_key: str | None, digest_id: int | None, soft_limit: int,
                      now: datetime) -> BounceOutcome:
        """Record one hard/soft bounce or complaint (see record_bounces)."""
        return self.record_bounces(subscriber_id, [Bounce(kind, status, detail, source, event_key, digest_id)],
                                   soft_limit=soft_limit, now=now)[0]

    def record_bounces(self, subscriber_id: int, bounces: list[Bounce], *, soft_limit: int,
                       now: datetime) -> list[BounceOutcome]:
        """Record hard/soft bounces and complaints about one subscriber and apply the
        suppression rules, in one transaction: hard -> bounced; complaint -> unsubscribed;
        soft -> bounced once `soft_limit` digests in a row bounced softly with no digest in
        between that did not. A bounce without `digest_id` is about the newest digest sent to
        the subscriber. One outcome per bounce, in order. Linear in the bounces and the
        subscriber's history: the history is read once, and the streak kept as they go."""
        with self.write() as conn:
            sub = self._subscriber_row_for_update(conn, subscribers.c.id == subscriber_id)
            if sub is None:
                return [BounceOutcome(False, False, 0) for _ in bounces]
            keys = [b.event_key for b in bounces if b.event_key is not None]
            seen: set[str] = set()
            for i in range(0, len(keys), 500):
                seen.update(conn.execute(sa.select(bounce_events.c.event_key).where(
                    bounce_events.c.event_key.in_(keys[i : i + 500]))).scalars())
            newest = None
            if any(b.digest_id is None for b in bounces):
                newest = conn.execute(
                    sa.select(sa.func.max(deliveries.c.digest_id))
                    .where(deliveries.c.subscriber_id == subscriber_id, deliveries.c.status == "sent")
                ).scalar()
            run = None
            current = sub.status
            outcomes = []
            for b in bounces:
                if b.event_key is not None and b.event_key in seen:
                    outcomes.append(BounceOutcome(False, False, 0))
                    continue
                if b.event_key is not None:
                    seen.add(b.event_key)
                digest_id = newest if b.digest_id is None else b.digest_id
                if run is None and b.kind == "soft":
                    run = _SoftRun(conn, subscriber_id)  # (before this bounce is inserted)
                conn.execute(bounce_events.insert().values(
                    subscriber_id=subscriber_id, kind=b.kind, digest_id=digest_id, status=b.status[:16],
                    detail=b.detail[:500], source=b.source[:32], event_key=b.event_key, received_at=now))
                streak = run.add(digest_id) if b.kind == "soft" else 0
                new_status = None
                if b.kind == "complaint" and current != UNSUBSCRIBED:
                    new_status = UNSUBSCRIBED
                elif current == ACTIVE and (b.kind == "hard" or (b.kind == "soft" and streak >= soft_limit)):
                    new_status = BOUNCED
                if new_status is not None:
                    reply = (f"{b.kind} bounce {b.status}: {b.detail}" if b.kind != "complaint"
                             else f"complaint: {b.detail}")
                    conn.execute(subscribers.update().where(subscribers.c.id == subscriber_id).values(
                        status=new_status, last_reply=reply[:500], updated_at=now, confirm_token=None))
                    current = new_status
                outcomes.append(BounceOutcome(True, new_status is not None, streak))
            return outcomes

    def reactivate_subscriber(self, email: str, *, reason: str, now: datetime) -> tuple[Subscriber | None, str]:
        """Make a bounced (or complaint-unsubscribed) address active again, recording why.
        Returns (subscriber, "") or (subscriber or None, why not)."""
        with self.write() as conn:
            row = self._subscriber_row_for_update(conn, subscribers.c.email_key == email.lower())
            if row is None:
                return None, "not on the list"
            complained = conn.execute(sa.select(bounce_events.c.id).where(
                bounce_events.c.subscriber_id == row.id, bounce_events.c.kind == "complaint")).first()
            if row.status == ACTIVE:
                return subscriber_from_row(row), "already active"
            if row.status != BOUNCED and not (row.status == UNSUBSCRIBED and complained):
                return subscriber_from_row(row), (f"is {row.status}, not suppressed by a bounce or complaint; "
                                          "only the person can subscribe again")
            conn.execute(bounce_events.insert().values(
                subscriber_id=row.id, kind="reactivated", status="", detail=reason[:500],
                source="cli", received_at=now))
            conn.execute(subscribers.update().where(subscribers.c.id == row.id).values(
                status=ACTIVE, updated_at=now, last_reply=None))
            return subscriber_from_row(conn.execute(sa.select(subscribers).where(subscribers.c.id == row.id)).one()), ""

    def suppression_reasons(self, subscriber_ids: Iterable[int]) -> dict[int, tuple[str, datetime]]:
        """{subscriber id: (why, when)} for suppressed subscribers: the latest bounce or
        complaint event, else the SMTP reply that bounced them at sending time."""
        ids = list(subscriber_ids)
        found: dict[int, tuple[str, datetime]] = {}
        e = bounce_events.c
        with self.read() as conn:
            for i in range(0, len(ids), 500):
                chunk = ids[i : i + 500]
                for r in conn.execute(sa.select(subscribers.c.id, subscribers.c.last_reply,
                                                subscribers.c.updated_at).where(subscribers.c.id.in_(chunk))):
                    if r.last_reply:
                        found[r.id] = (r.last_reply, r.updated_at)
                latest = (sa.select(e.subscriber_id, sa.func.max(e.id).label("id"))
                          .where(e.subscriber_id.in_(chunk)).group_by(e.subscriber_id).subquery())
                rows = conn.execute(sa.select(bounce_events).join(latest, latest.c.id == e.id))
                for r in rows:
                    if r.kind != "reactivated":
                        found[r.subscriber_id] = (f"{r.kind} ({r.source}) {r.status} {r.detail}".replace("  ", " ").strip(),
                                                  r.received_at)
        return found

    def suppressed_emails(self, emails: Iterable[str]) -> list[str]:
        """Which of `emails` are suppressed: bounced, or unsubscribed after a complaint."""
        emails = list(emails)
        keys = [e.lower() for e in emails]
        out: list[str] = []
        with self.read() as conn:
            for i in range(0, len(keys), 500):
                chunk = keys[i : i + 500]
                complained = sa.select(bounce_events.c.subscriber_id).where(bounce_events.c.kind == "complaint")
                out.extend(conn.execute(sa.select(subscribers.c.email_key).where(
                    subscribers.c.email_key.in_(chunk),
                    sa.or_(subscribers.c.status == BOUNCED,
                           sa.and_(subscribers.c.status == UNSUBSCRIBED, subscribers.c.id.in_(complained))),
                )).scalars())
        found = set(out)
        return [e for e in emails if e.lower() in found]

    def record_unverified_report(self, key: str, text: str, *, now: datetime) -> bool:
        """Keep, for a person (`publisher report`), a report that suppressed nobody because
        no signed token vouches for it. The same report (key) is kept once; False if it was
        kept before. Only the newest UNVERIFIED_KEEP are kept."""
        mkey = UNVERIFIED + hashlib.sha256(key.encode()).hexdigest()[:40]
        with self.write() as conn:
            if conn.execute(sa.select(meta.c.key).where(meta.c.key == mkey)).first():
                return False
            conn.execute(meta.insert().values(key=mkey, value=f"{now.astimezone(timezone.utc).isoformat()}\t{text}"))
            kept = conn.execute(sa.select(meta.c.key, meta.c.value).where(meta.c.key.like(UNVERIFIED + "%"))).all()
            if len(kept) > UNVERIFIED_KEEP:
                oldest = sorted(kept, key=lambda r: r.value)[: len(kept) - UNVERIFIED_KEEP]
                conn.execute(meta.delete().where(meta.c.key.in_([r.key for r in oldest])))
            return True

    def unverified_reports(self) -> list[tuple[datetime, str]]:
        """The reports kept by record_unverified_report, newest first: (when, what)."""
        with self.read() as conn:
            rows = conn.execute(sa.select(meta.c.value).where(meta.c.key.like(UNVERIFIED + "%"))).scalars().all()
        out = []
        for value in rows:
            when, _, text = value.partition("\t")
            out.append((datetime.fromisoformat(when), text))
        return sorted(out, reverse=True)

    def use_nonce(self, nonce: str, *, now: datetime, forget_before: datetime) -> bool:
        """Record a webhook's one-time token; False if it was used before (a replay). Tokens
        seen before `forget_before` are dropped: their requests are refused as too old."""
        key = "nonce:" + hashlib.sha256(nonce.encode()).hexdigest()[:40]
        with self.write() as conn:
            stale = [r.key for r in conn.execute(sa.select(meta.c.key, meta.c.value).where(meta.c.key.like("nonce:%")))
                     if r.value < forget_before.isoformat()]
            for i in range(0, len(stale), 500):
                conn.execute(meta.delete().where(meta.c.key.in_(stale[i : i + 500])))
            try:
                with conn.begin_nested():
                    conn.execute(meta.insert().values(key=key, value=now.astimezone(timezone.utc).isoformat()))
            except sa.exc.IntegrityError:
                return False
            return True

    def digest_bounce_rates(self, last: int) -> list[tuple[int, str, datetime, int, int, int, int]]:
        """For the `last` digests, newest first: (id, subject, created_at, accepted, mailed,
        bounced, complaints): accepted by the server (what `send` calls sent), mailed = accepted
        + refused at sending; bounced counts SMTP rejections and later hard/soft bounce reports."""
        e = bounce_events.c
        out = []
        with self.read() as conn:
            rows = conn.execute(sa.select(digests.c.id, digests.c.subject, digests.c.created_at)
                                .order_by(digests.c.id.desc()).limit(last)).all()
            for r in rows:
                counts = dict(conn.execute(
                    sa.select(deliveries.c.status, sa.func.count()).where(deliveries.c.digest_id == r.id)
                    .group_by(deliveries.c.status)).all())
                late = dict(conn.execute(
                    sa.select(e.kind, sa.func.count(sa.distinct(e.subscriber_id)))
                    .where(e.digest_id == r.id, e.kind.in_(("hard", "soft", "complaint"))).group_by(e.kind)).all())
                accepted = counts.get("sent", 0)
                mailed = accepted + counts.get("bounced", 0)
                bounced = counts.get("bounced", 0) + late.get("hard", 0) + late.get("soft", 0)
                out.append((r.id, r.subject, r.created_at, accepted, mailed, bounced, late.get("complaint", 0)))
        return out
