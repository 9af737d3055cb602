"""Each command's stages in order (build, run, send, test copy, dry run, preview, check) and
the report they make. Caching is cache.py's; rendering, SQL and mail belong to the modules
each stage calls.

build:    posts -> feeds
run_once: scan -> feeds -> plan featured alerts -> plan a digest if due -> deliver -> WebSub pings
send_now: scan -> plan a digest of every unmailed post, now -> deliver

Planning (deciding what to mail and recording it with one owed delivery per subscriber)
holds the run lock, so two overlapping runs never plan the same posts twice. Delivery then
works through every open digest, oldest first (interrupted sends and deferred messages
included), claiming batches of owed rows: an overlapping run, or a second `publisher send`
on another machine, shares the remaining work and never mails anyone twice.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import logging
import re
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable
from urllib.parse import unquote

from typing import TYPE_CHECKING

from . import cache, idle
from .cache import load_site
from .feed_cache import FeedCache
from .config import PLACEHOLDER_URL, Config
from .content import LoadResult, Post, load_posts, render_html
from .content.links import SiteIndex, media_files
from .content.posts import require_content_dir
from .content.sanitize import removed_by_sanitizing
from .errors import ConfigError, DeliveryError, PublisherError, StateError
from .newsletter import archive
from .newsletter.owed import (digest_due, next_digest_posts, next_firing, scan, since_last_digest,
                             stand_ins_used)

if TYPE_CHECKING:
    from .cache import CacheStorage
    from .state import State

log = logging.getLogger(__name__)

LOCK_WAIT_SECONDS = 10.0


@dataclass
class Report:
    """What a command did: summary lines for people, problems for stderr, and the exit status."""

    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # skipped posts, failed deliveries
    failed: bool = False  # some deliveries are still owed after this run
    # Content warnings (a missing image, unresolved engine syntax) that a post shows for the
    # first time: said once, for stderr, without changing the exit status (see report_warnings).
    warnings: list[str] = field(default_factory=list)

    @property
    def exit_status(self) -> int:
        return 1 if (self.problems or self.failed) else 0


def plural(count: int, noun: str) -> str:
    """'1 post', '2 posts'."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


def open_state(config: Config) -> State:
    """State.open(config), for `with open_state(config) as state:`: the one place this module
    imports the state, so the idle path (cache.py) never pays for SQLAlchemy."""
    from .state import State  # lazy: SQLAlchemy's import is ~0.25 s

    return State.open(config)



