"""The order of the stages, and nothing else.

build:    posts -> feeds
run_once: scan -> feeds -> plan featured alerts -> plan a digest if due -> deliver
send_now: scan -> plan a digest of every unmailed post, now -> deliver

Planning (deciding what to mail and recording it with one owed delivery per subscriber)
holds the run lock, so two overlapping runs never plan the same posts twice. Delivery then
works through every open digest, oldest first (interrupted sends and deferred messages
included), claiming batches of owed rows: an overlapping run, or a second `publisher send`
on another machine, shares the remaining work and never mails anyone twice.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from typing import TYPE_CHECKING

from . import idle
from .config import Config
from .content import LoadResult, Post, load_posts, render_html, render_many
from .content.posts import require_content_dir
from .idle import stat_files

if TYPE_CHECKING:
    from .state import State

log = logging.getLogger(__name__)

LOCK_WAIT_SECONDS = 10.0


@dataclass
class Report:
    """What a command did: summary lines for people, problems for stderr, and the exit status."""

    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # skipped posts, failed deliveries
    failed: bool = False  # some deliveries are still owed after this run

    @property
    def exit_status(self) -> int:
        return 1 if (self.problems or self.failed) else 0


def plural(count: int, noun: str) -> str:
    """'1 post', '2 posts'."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


def open_state(config: Config) -> State:
    from .state import State

    return State(config.database_url)


class CachedRenderer:
    """Markdown -> HTML through the state's cache: an unchanged post is never rendered twice.

    `prefetch` looks up every post that may reach a feed at once (a query per post meant
    ~300 round trips for a 2,000-post site with 40 tags); a post outside the prefetched set
    is looked up on its own."""

    def __init__(self, state: State | None):
        self.state = state
        self.rendered: dict[str, str] = {}  # new renders, stored at the end
        self.cached: dict[str, str] = {}  # prefetched HTML
        self.looked_up: set[str] = set()  # keys already asked of the state
        self.ahead: dict[str, str] = {}  # rendered by render_missing, not yet asked for
        self.hits = 0
        self.misses = 0

    def prefetch(self, posts: list[Post]) -> None:
        keys = {post.render_key for post in posts} - self.looked_up
        if self.state is not None and keys:
            self.cached.update(self.state.cached_html(keys))
        self.looked_up |= keys

    def render_missing(self, posts: list[Post]) -> None:
        """Render, all at once (in parallel when there are many), the posts the cache lacks."""
        missing = [p for p in posts if p.render_key not in self.cached and p.render_key not in self.rendered]
        self.ahead.update(render_many(missing))

    def __call__(self, post: Post) -> str:
        key = post.render_key
        if key in self.rendered:
            return self.rendered[key]
        if key not in self.looked_up:
            self.prefetch([post])
        cached = self.cached.get(key)
        if cached is not None:
            self.hits += 1
            return cached
        self.misses += 1
        html = self.ahead.pop(key) if key in self.ahead else render_html(post)
        self.rendered[key] = html
        return html

    def save(self) -> None:
        if self.state is not None and self.rendered:
            self.state.store_html(self.rendered)


def load_site(config: Config, state: State, now: datetime) -> LoadResult:
    """content.load_posts through the state's scan cache: only new or changed files are read
    and parsed; the cache is written back only when something changed."""
    from .content import ScanEntry, scan_fingerprint

    fingerprint = scan_fingerprint(config)
    cache = {path: ScanEntry(*row) for path, row in state.scan_cache(fingerprint).items()}
    loaded = load_posts(config, now, cache=cache)
    if loaded.cache_changed or loaded.cache_removed:
        state.store_scan_cache(fingerprint, loaded.cache_changed, loaded.cache_removed)
    log.debug("scan: %d files from the cache, %d read", loaded.cache_hits, len(loaded.cache_changed))
    return loaded


# The meta key under which write_site_feeds remembers what it last wrote.
FEEDS_WRITTEN_KEY = "feeds_written"
_CODE_FILES = ("feeds.py", "__init__.py")


def feed_candidates(posts: list[Post], limit: int) -> list[Post]:
    """The posts that can appear in some feed: the newest `limit` overall and per tag (what
    feeds.render_feeds selects; a post missed here is merely looked up on its own)."""
    from .content import slugify

    if not limit:
        return list(posts)
    ordered = sorted(posts, key=lambda p: (p.published, p.url), reverse=True)
    chosen: dict[int, Post] = {id(p): p for p in ordered[:limit]}
    per_tag: dict[str, int] = {}
    for post in ordered:
        for slug in {slugify(tag) for tag in post.tags}:
            if per_tag.get(slug, 0) < limit:
                per_tag[slug] = per_tag.get(slug, 0) + 1
                chosen[id(post)] = post
    return list(chosen.values())


