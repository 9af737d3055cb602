"""The subscriber list: add, remove, list and look up subscribers, and set their status."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Iterable

import sqlalchemy as sa

from .schema import ACTIVE, deliveries, insert_on_conflict, subscribers, topic_slugs, topics_json, utcnow


@dataclass(frozen=True)
class Subscriber:
    id: int
    email: str
    name: str
    status: str
    token: str
    created_at: datetime
    confirm_token: str | None = None
    confirm_sent_at: datetime | None = None
    topics: tuple[str, ...] = ()  # topic slugs; () = everything
    paused_until: datetime | None = None


def new_token() -> str:
    """256 bits from the OS CSPRNG, URL-safe."""
    return secrets.token_urlsafe(32)


def subscriber_from_row(row: Any) -> Subscriber:
    return Subscriber(
        id=row.id, email=row.email, name=row.name, status=row.status, token=row.token,
        created_at=row.created_at, confirm_token=row.confirm_token,
        confirm_sent_at=row.confirm_sent_at, topics=topic_slugs(row.topics),
        paused_until=row.paused_until,
    )


class SubscriberList:
    """The subscriber list.
    Mixed into State (state/__init__.py), which gives it read(), write() and meta."""

    def add_subscribers(self, entries: Iterable[tuple[str, str]], *, status: str = ACTIVE,
                        now: datetime | None = None,
                        progress: Callable[[int, int], None] | None = None) -> tuple[list[str], list[str]]:
        """Add (email, name) pairs, or (email, name, topic slugs) triples, that are not on the
        list yet (case-insensitive), in one transaction. Returns (added, already_present)
        addresses. Safe to re-run. `progress(done, total)` after each batch of 500."""
        now = now or utcnow()
        added: list[str] = []
        present: list[str] = []
        entries = list(entries)
        with self.write() as conn:
            for i in range(0, len(entries), 500):
                chunk = entries[i : i + 500]
                rows: dict[str, dict] = {}
                for email, name, *chosen in chunk:
                    # PostgreSQL cannot store NUL; no address or name legitimately holds one.
                    email, name = email.replace("\0", ""), name.replace("\0", "")
                    rows.setdefault(email.lower(), {
                        "email": email, "email_key": email.lower(), "name": name, "status": status,
                        "token": new_token(), "created_at": now, "updated_at": now,
                        "confirmed_at": now if status == ACTIVE else None,
                        "topics": topics_json(chosen[0] if chosen else ()),
                    })
                # ON CONFLICT, not check-then-insert: another process (a second import, the
                # web endpoint) may add the same address at the same moment on PostgreSQL.
                stmt = (insert_on_conflict(conn, subscribers)
                        .on_conflict_do_nothing(index_elements=[subscribers.c.email_key])
                        .returning(subscribers.c.email_key))
                inserted = set(conn.execute(stmt, list(rows.values())).scalars()) if rows else set()
                for email, *_rest in chunk:
                    email = email.replace("\0", "")
                    key = email.lower()
                    if key in inserted:
                        added.append(email)
                        inserted.discard(key)  # a second spelling in the same batch is "present"
                    else:
                        present.append(email)
                if progress is not None:
                    progress(i + len(chunk), len(entries))
        return added, present

    def remove_subscriber(self, email: str) -> bool:
        """Delete a subscriber and the deliveries still owed to them."""
        with self.write() as conn:
            sid = conn.execute(
                sa.select(subscribers.c.id).where(subscribers.c.email_key == email.lower())
            ).scalar()
            if sid is None:
                return False
            conn.execute(deliveries.delete().where(deliveries.c.subscriber_id == sid))
            conn.execute(subscribers.delete().where(subscribers.c.id == sid))
            return True

    def list_subscribers(self, status: str | None = None) -> list[Subscriber]:
        with self.read() as conn:
            query = sa.select(subscribers).order_by(subscribers.c.id)
            if status:
                query = query.where(subscribers.c.status == status)
            return [subscriber_from_row(r) for r in conn.execute(query)]

    def count_subscribers(self, status: str = ACTIVE) -> int:
        with self.read() as conn:
            return conn.execute(
                sa.select(sa.func.count()).select_from(subscribers).where(subscribers.c.status == status)
            ).scalar()

    def subscriber_by_email(self, email: str) -> Subscriber | None:
        with self.read() as conn:
            r = conn.execute(sa.select(subscribers).where(subscribers.c.email_key == email.lower())).first()
            return subscriber_from_row(r) if r else None

    def subscriber_by_token(self, token: str) -> Subscriber | None:
        with self.read() as conn:
            r = conn.execute(sa.select(subscribers).where(subscribers.c.token == token)).first()
            return subscriber_from_row(r) if r else None

    def subscriber_by_id(self, subscriber_id: int) -> Subscriber | None:
        with self.read() as conn:
            r = conn.execute(sa.select(subscribers).where(subscribers.c.id == subscriber_id)).first()
            return subscriber_from_row(r) if r else None

    def set_subscriber_status(self, subscriber_id: int, status: str, now: datetime | None = None) -> None:
        now = now or utcnow()
        with self.write() as conn:
            values: dict[str, Any] = {"status": status, "updated_at": now}
            if status == ACTIVE:
                values.update(confirmed_at=now, confirm_token=None)
            conn.execute(subscribers.update().where(subscribers.c.id == subscriber_id).values(**values))

    def _subscriber_row_for_update(self, conn: sa.Connection, condition: Any) -> Any:
        # FOR UPDATE: on PostgreSQL, concurrent requests for one subscriber queue here (SQLite
        # ignores it; its BEGIN IMMEDIATE already serialises every writer).
        return conn.execute(sa.select(subscribers).where(condition).with_for_update()).first()

    # --- topics and pauses (newsletter/topics.py decides; this stores) ---

    def planning_subscribers(self) -> list[tuple[int, tuple[str, ...], datetime | None]]:
        """(id, topic slugs, paused until) of every active subscriber, for planning a digest:
        only these columns (whole Subscriber rows cost 0.3 s for 5,000 subscribers)."""
        with self.read() as conn:
            rows = conn.execute(sa.select(subscribers.c.id, subscribers.c.topics, subscribers.c.paused_until)
                                .where(subscribers.c.status == ACTIVE).order_by(subscribers.c.id))
            return [(sid, topic_slugs(chosen), until) for sid, chosen, until in rows]

    def set_preferences(self, token: str, *, topics: Iterable[str] | None = None,
                        paused_until: datetime | None = None, resume: bool = False,
                        now: datetime) -> Subscriber | None:
        """Change the topics (None: unchanged; empty: everything) and/or the pause of the
        holder of unsubscribe token `token`; None if no one holds it. A digest already
        planned keeps what it planned for them."""
        with self.write() as conn:
            row = self._subscriber_row_for_update(conn, subscribers.c.token == token)
            if row is None:
                return None
            values: dict[str, Any] = {"updated_at": now}
            if topics is not None:
                values["topics"] = topics_json(topics)
            if paused_until is not None or resume:
                values["paused_until"] = paused_until
            conn.execute(subscribers.update().where(subscribers.c.id == row.id).values(**values))
            return subscriber_from_row(conn.execute(sa.select(subscribers).where(subscribers.c.id == row.id)).one())
