"""Block syntax some engines add to Markdown, resolved before it is rendered (syntax.py calls
these on the post's text with its code set aside): heading attributes (`## Title {#id}`) and
admonitions (`:::note[Title]`). Which engines have which is syntax.py's to say."""

from __future__ import annotations

import html
import re
from typing import Callable


# --- heading attributes -----------------------------------------------------------------

# An attribute list: `{#id}`, `{#id .class}`, kramdown's `{: #id .class}`, `{.class key=v}`.
_ATTR_TOKEN = r"""(?:[#.][\w:-]+|[\w-]+=(?:"[^"\n]*"|'[^'\n]*'|[^\s"'}]+))"""
_ATTR_LIST = r"\{:?[ \t]*(" + _ATTR_TOKEN + r"(?:[ \t]+" + _ATTR_TOKEN + r")*)[ \t]*\}"
_ATX_ATTRS = re.compile(r"^( {0,3}#{1,6}[ \t]+.*?)[ \t]*" + _ATTR_LIST + r"[ \t]*#*[ \t]*$")
_TEXT_ATTRS = re.compile(r"^(.*?\S)[ \t]*" + _ATTR_LIST + r"[ \t]*$")
_SETEXT_UNDERLINE = re.compile(r"^ {0,3}(?:=+|-+)[ \t]*$")
_ATX = re.compile(r"^ {0,3}#{1,6}(?:[ \t]|$)")
_IAL_LINE = re.compile(r"^ {0,3}\{:[^{}\n]*\}[ \t]*$")  # kramdown's block IAL (or ALD) on its own
_INLINE_IAL = re.compile(r"\{:[^{}\n]*\}")
# A span IAL right after its element, running over line breaks (kramdown's SPAN_IAL takes any
# character but '}'): `[a][r]{:\ntarget="_blank"}`.
_BROKEN_INLINE_IAL = re.compile(r"(?<=\S)\{:[^{}\n]*(?:\n[^{}\n]*){1,3}\}")
# What a heading's attributes become until add_heading_ids (markup.py) sets them on the <hN>:
# characters of Unicode's private use area that every Markdown engine passes through.
HEADING_MARK = re.compile("[ \t]*\ue002((?:[#.][\\w:-]+ ?)*)\ue003")


def _mark(attrs: str) -> str:
    kept = [t for t in re.findall(_ATTR_TOKEN, attrs) if t[0] in "#."]  # key=value: no use in a feed
    return " \ue002" + " ".join(kept) + "\ue003"


def heading_attributes(text: str, *, kramdown: bool, inline_ial: bool) -> str:
    """`## Title {#id .class}` (and a setext heading's) loses its braces and keeps the id and
    classes as a mark for add_heading_ids. kramdown: `{: #id}` on the line after a heading is
    that heading's; any other block IAL applies to a block a feed shows without it (a class),
    so it goes; with `inline_ial`, so do span IALs (`[a](b){:target="_blank"}`), over a line
    break too."""
    if inline_ial and "{:" in text:
        text = _BROKEN_INLINE_IAL.sub("", text)
    lines = text.split("\n")
    out: list[str] = []
    for i, line in enumerate(lines):
        if "{" not in line:
            out.append(line)
            continue
        m = _ATX_ATTRS.match(line)
        if m is None and i + 1 < len(lines) and _SETEXT_UNDERLINE.match(lines[i + 1]) and line.strip():
            m = _TEXT_ATTRS.match(line)
        if m is not None:
            out.append(m.group(1) + _mark(m.group(2)))
            continue
        if kramdown and _IAL_LINE.match(line):
            previous = out[-1] if out else ""
            attrs = re.match(r"^ {0,3}\{:[ \t]*(" + _ATTR_TOKEN + r"(?:[ \t]+" + _ATTR_TOKEN + r")*)?[ \t]*\}", line)
            heading = _ATX.match(previous) or (
                _SETEXT_UNDERLINE.match(previous) and len(out) > 1 and out[-2].strip())
            if heading and attrs and attrs.group(1) and "\ue002" not in previous:
                target = len(out) - 1 if _ATX.match(previous) else len(out) - 2
                out[target] = re.sub(r"[ \t]*#*[ \t]*$", "", out[target]) if _ATX.match(previous) \
                    else out[target].rstrip()
                out[target] += _mark(attrs.group(1))
            continue  # the IAL line itself never shows
        if inline_ial and "{:" in line:
            line = _INLINE_IAL.sub("", line)
        out.append(line)
    return "\n".join(out)


