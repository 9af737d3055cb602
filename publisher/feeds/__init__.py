"""Posts -> RSS 2.0, Atom 1.0 and JSON Feed 1.1 files, plus a thin, atomic writer and a checker.

`render_feeds` is pure: it returns {relative path: bytes} and depends on nothing but its
arguments, so rebuilding an unchanged site gives byte-identical files (a feed's own date is
its newest item's, never now()). `write_feeds` is the only function here that touches the
disk: it replaces a file atomically and only when its bytes changed, so feed readers polling
with If-Modified-Since see an unchanged site as unchanged. `check_feeds` only reads.

    common.py   file and folder names, namespaces, the feed set (_Feed), URL and author helpers
    render.py   posts -> {path: bytes}: each format's document and entries (render_feeds)
    history.py  WebSub hubs and RFC 5005 archive pages (feeds.archive)
    face.py     site icon and logo, a podcast's iTunes tags, enclosures, JSON Feed's extras
    write.py    write_feeds: atomic, only changed bytes, stale feeds removed
    check.py    check_feeds and describe_feeds: read-only looks at the written feeds

Importing this package imports feedgen and lxml (~35 ms): callers import it lazily. check.py
is imported on first use of its names (below): a build renders and writes, it checks nothing.
"""

from .common import FEED_FILES
from .history import feed_urls_with_hub
from .render import hex_references, render_feeds, safe_html
from .write import write_feeds

__all__ = ["FEED_FILES", "check_feeds", "describe_feeds", "feed_urls_with_hub", "hex_references",
           "render_feeds", "safe_html", "write_feeds"]


def __getattr__(name: str):
    # lazy: check.py, for `publisher check` and the tests alone (PEP 562)
    if name in ("check_feeds", "describe_feeds"):
        from . import check

        return getattr(check, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
