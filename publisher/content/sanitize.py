"""Rendered HTML made safe for feed readers and mail clients, with nh3 (ammonia, compiled).

Posts carry raw HTML (the engines keep it): scripts, inline styles, event handlers,
`javascript:` links and `<iframe>` embeds. Readers strip these unpredictably and the W3C feed
validator warns about them (SecurityRisk, DangerousStyleAttr). What stays is what readers show:
text markup, links, images, figures, tables, code, details/summary, video and audio (always
with controls). A YouTube or Vimeo embed becomes a link to the video (YouTube's with its
thumbnail); any other iframe becomes a link to what it framed.

`sanitize_html` is the fast path (feeds); `removed_by_sanitizing` says, for `publisher check`,
what sanitising took out of a post.
"""

from __future__ import annotations

import html
import re
from collections import Counter

_TAGS = {
    "a", "abbr", "acronym", "article", "aside", "audio", "b", "bdi", "bdo", "blockquote", "br",
    "caption", "cite", "code", "col", "colgroup", "dd", "del", "details", "dfn", "div", "dl",
    "dt", "em", "figcaption", "figure", "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header",
    "hr", "i", "img", "input", "ins", "kbd", "li", "mark", "ol", "p", "picture", "pre", "q",
    "rp", "rt", "ruby", "s", "samp", "section", "small", "source", "span", "strike", "strong",
    "sub", "summary", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "time", "tr",
    "track", "u", "ul", "var", "video", "wbr",
}
_ATTRIBUTES = {
    "*": {"id", "class", "title", "lang", "dir", "aria-label", "aria-hidden", "role"},
    "a": {"href", "hreflang"},
    "img": {"src", "srcset", "sizes", "alt", "width", "height", "loading"},
    "picture": set(),
    "source": {"src", "srcset", "sizes", "type", "media"},
    "video": {"src", "poster", "width", "height", "loop", "muted", "playsinline", "preload"},
    "audio": {"src", "loop", "muted", "preload"},
    "track": {"src", "kind", "srclang", "label", "default"},
    "td": {"colspan", "rowspan", "align"},
    "th": {"colspan", "rowspan", "align", "scope"},
    "ol": {"start", "reversed", "type"},
    "li": {"value"},
    "input": {"type", "checked", "disabled"},  # GFM task list checkboxes
    "details": {"open"},
    "time": {"datetime"},
    "blockquote": {"cite"},
    "q": {"cite"},
    "del": {"cite", "datetime"},
    "ins": {"cite", "datetime"},
}
# Whose cleaning the render cache's HTML went through, with nh3's version (cache.py): bump
# when sanitize_html's output changes, so HTML an older version cleaned is never reused.
SANITIZER_VERSION = "3"

# --- URLs ----------------------------------------------------------------------------------
# Every URL that leaves (an attribute below, a front matter image or link) passes url_allowed:
# http(s), mailto, or a reference relative to the page; data: only as an <img>'s image.
# It reads the value as a browser does: HTML entities decoded (once more than the caller did,
# for readers that decode twice), ASCII tabs and newlines removed anywhere ('da\nta:' is
# 'data:'), C0 controls and spaces stripped at both ends.

_URL_SCHEMES = {"http", "https", "mailto", "tel"}  # tel: phone links, common on blogs and harmless
_URL_ATTRS = {"href", "src", "srcset", "poster", "cite", "xlink:href", "background", "action",
              "formaction", "longdesc", "usemap", "data", "codebase", "manifest", "ping", "icon"}
_SCHEME = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*):")
_TAB_OR_NEWLINE = re.compile(r"[\t\n\r]")
_C0_OR_SPACE = "".join(map(chr, range(0x21)))
_DATA_IMAGE = re.compile(r"data:image/(?:png|gif|jpeg|webp|avif);", re.I)


def url_scheme(value: str) -> str:
    """The scheme a browser reads in `value` (lowercase), '' for a relative reference; the
    most dangerous of the value as written and its entity-decoded form."""
    schemes = []
    for text in (value, html.unescape(value)) if "&" in value else (value,):
        text = _TAB_OR_NEWLINE.sub("", text).strip(_C0_OR_SPACE)
        m = _SCHEME.match(text)
        schemes.append(m.group(1).lower() if m else "")
    return next((s for s in schemes if s not in _URL_SCHEMES and s), schemes[0])


def url_allowed(value: str, *, image: bool = False) -> bool:
    """May `value` leave in an href, src and the like (see above)? `image`: it is an
    <img>'s src, where a data: image is allowed too."""
    scheme = url_scheme(value)
    if scheme == "data":
        return image and bool(_DATA_IMAGE.match(_TAB_OR_NEWLINE.sub("", value).strip(_C0_OR_SPACE)))
    return scheme == "" or scheme in _URL_SCHEMES


def _srcset_allowed(value: str) -> bool:
    """Every candidate's URL of a srcset (`url [descriptor], url [descriptor]...`)."""
    for candidate in value.split(","):
        parts = candidate.split()
        if parts and not url_allowed(parts[0]):
            return False
    return True


