"""posts + templates/ -> one rendered, CSS-inlined digest; never builds the email itself.

A digest is rendered once (Jinja2, then premailer to inline the CSS) with placeholder tokens
where per-subscriber values go. The result, a RenderedDigest of plain strings, is what the
state database stores, so a resumed send mails exactly the same content. `personalise`
then only substitutes the tokens: no template engine and no CSS inliner runs per
subscriber, which keeps a send to thousands of subscribers cheap.

The per-subscriber values live here too (`personal_values`: the one hook that says what
each placeholder becomes for one subscriber); message.py turns a RenderedDigest into the
email's bytes for each subscriber, through that same hook.
"""

from __future__ import annotations

import dataclasses
import html as html_lib
import logging
import re
import sys
import types
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from ..config import Config
from ..content import Post
from ..errors import ConfigError
from ..templating import environment, render, render_string, template_label
from .mailbox_header import CONTROL as _CONTROL
from .mailbox_header import SPACES as _SPACES
from .mailbox_header import sanitize_header
from .mailbox_header import truncate as _truncate

log = logging.getLogger(__name__)

KINDS = ("digest", "alert")
SUBJECT_MAX = 200

# Per-subscriber placeholders. Only letters, digits, '_' and '@': premailer and lxml keep them
# byte for byte in text and in href attributes (lxml URL-escapes other characters in href),
# and HTML escaping leaves them alone. tests/test_digest.py checks that they survive.
TOKEN_UNSUBSCRIBE_URL = "@@PUBLISHER_UNSUBSCRIBE_URL@@"
TOKEN_NAME = "@@PUBLISHER_NAME@@"
TOKEN_EMAIL = "@@PUBLISHER_EMAIL@@"
TOKEN_GREETING_NAME = "@@PUBLISHER_GREETING_NAME@@"
TOKEN_PREFERENCES_URL = "@@PUBLISHER_PREFERENCES_URL@@"  # the preference page (web.py)
_TOKEN = re.compile(r"@@PUBLISHER_[A-Z_]+@@")
_TOKEN_PREFIX = "@@PUBLISHER_"
_TOKEN_SPLIT = re.compile(f"({_TOKEN.pattern})")  # split() keeps the tokens, at odd indexes
# What `recipient.greeting_name` becomes for a subscriber who gave no name.
GREETING_FALLBACK = "there"
NAME_MAX = 100
_HTML_SPECIAL = re.compile(r"[&<>\"']")  # what html.escape(quote=True) changes

# Bytes kept free under max_html_kb for what personalise() adds (URL, name, address, each
# possibly HTML-escaped), so no subscriber's copy crosses the limit that the digest met.
_PERSONAL_RESERVE = 2048

_PREVIEW_RECIPIENT_EMAIL = "subscriber@example.org"
_PREVIEW_RECIPIENT_NAME = "Sample Subscriber"
_PREVIEW_TOKEN = "preview"


@dataclass(frozen=True)
class Recipient:
    email: str
    name: str  # may be ""
    token: str  # the subscriber's unsubscribe token (URL-safe)


@dataclass(frozen=True)
class RenderedDigest:
    """One rendered digest, stored as these strings so a resumed send mails the same content."""

    kind: str  # "digest" or "alert"
    subject: str  # one line: no CR/LF/control chars, whitespace collapsed, <= 200 chars
    html: str  # premailer-inlined once; holds the TOKEN_* placeholders
    text: str  # plain-text part, with the same placeholders
    post_ids: tuple[str, ...]
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class _RecipientFields:
    """What templates see as `recipient`: placeholders that personalise() fills in."""

    name: str = TOKEN_NAME
    email: str = TOKEN_EMAIL
    greeting_name: str = TOKEN_GREETING_NAME


# --- templates --------------------------------------------------------------------------
# The environment, the site's overrides and the template error messages: templating.py.

_STYLE_RULES: dict[tuple[str, int], tuple[list, list]] = {}  # _premailer's, per process
_STYLE_RULES_MAX = 16  # stylesheets: a template edited in a long-running `publisher schedule`


_Premailer = None  # _premailer(), once premailer is imported


