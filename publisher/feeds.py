"""Posts -> RSS 2.0, Atom 1.0 and JSON Feed 1.1 files, plus a thin, atomic writer and a checker.

`render_feeds` is pure: it returns {relative path: bytes} and depends on nothing but its
arguments, so rebuilding an unchanged site gives byte-identical files (a feed's own date is
its newest item's, never now()). `write_feeds` is the only function here that touches the
disk: it replaces a file atomically and only when its bytes changed, so feed readers polling
with If-Modified-Since see an unchanged site as unchanged. `check_feeds` only reads.

Everything written must pass the W3C Feed Validation Service without errors or warnings; the
comments below say which of its rules shaped a choice.
"""

from __future__ import annotations

import hashlib
import html as html_lib
import html.entities as html_entities
import json
import logging
import re
import secrets
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Callable, MutableMapping
from urllib.parse import quote

from feedgen.ext.base import BaseEntryExtension, BaseExtension
from feedgen.version import version_str as _FEEDGEN_VERSION
from feedgen.feed import FeedGenerator
from lxml import etree

from . import __version__
from .config import Config
from .content import Post, clean_text, parallel, slugify
from .content.sanitize import sanitize_html
from .output import (WriteReport, remove_orphaned_temp_files, remove_stale, remove_stale_archives,
                     write_files)

log = logging.getLogger(__name__)

RSS_FILE = "rss.xml"
ATOM_FILE = "atom.xml"
JSON_FILE = "feed.json"
FEED_FILES = (RSS_FILE, ATOM_FILE, JSON_FILE)
TAGS_DIR = "tags"
CATEGORIES_DIR = "categories"  # a category's feeds: categories/<slug>/, as a tag's are under tags/
TERM_DIRS = (TAGS_DIR, CATEGORIES_DIR)

JSON_FEED_VERSION = "https://jsonfeed.org/version/1.1"
ATOM_NS = "http://www.w3.org/2005/Atom"
_MIME = {RSS_FILE: "application/rss+xml", ATOM_FILE: "application/atom+xml",
         JSON_FILE: "application/feed+json"}

# A feed with no items still needs a date (Atom requires <updated>). It must not be now(), or
# an empty site would rewrite its feeds on every build. The Unix epoch would be the obvious
# constant, but the W3C validator warns that any date before 1990 is implausible, so the
# constant is the first instant of 2000 instead.
EMPTY_FEED_DATE = datetime(2000, 1, 1, tzinfo=timezone.utc)

_BUILD_HINT = "run `publisher build` to write the feeds"

# What the validator accepts as an e-mail address (feedvalidator's addr_spec); an address it
# would reject is left out of the feeds rather than making them invalid.
_EMAIL = re.compile(
    r"[A-Z0-9_\-+.'!#$%&*/=?^`{|}~]+@(?:[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.|(?:[A-Z0-9-]+\.)+)"
    r"[A-Z0-9][-A-Z0-9]*",
    re.I,
)
# An absolute IRI: a scheme, a colon, and no characters that RFC 3987 forbids.
_ABSOLUTE_IRI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:[^\s<>\"{}|\\^`]+")


# --- rendering --------------------------------------------------------------------------

@dataclass(frozen=True)
class _Feed:
    """One feed set (rss.xml, atom.xml and feed.json in one folder) and what it holds."""

    folder: str  # "" for the site's feeds, "tags/<slug>/" for a tag's, "<lang>/" for a language's
    title: str
    description: str  # may be empty
    items: tuple[Post, ...]  # newest first, already limited
    archive: "_History | None" = None  # RFC 5005 links, with feeds.archive
    language: str = ""  # "" = site.language

    def path(self, name: str) -> str:
        return self.folder + name


def render_feeds(
    posts: list[Post], config: Config, html_for: Callable[[Post], str],
    select: Callable[[list[_Feed]], list[_Feed]] | None = None,
    fragments: MutableMapping[str, bytes] | None = None,
    sanitized: bool = False,
) -> dict[str, bytes]:
    """Every feed of the site as {path relative to the output folder: bytes}.

    `posts` are the published posts (content.load_posts(...).posts). The result holds rss.xml,
    atom.xml and feed.json of the posts in site.language, and the same three under
    tags/<slugify(tag)>/ for every tag (tags that differ only in case share a feed), under
    categories/<slugify(category)>/ for every category, and under <lang>/ for the posts of
    each other language (translations: no tag or category feeds of their own). config.feeds.limit applies to each feed on its own.
    `html_for` (a cached Markdown renderer, the expensive part) is called at most once per post,
    and only for posts that appear in some feed. `select`, given every feed set, returns those
    to render (a caller that knows which are unchanged on disk); a feed set's bytes depend only
    on its folder, title, description and items (and the config). `fragments`, a mapping
    the caller may keep across builds, holds each entry's bytes per format (see _Entries);
    by default the entries are shared within this call only. `sanitized=True`: `html_for`
    returns what safe_html makes of a post's HTML (cache.CachedRenderer's does)."""
    # Sort here rather than trust the caller: output must not depend on the input's order.
    ordered = sorted(posts, key=lambda p: (p.published, p.url), reverse=True)
    site_title = _one_line(config.site.title)
    site_description = _one_line(config.site.description)

    # The site's language in the main feeds; each other language in its own, under <lang>/.
    main = [p for p in ordered if not p.is_translation(config)]
    feeds = [_Feed("", site_title, site_description, _limit(main, config.feeds.limit))]
    everything = {"": main}  # folder -> every post of that feed, for the archive pages
    for slug, (name, tagged) in sorted(_group_by_tag(main).items()):
        if config.feeds.archive_tags:
            everything[f"{TAGS_DIR}/{slug}/"] = tagged
        feeds.append(
            _Feed(
                folder=f"{TAGS_DIR}/{slug}/",
                title=f"{site_title} — {name}",
                description=f"Posts tagged “{name}” on {site_title}",
                items=_limit(tagged, config.feeds.limit),
            )
        )
    for slug, (name, filed) in sorted(_group_by_tag(main, "categories").items()):
        feeds.append(_Feed(folder=f"{CATEGORIES_DIR}/{slug}/", title=f"{site_title} — {name}",
                           description=f"Posts in “{name}” on {site_title}",
                           items=_limit(filed, config.feeds.limit)))
    for lang in sorted({p.lang.lower() for p in ordered} - {""}):
        translated = [p for p in ordered if p.lang.lower() == lang and p.is_translation(config)]
        if translated:
            feeds.append(_Feed(folder=f"{lang}/", title=f"{site_title} ({lang})",
                               description=site_description,
                               items=_limit(translated, config.feeds.limit), language=lang))

    if config.feeds.archive:
        feeds = _with_archives(feeds, everything, config)

    rendered: dict[int, str] = {}  # id(post) -> HTML; the posts outlive this call, so ids are unique

    def content_html(post: Post) -> str:
        key = id(post)
        if key not in rendered:
            rendered[key] = html_for(post) if sanitized else safe_html(html_for(post))
        return rendered[key]

    if select is not None:
        feeds = select(feeds)
    entries = _Entries(config, content_html, {} if fragments is None else fragments)
    files = entries.render(feeds)
    log.debug("rendered %d feed files (%d tags, %d posts rendered to HTML, %d entries "
              "serialised)", len(files), len(feeds) - 1, len(rendered), entries.built)
    return files