def write_site_feeds(config: Config, state: CacheStorage | None, loaded: LoadResult,
                     report: Report, now: datetime | None = None, *,
                     ping_later: bool = False) -> dict[str, list[int]] | None:
    """Render and write the feeds, unless nothing they depend on changed since the last write
    (feed_cache.FeedCache; the common case for a cron job): then no Markdown, feedgen or lxml even
    gets imported, and the answer is the files found untouched, for the idle stamp. Otherwise
    only the feed sets whose posts (or config, or code) changed are rendered and written: a
    new post rewrites the site's feeds and its tags' feeds, nothing else. WebSub hubs are
    pinged for the changed feeds, or with `ping_later` the pings are only recorded (ping_hubs)."""
    if state is not None and config.newsletter.topics == "all":
        # lazy: newsletter.topics imports the state (SQLAlchemy, ~0.25 s)
        from .newsletter.topics import remember_offered  # the topics `serve` offers

        remember_offered(config, state, loaded.posts)
    feeds_cache = FeedCache(config, state, loaded)
    if feeds_cache.unchanged():
        report.lines.append(
            f"feeds: {plural(len(loaded.posts), 'post')}, 0 files written, "
            f"{len(feeds_cache.last['files'])} unchanged (0 rendered, "
            f"{feeds_cache.posts_in_feeds} from cache)"
        )
        report_warnings(config, report, feeds_cache.problems, new=[])  # each said when it first showed
        ping_hubs(config, state, [], report, now, later=ping_later)  # only retries of earlier failures
        return feeds_cache.unchanged_files()

    # lazy: feeds/ (feedgen, lxml: ~35 ms); a build with nothing new skips it
    from .feeds import render_feeds, write_feeds

    selection = feeds_cache.selection()
    renderer = selection.renderer
    files = render_feeds(loaded.posts, config, renderer, select=selection, sanitized=True,
                         fragments=selection.fragments)
    warnings = feeds_cache.warnings_after(selection)
    report_warnings(config, report, warnings, new=feeds_cache.new_warnings(selection, warnings))
    # Local images are copied beside the feeds under content-hashed names (links.MediaFile),
    # read from inside the site only: written like the feeds, atomically and only when their
    # bytes differ.
    media, unreadable = media_files(config, selection.media)
    files.update(media)
    report.problems.extend(unreadable)
    # The render cache and the feed entries are stored while writer threads wait on the disk.
    written = write_feeds(files, config.output_dir, keep=frozenset(selection.kept),
                          meanwhile=selection.save)
    feeds_cache.record(list(files), selection, warnings)
    report.lines.append(
        f"feeds: {plural(len(loaded.posts), 'post')}, {plural(len(written.written), 'file')} "
        f"written, {len(written.unchanged) + len(selection.kept)} unchanged "
        f"({renderer.misses} rendered, {renderer.hits} from cache)"
    )
    ping_hubs(config, state, written.written, report, now, later=ping_later)
    return None



def report_warnings(config: Config, report: Report, current: list[str], *, new: list[str]) -> None:
    """Content warnings: `new` ones (a post that shows one for the first time: new, changed, or
    its warning changed) are said once and leave the exit status alone, so cron does not mail
    the same lines every five minutes; with content.strict (--strict) every `current` one is a
    problem (exit 1), for CI. A warning matching content.ignore_warnings is never said."""
    if config.content.strict:
        report.problems.extend(w for w in current if not acknowledged(config, w))
    else:
        report.warnings.extend(w for w in new if not acknowledged(config, w))


def acknowledged(config: Config, warning: str) -> bool:
    """The owner listed this warning in content.ignore_warnings (glob patterns, like Hugo's
    ignoreErrors): known, accepted, not said again."""
    return any(fnmatch.fnmatchcase(warning, pattern) for pattern in config.content.ignore_warnings)


def ping_hubs(config: Config, state: CacheStorage | None, changed: list[str], report: Report,
              now: datetime | None, *, later: bool = False,
              stop: threading.Event | None = None) -> None:
    """After the feeds are written: WebSub pings for the changed ones, and retries of those an
    earlier run could not deliver. Never raises for a hub's failure (websub.py). With `later`,
    the changed feeds' pings are only recorded, for a ping_hubs() after the mail (run_once)."""
    if state is None or not config.feeds.websub_hub:
        return
    from . import websub  # lazy: urllib.request and http.client cost ~25 ms, only with a hub

    urls: list[str] = []
    if changed:  # else feeds/ (feedgen, lxml) need not be imported at all
        # lazy: feeds/, ~35 ms
        from .feeds import feed_urls_with_hub

        urls = sorted(feed_urls_with_hub(changed, config).values())
    if later:
        websub.owe(config, state, urls)
        return
    if not urls and not websub.pending(state):
        return
    result = websub.ping_hubs(config, state, urls, now or now_utc(), stop)
    report.lines.append(result.summary())


def build(config: Config, now: datetime | None = None) -> Report:
    """`publisher build`: scan the posts and write the feeds. Sends nothing."""
    now = now or now_utc()
    require_content_dir(config)  # before the state is touched
    report = Report()
    state, loaded = cache.open_and_load_site(config, now)  # checks the config first
    with state:
        report.problems.extend(loaded.problems)
        write_site_feeds(config, state, loaded, report, now)
        write_archive(config, state, report)
    if loaded.held_back:
        report.lines.append(f"held back: {len(loaded.held_back)} drafts or future posts")
    return report


