"""Engine syntax outside Markdown, resolved before the Markdown is rendered.

Liquid (Jekyll, Eleventy; liquid.py), Hugo's and Zola's shortcodes, MDX (mdx.py), admonitions
(`:::note`, Docusaurus and Starlight) and heading attributes (`## Title {#id}`; these two in
blocks.py) are not Markdown:
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
from typing import TYPE_CHECKING, Callable, Mapping

from . import blocks
from .blocks import fenced as _fenced
from .liquid import liquid as _liquid
from .liquid import pelican_tags as _pelican_tags
from .mdx import mdx as _mdx
from .resolving import (
    IMAGE_FILE, LIST_ITEM, Resolved, SyntaxContext, attr_value, keep_literal, param_lookup, unmask_literals,
)

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
        masked = blocks.directives(masked, admonitions, out.name, lambda t: unmask_literals(t, literals),
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
                                  lambda t: unmask_literals(t, literals), lambda t: keep_literal(literals, t))
    elif syntax.liquid_tags_plugin and "{%" in masked:
        masked = _pelican_tags(masked, ctx, out)
    out.text = unmask_literals(masked, literals)
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

# --- code and raw set aside -------------------------------------------------------------

_FENCE_OPEN = re.compile(r"^([ \t]*)(`{3,}|~{3,})([^\n]*)$")
_BLANK_LINE = re.compile(r"\n[ \t]*\n")
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
            result.append(keep_literal(literals, _in_code("\n".join(lines[i:end]))))
            previous = "\n"
            i = end
            continue
        indented = markdown and line.startswith(("    ", "\t")) and line.strip()
        if (indented and (not result or not result[-1].strip())
                and not previous.startswith((" ", "\t")) and not LIST_ITEM.match(previous)):
            # An indented code block: after a blank line, not a list item's continuation.
            j = i
            while j < len(lines) and (lines[j].startswith(("    ", "\t")) or not lines[j].strip()):
                j += 1
            while j > i and not lines[j - 1].strip():
                j -= 1
            result.append(keep_literal(literals, _in_code("\n".join(lines[i:j]))))
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
            pieces.append(keep_literal(literals, _in_code(text[m.start():end.end()])))
            pos = end.end()
        elif kind == "raw":
            end = _RAW_CLOSE.search(text, m.end())
            if end is None:
                out.name(m.group(0))
                pos = m.end()
                continue
            pieces.append(keep_literal(literals, text[m.end():end.start()]))
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
            code = unmask_literals(code, literals)
            pieces.append(keep_literal(literals, _fenced(lang, _in_code(code))))
            pos = end.end()
        else:  # {{</* x */>}}: Hugo's way to show a shortcode as text
            end = re.compile(r"\*/[>%]\}\}").search(text, m.end())
            if end is None:
                pieces.append(m.group(0))
                pos = m.end()
                continue
            pieces.append(keep_literal(literals, _in_code(text[m.start():end.end()])))
            pos = end.end()


# --- Zola's shortcodes (Tera templates: templates/shortcodes/<name>.html) -----------------

# `{{/* name() */}}` and `{%/* name() */%}`: Zola's way to show a shortcode as text.
_TERA_ESCAPED = re.compile(r"\{([{%])/\*\s*(.*?)\s*\*/([}%])\}", re.S)
_TERA_INLINE = re.compile(r"\{\{\s*([A-Za-z_]\w*)\s*\((?:[^()\"']|\"[^\"]*\"|'[^']*')*\)\s*\}\}")
_TERA_BODY = re.compile(r"\{%\s*([A-Za-z_]\w*)\s*\((?:[^()\"']|\"[^\"]*\"|'[^']*')*\)\s*%\}")
_TERA_END = re.compile(r"\{%\s*end\s*%\}")


def _tera_shortcodes(text: str, out: Resolved, literals: list[str]) -> str:
    """What a Zola shortcode renders is the site's (or its theme's) template: an inline one
    is dropped, named, unless it names an image file (`{{ image(src="x.png", alt="A") }}`,
    tabi's `dual_theme_image(light_src=...)`): that image; a body one (`{% aside() %}...
    {% end %}`) keeps its body as Markdown, named. An escaped one shows as written, unescaped."""
    text = _TERA_ESCAPED.sub(lambda m: keep_literal(literals, "{" + m.group(1) + " " + m.group(2) + " " + m.group(3) + "}"),
                             text)

    def inline(m: re.Match) -> str:
        # An image shortcode (a theme's image(src=...), dual_theme_image(light_src=...)): its
        # picture, as a Markdown image (found and copied like any other)
        args = dict(re.findall(r"""(\w+)\s*=\s*["']([^"']*)["']""", m.group(0)))
        src = next((args[k] for k in ("src", "light_src", "path") if IMAGE_FILE.search(args.get(k, ""))), None)
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
            return (f'<a href="https://www.youtube.com/watch?v={attr_value(video)}">'
                    f'<img src="https://i.ytimg.com/vi/{attr_value(video)}/hqdefault.jpg" alt="{attr_value(title)}"></a>')
    elif name == "vimeo":
        video = get("id", 0)
        if video:
            return f'<a href="https://vimeo.com/{attr_value(video)}">{html.escape(get("title") or "Vimeo video")}</a>'
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
            return f'<a href="{attr_value(url + anchor)}">Gist {html.escape(label)}</a>'
    elif name in ("x", "tweet"):
        user, post_id = get("user"), get("id", 0)
        if post_id and user:
            host = "x.com" if name == "x" else "twitter.com"
            return (f'<a href="https://{host}/{attr_value(user)}/status/{attr_value(post_id)}">'
                    f'Post by @{html.escape(user)}</a>')
        if post_id.isdigit():
            return f'<a href="https://twitter.com/i/web/status/{post_id}">Post on X</a>'
    elif name == "param":
        value = param_lookup(ctx.params, get("name", 0))
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
    attrs = "".join(f' {key}="{attr_value(get(key))}"' for key in ("alt", "width", "height") if get(key))
    img = f'<img src="{attr_value(src)}"{attrs}>'
    if get("link"):
        img = f'<a href="{attr_value(get("link"))}">{img}</a>'
    caption = ""
    title, text, attr = get("title"), get("caption"), get("attr")
    if title or text or attr:
        caption = "<figcaption>"
        if title:
            caption += f"<h4>{html.escape(title)}</h4>"
        if text or attr:
            credit = html.escape(attr)
            if attr and get("attrlink"):
                credit = f'<a href="{attr_value(get("attrlink"))}">{credit}</a>'
            caption += "<p>" + " ".join(part for part in (html.escape(text), credit) if part) + "</p>"
        caption += "</figcaption>"
    css = f' class="{attr_value(get("class"))}"' if get("class") else ""
    return f"<figure{css}>{img}{caption}</figure>"


def prose_only(text: str) -> str:
    """`text` with its code blocks and code spans replaced by placeholders: where links and
    images written in Markdown are looked for."""
    return _mask(text, [], liquid=False, shortcodes=False, out=Resolved(text))