class _Entries:
    """Each entry of a build serialised once per format, then shared by every feed it is in.

    A post is in the site's feed, its tags' and categories' feeds and archive pages, and each
    holds it in three formats: building it with feedgen once per feed cost more than the rest
    of the feed writing together. feedgen still writes every byte: the entries a build needs
    are added to one document per format, and that document is cut at markers placed between
    them, so each fragment is exactly what feedgen writes for that entry in any feed set
    (entries are the last children of <channel> and <feed>, at a fixed depth, and use only
    namespaces every feed declares the same way). tests/test_feeds_golden.py holds the proof.

    `store` maps a key to an entry's bytes. Its keys say everything the bytes depend on (the
    format, the post's fields and HTML, its Atom date within the feed, the config's part,
    this code's version), so a store may be kept across builds."""

    VERSION = "1"  # change with any change to what an entry looks like

    def __init__(self, config: Config, content_html: Callable[[Post], str],
                 store: MutableMapping[str, bytes]):
        self.config = config
        self.content_html = content_html
        self.store = store
        self.built = 0  # entries serialised by this build
        self._post_keys: dict[int, str] = {}
        author = _site_author(config)
        self._base = "\0".join((self.VERSION, __version__, _FEEDGEN_VERSION, etree.__version__,
                                 config.site.url, *author, config.feeds.podcast or ""))

    def key(self, fmt: str, post: Post, updated: datetime | None = None) -> str:
        post_key = self._post_keys.get(id(post))
        if post_key is None:
            h = hashlib.sha256(self._base.encode("utf-8", "surrogatepass"))
            for part in (repr(post), self.content_html(post)):
                h.update(b"\0" + part.encode("utf-8", "surrogatepass"))
            post_key = self._post_keys[id(post)] = h.hexdigest()
        return f"{fmt} {post_key} {updated.isoformat() if updated else ''}"

    def get(self, fmt: str, post: Post, updated: datetime | None = None) -> bytes:
        return self.store[self.key(fmt, post, updated)]

    def render(self, feeds: list[_Feed]) -> dict[str, bytes]:
        """Every file of `feeds`. Each format is one job: serialise the entries the store
        does not hold yet, and write each feed's document without its entries (its
        skeleton, _SKELETON); each file is then its skeleton with its entries spliced in
        (_FILL). With many entries (a cold build: ~300 a format) this process and a forked
        worker share the jobs (content/parallel.py): JSON Feed and Atom here, RSS there,
        about equal halves (the order below gives the worker the last one)."""
        jobs: list[tuple[str, dict[str, tuple[Post, datetime | None]]]] = []
        for fmt in (JSON_FILE, ATOM_FILE, RSS_FILE):
            needed: dict[str, tuple[Post, datetime | None]] = {}
            for feed in feeds:
                dates = _distinct_updated(feed.items) if fmt == ATOM_FILE else {}
                for post in feed.items:
                    updated = dates.get(id(post))
                    key = self.key(fmt, post, updated)
                    if key not in self.store and key not in needed:
                        needed[key] = (post, updated)
            jobs.append((fmt, needed))
            self.built += len(needed)
        run = partial(self._run, feeds)
        # Worth a fork from as many posts as a render split needs, each in three formats
        # (a cold build: ~900 entries; after one new post, ~170 are cut here faster).
        if sum(len(needed) for _fmt, needed in jobs) >= parallel.MIN_RENDERS * len(FEED_FILES):
            done = parallel.split_map(run, jobs, min_items=2, chunk=1)
        else:
            done = [run(job) for job in jobs]
        skeletons: dict[str, list[bytes]] = {}
        for (fmt, needed), (pieces, skeletons[fmt]) in zip(jobs, done):
            self.store.update(zip(needed, pieces))
        files: dict[str, bytes] = {}
        for n, feed in enumerate(feeds):
            for fmt in FEED_FILES:
                files[feed.path(fmt)] = _FILL[fmt](skeletons[fmt][n], feed, self)
        return files

    def _run(self, feeds: list[_Feed], job: tuple[str, dict[str, tuple[Post, datetime | None]]],
             ) -> tuple[list[bytes], list[bytes]]:
        """One format's job: its new entries' bytes, and every feed's skeleton."""
        fmt, needed = job
        if not needed:
            pieces = []
        elif fmt == JSON_FILE:
            pieces = [_json_item(post, self.config, self.content_html(post))
                      for post, _updated in needed.values()]
        else:
            pieces = self._cut(fmt, list(needed.values()))
        return pieces, [_SKELETON[fmt](feed, self.config) for feed in feeds]

    def _cut(self, fmt: str, wanted: list[tuple[Post, datetime | None]]) -> list[bytes]:
        """The bytes feedgen writes for each entry, from one document holding them all."""
        config = self.config
        holder = _Feed("", "entries", "", tuple(post for post, _updated in wanted))
        if fmt == RSS_FILE:
            fg = _rss_channel(holder, config)
            for post, _updated in wanted:
                _rss_entry(fg, post, config, self.content_html(post))
            root, doc = fg._create_rss()  # (feedgen's own; rss_str is tostring of it)
            parent = root.find("channel")
            entry_tag = "item"
        else:
            fg = _atom_channel(holder, config)
            for post, updated in wanted:
                _atom_entry(fg, post, config, self.content_html(post), updated)
            root, doc = fg._create_atom()
            parent = root
            entry_tag = "entry"
        marker = "cut-" + secrets.token_hex(8)  # no post can hold it
        elements = [child for child in parent if child.tag == entry_tag]
        if len(elements) != len(wanted):
            raise AssertionError(f"feedgen wrote {len(elements)} {entry_tag}s of {len(wanted)}")
        for element in elements:
            element.addprevious(etree.Comment(marker))
        parent.append(etree.Comment(marker))
        xml = etree.tostring(doc, pretty_print=True, encoding="UTF-8", xml_declaration=True)
        # Each piece ends with the marker's indentation, which is not the entry's.
        pieces = [piece.rstrip(b" ") for piece in xml.split(f"<!--{marker}-->\n".encode())[1:-1]]
        return [_hex_references(piece) if fmt == RSS_FILE else piece for piece in pieces]


