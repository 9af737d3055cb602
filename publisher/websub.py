"""WebSub publishing: tell the hubs in feeds.websub_hub which feeds changed.

WebSub (a W3C Recommendation) leaves the publisher's ping to the hub; every public hub
(Google's, Superfeedr, WebSubHub) takes the PubSubHubbub form used here: a POST of
`hub.mode=publish&hub.url=<feed URL>`, answered with a 2xx. The hub then fetches the feed and
pushes it to Feedly, Inoreader, Miniflux and the other subscribers within seconds.

A ping is best effort and never stops a build or a send: each request has a short timeout,
a hub that cannot be reached is not asked again in the same run, and every ping that did not get
through is kept in the state's `meta` table and retried on the next run (with whatever the
next build changes). Failures are warnings; under --quiet they stay silent until pings have
kept failing for a day (then they are logged as loud, which --quiet shows).
"""

from __future__ import annotations

import http.client
import json
import logging
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Iterable
from urllib.parse import urlencode, urlsplit

from . import __version__
from .config import Config

if TYPE_CHECKING:
    from .state import State

log = logging.getLogger(__name__)

PENDING_KEY = "websub_pending"  # meta: {"pings": [[hub, url], ...], "failing_since": iso, ...}
TIMEOUT = 5.0  # seconds per request: a slow hub must not hold up the newsletter
LOUD_AFTER = timedelta(days=1)


@dataclass
class PingReport:
    sent: list[tuple[str, str]] = field(default_factory=list)  # (hub, feed URL)
    pending: list[tuple[str, str]] = field(default_factory=list)  # kept for the next run
    errors: dict[str, str] = field(default_factory=dict)  # hub -> why it failed

    def summary(self) -> str:
        line = f"websub: {len(self.sent)} pings sent"
        if self.pending:
            line += f", {len(self.pending)} kept for the next run ({'; '.join(self.errors.values())})"
        return line


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A hub that redirects is misconfigured: urllib would turn the POST into a GET."""

    def redirect_request(self, *args, **kwargs):
        return None


def publish(hub: str, url: str, timeout: float | None = None) -> None:
    """One publish ping. Raises OSError (urllib's errors included), http.client's
    HTTPException for a garbled answer, or ValueError when the hub did not answer 2xx."""
    if urlsplit(hub).scheme not in ("http", "https"):
        raise ValueError(f"hub {hub!r} is not an http(s) URL")
    request = urllib.request.Request(
        hub, data=urlencode({"hub.mode": "publish", "hub.url": url}).encode("ascii"),
        headers={"Content-Type": "application/x-www-form-urlencoded",
                 "User-Agent": f"publisher/{__version__}"},
        method="POST")
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=TIMEOUT if timeout is None else timeout) as response:
            status = response.status
    except urllib.error.HTTPError as e:
        raise ValueError(f"hub {hub} answered {e.code} {e.reason}") from e
    if not 200 <= status < 300:
        raise ValueError(f"hub {hub} answered {status}")


def pending(state: State) -> list[tuple[str, str]]:
    """The pings a previous run could not deliver."""
    return [tuple(p) for p in _load(state).get("pings", [])]


def _load(state: State) -> dict:
    try:
        data = json.loads(state.get_meta(PENDING_KEY) or "{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def ping_hubs(config: Config, state: State, changed_urls: Iterable[str],
              now: datetime) -> PingReport:
    """Ping every hub for every changed feed URL, and retry what earlier runs could not
    deliver. Never raises for a hub's failure; records what is left in the state."""
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
        try:
            publish(hub, url)
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
    _record(state, saved, report, now)
    return report


def _reason(hub: str, e: Exception) -> str:
    if isinstance(e, urllib.error.URLError):
        return f"cannot reach hub {hub}: {e.reason}"
    if isinstance(e, OSError):
        return f"cannot reach hub {hub}: {e.strerror or e}"
    if isinstance(e, http.client.HTTPException):
        return f"hub {hub} gave a broken answer: {e!r}"
    return str(e)


def _record(state: State, saved: dict, report: PingReport, now: datetime) -> None:
    if not report.pending:
        if saved:
            state.set_meta(PENDING_KEY, "")
        return
    since = saved.get("failing_since") or now.isoformat()
    state.set_meta(PENDING_KEY, json.dumps({
        "pings": sorted(report.pending),
        "failing_since": since,
        "last_error": "; ".join(report.errors.values()),
    }, sort_keys=True))
    failing_for = now - datetime.fromisoformat(since)
    loud = failing_for >= LOUD_AFTER
    log.warning("websub: %d pings not delivered (%s)%s; retried on the next run",
                len(report.pending), "; ".join(report.errors.values()),
                f", failing since {since}" if loud else "", extra={"loud": loud})
