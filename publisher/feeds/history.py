"""WebSub hubs and RFC 5005 archives: which hubs a feed names, the archive pages that hold the
posts a subscription feed leaves out, and the links that chain them."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import PurePosixPath

from feedgen.ext.base import BaseExtension
from lxml import etree

from ..config import Config
from ..content import Post
from .common import ARCHIVE_DIR, ATOM_NS, FEED_FILES, FH_NS, _Feed, _public_url


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
