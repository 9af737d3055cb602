"""Jekyll's `smartify` filter, which jekyll-feed and jekyll-seo-tag put on every post title:
kramdown's SmartyPants parser (Jekyll's lib/jekyll/converters/smartypants.rb: span parsers
smart_quotes, html_entity, typographic_syms, span_html, in that order) converted to text.
Straight quotes become typographic ones by kramdown's rules (parser/kramdown/smart_quotes.rb,
a port of SmartyPants), `---` an em dash, `--` an en dash, `...` an ellipsis, `<<`/`>>`
guillemets (parser/kramdown/typographic_symbol.rb; `<< ` is "« ", the no-break space
kramdown writes being one space in a title), entities their characters; HTML tags are kept."""

from __future__ import annotations

import html
import re

# Ruby's \w, \s, \d and \b are ASCII-only on a UTF-8 string: re.ASCII.
_PUNCT = r"""[!"#$%'()*+,\-./:;<=>?@\[\\\]^_`{|}~]"""
_CLOSE = r"""[^ \\\t\r\n\[{(\-]"""
_FLAGS = re.ASCII | re.MULTILINE
# (rule, what each group becomes: a group number is its text as it is, a name a quote).
_RULES = [(re.compile(pattern, _FLAGS | (re.DOTALL if dotall else 0)), substs) for pattern, substs, dotall in [
    (r"""("|')(?=[_*]{1,2}\S)""", ("lquote1",), False),
    (r"""("|')(?=""" + _PUNCT + r"""(?!\.\.)\B)""", ("rquote1",), False),
    # double sets of quotes: He said, "'Quoted' words in a larger quote."
    (r"""(\s?)"'(?=\w)""", (1, "ldquo", "lsquo"), False),
    (r"""(\s?)'"(?=\w)""", (1, "lsquo", "ldquo"), False),
    (r"""(\s?)'(?=\d\ds)""", (1, "rsquo"), False),  # decade abbreviations: the '80s
    (r"""(\s)('|")(?=\w)""", (1, "lquote2"), False),  # most opening quotes
    (r"""(""" + _CLOSE + r""")('|")""", (1, "rquote2"), False),  # closing quotes
    (r"""("|')(?=\s|s\b|$)""", ("rquote1",), False),  # <i>Custer</i>'s Last Stand
    (r"""(.?)'""", (1, "lsquo"), True),  # any other single quote opens
    (r"""(.?)\"""", (1, "ldquo"), True),
]]
_QUOTES = {"lsquo": "\u2018", "rsquo": "\u2019", "ldquo": "\u201c", "rdquo": "\u201d"}
_SMART_QUOTES_START = re.compile(r"""[^\\]?["']""")
_HTML_ENTITY = re.compile(r"&([\w:][\-\w.:]*);|&#(\d+);|&\#x([0-9a-fA-F]+);", re.ASCII)
_SYMBOLS = {"---": "\u2014", "--": "\u2013", "...": "\u2026", "\\<<": "<<", "\\>>": ">>",
            "<< ": "\u00ab ", " >>": " \u00bb", "<<": "\u00ab", ">>": "\u00bb"}
_TYPOGRAPHIC = re.compile("|".join(re.escape(k) for k in _SYMBOLS))
_HTML_SPAN = re.compile(r"<(?:[A-Za-z_:][\w:.-]*|!--|/)[^<>]*>")  # a tag, kept as it is
# Where a span parser may start (each parser's span_start, kramdown's parse_spans); the parsers
# are then tried in their order at that place, and none matching makes the character text.
_SPAN_START = re.compile(r"""[^\\]?["']|&|--|\.\.\.|(?:\\| )?(?:<<|>>)|<""")


def _quote(name: str, match: re.Match) -> str:
    if name in _QUOTES:
        return _QUOTES[name]
    char = match.group(int(name[-1]))  # lquote1/rquote1: group 1; lquote2/rquote2: group 2
    return _QUOTES[("l" if name[0] == "l" else "r") + ("dquo" if char == '"' else "squo")]


