"""Engine syntax outside Markdown, resolved before the Markdown is rendered.

Liquid (Jekyll, Eleventy), Hugo shortcodes, MDX, admonitions (`:::note`, Docusaurus and
Starlight) and heading attributes (`## Title {#id}`; these two in blocks.py) are not Markdown:
left alone they reach a feed as text (`{% raw %}`, `{{< figure >}}`, `import X from ...`,
`:::tip`, `{#id}`). `resolve` turns each into what the engine publishes, as plain HTML a feed
reader or mail client can show (a linked thumbnail rather than an iframe), or into a fenced
code block the Markdown renderer then formats. What it cannot resolve is dropped (a paired tag keeps its inner text) and named in
`Resolved.unresolved`, which the build reports as one line per post.

Code is never touched: fenced and indented code blocks and code spans are set aside before
anything is resolved, with two exceptions that are the engines' own escapes and what they
publish: a `{% raw %}...{% endraw %}` pair inside code is unwrapped (Jekyll and Eleventy run
Liquid before Markdown, so that is how a post shows Liquid in code), and Hugo's comment form
`{{</* x */>}}` becomes `{{< x >}}`.
"""

from __future__ import annotations

import html
import os
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping
from urllib.parse import urlsplit

from ..datafiles import brace_end
from . import blocks
from .blocks import fenced as _fenced

if TYPE_CHECKING:
    from ..engines.rules import Syntax



def source_format(path: str) -> str:
    """What a post file is written in: "markdown", "html" (Hugo's .html content: front matter,
    then HTML as it is published) or "rst" (Pelican's reStructuredText)."""
    suffix = os.path.splitext(path)[1].lower()
    return {".html": "html", ".htm": "html", ".rst": "rst"}.get(suffix, "markdown")


def syntax_of(dialect: str) -> Syntax:
    """Which syntaxes the engine `dialect` names (engines/*.py) puts in its posts."""
    from ..engines import rules_for  # (engines/ reads content/'s helpers: imported when used)

    return rules_for(dialect).syntax


def is_mdx(path: str, dialect: str) -> bool:
    """Whether the engine reads the post file at `path` as MDX."""
    suffix = os.path.splitext(path)[1].lower()
    return suffix == ".mdx" or (suffix in (".md", ".markdown") and syntax_of(dialect).md_is_mdx)


@dataclass(frozen=True)
class SyntaxContext:
    """What resolving needs to know about the site and the post."""

    site_url: str  # config.site.url, no trailing slash
    dialect: str = "auto"
    mdx: bool = False  # the post is an .mdx file
    # The post's front matter, for {{< param >}}, {{ page.x }} and Eleventy's {{ x }}.
    params: Mapping[str, Any] = field(default_factory=dict)
    # The site's Liquid variables: {"site": Jekyll's _config.yml, "<name>": Eleventy's
    # _data/<name>.json}; site.url and site.baseurl always come from site_url.
    variables: Mapping[str, Any] = field(default_factory=dict)
    # (kind, target) -> the post's absolute URL, or None: kind is "post_url" (Jekyll's
    # `{% post_url 2020-01-01-x %}`), "link" (a path from the site folder), "ref" (Hugo).
    post_link: Callable[[str, str], str | None] = lambda kind, target: None
    fmt: str = "markdown"  # source_format of the post: HTML gets shortcodes and Liquid only, reST nothing
    post_file: str = ""  # the post's file (Hexo's asset folder is named after it)


@dataclass
class Resolved:
    text: str
    unresolved: list[str] = field(default_factory=list)  # as written, in order, no repeats

    def name(self, what: str) -> None:
        what = re.sub(r"\s+", " ", what).strip()
        if len(what) > 80:
            what = what[:77] + "..."
        if what not in self.unresolved:
            self.unresolved.append(what)


