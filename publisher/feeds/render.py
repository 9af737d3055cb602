"""Posts -> {path: bytes} of every feed set: RSS 2.0, Atom 1.0 and JSON Feed 1.1, each entry
serialised once per format and shared by every feed it is in (_Entries).

Everything written must pass the W3C Feed Validation Service without errors or warnings; the
comments below say which of its rules shaped a choice.
"""

from __future__ import annotations

import dataclasses
import hashlib
import html as html_lib
import html.entities as html_entities
import json
import logging
import re
import secrets
import uuid
from datetime import datetime, timedelta
from functools import partial
from typing import Callable, MutableMapping

from feedgen.ext.base import BaseEntryExtension, BaseExtension
from feedgen.version import version_str as _FEEDGEN_VERSION
from feedgen.feed import FeedGenerator
from lxml import etree

from .. import __version__
from ..config import Config
from ..content import Post, clean_text, parallel, slugify
from ..content.sanitize import sanitize_html
from .common import (ATOM_FILE, CATEGORIES_DIR, EMPTY_FEED_DATE, FEED_FILES, JSON_FEED_VERSION,
                     JSON_FILE, RSS_FILE, TAGS_DIR, _MIME, _Feed, _home_url, _one_line,
                     _post_author, _public_url, _safe_url, _site_author)
from .face import _EnclosureEntry, _json_attachments, _json_extras, _set_face, _set_podcast
from .history import _history_links, _HistoryExtension, _with_archives

log = logging.getLogger(__name__)

# An absolute IRI: a scheme, a colon, and no characters that RFC 3987 forbids.
_ABSOLUTE_IRI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:[^\s<>\"{}|\\^`]+")


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
    returns what safe_html makes of a post's HTML (feed_cache.CachedRenderer's does)."""
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


def _fields_text(post: Post) -> str:
    """The post's fields for an entry's key: repr's, with the dates as ISO 8601. A post
    restored from the scan cache holds a fixed offset where the one parsed from its file may
    hold a named zone: the same instants, the same bytes, so the same entries (kept across
    builds: feed_cache.FeedFragments)."""
    return repr([value.isoformat() if isinstance(value, datetime) else value
                 for value in (getattr(post, f.name) for f in dataclasses.fields(post) if f.repr)])


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
            for part in (_fields_text(post), self.content_html(post)):
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
        wanted: dict[str, list[tuple[str, Post, datetime | None]]] = {}
        for fmt in (JSON_FILE, ATOM_FILE, RSS_FILE):
            wanted[fmt] = []
            for feed in feeds:
                dates = _distinct_updated(feed.items) if fmt == ATOM_FILE else {}
                for post in feed.items:
                    updated = dates.get(id(post))
                    wanted[fmt].append((self.key(fmt, post, updated), post, updated))
        prefetch = getattr(self.store, "prefetch", None)
        if prefetch is not None:  # a store kept in the state (feed_cache.FeedFragments): one lookup
            prefetch([key for entries in wanted.values() for key, _post, _updated in entries])
        jobs: list[tuple[str, dict[str, tuple[Post, datetime | None]]]] = []
        for fmt, entries in wanted.items():
            needed: dict[str, tuple[Post, datetime | None]] = {}
            for key, post, updated in entries:
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
        return [hex_references(piece) if fmt == RSS_FILE else piece for piece in pieces]


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


def _feed_date(feed: _Feed) -> datetime:
    """A feed's own date: its newest item's modification, so unchanged input gives unchanged output."""
    return max((p.modified for p in feed.items), default=EMPTY_FEED_DATE)


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
    return hex_references(_rss_channel(feed, config).rss_str(pretty=True))


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


def hex_references(xml: bytes) -> bytes:
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
