"""MDX in a post (Astro's and Docusaurus's .mdx, Docusaurus's .md): what a feed can carry of
it. ESM import/export lines and comments are dropped; components are dropped (their text
kept) and named; {expressions} in text and attributes become what they stand for where that is
a constant (a number, a string, an imported file), else are dropped and named. syntax.resolve
runs it on the post's text with code set aside."""

from __future__ import annotations

import re
from typing import Mapping

from ..datafiles import brace_end
from .resolving import LIST_ITEM, Resolved, attr_value, unmask_literals

# ----------------------------------------------------------------------------------

_MDX_COMMENT = re.compile(r"\{/\*.*?\*/\}", re.S)
_JSX_OPEN = re.compile(r"<(/?)([A-Z][\w.]*)")
# An ES module statement (what MDX takes a line starting with import/export for).
_ESM = re.compile(r"""import\s+(?:["']|.*\bfrom\s*["']|\{[^}]*$)"""
                  r"|export\s+(?:const|let|var|function|async|class|default|\{|\*)")


# `import cover from './cover.png'`: a default import of a file, which `{cover}` (or Astro's
# `{cover.src}`) then names.
_FILE_IMPORT = re.compile(r"""import\s+([A-Za-z_$][\w$]*)\s+from\s*(["'])(\.{1,2}/[^"'\n]+)\2""")


def mdx(text: str, out: Resolved, literals: list[str]) -> str:
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
                and not previous.startswith((" ", "\t")) and not LIST_ITEM.match(previous)):
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
            name, expr = a.group(2), unmask_literals(tag[a.end():close - 1], literals)  # `x`: no code span
            value = _attribute_value(expr, imports) if name else None
            if value is not None:
                fixed.append(f'{a.group(1)}{name}="{attr_value(value)}"')
            elif name and expr.strip() == "true":
                fixed.append(f"{a.group(1)}{name}")
            elif not (name and expr.strip() == "false"):
                out.name(unmask_literals(tag[a.start():close], literals).strip())
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
        out.name(unmask_literals(text[start:end + 1], literals))
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