def resolve(text: str, ctx: SyntaxContext) -> Resolved:
    """`text` (a post's Markdown body) with engine syntax resolved; see the module docstring."""
    out = Resolved(text)
    if ctx.fmt == "rst":  # docutils' own syntax, rendered by docutils (rst.py)
        return out
    # An .mdx file is MDX whatever the site: its braces are expressions, not Liquid.
    syntax = syntax_of(ctx.dialect)
    liquid = syntax.liquid and not ctx.mdx
    hexo = syntax.tag_plugins and not ctx.mdx  # Nunjucks tag plugins: {% raw %} as Liquid's
    shortcodes = syntax.shortcodes and not ctx.mdx
    markdown = ctx.fmt == "markdown"
    # The Markdown plugins the site's own config adds (engines' site_variables read which)
    plugins = None
    if syntax.markdown_plugins and markdown:
        from ..engines.rules import MARKDOWN_PLUGINS  # (engines/ reads content/: imported when used)

        plugins = ctx.variables.get(MARKDOWN_PLUGINS)
    plugins = plugins if isinstance(plugins, Mapping) else {}
    admonitions = syntax.admonitions or tuple(plugins.get("admonitions", ()))
    directives = markdown and bool(admonitions)
    text_directives = markdown and (syntax.text_directives or bool(plugins.get("text_directives")))
    leaves = bool(plugins.get("leaf_directives"))
    alerts = bool(plugins.get("github_alerts"))
    containers = plugins.get("containers") or {}
    attributes = markdown and syntax.heading_ids
    tera = syntax.tera_shortcodes and not ctx.mdx
    if (not (liquid or hexo or shortcodes or ctx.mdx or directives or attributes or text_directives
             or alerts or containers or tera)
            or not (ctx.mdx or _MAYBE_SYNTAX.search(text) or ((directives or containers) and ":::" in text)
                    or (text_directives and blocks.TEXT_DIRECTIVE.search(text))
                    or (leaves and "::" in text) or (alerts and "[!" in text))):
        return out
    if "\ue000" in text or "\ue002" in text:  # the placeholders' own characters: not ours to touch
        return out
    literals: list[str] = []
    masked = _mask(text, literals, liquid=liquid or hexo, shortcodes=shortcodes, out=out, markdown=markdown)
    if attributes:  # before MDX, to which `{#id}` would be an expression
        masked = blocks.heading_attributes(masked, kramdown=syntax.kramdown_ial, inline_ial=syntax.inline_ial)
    if alerts:
        masked = blocks.github_alerts(masked)
    if containers:
        masked = blocks.containers(masked, containers, out.name)
    if directives:
        masked = blocks.directives(masked, admonitions, out.name, lambda t: _unmask(t, literals),
                                   syntax.admonition_title_after_name)
    if leaves:
        masked = blocks.leaf_directives(masked, out.name)
    if text_directives:
        # (Docusaurus and Starlight show a directive no plugin handles as it is written)
        masked = blocks.text_directives(masked, out.name)
    if ctx.mdx:
        masked = _mdx(masked, out, literals)
    if shortcodes:
        masked = _shortcodes(masked, ctx, out)
    if tera and ("{{" in masked or "{%" in masked):
        masked = _tera_shortcodes(masked, out, literals)
    if liquid:
        masked = _liquid(masked, ctx, out)
    elif hexo and "{%" in masked:
        masked = blocks.hexo_tags(masked, os.path.splitext(os.path.basename(ctx.post_file))[0], out.name,
                                  lambda t: _unmask(t, literals), lambda t: _keep(literals, t))
    elif syntax.liquid_tags_plugin and "{%" in masked:
        masked = _pelican_tags(masked, ctx, out)
    out.text = _unmask(masked, literals)
    if len(out.unresolved) > 1:  # named in the order the post has them
        flat = re.sub(r"\s+", " ", text)

        def position(name: str) -> int:
            probe = name[:-3] if name.endswith("...") else name
            probe = probe[:-3] if probe.endswith(" />") else probe
            found = flat.find(probe)
            return found if found >= 0 else len(flat)

        out.unresolved.sort(key=position)
    return out


# Cheap test first: most posts have none of it.
_MAYBE_SYNTAX = re.compile(r"\{[{%#:.]")  # and ":::" where directives are resolved

# Text set aside (code, raw) is replaced by \ue000<n>\ue001 while the rest is resolved.
_PLACEHOLDER = re.compile("\ue000(\\d+)\ue001")


def _keep(literals: list[str], text: str) -> str:
    literals.append(text)
    return f"\ue000{len(literals) - 1}\ue001"


def _unmask(text: str, literals: list[str]) -> str:
    # A literal may itself hold placeholders (a fenced block made from a highlight tag).
    for _ in range(3):
        if "\ue000" not in text:
            break
        text = _PLACEHOLDER.sub(
            lambda m: literals[int(m.group(1))] if int(m.group(1)) < len(literals) else m.group(0), text)
    return text


# --- code and raw set aside -------------------------------------------------------------

_FENCE_OPEN = re.compile(r"^([ \t]*)(`{3,}|~{3,})([^\n]*)$")
_BLANK_LINE = re.compile(r"\n[ \t]*\n")
_LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d{1,9}[.)])\s")
_ITEM_CONTENT = re.compile(r"^ *(?:[-*+]|\d{1,9}[.)]) {1,4}(?=\S)")  # up to where its content starts


def _indent(line: str) -> int:
    return len(line.expandtabs(4)) - len(line.expandtabs(4).lstrip(" "))
_RAW_OPEN = re.compile(r"\{%-?\s*raw\s*-?%\}")
_RAW_CLOSE = re.compile(r"\{%-?\s*endraw\s*-?%\}")
_LIQUID_HL = re.compile(r"""\{%-?\s*highlight\s+["']?([\w+#.-]+)["']?[^%]*?-?%\}""")
_LIQUID_HL_END = re.compile(r"\{%-?\s*endhighlight\s*-?%\}")
_HUGO_HL = re.compile(r"\{\{([<%])\s*highlight\s+\"?([\w+#.-]+)\"?[^>%]*?[>%]\}\}")
_HUGO_HL_END = re.compile(r"\{\{[<%]\s*/\s*highlight\s*[>%]\}\}")
_HUGO_COMMENT = re.compile(r"\{\{([<%])/\*(.*?)\*/([>%])\}\}", re.S)


