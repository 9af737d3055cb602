"""The only reader of config.yaml.

The schema is declared once, below, as frozen dataclasses: each field's comment is its
documentation, and its converter says what it accepts. `load_config` collects every error
in the file before raising one ConfigError that lists them all, so a user fixes the file in
one pass. Relative paths resolve against the config file's folder, never the cwd.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from dataclasses import MISSING as _MISSING_DC
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import urlsplit

import yaml

from .cron import cron_trigger
from .datafiles import DataError, load_yaml
from .errors import ConfigError

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

PASSWORD_ENV = "PUBLISHER_SMTP_PASSWORD"
# Bounce handling's secrets (newsletter/bounces.py, newsletter/providers/): never in the config file.
BOUNCE_PASSWORD_ENV = "PUBLISHER_BOUNCE_PASSWORD"  # the IMAP bounce mailbox's password
WEBHOOK_PASSWORD_ENV = "PUBLISHER_WEBHOOK_PASSWORD"  # basic auth of the Postmark/SendGrid webhooks
# Where the state lives, when set and not empty: replaces state.database (a CI secret, e.g. on
# GitHub Actions, keeps the database's address out of the committed config).
DATABASE_ENV = "PUBLISHER_STATE_DATABASE"
MAILGUN_KEY_ENV = "PUBLISHER_MAILGUN_SIGNING_KEY"  # Mailgun's webhook signing key

_MISSING = object()


class _Invalid(Exception):
    """A converter's complaint: what was expected (the caller adds key and found value).
    `found` replaces the value in the message, for values that must not be echoed."""

    def __init__(self, message: str, found: str | None = None):
        super().__init__(message)
        self.found = found


def _describe(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return f"a {'mapping' if isinstance(value, dict) else 'list'}"
    return repr(value)


# --- converters: value from YAML -> typed value, or _Invalid("expected ...") -------------

def _str(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise _Invalid("expected a string")
    return str(value)


def _nonempty_str(value: Any) -> str:
    text = _str(value).strip()
    if not text:
        raise _Invalid("expected a non-empty string")
    return text


def _int_at_least(minimum: int) -> Callable[[Any], int]:
    def convert(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Invalid(f"expected an integer >= {minimum}")
        if value < minimum:
            raise _Invalid(f"expected an integer >= {minimum}")
        return value

    return convert


def _connections(value: Any) -> int | str:
    """smtp.connections: the word auto (delivery.py decides per send) or an integer >= 1."""
    if value == "auto":
        return value
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _Invalid("expected auto or an integer >= 1")
    return value


def _number_at_least(minimum: float) -> Callable[[Any], float]:
    def convert(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
            raise _Invalid(f"expected a number >= {minimum:g}")
        return float(value)

    return convert


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Invalid("expected true or false")
    return value


# The site address `publisher init` writes when it finds none (RFC 2606's reserved .example):
# `check` refuses it, so no feed or mail goes out with links to nowhere.
PLACEHOLDER_URL = "https://your-blog.example"


def _absolute_url(value: Any) -> str:
    text = _nonempty_str(value)
    try:
        parts = urlsplit(text)
    except ValueError:  # e.g. an unclosed '[' of an IPv6 host: urllib raises rather than parse
        parts = urlsplit("")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise _Invalid("expected an absolute http(s) URL such as https://blog.example.org")
    return text.rstrip("/")


def _optional_absolute_url(value: Any) -> str:
    return "" if value in (None, "") else _absolute_url(value)


def _origins(value: Any) -> tuple[str, ...]:
    """Web origins (scheme://host[:port]) given as URLs: what a browser sends as Origin."""
    if value in (None, "", []):
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise _Invalid("expected an http(s) URL or a list of them, e.g. ['https://www.example.org']")
    origins = []
    for item in value:
        parts = urlsplit(_absolute_url(item))
        origins.append(f"{parts.scheme}://{parts.netloc}".lower())
    return tuple(origins)


def _one_of(*choices: str) -> Callable[[Any], str]:
    def convert(value: Any) -> str:
        if value not in choices:
            raise _Invalid("expected one of " + ", ".join(choices))
        return value

    return convert


def _str_list(value: Any) -> tuple[str, ...]:
    """A list of strings; a single string is a list of one."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise _Invalid("expected a list of non-empty strings")
    return tuple(v.strip() for v in value)


def _topics(value: Any) -> tuple[str, ...] | str:
    """newsletter.topics: a list of tag/category names, or the word `all`."""
    if value == "all":
        return "all"
    if value in (None, []):
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise _Invalid("expected a list of tag or category names, or the word all")
    # lazy: publisher.content's package import loads the Markdown engines (tens of ms);
    # only a config that lists topics pays it, and the idle run's config load stays light.
    from .content.text import slugify

    seen: dict[str, str] = {}
    for name in value:
        slug = slugify(name.strip())
        if slug in seen:
            raise _Invalid(f"expected each topic once, but {seen[slug]!r} and {name.strip()!r} "
                           "are the same topic (topics are matched by slug, as the tag feeds are)")
        seen[slug] = name.strip()
    return tuple(seen.values())


def _hub_urls(value: Any) -> tuple[str, ...]:
    """One http(s) URL or a list of them (a WebSub hub must be reachable by POST)."""
    if value in (None, "", []):
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise _Invalid("expected an http(s) URL or a list of them")
    try:
        return tuple((_absolute_url(v), _no_controls(v), v.strip())[2] for v in value)
    except _Invalid:
        raise _Invalid("expected an http(s) URL or a list of them, such as "
                       "https://pubsubhubbub.appspot.com/") from None


def _no_controls(value: Any) -> str:
    """Feeds are XML, which cannot hold control characters (lxml refuses them)."""
    if not isinstance(value, str) or re.search(r"[\s\x00-\x1f\x7f]", value.strip()):
        raise _Invalid("expected a URL without spaces or control characters")
    return value


def _url_or_path(value: Any) -> str:
    """An http(s) URL, or a path on the site such as /favicon.png."""
    text = _str(value).strip()
    if not text:
        return ""
    scheme = re.match(r"[A-Za-z][A-Za-z0-9+.-]*:", text)
    if re.search(r"[\s\x00-\x1f\x7f]", text) or (scheme and not text.startswith(("http://", "https://"))):
        raise _Invalid("expected an http(s) URL or a path on the site such as /favicon.png")
    return text


DIALECTS = ("auto", "astro", "hugo", "jekyll", "eleventy", "pelican", "nanoc", "starlight", "docusaurus", "zola", "hexo")
MARKDOWN_ENGINES = ("commonmark", "python-markdown")


# content.permalink's placeholders (content/urls.py fills them, as the engine's rules in engines/ make each part).
PERMALINK_PLACEHOLDERS = ("slug", "year", "month", "day", "title", "stem", "path", "section",
                          "categories", "lang", "contentbasename", "i_month", "i_day")


def _permalink(value: Any) -> str:
    text = _nonempty_str(value)
    if not text.startswith("/"):
        raise _Invalid("expected a path starting with '/', such as /blog/{slug}/")
    names = ", ".join("{" + p + "}" for p in PERMALINK_PLACEHOLDERS)
    unknown = set(re.findall(r"\{([^}]*)\}", text)) - set(PERMALINK_PLACEHOLDERS)
    if unknown:
        raise _Invalid(f"expected only the placeholders {names}")
    if not any("{" + p + "}" in text for p in ("slug", "stem", "title", "path", "contentbasename")):
        raise _Invalid("expected a path containing {slug}, {stem}, {title}, {path} or {contentbasename}")
    try:  # a stray '{' or '}' would only fail later, in str.format, on the first post
        text.format(**{p: "x" for p in PERMALINK_PLACEHOLDERS})
    except (ValueError, IndexError, KeyError) as e:
        raise _Invalid(f"expected a path whose braces only enclose placeholders ({e})") from e
    return text


def _cron_shape(value: Any) -> str:
    """The part of _cron that needs no APScheduler."""
    text = _nonempty_str(value)
    if len(text.split()) != 5:
        raise _Invalid("expected a 5-field cron string such as '0 9 * * 1'")
    return text


def _cron(value: Any) -> str:
    text = _cron_shape(value)

    try:
        cron_trigger(text, "UTC")
    except ValueError as e:
        raise _Invalid(f"expected a 5-field cron string such as '0 9 * * 1' ({e})") from e
    return text


def _timezone(value: Any) -> str:
    # lazy: zoneinfo and a zone's file (~2 ms); the idle run defers this check (quick=_nonempty_str)
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    text = _nonempty_str(value)
    try:
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise _Invalid("expected an IANA time zone such as UTC or Europe/Berlin") from e
    return text


def _mailbox_shape(value: Any) -> str:
    """The part of _mailbox that needs no email package."""
    text = _str(value).strip()
    if any(c in text for c in "\r\n\0"):
        raise _Invalid("expected one line")
    return text


def _mailbox(value: Any) -> str:
    text = _mailbox_shape(value)
    if not text:
        return ""
    # lazy: the email package (~7 ms); a build or run checks this once per value (quick=)
    from email.utils import parseaddr

    _name, addr = parseaddr(text)
    if "@" not in addr:
        raise _Invalid("expected an address such as 'Blog <news@blog.example.org>'")
    if "=?" in addr:  # an encoded word in the address could decode to a line break (CVE-2024-6923)
        raise _Invalid("expected an address without '=?' (an encoded word)")
    return text


def _email(value: Any) -> str:
    text = _str(value).strip()
    if text and (not re.fullmatch(r"[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+", text)):
        raise _Invalid("expected an email address")
    return text


# --- bounce handling (newsletter/bounces.py, newsletter/providers/) ---

def _bounce_address(value: Any) -> str:
    text = _str(value).strip()
    if not text:
        return ""
    if text.count("{token}") != 1 or not re.fullmatch(r"[^@\s<>]*\{token\}[^@\s<>]*@[^@\s<>]+\.[^@\s<>]+", text):
        raise _Invalid("expected an address holding {token} once before the '@', such as "
                       "'bounces+{token}@blog.example.org'")
    return text


def _bounce_mailbox(value: Any) -> str:
    text = _str(value).strip()
    if text.startswith("imap") and re.match(r"imaps?://[^@/]*:[^@/]*@", text):
        raise _Invalid(f"expected a URL without a password (set {BOUNCE_PASSWORD_ENV})",
                       found="a URL with a password")
    if text and not re.fullmatch(r"(maildir|mbox):\S.*|imaps?://[^@/\s:]+@[^/\s@]+(/\S*)?", text):
        raise _Invalid("expected maildir:PATH, mbox:PATH or imaps://USER@HOST[:PORT]/FOLDER "
                       f"(the password comes only from {BOUNCE_PASSWORD_ENV})")
    return text


def _folder_name(value: Any) -> str:
    text = _nonempty_str(value)
    if any(c in text for c in "/\\\r\n\0\"") or text.startswith("."):
        raise _Invalid("expected a plain folder name such as Processed")
    return text


def _basic_user(value: Any) -> str:
    text = _str(value)
    if ":" in text or any(c in text for c in "\r\n\0"):
        raise _Invalid("expected a user name without ':'")
    return text


def _sns_topic(value: Any) -> str:
    text = _str(value).strip()
    if text and not re.fullmatch(r"arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]+", text):
        raise _Invalid("expected an SNS topic ARN such as arn:aws:sns:us-east-1:123456789012:bounces")
    return text


def _base64_key(value: Any) -> str:
    text = _str(value).strip()
    if text:
        try:
            if len(base64.b64decode(text, validate=True)) < 32:
                raise ValueError
        except (binascii.Error, ValueError):
            raise _Invalid("expected the base64 public key SendGrid shows for its signed event webhook") from None
    return text


# --- the schema -------------------------------------------------------------------------

def _spec(default: Any = _MISSING, convert: Callable[[Any], Any] = _str, doc: str = "",
          quick: Callable[[Any], Any] | None = None) -> Any:
    """A documented key. `quick`: a cheaper converter that load_config may use instead of
    `convert` when asked to defer slow checks (see Config.check_deferred)."""
    metadata = {"convert": convert, "doc": doc, "quick": quick}
    if default is _MISSING:
        return field(metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class AuthorConfig:
    """site.author: who writes the posts that name no author."""

    name: str = _spec("", _str, "the default author of posts that name none")
    email: str = _spec("", _email, "the author's address, shown in feeds")


@dataclass(frozen=True)
class SiteConfig:
    """site: the blog itself (required)."""

    title: str = _spec(convert=_nonempty_str, doc="the blog's name (required)")
    url: str = _spec(convert=_absolute_url, doc="absolute base URL of every link (required)")
    description: str = _spec("", _str, "one line about the blog; the feeds' subtitle")
    language: str = _spec("en", _nonempty_str, "BCP 47 language tag of the posts")
    icon: str = _spec("", _url_or_path, "small square image (favicon) for feed readers; URL or path")
    logo: str = _spec("", _url_or_path, "larger image (logo) for feed readers; URL or path")
    author: AuthorConfig = field(default_factory=AuthorConfig)


@dataclass(frozen=True)
class ContentConfig:
    """content: where the posts are and how they are read."""

    dir: Path = _spec(Path("content"), _nonempty_str, "folder of Markdown posts, any depth")
    permalink: str = _spec("/blog/{slug}/", _permalink,
                           "URL path of a post; placeholders: see Posts (slug, year, title, stem, lang...)")
    dialect: str = _spec("auto", _one_of(*DIALECTS),
                         "the engine the posts are written for; `publisher init` sets it")
    exclude: tuple[str, ...] = _spec((), _str_list, "glob patterns of files under dir that are not posts")
    strict: bool = _spec(False, _bool, "true: content warnings fail build and run (exit 1), as --strict does; for CI")
    ignore_warnings: tuple[str, ...] = _spec(
        (), _str_list, "acknowledged warnings: glob patterns of warning lines, e.g. '*: image not found: map.png'")
    markdown: str = _spec("commonmark", _one_of(*MARKDOWN_ENGINES),
                          "commonmark (CommonMark + GFM, as Astro/Hugo/Eleventy/GitHub) or python-markdown")
    markdown_extensions: tuple[str, ...] = _spec(
        (), _str_list, "Python-Markdown extensions, with content.markdown: python-markdown")


@dataclass(frozen=True)
class FeedsConfig:
    """feeds: what is written where."""

    output_dir: Path = _spec(Path("public"), _nonempty_str, "where the feeds are written")
    limit: int = _spec(20, _int_at_least(0), "newest N items per feed; 0 = all")
    websub_hub: tuple[str, ...] = _spec((), _hub_urls, "WebSub hub URL(s): named in every feed, pinged when one changes")
    archive: bool = _spec(False, _bool, "RFC 5005 archive pages holding the posts older than the limit")
    archive_size: int = _spec(50, _int_at_least(1), "posts per archive page")
    archive_tags: bool = _spec(False, _bool, "archive pages for the tag feeds too (with archive: true)")
    podcast: str = _spec("", _str, "iTunes category, e.g. Technology or 'Arts/Books': adds itunes: tags to rss.xml; '' = off")


@dataclass(frozen=True)
class NewsletterConfig:
    """newsletter: the digests and alerts, their schedule, bounces and sign-ups."""

    from_: str = _spec("", _mailbox, "sender, e.g. 'Blog <news@blog.example.org>'; required to mail",
                       quick=_mailbox_shape)
    schedule: str = _spec("0 9 * * 1", _cron, "5-field cron: when a digest may go out",
                          quick=_cron_shape)
    timezone: str = _spec("UTC", _timezone, "time zone of the schedule and of dates without offset",
                          quick=_nonempty_str)
    featured_alert: bool = _spec(False, _bool, "mail a newly featured post on its own at the next run")
    web_url: str = _spec("", _optional_absolute_url, "where `publisher serve` is reachable")
    # newsletter/archive.py: each digest and alert as a page under {feeds.output_dir}/newsletter/<n>/,
    # with an index and rss.xml there, and a "View in browser" link in the mail to its page.
    archive: bool = _spec(True, _bool, "publish every digest and alert as a web page; false = no pages, no link")
    subject: str = _spec(
        "{{ site.title }}: {{ posts[0].title }}"
        "{% if posts|length > 1 %} and {{ posts|length - 1 }} more{% endif %}",
        _nonempty_str,
        "Jinja2 template of a digest's subject",
    )
    list_id: str = _spec("", _str, "List-Id header value; default: derived from site.url")
    max_html_kb: int = _spec(100, _int_at_least(20), "HTML size budget (Gmail clips at 102 KB)")
    unsubscribe_mailto: str = _spec("", _email, "address for mailto: unsubscribes; default: the From address")
    # Bounces and complaints after acceptance (README "Bounces and complaints").
    bounce_address: str = _spec(
        "", _bounce_address, "VERP envelope sender, e.g. 'bounces+{token}@blog.example.org'; empty = newsletter.from")
    bounce_mailbox: str = _spec(
        "", _bounce_mailbox,
        f"where bounces arrive: maildir:PATH, mbox:PATH or imaps://USER@HOST[:PORT]/FOLDER (password: {BOUNCE_PASSWORD_ENV})")
    bounce_processed: str = _spec("move", _one_of("move", "delete"), "what happens to a recognised bounce: move or delete")
    bounce_folder: str = _spec("Processed", _folder_name, "the folder recognised bounces are moved to")
    soft_bounce_limit: int = _spec(3, _int_at_least(1), "soft bounces in a row (no delivery between) that suppress an address")
    webhook_user: str = _spec(
        "", _basic_user, f"basic-auth user of the Postmark/SendGrid webhooks (password: {WEBHOOK_PASSWORD_ENV})")
    sns_certificate: str = _spec("", _str, "Amazon SNS signing certificate (PEM file); enables the SES webhook")
    sns_topic_arn: str = _spec("", _sns_topic, "the only SNS topic the SES webhook accepts; empty = any")
    sendgrid_public_key: str = _spec("", _base64_key, "SendGrid's signed-event-webhook public key (base64)")
    confirm_per_client: int = _spec(
        20, _int_at_least(0), "subscribe requests per client address per hour; more are refused (HTTP 429); 0 = no limit")
    confirm_per_hour: int = _spec(
        1000, _int_at_least(0), "confirmation mails per hour in all; past it requests are stored and mailed in later hours; 0 = no limit")
    form_origins: tuple[str, ...] = _spec(
        (), _origins, "origins besides site.url's whose pages may post the subscribe form (`publisher form`)")
    # Topics (newsletter/topics.py): the tags/categories a subscriber may choose instead of
    # everything. [] = none offered, everyone gets every post (mails as before topics existed).
    topics: tuple[str, ...] | str = _spec(
        (), _topics, "tags/categories a subscriber may choose (matched by slug), or all; [] = everything for everyone")
    topics_min_posts: int = _spec(
        3, _int_at_least(1), "with topics: all, the posts a tag needs to be offered as a topic")


@dataclass(frozen=True)
class DkimConfig:
    """smtp.dkim: signing of the mail sent."""

    key_file: str = _spec("", _str, "PEM private key; empty = no DKIM signing")
    selector: str = _spec("", _str, "DKIM selector (the DNS label before ._domainkey)")
    domain: str = _spec("", _str, "signing domain; default: the From address's domain")


@dataclass(frozen=True)
class SmtpConfig:
    """smtp: the server that takes the newsletter's mail."""

    host: str = _spec("127.0.0.1", _nonempty_str, "SMTP server")
    port: int = _spec(25, _int_at_least(1), "SMTP port")
    security: str = _spec("none", _one_of("none", "starttls", "ssl"), "transport security")
    username: str = _spec("", _str, "login; the password comes only from " + PASSWORD_ENV)
    verify_tls: bool = _spec(True, _bool, "verify the server's certificate (leave on)")
    ca_file: str = _spec("", _str, "extra CA bundle to trust, e.g. for a private relay")
    timeout: float = _spec(30.0, _number_at_least(0.1), "seconds to wait for a reply")
    # auto: one connection to a server that offers PIPELINING, two to one that does not when
    # a send owes enough messages (newsletter/delivery.py, connection_count); a number is
    # exactly that many.
    connections: int | str = _spec(
        "auto", _connections, "parallel SMTP connections: auto (1, or 2 for a large send to a server without PIPELINING) or a number")
    rate_limit: float = _spec(0.0, _number_at_least(0), "messages per second in all; 0 = no limit")
    max_attempts: int = _spec(5, _int_at_least(1), "tries per message for 4xx replies and drops")
    retry_base_delay: float = _spec(2.0, _number_at_least(0), "seconds before the first retry; doubles")
    dkim: DkimConfig = field(default_factory=DkimConfig)


def _database(value: Any) -> str:
    text = _nonempty_str(value)
    if "://" not in text:
        return text  # a SQLite file, relative to the config's folder
    try:
        parts = urlsplit(text)
        password = parts.password
    except ValueError:  # e.g. an unclosed '[' of an IPv6 host: urllib raises rather than parse
        raise _Invalid("expected a SQLite file name or a postgresql:// URL", found="an unparseable URL") from None
    if parts.scheme.split("+")[0] not in ("postgresql", "postgres", "sqlite"):
        raise _Invalid("expected a SQLite file name or a postgresql:// URL")
    if password is not None or re.search(r"(^|&)password=", parts.query):
        # A config file is read by many and often committed: secrets live in the environment.
        redacted = re.sub(r"(//[^:/@]*:)[^@]*@", r"\1***@", text)
        redacted = re.sub(r"(password=)[^&]*", r"\1***", redacted)
        raise _Invalid("expected a URL without a password (set PGPASSWORD or use ~/.pgpass)",
                       found=repr(redacted))
    return text


@dataclass(frozen=True)
class StateConfig:
    """state: where subscribers, sends and caches are kept."""

    database: str = _spec("state.db", _database, "SQLite file, or a postgresql:// URL (no password)")


@dataclass(frozen=True)
class ScheduleConfig:
    """schedule: `publisher schedule`'s timing."""

    build_every: int = _spec(15, _int_at_least(1), "minutes between builds under `publisher schedule`")


@dataclass(frozen=True)
class Config:
    """A whole config.yaml, checked (load_config)."""

    path: Path
    root: Path
    site: SiteConfig
    content: ContentConfig
    feeds: FeedsConfig
    newsletter: NewsletterConfig
    smtp: SmtpConfig
    state: StateConfig
    schedule: ScheduleConfig
    # Checks load_config was asked to defer: (dotted key, converter, value). Not part of the
    # config's value (repr, equality): the same file gives the same Config either way.
    deferred: tuple = field(default=(), repr=False, compare=False)

    def check_deferred(self) -> None:
        """Run the checks load_config(defer_slow_checks=True) left out; raise ConfigError as
        load_config would have. `publisher run` calls this unless its idle stamp shows that a
        run already checked this very config (cache.py): APScheduler's import, which the cron
        check needs, costs a quarter of an idle run."""
        errors = _run_checks(self.deferred)
        if errors:
            raise ConfigError("\n".join(f"{self.path}: {e}" for e in errors))

    @property
    def content_dir(self) -> Path:
        return self.root / self.content.dir

    @property
    def output_dir(self) -> Path:
        return self.root / self.feeds.output_dir

    @property
    def templates_dir(self) -> Path:
        """The site's own templates/; files there override the bundled ones."""
        return self.root / "templates"

    @property
    def tz(self) -> ZoneInfo:
        from zoneinfo import ZoneInfo  # lazy: see _timezone

        return ZoneInfo(self.newsletter.timezone)

    @property
    def web_url(self) -> str:
        return self.newsletter.web_url or self.site.url + "/newsletter"

    @property
    def database_url(self) -> str:
        db = self.state.database
        if "://" in db:
            return db
        return "sqlite:///" + str((self.root / db).resolve())

    @property
    def smtp_password(self) -> str:
        return os.environ.get(PASSWORD_ENV, "")


_SECTIONS = {
    "site": SiteConfig,
    "content": ContentConfig,
    "feeds": FeedsConfig,
    "newsletter": NewsletterConfig,
    "smtp": SmtpConfig,
    "state": StateConfig,
    "schedule": ScheduleConfig,
}
_REQUIRED_SECTIONS = {"site"}
# Keys whose presence is refused outright, with the reason.
_REFUSED = {
    "smtp.password": f"passwords are never read from config files; set {PASSWORD_ENV} instead",
}


def _yaml_key(name: str) -> str:
    return "from" if name == "from_" else name


def _run_checks(checks) -> list[str]:
    errors = []
    for dotted, convert, value in checks:
        try:
            convert(value)
        except _Invalid as e:
            errors.append(f"{dotted}: {e}, got {e.found or _describe(value)}")
    return errors


def _build(cls: type, data: Any, prefix: str, errors: list[str], deferred: list | None = None) -> Any:
    """Convert one mapping to `cls`, appending every problem to `errors`. With `deferred`, a
    key that has a quick converter is converted with it, and its full check appended there."""
    errors_before = len(errors)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        errors.append(f"{prefix}: expected a mapping of keys, got {_describe(data)}")
        data = {}
    known = {_yaml_key(f.name): f for f in fields(cls)}
    values: dict[str, Any] = {}
    for key in data:
        dotted = f"{prefix}.{key}"
        if dotted in _REFUSED:
            errors.append(f"{dotted}: {_REFUSED[dotted]}")
        elif key not in known:
            errors.append(f"{dotted}: unknown key (expected one of: {', '.join(sorted(known))})")
    for key, f in known.items():
        dotted = f"{prefix}.{key}"
        if isinstance(f.default_factory, type):  # a nested section such as site.author
            values[f.name] = _build(f.default_factory, data.get(key), dotted, errors, deferred)
            continue
        if key not in data:
            if f.default is _MISSING_DC:
                errors.append(f"{dotted}: required, but missing")
            continue
        convert = f.metadata["convert"]
        if deferred is not None and f.metadata["quick"] is not None:
            deferred.append((dotted, convert, data[key]))
            convert = f.metadata["quick"]
        try:
            converted = convert(data[key])
        except _Invalid as e:
            errors.append(f"{dotted}: {e}, got {e.found or _describe(data[key])}")
            continue
        if isinstance(f.default, Path):
            converted = Path(converted)
        values[f.name] = converted
    if len(errors) > errors_before:
        return None  # load_config raises with every error; no half-built section escapes
    return cls(**values)


def load_config(path: str | Path = "config.yaml", *, defer_slow_checks: bool = False) -> Config:
    """Read and validate a config file. Raises ConfigError naming every bad key.

    defer_slow_checks: leave the checks that need a slow import to Config.check_deferred,
    unless the file has other errors (then every error is still reported at once)."""

    path = Path(path)
    label = str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"{label}: no such file (run publisher in a site folder, or pass --config PATH)"
        ) from None
    except OSError as e:
        raise ConfigError(f"{label}: cannot read: {e.strerror}") from e
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{label}: not UTF-8 text (byte {e.start})") from e
    try:
        data = load_yaml(text)  # bounded: aliases and depth (config.yaml may come with a blog)
    except DataError as e:
        raise ConfigError(f"{label}: refused: {e}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}:" if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        raise ConfigError(f"{label}:{where} not valid YAML: {problem}") from e
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{label}: expected a mapping of sections, got {_describe(data)}")
    database = os.environ.get(DATABASE_ENV, "").strip()
    if database:
        try:
            _database(database)
        except _Invalid as e:
            found = f", found {e.found}" if e.found else ""
            raise ConfigError(f"the environment variable {DATABASE_ENV}: {e}{found}") from None
        if isinstance(data.get("state"), dict) or data.get("state") is None:
            data["state"] = {**(data.get("state") or {}), "database": database}

    errors: list[str] = []
    deferred: list | None = [] if defer_slow_checks else None
    for key in data:
        if key not in _SECTIONS:
            errors.append(f"{key}: unknown section (expected one of: {', '.join(_SECTIONS)})")
    for key in _REQUIRED_SECTIONS:
        if key not in data:
            errors.append(f"{key}: required section, but missing")
    built = {
        key: _build(cls, data.get(key), key, errors, deferred)
        for key, cls in _SECTIONS.items()
        if key not in _REQUIRED_SECTIONS or key in data
    }
    if errors:
        errors.extend(_run_checks(deferred or ()))
        raise ConfigError("\n".join(f"{label}: {e}" for e in errors))
    root = path.resolve().parent
    return Config(path=path, root=root, **built, deferred=tuple(deferred or ()))


def describe_schema() -> str:
    """The documented schema, as YAML with a comment per key (used by the README and tests)."""
    lines: list[str] = []

    def walk(cls: type, indent: str) -> None:
        for f in fields(cls):
            key = _yaml_key(f.name)
            if isinstance(f.default_factory, type):
                lines.append(f"{indent}{key}:")
                walk(f.default_factory, indent + "  ")
                continue
            default = "(required)" if f.default is _MISSING_DC else repr(f.default)
            if isinstance(f.default, Path):
                default = repr(str(f.default))
            elif isinstance(f.default, bool):
                default = "true" if f.default else "false"
            lines.append(f"{indent}{key}: {default}  # {f.metadata.get('doc', '')}")

    for section, cls in _SECTIONS.items():
        lines.append(f"{section}:")
        walk(cls, "  ")
    return "\n".join(lines)