def _distinct_updated(posts: tuple[Post, ...]) -> dict[int, datetime]:
    """{id(post): its atom:updated}. Two entries of a feed with the same atom:updated make the
    validator warn (DuplicateUpdated), and posts published at the same second are common
    (imports, generators): the second and later of a group, by URL, are dated 1, 2, ...
    microseconds later. Decided within the feed, so that its bytes depend on its items only."""
    groups: dict[datetime, list[Post]] = {}
    for post in posts:
        groups.setdefault(post.modified, []).append(post)
    updated: dict[int, datetime] = {}
    for date, group in groups.items():
        for n, post in enumerate(sorted(group, key=lambda p: p.url)):
            updated[id(post)] = date + timedelta(microseconds=n)
    return updated


def _limit(posts: list[Post], limit: int) -> tuple[Post, ...]:
    return tuple(posts[:limit] if limit else posts)


def _group_by_tag(posts: list[Post], field: str = "tags") -> dict[str, tuple[str, list[Post]]]:
    """{tag slug: (display name, posts newest first)}. Tags are compared by slug, which is
    case-insensitive; a tag's display name is its spelling in the newest post using it.
    field="categories": the same for categories."""
    folder = TAGS_DIR if field == "tags" else CATEGORIES_DIR
    tagged: dict[str, list[Post]] = {}
    spellings: dict[str, dict[str, str]] = {}  # slug -> {lowercased tag: first spelling seen}
    for post in posts:
        slugs_of_post: set[str] = set()
        for tag in getattr(post, field):
            slug = slugify(tag)
            spellings.setdefault(slug, {}).setdefault(tag.lower(), tag)
            if slug not in slugs_of_post:
                slugs_of_post.add(slug)
                tagged.setdefault(slug, []).append(post)
    groups: dict[str, tuple[str, list[Post]]] = {}
    for slug, posts_of_tag in tagged.items():
        names = sorted(spellings[slug].values(), key=str.casefold)
        if len(names) > 1:
            # Different tags ("C" and "C++") can share a slug; they then share one feed.
            log.warning("%s %s share the feed folder %s/%s/", field,
                        ", ".join(repr(n) for n in names), folder, slug)
        name = " / ".join(names) if len(names) > 1 else names[0]
        groups[slug] = (name, posts_of_tag)
    return groups


def _one_line(text: str) -> str:
    # \s also matches U+0085 (NEL), which XML allows but the validator flags as a bad character.
    return re.sub(r"\s+", " ", clean_text(text)).strip()


def safe_html(html: str) -> str:
    """What a feed carries of a post's HTML: sanitised (content/sanitize.py: no scripts, event
    handlers or javascript: URLs reach a reader) and cleaned of what XML cannot hold."""
    return clean_text(sanitize_html(html)).replace("\x85", "\n")


# An HTML end tag, or something a reader would decode as a character reference ("&amp;",
# "&#38;"). feedparser and most readers treat such text as HTML, and the validator warns.
_HTML_END_TAG = re.compile(r"</\w+>")
_REFERENCE = re.compile(r"&(#?\w+)")


def _looks_like_html(text: str) -> bool:
    if _HTML_END_TAG.search(text):
        return True
    return any(name in html_entities.name2codepoint or name == "apos" or not name.isalpha()
               for name in _REFERENCE.findall(text))


def _as_text(text: str) -> tuple[str, bool]:
    """(value, is_html) for a plain-text field in a format where readers guess between text
    and HTML. Text that would be misread as HTML ("<b>bold</b>", "AT&amp;T") is escaped to HTML
    that shows it literally; everything else stays plain text, as readers expect."""
    if _looks_like_html(text):
        return html_lib.escape(text, quote=False), True
    return text, False


def _public_url(config: Config, rel: str) -> str:
    """The absolute URL of a file in the output folder, which is served at the site's root."""
    return config.site.url + "/" + quote(rel, safe="/")


def _safe_url(url: str) -> str:
    """Percent-encode what a URL may not hold (spaces, non-ASCII), as a front-matter image
    path such as "img/my photo.png" would; characters already legal are left alone."""
    return quote(url, safe=":/?#[]@!$&'()*+,;=%~")