def feeds_fingerprint(config: Config, loaded: LoadResult) -> str:
    """What the feed files depend on: the published posts (each stands for its file's bytes
    under the scan fingerprint, which covers the config keys parsing uses), the config keys
    the feeds use, and the code that renders them. Equal fingerprints, equal feed bytes."""
    import hashlib
    import json

    from .content import code_hash, scan_fingerprint

    here = Path(__file__).parent
    h = hashlib.sha256(code_hash().encode())
    for name in _CODE_FILES:
        h.update(hashlib.sha256((here / name).read_bytes()).digest())
    site = config.site
    h.update(json.dumps([scan_fingerprint(config), site.title, site.url, site.description,
                         site.language, site.author.name, site.author.email,
                         config.feeds.limit]).encode("utf-8", "surrogatepass"))
    for post in loaded.posts:
        h.update(f"{post.source}\0{post.content_hash}\n".encode("utf-8", "surrogatepass"))
    return h.hexdigest()


def _feeds_unchanged(config: Config, state: State, fingerprint: str) -> dict | None:
    """What the last write recorded, if the posts, config and code are the same as then and
    every file it wrote is still there untouched (same size and mtime); else None."""
    import json

    recorded = state.get_meta(FEEDS_WRITTEN_KEY)
    if not recorded:
        return None
    try:
        last = json.loads(recorded)
    except ValueError:
        return None
    if not isinstance(last, dict) or last.get("fingerprint") != fingerprint:
        return None
    files = last.get("files") or {}
    if not files or stat_files(config.output_dir, files) != files:
        return None  # deleted or edited by hand: render and rewrite what differs
    return last


def write_site_feeds(config: Config, state: State | None, loaded: LoadResult,
                     report: Report) -> dict[str, list[int]] | None:
    """Render and write the feeds, unless nothing they depend on changed since the last write
    (the common case for a cron job): then no Markdown, feedgen or lxml even gets imported,
    and the answer is the feed files found untouched, {path: [size, mtime_ns]}."""
    import json

    fingerprint = feeds_fingerprint(config, loaded) if state is not None else ""
    last = _feeds_unchanged(config, state, fingerprint) if state is not None else None
    if last is not None:
        report.lines.append(
            f"feeds: {plural(len(loaded.posts), 'post')}, 0 files written, "
            f"{len(last['files'])} unchanged (0 rendered, {last.get('posts_in_feeds', 0)} from cache)"
        )
        return last["files"]

    from .feeds import render_feeds, write_feeds

    renderer = CachedRenderer(state)
    candidates = feed_candidates(loaded.posts, config.feeds.limit)
    renderer.prefetch(candidates)
    renderer.render_missing(candidates)
    files = render_feeds(loaded.posts, config, renderer)
    renderer.save()
    written = write_feeds(files, config.output_dir)
    if state is not None:
        state.set_meta(FEEDS_WRITTEN_KEY, json.dumps({
            "fingerprint": fingerprint,
            "files": stat_files(config.output_dir, files),
            "posts_in_feeds": renderer.hits + renderer.misses,
        }, sort_keys=True))
    report.lines.append(
        f"feeds: {plural(len(loaded.posts), 'post')}, {plural(len(written.written), 'file')} "
        f"written, {len(written.unchanged)} unchanged ({renderer.misses} rendered, "
        f"{renderer.hits} from cache)"
    )
    return None


def build(config: Config, now: datetime | None = None) -> Report:
    """`publisher build`: scan the posts and write the feeds. Sends nothing."""
    now = now or now_utc()
    require_content_dir(config)  # before the state is touched
    report = Report()
    state = open_state(config)
    try:
        loaded = load_site(config, state, now)
        report.problems.extend(loaded.problems)
        write_site_feeds(config, state, loaded, report)
    finally:
        state.close()
    if loaded.held_back:
        report.lines.append(f"held back: {len(loaded.held_back)} drafts or future posts")
    return report


