"""A feed's face and attachments: site.icon and site.logo, a podcast's iTunes tags
(feeds.podcast), enclosures, and JSON Feed's extra fields."""

from __future__ import annotations

import re

from feedgen.ext.base import BaseEntryExtension, BaseExtension
from feedgen.feed import FeedGenerator
from lxml import etree

from ..config import Config
from ..content import Post
from .common import ATOM_FILE, JSON_FILE, _Feed, _public_url, _safe_url, _site_author
from .history import _hubs


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