def _premailer():
    """premailer.Premailer, keeping the rules it makes of a stylesheet per process: every
    body of a digest (one per topic set, newsletter/topics.py) has the same template
    stylesheet, and turning it into rules (cssutils serialising every property) is two
    thirds of premailer's time for a body (~7 ms). The rules depend on the stylesheet, its
    position and the options, and _inline_css always passes the same options; premailer
    copies them out (extend) and already shares the parsed stylesheet (its own cache)."""
    global _Premailer
    if _Premailer is None:
        _import_premailer_offline()
        import premailer  # lazy: ~0.12 s (lxml, cssutils), only when a digest is rendered

        class CachingPremailer(premailer.Premailer):
            def _parse_style_rules(self, css_body, ruleset_index):
                key = (css_body, ruleset_index)
                made = _STYLE_RULES.get(key)
                if made is None:
                    if len(_STYLE_RULES) >= _STYLE_RULES_MAX:
                        _STYLE_RULES.clear()
                    made = _STYLE_RULES[key] = super()._parse_style_rules(css_body, ruleset_index)
                return made

        _Premailer = CachingPremailer
    return _Premailer


class _Offline(types.ModuleType):
    """What premailer sees as `requests` (_import_premailer_offline): it is only ever asked
    for a stylesheet by URL, which _inline_css never allows."""

    def get(self, url: str, *args: Any, **kwargs: Any) -> Any:
        raise ConfigError(f"premailer asked for {url!r}: the digest's CSS is never fetched")


def _import_premailer_offline() -> None:
    """Import premailer without `requests`: premailer imports it at its top only to fetch
    stylesheets by URL (`self.session.get`, under allow_network), and requests with urllib3,
    chardet and charset_normalizer was ~35 ms of every send's ~0.6 s start (a tenth of the
    imports). A stand-in is `requests` while premailer is imported, then taken out again:
    anything that imports requests afterwards gets the real one."""
    if "premailer" in sys.modules or "requests" in sys.modules:
        return
    sys.modules["requests"] = _Offline("requests")
    try:
        import premailer.premailer  # noqa: F401  (lazy: the caller's reason)
    finally:
        del sys.modules["requests"]


def _inline_css(document: str, config: Config, name: str) -> str:
    inliner = _premailer()
    try:
        return inliner(
            document,
            allow_network=False,  # nothing but the template itself is ever read
            allow_loading_external_files=False,
            disable_link_rewrites=True,  # links are absolute already; leave the tokens alone
            disable_validation=True,  # keep mso-* and -webkit-* properties mail clients need
            strip_important=False,  # media-query overrides need their !important
            # Keep the templates' width/height attributes: Outlook sizes images by the
            # attribute, and premailer would replace width="536" with the CSS "100%".
            disable_basic_attributes=["width", "height"],
            cssutils_logging_level=logging.CRITICAL,
        ).transform()
    except Exception as e:  # premailer surfaces lxml and cssutils errors unwrapped
        raise ConfigError(f"{template_label(config, name)}: cannot inline its CSS: {e}") from e


def _subject(config: Config, posts: list[Post]) -> str:
    # lazy: Jinja2 (~30 ms), as in templating.new_environment
    from jinja2 import TemplateError

    try:
        rendered = render_string(config, config.newsletter.subject,
                                 {"site": config.site, "posts": posts, "count": len(posts)})
    except TemplateError as e:
        raise ConfigError(f"newsletter.subject: not a usable Jinja2 template: {e}") from e
    return rendered


def _defuse(text: str) -> str:
    """Break placeholder look-alikes in post text, so a title cannot pull in a subscriber value."""
    return text.replace(_TOKEN_PREFIX, "@@\u200bPUBLISHER_") if _TOKEN_PREFIX in text else text


def _defused_post(post: Post) -> Post:
    fields = ("title", "summary", "author", "image", "url")
    changes: dict[str, Any] = {f: _defuse(getattr(post, f)) for f in fields}
    changes["tags"] = tuple(_defuse(t) for t in post.tags)
    return dataclasses.replace(post, **changes)


def _ordered(posts: list[Post]) -> list[Post]:
    """Featured first, then newest first (both sorts are stable, so ties keep URL order)."""
    newest = sorted(posts, key=lambda p: (p.published, p.url), reverse=True)
    return sorted(newest, key=lambda p: not p.featured)


