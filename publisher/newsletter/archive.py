"""Sent digests and alerts as public web pages: the newsletter's archive.

Every digest or alert is recorded with a snapshot of its posts' public fields (title, link,
summary, date, author, image; never anything about a subscriber), and becomes a page:

    {feeds.output_dir}/newsletter/<n>/index.html   one issue; n is its digest's number
    {feeds.output_dir}/newsletter/index.html       every issue, newest first
    {feeds.output_dir}/newsletter/rss.xml          RSS 2.0 of the issues

The pages are rendered from the state, not from the posts of today, so `publisher build`
writes them again as they were (after a deleted output folder, say), and from the site's
templates/ first (archive_issue.html, archive_index.html), like every other page. Writing
goes through output.write_files: atomic, and only the files whose bytes changed.

The mail links to its page ("View in browser"). The digest's number is only known once it is
recorded, after rendering, so the rendered mail holds TOKEN_VIEW_URL, and the send fills
it in once per digest (fill_view_url), before the per-subscriber substitution.
"""

from __future__ import annotations

import hashlib
import html as html_lib
import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .. import __version__
from ..cache import CacheStorage, stat_files
from ..cache_sqlite3 import ArchivedIssue
from ..config import Config
from ..content import Post
from ..output import write_files
from ..templating import BUNDLED_TEMPLATES, format_date  # (the mail's date format)

log = logging.getLogger(__name__)

ARCHIVE_DIR = "newsletter"  # under feeds.output_dir, served at {site.url}/newsletter/
INDEX_FILE = f"{ARCHIVE_DIR}/index.html"
RSS_FILE = f"{ARCHIVE_DIR}/rss.xml"
ISSUE_TEMPLATE = "archive_issue.html"
INDEX_TEMPLATE = "archive_index.html"
TEMPLATES = (ISSUE_TEMPLATE, INDEX_TEMPLATE)

# Where the issue's page link goes in a rendered digest until its number is known. Letters,
# '_' and '@' only, like digest.py's placeholders: premailer keeps it byte for byte.
TOKEN_VIEW_URL = "@@PUBLISHER_VIEW_URL@@"

# The public fields of a post that an issue's page shows; nothing else is recorded.
_FIELDS = ("title", "url", "summary", "author", "image", "featured")


def issue_url(config: Config, number: int) -> str:
    return f"{config.site.url}/{ARCHIVE_DIR}/{number}/"


def index_url(config: Config) -> str:
    return f"{config.site.url}/{ARCHIVE_DIR}/"


def rss_url(config: Config) -> str:
    return f"{config.site.url}/{RSS_FILE}"


def view_url(config: Config) -> str | None:
    """What render_digest gets as `view_url` for a digest about to be recorded."""
    return TOKEN_VIEW_URL if config.newsletter.archive else None


def fill_view_url(text: str, config: Config, number: int) -> str:
    """A recorded digest's HTML or text with its page's URL in place of TOKEN_VIEW_URL."""
    if TOKEN_VIEW_URL not in text:
        return text
    return text.replace(TOKEN_VIEW_URL, issue_url(config, number))


def snapshot(posts: list[Post], order: tuple[str, ...]) -> str:
    """The posts' public fields as JSON, in `order` (the mail's: RenderedDigest.post_ids),
    for State.create_digest(archive=...)."""
    by_id = {post.id: post for post in posts}
    items = []
    for post_id in order:
        post = by_id[post_id]
        item: dict[str, Any] = {name: getattr(post, name) for name in _FIELDS}
        item["published"] = post.published.isoformat()
        items.append(item)
    return json.dumps(items, ensure_ascii=False, sort_keys=True)


@dataclass(frozen=True)
class _Issue:
    """What the templates see as `issue`."""

    number: int
    kind: str  # digest | alert
    subject: str
    date: str  # the day it went out, in newsletter.timezone
    published: datetime
    url: str
    posts: tuple[dict[str, Any], ...]  # the snapshot's fields, plus `date`


def _issues(config: Config, rows: list[ArchivedIssue]) -> list[_Issue]:
    issues = []
    for row in rows:
        posts = []
        for item in json.loads(row.posts):
            published = datetime.fromisoformat(item["published"])
            posts.append({**item, "published": published, "date": format_date(published, config.tz)})
        issues.append(_Issue(number=row.number, kind=row.kind, subject=row.subject,
                             date=format_date(row.created_at, config.tz), published=row.created_at,
                             url=issue_url(config, row.number), posts=tuple(posts)))
    return issues


