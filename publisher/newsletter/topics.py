"""Newsletter topics: which tags a subscriber may choose, and who gets which posts.

A topic is a tag or category, matched by slug as the tag feeds are (`tags/<slug>/`), so a
tag's feed and the email subscription to that tag are the same thing. `newsletter.topics`
lists the topics offered, or says `all` (every tag with at least `topics_min_posts` posts);
`[]` offers none and everyone gets every post, exactly as before topics existed.

Planning (plan_digest) fixes, when a digest is recorded, each recipient's post list: a
subscriber's topics (empty = everything), minus what a featured alert already brought them
(listed apart as "Already sent to you"). Recipients with the same list share one rendered
body (a variant), so a digest renders once per distinct list, never per subscriber. A
subscriber with nothing left, or paused, gets no row: the digest's posts count as mailed for
them all the same (posts are announced once, for everyone).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Iterable

from ..config import Config
from ..content.text import slugify
from ..errors import ConfigError
from ..state import DigestPlan, DigestVariant, State, Subscriber

log = logging.getLogger(__name__)

# meta key: the topics `newsletter.topics: all` offered at the last build, for `serve` (which
# never reads the posts itself).
OFFERED_KEY = "newsletter_topics"
PAUSE_WEEKS = (1, 4)  # what the preference page offers


@dataclass(frozen=True)
class Topic:
    slug: str
    name: str  # as the config (or, for `all`, the first post) spells it


def enabled(config: Config) -> bool:
    """Are topics offered at all? (If not, mails carry no preference link: as before.)"""
    return bool(config.newsletter.topics)


def post_topics(post) -> frozenset[str]:
    """The topic slugs a post belongs to: its tags and its categories."""
    return frozenset(slugify(t) for t in (*post.tags, *post.categories))


def from_posts(config: Config, posts: Iterable) -> list[Topic]:
    """`newsletter.topics: all`: every tag or category with at least topics_min_posts posts,
    by name (case-insensitively)."""
    counts: dict[str, int] = {}
    names: dict[str, str] = {}
    for post in posts:
        for name in (*post.tags, *post.categories):
            # One spelling per slug whatever order the posts come in: the first by case-folded
            # then plain sort ('Python' before 'python').
            slug = slugify(name)
            names[slug] = min(names.get(slug, name), name, key=lambda n: (n.casefold(), n))
        for slug in post_topics(post):
            counts[slug] = counts.get(slug, 0) + 1
    least = config.newsletter.topics_min_posts
    return sorted((Topic(s, names[s]) for s, n in counts.items() if n >= least),
                  key=lambda t: t.name.casefold())


def offered(config: Config, state: State | None = None, posts: Iterable | None = None) -> list[Topic]:
    """The topics a subscriber may choose. For `all`: from `posts` if given, else what the
    last build recorded in the state (remember_offered)."""
    chosen = config.newsletter.topics
    if not chosen:
        return []
    if chosen != "all":
        return [Topic(slugify(name), name) for name in chosen]
    if posts is not None:
        return from_posts(config, posts)
    stored = state.get_meta(OFFERED_KEY) if state is not None else None
    return [Topic(slug, name) for slug, name in json.loads(stored)] if stored else []


def remember_offered(config: Config, state: State, posts: Iterable) -> None:
    """After a build, with `topics: all`: record the topics on offer for the web form. Written
    only when they changed, so an unchanged site writes nothing."""
    if config.newsletter.topics != "all":
        return
    value = json.dumps([[t.slug, t.name] for t in from_posts(config, posts)], ensure_ascii=False)
    if state.get_meta(OFFERED_KEY) != value:
        state.set_meta(OFFERED_KEY, value)


def parse_choice(names: Iterable[str], available: list[Topic], where: str) -> tuple[str, ...]:
    """Topic names (or slugs) as a person typed them -> slugs; an unknown one is a
    ConfigError naming `where` and what is on offer."""
    by_slug = {t.slug: t for t in available}
    slugs = []
    for name in names:
        name = name.strip()
        if not name:
            continue
        slug = slugify(name)
        if slug not in by_slug:
            offer = ", ".join(t.name for t in available) or "none (newsletter.topics is empty)"
            raise ConfigError(f"{where}: unknown topic {name!r}; the topics offered are: {offer}")
        if slug not in slugs:
            slugs.append(slug)
    return tuple(slugs)


def effective(chosen: Iterable[str], available: Iterable[str]) -> frozenset[str] | None:
    """A subscriber's topics that are still offered; None = everything (nothing chosen,
    topics switched off, or none of theirs offered any more: they are not left with nothing)."""
    still = frozenset(chosen) & frozenset(available)
    return still or None


def select(posts: list, chosen: frozenset[str] | None) -> list:
    """The posts of `chosen` topics (None: all of them), in their order."""
    if chosen is None:
        return list(posts)
    return [p for p in posts if post_topics(p) & chosen]


def paused(subscriber: Subscriber, now: datetime) -> bool:
    return _paused(subscriber.paused_until, now)


def _paused(until: datetime | None, now: datetime) -> bool:
    return until is not None and until > now


def plan_digest(config: Config, state: State, posts: list, kind: str, now: datetime, *,
                view_url: str | None = None):
    """Render a digest (or alert) once per distinct post list among the active subscribers.
    Returns (the digest's own rendering, with every post, and a DigestPlan, or None when every
    active subscriber gets exactly that: the ledger is then recorded as before topics).
    `view_url`: the issue's public page, linked from every body (newsletter/archive.py)."""
    # lazy: digest.py (~10 ms), only when a digest is planned
    from .digest import render_digest

    main = render_digest(posts, config, kind=kind, view_url=view_url)
    available = [t.slug for t in offered(config, state, posts=None)] if enabled(config) else []
    if config.newsletter.topics == "all" and not available:
        available = [t.slug for t in from_posts(config, posts)]  # nothing recorded yet
    alerted = state.alerted_to(p.id for p in posts) if kind == "digest" else {}
    by_id = {p.id: p for p in posts}
    everything = (main.post_ids, ())
    keys: dict[tuple, int] = {everything: 0}
    recipients: dict[int, int] = {}
    everyone = True
    lists: dict[frozenset[str] | None, set[str]] = {}  # topics -> their posts, worked out once
    for sub_id, chosen, until in state.planning_subscribers():
        if _paused(until, now):
            everyone = False
            continue
        wanted = effective(chosen, available) if available else None
        mine = lists.get(wanted)
        if mine is None:
            mine = lists[wanted] = {p.id for p in select(posts, wanted)}
        already = {pid for pid in mine if sub_id in alerted.get(pid, ())} if alerted else set()
        body = tuple(pid for pid in main.post_ids if pid in mine and pid not in already)
        if not body:
            everyone = False  # nothing new for them: no mail, and these posts count as mailed
            continue
        key = (body, tuple(pid for pid in main.post_ids if pid in already))
        recipients[sub_id] = keys.setdefault(key, len(keys))
    if everyone and len(keys) == 1:
        return main, None
    variants = []
    for (body, already), number in sorted(keys.items(), key=lambda kv: kv[1]):
        if number == 0:
            continue
        rendered = render_digest([by_id[i] for i in body], config, kind=kind,
                                 already=[by_id[i] for i in already], view_url=view_url)
        for warning in rendered.warnings:
            log.warning("%s", warning)
        variants.append(DigestVariant(rendered.subject, rendered.html, rendered.text, rendered.post_ids))
    log.info("%s planned: %d recipients, %d bodies", kind, len(recipients), len(variants) + 1)
    return main, DigestPlan(variants=tuple(variants), recipients=recipients)
