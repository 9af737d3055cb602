"""Double opt-in for the web endpoint: subscribe requests with their rate limits
(web_limits) and one-use forms (used_forms), confirmation mails reserved before they are
sent, confirming and unsubscribing by token."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any, Iterable

import sqlalchemy as sa

from .schema import (ACTIVE, PENDING, UNSUBSCRIBED, insert_on_conflict, subscribers, topics_json,
                     used_forms, web_limits)
from .subscriber_list import Subscriber, new_token, subscriber_from_row

# Requests below newsletter.confirm_per_hour that count against it in turn, so that it is
# exact when requests come at once: more than run at once (the server's threads) by far.
TOTAL_MARGIN = 64


class OptIn:
    """Subscribe, confirm, unsubscribe.
    Mixed into State (state/__init__.py), which gives it read(), write() and meta."""

    def web_secret(self) -> str:
        """The key that signs the subscribe form's CSRF tokens. Made on first use and kept in
        `meta`, so every server process (and a restarted one) accepts the others' forms."""
        return self.secret("web_secret")

    def subscribe_request(self, email: str, name: str, *, form: str, limits: dict[str, int],
                          now: datetime, resend_after: datetime, valid_after: datetime,
                          forms_after: datetime, topics: Iterable[str] = (),
                          ) -> tuple[str, tuple[Subscriber, datetime | None] | None]:
        """One subscribe form submission, in one write transaction. Returns
            ("reused", None)   the form (its CSRF nonce) was submitted before: nothing stored;
            ("refused", None)  the "client:..." limit is reached (a flood from one client):
                               nothing stored, the client is told to slow down;
            ("limited", None)  the "mailbox:..." limit is reached: nothing stored, no mail
                               (answered "queued" when the total is reached too);
            ("queued", None)   the "total" limit is reached: the address is stored with its
                               confirmation owed (queued_confirmations sends it later);
            ("ok", what request_confirmation returns).

        `limits` maps "total", "client:..." and "mailbox:..." to a limit per hour (0: none).
        Every submission counts, whether the address is on the list or not, and does the same
        writes either way, so neither the answer nor the time it takes tells who is subscribed.

        The total is counted in rows of its own, one per request ("total:<form nonce>"), not
        in one row every request updates: that row serialised every subscribe on PostgreSQL
        (each held its lock until commit). Past the total nothing is added, so the rows stay
        at the limit per hour."""
        hour = int(now.timestamp() // 3600)
        with self.write() as conn:
            try:
                with conn.begin_nested():
                    conn.execute(used_forms.insert().values(nonce=form, used_at=now))
            except sa.exc.IntegrityError:
                return "reused", None
            conn.execute(used_forms.delete().where(used_forms.c.used_at < forms_after))
            conn.execute(web_limits.delete().where(web_limits.c.hour < hour))
            over: set[str] = set()
            # The client first: a flood from one client is refused before it takes any of the
            # total; the total last, so that only a request that may be mailed takes its share.
            for key, limit in sorted(limits.items(), key=lambda item: item[0] == "total"):
                if key != "total":
                    if _count(conn, key, hour) > limit > 0:
                        over.add(key.partition(":")[0])
                        if key.startswith("client:"):
                            # Not a privacy matter: this answer depends on the client's own
                            # requests alone. Its form and its count stay used.
                            return "refused", None
                elif limit and _total_full(conn, hour, limit):
                    over.add("total")
                elif "mailbox" not in over:
                    conn.execute(web_limits.insert().values(key=f"total:{form}", hour=hour, count=1))
            # A limited request does the reservation's work too, then undoes it: the time
            # it takes must not tell a limited (repeated, known) address from a new one.
            savepoint = conn.begin_nested()
            reserved = self._reserve_confirmation(conn, email, name, now=now,
                                                  resend_after=resend_after, valid_after=valid_after,
                                                  even=True, topics=topics, queue="total" in over)
            if "mailbox" in over:
                savepoint.rollback()
                # Past the total as well: answered as queued, like every request then (that
                # mailbox's earlier request is stored, and its link is on its way).
                return ("queued" if "total" in over else "limited"), None
            savepoint.commit()
            return ("queued", None) if "total" in over else ("ok", reserved)

    def queued_confirmations(self, *, now: datetime, limit: int, batch: int,
                             valid_after: datetime) -> list[Subscriber]:
        """Reserve the confirmations that subscribe_request queued (and those whose mail could
        not be sent), oldest request first, as many as `limit` per hour ("total", as above; 0:
        none) still allows, at most `batch`: each gets confirm_sent_at = now and counts
        against the hour. A request older than `valid_after` is not confirmed this late.
        Safe with several server processes: a row is reserved by whoever sets it first."""
        hour = int(now.timestamp() // 3600)
        with self.write() as conn:
            conn.execute(web_limits.delete().where(web_limits.c.hour < hour))
            if limit:
                _lock_total(conn)
            room = batch if not limit else min(batch, limit - _total_this_hour(conn, hour))
            if room <= 0:
                return []
            owed = conn.execute(
                sa.select(subscribers.c.id).where(*_owed(valid_after))
                .order_by(subscribers.c.updated_at, subscribers.c.id).limit(room)).scalars().all()
            reserved = []
            for sub_id in owed:
                done = conn.execute(subscribers.update()
                                    .where(subscribers.c.id == sub_id, *_owed(valid_after))
                                    .values(confirm_sent_at=now)).rowcount
                if done:
                    conn.execute(web_limits.insert().values(
                        key=f"total:queued:{sub_id}:{now.timestamp()}", hour=hour, count=1))
                    reserved.append(sub_id)
            rows = conn.execute(sa.select(subscribers).where(subscribers.c.id.in_(reserved))
                                .order_by(subscribers.c.id)).all() if reserved else []
            return [subscriber_from_row(r) for r in rows]

    def request_confirmation(self, email: str, name: str, *, now: datetime, resend_after: datetime,
                             valid_after: datetime) -> tuple[Subscriber, datetime | None] | None:
        """Reserve a confirmation mail for `email` (double opt-in), in one write transaction.

        Returns (subscriber, previous confirm_sent_at) when a mail should go out now, with a
        confirm token and confirm_sent_at = now recorded; None when none should: the address
        is active already, or a confirmation went out after `resend_after` (the rate limit).
        A new address is stored as pending; an unsubscribed or bounced one keeps its status
        (and its unsubscribe token) until it confirms. A confirm token sent after
        `valid_after` is sent again rather than replaced, so an earlier mail's link still
        works. Reserving before sending means two concurrent requests cannot both mail."""
        with self.write() as conn:
            return self._reserve_confirmation(conn, email, name, now=now,
                                              resend_after=resend_after, valid_after=valid_after)

    def _reserve_confirmation(self, conn: sa.Connection, email: str, name: str, *, now: datetime,
                              resend_after: datetime, valid_after: datetime,
                              even: bool = False, topics: Iterable[str] = (), queue: bool = False,
                              ) -> tuple[Subscriber, datetime | None] | None:
        """request_confirmation's work, in the caller's transaction. even=True: an address
        that gets no mail (active, or mailed within the hour) costs the same statements as
        one that does (a row rewritten with its own values, read back), for the timing.
        queue=True: the address is stored, but its confirmation is left owed (confirm_sent_at
        NULL) for queued_confirmations, and None is returned."""
        sent_at = None if queue else now
        key = email.lower()
        row = self._subscriber_row_for_update(conn, subscribers.c.email_key == key)
        if row is None:
            try:
                with conn.begin_nested():
                    conn.execute(subscribers.insert().values(
                        email=email, email_key=key, name=name, status=PENDING, token=new_token(),
                        confirm_token=new_token(), created_at=now, updated_at=now, confirm_sent_at=sent_at,
                        topics=topics_json(topics),
                    ))
                previous = None
            except sa.exc.IntegrityError:  # another process added it a moment ago
                row = self._subscriber_row_for_update(conn, subscribers.c.email_key == key)
        if row is not None:
            previous = row.confirm_sent_at
            if row.status == ACTIVE or (previous is not None and previous > resend_after):
                if even:
                    new_token()  # as many tokens drawn as for a mail
                    conn.execute(subscribers.update().where(subscribers.c.id == row.id)
                                 .values(updated_at=row.updated_at))
                    conn.execute(sa.select(subscribers).where(subscribers.c.email_key == key)).one()
                return None
            still_valid = row.confirm_token and previous is not None and previous > valid_after
            conn.execute(subscribers.update().where(subscribers.c.id == row.id).values(
                confirm_token=row.confirm_token if still_valid else new_token(),
                confirm_sent_at=sent_at, updated_at=now, name=name or row.name,
                topics=topics_json(topics),  # the form's choice; an active subscriber's stays
            ))
        reserved = conn.execute(sa.select(subscribers).where(subscribers.c.email_key == key)).one()
        return None if queue else (subscriber_from_row(reserved), previous)

    def release_confirmation(self, subscriber_id: int, *, reserved_at: datetime,
                             previous: datetime | None, limit_key: str | None = None) -> None:
        """Undo request_confirmation's reservation after the mail could not be sent, so the
        person may ask again at once. A newer reservation (another request) is left alone.
        With `limit_key`, that rate limit (subscribe_request) gets its count back too."""
        with self.write() as conn:
            done = conn.execute(
                subscribers.update()
                .where(subscribers.c.id == subscriber_id, subscribers.c.confirm_sent_at == reserved_at)
                .values(confirm_sent_at=previous)
            ).rowcount
            if done and limit_key is not None:
                conn.execute(web_limits.update()
                             .where(web_limits.c.key == limit_key, web_limits.c.count > 0)
                             .values(count=web_limits.c.count - 1))

    def subscriber_by_confirm_token(self, confirm_token: str) -> Subscriber | None:
        with self.read() as conn:
            r = conn.execute(sa.select(subscribers).where(subscribers.c.confirm_token == confirm_token)).first()
            return subscriber_from_row(r) if r else None

    def confirm_subscriber(self, confirm_token: str, *, now: datetime, valid_after: datetime) -> Subscriber | None:
        """Activate the subscriber holding `confirm_token`, if it was sent after `valid_after`.
        The token is cleared, so it works once. None: unknown, used or expired token."""
        with self.write() as conn:
            row = self._subscriber_row_for_update(conn, subscribers.c.confirm_token == confirm_token)
            if row is None or row.confirm_sent_at is None or row.confirm_sent_at <= valid_after:
                return None
            conn.execute(subscribers.update().where(subscribers.c.id == row.id).values(
                status=ACTIVE, confirmed_at=now, confirm_token=None, updated_at=now,
            ))
            return subscriber_from_row(conn.execute(sa.select(subscribers).where(subscribers.c.id == row.id)).one())

    def unsubscribe_by_token(self, token: str, *, now: datetime) -> Subscriber | None:
        """Unsubscribe the holder of unsubscribe token `token`; None if no one holds it.

        Idempotent. A bounced address stays bounced (it is not mailed either way). An
        outstanding confirm token is cleared: the latest thing the person asked for wins."""
        with self.write() as conn:
            row = self._subscriber_row_for_update(conn, subscribers.c.token == token)
            if row is None:
                return None
            values: dict[str, Any] = {}
            if row.status in (ACTIVE, PENDING):
                values.update(status=UNSUBSCRIBED, updated_at=now)
            if row.confirm_token is not None:
                values.update(confirm_token=None, updated_at=now)
            if values:
                conn.execute(subscribers.update().where(subscribers.c.id == row.id).values(**values))
            return subscriber_from_row(conn.execute(sa.select(subscribers).where(subscribers.c.id == row.id)).one())


def _count(conn: sa.Connection, key: str, hour: int) -> int:
    """Count one request against `key` this hour (a row per key: only that key's own
    requests, e.g. one client's, wait on its lock); the count including it."""
    upsert = insert_on_conflict(conn, web_limits).values(key=key, hour=hour, count=1)
    conn.execute(upsert.on_conflict_do_update(
        index_elements=[web_limits.c.key],
        set_={"count": sa.case((web_limits.c.hour == hour, web_limits.c.count + 1), else_=1),
              "hour": hour}))
    return conn.execute(sa.select(web_limits.c.count).where(web_limits.c.key == key)).scalar_one()


def _total_this_hour(conn: sa.Connection, hour: int) -> int:
    """Confirmations counted against the total this hour: rows, not a counter (see
    subscribe_request), found through the hour's index."""
    return conn.execute(sa.select(sa.func.count()).select_from(web_limits)
                        .where(web_limits.c.hour == hour, web_limits.c.key.like("total:%"))).scalar_one()


def _total_full(conn: sa.Connection, hour: int, limit: int) -> bool:
    """Whether the total is reached; if not, the caller may add its row. Exact: the last
    TOTAL_MARGIN requests below the total take their turns (on PostgreSQL, where requests
    run at once; SQLite's writers queue anyway). Every other request, far below the total or
    past it, is answered from one count without waiting on anyone (the count only grows
    within the hour)."""
    count = _total_this_hour(conn, hour)
    if count >= limit or count < limit - TOTAL_MARGIN:
        return count >= limit
    _lock_total(conn)
    return _total_this_hour(conn, hour) >= limit


def _lock_total(conn: sa.Connection) -> None:
    """Take turns counting against the total, until this transaction ends (PostgreSQL)."""
    if conn.dialect.name == "postgresql":
        # One lock per database (and schema), as the run lock's (lock.py), but its own.
        key = int.from_bytes(hashlib.sha256(f"total|{conn.engine.url}".encode()).digest()[:8], "big") >> 1
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})


def _owed(valid_after: datetime) -> tuple[Any, ...]:
    """A confirmation still owed: a token to confirm with, but no mail reserved for it."""
    return (subscribers.c.status != ACTIVE, subscribers.c.confirm_token.is_not(None),
            subscribers.c.confirm_sent_at.is_(None), subscribers.c.updated_at > valid_after)