def _in_code(text: str) -> str:
    """Inside code only the engines' own escapes apply (see the module docstring)."""
    if "{%" in text and _RAW_CLOSE.search(text):
        text = re.sub(r"\{%-?\s*raw\s*-?%\}(.*?)\{%-?\s*endraw\s*-?%\}", r"\1", text, flags=re.S)
    if "/*" in text:
        text = _HUGO_COMMENT.sub(r"{{\1\2\3}}", text)
    return text


def _mask(text: str, literals: list[str], *, liquid: bool, shortcodes: bool, out: Resolved,
          markdown: bool = True) -> str:
    """Replace code blocks, code spans, raw regions and highlight blocks by placeholders. In
    HTML (`markdown` false) an indented line is only indented: no code block."""
    lines = text.split("\n")
    result: list[str] = []  # prose lines, and code blocks as placeholders
    i = 0
    previous = "\n"  # the last non-blank line seen outside code ("\n": none, or code)
    item_column = None  # where the content of the list item the prose is in starts, if any

    while i < len(lines):
        line = lines[i]
        fence = _FENCE_OPEN.match(line)
        if fence and not (fence.group(2)[0] == "`" and "`" in fence.group(3)):
            # Up to the closing fence (same character, at least as long), or the end; a fence
            # in a list item also ends with the item, at a line indented less than its content
            # (CommonMark, as the renderer reads it).
            char, length = fence.group(2)[0], len(fence.group(2))
            close = re.compile(r"^[ \t]*" + re.escape(char) + "{" + str(length) + r",}[ \t]*$")
            within = item_column if item_column is not None and _indent(line) >= item_column else None
            j = i + 1
            while (j < len(lines) and not close.match(lines[j])
                   and not (within is not None and lines[j].strip() and _indent(lines[j]) < within)):
                j += 1
            end = j + 1 if j < len(lines) and close.match(lines[j]) else j
            result.append(_keep(literals, _in_code("\n".join(lines[i:end]))))
            previous = "\n"
            i = end
            continue
        indented = markdown and line.startswith(("    ", "\t")) and line.strip()
        if (indented and (not result or not result[-1].strip())
                and not previous.startswith((" ", "\t")) and not _LIST_ITEM.match(previous)):
            # An indented code block: after a blank line, not a list item's continuation.
            j = i
            while j < len(lines) and (lines[j].startswith(("    ", "\t")) or not lines[j].strip()):
                j += 1
            while j > i and not lines[j - 1].strip():
                j -= 1
            result.append(_keep(literals, _in_code("\n".join(lines[i:j]))))
            i = j
            continue
        if line.strip():
            previous = line
            item = _ITEM_CONTENT.match(line.expandtabs(4))
            if item:
                item_column = len(item.group(0))
            elif _indent(line) == 0:
                item_column = None
        result.append(line)
        i += 1
    # Then, over the whole text (a raw region may hold a code block): spans, raw, highlight.
    return _mask_inline("\n".join(result), literals, liquid, shortcodes, out)


def _mask_inline(text: str, literals: list[str], liquid: bool, shortcodes: bool,
                 out: Resolved) -> str:
    """Within prose: code spans, raw regions and highlight blocks become placeholders."""
    pieces: list[str] = []
    pos = 0
    events = [r"(?P<span>`+)"]
    if liquid:
        events += [r"(?P<raw>" + _RAW_OPEN.pattern + ")", r"(?P<lhl>" + _LIQUID_HL.pattern + ")"]
    if shortcodes:
        events += [r"(?P<hhl>" + _HUGO_HL.pattern + ")", r"(?P<hcomment>\{\{[<%]/\*)"]
    event = re.compile("|".join(events), re.S)
    while True:
        m = event.search(text, pos)
        if m is None:
            pieces.append(text[pos:])
            return "".join(pieces)
        pieces.append(text[pos:m.start()])
        if m.group("span") is not None:
            kind = "span"
        elif liquid and m.group("raw") is not None:
            kind = "raw"
        elif liquid and m.group("lhl") is not None:
            kind = "lhl"
        elif shortcodes and m.group("hhl") is not None:
            kind = "hhl"
        else:
            kind = "hcomment"
        if kind == "span":
            run = m.group("span")
            close = re.compile(r"(?<!`)" + run + r"(?!`)")
            # A code span ends within its paragraph: up to the next blank line at most.
            blank = _BLANK_LINE.search(text, m.end())
            end = close.search(text, m.end(), blank.start() if blank else len(text))
            if end is None:  # backticks with no partner are text
                pieces.append(run)
                pos = m.end()
                continue
            pieces.append(_keep(literals, _in_code(text[m.start():end.end()])))
            pos = end.end()
        elif kind == "raw":
            end = _RAW_CLOSE.search(text, m.end())
            if end is None:
                out.name(m.group(0))
                pos = m.end()
                continue
            pieces.append(_keep(literals, text[m.end():end.start()]))
            pos = end.end()
        elif kind in ("lhl", "hhl"):
            closer = _LIQUID_HL_END if kind == "lhl" else _HUGO_HL_END
            end = closer.search(text, m.end())
            lang = _LIQUID_HL.match(m.group(0)).group(1) if kind == "lhl" else \
                _HUGO_HL.match(m.group(0)).group(2)
            if end is None:
                out.name(m.group(0))
                pos = m.end()
                continue
            code = text[m.end():end.start()]
            # The code is already masked where it held spans: restore it as written.
            code = _unmask(code, literals)
            pieces.append(_keep(literals, _fenced(lang, _in_code(code))))
            pos = end.end()
        else:  # {{</* x */>}}: Hugo's way to show a shortcode as text
            end = re.compile(r"\*/[>%]\}\}").search(text, m.end())
            if end is None:
                pieces.append(m.group(0))
                pos = m.end()
                continue
            pieces.append(_keep(literals, _in_code(text[m.start():end.end()])))
            pos = end.end()


