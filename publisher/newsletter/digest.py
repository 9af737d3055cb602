"""posts + templates/ -> one rendered, CSS-inlined message; never imports smtplib.

A digest is rendered once (Jinja2, then premailer to inline the CSS) with placeholder tokens
where per-subscriber values go. The result, a RenderedDigest of plain strings, is what the
state database stores, so a resumed send mails exactly the same content. `personalise`
then only substitutes the tokens: no template engine and no CSS inliner runs per
subscriber, which keeps a send to thousands of subscribers cheap.

Header hygiene lives here too: every header value passes through `sanitize_header`, because
Python 3.11's email package turns CR/LF (and RFC 2047 encoded words that decode to CR/LF)
into extra headers when it serialises a message (CVE-2024-6923).
"""

from __future__ import annotations

import binascii
import dataclasses
import hashlib
import html as html_lib
import logging
import re
from dataclasses import dataclass
from datetime import datetime, tzinfo
from email.header import Header
from email.headerregistry import Address, HeaderRegistry
from email.message import EmailMessage, MIMEPart
from email.policy import SMTP
from email.utils import format_datetime, getaddresses, parseaddr
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from ..config import Config
from ..content import Post
from ..errors import ConfigError, RecipientError
from .mailbox_header import fold_mailbox

log = logging.getLogger(__name__)

BUNDLED_TEMPLATES = Path(__file__).parent.parent / "templates"
KINDS = ("digest", "alert")
SUBJECT_MAX = 200

# Per-subscriber placeholders. Only letters, digits, '_' and '@': premailer and lxml keep them
# byte for byte in text and in href attributes (lxml URL-escapes other characters in href),
# and HTML escaping leaves them alone. tests/test_digest.py checks that they survive.
TOKEN_UNSUBSCRIBE_URL = "@@PUBLISHER_UNSUBSCRIBE_URL@@"
TOKEN_NAME = "@@PUBLISHER_NAME@@"
TOKEN_EMAIL = "@@PUBLISHER_EMAIL@@"
TOKEN_GREETING_NAME = "@@PUBLISHER_GREETING_NAME@@"
TOKEN_PREFERENCES_URL = "@@PUBLISHER_PREFERENCES_URL@@"  # only in mails of a site with topics
_TOKEN = re.compile(r"@@PUBLISHER_[A-Z_]+@@")
_TOKEN_PREFIX = "@@PUBLISHER_"
_TOKEN_SPLIT = re.compile(f"({_TOKEN.pattern})")  # split() keeps the tokens, at odd indexes
# What `recipient.greeting_name` becomes for a subscriber who gave no name.
GREETING_FALLBACK = "there"
NAME_MAX = 100

# Bytes kept free under max_html_kb for what personalise() adds (URL, name, address, each
# possibly HTML-escaped), so no subscriber's copy crosses the limit that the digest met.
_PERSONAL_RESERVE = 2048

# Longest unsubscribe link that still fits on one List-Unsubscribe header line (998 bytes).
_LINK_MAX = 900

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


# --- header hygiene ---------------------------------------------------------------------

# C0/C1 controls, DEL, and the Unicode line and paragraph separators: anything a mail
# parser or client could take as a line break.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_SPACES = re.compile(r"\s+")
# Zero-width space: breaks "=?" so no decoder sees the start of an RFC 2047 encoded word,
# while the subject still reads the same.
_EW_BREAK = "=\u200b?"


def sanitize_header(value: str) -> str:
    """One safe line for a header: no CR, LF or control characters, whitespace collapsed, and
    no RFC 2047 encoded-word syntax, so a crafted title cannot add headers (CVE-2024-6923)."""
    text = _CONTROL.sub(" ", str(value))
    text = _SPACES.sub(" ", text).strip()
    # Repeat until stable: removing a control char may have joined "=" and "?".
    while "=?" in text:
        text = text.replace("=?", _EW_BREAK)
    return text