def _home_url(config: Config) -> str:
    return config.site.url + "/"


def _feed_date(feed: _Feed) -> datetime:
    """A feed's own date: its newest item's modification, so unchanged input gives unchanged output."""
    return max((p.modified for p in feed.items), default=EMPTY_FEED_DATE)


def _valid_email(address: str) -> str:
    address = address.strip()
    return address if _EMAIL.fullmatch(address) else ""


def _site_author(config: Config) -> tuple[str, str]:
    return _one_line(config.site.author.name), _valid_email(clean_text(config.site.author.email))


def _post_author(post: Post, config: Config) -> tuple[str, str]:
    """(name, e-mail) of a post, falling back to the site's author. An address the validator
    would reject is dropped rather than published."""
    if post.author or post.author_email:
        return _one_line(post.author), _valid_email(post.author_email)
    return _site_author(config)


def _global_id(post: Post, config: Config) -> str:
    """The id for RSS <guid> and atom:id, which must be globally unique (Atom: an absolute IRI).
    A front-matter `id` such as "1234" is neither, so it is mapped to a name-based UUID: stable
    for as long as the site URL and the id stay the same. JSON Feed carries the id as written."""
    if _ABSOLUTE_IRI.fullmatch(post.id):
        return post.id
    return "urn:uuid:" + str(uuid.uuid5(uuid.NAMESPACE_URL, config.site.url + "#" + post.id))


class _HtmlText(BaseExtension):
    """A feedgen extension that adds type="html" to the Atom text constructs (title, subtitle,
    summary) whose text _as_text escaped to HTML; feedgen itself never writes that attribute."""

    def __init__(self) -> None:
        self.html_elements: set[str] = set()

    def extend_atom(self, element):
        for child in element:
            if child.tag in self.html_elements:
                child.set("type", "html")
        return element


class _HtmlTextEntry(_HtmlText, BaseEntryExtension):
    pass


def _new_generator(feed: _Feed, config: Config, own_file: str) -> tuple[FeedGenerator, datetime]:
    fg = FeedGenerator()
    fg.id(_public_url(config, feed.path(ATOM_FILE)))
    # feedgen copies the LAST link into RSS <link>, and the first rel="self" into atom:link:
    # self first, the site last.
    fg.link(href=_public_url(config, feed.path(own_file)), rel="self", type=_MIME[own_file])
    links = _history_links(feed, config, own_file)
    for rel, href in links:
        fg.link(href=href, rel=rel)
    fg.link(href=_home_url(config), rel="alternate", type="text/html")
    fg.language(feed.language or config.site.language)
    fg.generator("publisher", version=__version__)
    date = _feed_date(feed)
    fg.updated(date)  # atom:updated and RSS lastBuildDate; feedgen's default would be now()
    fg.load_extension("media")  # post.image as media:content / media:thumbnail
    fg.register_extension("html_text", _HtmlText, _HtmlTextEntry, atom=True, rss=False)
    if links or feed.archive is not None:
        fg.register_extension("history", _HistoryExtension, None, atom=True, rss=True)
        fg.history.links = links
        fg.history.archived = feed.archive is not None and feed.archive.is_archive
    _set_face(fg, config, own_file)
    if any(post.enclosure for post in feed.items):
        fg.register_extension("enclosure_ext", BaseExtension, _EnclosureEntry, atom=True, rss=True)
    return fg, date


def _add_entry(fg, post: Post, content_html: str, updated: datetime | None = None):
    # feedgen PREPENDS by default; posts come newest first, and must stay so.
    fe = fg.add_entry(order="append")
    title, title_is_html = _as_text(post.title)
    fe.title(title)
    if title_is_html:
        fe.html_text.html_elements.add("title")
    fe.link(href=post.url, rel="alternate", type="text/html")
    fe.published(post.published)
    fe.updated(updated or post.modified)  # feedgen's default would be now()
    for term in _terms(post):
        fe.category(term=term)
    fe.content(content_html, type="html")
    if post.image:
        fe.media.content(url=_safe_url(post.image), medium="image", group=None)
        fe.media.thumbnail(url=_safe_url(post.image), group=None)
    if post.enclosure:
        fe.enclosure_ext.enclosure = post.enclosure
    return fe


def _rss_skeleton(feed: _Feed, config: Config) -> bytes:
    return _hex_references(_rss_channel(feed, config).rss_str(pretty=True))


def _rss_fill(skeleton: bytes, feed: _Feed, entries: "_Entries") -> bytes:
    return _splice(skeleton, b"  </channel>\n</rss>\n",
                   [entries.get(RSS_FILE, post) for post in feed.items])


def _splice(skeleton: bytes, closing: bytes, fragments: list[bytes]) -> bytes:
    """A feed document serialised without its entries, with them put back where feedgen
    writes them: last, before the closing tags."""
    if not skeleton.endswith(closing):
        raise AssertionError(f"feedgen wrote a feed that does not end with {closing!r}")
    return skeleton[:-len(closing)] + b"".join(fragments) + closing


def _rss_channel(feed: _Feed, config: Config) -> FeedGenerator:
    """The RSS document of a feed set, without its items."""
    fg, date = _new_generator(feed, config, RSS_FILE)
    if config.feeds.podcast:
        _set_podcast(fg, feed, config)
    fg.title(_as_text(feed.title)[0])
    fg.load_extension("dc", atom=False, rss=True)  # dc:creator for authors without an address
    # RSS requires a channel description; the title is the only text sure to exist. Readers
    # take it for HTML (as they do an item's): escape the plain text, so it shows as written.
    fg.description(html_lib.escape(feed.description or feed.title, quote=False))
    fg.pubDate(date)
    name, email = _site_author(config)
    if email:
        fg.managingEditor(f"{email} ({name or email})")
    return fg