def _plan(config: Config, state: State, posts: list[Post], kind: str, now: datetime) -> int:
    """Render a digest (or alert) and record it with its owed deliveries, atomically."""
    from .newsletter.delivery import check_settings
    from .newsletter.digest import render_digest
    from .newsletter.sending import envelope_sender

    # Config errors that would only show at send time stop us before anything is recorded.
    envelope_sender(config)
    check_settings(config)
    # A damaged database must not take a digest and its ledger: say so before recording.
    state.check_integrity()
    rendered = render_digest(posts, config, kind=kind)
    for warning in rendered.warnings:
        log.warning("%s", warning)
    return state.create_digest(kind=kind, subject=rendered.subject, html=rendered.html,
                               text=rendered.text, post_ids=rendered.post_ids, now=now)


def _deliver_open(config: Config, state: State, now: datetime, report: Report, progress, stop,
                  planned: frozenset[int] = frozenset()) -> int:
    """Send every digest that still owes mail, oldest first: interrupted sends, deferred
    messages, and what this run just planned. Runs outside the run lock: other senders may
    work on the same digests at the same time, each claiming its own batches. Returns how
    many digests owed mail. A digest recorded by an earlier run is announced as such."""
    from .newsletter.sending import send_digest

    open_digests = state.open_digests()
    for digest in open_digests:
        if stop is not None and stop.is_set():
            report.lines.append("stopped: the rest is sent by the next run")
            report.failed = True
            break
        if digest.id not in planned:
            what = "featured alert" if digest.kind == "alert" else "digest"
            report.lines.append(
                f"resuming {what} #{digest.id} {digest.subject!r}, recorded "
                f"{digest.created_at:%Y-%m-%d %H:%M} UTC and not finished then")
        result = send_digest(config, state, digest, now=now, progress=progress, stop=stop)
        report.lines.append(result.summary())
        if result.failed:
            report.failed = True
    return len(open_digests)


def _since_last_digest(state: State, now: datetime) -> datetime:
    """Where the schedule is counted from: the last digest, or the last firing a run already
    saw, or the site's first run."""
    marks = [state.get_time(k) for k in ("last_digest_at", "schedule_seen_at", "baseline_at")]
    return max((m for m in marks if m is not None), default=now)


def digest_due(config: Config, state: State, now: datetime) -> bool:
    """Has the schedule fired since the last digest (or the last firing a run already saw)?"""
    from .scanner import schedule_fired

    return schedule_fired(config, _since_last_digest(state, now), now)


def run_once(config: Config, now: datetime | None = None, *,
             progress: Callable[[int, int], None] | None = None,
             stop: threading.Event | None = None,
             lock_wait: float = LOCK_WAIT_SECONDS) -> Report:
    """`publisher run`, the cron job. See the module docstring for the order."""
    now = now or now_utc()
    require_content_dir(config)  # before the state or its lock is touched
    stamp = idle.still_idle(config, now)
    if stamp is not None:
        log.debug("idle: nothing changed since the last run; reporting what it found")
        return Report(lines=stamp["lines"], problems=stamp["problems"])
    config.check_deferred()

    from .scanner import scan

    report = Report()
    state = open_state(config)
    try:
        # Planning holds the run lock: two runs never both decide to send the same posts.
        with state.run_lock(wait=lock_wait):
            result = scan(config, state, now, loaded=load_site(config, state, now))
            report.problems.extend(result.problems)
            if result.baseline:
                report.lines.append(
                    f"first run: {plural(len(result.posts), 'existing post')} marked as already "
                    "announced; subscribers get only what is published from now on"
                )
            feed_files = write_site_feeds(config, state, result.loaded, report)
            planned_ids = []
            for post in result.alerts_due:
                planned_ids.append(_plan(config, state, [post], "alert", now))
            if digest_due(config, state, now):
                if result.unannounced:
                    planned_ids.append(_plan(config, state, result.unannounced, "digest", now))
                else:
                    # The firing is used up: the next digest waits for the next firing.
                    state.set_meta("schedule_seen_at", now.isoformat())
            planned = len(planned_ids)
            if not planned:
                report.lines.append(_nothing_to_send(config, state, result, now))
        delivered = _deliver_open(config, state, now, report, progress, stop,
                                  frozenset(planned_ids))
        if (feed_files is not None and not (result.baseline or planned or delivered)
                and idle.sqlite_path(config)):
            _save_idle_stamp(config, state, result.loaded, feed_files, now, report)
    finally:
        state.close()
    return report


