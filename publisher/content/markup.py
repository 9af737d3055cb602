"""Markdown -> HTML, and the plain-text summary of a post."""

from __future__ import annotations

import functools
import html
import os
import re
from typing import TYPE_CHECKING

from .links import SiteIndex, absolutize_html, prepare
from .syntax import SyntaxContext, resolve
from .text import clean_text

if TYPE_CHECKING:
    from .posts import Post

# Bump when render_html's output changes, so cached HTML from an older version is not reused.
RENDERER_VERSION = "2"

_MD_NOISE = re.compile(r"!\[[^\]]*\]\([^)]*\)|<[^>]+>|[*_`#>~]|\[([^\]]*)\]\([^)]*\)")


def derive_summary(body: str, limit: int = 280, *, mdx: bool = False) -> str:
    """Plain text from the first paragraph that is not a heading, fence or HTML."""
    body = resolve(body, SyntaxContext("", mdx=mdx)).text  # no engine syntax in a summary
    in_fence = False
    for block in re.split(r"\n\s*\n", body):
        stripped = block.strip()
        if stripped.startswith(("```", "~~~")):
            in_fence = stripped.count("```") % 2 == 1 or stripped.count("~~~") % 2 == 1
            continue
        if in_fence or not stripped or stripped.startswith(("#", "|", "<", "---", "![")):
            continue
        text = _MD_NOISE.sub(lambda m: m.group(1) or "", stripped)
        text = html.unescape(re.sub(r"\s+", " ", text)).strip()
        if text:
            if len(text) > limit:
                text = text[: limit - 1].rsplit(" ", 1)[0] + "…"
            return text
    return ""


# --- Markdown -> HTML -------------------------------------------------------------------

_md = None


def _markdown():
    global _md
    if _md is None:
        import markdown

        _md = markdown.Markdown(
            extensions=["fenced_code", "tables", "footnotes", "sane_lists", "attr_list"],
            output_format="html",
        )
    return _md


def render_html(post: Post, site: SiteIndex | None = None) -> str:
    """The post's full HTML: engine syntax resolved first (syntax.py), links to other posts'
    source files and local images resolved against `site` (links.py), every other relative
    link made absolute against its permalink."""
    prepared = prepare(post, site)
    md = _markdown()
    md.reset()
    body_html = md.convert(prepared.markdown)
    return clean_text(absolutize_html(body_html, post.url, prepared.links))


# Python-Markdown takes ~5 ms a post, most of a cold build's time. From this many posts on,
# rendering is shared by a pool of forked processes, one per core.
PARALLEL_RENDER_MIN = 64


def render_many(posts: list[Post], site: SiteIndex | None = None) -> dict[str, str]:
    """render_html for many posts: {render_key: HTML}, the same HTML whichever way it is made."""
    import threading

    unique = list({post.render_key: post for post in posts}.values())
    render = render_html if site is None else functools.partial(render_html, site=site)
    workers = min(len(os.sched_getaffinity(0)), 8, len(unique) // (PARALLEL_RENDER_MIN // 2))
    # Forked workers, and only from a process with one thread: a child inherits every lock
    # as its parent's other threads held it, and could hang on one (publisher schedule runs
    # builds on a worker thread, so it renders here). "spawn" would avoid that but re-runs
    # the caller's __main__ in each worker, which breaks scripts that import publisher.
    if len(unique) < PARALLEL_RENDER_MIN or workers < 2 or threading.active_count() > 1:
        return {post.render_key: render(post) for post in unique}
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        chunk = max(1, len(unique) // (workers * 4))
        rendered = pool.map(render, unique, chunksize=chunk)
        return {post.render_key: html_text for post, html_text in zip(unique, rendered)}