def _plan(config: Config, state: State, posts: list[Post], kind: str, now: datetime) -> int:
    """Render a digest (or alert) and record it with its owed deliveries, atomically."""
    # lazy: the newsletter modules import the state (SQLAlchemy, ~0.25 s)
    from .newsletter.sending import check_send_settings
    from .newsletter.topics import plan_digest

    # Config errors that would only show at send time stop us before anything is recorded.
    check_send_settings(config)
    # A damaged database must not take a digest and its ledger: say so before recording.
    state.check_integrity()

    posts = with_copied_images(config, posts)
    # One rendering per distinct post list (topics, alerts already sent), fixed now.
    rendered, plan = plan_digest(config, state, posts, kind, now, view_url=archive.view_url(config))
    for warning in rendered.warnings:
        log.warning("%s", warning)
    snapshot = archive.snapshot(posts, rendered.post_ids) if config.newsletter.archive else None
    if snapshot is not None:
        # A broken archive template stops us here, before anything is recorded, as the mail's do.
        archive.check_issue(config, kind=kind, subject=rendered.subject, posts=snapshot, now=now)
    return state.create_digest(
        kind=kind, subject=rendered.subject, html=rendered.html, text=rendered.text,
        post_ids=rendered.post_ids, now=now, plan=plan, archive=snapshot)


def write_archive(config: Config, state: CacheStorage, report: Report, *,
                  summary: bool = True) -> None:
    """The newsletter's public archive from the state (newsletter/archive.py). A disk that
    refuses is a problem of this run, not the end of it: the next build writes it again.
    `summary`: say what was written (build); a send's summary is about its mail (the log says it)."""

    try:
        written = archive.write_archive(config, state)
    except ConfigError:
        raise  # a broken template: the owner must fix it
    except PublisherError as e:
        report.problems.append(f"newsletter archive not written: {e}")
        return
    if summary and written is not None and written.written:
        report.lines.append(f"newsletter archive: {plural(len(written.written), 'file')} written, "
                            f"{len(written.unchanged)} unchanged")


def _deliver_open(config: Config, state: State, now: datetime, report: Report, progress, stop,
                  planned: frozenset[int] = frozenset()) -> int:
    """Send every digest that still owes mail, oldest first: interrupted sends, deferred
    messages, and what this run just planned. Runs outside the run lock: other senders may
    work on the same digests at the same time, each claiming its own batches. Returns how
    many digests owed mail. A digest recorded by an earlier run is announced as such."""
    # lazy: newsletter.sending imports the state (SQLAlchemy, ~0.25 s)
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


def run_once(config: Config, now: datetime | None = None, *,
             progress: Callable[[int, int], None] | None = None,
             stop: threading.Event | None = None,
             lock_wait: float = LOCK_WAIT_SECONDS) -> Report:
    """`publisher run`, the cron job. See the module docstring for the order."""
    now = now or now_utc()
    require_content_dir(config)  # before the state or its lock is touched
    # Bounces first (newsletter.bounce_mailbox): an address suppressed today is not mailed today.
    bounced = read_bounces_first(config, now) if config.newsletter.bounce_mailbox else Report()
    stamp = idle.still_idle(config, now)
    if stamp is not None:
        log.debug("idle: nothing changed since the last run; reporting what it found")
        return Report(lines=bounced.lines + stamp["lines"], problems=bounced.problems + stamp["problems"])
    checked = cache.check_config_once(config)  # recorded: a later `publisher send` trusts it

    report = Report()
    with open_state(config) as state:
        cache.record_config_checked(state, checked)
        # Planning holds the run lock: two runs never both decide to send the same posts.
        with state.run_lock(wait=lock_wait):
            result = scan(config, state, now, loaded=load_site(config, state, now))
            report.problems.extend(result.problems)
            if result.baseline:
                report.lines.append(
                    f"first run: {plural(len(result.posts), 'existing post')} marked as already "
                    "announced; subscribers get only what is published from now on"
                )
            feed_files = write_site_feeds(config, state, result.loaded, report, now, ping_later=True)
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
            else:
                write_archive(config, state, report, summary=False)  # before the mail that links to it
        delivered = _deliver_open(config, state, now, report, progress, stop,
                                  frozenset(planned_ids))
        # WebSub last, outside the lock: a slow hub never holds back the mail or another run.
        ping_hubs(config, state, [], report, now, stop=stop)
        if (feed_files is not None and not (result.baseline or planned or delivered)
                and cache.sqlite_path(config) and not _pings_owed(config, state)):
            idle.save_idle_stamp(config, state, result.loaded, feed_files, now,
                                  since_last_digest(state, now), report.lines, report.problems)
    report.lines[:0], report.problems[:0] = bounced.lines, bounced.problems  # (not in the idle stamp)
    return report


