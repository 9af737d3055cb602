"""The delivery ledger of one send: the intent before each message, the result after."""

from __future__ import annotations

from datetime import datetime, timedelta
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Callable

import sqlalchemy as sa

from ..errors import StateError
from .schema import BOUNCED, deliveries, explain, subscribers, utcnow

if TYPE_CHECKING:
    from . import State


class LeaseLost(StateError):
    """This sender's lease ran out (it could not renew it in time) or rows it claimed were
    taken over: it must send nothing more, since another sender may be sending them."""


SQLITE_CHECKPOINT_PAGES = 1000  # SQLite's own default wal_autocheckpoint
LEDGER_CHECKPOINT_PAGES = 10000  # during a send: the WAL may grow to ~40 MB between checkpoints


class Ledger:
    """One digest's per-message ledger writes, through one connection held for a send.

    A statement run through `State.write` checks a connection out of the pool, goes through
    SQLAlchemy and commits: about 0.5 ms, as much as the SMTP exchange of the message itself,
    and a send needs two per message. Here the statements are compiled once and run straight
    through the driver (the bind processors applied, so the rows hold exactly what
    SQLAlchemy would write), on one connection.

    A result may also be *held* (`result(..., hold=True)`) to share one transaction with
    the next `sending()`: the intent is still durable before its message is handed over,
    and a held result is one the server already accepted, so a crash at any instant
    loses at most that result (its message is mailed again: at-least-once, like a
    message in flight). At most `hold_results` results are held (one by default); the
    next one writes them. `flush()` writes whatever is held.

    An intent may be held too (`sending(..., hold=True)`), by a caller that calls `flush()`
    before that message's content goes out: several connections' intents then share one
    transaction (delivery's before_content).

    With a `sender`, a row is written only while that sender still holds it (claimed_by): a
    sender whose rows were taken over never overwrites what their new holder records. An
    intent is written only while `lease_held()` says the sender's lease holds, and only for a
    row it still holds; otherwise LeaseLost is raised (after the rest is written), before
    that message's content goes out.

    Not thread-safe: the caller makes one call at a time (delivery's callbacks do)."""

    def __init__(self, state: State, digest_id: int, sender: str | None = None,
                 refresh_every: timedelta | None = None, hold_results: int = 1,
                 lease_held: Callable[[], bool] | None = None):
        self.digest_id = digest_id
        self.lease_held = lease_held
        self.hold_results = hold_results
        self._held_results = 0
        self.sender = sender
        self.refresh_every = refresh_every
        self._refreshed: datetime | None = None
        self._describe = state.describe
        dialect = state.engine.dialect
        self._failure = dialect.loaded_dbapi.OperationalError
        self._database_error = dialect.loaded_dbapi.DatabaseError  # e.g. a malformed page
        self._path = state.path
        self._driver_error = dialect.loaded_dbapi.Error
        self._sqlite = state.is_sqlite
        b = sa.bindparam
        where = (deliveries.c.digest_id == b("digest"), deliveries.c.subscriber_id == b("subscriber"))
        if sender is not None:
            where += (deliveries.c.claimed_by == b("sender"),)
        self._intent = self._compile(
            deliveries.update().where(*where)
            .values(status=b("new_status"), updated_at=b("now"), claimed_at=b("now")), dialect)
        self._result = self._compile(
            deliveries.update().where(*where)
            .values(status=b("new_status"), last_code=b("code"), last_reply=b("reply"),
                    attempts=deliveries.c.attempts + b("tries"), updated_at=b("now"),
                    claimed_at=b("now")), dialect)
        # A whole claimed batch, not only the row being sent, must look alive: a batch
        # can take longer than CLAIM_TIMEOUT when the server is slow or defers.
        self._refresh = self._compile(
            deliveries.update()
            .where(deliveries.c.digest_id == b("digest"), deliveries.c.claimed_by == b("sender"))
            .values(claimed_at=b("now")), dialect)
        self._bounce = self._compile(
            subscribers.update().where(subscribers.c.id == b("subscriber"))
            .values(status=b("new_status"), last_reply=b("reply"), updated_at=b("now")), dialect)
        # (sql, params, is an intent): what the next transaction writes
        self._held: list[tuple[str, Any, bool]] = []
        try:
            self._conn = state.engine.raw_connection()
        except sa.exc.OperationalError as e:
            raise StateError(f"state database {self._describe()}: {e.orig}") from e
        self._cursor = self._conn.cursor()
        if self._sqlite:
            # A checkpoint syncs the WAL and the database file to disk (synchronous=NORMAL):
            # at SQLite's default of every 1,000 WAL pages, that came every ~150 messages
            # of a send. Here every ~1,500: the commits themselves stay as durable as before.
            self._cursor.execute(f"PRAGMA wal_autocheckpoint = {LEDGER_CHECKPOINT_PAGES}")

    @staticmethod
    def _compile(stmt: Any, dialect: Any) -> tuple[str, Any]:
        """The statement's SQL for this driver, and a function turning {name: value} into
        the driver's parameters (a tuple for "?" placeholders, the dict for named ones)."""
        compiled = stmt.compile(dialect=dialect)
        processors = [(name, process) for name, bind in compiled.binds.items()
                      if (process := bind.type.dialect_impl(dialect).bind_processor(dialect))]
        order = compiled.positiontup
        # An itemgetter, not a generator: its tuple is ~1 us cheaper, twice a message.
        pick = None if order is None else itemgetter(*order) if len(order) > 1 else \
            (lambda values: (values[order[0]],))

        def params(values: dict[str, Any]) -> Any:
            for name, process in processors:
                values[name] = process(values[name])
            return values if pick is None else pick(values)

        return str(compiled), params

    def sending(self, subscriber_id: int, now: datetime | None = None, *,
                hold: bool = False) -> None:
        """The intent: durable before the message is handed to the server. What is held
        goes into the same transaction. hold=True holds the intent as well: the caller then
        calls `flush()` before the message's content goes out."""
        now = now or utcnow()
        sql, params = self._intent
        writes = self._held
        writes.append((sql, params(self._row(subscriber_id, new_status="sending", now=now)), True))
        renew = self.sender is not None and self.refresh_every is not None and (
            self._refreshed is None or now - self._refreshed >= self.refresh_every)
        if renew:
            sql, params = self._refresh
            writes.append((sql, params({"digest": self.digest_id, "sender": self.sender,
                                        "now": now}), False))
            self._refreshed = now
        if not hold:
            self.flush()

    def result(self, subscriber_id: int, *, status: str, code: int | None, reply: str,
               attempts: int, now: datetime | None = None, hold: bool = False) -> None:
        """The result, once the server answered: sent, bounced (the subscriber too) or
        deferred. hold=True keeps it for the next `sending()` or `flush()`; if
        `hold_results` results are held already, what is held is written first."""
        now = now or utcnow()
        sql, params = self._result
        writes = [(sql, params(self._row(subscriber_id, new_status=status, code=code,
                                         reply=reply[:500], tries=attempts, now=now)), False)]
        if status == "bounced":
            sql, params = self._bounce
            writes.append((sql, params({"subscriber": subscriber_id, "new_status": BOUNCED,
                                        "reply": reply[:500], "now": now}), False))
        if hold and self._held_results >= self.hold_results:
            self.flush()
        self._held += writes
        self._held_results += 1
        if not hold:
            self.flush()

    def _row(self, subscriber_id: int, **values: Any) -> dict[str, Any]:
        """The parameters naming one row of this digest (and its holder, with a sender)."""
        values.update(digest=self.digest_id, subscriber=subscriber_id)
        if self.sender is not None:
            values["sender"] = self.sender
        return values

    def flush(self) -> None:
        """Write what is held, if anything. Raises LeaseLost when intents were held and the
        lease no longer holds, or a row was taken over: the results are written all the same
        (the server accepted those messages), the intents that can no longer be are not."""
        writes, self._held, self._held_results = self._held, [], 0
        if not writes:
            return
        lost = self.lease_held is not None and any(intent for _sql, _params, intent in writes) \
            and not self.lease_held()
        if lost:
            writes = [w for w in writes if not w[2]]
        taken = self._write(writes) if writes else 0
        if lost or taken:
            raise LeaseLost(
                f"this sender's lease on digest #{self.digest_id} ran out"
                + (f" and {taken} of its rows were taken over by another sender" if taken else "")
                + ": it stopped; the other senders or the next run send the rest")

    def close(self) -> None:
        if not self._conn.is_valid:
            return  # invalidated after a failure (_write): nothing to restore or give back
        if self._sqlite:
            try:
                self._cursor.execute(f"PRAGMA wal_autocheckpoint = {SQLITE_CHECKPOINT_PAGES}")
            except self._driver_error:
                self._conn.invalidate()  # not back to the pool with the ledger's setting
        self._conn.close()  # back to the pool

    def _write(self, writes: list[tuple[str, Any, bool]]) -> int:
        """One transaction. SQLite: BEGIN IMMEDIATE, as `State.write` (the driver is in
        autocommit mode, see _sqlite_setup); psycopg opens the transaction itself. Returns
        how many intents found their row no longer this sender's (taken over)."""
        taken = 0
        try:
            if self._sqlite:
                self._cursor.execute("BEGIN IMMEDIATE")
            for sql, params, intent in writes:
                self._cursor.execute(sql, params)
                if intent and self.sender is not None and self._cursor.rowcount == 0:
                    taken += 1
            self._conn.commit()
            return taken
        except BaseException as e:
            try:
                self._conn.rollback()
            except self._driver_error:
                pass  # the connection is gone, and its transaction with it; `e` says why
            if isinstance(e, self._failure) or type(e) is self._database_error:
                # As State._database_errors: the user's problem to fix (disk full,
                # read-only, server gone, a damaged file), not a bug.
                self._conn.invalidate()
                reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
                raise StateError(explain(self._describe(), self._path, reason)) from e
            raise