def _preheader(kind: str, posts: list[Post]) -> str:
    if kind == "alert":
        text = posts[0].summary or posts[0].title
    else:
        text = " · ".join(p.title for p in posts)
    return _truncate(_SPACES.sub(" ", text).strip(), 150)


# --- rendering --------------------------------------------------------------------------

def render_digest(posts: list[Post], config: Config, *, kind: str = "digest",
                  already: list[Post] = (), view_url: str | None = None) -> RenderedDigest:
    """Render a digest (every post, featured first, then newest first) or an alert (exactly
    one post) with placeholders for per-subscriber values. The HTML stays under
    newsletter.max_html_kb: past it, the last posts are listed as title links only.
    `already`: posts an alert brought this reader, listed as links "Already sent to you".
    `view_url`: the issue's public page (newsletter/archive.py), linked as "View in browser"."""
    if kind not in KINDS:
        raise ValueError(f"render_digest: kind must be one of {KINDS}, got {kind!r}")
    if not posts:
        raise ValueError("render_digest: no posts to render")
    if kind == "alert" and len(posts) != 1:
        raise ValueError(f"render_digest: an alert holds exactly one post, got {len(posts)}")

    ordered = [_defused_post(p) for p in _ordered(posts)]
    env = environment(config)
    if kind == "alert":
        subject = ordered[0].title
    else:
        subject = _subject(config, ordered)
    subject = _truncate(sanitize_header(subject), SUBJECT_MAX) or sanitize_header(config.site.title)

    base = {
        "kind": kind,
        "subject": subject,
        "preheader": _preheader(kind, ordered),
        "site": config.site,
        "site_url": config.site.url,
        "feed_url": config.site.url + "/rss.xml",
        "web_url": config.web_url,
        "unsubscribe_url": TOKEN_UNSUBSCRIBE_URL,
        "view_url": view_url,
        "recipient": _RecipientFields(),
        "count": len(ordered),
        "post": ordered[0] if kind == "alert" else None,
        "already_sent": [_defused_post(p) for p in _ordered(list(already))],
        # The preference page (web.py): pause or unsubscribe, and topics where they are offered.
        "preferences_url": TOKEN_PREFERENCES_URL,
        "preferences_label": ("Choose your topics, pause or unsubscribe" if config.newsletter.topics
                              else "Pause your emails or unsubscribe"),
    }

    def context(full: int, listed: int) -> dict[str, Any]:
        return {
            **base,
            "posts": ordered[:full],
            "more_posts": ordered[full:full + listed],
            "omitted_count": len(ordered) - full - listed,
        }

    def render_html(full: int, listed: int) -> str:
        document = render(env, config, f"{kind}.html", context(full, listed))
        return _inline_css(document, config, f"{kind}.html")

    budget = config.newsletter.max_html_kb * 1024 - _PERSONAL_RESERVE
    n = len(ordered)
    full, listed = n, 0
    html = render_html(n, 0)
    warnings: list[str] = []
    if kind == "digest" and _size(html) > budget:
        full, listed, html = _fit(render_html, n, budget)
        warning = f"digest HTML over {config.newsletter.max_html_kb} KB: {listed} posts shown as links only"
        if full + listed < n:
            warning += f", {n - full - listed} not listed (the mail links to the site)"
        warnings.append(warning)
    if _size(html) > budget:  # an alert, or a template too big even without posts
        warnings.append(f"{kind} HTML is {_size(html) // 1024} KB, over newsletter.max_html_kb "
                        f"({config.newsletter.max_html_kb} KB): Gmail may clip it")
    # Not logged here: the caller reports RenderedDigest.warnings once, where it fits.

    text = render(env, config, f"{kind}.txt", context(full, listed))
    return RenderedDigest(
        kind=kind,
        subject=subject,
        html=html,
        text=text,
        post_ids=tuple(p.id for p in ordered),
        warnings=tuple(warnings),
    )


def _size(html: str) -> int:
    return len(html.encode("utf-8"))


