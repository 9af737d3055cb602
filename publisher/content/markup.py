"""Markdown -> HTML, as the blog's engine renders it, and the plain-text summary of a post.

The default engine is CommonMark with the GitHub extensions (tables, strikethrough, bare-URL
autolinks, task lists, footnotes), through cmarkgfm: GitHub's own cmark-gfm, compiled. Astro
(remark-gfm), Hugo (goldmark), Eleventy (markdown-it) and GitHub render the same dialect.
`content.markdown: python-markdown` renders with Python-Markdown instead, for Pelican and MkDocs
sites, with `content.markdown_extensions` (or, when empty, the set used before CommonMark).

Raw HTML is kept here, as Astro, Jekyll and Eleventy keep it; what goes to readers is made safe
afterwards by sanitize.py. Two things are added to what the engine makes: GitHub-style heading
ids (unique within the post), and a per-post prefix on footnote ids, so that several posts shown
in one document (a feed reader) never share one.
"""

from __future__ import annotations

import hashlib
import html
import re
from typing import TYPE_CHECKING, Callable

from ..errors import ConfigError
from .links import SiteIndex, absolutize_html, prepare
from . import rst
from .blocks import HEADING_MARK
from .syntax import SyntaxContext, resolve, source_format
from .text import clean_text

if TYPE_CHECKING:
    from ..config import Config
    from .posts import Post

# Bump when render_html's output changes, so cached HTML from an older version is not reused.
RENDERER_VERSION = "4"

# Python-Markdown's extensions when content.markdown_extensions is empty.
PYTHON_MARKDOWN_DEFAULT = ("fenced_code", "tables", "footnotes", "sane_lists", "attr_list")


# --- engines ----------------------------------------------------------------------------

def _cmark() -> Callable[[str], str]:
    import cmarkgfm  # lazy: compiled, ~1 ms; a build with nothing to render skips it
    from cmarkgfm.cmark import Options

    options = Options.CMARK_OPT_UNSAFE | Options.CMARK_OPT_FOOTNOTES  # raw HTML kept, as engines do
    extensions = ["table", "strikethrough", "autolink", "tasklist"]

    def convert(text: str) -> str:
        return cmarkgfm.markdown_to_html_with_extensions(text, options, extensions=extensions)

    return convert


def _python_markdown(extensions: tuple[str, ...], where: str) -> Callable[[str], str]:
    import markdown  # lazy: Python-Markdown's import is ~30 ms, and only its sites need it

    names = list(extensions or PYTHON_MARKDOWN_DEFAULT)
    try:
        md = markdown.Markdown(extensions=names, output_format="html")
    except (ImportError, AttributeError, TypeError, ValueError) as e:
        raise ConfigError(f"{where}: content.markdown_extensions: cannot load {names}: {e}") from e

    def convert(text: str) -> str:
        md.reset()
        return md.convert(text)

    return convert


_engines: dict[tuple, Callable[[str], str]] = {}


def engine_key(config: Config | None) -> tuple:
    """What the rendered HTML depends on in the config: the engine and its extensions."""
    if config is None or config.content.markdown == "commonmark":
        return ("commonmark",)
    return ("python-markdown", *config.content.markdown_extensions)


def _engine(config: Config | None) -> Callable[[str], str]:
    key = engine_key(config)
    if key not in _engines:
        _engines[key] = (_cmark() if key[0] == "commonmark"
                         else _python_markdown(key[1:], str(config.path)))
    return _engines[key]


# --- HTML ------------------------------------------------------------------------------

def render_body(body: str, config: Config | None = None, fmt: str = "markdown") -> str:
    """A Markdown body as the configured engine renders it (None: the default engine), with
    heading ids. Engine syntax outside Markdown (Liquid, shortcodes) is resolved before this.
    `fmt` (syntax.source_format): an HTML body is published as it is (Hugo's .html content),
    a reStructuredText one as docutils renders it for Pelican (rst.py)."""
    if fmt == "html":
        return body
    if fmt == "rst":
        return rst.render(body)
    return add_heading_ids(_engine(config)(body))


def render_html(post: Post, config: Config | None = None, site: SiteIndex | None = None) -> str:
    """The post's full HTML: engine syntax resolved first (syntax.py), links to other posts'
    source files and local images resolved against `site` (links.py), every other relative
    link made absolute against its permalink, footnote ids prefixed for the post. `config`
    chooses the engine (None: the default, CommonMark + GFM)."""
    prepared = prepare(post, site)
    body_html = render_body(prepared.markdown, config, source_format(post._path or post.source))
    body_html = absolutize_html(body_html, post.url, prepared.links)
    return clean_text(prefix_footnotes(body_html, post)).rstrip("\n")