def read_bounces_first(config: Config, now: datetime) -> Report:
    """`publisher run`'s first stage when a bounce mailbox is configured (newsletter/bounces.py).
    A mailbox that cannot be read is a problem of this run, not the end of it."""
    # lazy: newsletter.bounces imports the state (SQLAlchemy, ~0.25 s)
    from .newsletter.bounces import process_mailbox

    report = Report()
    with open_state(config) as state:
        try:
            found = process_mailbox(config, state, now=now)
            if found.handled or found.left:
                report.lines.append(found.summary())
        except PublisherError as e:
            report.problems.append(f"publisher: bounces not read: {e}")
    return report


def _pings_owed(config: Config, state: State) -> bool:
    """WebSub pings wait for a retry: the next run must not be skipped as idle."""
    if not config.feeds.websub_hub:
        return False
    # lazy: websub.py (urllib.request, http.client: ~25 ms)
    from .websub import pending

    return bool(pending(state))



def _nothing_to_send(config: Config, state: State, result, now: datetime) -> str:
    firing = next_firing(config, max(since_last_digest(state, now), now))
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

    now = now or now_utc()
    require_content_dir(config)  # before the state or its lock is touched
    report = Report()
    with open_state(config) as state:
        with state.run_lock(wait=lock_wait):
            state.check_integrity()  # a send is rare and consequential: the whole file first
            result = scan(config, state, now, loaded=load_site(config, state, now))
            report.problems.extend(result.problems)
            planned: frozenset[int] = frozenset()
            if result.unannounced:
                planned = frozenset([_plan(config, state, result.unannounced, "digest", now)])
                write_archive(config, state, report, summary=False)  # before the mail that links to it
            elif result.baseline:
                report.lines.append(
                    f"first send on this site: nothing mailed; its {plural(len(result.posts), 'published post')} "
                    "are the starting point, marked as already announced (subscribers never get the back "
                    "catalogue); the next digest holds the posts published from now on")
            elif not state.open_digests():
                report.lines.append("nothing new to mail: every published post has been sent")
            else:
                report.lines.append("no new post to mail")
        _deliver_open(config, state, now, report, progress, stop, planned)
    return report


def _posts_for_next_digest(config: Config, now: datetime, report: Report, verb: str,
                           images_into: Path | None = None) -> tuple[list[Post], bool]:
    """next_digest_posts for the commands that record nothing (preview, dry run, test copy),
    and whether they are stand-ins: skipped posts reported, and a line saying so when there
    is nothing to `verb`, or when the posts shown are stand-ins. Their images as the mail
    shows them (with_copied_images; `images_into`: a preview's folder)."""
    with open_state(config) as state:
        posts, loaded = next_digest_posts(config, state, now)
        stand_ins = stand_ins_used(state, posts)
    report.problems.extend(loaded.problems)
    if not posts:
        report.lines.append(f"no published posts: nothing to {verb}")
    elif stand_ins:
        report.lines.append(
            "nothing new to mail: "
            + ("the newest post stands" if len(posts) == 1
               else f"the {len(posts)} newest posts stand")
            + " in, to show what a digest looks like (no subscriber gets them)")
    return with_copied_images(config, posts, report, into=images_into), stand_ins


