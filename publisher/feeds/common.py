"""What every part of the feeds uses: the file and folder names, the namespaces, the feed set
(_Feed), and the small URL and author helpers. It imports no other module of feeds/, so each
of them can import it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING
from urllib.parse import quote

from ..config import Config
from ..content import Post, clean_text

if TYPE_CHECKING:
    from .history import _History

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

FH_NS = "http://purl.org/syndication/history/1.0"  # RFC 5005's fh:archive
ARCHIVE_DIR = "archive"  # <feed folder>archive/<n>/: page 1 holds the oldest posts

# What the validator accepts as an e-mail address (feedvalidator's addr_spec); an address it
# would reject is left out of the feeds rather than making them invalid.
_EMAIL = re.compile(
    r"[A-Z0-9_\-+.'!#$%&*/=?^`{|}~]+@(?:[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.|(?:[A-Z0-9-]+\.)+)"
    r"[A-Z0-9][-A-Z0-9]*",
    re.I,
)


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


def _one_line(text: str) -> str:
    # \s also matches U+0085 (NEL), which XML allows but the validator flags as a bad character.
    return re.sub(r"\s+", " ", clean_text(text)).strip()


def _public_url(config: Config, rel: str) -> str:
    """The absolute URL of a file in the output folder, which is served at the site's root."""
    return config.site.url + "/" + quote(rel, safe="/")


def _safe_url(url: str) -> str:
    """Percent-encode what a URL may not hold (spaces, non-ASCII), as a front-matter image
    path such as "img/my photo.png" would; characters already legal are left alone."""
    return quote(url, safe=":/?#[]@!$&'()*+,;=%~")


def _home_url(config: Config) -> str:
    return config.site.url + "/"


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