# --- Zola's shortcodes (Tera templates: templates/shortcodes/<name>.html) -----------------

# `{{/* name() */}}` and `{%/* name() */%}`: Zola's way to show a shortcode as text.
_TERA_ESCAPED = re.compile(r"\{([{%])/\*\s*(.*?)\s*\*/([}%])\}", re.S)
_TERA_INLINE = re.compile(r"\{\{\s*([A-Za-z_]\w*)\s*\((?:[^()\"']|\"[^\"]*\"|'[^']*')*\)\s*\}\}")
_TERA_BODY = re.compile(r"\{%\s*([A-Za-z_]\w*)\s*\((?:[^()\"']|\"[^\"]*\"|'[^']*')*\)\s*%\}")
_TERA_END = re.compile(r"\{%\s*end\s*%\}")
_IMAGE_FILE = re.compile(r"\.(?:png|jpe?g|gif|webp|avif|svg)$", re.I)


def _tera_shortcodes(text: str, out: Resolved, literals: list[str]) -> str:
    """What a Zola shortcode renders is the site's (or its theme's) template: an inline one
    is dropped, named, unless it names an image file (`{{ image(src="x.png", alt="A") }}`,
    tabi's `dual_theme_image(light_src=...)`): that image; a body one (`{% aside() %}...
    {% end %}`) keeps its body as Markdown, named. An escaped one shows as written, unescaped."""
    text = _TERA_ESCAPED.sub(lambda m: _keep(literals, "{" + m.group(1) + " " + m.group(2) + " " + m.group(3) + "}"),
                             text)

    def inline(m: re.Match) -> str:
        # An image shortcode (a theme's image(src=...), dual_theme_image(light_src=...)): its
        # picture, as a Markdown image (found and copied like any other)
        args = dict(re.findall(r"""(\w+)\s*=\s*["']([^"']*)["']""", m.group(0)))
        src = next((args[k] for k in ("src", "light_src", "path") if _IMAGE_FILE.search(args.get(k, ""))), None)
        if src:
            alt = args.get("alt", "").replace("]", "\\]")
            return f"![{alt}](<{src}>)"
        out.name(m.group(0))
        return ""

    text = _TERA_INLINE.sub(inline, text)
    pieces: list[str] = []
    pos, depth = 0, 0
    token = re.compile(_TERA_BODY.pattern + "|" + _TERA_END.pattern)
    for m in token.finditer(text):
        if m.group(1) is not None:  # an opening tag: its body stays
            out.name(m.group(0))
            depth += 1
        elif depth:  # the {% end %} of an open one
            depth -= 1
        else:
            continue  # a stray {% end %}: text (Zola would refuse the page)
        pieces.append(text[pos:m.start()])
        pos = m.end()
    pieces.append(text[pos:])
    return "".join(pieces)


# --- MDX --------------------------------------------------------------------------------

_MDX_COMMENT = re.compile(r"\{/\*.*?\*/\}", re.S)
_JSX_OPEN = re.compile(r"<(/?)([A-Z][\w.]*)")
# An ES module statement (what MDX takes a line starting with import/export for).
_ESM = re.compile(r"""import\s+(?:["']|.*\bfrom\s*["']|\{[^}]*$)"""
                  r"|export\s+(?:const|let|var|function|async|class|default|\{|\*)")


# `import cover from './cover.png'`: a default import of a file, which `{cover}` (or Astro's
# `{cover.src}`) then names.
_FILE_IMPORT = re.compile(r"""import\s+([A-Za-z_$][\w$]*)\s+from\s*(["'])(\.{1,2}/[^"'\n]+)\2""")


def _mdx(text: str, out: Resolved, literals: list[str]) -> str:
    text = _MDX_COMMENT.sub("", text)
    lines = text.split("\n")
    kept: list[str] = []
    imports: dict[str, str] = {}
    i = 0
    while i < len(lines):
        if _ESM.match(lines[i]):
            found = _FILE_IMPORT.match(lines[i])
            if found:
                imports[found.group(1)] = found.group(3)
            # One ES statement, possibly over several lines ({ a,\n b } from "x").
            depth = 0
            while i < len(lines):
                depth += lines[i].count("{") + lines[i].count("(") - lines[i].count("}") - lines[i].count(")")
                i += 1
                if depth <= 0 and not lines[i - 1].rstrip().endswith((",", "{", "(", "=")):
                    break
            continue
        kept.append(lines[i])
        i += 1
    text = "\n".join(kept)
    return _no_indented_code(_drop_components(text, out, literals, imports))