def _keep(tag: str, attr: str, value: str) -> str | None:
    if attr == "srcset":
        return value if _srcset_allowed(value) else None
    if attr in _URL_ATTRS:
        return value if url_allowed(value, image=tag == "img" and attr == "src") else None
    if tag == "input" and attr == "type" and value.lower() != "checkbox":
        return None
    return value


_cleaner = None


def _nh3():
    global _cleaner
    if _cleaner is None:
        import nh3  # compiled (ammonia); importing it takes ~2 ms

        _cleaner = nh3.Cleaner(
            tags=_TAGS,
            attributes=_ATTRIBUTES,
            url_schemes=_URL_SCHEMES | {"data"},  # _keep decides, for every URL attribute
            attribute_filter=_keep,
            generic_attribute_prefixes={"data-"},
            set_tag_attribute_values={"video": {"controls": ""}, "audio": {"controls": ""},
                                      "input": {"disabled": ""}},
            link_rel=None,  # readers open links themselves; no rel= is added to what authors wrote
            strip_comments=True,
        )
    return _cleaner


def sanitize_html(fragment: str) -> str:
    """`fragment` with only what readers show safely (see the module docstring)."""
    if not fragment:
        return fragment
    return _nh3().clean(replace_iframes(flatten_deep(fragment)))


# --- nesting --------------------------------------------------------------------------------
# The HTML5 tree builder (html5ever, in nh3) checks the stack of open elements at most tags
# ("is a <p> in button scope?", "is a <blockquote> in scope?"): each check walks the stack,
# so a post nested n deep costs n**2. 200,000 nested '>' (a 200 KB post: as many
# <blockquote>s) took 5.5 minutes, 100,000 nested <div>s 23 s. Browsers cap the depth of what
# they build (Chromium at 512: deeper elements become siblings); flatten_deep does the same
# before nh3 sees the HTML, in one linear pass, so nh3's walks are at most MAX_HTML_DEPTH long.

MAX_HTML_DEPTH = 256
_TAG_TOKEN = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9:-]*)[^>]*>")
# Elements that never hold others (void), or that the tree builder closes by themselves
# when a sibling starts (<p><p>, <li><li>, <td><td>...): they do not make a document deeper.
_FLAT_ELEMENTS = frozenset({
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param",
    "source", "track", "wbr", "p", "li", "dt", "dd", "tr", "td", "th", "option", "optgroup",
    "rb", "rp", "rt", "rtc", "thead", "tbody", "tfoot", "colgroup", "caption"})


def flatten_deep(fragment: str) -> str:
    """`fragment` with the start and end tags of elements nested deeper than MAX_HTML_DEPTH
    removed (their text kept, as siblings of the elements around them). Linear: one pass
    over the tags, counting depth; a fragment with fewer start tags than the limit cannot be
    that deep and is returned at once."""
    if fragment.count("<") - fragment.count("</") <= MAX_HTML_DEPTH:
        return fragment  # (at most that many start tags: two counts, ~7 us for a 9 KB post)
    pieces: list[str] = []
    depth = at = 0
    for m in _TAG_TOKEN.finditer(fragment):
        name = m.group(2).lower()
        if name in _FLAT_ELEMENTS:
            continue  # (a '/>' closes nothing in HTML: <div/> opens a <div>, and counts)
        if m.group(1):  # an end tag
            drop = depth > MAX_HTML_DEPTH
            depth = max(depth - 1, 0)
        else:
            depth += 1
            drop = depth > MAX_HTML_DEPTH
        if drop:
            pieces.append(fragment[at:m.start()])
            at = m.end()
    if not pieces:
        return fragment
    pieces.append(fragment[at:])
    return "".join(pieces)


# --- embeds -----------------------------------------------------------------------------

_IFRAME = re.compile(r"<iframe\b([^>]*)>(.*?)</iframe\s*>|<iframe\b([^>]*)/?>", re.I | re.S)
_ATTR = re.compile(r"""([\w:-]+)\s*=\s*("[^"]*"|'[^']*'|[^\s"'>]+)""")
_YOUTUBE = re.compile(
    r"^(?:https?:)?//(?:www\.)?(?:youtube(?:-nocookie)?\.com/embed/|youtu\.be/)([\w-]{6,20})", re.I)
_VIMEO = re.compile(r"^(?:https?:)?//(?:player\.)?vimeo\.com/(?:video/)?(\d+)", re.I)


def _attrs(text: str) -> dict[str, str]:
    found = {}
    for name, raw in _ATTR.findall(text):
        value = raw[1:-1] if raw[:1] in "\"'" else raw
        found.setdefault(name.lower(), html.unescape(value))
    return found


