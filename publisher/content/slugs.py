"""The engines' slug rules, each as the engine itself makes a URL segment of a title or a file
name (Hugo's path sanitizing, Jekyll's Utils.slugify modes, GitHub's heading slugs, Pelican's
ASCII slugify); the engines' classes (engines/*.py) choose among them."""

from __future__ import annotations

import re
import unicodedata

from .text import slugify

_SAFE_SLUG = re.compile(r"[\w.~-]+")


def kept_slug(value: str) -> str:
    """An explicit slug exactly as written (`v1.2.3` stays `v1.2.3`), when it is one path
    segment a URL can carry; otherwise (spaces, slashes, '..') it is slugified."""
    if _SAFE_SLUG.fullmatch(value) and value.strip(".") and not value.startswith("."):
        return value
    return slugify(value)


def github_slug(text: str) -> str:
    """github-slugger, as Astro makes ids: lowercase, then what its regex removes removed
    (punctuation, dots, symbols, emoji, '½'; letters, marks and digits of any script kept),
    each space a '-'."""
    from .github_slugger import REMOVED

    return REMOVED.sub("", text.lower()).replace(" ", "-")


def _letter_mark_or_digit(ch: str) -> bool:
    """Go's unicode.IsLetter/IsMark/IsDigit and Ruby's \\p{L}\\p{M}\\p{Nd}: letters, marks and
    decimal digits only (Python's isalnum also takes '²' and '½')."""
    category = unicodedata.category(ch)
    return category[0] in "LM" or category == "Nd"


def hugo_path(text: str) -> str:
    """Hugo's URLize: hugo_sanitize, lowercased."""
    return hugo_sanitize(text).lower()


def hugo_sanitize(text: str) -> str:
    """Hugo's helpers.PathSpec.UnicodeSanitize (0.111): letters, marks, decimal
    digits and '.', '/', '\\', '_', '#', '+', '~', '-', '@' kept (and '%' before two hex digits);
    a run of spaces between kept characters is one '-' (none next to a '-' of the text, none
    first or last); everything else (emoji, '&', '!') is dropped: 'a - b  (c)' is 'a-b-c'."""
    out: list[str] = []
    pending = was_hyphen = False
    for i, ch in enumerate(text):
        if (ch in "./\\_#+~-@" or _letter_mark_or_digit(ch)
                or (ch == "%" and re.fullmatch(r"[0-9A-Fa-f]{2}", text[i + 1:i + 3]) is not None)):
            was_hyphen = ch == "-"
            if pending and not was_hyphen:
                out.append("-")
            pending = False
            out.append(ch)
        elif out and not was_hyphen and ch.isspace():
            pending = True
    return "".join(out)


_JEKYLL_PRETTY_KEPT = frozenset("._~!$&'()+,;=@")
# A placeholder of a Jekyll permalink (URL#generate_url_from_drop): `:title`, `:output_ext`.
_JEKYLL_TOKEN = re.compile(r":([a-z_]+)")


def jekyll_default_slug(text: str) -> str:
    """Jekyll's Utils.slugify in its default mode (what :slug and :name are): each run of
    characters other than letters, marks and decimal digits is one '-', one '-' trimmed at
    each end, lowercased."""
    out: list[str] = []
    for ch in text:
        if _letter_mark_or_digit(ch):
            out.append(ch)
        elif not out or out[-1] != "\0":
            out.append("\0")
    return "".join(out).replace("\0", "-").removeprefix("-").removesuffix("-").lower()


def jekyll_tokens(path: str, values: dict[str, str]) -> str:
    """`path` with each :token of `values` replaced (Jekyll tries `title_` as `title` too);
    other tokens are left as they are."""
    def one(m: re.Match) -> str:
        name = m.group(1)
        for key in (name, name[:-1]) if name.endswith("_") else (name,):
            if key in values:
                return values[key] + m.group(0)[1 + len(key):]
        return m.group(0)
    return _JEKYLL_TOKEN.sub(one, path)


def jekyll_pretty(text: str) -> str:
    """Jekyll's Utils.slugify in "pretty" mode, cased (what :title is): each run of characters
    other than letters, marks, decimal digits and ._~!$&'()+,;=@ becomes one '-' (underscores
    and dots stay), then one '-' is trimmed at each end; case kept."""
    out: list[str] = []
    for ch in text:
        if ch in _JEKYLL_PRETTY_KEPT or _letter_mark_or_digit(ch):
            out.append(ch)
        elif not out or out[-1] != "\0":
            out.append("\0")  # a run, not yet a '-' (a '-' of the text is in the run too)
    return "".join(out).replace("\0", "-").removeprefix("-").removesuffix("-")


def ascii_slug(text: str) -> str:
    """Pelican's slugify (and close to Eleventy's @sindresorhus/slugify): NFKD to ASCII,
    punctuation dropped, runs of spaces and '-' one '-', lowercase."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    ascii_text = re.sub(r"[^\w\s-]", "", ascii_text).strip().lower()
    return re.sub(r"[-\s_]+", "-", ascii_text).strip("-") or slugify(text)


def zola_slug(text: str) -> str:
    """Zola's slugify_paths "on" (its default): the `slug` crate's slugify, ASCII letters and
    digits kept, lowercased, every other run one '-', none at either end. A non-ASCII letter
    is deunicode's transliteration in the crate; here its NFKD letters without marks (é is e,
    ß is ss); one with none (a CJK character) is a separator (the crate romanizes it)."""
    out: list[str] = []
    dash = True  # no '-' at the start
    for ch in text:
        if not ch.isascii():
            ch = "ss" if ch in "ßẞ" else unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode() or "-"
        for c in ch:
            if c.isascii() and c.isalnum():
                out.append(c.lower())
                dash = False
            elif not dash:
                out.append("-")
                dash = True
    return "".join(out).removesuffix("-")


def eleventy_slug(text: str) -> str:
    """Eleventy's `slugify` filter: @sindresorhus/slugify (decamelize off), whose transliterate
    table (`&` is ' and ', 'ü' 'ue', 'Ω' 'O') and stripped diacritics make ASCII, then a
    possessive's or contraction's apostrophe dropped (`it's` is its), each run of anything but
    a-z and digits one '-', lowercase."""
    from .transliterate import DIACRITIC, REPLACEMENTS

    text = unicodedata.normalize("NFC", text)
    for key, value in REPLACEMENTS:
        if key in text:
            text = text.replace(key, value)
    text = unicodedata.normalize("NFC", DIACRITIC.sub("", unicodedata.normalize("NFD", text))).lower()
    text = re.sub(r"([a-zA-Z0-9]+)'([ts])(\s|$)", r"\1\2\3", text)  # JavaScript's \d: ASCII digits only
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-")