def _no_indented_code(text: str) -> str:
    """MDX has no indented code: a component's indented children are a paragraph. With the
    component dropped, such a line would read as code to the Markdown engine, so it loses
    its indentation (a list item's continuation keeps it)."""
    lines = text.split("\n")
    previous = ""  # the last non-blank line
    for i, line in enumerate(lines):
        if (line.startswith(("    ", "\t")) and line.strip() and (i == 0 or not lines[i - 1].strip())
                and not previous.startswith((" ", "\t")) and not _LIST_ITEM.match(previous)):
            lines[i] = line.lstrip()
        if lines[i].strip():
            previous = lines[i]
    return "\n".join(lines)


def _tag_end(text: str, pos: int) -> int:
    """Index just past the '>' closing a JSX tag opened before pos: quotes and {expressions}
    may hold '>'. -1 if there is none."""
    depth = 0
    quote = ""
    while pos < len(text):
        c = text[pos]
        if quote:
            if c == quote:
                quote = ""
        elif c in "\"'`":
            quote = c
        elif c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
        elif c == ">" and depth <= 0:
            return pos + 1
        pos += 1
    return -1


_HTML_OPEN = re.compile(r"<[a-z][\w-]*(?=[\s/>])")
_EXPR_ATTR = re.compile(r"""(\s)(?:([\w:.-]+)\s*=\s*)?\{""")


def _attribute_value(expr: str, imports: Mapping[str, str]) -> str | None:
    """What an attribute's {expression} stands for, when it is a constant a feed can carry:
    a number, a string, or an imported file (`cover`, `cover.src`). None otherwise."""
    expr = expr.strip()
    if re.fullmatch(r"-?\d+(?:\.\d+)?", expr):
        return expr
    quoted = re.fullmatch(r"""(["'])(.*)\1|`([^`$]*)`""", expr, re.S)
    if quoted:
        return quoted.group(2) if quoted.group(1) else quoted.group(3)
    name = re.fullmatch(r"([A-Za-z_$][\w$]*)(?:\.src)?", expr)
    if name and name.group(1) in imports:
        return imports[name.group(1)]
    return None


def _html_attributes(text: str, out: Resolved, literals: list[str], imports: Mapping[str, str]) -> str:
    """In HTML tags written in MDX (lower case: `<img src={cover.src} width={600}>`), an
    attribute's {expression} becomes its value where it is a constant or an imported file;
    any other is dropped with its attribute, and named. JSX's className is HTML's class."""
    if "={" not in text and "{..." not in text and "className=" not in text:
        return text
    pieces: list[str] = []
    pos = 0
    while (m := _HTML_OPEN.search(text, pos)) is not None:
        end = _tag_end(text, m.end())
        if end < 0:
            break
        tag = text[m.start():end]
        pieces.append(text[pos:m.start()])
        fixed, cursor = [], 0
        while (a := _EXPR_ATTR.search(tag, cursor)) is not None:
            close = brace_end(tag, a.end() - 1)
            if close < 0:
                break
            fixed.append(tag[cursor:a.start()])
            name, expr = a.group(2), _unmask(tag[a.end():close - 1], literals)  # `x`: no code span
            value = _attribute_value(expr, imports) if name else None
            if value is not None:
                fixed.append(f'{a.group(1)}{name}="{_attr(value)}"')
            elif name and expr.strip() == "true":
                fixed.append(f"{a.group(1)}{name}")
            elif not (name and expr.strip() == "false"):
                out.name(_unmask(tag[a.start():close], literals).strip())
            cursor = close
        fixed.append(tag[cursor:])
        pieces.append(re.sub(r"(\s)className=", r"\1class=", "".join(fixed)))
        pos = end
    pieces.append(text[pos:])
    return "".join(pieces)


def _drop_components(text: str, out: Resolved, literals: list[str],
                     imports: Mapping[str, str] | None = None) -> str:
    """JSX components (capitalised tags) dropped, their children kept; {expressions} in HTML
    tags' attributes resolved or dropped; other {expressions} named."""
    text = _html_attributes(text, out, literals, imports or {})
    pieces: list[str] = []
    pos = 0
    while True:
        m = _JSX_OPEN.search(text, pos)
        if m is None:
            pieces.append(text[pos:])
            break
        end = _tag_end(text, m.end())
        if end < 0:
            pieces.append(text[pos:])
            break
        pieces.append(text[pos:m.start()])
        if text[end - 2] == "/":  # self-closing: nothing of it is left, so say so
            out.name(f"<{m.group(2)} />")
        pos = end
    text = "".join(pieces)

    # {expressions}, braces balanced, are JavaScript: nothing a feed can show. `\{` is MDX's
    # escape for a brace that is text: left to Markdown, whose escape it is too ({ shown).
    pieces = []
    pos = 0
    while (start := _unescaped_brace(text, pos)) >= 0:
        depth, end = 0, start
        while end < len(text):
            if text[end] == "\\":
                end += 2
                continue
            depth += {"{": 1, "}": -1}.get(text[end], 0)
            if depth == 0:
                break
            end += 1
        if depth:
            break  # unbalanced: left as it is
        pieces.append(text[pos:start])
        out.name(_unmask(text[start:end + 1], literals))
        pos = end + 1
    pieces.append(text[pos:])
    return "".join(pieces)


