"""What resolving a post's engine syntax works with, shared by syntax.py (which runs it) and
the resolvers of each syntax (mdx.py, liquid.py, and the shortcodes in syntax.py): the
context, the result, and the placeholders that set code and raw text aside meanwhile."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

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


# Text set aside (code, raw) is replaced by \ue000<n>\ue001 while the rest is resolved.
_PLACEHOLDER = re.compile("\ue000(\\d+)\ue001")


def keep_literal(literals: list[str], text: str) -> str:
    literals.append(text)
    return f"\ue000{len(literals) - 1}\ue001"


def unmask_literals(text: str, literals: list[str]) -> str:
    # A literal may itself hold placeholders (a fenced block made from a highlight tag).
    for _ in range(3):
        if "\ue000" not in text:
            break
        text = _PLACEHOLDER.sub(
            lambda m: literals[int(m.group(1))] if int(m.group(1)) < len(literals) else m.group(0), text)
    return text


# A list item's marker; an image file's name (a shortcode's or a Liquid tag's argument).
LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d{1,9}[.)])\s")
IMAGE_FILE = re.compile(r"\.(?:png|jpe?g|gif|webp|avif|svg)$", re.I)


def attr_value(value: str) -> str:
    return html.escape(value, quote=True)


def path_value(root: Mapping[str, Any], key: str) -> Any:
    """The value at a dotted path (keys matched without case), whatever it is (a mapping, a
    list), or None."""
    value: Any = root
    for part in key.split("."):
        if not isinstance(value, Mapping):
            return None
        matches = [v for k, v in value.items() if str(k).lower() == part.lower()]
        if not matches:
            return None
        value = matches[0]
    return value


def param_lookup(params: Mapping[str, Any], key: str) -> Any:
    """The scalar at a dotted path (a value a page can print), or None."""
    value = path_value(params, key)
    return None if isinstance(value, (Mapping, list)) else value