def _rss_entry(fg: FeedGenerator, post: Post, config: Config, content_html: str) -> None:
    fe = _add_entry(fg, post, content_html)
    guid = _global_id(post, config)
    fe.guid(guid, permalink=guid == post.url)
    # An item's <description> is HTML, and the summary is plain text: escape it, so that a
    # summary mentioning "<b>" shows it. An item whose Markdown yields no summary gets its
    # title, so that the full HTML still goes to content:encoded rather than here.
    fe.description(html_lib.escape(post.summary or post.title, quote=False), isSummary=True)
    name, email = _post_author(post, config)
    if email:
        # feedgen writes "email (name)", as RSS wants; the validator wants a name there too.
        fe.author(name=name or email, email=email)
    elif name:
        fe.dc.dc_creator(name)  # RSS <author> must hold an address; Dublin Core takes a name


# RSS elements that carry text (or, for <description>, short HTML) rather than markup.
_RSS_TEXT_ELEMENT = re.compile(
    rb"(<(title|description|category|dc:creator|author|managingEditor)>)([^<]*)(</\2>)")


def _hex_references(xml: bytes) -> bytes:
    """Write '&' and '<' in RSS text elements as hexadecimal character references.

    RSS 2.0 never said whether <title> is text or HTML. The RSS Advisory Board's profile asks
    for '&#x26;' and '&#x3C;' there, which tells a reader the characters are meant literally,
    and the W3C validator warns about the '&amp;'/'&lt;' that lxml writes. The parsed value is
    the same either way."""

    def fix(m: re.Match) -> bytes:
        text = m.group(3).replace(b"&amp;", b"&#x26;").replace(b"&lt;", b"&#x3C;")
        return m.group(1) + text + m.group(4)

    return _RSS_TEXT_ELEMENT.sub(fix, xml)


def _atom_skeleton(feed: _Feed, config: Config) -> bytes:
    return _atom_channel(feed, config).atom_str(pretty=True)


def _atom_fill(skeleton: bytes, feed: _Feed, entries: "_Entries") -> bytes:
    updated = _distinct_updated(feed.items)
    return _splice(skeleton, b"</feed>\n",
                   [entries.get(ATOM_FILE, post, updated[id(post)]) for post in feed.items])


def _atom_channel(feed: _Feed, config: Config) -> FeedGenerator:
    """The Atom document of a feed set, without its entries."""
    fg, _date = _new_generator(feed, config, ATOM_FILE)
    # Atom says text is text, but the validator (and readers) still take "<b>x</b>" in a
    # type="text" element for undeclared HTML: such text goes out as type="html", escaped.
    for setter, element, text in ((fg.title, "title", feed.title),
                                  (fg.subtitle, "subtitle", feed.description)):
        if text:
            value, is_html = _as_text(text)
            setter(value)
            if is_html:
                fg.html_text.html_elements.add(element)
    # Atom requires an author for every entry; the feed's covers entries without one, and the
    # site title stands in when the config names no author.
    name, email = _site_author(config)
    fg.author({"name": name or feed.title, **({"email": email} if email else {})})
    return fg


def _atom_entry(fg: FeedGenerator, post: Post, config: Config, content_html: str,
                updated: datetime) -> None:
    fe = _add_entry(fg, post, content_html, updated)
    fe.id(_global_id(post, config))
    if post.summary:
        summary, summary_is_html = _as_text(post.summary)
        fe.summary(summary)
        if summary_is_html:
            fe.html_text.html_elements.add("summary")
    name, email = _post_author(post, config)
    if name or email:
        fe.author({"name": name or email, **({"email": email} if email else {})})


def _json_skeleton(feed: _Feed, config: Config) -> bytes:
    """JSON Feed 1.1 (https://jsonfeed.org/version/1.1) without its items: keys in a fixed
    order, "{\n  ...\n}" (the items go last, each serialised once per build by _Entries, at
    the depth it has here: _json_fill)."""
    doc: dict = {
        "version": JSON_FEED_VERSION,
        "title": feed.title,
        "home_page_url": _home_url(config),
        "feed_url": _public_url(config, feed.path(JSON_FILE)),
    }
    if feed.description:
        doc["description"] = feed.description
    _json_extras(doc, feed, config)
    doc["language"] = feed.language or config.site.language
    site_author = _json_author(*_site_author(config))
    if site_author:
        doc["authors"] = [site_author]
    return json.dumps(doc, ensure_ascii=False, indent=2).encode("utf-8")


def _json_fill(skeleton: bytes, feed: _Feed, entries: "_Entries") -> bytes:
    items = [entries.get(JSON_FILE, post) for post in feed.items]
    if not items:
        return skeleton[:-2] + b',\n  "items": []\n}\n'
    return skeleton[:-2] + b',\n  "items": [\n' + b",\n".join(items) + b"\n  ]\n}\n"


# Each format's document without its entries, and with them (_Entries.render).
_SKELETON = {RSS_FILE: _rss_skeleton, ATOM_FILE: _atom_skeleton, JSON_FILE: _json_skeleton}
_FILL = {RSS_FILE: _rss_fill, ATOM_FILE: _atom_fill, JSON_FILE: _json_fill}


def _json_item(post: Post, config: Config, content_html: str) -> bytes:
    """One item as json.dumps(doc, indent=2) writes it inside doc["items"]: every line
    indented by two levels (JSON strings hold no raw newline, so lines are safe to indent)."""
    item: dict = {
        "id": post.id,
        "url": post.url,
        "title": post.title,
        "content_html": content_html,
    }
    if post.summary:
        item["summary"] = post.summary
    if post.image:
        item["image"] = _safe_url(post.image)
    item["date_published"] = post.published.isoformat()
    item["date_modified"] = post.modified.isoformat()
    author = _json_author(*_post_author(post, config))
    if author:
        item["authors"] = [author]
    if _terms(post):
        item["tags"] = _terms(post)
    _json_attachments(item, post)
    return ("    " + _json_indented(item, 2)).encode("utf-8")