# --- directives (admonitions) -----------------------------------------------------------

# Each engine's admonition types and the title it shows by default (Docusaurus writes its
# label in lower case and capitalises it with CSS; Starlight's label is capitalised).
_DIRECTIVE_OPEN = re.compile(
    r"^([ \t]*)(:{3,})[ \t]*([A-Za-z][\w-]*)(?:\[([^\]\n]*)\])?(?:\{[^}\n]*\})?[ \t]*(.*?)[ \t]*$")
_DIRECTIVE_CLOSE = re.compile(r"^[ \t]*:{3,}[ \t]*$")


def _title_html(title: str) -> str:
    """A directive's title as HTML: its code spans as <code>, the rest as text."""
    pieces = re.split(r"(`+)(.+?)\1", title)
    parts = [html.escape(pieces[0], quote=False)]
    for k in range(1, len(pieces), 3):
        parts.append(f"<code>{html.escape(pieces[k + 1].strip(), quote=False)}</code>")
        parts.append(html.escape(pieces[k + 2], quote=False))
    return "".join(parts)


def _aside(indent: str, kind: str, title: str) -> list[str]:
    """The lines opening an admonition's <aside> (`title` raw: its code spans as <code>)."""
    plain = re.sub(r"(`+)(.+?)\1", r"\2", title)
    return ["", f'{indent}<aside class="admonition admonition-{kind}" aria-label="{html.escape(plain, quote=True)}">',
            f'{indent}<p class="admonition-title"><strong>{_title_html(title)}</strong></p>', ""]


def directives(text: str, admonitions: tuple[tuple[str, str, str], ...], name: Callable[[str], None],
               unmask: Callable[[str], str], title_after_name: bool = True) -> str:
    """`:::type[Title]` ... `:::` (with `title_after_name`, Docusaurus's `:::type Title` too;
    without, as remark-directive parses, a line with text after the type or its label is no
    directive and stays as written; nested ones by more colons) becomes an <aside> with the
    type as a class and the engine's title in a first paragraph, its body left as Markdown.
    An unknown type is dropped, its body kept, named. `admonitions` (the engine's
    Syntax.admonitions): the types it knows, each (as written, its default title, the type it
    is: an alias's class is its type's)."""
    if ":::" not in text:
        return text
    types = {written: (title, kind) for written, title, kind in admonitions}
    lines = text.split("\n")
    result: list[str] = []
    stack: list[tuple[str, bool]] = []  # (indent, known) of each open directive
    for line in lines:
        if ":::" not in line:
            result.append(line)
            continue
        if _DIRECTIVE_CLOSE.match(line):
            if not stack:
                name(line.strip())
                continue
            indent, known = stack.pop()
            result += ["", f"{indent}</aside>", ""] if known else [""]
            continue
        m = _DIRECTIVE_OPEN.match(line)
        if m is None:
            result.append(line)
            continue
        indent, _colons, written, label, rest = m.groups()
        if rest and not title_after_name:
            result.append(line)
            continue
        kind = written.lower()
        known = kind in types
        stack.append((indent, known))
        if not known:  # its label, the site's title for it, stays (remark-directive's [label])
            name(f":::{written}")
            label = unmask((label or "").strip())
            result += (["", f"{indent}<p><strong>{_title_html(label)}</strong></p>", ""] if label
                       else [""])
            continue
        default_title, kind = types[kind]
        # (a code span in the title is a placeholder by now: the title is raw HTML, written whole)
        title = unmask((label if label is not None else rest).strip()) or default_title
        result += _aside(indent, kind, title)
    for indent, known in reversed(stack):  # open at the end: closed there, as the engines do
        result += ["", f"{indent}</aside>", ""] if known else [""]
    return "\n".join(result)