def _unescaped_brace(text: str, pos: int) -> int:
    """Index of the first '{' at or after pos that no backslash escapes, or -1."""
    while (start := text.find("{", pos)) >= 0:
        before = start
        while before > 0 and text[before - 1] == "\\":
            before -= 1
        if (start - before) % 2 == 0:
            return start
        pos = start + 1
    return -1


# --- Hugo shortcodes --------------------------------------------------------------------

_SHORTCODE = re.compile(r"\{\{([<%])\s*(/?)\s*([\w./-]+)((?:\"[^\"]*\"|`[^`]*`|[^\"`])*?)\s*(/?)\s*[>%]\}\}",
                        re.S)
_PARAM = re.compile(r"""(?:([\w-]+)\s*=\s*)?("(?:[^"\\]|\\.)*"|`[^`]*`|[^\s"`]+)""")


def _params(args: str) -> tuple[list[str], dict[str, str]]:
    positional: list[str] = []
    named: dict[str, str] = {}
    for m in _PARAM.finditer(args):
        value = m.group(2)
        if value[:1] == '"':
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        elif value[:1] == "`":
            value = value[1:-1]
        if m.group(1):
            named[m.group(1)] = value
        else:
            positional.append(value)
    return positional, named


def _attr(value: str) -> str:
    return html.escape(value, quote=True)


def _shortcodes(text: str, ctx: SyntaxContext, out: Resolved) -> str:
    # Pair each closing shortcode with the nearest opening one of the same name before it,
    # innermost first; what is left has no closing partner and stands alone.
    while True:
        tokens = list(_SHORTCODE.finditer(text))
        pair = None
        for k, close in enumerate(tokens):
            if close.group(2) != "/":
                continue
            for open_ in reversed(tokens[:k]):
                if open_.group(2) != "/" and open_.group(3) == close.group(3) and not open_.group(5):
                    pair = (open_, close)
                    break
            if pair is None:  # a closing tag with no opening: drop it
                out.name(close.group(0))
                text = text[:close.start()] + text[close.end():]
            break
        if pair is None:
            if any(t.group(2) == "/" for t in tokens):
                continue
            break
        open_, close = pair
        inner = text[open_.end():close.start()]
        html_text = _shortcode(open_, inner, ctx, out)
        text = text[:open_.start()] + html_text + text[close.end():]
    return _SHORTCODE.sub(lambda m: _shortcode(m, None, ctx, out), text)


def _shortcode(m: re.Match, inner: str | None, ctx: SyntaxContext, out: Resolved) -> str:
    name = m.group(3)
    positional, named = _params(m.group(4))

    def get(key: str, index: int | None = None) -> str:
        if key in named:
            return named[key]
        if index is not None and index < len(positional):
            return positional[index]
        return ""

    if name == "figure":
        return _figure(get, ctx) + (inner or "")
    if name == "youtube":
        video = get("id", 0)
        if video:
            title = get("title") or "YouTube video"
            return (f'<a href="https://www.youtube.com/watch?v={_attr(video)}">'
                    f'<img src="https://i.ytimg.com/vi/{_attr(video)}/hqdefault.jpg" alt="{_attr(title)}"></a>')
    elif name == "vimeo":
        video = get("id", 0)
        if video:
            return f'<a href="https://vimeo.com/{_attr(video)}">{html.escape(get("title") or "Vimeo video")}</a>'
    elif name in ("ref", "relref"):
        target = get("path", 0)
        url = ctx.post_link("ref", target) if target else None
        if url:
            return url
    elif name == "gist":
        user, gist = get("user", 0), get("id", 1)
        if user and gist:
            url = f"https://gist.github.com/{user}/{gist}"
            file = get("file", 2)
            anchor = "#file-" + re.sub(r"[^\w-]", "-", file.lower()) if file else ""
            label = f"{user}/{gist}" + (f" ({file})" if file else "")
            return f'<a href="{_attr(url + anchor)}">Gist {html.escape(label)}</a>'
    elif name in ("x", "tweet"):
        user, post_id = get("user"), get("id", 0)
        if post_id and user:
            host = "x.com" if name == "x" else "twitter.com"
            return (f'<a href="https://{host}/{_attr(user)}/status/{_attr(post_id)}">'
                    f'Post by @{html.escape(user)}</a>')
        if post_id.isdigit():
            return f'<a href="https://twitter.com/i/web/status/{post_id}">Post on X</a>'
    elif name == "param":
        value = _lookup(ctx.params, get("name", 0))
        if value is not None:
            return html.escape(str(value), quote=False)
    elif name == "details" and inner is not None:
        summary = get("summary") or "Details"
        is_open = " open" if get("open").lower() == "true" else ""
        return f"<details{is_open}>\n<summary>{html.escape(summary)}</summary>\n\n{inner.strip()}\n\n</details>"
    out.name(m.group(0))
    return inner or ""