def _json_indented(value, level: int) -> str:
    """json.dumps(value, ensure_ascii=False, indent=2) as it appears at depth `level` of a
    document (its first line not indented). json's indented output takes its pure-Python
    path; strings here take the C one, which is what the items are made of."""
    if isinstance(value, dict) and value:
        inner = "\n" + "  " * (level + 1)
        return ("{" + inner + ("," + inner).join(
            json.dumps(k, ensure_ascii=False) + ": " + _json_indented(v, level + 1)
            for k, v in value.items()) + "\n" + "  " * level + "}")
    if isinstance(value, list) and value:
        inner = "\n" + "  " * (level + 1)
        return ("[" + inner + ("," + inner).join(_json_indented(v, level + 1) for v in value)
                + "\n" + "  " * level + "]")
    return json.dumps(value, ensure_ascii=False)


def _terms(post: Post) -> list[str]:
    """A post's tags, then its categories: the feed's categories (JSON Feed: its tags)."""
    seen = {t.lower(): t for t in post.tags}
    return list(post.tags) + [c for c in post.categories if c.lower() not in seen]


def _json_author(name: str, email: str) -> dict | None:
    # JSON Feed authors have no e-mail field; the spec allows a mailto: URL instead.
    author: dict = {}
    if name or email:
        author["name"] = name or email
    if email:
        author["url"] = "mailto:" + email
    return author or None


# --- WebSub hubs, RFC 5005 archives, a feed's face, enclosures ---------------------------

FH_NS = "http://purl.org/syndication/history/1.0"  # RFC 5005's fh:archive
ARCHIVE_DIR = "archive"  # <feed folder>archive/<n>/: page 1 holds the oldest posts


@dataclass(frozen=True)
class _History:
    """Where one feed document sits in its RFC 5005 chain (folders; None for no link)."""

    is_archive: bool  # an archive page (fh:archive), not the subscription feed
    current: str  # the subscription feed's folder
    prev: str | None  # the next older page (rel="prev-archive"; JSON Feed next_url)
    # The next newer page; for the newest page, the subscription feed, which follows it (the
    # validator wants an archive page to link somewhere, even when it is the only one).
    next: str | None


def _with_archives(feeds: list[_Feed], everything: dict[str, list[Post]],
                   config: Config) -> list[_Feed]:
    """Each feed whose folder has an entry in `everything`, followed by its archive pages.

    The posts the subscription feed leaves out (beyond feeds.limit) go into pages of
    feeds.archive_size, counted from the oldest post: page 1 holds the oldest ones, and a new
    post only ever changes the subscription feed and the newest page (a page that fills up
    gains its link to the new page once). Removing or back-dating a post shifts the pages
    after it, as it must for every post to stay in exactly one page."""
    limit, size = config.feeds.limit, config.feeds.archive_size
    result: list[_Feed] = []
    for feed in feeds:
        posts = everything.get(feed.folder)
        older = list(reversed(posts[limit:])) if posts is not None and limit else []
        if not older:
            result.append(feed)
            continue
        count = (len(older) + size - 1) // size

        def page(n: int) -> str:
            return f"{feed.folder}{ARCHIVE_DIR}/{n}/"

        result.append(replace(feed, archive=_History(False, feed.folder, page(count), None)))
        for n in range(1, count + 1):
            chunk = older[(n - 1) * size:n * size]
            result.append(_Feed(
                folder=page(n),
                title=f"{feed.title} (archive {n})",
                description=feed.description,
                items=tuple(reversed(chunk)),
                archive=_History(True, feed.folder, page(n - 1) if n > 1 else None,
                                 page(n + 1) if n < count else feed.folder),
            ))
    return result


def _hubs(feed: _Feed, config: Config) -> tuple[str, ...]:
    """The WebSub hubs a feed names: subscription feeds only; archive pages never change
    in a way a subscriber must hear about."""
    if feed.archive is not None and feed.archive.is_archive:
        return ()
    return config.feeds.websub_hub


def _history_links(feed: _Feed, config: Config, own_file: str) -> list[tuple[str, str]]:
    """(rel, href) of the hub and RFC 5005 links of one RSS or Atom document."""
    links = [("hub", hub) for hub in _hubs(feed, config)]
    history = feed.archive
    if history is not None:
        if history.is_archive:
            links.append(("current", _public_url(config, history.current + own_file)))
        if history.prev is not None:
            links.append(("prev-archive", _public_url(config, history.prev + own_file)))
        if history.next is not None:
            links.append(("next-archive", _public_url(config, history.next + own_file)))
    return links


def feed_urls_with_hub(files: dict[str, bytes] | list[str], config: Config) -> dict[str, str]:
    """{path: public URL} of the written feeds that name the hub: what a WebSub publisher
    pings for (every feed file except the archive pages)."""
    if not config.feeds.websub_hub:
        return {}
    return {rel: _public_url(config, rel) for rel in files
            if PurePosixPath(rel).name in FEED_FILES and f"/{ARCHIVE_DIR}/" not in f"/{rel}"}


class _HistoryExtension(BaseExtension):
    """RSS: the atom:link elements feedgen writes only for Atom (it keeps rel="self" alone),
    after the self link. Both: fh:archive on an archive page."""

    def __init__(self) -> None:
        self.links: list[tuple[str, str]] = []
        self.archived = False

    def extend_ns(self):
        return {"fh": FH_NS} if self.archived else {}

    def extend_rss(self, element):
        channel = element.find("channel")
        anchor = channel.find(f"{{{ATOM_NS}}}link")
        at = list(channel).index(anchor) + 1 if anchor is not None else len(channel)
        for offset, (rel, href) in enumerate(self.links):
            link = etree.Element(f"{{{ATOM_NS}}}link", href=href, rel=rel)
            channel.insert(at + offset, link)
        if self.archived:
            channel.insert(at + len(self.links), etree.Element(f"{{{FH_NS}}}archive"))
        return element

    def extend_atom(self, element):
        if self.archived:
            # Before the entries: the validator wants feed metadata ahead of them.
            first_entry = element.find("entry")  # unqualified: see _EnclosureEntry
            at = list(element).index(first_entry) if first_entry is not None else len(element)
            element.insert(at, etree.Element(f"{{{FH_NS}}}archive"))
        return element