def render_archive(config: Config, rows: list[ArchivedIssue]) -> dict[str, bytes]:
    """{path under feeds.output_dir: bytes} of every issue's page, the index and the feed;
    {} for no issues. `rows` newest first (State.archived_issues)."""
    if not rows:
        return {}
    # lazy: Jinja2 (~30 ms), only when a page is written
    from jinja2 import TemplateError

    from ..templating import new_environment, page_context, template_problem

    env = new_environment(config)
    env.bytecode_cache = _compiled_templates()
    issues = _issues(config, rows)
    base = {**page_context(config), "index_url": index_url(config), "rss_url": rss_url(config)}

    def render(name: str, context: dict[str, Any]) -> bytes:
        try:
            return env.get_template(name).render({**base, **context}).encode("utf-8")
        except TemplateError as e:
            raise template_problem(config, name, e) from e

    files = {f"{ARCHIVE_DIR}/{issue.number}/index.html":
             render(ISSUE_TEMPLATE, {"issue": issue, "page_title": issue.subject}) for issue in issues}
    files[INDEX_FILE] = render(INDEX_TEMPLATE, {"issues": issues, "page_title": "Newsletter archive"})
    files[RSS_FILE] = _render_rss(config, issues)
    return files


_COMPILED = None  # _compiled_templates(), made once Jinja2 is imported
_COMPILED_MAX = 32  # templates: the archive's and what they include; a site edits a few


def _compiled_templates():
    """A Jinja2 bytecode cache in this process's memory, for the fresh environment that each
    render_archive takes: a send renders the archive twice (check_issue, then write_archive),
    and compiling its templates was ~7 ms of each render, about 1% of a send's start. A
    template is still looked up and read each time (an override added or edited in the
    site's templates/ is seen as before); only its compiled code is reused, and only for the
    same file with the same source (Jinja's checksum of it). Every environment given this
    cache comes from templating.new_environment, so one set of options compiled the code."""
    global _COMPILED
    if _COMPILED is None:
        from jinja2 import BytecodeCache  # lazy: Jinja2 (~30 ms), as in render_archive

        class InMemory(BytecodeCache):
            def __init__(self) -> None:
                self.code: dict[str, tuple[str, Any]] = {}  # key: (source checksum, code)

            def load_bytecode(self, bucket) -> None:
                found = self.code.get(bucket.key)
                if found is not None and found[0] == bucket.checksum:
                    bucket.code = found[1]

            def dump_bytecode(self, bucket) -> None:
                if len(self.code) >= _COMPILED_MAX and bucket.key not in self.code:
                    self.code.clear()  # never a growing cache (a long `publisher schedule`)
                self.code[bucket.key] = (bucket.checksum, bucket.code)

        _COMPILED = InMemory()
    return _COMPILED


def _render_rss(config: Config, issues: list[_Issue]) -> bytes:
    # lazy: feedgen and feeds/ (~35 ms), only when the archive feed is written
    from feedgen.feed import FeedGenerator

    from ..feeds import hex_references  # the feeds' RSS text escaping, for the validator

    fg = FeedGenerator()
    # feedgen takes the first rel="self" for atom:link and the last link for <link>.
    fg.link(href=rss_url(config), rel="self", type="application/rss+xml")
    fg.link(href=index_url(config), rel="alternate", type="text/html")
    fg.title(f"{config.site.title}: newsletter archive")
    fg.description(html_lib.escape(f"Every issue of the {config.site.title} newsletter", quote=False))
    fg.language(config.site.language)
    fg.generator("publisher", version=__version__)
    newest = issues[0].published  # the feed's date is its newest issue's: rebuilds are byte-stable
    fg.lastBuildDate(newest)
    fg.pubDate(newest)
    for issue in issues:  # newest first; feedgen prepends unless told to append
        fe = fg.add_entry(order="append")
        fe.title(issue.subject)
        fe.link(href=issue.url)
        fe.guid(issue.url, permalink=True)
        fe.pubDate(issue.published)
        links = "".join(f'<li><a href="{html_lib.escape(p["url"])}">{html_lib.escape(p["title"])}</a></li>'
                        for p in issue.posts)
        fe.description(f"<ul>{links}</ul>")
    return hex_references(fg.rss_str(pretty=True))