def _save_idle_stamp(config: Config, state: State, loaded: LoadResult,
                     feed_files: dict[str, list[int]], now: datetime, report: Report) -> None:
    """This run did nothing: let the next ones say so cheaply, until something changes or
    the schedule fires or a post held back for the future comes due (see idle.py)."""
    from .scanner import next_firing

    due = [p.published for p in loaded.held_back if not p.draft and p.published > now]
    firing = next_firing(config, _since_last_digest(state, now))
    if firing is not None:
        due.append(firing)
    state.save_idle_stamp(idle.stamp(config, files_signature=loaded.files_signature,
                                     feed_files=feed_files, expires=min(due, default=None),
                                     lines=report.lines, problems=report.problems))


def _nothing_to_send(config: Config, state: State, result, now: datetime) -> str:
    from .scanner import next_firing

    firing = next_firing(config, max(_since_last_digest(state, now), now))
    due = (f"{firing.astimezone(timezone.utc):%a %Y-%m-%d %H:%M} UTC" if firing is not None
           else "never: newsletter.schedule does not fire again")
    if not result.unannounced:
        return f"nothing new to mail (next digest due {due}, if a post is published by then)"
    return (f"{plural(len(result.unannounced), 'post')} waiting for the next digest, due {due} "
            f"({config.newsletter.schedule})")


def send_now(config: Config, now: datetime | None = None, *,
             progress: Callable[[int, int], None] | None = None,
             stop: threading.Event | None = None,
             lock_wait: float = LOCK_WAIT_SECONDS) -> Report:
    """`publisher send`: a digest of every post not yet mailed, now, whatever the schedule.
    Several `publisher send` processes, on one machine or many, share an open digest."""
    from .scanner import scan

    now = now or now_utc()
    require_content_dir(config)  # before the state or its lock is touched
    report = Report()
    state = open_state(config)
    try:
        with state.run_lock(wait=lock_wait):
            state.check_integrity()  # a send is rare and consequential: the whole file first
            result = scan(config, state, now, loaded=load_site(config, state, now))
            report.problems.extend(result.problems)
            planned: frozenset[int] = frozenset()
            if result.unannounced:
                planned = frozenset([_plan(config, state, result.unannounced, "digest", now)])
            elif not state.open_digests():
                report.lines.append("nothing new to mail: every published post has been sent")
            else:
                report.lines.append("no new post to mail")
        _deliver_open(config, state, now, report, progress, stop, planned)
    finally:
        state.close()
    return report


STAND_INS = 5  # newest posts shown by preview, dry run and test copy when nothing is new


def next_digest_posts(config: Config, state: State, now: datetime) -> tuple[list[Post], LoadResult]:
    """The posts the next digest would hold, without recording anything. On a site never run,
    or with nothing new, the newest posts stand in so a preview or test copy shows something
    (stand_ins_used says which)."""
    loaded = load_posts(config, now)
    if state.get_meta("baseline_at") is None:
        return loaded.posts[:STAND_INS], loaded
    owed = set(state.unannounced_post_ids())
    known = state.known_posts()
    posts = [p for p in loaded.posts if p.id in owed or p.id not in known]
    return (posts or loaded.posts[:STAND_INS]), loaded


def stand_ins_used(state: State, posts: list[Post]) -> bool:
    """Are `posts` (from next_digest_posts) stand-ins rather than what the next digest holds?"""
    if state.get_meta("baseline_at") is None:
        return bool(posts)
    owed = set(state.unannounced_post_ids())
    known = state.known_posts()
    return bool(posts) and not any(p.id in owed or p.id not in known for p in posts)


def _posts_for_next_digest(config: Config, now: datetime, report: Report, verb: str) -> list[Post]:
    """next_digest_posts for the commands that record nothing (preview, dry run, test copy):
    skipped posts reported, and a line saying so when there is nothing to `verb`, or when
    the posts shown are stand-ins."""
    state = open_state(config)
    try:
        posts, loaded = next_digest_posts(config, state, now)
        stand_ins = stand_ins_used(state, posts)
    finally:
        state.close()
    report.problems.extend(loaded.problems)
    if not posts:
        report.lines.append(f"no published posts: nothing to {verb}")
    elif stand_ins:
        report.lines.append(
            "nothing new to mail: "
            + ("the newest post stands" if len(posts) == 1
               else f"the {len(posts)} newest posts stand")
            + " in, to show what a digest looks like (no subscriber gets them)")
    return posts