# What RSS <image> may be: the validator warns about any other kind of file there.
_RSS_IMAGE = re.compile(r"\.(?:jpe?g|gif|png)$", re.I)


def _face_url(config: Config, value: str) -> str:
    return _safe_url(value if "://" in value else config.site.url + "/" + value.lstrip("/"))


def _set_face(fg: FeedGenerator, config: Config, own_file: str) -> None:
    """site.icon and site.logo: Atom <icon> and <logo>; RSS <image>, which must be a GIF, JPEG
    or PNG (the logo, else the icon). feedgen ties RSS <image> to Atom <logo>, so each
    format's generator gets only its own."""
    icon = _face_url(config, config.site.icon) if config.site.icon else ""
    logo = _face_url(config, config.site.logo) if config.site.logo else ""
    if own_file == ATOM_FILE:
        if icon:
            fg.icon(icon)
        if logo:
            fg.logo(logo)
        return
    image = next((u for u in (logo, icon) if u and _RSS_IMAGE.search(u.split("?")[0])), "")
    if image:
        fg.image(image)  # its title and link default to the channel's, as the validator wants


def _set_podcast(fg: FeedGenerator, feed: _Feed, config: Config) -> None:
    """feeds.podcast: the iTunes tags the validator asks of a podcast's channel (category,
    explicit, owner with an address, and an image where the site has one)."""
    fg.load_extension("podcast", atom=False, rss=True)
    category, _, sub = config.feeds.podcast.partition("/")
    fg.podcast.itunes_category(category.strip(), sub.strip() or None)
    name, email = _site_author(config)
    if name or email:
        fg.podcast.itunes_author(name or email)
    if email:
        fg.podcast.itunes_owner(name=name or email, email=email)
    picture = config.site.logo or config.site.icon
    if picture and _RSS_IMAGE.search(picture):
        fg.podcast.itunes_image(_face_url(config, picture))
    # feedgen only knows the old yes/no/clean; Apple and the validator want true/false.
    fg.register_extension("explicit", _ItunesExplicit, None, atom=False, rss=True)


class _ItunesExplicit(BaseExtension):
    ITUNES_NS = "http://www.itunes.com/dtds/podcast-1.0.dtd"

    def extend_rss(self, element):
        channel = element.find("channel")
        explicit = etree.SubElement(channel, f"{{{self.ITUNES_NS}}}explicit")
        explicit.text = "false"
        items = channel.findall("item")
        if items:  # channel metadata before the items
            channel.remove(explicit)
            channel.insert(list(channel).index(items[0]), explicit)
        return element


class _EnclosureEntry(BaseEntryExtension):
    """RSS <enclosure> and Atom <link rel="enclosure">. feedgen 1.0 has both, but writes an
    Atom entry's links without their rel and type (a variable shadowed in entry.py), which
    would make the enclosure a second alternate link."""

    def __init__(self) -> None:
        self.enclosure: tuple = ()

    def extend_rss(self, item):
        if self.enclosure:
            url, length, mime = self.enclosure
            etree.SubElement(item, "enclosure", url=_safe_url(url), length=str(length), type=mime)
        return item

    def extend_atom(self, entry):
        if self.enclosure:
            url, length, mime = self.enclosure
            # feedgen builds Atom with a plain xmlns attribute: its elements are unqualified.
            link = etree.SubElement(entry, "link", rel="enclosure",
                                    href=_safe_url(url), type=mime)
            if length:  # RSS says 0 for unknown; Atom leaves the attribute out
                link.set("length", str(length))
        return entry


def _json_extras(doc: dict, feed: _Feed, config: Config) -> None:
    """JSON Feed's hubs, icon and favicon, and next_url for the next older archive page."""
    if config.site.logo or config.site.icon:
        doc["icon"] = _face_url(config, config.site.logo or config.site.icon)
    if config.site.icon:
        doc["favicon"] = _face_url(config, config.site.icon)
    if feed.archive is not None and feed.archive.prev is not None:
        doc["next_url"] = _public_url(config, feed.archive.prev + JSON_FILE)
    hubs = _hubs(feed, config)
    if hubs:
        doc["hubs"] = [{"type": "WebSub", "url": hub} for hub in hubs]


def _json_attachments(item: dict, post: Post) -> None:
    if post.enclosure:
        url, length, mime = post.enclosure
        attachment = {"url": _safe_url(url), "mime_type": mime}
        if length:
            attachment["size_in_bytes"] = length
        item["attachments"] = [attachment]


# --- writing ----------------------------------------------------------------------------

def write_feeds(files: dict[str, bytes], output_dir: Path, keep: frozenset[str] = frozenset(),
                meanwhile: Callable[[], object] | None = None) -> WriteReport:
    """Write `files` under output_dir: atomically, and only those whose bytes differ from what
    is there. Then delete the tag feeds (rss.xml, atom.xml, feed.json under tags/<slug>/) that
    are no longer produced (neither in `files` nor in `keep`: feeds left as they are), and the
    tag folders that leaves empty; nothing else is ever removed.
    Raises OutputError naming the path when the disk refuses; a failed write leaves the old
    file as it was. A file with a symlink on its way below output_dir is not written (nor is
    anything removed through one): the others are, stale ones removed, then OutputError names
    the link. `meanwhile`: see write_files."""
    output_dir = Path(output_dir)
    report = write_files(files, output_dir, meanwhile, check=False)
    remove_orphaned_temp_files(output_dir, {str(PurePosixPath(rel).parent) for rel in files},
                               TERM_DIRS)
    keep = set(files) | set(keep)
    report.removed = remove_stale_archives(output_dir, keep, FEED_FILES, TAGS_DIR, ARCHIVE_DIR)
    report.removed += [rel for terms in TERM_DIRS
                       for rel in remove_stale(output_dir, keep, terms, FEED_FILES)]
    log.info("feeds in %s: %d written, %d unchanged, %d removed", output_dir,
             len(report.written), len(report.unchanged), len(report.removed))
    report.raise_refused()
    return report


