"""Pelican's reStructuredText posts (`.rst`), read as Pelican's RstReader reads them.

Pelican renders reST with docutils (its HTML4/CSS1 writer, `initial_header_level` 2, warnings
fatal: `halt_level` 2) and takes the post's metadata from the document itself: the title is
the document title (one top-level section), the fields after it are the metadata (`:date:`,
`:tags:`, `:category:`, `:slug:`, `:summary:`, `:author:`/`:authors:`, `:status:`, `:lang:`,
`:modified:`), their names lowercased. `read` gives them as the front matter dict the rest of
posts.py reads (the dialect's rules then apply as to a Pelican Markdown post); `render` gives
the body's HTML (what Pelican puts in the feed: the title and the fields are not in it).
"""

from __future__ import annotations

import io
import re
from functools import lru_cache

from .frontmatter import Skip

# Pelican's RstReader._get_publisher settings, as Pelican 4.12 passes them.
_SETTINGS = {
    "initial_header_level": "2",
    "syntax_highlight": "short",
    "input_encoding": "unicode",
    "halt_level": 2,  # a warning stops the file, as in Pelican (it then skips the post)
    "report_level": 5,  # nothing printed: the Skip below says it, once
    "traceback": True,
    "embed_stylesheet": False,
    "file_insertion_enabled": False,  # `.. include::` / `.. raw:: :file:` never read a file
    "raw_enabled": True,  # Pelican allows `.. raw:: html`; the sanitiser cleans its output
}


@lru_cache(maxsize=64)
def _publish(text: str) -> tuple[dict, str]:
    """(metadata, body HTML) of a reST document; raises Skip naming the line docutils stops at.
    Cached: a post is read when the site is scanned and rendered when it reaches a feed."""
    # lazy: docutils' parser and writer import in ~130 ms, and only Pelican's .rst posts need them
    import docutils.core
    import docutils.io
    import docutils.nodes
    import docutils.utils
    from docutils.writers.html4css1 import Writer

    settings = dict(_SETTINGS, warning_stream=io.StringIO())
    try:
        pub = docutils.core.Publisher(reader="standalone", parser="restructuredtext", writer=Writer(),
                                      source_class=docutils.io.StringInput,
                                      destination_class=docutils.io.StringOutput)
        pub.process_programmatic_settings(None, settings, None)
        pub.set_source(text)
        pub.publish()
        parts, document = pub.writer.parts, pub.document
    except docutils.utils.SystemMessage as e:
        message = re.sub(r"^<string>:(\d+): \(\w+/\d\) ", r"line \1: ", str(e)).replace("\n", " ")
        raise Skip(f"reStructuredText: {message[:200]}") from None
    except Exception as e:  # docutils raises what its directives raise; name it, skip the post
        raise Skip(f"reStructuredText cannot be read: {type(e).__name__}: {e}"[:240]) from None
    meta: dict = {}
    title = document.next_node(docutils.nodes.title)
    if title is not None and title.parent is document:
        meta["title"] = title.astext()
    for docinfo in document.findall(docutils.nodes.docinfo):
        for element in docinfo.children:
            if element.tagname == "field":
                name_node, body = element.children
                name, value = name_node.astext(), body.astext()
            elif element.tagname == "authors":
                name, value = "authors", [a.astext() for a in element.children]
            else:  # docutils' own fields: date, author, status, version...
                name, value = element.tagname, element.astext()
            meta[name.lower()] = value
    return meta, parts["body"]


def read(text: str) -> tuple[dict, str]:
    """The post's metadata (a front matter dict) and its body (the reST source, as it is)."""
    meta, _html = _publish(text)
    if "title" not in meta:  # Pelican warns "Document title missing", then has no title either
        raise Skip("reStructuredText has no document title (one top-level section title, "
                   "before the :date: and other fields)")
    return dict(meta), text


_TT = re.compile(r"<tt\b[^>]*>(.*?)</tt>", re.S)


def render(text: str) -> str:
    """The body's HTML, as Pelican publishes it; docutils' inline literal `<tt>` (obsolete
    HTML, which the sanitiser drops) written as the `<code>` it stands for."""
    body = _publish(text)[1]
    return _TT.sub(r"<code>\1</code>", body) if "<tt" in body else body