def send_test(config: Config, address: str, now: datetime | None = None) -> Report:
    """`publisher send --to ADDRESS`: one test copy of the next digest; records nothing."""
    from .newsletter.delivery import Job, deliver, sign_dkim
    from .newsletter.digest import Recipient, build_message, render_digest
    from .errors import DeliveryError
    from .newsletter.sending import envelope_sender, message_bytes

    now = now or now_utc()
    report = Report()
    posts = _posts_for_next_digest(config, now, report, "send")
    if not posts:
        return report
    mail_from = envelope_sender(config)
    rendered = render_digest(posts, config, kind="digest")
    recipient = Recipient(email=address, name="", token="test-copy")
    msg = build_message(rendered, recipient, config, message_key=f"test|{now.isoformat()}", date=now)
    data = sign_dkim(message_bytes(msg), config)
    outcomes = []
    deliver([Job(key="test", recipient=address, build=lambda: data)], config, mail_from=mail_from,
            on_attempt=lambda job: None, on_result=lambda job, out: outcomes.append(out))
    if not outcomes or outcomes[0].status != "sent":
        reply = outcomes[0].reply if outcomes else "not attempted"
        raise DeliveryError(f"test copy to {address} was not accepted: {reply}")
    report.lines.append(f"test copy of {rendered.subject!r} sent to {address}; nothing recorded")
    return report


def dry_run(config: Config, out_dir: Path, now: datetime | None = None) -> Report:
    """`publisher send --dry-run`: the messages as .eml files; records nothing."""
    from .newsletter.digest import render_digest
    from .newsletter.sending import write_dry_run

    now = now or now_utc()
    report = Report()
    posts = _posts_for_next_digest(config, now, report, "write")
    if not posts:
        return report
    rendered = render_digest(posts, config, kind="digest")
    state = open_state(config)
    try:
        files = write_dry_run(config, state, rendered, out_dir, now=now)
    finally:
        state.close()
    report.lines.append(f"dry run: {plural(len(files), 'message')} written to {out_dir} "
                        f"({plural(len(posts), 'post')}); nothing sent")
    return report


def preview(config: Config, out_dir: Path, now: datetime | None = None) -> tuple[Report, list[Path]]:
    """`publisher preview`: the next digest as an HTML and a text file."""
    from .newsletter.digest import render_preview

    now = now or now_utc()
    report = Report()
    posts = _posts_for_next_digest(config, now, report, "preview")
    if not posts:
        return report, []
    html, text = render_preview(posts, config)
    out_dir.mkdir(parents=True, exist_ok=True)
    html_path, text_path = out_dir / "digest.html", out_dir / "digest.txt"
    html_path.write_text(html, encoding="utf-8")
    text_path.write_text(text, encoding="utf-8")
    return report, [html_path, text_path]


def check(config: Config, now: datetime | None = None) -> Report:
    """`publisher check`: validate the config (including what only a send or the web endpoint
    would use: SMTP settings, DKIM key, templates, subject), the posts and the written feeds.
    Changes nothing."""
    from .feeds import check_feeds

    now = now or now_utc()
    report = Report()
    loaded = load_posts(config, now)
    report.problems.extend(loaded.problems)
    check_mail_settings(config, loaded.posts[:1], now)
    report.problems.extend(check_feeds(config.output_dir))
    _check_state_file(config, report)
    report.lines.append(
        f"config OK; {plural(len(loaded.posts), 'published post')}, {len(loaded.held_back)} held back, "
        f"{len(loaded.problems)} skipped; feeds in {config.feeds.output_dir} checked"
    )
    return report


def _check_state_file(config: Config, report: Report) -> None:
    """`check`: an existing SQLite state database is opened and checked page by page (a
    missing one is left missing: check changes nothing)."""
    from .errors import StateError

    path = idle.sqlite_path(config)
    if path is None or not Path(path).exists():
        return
    try:
        state = open_state(config)
        try:
            state.check_integrity()
        finally:
            state.close()
    except StateError as e:
        report.problems.append(str(e))


def check_mail_settings(config: Config, sample: list[Post], now: datetime) -> None:
    """Raise ConfigError for anything that would fail the next send or page: SMTP settings,
    templates (the site's overrides included), the subject template and the headers."""
    from .newsletter.delivery import check_settings
    from .newsletter.digest import Recipient, build_message, render_digest
    from .web import check_templates, template_environment

    check_settings(config)
    check_templates(config, template_environment(config))
    if sample and config.newsletter.from_:
        rendered = render_digest(sample, config, kind="digest")
        build_message(rendered, Recipient("check@example.org", "", "check"), config,
                      message_key="check", date=now)