# remark-directive's text directive, `:name[text]{#id .class key=v}`: not after a letter,
# digit or ':' (`10:30`, `a:b[0]`, `::leaf`), nor escaped. The ':' comes first and the
# look back after it (the same test: the character before the ':'), so the regex engine
# jumps from ':' to ':' instead of trying the look back at every character: searching a
# 7 KB post took ~270 us, and every post without a description is searched (summary_of).
TEXT_DIRECTIVE = re.compile(r":(?<![\w:\\]:)([A-Za-z][\w-]*)\[([^\]\n]*)\](\{[^}\n]*\})?")


def text_directives(text: str, name: Callable[[str], None]) -> str:
    """`:name[text]{attrs}` (a site's own remark plugin: `:quote[...]{#id}`) keeps its text;
    the directive and its attributes go, named."""
    def one(m: re.Match) -> str:
        name(m.group(0))
        return m.group(2)
    return TEXT_DIRECTIVE.sub(one, text)


# remark-directive's leaf directive, `::name[label]{attrs}` on a line of its own (a theme's
# card, embed...): what the site's handler makes of it is not known here.
_LEAF_DIRECTIVE = re.compile(r"^[ \t]*::([A-Za-z][\w-]*)(?:\[[^\]\n]*\])?(?:\{[^}\n]*\})?[ \t]*$", re.M)


def leaf_directives(text: str, name: Callable[[str], None]) -> str:
    """A leaf directive line (a site's own handler renders it) is dropped and named."""
    def one(m: re.Match) -> str:
        name(m.group(0).strip())
        return ""
    return _LEAF_DIRECTIVE.sub(one, text) if "::" in text else text


# GitHub's alerts: a blockquote whose first line is `[!NOTE]` (TIP, IMPORTANT, WARNING, CAUTION).
_ALERT = re.compile(r"^([ \t]{0,3})>[ \t]?\[!(NOTE|TIP|IMPORTANT|WARNING|CAUTION)\][ \t]*(.*)$", re.I)
_QUOTED = re.compile(r"^[ \t]{0,3}>[ \t]?(.*)$")


def github_alerts(text: str) -> str:
    """`> [!WARNING]` and the rest of its blockquote become an <aside> of that type with its
    title (Note, Tip, Important, Warning, Caution), the quote's body left as Markdown, as a
    site whose config turns GitHub's alerts into its admonitions shows them."""
    if "[!" not in text:
        return text
    lines = text.split("\n")
    result: list[str] = []
    i = 0
    while i < len(lines):
        m = _ALERT.match(lines[i])
        if m is None:
            result.append(lines[i])
            i += 1
            continue
        indent, kind = m.group(1), m.group(2).lower()
        body = [m.group(3)] if m.group(3).strip() else []
        i += 1
        while i < len(lines) and (q := _QUOTED.match(lines[i])):
            body.append(q.group(1))
            i += 1
        result += _aside(indent, kind, kind.capitalize()) + body + ["", f"{indent}</aside>", ""]
    return "\n".join(result)


# markdown-it-container: `::: name params` ... `:::` (3 or more colons; a close has at least as
# many as its open, and nothing else).
_CONTAINER_OPEN = re.compile(r"^( {0,3})(:{3,})[ \t]*(\S+)(.*?)[ \t]*$")
_CONTAINER_CLOSE = re.compile(r"^ {0,3}(:{3,})[ \t]*$")