def cache_key(post: Post, config: Config | None) -> str:
    """Cache key for render_html(post, config): the post's render_key and the engine."""
    key = engine_key(config)
    if key == ("commonmark",):
        return post.render_key
    return hashlib.sha256("\0".join((post.render_key, *key)).encode()).hexdigest()


_HEADING = re.compile(r"<h([1-6])((?:\s[^>]*)?)>(.*?)</h\1>", re.S)
_ID_ATTR = re.compile(r"""\sid\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))""", re.I)
_TAG = re.compile(r"<[^>]*>")
_NOT_IN_SLUG = re.compile(r"[^\w\- ]")
# The letters `i` and `d` match under re.I (ı and İ too), for _may_hold_id.
_I, _D = "iI\u0130\u0131", "dD"


def _may_hold_id(fragment: str) -> bool:
    r"""Whether `fragment` holds `id`, whitespace, `=` in any case (what _ID_ATTR needs), as
    re.search(r"id\s*=", fragment, re.I) says (\s is str.isspace()), from each '=' looking
    back: that regex has no first character to jump to, and took ~70 us a 10 KB post to
    find nothing; a post has a few dozen '='."""
    at = fragment.find("=")
    while at != -1:
        j = at - 1
        while j >= 0 and fragment[j].isspace():
            j -= 1
        if j >= 1 and fragment[j] in _D and fragment[j - 1] in _I:
            return True
        at = fragment.find("=", at + 1)
    return False


def github_slug(text: str) -> str:
    """A heading's id as GitHub (github-slugger) makes it: lowercase, punctuation dropped,
    spaces to '-'; letters and digits of any script kept."""
    return _NOT_IN_SLUG.sub("", text.strip().lower()).replace(" ", "-")


_FIGURE = re.compile(r"<figure[\s>].*?</figure>", re.S | re.I)
_ANY_FIGURE = re.compile(r"<figure", re.I)


def add_heading_ids(fragment: str) -> str:
    """Give every heading without an id a GitHub-style one, unique within the fragment
    ("intro", "intro-1", ...); ids already there are kept, and reserved. A heading inside a
    <figure> (a Hugo figure's caption title) is HTML, not a Markdown heading: the engines
    give it no id, and neither does this. A heading written `## Title {#id .class}` carries
    syntax.py's mark of its attributes: they are set, and the id is reserved before any other."""
    if "<h" not in fragment:
        return HEADING_MARK.sub("", fragment) if "\ue002" in fragment else fragment
    taken = ({next(g for g in m.groups() if g is not None) for m in _ID_ATTR.finditer(fragment)}
             if _may_hold_id(fragment) else set())
    marked = "\ue002" in fragment
    if marked:  # `## Title {#id}` (syntax.py): its id is the author's, and reserved first
        taken |= {t[1:] for m in HEADING_MARK.finditer(fragment) for t in m.group(1).split() if t[0] == "#"}
    figures = ([m.span() for m in _FIGURE.finditer(fragment)]
               if _ANY_FIGURE.search(fragment) else [])

    def heading(m: re.Match) -> str:
        level, attrs, inner = m.groups()
        mark = HEADING_MARK.search(inner) if marked else None
        if mark:
            tokens = mark.group(1).split()
            ids = [t[1:] for t in tokens if t[0] == "#"]
            classes = [t[1:] for t in tokens if t[0] == "."]
            inner = HEADING_MARK.sub("", inner)
            given = f' id="{html.escape(ids[-1])}"' if ids and not _ID_ATTR.search(attrs or "") else ""
            if classes and "class=" not in (attrs or ""):
                given += f' class="{html.escape(" ".join(classes))}"'
            if given:
                attrs = (attrs or "") + given
            if ids or (attrs and _ID_ATTR.search(attrs)):
                return f"<h{level}{attrs}>{inner}</h{level}>"
        if (attrs and _ID_ATTR.search(attrs)) or any(a <= m.start() < b for a, b in figures):
            return m.group(0) if not mark else f"<h{level}{attrs or ''}>{inner}</h{level}>"
        text = _TAG.sub("", inner) if "<" in inner else inner
        base = github_slug(html.unescape(text) if "&" in text else text) or "section"
        slug, n = base, 0
        while slug in taken:
            n += 1
            slug = f"{base}-{n}"
        taken.add(slug)
        return f'<h{level}{attrs} id="{slug}">{inner}</h{level}>'

    fragment = _HEADING.sub(heading, fragment)
    # A mark the engine did not leave in a heading (the line was raw HTML, say) is dropped.
    return HEADING_MARK.sub("", fragment) if marked else fragment