def with_copied_images(config: Config, posts: list[Post], report: Report | None = None, *,
                       into: Path | None = None) -> list[Post]:
    """The posts with a local front matter image (Astro's heroImage: '../../assets/x.jpg')
    pointing at its copy, as the feeds do: beside the feeds, under the content-hashed name the
    build gives it, written now when no build has yet (a send before a build must not link
    the image under the post's URL, where nothing is served); or, with `into` (a preview's
    folder), beside the preview and linked relatively, so a post not yet online shows its
    image there. An image that cannot be read keeps the post's image as written."""
    site = SiteIndex(config, ())
    chosen: list[tuple[Post, str | None, str | None]] = []  # (post, its copy's name, image URL)
    copies: dict[str, str] = {}
    for post in posts:
        prepared = site.prepare(post) if post.image and post._path else None
        media = [m for m in (prepared.media if prepared and prepared.image else ())
                 if unquote(prepared.image).endswith("/" + m.name)]
        if not media:
            chosen.append((post, None, None))
            continue
        copies[media[0].name] = media[0].source
        chosen.append((post, media[0].name, media[0].name if into is not None else prepared.image))
    if not copies:
        return posts
    files, unreadable = media_files(config, copies)
    if report is not None:
        report.problems.extend(unreadable)
    # lazy: output.py, the one writer; only a digest with a local image needs it here
    from .output import write_files

    write_files(files, into if into is not None else config.output_dir)
    return [dataclasses.replace(post, image=image) if name in files else post
            for post, name, image in chosen]


def send_test(config: Config, address: str, now: datetime | None = None) -> Report:
    """`publisher send --to ADDRESS`: one test copy of the next digest; records nothing."""
    # lazy: the newsletter modules: the state (SQLAlchemy, ~0.25 s), the email package (~10 ms)
    from .newsletter.digest import Recipient, render_digest
    from .newsletter.message import build_message
    from .newsletter.sending import send_one

    now = now or now_utc()
    report = Report()
    posts, _ = _posts_for_next_digest(config, now, report, "send")
    if not posts:
        return report
    rendered = render_digest(posts, config, kind="digest")
    recipient = Recipient(email=address, name="", token="test-copy")
    # The bytes a subscriber's copy would be (signed when DKIM is on), through the one path.
    data = build_message(rendered, recipient, config, message_key=f"test|{now.isoformat()}", date=now)
    outcome = send_one(config, address, data, key="test")
    if outcome is None or outcome.status != "sent":
        reply = outcome.reply if outcome is not None else "not attempted"
        raise DeliveryError(f"test copy to {address} was not accepted: {reply}")
    report.lines.append(f"test copy of {rendered.subject!r} sent to {address}; nothing recorded")
    return report


def dry_run(config: Config, out_dir: Path, now: datetime | None = None) -> Report:
    """`publisher send --dry-run`: the messages as .eml files; records nothing."""
    # lazy: the newsletter modules import the state (SQLAlchemy, ~0.25 s)
    from .newsletter.sending import write_dry_run
    from .newsletter.topics import plan_digest

    now = now or now_utc()
    report = Report()
    posts, _ = _posts_for_next_digest(config, now, report, "write")
    if not posts:
        return report
    with open_state(config) as state:
        # As a real send would plan it: each subscriber's topics, pauses, alerts already sent.
        rendered, plan = plan_digest(config, state, posts, "digest", now)
        files = write_dry_run(config, state, rendered, out_dir, now=now, plan=plan)
    report.lines.append(f"dry run: {plural(len(files), 'message')} written to {out_dir} "
                        f"({plural(len(posts), 'post')}); nothing sent")
    return report


