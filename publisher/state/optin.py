"""Double opt-in for the web endpoint: subscribe requests with their rate limits
(web_limits) and one-use forms (used_forms), confirmation mails reserved before they are
sent, confirming and unsubscribing by token."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Iterable

import sqlalchemy as sa

from .schema import (ACTIVE, PENDING, UNSUBSCRIBED, insert_on_conflict, meta, subscribers, topics_json,
                     used_forms, web_limits)
from .subscriber_list import Subscriber, new_token, subscriber_from_row


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
        """One subscribe form submission, in one write transaction: ("reused", None) if the
        form (its CSRF nonce) was submitted before; ("limited", None) if a rate limit is
        reached; else ("ok", what request_confirmation returns).

        `limits` maps a key ("total", "client:...", "mailbox:...", checked in that order)
        to its limit per hour (0: none). Every submission counts, whether the address is on
        the list or not, and does the same writes either way, so neither the answer nor the
        time it takes tells who is subscribed. Past the total limit no other key is stored,
        which keeps the table small under a flood."""
        hour = int(now.timestamp() // 3600)
        with self.write() as conn:
            try:
                with conn.begin_nested():
                    conn.execute(used_forms.insert().values(nonce=form, used_at=now))
            except sa.exc.IntegrityError:
                return "reused", None
            conn.execute(used_forms.delete().where(used_forms.c.used_at < forms_after))
            conn.execute(web_limits.delete().where(web_limits.c.hour < hour))
            limited = False
            for key, limit in limits.items():
                upsert = insert_on_conflict(conn, web_limits).values(key=key, hour=hour, count=1)
                conn.execute(upsert.on_conflict_do_update(
                    index_elements=[web_limits.c.key],
                    set_={"count": sa.case((web_limits.c.hour == hour, web_limits.c.count + 1),
                                           else_=1),
                          "hour": hour}))
                count = conn.execute(sa.select(web_limits.c.count)
                                     .where(web_limits.c.key == key)).scalar_one()
                if limit and count > limit:
                    limited = True
                    if key == "total":
                        break  # past the total, no other key is stored (the table stays small)
            # A limited request does the reservation's work too, then undoes it: the time
            # it takes must not tell a limited (repeated, known) address from a new one.
            savepoint = conn.begin_nested()
            reserved = self._reserve_confirmation(conn, email, name, now=now,
                                                  resend_after=resend_after,
                                                  valid_after=valid_after, even=True, topics=topics)
            if limited:
                savepoint.rollback()
                return "limited", None
            savepoint.commit()
            return "ok", reserved

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
                              even: bool = False, topics: Iterable[str] = (),
                              ) -> tuple[Subscriber, datetime | None] | None:
        """request_confirmation's work, in the caller's transaction. even=True: an address
        that gets no mail (active, or mailed within the hour) costs the same statements as
        one that does (a row rewritten with its own values, read back), for the timing."""
        key = email.lower()
        row = self._subscriber_row_for_update(conn, subscribers.c.email_key == key)
        if row is None:
            try:
                with conn.begin_nested():
                    conn.execute(subscribers.insert().values(
                        email=email, email_key=key, name=name, status=PENDING, token=new_token(),
                        confirm_token=new_token(), created_at=now, updated_at=now, confirm_sent_at=now,
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
                confirm_sent_at=now, updated_at=now, name=name or row.name,
                topics=topics_json(topics),  # the form's choice; an active subscriber's stays
            ))
        reserved = conn.execute(sa.select(subscribers).where(subscribers.c.email_key == key)).one()
        return subscriber_from_row(reserved), previous

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