def footnote_prefix(post: Post) -> str:
    """The per-post prefix of footnote ids: the slug, and a hash of the URL (two posts of a
    feed may share a slug)."""
    digest = hashlib.sha256(post.url.encode("utf-8", "surrogatepass")).hexdigest()[:6]
    return f"{post.slug[:40]}-{digest}-"


# cmark-gfm writes fn-N / fnref-N (fnref-N-2 for a second reference); Python-Markdown
# fn:N / fnref:N / fnref2:N.
_FOOTNOTE_ID = r"fn(?:ref\d*)?[-:][^\"'\s>]*"
_FOOTNOTE_ID_ATTR = re.compile(rf'\sid="({_FOOTNOTE_ID})"')


def prefix_footnotes(fragment: str, post: Post) -> str:
    """Prefix every footnote id, and every link to one, with footnote_prefix(post), so that
    several posts in one document (a feed reader's) never share an id. Links stay absolute
    (`<post URL>#<prefix>fn-1`): a relative reference in RSS content is a W3C validator
    warning, and readers resolve the links of an item against different bases."""
    ids = set(_FOOTNOTE_ID_ATTR.findall(fragment))
    if not ids:
        return fragment
    prefix = html.escape(footnote_prefix(post), quote=True)
    url = html.escape(post.url, quote=True)
    pattern = re.compile(rf'(\s)(id="|href="(?:{re.escape(url)})?#)({_FOOTNOTE_ID})"')

    def fix(m: re.Match) -> str:
        space, lead, name = m.groups()
        if name not in ids:  # not a footnote of this fragment: left alone
            return m.group(0)
        attr = 'id="' if lead.startswith("id") else f'href="{url}#'
        return f'{space}{attr}{prefix}{name}"'

    return pattern.sub(fix, fragment)


# --- summary ---------------------------------------------------------------------------

# A paragraph of the body; not an admonition's title (blocks.py writes it as a paragraph of its
# own, `Note`, before the admonition's text, which is the summary's).
_PARAGRAPH = re.compile(r"<p(?!\s[^>]*\bclass=\"admonition-title\")(?:\s[^>]*)?>(.*?)</p>", re.S)
_FENCE = re.compile(r"^ {0,3}(?:```|~~~)", re.M)
_LINK_DEFINITION = re.compile(r"^ {0,3}\[[^\]\n]+\]:[ \t]*\S.*$", re.M)
SUMMARY_PREFIX = 2000  # characters of Markdown rendered to find the summary, when that is enough


def summary_of(body: str, config: Config | None = None, *, mdx: bool = False, fmt: str = "markdown") -> str:
    """derive_summary of the rendered body, engine syntax resolved first (none reaches a
    summary). Only its beginning is rendered when that holds a paragraph of text (most posts
    start with one): the first blocks up to SUMMARY_PREFIX characters, cut at a blank line
    outside a fenced block, with the body's link reference definitions, so that reference
    links resolve as they do in the whole post."""
    if fmt != "markdown":  # HTML as it is, reST rendered whole (docutils needs the document)
        return derive_summary(render_body(resolve(body, SyntaxContext("", fmt=fmt)).text, config, fmt))
    body = resolve(body, SyntaxContext("", mdx=mdx)).text
    if len(body) > SUMMARY_PREFIX * 2:
        cut = body.find("\n\n", SUMMARY_PREFIX)
        if cut != -1 and len(_FENCE.findall(body, 0, cut)) % 2 == 0:
            head = body[:cut] + "\n\n" + "\n".join(_LINK_DEFINITION.findall(body, cut))
            summary = derive_summary(render_body(head, config))
            if summary:
                return summary
    return derive_summary(render_body(body, config))
_FOOTNOTE_REF = re.compile(r"<sup[^>]*>\s*<a[^>]*(?:fnref|footnote)[^>]*>.*?</a>\s*</sup>", re.S)
_TEMPLATE_TAG = re.compile(r"^(?:\{%.*%\}|\{\{.*\}\})$", re.S)


def derive_summary(body_html: str, limit: int = 280) -> str:
    """Plain text from the first paragraph of the rendered body that has text: headings
    (setext ones included), code, tables and images are not paragraphs of text, and neither is
    a template tag on its own (`{% ... %}`, `{{< ... >}}`) that nothing resolved."""
    for m in _PARAGRAPH.finditer(body_html):
        inner = _FOOTNOTE_REF.sub("", m.group(1))
        text = html.unescape(re.sub(r"\s+", " ", _TAG.sub("", inner))).strip()
        if not text or _TEMPLATE_TAG.match(text):
            continue
        if len(text) > limit:
            text = text[: limit - 1].rsplit(" ", 1)[0] + "…"
        return clean_text(text)
    return ""
