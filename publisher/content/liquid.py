"""Liquid in a post (Jekyll's and Eleventy's; Pelican's liquid_tags plugin): what Jekyll or
Eleventy would output where publisher can know it (the post's front matter, the site's
variables and data, post_url/link tags, includes of images), else dropped and named.
syntax.resolve runs it on the post's text with code and raw blocks set aside."""

from __future__ import annotations

import html
import re
from typing import Any, Mapping
from urllib.parse import urlsplit

from .resolving import IMAGE_FILE, Resolved, SyntaxContext, attr_value, param_lookup, path_value

# -------------------------------------------------------------------------------

_LIQUID_TAG = re.compile(r"\{%-?\s*(\w+)(.*?)-?%\}", re.S)
_LIQUID_OUTPUT = re.compile(r"\{\{-?\s*(.*?)\s*-?\}\}", re.S)
_QUOTED = re.compile(r"""^(["'])(.*)\1$""", re.S)


_IMAGE_TAG = re.compile(r"""(["'])(?P<src>[^"']+)\1(?:\s*,?\s*(["'])(?P<alt>[^"']*)\3)?""")


def liquid(text: str, ctx: SyntaxContext, out: Resolved) -> str:
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
        if name in ("image", "img") and (image := _IMAGE_TAG.match(args)) and IMAGE_FILE.search(image.group("src")):
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
                found = param_lookup(assigned, value)
            elif re.fullmatch(r"[\w.-]+", value):
                if value.startswith("page."):
                    found = param_lookup(ctx.params, value[5:])
                else:  # site.x from _config.yml, Eleventy's data files; then the front matter
                    found = param_lookup(ctx.variables, value)
                    if found is None and not value.startswith("site."):
                        found = param_lookup(ctx.params, value)
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
        found = path_value(assigned, value)
    elif value.startswith("page."):
        found = path_value(ctx.params, value[5:])
    else:
        found = path_value(ctx.variables, value)
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


# Pelican's liquid_tags plugin (pelican-plugins liquid_tags/img.py): `{% img [class] src
# [width [height]] [title | "title" ["alt"]] %}`.
_PELICAN_IMG = re.compile(r"""(?P<cls>\S.*\s+)?(?P<src>(?:https?://|/|\S+/)\S+)(?:\s+(?P<width>\d+))?"""
                          r"""(?:\s+(?P<height>\d+))?(?P<title>\s+.+)?""", re.S)
_PELICAN_TITLE_ALT = re.compile(r"""(?:"|')(?P<title>[^"']+)?(?:"|')\s+(?:"|')(?P<alt>[^"']+)?(?:"|')""")


def pelican_tags(text: str, ctx: SyntaxContext, out: Resolved) -> str:
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
        return "<img " + " ".join(f'{k}="{attr_value(v)}"' for k, v in attrs if v or k == "alt") + ">"

    return _LIQUID_TAG.sub(tag, text)


def _unquote(value: str) -> str:
    m = _QUOTED.match(value)
    return m.group(2) if m else value