def replace_iframes(fragment: str) -> str:
    """Each <iframe> as a link: a YouTube video as its thumbnail linked to the video, a Vimeo
    video as a link to it, anything else as a link to the framed page (or nothing, without a
    src)."""
    if "<iframe" not in fragment.lower():
        return fragment

    def link(m: re.Match) -> str:
        attrs = _attrs(m.group(1) if m.group(1) is not None else m.group(3) or "")
        src = attrs.get("src", "").strip()
        if src.startswith("//"):
            src = "https:" + src
        if not src.lower().startswith(("http://", "https://")):
            return ""
        title = attrs.get("title", "").strip()
        youtube, vimeo = _YOUTUBE.match(src), _VIMEO.match(src)
        if youtube:
            vid = youtube.group(1)
            label = html.escape(title or "Watch the video on YouTube", quote=True)
            return (f'<a href="https://www.youtube.com/watch?v={vid}"><img '
                    f'src="https://i.ytimg.com/vi/{vid}/hqdefault.jpg" alt="{label}"></a>')
        if vimeo:
            href, label = f"https://vimeo.com/{vimeo.group(1)}", title or "Watch the video on Vimeo"
        else:
            href, label = src, title or src
        return f'<a href="{html.escape(href, quote=True)}">{html.escape(label, quote=False)}</a>'

    return _IFRAME.sub(link, fragment)


# --- what was removed --------------------------------------------------------------------

_START_TAG = re.compile(r"<([a-zA-Z][\w-]*)((?:[^>\"']|\"[^\"]*\"|'[^']*')*)>")
_COMMENT = re.compile(r"<!--.*?-->", re.S)
_CODE = re.compile(r"<(pre|code)\b.*?</\1>", re.S | re.I)


_ANY_ATTR = re.compile(r"""([^\s"'<>/=]+)(?:\s*=\s*("[^"]*"|'[^']*'|[^\s"'>]+))?""")


def _inventory(fragment: str) -> tuple[Counter, bool]:
    """What a fragment holds that sanitising may remove: elements; the attributes of elements
    that are allowed (a removed element's go with it); URLs with a scheme not allowed. And
    whether any of it is something sanitising removes or changes."""
    found: Counter = Counter()
    suspect = False
    for tag, attrs in _START_TAG.findall(_COMMENT.sub("", fragment)):
        tag = tag.lower()
        found[f"<{tag}>"] += 1
        if tag not in _TAGS:
            suspect = True
            continue
        allowed = _ATTRIBUTES["*"] | _ATTRIBUTES.get(tag, set())
        for name, raw in _ANY_ATTR.findall(attrs):
            name = name.lower()
            value = html.unescape(raw[1:-1] if raw[:1] in "\"'" else raw)
            if name == "srcset" and not _srcset_allowed(value):
                bad = next(c.split()[0] for c in value.split(",") if c.split() and not url_allowed(c.split()[0]))
                found[f"{url_scheme(bad)}: URL in <{tag} {name}>"] += 1
                suspect = True
            elif name in _URL_ATTRS and not url_allowed(value, image=tag == "img" and name == "src"):
                found[f"{url_scheme(value)}: URL in <{tag} {name}>"] += 1
                suspect = True
            else:
                found[f"{name}="] += 1
                suspect = suspect or not (name in allowed or name.startswith("data-"))
    return found, suspect


# What Markdown alone produces: a fragment with no other tag, no event handler, style or
# scriptable URL loses nothing to sanitising (the common case, checked in one scan).
_PLAIN_MARKDOWN = re.compile(
    r"<(?!/?(?:p|a|em|strong|code|pre|ul|ol|li|h[1-6]|blockquote|hr|br|img|table|thead|tbody|"
    r"tr|th|td|del|input|sup|section)[\s/>])|\s(?:on[a-z]+|style|srcset|cite|poster)\s*=|"
    r"(?:javascript|vbscript|data):|"
    # a URL that does not start with http(s):// or mailto: and holds a ':' or an entity
    r"\s(?:href|src)\s*=\s*[\"']?(?!https?://|mailto:)[^\"'\s>]*[:&]",
    re.I)


def removed_by_sanitizing(fragment: str) -> list[str]:
    """What sanitize_html takes out of `fragment`, e.g. ["<iframe> made a link x2", "<script>",
    "javascript: URL in <a href>", "style= x3"]; empty when nothing."""
    flat = flatten_deep(fragment)
    deep = [f"nesting past {MAX_HTML_DEPTH} levels (flattened)"] if flat is not fragment else []
    if not _PLAIN_MARKDOWN.search(flat):
        return deep
    framed = replace_iframes(flat)
    before, suspect = _inventory(framed)
    iframes = framed is not flat and _inventory(flat)[0]["<iframe>"]
    if not suspect and not iframes:
        return deep  # everything in it is allowed: no need to sanitise and compare
    after, _ = _inventory(_nh3().clean(framed))
    removed = deep + (["<iframe> made a link" + (f" x{iframes}" if iframes > 1 else "")] if iframes else [])
    for item, count in sorted((before - after).items()):
        removed.append(item + (f" x{count}" if count > 1 else ""))
    return removed