# The meta key under which write_archive remembers what it last wrote.
WRITTEN_KEY = "archive_written"
# What the pages are made of besides the issues: these templates (the site's, else the
# bundled ones), this code, and the pages' context (templating.page_context) and date format.
_TEMPLATE_FILES = (*TEMPLATES, "_archive.css.html", "web_base.html")
_CODE_FILES = ("newsletter/archive.py", "newsletter/digest.py", "templating.py", "feeds/render.py",
               "output.py", "__init__.py")


def _fingerprint(config: Config, rows: list[ArchivedIssue]) -> str:
    """Equal fingerprints, equal archive bytes."""

    package = BUNDLED_TEMPLATES.parent
    h = hashlib.sha256()
    for name in _CODE_FILES:
        h.update(hashlib.sha256((package / name).read_bytes()).digest())
    for name in _TEMPLATE_FILES:
        for folder in (config.templates_dir, BUNDLED_TEMPLATES):
            try:
                h.update(hashlib.sha256((folder / name).read_bytes()).digest())
                break
            except OSError:
                continue
    site = config.site
    h.update(json.dumps([site.title, site.url, site.description, site.language, config.web_url,
                         config.newsletter.timezone], ensure_ascii=False).encode("utf-8", "surrogatepass"))
    for row in rows:
        h.update(json.dumps([row.number, row.kind, row.subject, row.created_at.isoformat(), row.posts],
                            ensure_ascii=False).encode("utf-8", "surrogatepass"))
    return h.hexdigest()


@dataclass
class ArchiveWrite:
    """What write_archive did: paths under feeds.output_dir."""

    written: list[str]
    unchanged: list[str]


def write_archive(config: Config, state: CacheStorage) -> ArchiveWrite | None:
    """Write every recorded issue's page, the index and the feed (only the files whose bytes
    changed); None when newsletter.archive is off: then nothing is written, and nothing that
    is there is removed. When no issue, template, setting or code changed since the last
    write and its files are there untouched, nothing is even rendered. Raises ConfigError
    for a broken template, PublisherError for a disk that refuses."""
    if not config.newsletter.archive:
        return None

    rows = state.archived_issues()
    if not rows:
        return ArchiveWrite(written=[], unchanged=[])  # no issue yet: no page, no import
    fingerprint = _fingerprint(config, rows)
    try:
        last = json.loads(state.get_meta(WRITTEN_KEY) or "{}")
    except ValueError:
        last = {}
    files_then = last.get("files") if isinstance(last, dict) else None
    if (isinstance(files_then, dict) and files_then and last.get("fingerprint") == fingerprint
            and stat_files(config.output_dir, files_then) == files_then):
        return ArchiveWrite(written=[], unchanged=sorted(files_then))
    files = render_archive(config, rows)
    report = write_files(files, config.output_dir)
    state.set_meta(WRITTEN_KEY, json.dumps(
        {"fingerprint": fingerprint, "files": stat_files(config.output_dir, files)}, sort_keys=True))
    if report.written:
        log.info("newsletter archive: %d files written, %d unchanged",
                 len(report.written), len(report.unchanged))
    return ArchiveWrite(written=report.written, unchanged=report.unchanged)


def check_issue(config: Config, *, kind: str, subject: str, posts: str, now: datetime) -> None:
    """Render an issue about to be recorded (as issue 0, written nowhere): ConfigError naming
    the template of a page that could not be written once it is."""

    render_archive(config, [ArchivedIssue(number=0, kind=kind, subject=subject, created_at=now, posts=posts)])


def check_templates(config: Config) -> None:
    """Compile the archive's templates (the site's overrides included): ConfigError naming
    the file and line of a broken one."""
    # lazy: Jinja2 (~30 ms), for `check` alone
    from jinja2 import TemplateError

    from ..templating import new_environment, template_problem

    env = new_environment(config)
    for name in TEMPLATES:
        try:
            env.get_template(name)
        except TemplateError as e:
            raise template_problem(config, name, e) from e


__all__ = ["ARCHIVE_DIR", "TOKEN_VIEW_URL", "check_issue", "check_templates", "fill_view_url",
           "index_url", "issue_url", "render_archive", "rss_url", "snapshot", "view_url",
           "write_archive"]
