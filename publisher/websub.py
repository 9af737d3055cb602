"""WebSub publishing: tell the hubs in feeds.websub_hub which feeds changed.

WebSub (a W3C Recommendation) leaves the publisher's ping to the hub; every public hub
(Google's, Superfeedr, WebSubHub) takes the PubSubHubbub form used here: a POST of
`hub.mode=publish&hub.url=<feed URL>`, answered with a 2xx. The hub then fetches the feed and
pushes it to Feedly, Inoreader, Miniflux and the other subscribers within seconds.

A ping is best effort and never stops a build or a send: each request has TIMEOUT seconds in
all (outbound.py: a hub that trickles its answer a byte at a time is cut off all the same), a
hub that could not be reached or did not answer in time is not asked again in the same run, and
every ping that did not get through is kept in the state's `meta` table and retried on the next
run (with whatever the next build changes). `publisher run` pings after its mail has gone out
(pipeline.py), and a stop (SIGTERM) ends a ping at once, keeping it for the next run. Failures
are warnings; under --quiet they stay silent until pings have kept failing for a day (then they
are logged as loud, which --quiet shows).
"""

from __future__ import annotations

import http.client
import json
import logging
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Iterable
from urllib.parse import urlencode, urlsplit

from . import __version__
from .config import Config
from .outbound import fetch

if TYPE_CHECKING:
    from .cache import CacheStorage

log = logging.getLogger(__name__)

PENDING_KEY = "websub_pending"  # meta: {"pings": [[hub, url], ...], "failing_since": iso, ...}
TIMEOUT = 5.0  # seconds a ping may take in all, however slowly the hub answers
LOUD_AFTER = timedelta(days=1)