def containers(text: str, registered: dict[str, bool], name: Callable[[str], None]) -> str:
    """markdown-it-container blocks of the names a site registers: `<div class="name">` around
    the body (the plugin's own rendering) where `registered[name]`, else (the site renders it
    with its own function) the body alone, the opening line named. Another name stays text."""
    if ":::" not in text:
        return text
    lines = text.split("\n")
    result: list[str] = []
    stack: list[tuple[str, int, bool]] = []  # (indent, colons, rendered as div) of each open block
    for line in lines:
        close = _CONTAINER_CLOSE.match(line)
        if close and stack and len(close.group(1)) >= stack[-1][1]:
            indent, _n, div = stack.pop()
            result += ["", f"{indent}</div>", ""] if div else [""]
            continue
        m = _CONTAINER_OPEN.match(line) if not close else None
        if m is None or m.group(3) not in registered:
            result.append(line)
            continue
        indent, colons, kind = m.group(1), m.group(2), m.group(3)
        div = registered[kind]
        stack.append((indent, len(colons), div))
        if div:
            result += ["", f'{indent}<div class="{html.escape(kind, quote=True)}">', ""]
        else:
            name(line.strip())
            result.append("")
    for indent, _n, div in reversed(stack):  # open at the end: closed there, as the plugin does
        result += ["", f"{indent}</div>", ""] if div else [""]
    return "\n".join(result)


# --- Hexo's tag plugins -----------------------------------------------------------------

def fenced(lang: str, code: str) -> str:
    """`code` as a fenced code block of `lang`, its fence longer than any run inside."""
    code = code.strip("\n")
    ticks = "`" * max(3, max((len(m) for m in re.findall(r"`{3,}", code)), default=0) + 1)
    return f"\n{ticks}{lang}\n{code}\n{ticks}\n"


_HEXO_CODE = re.compile(r"\{%-?\s*(codeblock|code)\b(.*?)-?%\}(.*?)\{%-?\s*end\1\s*-?%\}", re.S)
_HEXO_TAG = re.compile(r"\{%-?\s*(\w+)(.*?)-?%\}", re.S)
_HEXO_ARG = re.compile(r""""([^"]*)"|'([^']*)'|(\S+)""")


def hexo_tags(text: str, asset_folder: str, name: Callable[[str], None], unmask: Callable[[str], str],
              keep: Callable[[str], str]) -> str:
    """Hexo's tag plugins (hexo/lib/plugins/tag): `{% codeblock [title] lang:x %}` and
    `{% code %}` become fenced code of their language; with post_asset_folder, `{% asset_img
    name [title [alt]] %}` is the image in the post's asset folder (the post's file name
    without its extension, beside it), `{% asset_path name %}` its path and `{% asset_link
    name [title] %}` a link to it. Any other tag (a theme's `{% note %}`) is dropped and
    named, what it encloses kept."""
    def code(m: re.Match) -> str:
        lang = re.search(r"\blang:(\S+)", m.group(2))
        return keep(fenced(lang.group(1) if lang else "", unmask(m.group(3))))  # (set aside: code)

    def tag(m: re.Match) -> str:
        kind, raw = m.group(1), m.group(2)
        tokens = list(_HEXO_ARG.finditer(raw))
        if kind in ("asset_img", "asset_image", "asset_path", "asset_link") and tokens and asset_folder:
            # asset_img [class names] name [width] [height] [title [alt]]: the name has a '.'
            at = next((i for i, t in enumerate(tokens) if "." in t.group(0)), 0)
            file = next(g for g in tokens[at].groups() if g is not None)
            end = tokens[at].end()
            for t in tokens[at + 1:at + 3]:  # width, height
                if not t.group(0).isdigit():
                    break
                end = t.end()
            path = html.escape(f"{asset_folder}/{file}", quote=True)
            if kind == "asset_path":
                return path
            # the img tag's rMeta: a title, then an alt, each optionally quoted
            meta = re.match(r"""\s*["']?([^"']*)["']?\s*["']?([^"']*)["']?""", raw[end:])
            title, alt = meta.group(1).strip(), meta.group(2).strip()
            if kind == "asset_link":
                return f'<a href="{path}">{html.escape(title or file, quote=False)}</a>'
            return (f'<img src="{path}" alt="{html.escape(alt or title, quote=True)}"'
                    + (f' title="{html.escape(title, quote=True)}">' if title else ">"))
        if not kind.startswith("end"):
            name(m.group(0))
        return ""

    return _HEXO_TAG.sub(tag, _HEXO_CODE.sub(code, text))