def _fit(render_html, n: int, budget: int) -> tuple[int, int, str]:
    """(posts in full, posts as links, html): as many in full as fit, then as many links.

    Size grows with each post shown, so a binary search needs about log2(n) renders."""

    def largest(known: int, known_html: str, hi: int, render) -> tuple[int, str]:
        """The largest k in [known, hi] whose render fits, given that `known` fits."""
        best, best_html, lo = known, known_html, known + 1
        while lo <= hi:
            mid = (lo + hi) // 2
            html = render(mid)
            if _size(html) <= budget:
                best, best_html, lo = mid, html, mid + 1
            else:
                hi = mid - 1
        return best, best_html

    all_links = render_html(0, n)
    if _size(all_links) <= budget:
        full, html = largest(0, all_links, n - 1, lambda k: render_html(k, n - k))
        return full, n - full, html
    # Even the list of links is too long: list as many as fit and count the rest.
    # With no posts at all the template may still be over budget; it is sent anyway, warned.
    links, html = largest(0, render_html(0, 0), n - 1, lambda k: render_html(0, k))
    return 0, links, html


# --- per subscriber ---------------------------------------------------------------------

def unsubscribe_url(config: Config, token: str) -> str:
    """The subscriber's one-click unsubscribe link (web.py serves /unsubscribe/<token>)."""
    if not token:
        raise ValueError("unsubscribe_url: the token is empty")
    # Tokens are URL-safe already; quoting only guards against a corrupted one.
    return f"{config.web_url}/unsubscribe/{quote(token, safe='')}"


def _clean_name(name: str) -> str:
    return _truncate(_SPACES.sub(" ", _CONTROL.sub(" ", name or "")).strip(), NAME_MAX)


def personal_values(recipient: Recipient, config: Config,
                    link: str | None = None) -> tuple[dict[str, str], dict[str, str]]:
    """({token: value} for the text part, {token: HTML-escaped value} for the HTML part).
    `link`: the subscriber's unsubscribe_url, if the caller has it already.

    The one place that says what each placeholder becomes for one subscriber: the preview,
    the test copy, the dry run and the real send all take their values from here. A new
    per-subscriber value is a TOKEN_* constant, a field of _RecipientFields (what templates
    see) and one entry in `values` below."""
    name = _clean_name(recipient.name)
    values = {
        TOKEN_UNSUBSCRIBE_URL: link if link is not None else unsubscribe_url(config, recipient.token),
        TOKEN_NAME: name,
        TOKEN_EMAIL: _SPACES.sub("", _CONTROL.sub("", recipient.email)),
        TOKEN_GREETING_NAME: name or GREETING_FALLBACK,
        TOKEN_PREFERENCES_URL: f"{config.web_url}/preferences/{quote(recipient.token, safe='')}",
    }
    # html.escape is five replace() passes; most values (links, addresses) have nothing to
    # escape, which one search tells.
    return values, {k: html_lib.escape(v, quote=True) if _HTML_SPECIAL.search(v) else v
                    for k, v in values.items()}


def personalise(digest: RenderedDigest, recipient: Recipient, config: Config) -> tuple[str, str]:
    """(html, text) for one subscriber: string substitution of the placeholders only."""
    values, escaped = personal_values(recipient, config)
    # One pass with a regex: a value that itself looks like a token is never substituted again.
    html = _TOKEN.sub(lambda m: escaped.get(m.group(0), m.group(0)), digest.html)
    text = _TOKEN.sub(lambda m: values.get(m.group(0), m.group(0)), digest.text)
    return html, text


def render_preview(posts: list[Post], config: Config) -> tuple[str, str]:
    """(html, text) of the next digest as a sample subscriber would get it."""
    rendered = render_digest(posts, config)
    for warning in rendered.warnings:  # the caller only gets the two strings back
        log.warning("%s", warning)
    sample = Recipient(email=_PREVIEW_RECIPIENT_EMAIL, name=_PREVIEW_RECIPIENT_NAME,
                       token=_PREVIEW_TOKEN)
    return personalise(rendered, sample, config)


__all__ = [
    "GREETING_FALLBACK",
    "Recipient",
    "RenderedDigest",
    "TOKEN_EMAIL",
    "TOKEN_GREETING_NAME",
    "TOKEN_NAME",
    "TOKEN_UNSUBSCRIBE_URL",
    "personalise",
    "render_digest",
    "render_preview",
    "personal_values",
    "unsubscribe_url",
]