def _figure(get: Callable[..., str], ctx: SyntaxContext) -> str:
    src = get("src")
    attrs = "".join(f' {key}="{_attr(get(key))}"' for key in ("alt", "width", "height") if get(key))
    img = f'<img src="{_attr(src)}"{attrs}>'
    if get("link"):
        img = f'<a href="{_attr(get("link"))}">{img}</a>'
    caption = ""
    title, text, attr = get("title"), get("caption"), get("attr")
    if title or text or attr:
        caption = "<figcaption>"
        if title:
            caption += f"<h4>{html.escape(title)}</h4>"
        if text or attr:
            credit = html.escape(attr)
            if attr and get("attrlink"):
                credit = f'<a href="{_attr(get("attrlink"))}">{credit}</a>'
            caption += "<p>" + " ".join(part for part in (html.escape(text), credit) if part) + "</p>"
        caption += "</figcaption>"
    css = f' class="{_attr(get("class"))}"' if get("class") else ""
    return f"<figure{css}>{img}{caption}</figure>"


def _lookup(params: Mapping[str, Any], key: str) -> Any:
    value: Any = params
    for part in key.split("."):
        if not isinstance(value, Mapping):
            return None
        matches = [v for k, v in value.items() if str(k).lower() == part.lower()]
        if not matches:
            return None
        value = matches[0]
    if isinstance(value, (Mapping, list)):
        return None
    return value


# --- Liquid -----------------------------------------------------------------------------

_LIQUID_TAG = re.compile(r"\{%-?\s*(\w+)(.*?)-?%\}", re.S)
_LIQUID_OUTPUT = re.compile(r"\{\{-?\s*(.*?)\s*-?\}\}", re.S)
_QUOTED = re.compile(r"""^(["'])(.*)\1$""", re.S)


_IMAGE_TAG = re.compile(r"""(["'])(?P<src>[^"']+)\1(?:\s*,?\s*(["'])(?P<alt>[^"']*)\3)?""")


def _liquid(text: str, ctx: SyntaxContext, out: Resolved) -> str:
    parts = urlsplit(ctx.site_url)
    origin = f"{parts.scheme}://{parts.netloc}" if parts.netloc else ""
    baseurl = parts.path.rstrip("/")
    # Comments publish nothing: dropped with what they hold, and nothing to name.
    text = re.sub(r"\{%-?\s*comment\s*-?%\}.*?\{%-?\s*endcomment\s*-?%\}", "", text, flags=re.S)

    assigned: dict[str, Any] = {}  # {% assign x = ... %}, for the outputs after it

    def tag(m: re.Match) -> str:
        name, args = m.group(1), m.group(2).strip()
        if name == "assign":
            target = re.match(r"(\w+)\s*=\s*(.+)$", args, re.S)
            value = _liquid_value(target.group(2), ctx, assigned) if target else None
            if value is not None:
                assigned[target.group(1)] = value
                return ""
        if name in ("image", "img") and (image := _IMAGE_TAG.match(args)) and _IMAGE_FILE.search(image.group("src")):
            # An image shortcode as Eleventy's Image plugin documents it (`{% image "./x.jpg",
            # "Alt" %}`): its picture, found and copied like any other image of the post
            alt = (image.group("alt") or "").replace("]", "\\]")
            return f"![{alt}](<{image.group('src')}>)"
        if name in ("link", "post_url"):
            target = args.split()[0] if args else ""
            url = ctx.post_link(name, _unquote(target)) if target else None
            if url:
                return url
        if not name.startswith("end") and name not in ("else", "elsif", "when"):
            out.name(m.group(0))
        return ""

    def output(m: re.Match) -> str:
        expr = m.group(1)
        value, *filters = [part.strip() for part in expr.split("|")]
        if value == "site.url":
            result = origin
        elif value == "site.baseurl":
            result = baseurl
        elif _QUOTED.match(value):
            result = _QUOTED.match(value).group(2)
        else:
            found = None
            if value.split(".")[0] in assigned:
                found = _lookup(assigned, value)
            elif re.fullmatch(r"[\w.-]+", value):
                if value.startswith("page."):
                    found = _lookup(ctx.params, value[5:])
                else:  # site.x from _config.yml, Eleventy's data files; then the front matter
                    found = _lookup(ctx.variables, value)
                    if found is None and not value.startswith("site."):
                        found = _lookup(ctx.params, value)
            if found is None:
                out.name(m.group(0))
                return ""
            result = html.escape(str(found), quote=False)
        for f in filters:
            if f == "relative_url":
                result = baseurl + "/" + result.lstrip("/") if not urlsplit(result).scheme else result
            elif f == "absolute_url":
                result = origin + baseurl + "/" + result.lstrip("/") if not urlsplit(result).scheme else result
            else:
                out.name(m.group(0))
                return ""
        return result

    # One pass, in the post's order: an output sees the assigns before it.
    return _LIQUID_ANY.sub(lambda m: tag(m) if m.group(1) is not None else output(_LIQUID_OUTPUT.match(m.group(0))),
                           text)