# --- checking ---------------------------------------------------------------------------

def check_feeds(output_dir: Path) -> list[str]:
    """One line per problem with the written feeds (empty: all good). Parses every rss.xml,
    atom.xml and feed.json under output_dir and checks its root element and version. Reads
    only."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return [f"{output_dir}: no feeds folder ({_BUILD_HINT})"]
    problems = []
    for name in FEED_FILES:
        if not (output_dir / name).is_file():
            problems.append(f"{output_dir / name}: missing ({_BUILD_HINT})")
    found = sorted(p for p in output_dir.rglob("*") if p.name in FEED_FILES and p.is_file())
    for path in found:
        try:
            data = path.read_bytes()
        except OSError as e:
            problems.append(f"{path}: cannot read: {e.strerror or e}")
            continue
        problem = _check_json(data) if path.name == JSON_FILE else _check_xml(data, path.name)
        if problem:
            problems.append(f"{path}: {problem}")
    return problems


def _check_xml(data: bytes, name: str) -> str:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                             huge_tree=True)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as e:
        return f"not well-formed XML: {e.msg or e}"  # msg: lxml's text without "(<string>...)"
    found = f"<{etree.QName(root).localname}>"
    if root.get("version"):
        found += f" version {root.get('version')!r}"
    if etree.QName(root).namespace:
        found += f" in namespace {etree.QName(root).namespace}"
    if name == RSS_FILE:
        if root.tag != "rss" or root.get("version") != "2.0" or root.find("channel") is None:
            return f'expected RSS 2.0 (<rss version="2.0"> holding a <channel>), found {found}'
    elif root.tag != f"{{{ATOM_NS}}}feed":
        return f"expected Atom 1.0 (<feed> in namespace {ATOM_NS}), found {found}"
    return ""


def _check_json(data: bytes) -> str:
    try:
        doc = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as e:
        return f"not UTF-8 (invalid byte at offset {e.start})"
    except ValueError as e:
        return f"not valid JSON: {e}"
    if not isinstance(doc, dict):
        return f"expected a JSON Feed object, found a JSON {type(doc).__name__}"
    if doc.get("version") != JSON_FEED_VERSION:
        return f"expected JSON Feed version {JSON_FEED_VERSION!r}, found {doc.get('version')!r}"
    if not isinstance(doc.get("items"), list):
        return "expected an 'items' list, found " + (
            "none" if "items" not in doc else f"a JSON {type(doc['items']).__name__}")
    return ""


# --- describing (publisher check) -------------------------------------------------------

SIZE_WARNING_KB = 512  # some readers and proxies give up on larger feeds


def describe_feeds(output_dir: Path) -> list[str]:
    """One line per feed folder, as a reader would see it: items, oldest and newest dates,
    file sizes, hubs, archive pages. Warns (log) about a file above SIZE_WARNING_KB. Reads
    only; a file that cannot be parsed is check_feeds' to report, and is left out here."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return []
    folders: dict[PurePosixPath, list[Path]] = {}
    for path in sorted(output_dir.rglob("*")):
        if path.name in FEED_FILES and path.is_file():
            rel = PurePosixPath(path.relative_to(output_dir).as_posix())
            folders.setdefault(rel.parent, []).append(path)
    lines = []
    for folder, paths in sorted(folders.items()):
        parts = folder.parts
        if len(parts) >= 2 and parts[-2] == ARCHIVE_DIR and parts[-1].isdigit():
            continue  # an archive page: counted with its feed
        lines.append(_describe_folder(output_dir, folder, paths, folders))
    return lines


def _json_feed(path: Path) -> dict:
    try:
        doc = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) and isinstance(doc.get("items"), list) else {}


def _describe_folder(output_dir: Path, folder: PurePosixPath, paths: list[Path],
                     folders: dict[PurePosixPath, list[Path]]) -> str:
    name = "/" if str(folder) == "." else f"{folder}/"
    sizes = []
    for path in paths:
        kb = path.stat().st_size / 1024
        sizes.append(f"{path.name} {kb:.0f} KB")
        if kb > SIZE_WARNING_KB:
            log.warning("%s: %.0f KB, above %d KB, where some feed readers and proxies give "
                        "up (lower feeds.limit, or turn on feeds.archive)", path, kb,
                        SIZE_WARNING_KB)
    doc = _json_feed(output_dir / str(folder) / JSON_FILE)
    facts = []
    if doc:
        items = doc["items"]
        dates = sorted(str(i.get("date_published", ""))[:10] for i in items
                       if isinstance(i, dict) and i.get("date_published"))
        facts.append(f"{len(items)} item{'' if len(items) == 1 else 's'}"
                     + (f", {dates[0]} … {dates[-1]}" if dates else ""))
        hubs = [h.get("url", "") for h in doc.get("hubs", []) if isinstance(h, dict)]
        facts.append("hub " + ", ".join(hubs) if hubs else "no hub")
    pages = sorted(f for f in folders if f.parent == folder / ARCHIVE_DIR and f.name.isdigit())
    if pages:
        archived = sum(len(_json_feed(output_dir / str(p) / JSON_FILE).get("items", []))
                       for p in pages)
        facts.append(f"{len(pages)} archive page{'' if len(pages) == 1 else 's'} "
                     f"({archived} older item{'' if archived == 1 else 's'})")
    return f"feed {name}: " + "; ".join(facts + [", ".join(sizes)])
