"""Which posts a digest owes, and when it is due: one path for run, send, preview and dry run.

`scan` compares the posts on disk with the state (new, newly featured, renamed or re-keyed)
and records what changed; `owed_posts` says which of them no digest has carried yet, and
`scan` (run, send) and `next_digest_posts` (preview, dry run, test copy, which record
nothing) both ask it, so what a preview shows is what the send mails. `digest_due` says
whether newsletter.schedule has fired since the last digest.

Never renders, never sends. The first scan of a site is its baseline: every post already
published counts as announced, so subscribers are never mailed the back catalogue.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from typing import TYPE_CHECKING

from ..config import Config
from ..content import LoadResult, Post, load_posts
from ..cron import cron_trigger

if TYPE_CHECKING:
    from ..state import KnownPost, State

log = logging.getLogger(__name__)

_ONE_SECOND = timedelta(seconds=1)
STAND_INS = 5  # newest posts shown by preview, dry run and test copy when nothing is new


@dataclass
class ScanResult:
    loaded: LoadResult
    baseline: bool  # this scan was the site's first: everything published is "announced"
    new: list[Post] = field(default_factory=list)  # published posts seen for the first time
    newly_featured: list[Post] = field(default_factory=list)
    unannounced: list[Post] = field(default_factory=list)  # owed a digest, newest first
    alerts_due: list[Post] = field(default_factory=list)  # owed a featured alert

    @property
    def posts(self) -> list[Post]:
        return self.loaded.posts

    @property
    def problems(self) -> list[str]:
        return self.loaded.problems


def _row(post: Post) -> dict:
    return {"id": post.id, "url": post.url, "source": post.source, "title": post.title,
            "published_at": post.published, "featured": post.featured}


class KnownIndex:
    """The posts the state knows, found by id, else by source file, else by URL, else by
    title and date: a post whose URL rule changed (an upgrade) or whose file was renamed is
    the same post, never a new one. Each known row goes to one post at most, and exact
    matches are handed out first, so a copy of a post never takes its original's row."""

    def __init__(self, known: dict[str, KnownPost]):
        self.known = known

    def match(self, posts: list[Post]) -> dict[int, KnownPost]:
        """{id(post): its known row} for the posts the state already knows."""
        keys = (lambda k: k.id, lambda k: k.source, lambda k: k.url,
                lambda k: (k.title, k.published_at))
        of_post = (lambda p: p.id, lambda p: p.source, lambda p: p.url,
                   lambda p: (p.title, p.published))
        found: dict[int, KnownPost] = {}
        taken: set[str] = set()
        for key, post_key in zip(keys, of_post):
            table: dict = {}
            for k in self.known.values():
                value = key(k)
                if value and value not in table and k.id not in taken:
                    table[value] = k
            for post in posts:
                if id(post) in found:
                    continue
                k = table.get(post_key(post))
                if k is not None and k.id not in taken:
                    found[id(post)] = k
                    taken.add(k.id)
        return found


def mailable(posts: list[Post], config: Config) -> list[Post]:
    """The posts the newsletter may mail: those in site.language (translations have their
    own feeds under <lang>/, and are never mailed)."""
    return [p for p in posts if not p.is_translation(config)]