# The preview's own word, above the digest, when its posts are stand-ins (not part of any mail).
SAMPLE_BANNER = ('<p style="margin:0;padding:12px 16px;background:#fff4ce;color:#3b2f00;'
                 'font:14px/1.4 sans-serif;text-align:center;">{note}</p>')


def preview(config: Config, out_dir: Path, now: datetime | None = None,
            topics: tuple[str, ...] | None = None) -> tuple[Report, list[Path]]:
    """`publisher preview`: the next digest as an HTML and a text file; with `topics` (names),
    as a subscriber of those topics gets it."""
    # lazy: newsletter.digest (~10 ms) is for the newsletter commands, not the build
    from .newsletter.digest import render_preview

    now = now or now_utc()
    report = Report()
    chosen = _preview_topics(config, topics) if topics is not None else None
    posts, stand_ins = _posts_for_next_digest(config, now, report, "preview", images_into=out_dir)
    if chosen is not None and posts:
        # lazy: newsletter.topics imports the state (SQLAlchemy, ~0.25 s)
        from .newsletter.topics import select

        posts = select(posts, frozenset(chosen) or None)
        if not posts:
            report.lines.append(f"nothing new in topics {', '.join(topics)}: "
                                "a subscriber of these topics gets no mail this time")
    if not posts:
        return report, []
    html, text = render_preview(posts, config)
    if stand_ins:  # say so on the page too: "There are 5 new posts" would not be true
        note = (f"Sample: nothing new is waiting to be mailed; the {plural(len(posts), 'newest post')} "
                f"{'stands' if len(posts) == 1 else 'stand'} in to show what a digest looks like. "
                "No subscriber gets this.")
        html = re.sub(r"(<body\b[^>]*>)", lambda m: m.group(1) + SAMPLE_BANNER.format(note=note), html, count=1)
        text = f"[{note}]\n\n{text}"
    out_dir.mkdir(parents=True, exist_ok=True)
    html_path, text_path = out_dir / "digest.html", out_dir / "digest.txt"
    html_path.write_text(html, encoding="utf-8")
    text_path.write_text(text, encoding="utf-8")
    return report, [html_path, text_path]


def _preview_topics(config: Config, names: tuple[str, ...]) -> tuple[str, ...]:
    """`preview --topics`: the names as slugs, or a ConfigError naming an unknown one."""
    # lazy: newsletter.topics imports the state (SQLAlchemy, ~0.25 s)
    from .newsletter import topics

    with open_state(config) as state:
        available = topics.offered(config, state)
    return topics.parse_choice(names, available, "preview --topics")


def check(config: Config, now: datetime | None = None) -> Report:
    """`publisher check`: validate the config (including what only a send or the web endpoint
    would use: SMTP settings, DKIM key, templates, subject), the posts and the written feeds.
    Changes nothing."""
    # lazy: feeds/ (feedgen, lxml: ~35 ms)
    from .feeds import check_feeds, describe_feeds

    now = now or now_utc()
    report = Report()
    loaded = load_posts(config, now)
    report.problems.extend(loaded.problems)
    site = SiteIndex(config, loaded.posts)
    for post in loaded.posts:  # engine syntax, links and images: every warning, each time
        for warning in site.prepare(post).warnings:
            if acknowledged(config, warning):
                report.lines.append(f"{warning} (acknowledged in content.ignore_warnings)")
            else:
                report.problems.append(warning)
    check_mail_settings(config, loaded.posts[:1], now)
    report.lines.extend(sanitizing_report(config, loaded.posts + loaded.held_back, site))
    report.problems.extend(check_feeds(config.output_dir))
    # lazy: newsletter.bounces imports the state (SQLAlchemy, ~0.25 s)
    from .newsletter.bounces import check_lines  # VERP's MX/alias, the bounce mailbox
    report.lines.extend(check_lines(config))
    _check_state_file(config, report)
    report.problems.extend(_not_ready_to_publish(config))
    report.lines.append(
        f"config OK; {plural(len(loaded.posts), 'published post')}, {len(loaded.held_back)} held back, "
        f"{len(loaded.problems)} skipped; feeds in {config.feeds.output_dir} checked"
    )
    report.lines.extend(describe_feeds(config.output_dir))
    return report