def smartify(text: str) -> str:
    """`text` as Jekyll's `{{ text | smartify }}` shows it (the entities it writes decoded)."""
    if not re.search(r"""["'<>&]|--|\.\.\.""", text):
        return text
    out: list[str] = []
    pos = 0
    while pos < len(text):
        start = _SPAN_START.search(text, pos)
        if start is None:
            out.append(text[pos:])
            break
        out.append(text[pos:start.start()])
        pos = start.start()
        if _SMART_QUOTES_START.match(text, pos):
            for rule, substs in _RULES:
                m = rule.match(text, pos)
                if m:
                    out += [m.group(s) if isinstance(s, int) else _quote(s, m) for s in substs]
                    pos = m.end()
                    break
            else:  # no rule: the character is text (kramdown never gets here)
                out.append(text[pos])
                pos += 1
            continue
        m = _HTML_ENTITY.match(text, pos)
        if m:  # written as its character (kramdown's entity_output: as_char)
            out.append(html.unescape(m.group(0)))
            pos = m.end()
            continue
        m = _TYPOGRAPHIC.match(text, pos)
        if m:
            out.append(_SYMBOLS[m.group(0)])
            pos = m.end()
            continue
        m = _HTML_SPAN.match(text, pos)
        if m:
            out.append(m.group(0))
            pos = m.end()
            continue
        out.append(text[pos])
        pos += 1
    return "".join(out)


# --- Pelican's TYPOGRIFY: python-smartypants (2.0) on the title, as typogrify runs it ----------
# Its rules differ from kramdown's: `--` is an em dash (TYPOGRIFY_DASHES "oldschool": `---` em,
# `--` en; "oldschool_inverted": the other way), ``backticks'' are quotes, `. . .` an ellipsis,
# and the quotes are SmartyPants.pl's educate_quotes (below, on the text with its entities).
_PUNCT_CLASS = r"""[!"#\$\%'()*+,\-.\/:;<=>?\@\[\\\]\^_`{|}~]"""
_CLOSE_CLASS = r"[^\ \t\r\n\[\{\(\-]"
_OPENS = r"(\s|&nbsp;|--|&[mn]dash;|&\#8211;|&\#8212;|&\#x201[34];)"
_SP_QUOTES = [(re.compile(pattern, re.X if verbose else 0), repl) for pattern, repl, verbose in [
    (r"^'(?=" + _PUNCT_CLASS + r"\B)", "&#8217;", False),
    (r'^"(?=' + _PUNCT_CLASS + r"\B)", "&#8221;", False),
    (r""""'(?=\w)""", "&#8220;&#8216;", False),  # double sets of quotes
    (r"""'"(?=\w)""", "&#8216;&#8220;", False),
    (r"""\b'(?=\d{2}s)""", "&#8217;", False),  # the '80s
    (_OPENS + r"'(?=\w)", r"\1&#8216;", False),
    ("(" + _CLOSE_CLASS + r")'(?!\s|s\b|\d)", r"\1&#8217;", False),
    ("(" + _CLOSE_CLASS + r")'(\s|s\b)", r"\1&#8217;\2", False),
    ("'", "&#8216;", False),  # any other single quote opens
    (_OPENS + r'"(?=\w)', r"\1&#8220;", False),
    (r'"(?=\s)', "&#8221;", False),
    (r'^"(?=' + _PUNCT_CLASS + ")", "&#8221;", False),
    ("(" + _CLOSE_CLASS + ')"', r"\1&#8221;", False),
    ('"', "&#8220;", False),
]]
_SP_DASHES = {"oldschool": (("---", "&#8212;"), ("--", "&#8211;")),
              "oldschool_inverted": (("---", "&#8211;"), ("--", "&#8212;"))}
_SP_ESCAPES = (("\\\\", "&#92;"), ('\\"', "&#34;"), ("\\'", "&#39;"), ("\\.", "&#46;"), ("\\-", "&#45;"),
               ("\\`", "&#96;"))


def typogrify_title(text: str, dashes: str = "default") -> str:
    """`text` as Pelican with TYPOGRIFY shows a title in its feed: typogrify (amp, smartypants
    with Pelican's attributes set1 + &quot;, caps, initial quotes, widont), then the feed's
    `Markup(title).striptags()`: the tags typogrify adds go, its entities become characters
    (widont's no-break space before the last word is a space in publisher's one-line titles)."""
    if not re.search(r"""["'`&\\]|--|\.\.\.|\. \. \.""", text):
        return text
    t = re.sub(r"&(?!#?\w+;)", "&amp;", text)  # a bare '&' (typogrify's amp writes it so)
    for raw, entity in _SP_ESCAPES:
        t = t.replace(raw, entity)
    t = t.replace("&quot;", '"')
    for raw, entity in _SP_DASHES.get(dashes, (("--", "&#8212;"),)):
        t = t.replace(raw, entity)
    t = t.replace("...", "&#8230;").replace(". . .", "&#8230;")
    t = t.replace("``", "&#8220;").replace("''", "&#8221;")
    for rule, repl in _SP_QUOTES:
        t = rule.sub(repl, t)
    return html.unescape(t)