@dataclass
class PingReport:
    sent: list[tuple[str, str]] = field(default_factory=list)  # (hub, feed URL)
    pending: list[tuple[str, str]] = field(default_factory=list)  # kept for the next run
    errors: dict[str, str] = field(default_factory=dict)  # hub -> why it failed

    def summary(self) -> str:
        line = f"websub: {len(self.sent)} pings sent"
        if self.pending:
            line += (f", {len(self.pending)} kept for the next run "
                     f"({'; '.join(dict.fromkeys(self.errors.values()))})")
        return line


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A hub that redirects is misconfigured: urllib would turn the POST into a GET."""

    def redirect_request(self, *args, **kwargs):
        return None


def publish(hub: str, url: str, timeout: float | None = None,
            stop: threading.Event | None = None) -> None:
    """One publish ping, `timeout` seconds in all. Raises OSError (urllib's errors included;
    TimeoutError when the hub did not answer in time, InterruptedError when `stop` was set),
    http.client's HTTPException for a garbled answer, or ValueError when the hub did not
    answer 2xx."""
    if urlsplit(hub).scheme not in ("http", "https"):
        raise ValueError(f"hub {hub!r} is not an http(s) URL")
    request = urllib.request.Request(
        hub, data=urlencode({"hub.mode": "publish", "hub.url": url}).encode("ascii"),
        headers={"Content-Type": "application/x-www-form-urlencoded",
                 "User-Agent": f"publisher/{__version__}"},
        method="POST")
    answer = fetch(request, seconds=TIMEOUT if timeout is None else timeout, what=f"hub {hub}",
                   stop=stop, handlers=(_NoRedirect,))
    if not 200 <= answer.status < 300:
        raise ValueError(f"hub {hub} answered {answer.status} {answer.reason}".rstrip())


def pending(state: CacheStorage) -> list[tuple[str, str]]:
    """The pings a previous run could not deliver, or that this run owes (owe())."""
    return [tuple(p) for p in _load(state).get("pings", [])]


def owe(config: Config, state: CacheStorage, changed_urls: Iterable[str]) -> None:
    """Record pings for the changed feed URLs, to be sent by ping_hubs() later in the run
    (`publisher run` pings after its mail): a run that dies before then leaves them owed."""
    hubs = config.feeds.websub_hub
    fresh = {(hub, url) for hub in hubs for url in changed_urls}
    if not fresh:
        return
    saved = _load(state)
    owed = {tuple(p) for p in saved.get("pings", [])}
    if fresh <= owed:
        return
    state.set_meta(PENDING_KEY, json.dumps({**saved, "pings": sorted(owed | fresh)}, sort_keys=True))


def _load(state: CacheStorage) -> dict:
    try:
        data = json.loads(state.get_meta(PENDING_KEY) or "{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def ping_hubs(config: Config, state: CacheStorage, changed_urls: Iterable[str],
              now: datetime, stop: threading.Event | None = None) -> PingReport:
    """Ping every hub for every changed feed URL, and retry what earlier runs could not
    deliver (or owe() recorded). Never raises for a hub's failure; records what is left in the
    state. Once `stop` is set, no ping is started and the one under way ends: all are kept."""
    hubs = config.feeds.websub_hub
    saved = _load(state)
    # Pings owed to a hub no longer configured are dropped; a retried ping for a feed that
    # changed again is sent once.
    todo = {(h, u) for h, u in saved.get("pings", []) if h in hubs}
    todo |= {(hub, url) for hub in hubs for url in changed_urls}
    report = PingReport()
    unreachable: set[str] = set()
    for hub, url in sorted(todo):
        if hub in unreachable:
            report.pending.append((hub, url))  # down a moment ago: do not wait on it again
            continue
        if stop is not None and stop.is_set():
            report.errors.setdefault(hub, "stopped")
            report.pending.append((hub, url))
            continue
        try:
            publish(hub, url, stop=stop)
        except (OSError, http.client.HTTPException) as e:
            unreachable.add(hub)
            report.errors[hub] = _reason(hub, e)
            report.pending.append((hub, url))
            continue
        except ValueError as e:  # the hub answered, refusing this one feed: try the others
            report.errors[hub] = _reason(hub, e)
            report.pending.append((hub, url))
            continue
        report.sent.append((hub, url))
    if report.sent:
        log.info("websub: pinged %d hubs for %d feeds", len({h for h, _ in report.sent}),
                 len({u for _, u in report.sent}))
    _record(state, saved, report, now, hubs)
    return report


def _reason(hub: str, e: Exception) -> str:
    if isinstance(e, InterruptedError):
        return "stopped"
    if isinstance(e, TimeoutError) and str(e).startswith(f"hub {hub}"):
        return str(e)  # the watchdog's: "hub H: timed out (no complete answer within 5 s)"
    if isinstance(e, urllib.error.URLError):
        return f"cannot reach hub {hub}: {e.reason}"
    if isinstance(e, OSError):
        return f"cannot reach hub {hub}: {e.strerror or e}"
    if isinstance(e, http.client.HTTPException):
        return f"hub {hub} gave a broken answer: {e!r}"
    return str(e)


def _record(state: CacheStorage, saved: dict, report: PingReport, now: datetime,
            hubs: Iterable[str]) -> None:
    # Read again: `publisher run` pings outside its run lock, and an overlapping run may have
    # owed pings meanwhile (owe()); they stay owed. What this run tried is as it found it.
    current = _load(state)
    tried = set(report.sent) | set(report.pending)
    others = {tuple(p) for p in current.get("pings", []) if tuple(p) not in tried and p[0] in hubs}
    left = sorted(set(report.pending) | others)
    if not left:
        if saved or current:
            state.set_meta(PENDING_KEY, "")
        return
    errors = "; ".join(dict.fromkeys(report.errors.values()))
    since = current.get("failing_since") or saved.get("failing_since") or (
        now.isoformat() if report.pending else None)
    state.set_meta(PENDING_KEY, json.dumps({
        "pings": left,
        "failing_since": since,
        "last_error": errors or current.get("last_error", ""),
    }, sort_keys=True))
    if not report.pending:
        return
    failing_for = now - datetime.fromisoformat(since)
    loud = failing_for >= LOUD_AFTER
    log.warning("websub: %d pings not delivered (%s)%s; retried on the next run",
                len(report.pending), errors,
                f", failing since {since}" if loud else "", extra={"loud": loud})