def sanitizing_report(config: Config, posts: list[Post], site: SiteIndex | None = None) -> list[str]:
    """One line per post whose HTML loses something to sanitising on its way to readers."""


    # Only raw HTML, a scriptable URL or a template tag (a shortcode may become an iframe) can
    # give sanitising something to remove: other posts are not even rendered.
    could_hold = re.compile(r"<|\{[{%]|(?:javascript|vbscript|data):", re.I)
    lines = []
    for post in sorted(posts, key=lambda p: p.source):
        if not could_hold.search(post.body):
            continue
        removed = removed_by_sanitizing(render_html(post, config, site))
        if removed:
            lines.append(f"{post.source}: made safe for readers: removed {', '.join(removed)}")
    return lines


def _check_state_file(config: Config, report: Report) -> None:
    """`check`: an existing SQLite state database is opened and checked page by page (a
    missing one is left missing: check changes nothing)."""

    path = cache.sqlite_path(config)
    if path is None or not Path(path).exists():
        return
    try:
        with open_state(config) as state:
            state.check_integrity()
    except StateError as e:
        report.problems.append(str(e))


def _not_ready_to_publish(config: Config) -> list[str]:
    """`check`: what a config can hold that no other check refuses, yet makes every feed or
    mail wrong: init's placeholder address, subscribers with no newsletter.from to mail them
    from, and a state database (addresses, tokens) committed to git."""
    problems = []
    if config.site.url == PLACEHOLDER_URL or config.site.url.startswith(PLACEHOLDER_URL + "/"):  # (+ baseurl)
        problems.append(f"{config.path}: site.url: still init's placeholder {config.site.url!r}: "
                        f"set your blog's address (every link in the feeds and mail starts with it)")
    path = cache.sqlite_path(config)
    exists = path is not None and Path(path).exists()
    if not config.newsletter.from_ and (path is None or exists):
        with open_state(config) as state:
            active = state.count_subscribers()
        if active:
            problems.append(f"{config.path}: newsletter.from: empty, and {plural(active, 'subscriber')} "
                            f"waiting for mail: set it, e.g. \"Blog <news@your-domain>\"")
    if exists and _tracked_by_git(Path(path)):
        problems.append(f"{path}: the state database (subscribers' addresses and tokens) is tracked "
                        f"by git: `git rm --cached` it and add it to .gitignore")
    return problems


def _tracked_by_git(path: Path) -> bool:
    """Whether git tracks `path` (False where git or a repository is missing)."""
    import subprocess  # lazy: check alone asks git

    try:
        done = subprocess.run(["git", "ls-files", "--error-unmatch", path.name], cwd=path.parent,
                              capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def check_mail_settings(config: Config, sample: list[Post], now: datetime) -> None:
    """Raise ConfigError for anything that would fail the next send or page: SMTP settings,
    templates (the site's overrides included), the subject template and the headers."""
    # lazy: the newsletter modules and web.py (SQLAlchemy ~0.25 s, Jinja2 ~30 ms), for `check` alone
    from .newsletter.digest import Recipient, render_digest
    from .newsletter.message import build_message
    from .newsletter.sending import check_send_settings
    from .web import check_templates, template_environment

    check_send_settings(config, need_from=False)
    check_templates(config, template_environment(config))
    if config.newsletter.archive:
        archive.check_templates(config)
    if sample and config.newsletter.from_:
        rendered = render_digest(sample, config, kind="digest")
        build_message(rendered, Recipient("check@example.org", "", "check"), config,
                      message_key="check", date=now)