def _truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    if " " in cut[limit // 2:]:
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip() + "…"


# Characters that would end, split or reshape an address in a header.
# "=?" too: Python 3.11's email package decodes an encoded word in an address while writing
# it, so "=?utf-8?q?a=0D=0ABcc...?=@x.org" would become an injected header (CVE-2024-6923).
_ADDRESS_BREAKERS = re.compile(r'[\s,<>"()\[\]\\;:]|[\x00-\x1f\x7f-\x9f\u2028\u2029]|=\?')


def _split_address(address: str, what: str, error: type[Exception]) -> tuple[str, str]:
    """(local part, ASCII domain) of one bare address, or `error` naming what is wrong."""
    text = str(address).strip()
    expected = "expected one address such as someone@example.org"
    if not text:
        raise error(f"{what}: {expected}, got nothing")
    bad = _ADDRESS_BREAKERS.search(text)
    if bad:
        raise error(f"{what}: {expected}, got {text!r} (it contains {bad.group(0)!r})")
    local, at, domain = text.rpartition("@")
    if not at or not local or not domain or "@" in local or domain.startswith(".") or ".." in domain:
        raise error(f"{what}: {expected}, got {text!r}")
    if not local.isascii():
        raise error(
            f"{what}: {text!r} has a non-ASCII local part, which needs SMTPUTF8 (not supported)"
        )
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError as e:
            raise error(f"{what}: {text!r}: the domain is not a valid internationalised name") from e
    return local, domain.lower()


def _sender(config: Config) -> tuple[str, str, str]:
    """(display name, local part, domain) of newsletter.from."""
    if not config.newsletter.from_:
        raise ConfigError("newsletter.from: required to send mail")
    name, addr = parseaddr(config.newsletter.from_)
    local, domain = _split_address(addr or config.newsletter.from_, "newsletter.from", ConfigError)
    return sanitize_header(name), local, domain


def _mailbox(name: str, address: str, what: str, error: type[Exception]) -> Address:
    local, domain = _split_address(address, what, error)
    return Address(display_name=_truncate(sanitize_header(name), NAME_MAX), username=local,
                   domain=domain)


class _VerbatimHeader:
    """A header emitted exactly as built, folded only at spaces.

    The stock folder "encodes anyway so it can wrap" any word longer than a line, which turns
    a long unsubscribe URL into an RFC 2047 encoded word that no mail client follows. The
    value carries its own fold(), so it survives whichever policy serialises the message."""

    max_count = 1

    @classmethod
    def parse(cls, value: str, kwds: dict[str, Any]) -> None:
        if not value.isascii() or _CONTROL.search(value):
            raise ValueError(f"header value must be printable ASCII on one line: {value!r}")
        kwds["parse_tree"] = None  # fold() below never needs it
        kwds["decoded"] = value

    def fold(self, *, policy: Any) -> str:
        return _fold_verbatim(self.name, str(self), policy.max_line_length or 998,  # type: ignore[attr-defined]
                              policy.linesep)


def _fold_verbatim(name: str, value: str, limit: int, linesep: str) -> str:
    """`Name: value` folded only at spaces, lines up to `limit` where the words allow."""
    first, *rest = value.split(" ")
    # The first word stays beside the name: a value starting on a continuation line
    # would be read back with a leading space.
    lines = [f"{name}: {first}"]
    for word in rest:
        if len(lines[-1]) + 1 + len(word) > limit:
            lines.append("")
        lines[-1] += " " + word
    return linesep.join(lines) + linesep


_VERBATIM = HeaderRegistry()
for _name in ("list-unsubscribe", "list-unsubscribe-post", "list-id", "message-id"):
    _VERBATIM.map_to_type(_name, _VerbatimHeader)


def _set_verbatim(msg: EmailMessage, name: str, value: str) -> None:
    msg[name] = _VERBATIM(name, value)


# --- templates --------------------------------------------------------------------------

# One environment per config object: its compiled templates serve every render of a send
# (a digest over many topic sets renders once per set). Jinja still re-reads a template file
# whose modification time changed.
_ENVIRONMENTS: dict[int, tuple[Config, Any]] = {}


def _environment(config: Config):
    cached = _ENVIRONMENTS.get(id(config))
    if cached is not None and cached[0] is config:
        return cached[1]
    env = _new_environment(config)
    _ENVIRONMENTS.clear()  # one config at a time in practice; never a growing cache
    _ENVIRONMENTS[id(config)] = (config, env)
    return env


def _new_environment(config: Config):
    from jinja2 import ChoiceLoader, Environment, FileSystemLoader, StrictUndefined, select_autoescape

    # The site's own templates/ first: a file there replaces the bundled one of that name.
    loader = ChoiceLoader([FileSystemLoader(config.templates_dir), FileSystemLoader(BUNDLED_TEMPLATES)])
    env = Environment(
        loader=loader,
        autoescape=select_autoescape(["html", "htm"], default_for_string=False, default=False),
        # StrictUndefined: a typo in a site's template stops the render with its name instead
        # of mailing every subscriber a blank.
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    tz = config.tz
    env.filters["date"] = lambda value, fmt=None: _format_date(value, tz, fmt)
    return env


def _format_date(value: datetime, tz: tzinfo, fmt: str | None = None) -> str:
    local = value.astimezone(tz)
    if fmt:
        return local.strftime(fmt)
    return f"{local.day} {local:%B %Y}"


def _template_label(config: Config, name: str) -> str:
    site_file = config.templates_dir / name
    if site_file.is_file():
        try:
            return str(site_file.relative_to(config.root))
        except ValueError:
            return str(site_file)
    return f"bundled template {name}"


def template_problem(config: Config, name: str, e: Exception) -> ConfigError:
    """A Jinja2 failure as a ConfigError naming the template file (the site's own, or the
    bundled one) and the line, for the mail templates and the web pages alike."""
    from jinja2 import TemplateNotFound, TemplateSyntaxError

    if isinstance(e, TemplateNotFound):
        return ConfigError(
            f"template {e.name}: not found in {config.templates_dir} nor among the bundled templates"
        )
    if isinstance(e, TemplateSyntaxError):
        return ConfigError(f"{_template_label(config, e.name or name)}: line {e.lineno}: {e.message}")
    return ConfigError(f"{_template_label(config, name)}: {e}")  # UndefinedError and friends


def _render_template(env: Any, config: Config, name: str, context: dict[str, Any]) -> str:
    from jinja2 import TemplateError

    try:
        return env.get_template(name).render(context)
    except TemplateError as e:
        raise template_problem(config, name, e) from e


def _inline_css(document: str, config: Config, name: str) -> str:
    import premailer

    try:
        return premailer.Premailer(
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
        raise ConfigError(f"{_template_label(config, name)}: cannot inline its CSS: {e}") from e


def _subject(config: Config, posts: list[Post]) -> str:
    from jinja2 import Environment, StrictUndefined, TemplateError

    try:
        template = Environment(undefined=StrictUndefined, autoescape=False).from_string(
            config.newsletter.subject)
        rendered = template.render(site=config.site, posts=posts, count=len(posts))
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
    env = _environment(config)
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
        # newsletter/topics.py: the preference page is linked only where topics are offered,
        # so a site without topics mails exactly what it did before.
        "preferences_url": TOKEN_PREFERENCES_URL if config.newsletter.topics else "",
    }

    def context(full: int, listed: int) -> dict[str, Any]:
        return {
            **base,
            "posts": ordered[:full],
            "more_posts": ordered[full:full + listed],
            "omitted_count": len(ordered) - full - listed,
        }

    def render_html(full: int, listed: int) -> str:
        document = _render_template(env, config, f"{kind}.html", context(full, listed))
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

    text = _render_template(env, config, f"{kind}.txt", context(full, listed))
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


def _personal_values(recipient: Recipient, config: Config,
                     link: str | None = None) -> tuple[dict[str, str], dict[str, str]]:
    """({token: value} for the text part, {token: HTML-escaped value} for the HTML part).
    `link`: the subscriber's unsubscribe_url, if the caller has it already."""
    name = _clean_name(recipient.name)
    values = {
        TOKEN_UNSUBSCRIBE_URL: link if link is not None else unsubscribe_url(config, recipient.token),
        TOKEN_NAME: name,
        TOKEN_EMAIL: _SPACES.sub("", _CONTROL.sub("", recipient.email)),
        TOKEN_GREETING_NAME: name or GREETING_FALLBACK,
    }
    if config.newsletter.topics:  # the only mails that carry the link (see render_digest)
        values[TOKEN_PREFERENCES_URL] = f"{config.web_url}/preferences/{quote(recipient.token, safe='')}"
    return values, {k: html_lib.escape(v, quote=True) for k, v in values.items()}


def personalise(digest: RenderedDigest, recipient: Recipient, config: Config) -> tuple[str, str]:
    """(html, text) for one subscriber: string substitution of the placeholders only."""
    values, escaped = _personal_values(recipient, config)
    # One pass with a regex: a value that itself looks like a token is never substituted again.
    html = _TOKEN.sub(lambda m: escaped.get(m.group(0), m.group(0)), digest.html)
    text = _TOKEN.sub(lambda m: values.get(m.group(0), m.group(0)), digest.text)
    return html, text


def _list_id(config: Config) -> str:
    configured = sanitize_header(config.newsletter.list_id)
    if configured:
        m = re.fullmatch(r"(.*?)\s*<([^<>\s]+)>", configured)
        if m:
            phrase, list_id = m.group(1), m.group(2)
        elif " " not in configured and "<" not in configured and ">" not in configured:
            phrase, list_id = "", configured
        else:
            raise ConfigError(
                "newsletter.list_id: expected 'Name <list.example.org>' or 'list.example.org', "
                f"got {config.newsletter.list_id!r}"
            )
    else:
        host = urlsplit(config.site.url).hostname or "localhost"
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            host = "localhost"
        phrase, list_id = sanitize_header(config.site.title), f"list.{host}"
    if not list_id.isascii():
        list_id = list_id.encode("ascii", "replace").decode("ascii").replace("?", "-")
    phrase = phrase.replace('"', "").replace("\\", "")
    if not phrase:
        return f"<{list_id}>"
    if not phrase.isascii():
        # An encoded word is a legal phrase; folding lines become plain spaces between words.
        phrase = Header(phrase, "utf-8").encode().replace("\n", "")
    elif re.search(r"[()<>\[\]:;@,.]", phrase):
        phrase = f'"{phrase}"'
    return f"{phrase} <{list_id}>"


def _message_id(message_key: str, address: str, domain: str) -> str:
    digest = hashlib.sha256(f"{message_key}\0{address.strip().lower()}".encode("utf-8", "surrogatepass"))
    return f"<{digest.hexdigest()[:40]}@{domain}>"


def _base_message(config: Config, *, to: Address, to_address: str, subject: str,
                  message_key: str, date: datetime) -> tuple[EmailMessage, str, str]:
    if date.tzinfo is None or date.utcoffset() is None:
        raise ValueError("build_message: date must be timezone-aware")
    from_name, from_local, from_domain = _sender(config)
    msg = EmailMessage(policy=SMTP)
    msg["From"] = Address(display_name=from_name, username=from_local, domain=from_domain)
    msg["To"] = to
    msg["Subject"] = _truncate(sanitize_header(subject), SUBJECT_MAX)
    msg["Date"] = format_datetime(date)
    _set_verbatim(msg, "Message-ID", _message_id(message_key, to_address, from_domain))
    return msg, from_local, from_domain


def _text_part(part: MIMEPart, subtype: str, body: str) -> None:
    body = body.replace("\r\n", "\n").replace("\r", "\n")
    if not body.endswith("\n"):
        body += "\n"
    part["Content-Type"] = f'text/{subtype}; charset="utf-8"'
    # quoted-printable keeps every line under 77 bytes whatever the template produced.
    # binascii's encoder, not set_content's pure-Python one: it is the bulk of the time
    # spent building a message, and a digest goes to thousands of subscribers.
    part["Content-Transfer-Encoding"] = "quoted-printable"
    part.set_payload(binascii.b2a_qp(body.encode("utf-8"), istext=True).decode("ascii"))


def _set_body(msg: EmailMessage, text: str, html: str) -> None:
    msg["MIME-Version"] = "1.0"
    if not html:
        _text_part(msg, "plain", text)
        return
    msg["Content-Type"] = "multipart/alternative"  # the generator adds the boundary
    for subtype, body in (("plain", text), ("html", html)):  # RFC 2046: the richest part last
        part = MIMEPart(policy=msg.policy)
        _text_part(part, subtype, body)
        msg.attach(part)


def _checked_link(config: Config, recipient: Recipient) -> str:
    link = unsubscribe_url(config, recipient.token)
    if not link.isascii() or _CONTROL.search(link) or " " in link:
        raise ConfigError(f"newsletter.web_url: expected a plain ASCII URL, got {config.web_url!r}")
    if len(link) > _LINK_MAX:
        # A header line may not pass 998 bytes and a URL cannot be folded.
        # Tokens are all one length (state.new_token), so only the URL can be too long.
        raise ConfigError(f"newsletter.web_url: expected a shorter URL: the unsubscribe link is "
                          f"{len(link)} characters long, over the {_LINK_MAX} a List-Unsubscribe "
                          f"header can carry")
    return link


def _unsubscribe_mailto(config: Config, from_local: str, from_domain: str) -> str:
    mailto_local, mailto_domain = (
        _split_address(config.newsletter.unsubscribe_mailto, "newsletter.unsubscribe_mailto", ConfigError)
        if config.newsletter.unsubscribe_mailto else (from_local, from_domain))
    return quote(f"{mailto_local}@{mailto_domain}", safe="@!$'*+-._~")


def build_message(digest: RenderedDigest, recipient: Recipient, config: Config, *,
                  message_key: str, date: datetime) -> EmailMessage:
    """One message to one subscriber, with RFC 2369/8058/2919 list headers."""
    to = _mailbox(recipient.name, recipient.email, f"recipient {recipient.email!r}", RecipientError)
    msg, from_local, from_domain = _base_message(
        config, to=to, to_address=recipient.email, subject=digest.subject,
        message_key=message_key, date=date)

    link = _checked_link(config, recipient)
    mailto = _unsubscribe_mailto(config, from_local, from_domain)
    _set_verbatim(msg, "List-Unsubscribe", f"<{link}>, <mailto:{mailto}?subject=unsubscribe>")
    if link.startswith("https://"):
        # RFC 8058: one-click only over https, where the POST cannot be tampered with.
        _set_verbatim(msg, "List-Unsubscribe-Post", "List-Unsubscribe=One-Click")
    _set_verbatim(msg, "List-Id", _list_id(config))

    html, text = personalise(digest, recipient, config)
    _set_body(msg, text, html)
    return msg


def build_simple_message(config: Config, *, to: Recipient | str, subject: str, html: str, text: str,
                         message_key: str, date: datetime) -> EmailMessage:
    """A one-off message (e.g. the double opt-in confirmation) with the same header hygiene.

    `to` is a Recipient or an address ("a@example.org" or "Name <a@example.org>"); `html`
    may be "" for a text-only message."""
    if isinstance(to, Recipient):
        name, address = to.name, to.email
    else:
        found = getaddresses([str(to)])
        if len(found) != 1 or not found[0][1]:
            # Report the whole string: _split_address names what breaks it.
            found = [("", str(to))]
        name, address = found[0]
    mailbox = _mailbox(name, address, f"recipient {address!r}", RecipientError)
    msg, _local, _domain = _base_message(
        config, to=mailbox, to_address=address, subject=subject, message_key=message_key, date=date)
    _set_body(msg, text, html)
    return msg


# --- the fast path: one compiled message, many recipients -------------------------------

# Headers that differ per recipient; every other header is the same in every copy.
_PER_RECIPIENT = ("to", "message-id", "list-unsubscribe")
_CRLF = "\r\n"
_PART_SLOT = object()  # where a part's payload goes in CompiledMessage._layout


class _CompiledBody:
    """One part's body, quoted-printable encoded ahead of time except for the lines that
    hold placeholders. b2a_qp encodes each line on its own (its soft breaks restart at every
    newline), so encoding the pieces separately gives exactly the bytes of encoding the whole."""

    def __init__(self, template: str, html: bool):
        template = template.replace("\r\n", "\n").replace("\r", "\n")  # as _text_part does
        if not template.endswith("\n"):
            template += "\n"
        self.html = html
        # Alternating: pre-encoded bytes (lines without placeholders, merged), then a line
        # holding placeholders, split into [text, token, text, token, ..., text], and so on.
        self.pieces: list[bytes | list[str]] = []
        plain: list[str] = []
        for line in template.splitlines(keepends=True):
            if _TOKEN_PREFIX in line and _TOKEN.search(line):
                self.pieces.append(self._encode("".join(plain)))
                self.pieces.append(_TOKEN_SPLIT.split(line))
                plain = []
            else:
                plain.append(line)
        self.pieces.append(self._encode("".join(plain)))

    @staticmethod
    def _encode(text: str) -> bytes:
        # The generator writes the payload with CRLF line ends (policy SMTP).
        return binascii.b2a_qp(text.encode("utf-8"), istext=True).replace(b"\n", b"\r\n")

    def render(self, values: dict[str, str], escaped: dict[str, str]) -> bytes:
        table = escaped if self.html else values
        out = []
        for piece in self.pieces:
            if type(piece) is list:
                # Each token replaced once, as personalise()'s one regex pass does: a value
                # that looks like a token is never substituted again.
                parts = piece[:]
                for i in range(1, len(parts), 2):
                    parts[i] = table.get(parts[i], parts[i])
                piece = self._encode("".join(parts))
            out.append(piece)
        return b"".join(out)


@dataclass(frozen=True)
class CompiledMessage:
    """A digest rendered into message bytes once, with holes for what differs per recipient.

    `bytes_for(recipient)` returns exactly what `message_bytes(build_message(...))` would for
    that recipient (same headers, same encoded bodies), with a boundary fixed per digest, in
    a small fraction of the time: no email package and no encoding of the whole body per
    subscriber, only string substitution into pre-encoded bytes."""

    config: Config
    message_key: str
    from_domain: str
    mailto: str
    boundary: str
    head: bytes  # headers before To
    middle: bytes  # headers between To and Message-ID (Subject, Date)
    tail: bytes  # headers after List-Unsubscribe, the blank line and the body's start
    layout: tuple  # bytes and _PART_SLOT markers, the body around the parts' payloads
    bodies: tuple[_CompiledBody, ...]

    def bytes_for(self, recipient: Recipient) -> bytes:
        what = f"recipient {recipient.email!r}"
        local, domain = _split_address(recipient.email, what, RecipientError)
        link = _checked_link(self.config, recipient)
        values, escaped = _personal_values(recipient, self.config, link)
        message_id = _message_id(self.message_key, recipient.email, self.from_domain)
        headers = [
            self.head,
            _to_header(recipient.name, local, domain).encode("utf-8"),
            self.middle,
            _fold_verbatim("Message-ID", message_id, SMTP.max_line_length, _CRLF).encode("ascii"),
            _fold_verbatim("List-Unsubscribe",
                           f"<{link}>, <mailto:{self.mailto}?subject=unsubscribe>",
                           SMTP.max_line_length, _CRLF).encode("ascii"),
            self.tail,
        ]
        payloads = iter(body.render(values, escaped) for body in self.bodies)
        return b"".join(headers) + b"".join(
            next(payloads) if piece is _PART_SLOT else piece for piece in self.layout)


def _to_header(name: str, local: str, domain: str) -> str:
    display = _truncate(sanitize_header(name), NAME_MAX)
    line = fold_mailbox("To", display, f"{local}@{domain}")
    if line is not None:
        return line
    # Quoting a non-ASCII name, or folding: exactly as the email package does them.
    return SMTP.fold("To", SMTP.header_factory(
        "To", Address(display_name=display, username=local, domain=domain)))


def compile_message(digest: RenderedDigest, config: Config, *, message_key: str,
                    date: datetime) -> CompiledMessage:
    """Prepare `digest` for fast per-recipient serialisation (see CompiledMessage). Raises
    what build_message raises for the digest and config; errors about one recipient
    (address, link) are raised by bytes_for, as build_message raises them."""
    skeleton, from_local, from_domain = _base_message(
        config, to=Address(addr_spec="compile@example.invalid"), to_address="compile@example.invalid",
        subject=digest.subject, message_key=message_key, date=date)
    mailto = _unsubscribe_mailto(config, from_local, from_domain)
    _set_verbatim(skeleton, "List-Unsubscribe", "<>")
    if unsubscribe_url(config, "x").startswith("https://"):
        _set_verbatim(skeleton, "List-Unsubscribe-Post", "List-Unsubscribe=One-Click")
    _set_verbatim(skeleton, "List-Id", _list_id(config))
    html = digest.html
    _set_body(skeleton, "x", "x" if html else "")

    # A boundary fixed per digest: "==" never occurs in quoted-printable text, so it cannot
    # collide with a body, and a resent message is the same bytes.
    number = int(hashlib.sha256(message_key.encode("utf-8", "surrogatepass")).hexdigest()[:16], 16)
    boundary = f"==============={number % 10**19:019d}=="
    if skeleton.is_multipart():
        skeleton.set_boundary(boundary)

    def fold(part) -> list[tuple[str, bytes]]:
        return [(name.lower(), SMTP.fold(name, value).encode("ascii"))
                for name, value in part.raw_items()]

    folded = fold(skeleton)
    names = [name for name, _ in folded]
    i_to, i_id, i_unsub = (names.index(n) for n in _PER_RECIPIENT)
    if not (i_to < i_id and i_unsub == i_id + 1):
        raise AssertionError(f"compile_message: unexpected header order {names}")  # a bug
    head = b"".join(line for _, line in folded[:i_to])
    middle = b"".join(line for _, line in folded[i_to + 1:i_id])
    tail = b"".join(line for _, line in folded[i_unsub + 1:]) + b"\r\n"

    nl = b"\r\n"
    if skeleton.is_multipart():
        sep = b"--" + boundary.encode("ascii")
        layout: list = [sep + nl]
        for n, part in enumerate(skeleton.iter_parts()):
            if n:
                layout.append(nl + sep + nl)
            layout.append(b"".join(line for _, line in fold(part)) + nl)
            layout.append(_PART_SLOT)
        layout.append(nl + sep + b"--" + nl)
        bodies = (_CompiledBody(digest.text, html=False), _CompiledBody(html, html=True))
    else:
        layout = [_PART_SLOT]
        bodies = (_CompiledBody(digest.text, html=False),)
    return CompiledMessage(config=config, message_key=message_key, from_domain=from_domain,
                           mailto=mailto, boundary=boundary, head=head, middle=middle, tail=tail,
                           layout=tuple(layout), bodies=bodies)


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
    "build_message",
    "build_simple_message",
    "compile_message",
    "CompiledMessage",
    "personalise",
    "render_digest",
    "render_preview",
    "sanitize_header",
    "unsubscribe_url",
]