_LIQUID_ANY = re.compile(_LIQUID_TAG.pattern + "|" + _LIQUID_OUTPUT.pattern, re.S)


def _liquid_value(expr: str, ctx: SyntaxContext, assigned: Mapping[str, Any]) -> Any:
    """An assign's value: a quoted string, or a variable (site.x, site.data.x from the data
    folder, page.x, one assigned before) through the filters `where: "key", "value"`, `first`
    and `last` (Jekyll's, as ruby-lang.org's release posts pick their release); None for
    anything else (the tag is then named, and so is each output that needed it)."""
    value, *filters = [part.strip() for part in expr.split("|")]
    quoted = _QUOTED.match(value)
    if quoted:
        found: Any = quoted.group(2)
    elif not re.fullmatch(r"[\w.-]+", value):
        return None
    elif value.split(".")[0] in assigned:
        found = _path(assigned, value)
    elif value.startswith("page."):
        found = _path(ctx.params, value[5:])
    else:
        found = _path(ctx.variables, value)
    for f in filters:
        if found is None:
            return None
        where = re.fullmatch(r"""where:\s*(["'])(.*?)\1\s*,\s*(["'])(.*?)\3""", f)
        if where and isinstance(found, list):  # Array(item[key]).map(&:to_s).include?(value)
            key, wanted = where.group(2), where.group(4)
            found = [item for item in found if isinstance(item, Mapping)
                     and wanted in [_liquid_text(v) for v in (item.get(key) if isinstance(item.get(key), list)
                                                                else [item.get(key)])]]
        elif f in ("first", "last") and isinstance(found, list):
            found = (found[0] if f == "first" else found[-1]) if found else None
        else:
            return None
    return found


def _liquid_text(value: Any) -> str:
    """A YAML scalar as Liquid's to_s writes it (true, not True; 2.7 as 2.7)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _path(root: Mapping[str, Any], key: str) -> Any:
    """The value at a dotted path, whatever it is (a mapping, a list), or None."""
    value: Any = root
    for part in key.split("."):
        if not isinstance(value, Mapping):
            return None
        matches = [v for k, v in value.items() if str(k).lower() == part.lower()]
        if not matches:
            return None
        value = matches[0]
    return value


# Pelican's liquid_tags plugin (pelican-plugins liquid_tags/img.py): `{% img [class] src
# [width [height]] [title | "title" ["alt"]] %}`.
_PELICAN_IMG = re.compile(r"""(?P<cls>\S.*\s+)?(?P<src>(?:https?://|/|\S+/)\S+)(?:\s+(?P<width>\d+))?"""
                          r"""(?:\s+(?P<height>\d+))?(?P<title>\s+.+)?""", re.S)
_PELICAN_TITLE_ALT = re.compile(r"""(?:"|')(?P<title>[^"']+)?(?:"|')\s+(?:"|')(?P<alt>[^"']+)?(?:"|')""")


def _pelican_tags(text: str, ctx: SyntaxContext, out: Resolved) -> str:
    """With liquid_tags in the site's PLUGINS, `{% img %}` is its <img>; any other tag (a
    notebook, a video, included code) is dropped and named. Without the plugin Pelican
    shows a tag as written: it stays, and is named all the same."""
    pelican = ctx.variables.get("pelican")
    enabled = pelican.get("liquid_tags", []) if isinstance(pelican, Mapping) else []

    def tag(m: re.Match) -> str:
        name, args = m.group(1), m.group(2).strip()
        found = _PELICAN_IMG.fullmatch(args) if name == "img" and ("*" in enabled or "img" in enabled) else None
        if found is None:
            out.name(m.group(0))
            return "" if enabled else m.group(0)
        title = (found.group("title") or "").strip()
        pair = _PELICAN_TITLE_ALT.fullmatch(title)
        title, alt = (pair.group("title") or "", pair.group("alt") or "") if pair else (title, title)
        attrs = [("class", (found.group("cls") or "").strip()), ("src", found.group("src")),
                 ("width", found.group("width") or ""), ("height", found.group("height") or ""),
                 ("title", title), ("alt", alt)]
        return "<img " + " ".join(f'{k}="{_attr(v)}"' for k, v in attrs if v or k == "alt") + ">"

    return _LIQUID_TAG.sub(tag, text)


def _unquote(value: str) -> str:
    m = _QUOTED.match(value)
    return m.group(2) if m else value


def prose_only(text: str) -> str:
    """`text` with its code blocks and code spans replaced by placeholders: where links and
    images written in Markdown are looked for."""
    return _mask(text, [], liquid=False, shortcodes=False, out=Resolved(text))