def scan(config: Config, state: State, now: datetime, loaded: LoadResult | None = None) -> ScanResult:
    """Read the posts (unless given), record what is new or changed, and say what is owed."""
    loaded = loaded or load_posts(config, now)
    known = state.known_posts()
    baseline = state.get_meta("baseline_at") is None
    alerts_on = config.newsletter.featured_alert
    result = ScanResult(loaded=loaded, baseline=baseline)

    new_rows: list[dict] = []
    changed_rows: list[dict] = []
    candidates = mailable(loaded.posts, config)
    matched = KnownIndex(known).match(candidates)
    # What is owed is decided before recording, by the very function a preview asks: the
    # rows recorded below keep the announced state of the posts they match.
    result.unannounced = owed_posts(state, candidates, matched, baseline=baseline)
    for post in candidates:
        seen = matched.get(id(post))
        if seen is not None and (seen.id != post.id or seen.source != post.source or seen.url != post.url):
            # Known under another id, URL or file: the same post, and its row follows it.
            log.info("%s: known as %s; recorded under its new %s", post.source,
                     seen.source or seen.url, "id" if seen.id != post.id else "URL or file")
            row = _row(post) | ({"old_id": seen.id} if seen.id != post.id else {})
            if post.featured and not seen.featured:
                result.newly_featured.append(post)
                if alerts_on and not seen.alerted:
                    row["alert_due"] = True
            changed_rows.append(row)
            continue
        if seen is None:
            result.new.append(post)
            alert = alerts_on and post.featured and not baseline
            if post.featured and not baseline:
                result.newly_featured.append(post)
            new_rows.append(_row(post) | {
                "first_seen_at": now,
                "announced_at": now if baseline else None,
                "alert_due": alert,
            })
        elif post.featured != seen.featured:
            turned_on = post.featured and not seen.featured
            if turned_on:
                result.newly_featured.append(post)
            row = _row(post)
            if turned_on and alerts_on and not seen.alerted:
                row["alert_due"] = True
            changed_rows.append(row)
    if new_rows or changed_rows or baseline:
        state.record_posts(new_rows, changed_rows, baseline_at=now if baseline else None)
    if baseline:
        log.info("first run: %d existing posts marked as already announced", len(loaded.posts))

    alert_ids = set(state.alert_due_post_ids()) if alerts_on else set()
    result.alerts_due = [p for p in mailable(loaded.posts, config) if p.id in alert_ids]
    return result


def owed_posts(state: State, candidates: list[Post],
               matched: dict[int, KnownPost] | None = None, *, baseline: bool = False) -> list[Post]:
    """The candidates (mailable posts, newest first) that no digest has carried: unknown to
    the state (by id, source file, URL, or title and date: KnownIndex), or known and still
    owed. On the baseline scan nothing is owed (everything published counts as announced).
    `matched`: KnownIndex(state.known_posts()).match(candidates), if already made."""
    if baseline:
        return []
    owed = set(state.unannounced_post_ids())
    if matched is None:
        matched = KnownIndex(state.known_posts()).match(candidates)
    return [p for p in candidates if id(p) not in matched or matched[id(p)].id in owed]


def next_digest_posts(config: Config, state: State, now: datetime) -> tuple[list[Post], LoadResult]:
    """The posts the next digest would hold, without recording anything (owed_posts, as a
    scan decides it). On a site never run, or with nothing new, the newest posts stand in so
    a preview or test copy shows something (stand_ins_used says which)."""

    loaded = load_posts(config, now)
    candidates = mailable(loaded.posts, config)
    if state.get_meta("baseline_at") is None:
        return candidates[:STAND_INS], loaded
    posts = owed_posts(state, candidates)
    return (posts or candidates[:STAND_INS]), loaded


def stand_ins_used(state: State, posts: list[Post]) -> bool:
    """Are `posts` (from next_digest_posts) stand-ins rather than what the next digest holds?"""
    if state.get_meta("baseline_at") is None:
        return bool(posts)
    return bool(posts) and not owed_posts(state, posts)


def since_last_digest(state: State, now: datetime) -> datetime:
    """Where the schedule is counted from: the last digest, or the last firing a run already
    saw, or the site's first run."""
    marks = [state.get_time(k) for k in ("last_digest_at", "schedule_seen_at", "baseline_at")]
    return max((m for m in marks if m is not None), default=now)


def digest_due(config: Config, state: State, now: datetime) -> bool:
    """Has the schedule fired since the last digest (or the last firing a run already saw)?"""

    return schedule_fired(config, since_last_digest(state, now), now)


def next_firing(config: Config, since: datetime) -> datetime | None:
    """The first firing of newsletter.schedule after `since` (None: it never fires again)."""

    trigger = cron_trigger(config.newsletter.schedule, config.tz)
    # APScheduler rounds up to the next whole second, so a firing exactly at `since` (the
    # moment of the last digest) is not counted twice.
    return trigger.get_next_fire_time(None, since.astimezone(config.tz).replace(microsecond=0)
                                      + _ONE_SECOND)


def schedule_fired(config: Config, since: datetime, now: datetime) -> bool:
    """Has newsletter.schedule fired in (since, now]? However many times it fired while the
    machine was off, the answer is one 'yes', so a missed schedule sends once."""
    nxt = next_firing(config, since)
    return nxt is not None and nxt <= now

