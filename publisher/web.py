"""The subscribers' web endpoint: subscribe (double opt-in), confirm, unsubscribe.

    GET  /  and  /subscribe          the form (email, optional name, a signed CSRF token)
    POST /  and  /subscribe          store the address as pending, mail a confirmation link (past
                                     newsletter.confirm_per_hour: later, ConfirmationMailer.send_owed)
    GET  /confirm/<confirm token>    a page with a button; changes nothing
    POST /confirm/<confirm token>    activate the subscriber
    GET  /unsubscribe/<token>        a page with a button; changes nothing (mail clients and
                                     link scanners fetch links on their own)
    POST /unsubscribe/<token>        unsubscribe at once: RFC 8058 one-click, no cookies, no CSRF
                                     token; the unguessable token in the URL is the authorisation
    GET  /preferences/<token>        topics, pause, unsubscribe (newsletter/topics.py); changes nothing
    POST /preferences/<token>        one of those changes (the token authorises, as above; a form
                                     posted from another site is refused)
    POST /webhooks/...               the providers' bounce and complaint reports (webhooks.py)

Privacy: every valid address gets the same "check your inbox" page, byte for byte, whether it
is new, pending, active or unsubscribed (past the hour's total, every address gets the same
"almost there" page), and the confirmation mail is sent on a background thread, so neither
the page nor the time it takes tells anyone who is on the list.

Every form posts back to its own URL (no action attribute), so the app works wherever it is
mounted (`newsletter.web_url`, e.g. /newsletter behind a reverse proxy) without knowing the
prefix; links in mail are built from `newsletter.web_url`. No JavaScript anywhere.

Deployment: `publisher serve` (waitress, with timeouts and limits: webserver.py), or any WSGI
server through `create_app_from_env()`, e.g. `gunicorn 'publisher.web:create_app_from_env()'`.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import ipaddress
import logging
import os
import re
import secrets
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Callable
from urllib.parse import urlsplit

from jinja2 import TemplateError

from .config import Config, load_config
from .errors import ConfigError
from .newsletter import topics
from .newsletter.confirmations import (MAIL_WORKERS, ConfirmationMailer, confirm_url, mailbox_key,
                                       render_confirmation)
from .newsletter.subscribers import InvalidAddress, clean_name, normalize_address
from .state import ACTIVE, PENDING, State, Subscriber
from .templating import CONFIRM_TTL, new_environment, page_context, template_problem

log = logging.getLogger(__name__)

CONFIG_ENV = "PUBLISHER_CONFIG"

RESEND_AFTER = timedelta(hours=1)  # at most one confirmation mail per address per hour
# A subscribe answer is never sent sooner than this after the request arrived: the time it
# takes must not say whether the address is on the list (item 6 of issue 15).
SUBSCRIBE_FLOOR = 0.1  # seconds
MAILBOX_PER_HOUR = 1  # subscribe requests per mailbox (sub-addresses folded) per hour that get mail
CSRF_MAX_AGE = timedelta(days=1)  # a subscribe form left open longer must be submitted again
CSRF_CLOCK_SKEW = timedelta(minutes=5)  # tolerated between server processes' clocks
MAX_REQUEST_BYTES = 16 * 1024  # the forms hold an address and a name: anything bigger is abuse
# Threads answering requests in `publisher serve` (waitress): they, not the connections,
# bound the work in progress, and the database pool is sized to them.
SERVER_THREADS = 16

# Tokens are secrets.token_urlsafe(32) (43 characters); anything else is rejected before
# the database is asked.
_TOKEN = re.compile(r"[A-Za-z0-9_-]{20,100}")
_STYLE = re.compile(r"<style\b[^>]*>(.*?)</style>", re.DOTALL | re.IGNORECASE)

PAGE_TEMPLATES = (
    "web_base.html", "web_subscribe.html", "web_check_email.html", "web_confirm.html",
    "web_confirmed.html", "web_unsubscribe.html", "web_unsubscribed.html",
    "web_not_found.html", "web_error.html", "web_preferences.html",
)
MAIL_TEMPLATES = ("confirm.html", "confirm.txt")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


# --- templates: pure rendering ------------------------------------------------------------

def template_environment(config: Config):
    """Jinja2 for the pages and the confirmation mail: templating.py's one environment."""
    return new_environment(config)


def check_templates(config: Config, env) -> None:
    """Compile every template the endpoint uses, so a broken override stops `serve` at
    start-up (ConfigError naming the file) instead of failing the first visitor."""


    for name in PAGE_TEMPLATES + MAIL_TEMPLATES:
        try:
            env.get_template(name)
        except TemplateError as e:
            raise template_problem(config, name, e) from e


def render_page(env, config: Config, template: str, **context: Any) -> str:
    return env.get_template(template).render({**page_context(config), **context})


def content_security_policy(body: str, site_url: str = "") -> str:
    """The CSP for one HTML page: nothing may load or run except the page's own <style>
    blocks, allowed by hash (so no 'unsafe-inline', and a site's restyled template works),
    and images (the favicon, a logo in an overridden template) from the site itself."""
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(css.encode("utf-8")).digest()).decode("ascii") + "'"
        for css in _STYLE.findall(body)
    )
    style = f"style-src {hashes}" if hashes else "style-src 'none'"
    parts = urlsplit(site_url)
    images = f"img-src 'self' {parts.scheme}://{parts.netloc}" if parts.netloc else "img-src 'self'"
    return f"default-src 'none'; {style}; {images}; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"


# --- CSRF: stateless, signed, timestamped -------------------------------------------------

class CsrfTokens:
    """Signed, timestamped tokens for the subscribe form (itsdangerous, HMAC-SHA256).

    No cookie and no server-side session: the key lives in the state database's meta table,
    so every server process accepts a form any of them served."""

    def __init__(self, secret: str, clock: Callable[[], datetime]):
        # lazy: itsdangerous (~25 ms) is for `serve`'s forms; the archive and `check` import web.py too
        from itsdangerous import TimestampSigner

        clock_ = clock

        class _Signer(TimestampSigner):
            def get_timestamp(self) -> int:  # the injectable clock, not time.time()
                return int(clock_().timestamp())

        self._signer = _Signer(secret, salt="publisher.web.subscribe", digest_method=hashlib.sha256)
        self._clock = clock

    def new(self) -> str:
        """A token for one form: it carries a fresh nonce, which the state database records
        when the form is submitted, so each form is accepted once."""
        nonce = secrets.token_urlsafe(16)
        return self._signer.sign(b"subscribe:" + nonce.encode("ascii")).decode("ascii")

    def check(self, token: str) -> tuple[str | None, str]:
        """(None, the form's nonce) if the token is good, else (why not, "") (for the log;
        the visitor sees one text). Whether it was used already is the state's to say."""
        # lazy: itsdangerous (~25 ms), as above
        from itsdangerous import BadSignature

        if not token:
            return "missing", ""
        try:
            value, signed_at = self._signer.unsign(token, return_timestamp=True)
        except BadSignature:
            return "bad signature", ""
        purpose, _, nonce = value.partition(b":")
        if purpose != b"subscribe" or not nonce:
            return "wrong purpose", ""
        age = self._clock() - signed_at
        if age > CSRF_MAX_AGE or age < -CSRF_CLOCK_SKEW:
            return f"expired (age {age})", ""
        return None, nonce.decode("ascii", "replace")


def client_address(remote_addr: str | None, forwarded_for: str | None) -> str:
    """Who is asking, for rate limits. Behind a reverse proxy on this machine or the local
    network (the peer is a loopback or private address), the client is the last address
    the proxy appended to X-Forwarded-For; otherwise the peer itself (a client on the
    internet cannot send from a loopback or private address, so it cannot choose its key)."""

    peer = remote_addr or ""
    try:
        trusted = ipaddress.ip_address(peer).is_private  # includes loopback
    except ValueError:
        trusted = False
    if trusted and forwarded_for:
        last = forwarded_for.split(",")[-1].strip()
        if last:
            return last[:100]
    return peer[:100]


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def foreign_origin(origin: str | None, referer: str | None, allowed: set[str]) -> str | None:
    """The foreign origin a form was posted from, or None. Origin (sent by browsers with
    every POST) is checked when present, else Referer; neither present: not refused here
    (the single-use token still stands)."""
    for value in (origin, referer):
        if value:
            found = "null" if value.strip() == "null" else _origin(value.strip())
            return None if found in allowed else found
    return None


# --- the application -----------------------------------------------------------------------

class Endpoint:
    """What the routes share: config, templates, clock, CSRF key, state and the mailer.

    Kept on app.extensions["publisher"]; tests reach the mailer through it."""

    def __init__(self, config: Config, clock: Callable[[], datetime], threads: int = SERVER_THREADS):
        self.config = config
        self.clock = clock
        self.env = template_environment(config)
        check_templates(config, self.env)
        self._state_lock = threading.Lock()
        self._state_pid = os.getpid()
        # A connection for every thread that may hold one at once: the server's, the
        # mailer's, its queue's and one to spare. Fewer, and a burst of requests waited for
        # the pool and failed with HTTP 500 (6 of 2,000 on PostgreSQL, issue 25).
        self._pool_size = threads + MAIL_WORKERS + 2
        self._state = self._open_state()
        self.csrf = CsrfTokens(self._state.web_secret(), clock)
        self.mailer = ConfirmationMailer(config, self.env, self.state, clock)
        self.mailer.start()

    def _open_state(self) -> State:
        return State(self.config.database_url, pool_size=self._pool_size)

    def state(self) -> State:
        """The state handle of this process. A WSGI server that forks after loading the app
        (gunicorn --preload) must not share the parent's database connections."""
        with self._state_lock:
            if self._state_pid != os.getpid():
                self._state = self._open_state()
                self._state_pid = os.getpid()
            return self._state

    def page(self, template: str, status: int = 200, **context: Any):
        # lazy: Flask (~0.1 s); the archive and `check` import web.py without serving
        from flask import Response

        return Response(render_page(self.env, self.config, template, **context), status=status,
                        mimetype="text/html")

    def close(self, timeout: float | None = None) -> None:
        self.mailer.close(timeout)
        self._state.close()


def create_app(config: Config, *, clock: Callable[[], datetime] | None = None,
               threads: int = SERVER_THREADS):
    """The Flask application for `config`, for a server answering on `threads` threads at
    once (the database pool is sized to them). `clock` (aware datetimes) is for tests."""
    # lazy: Flask, werkzeug (~0.1 s) and message.py (~10 ms); the archive and `check` import
    # web.py without serving
    from flask import Flask
    from werkzeug.exceptions import HTTPException

    from .newsletter.message import from_address

    # Fail at start-up, not at the first visitor: without newsletter.from no confirmation
    # can be sent (raises ConfigError naming the key).
    from_address(config)
    endpoint = Endpoint(config, clock or utcnow, threads)

    app = Flask(__name__, static_folder=None)
    app.config.update(MAX_CONTENT_LENGTH=MAX_REQUEST_BYTES, MAX_FORM_MEMORY_SIZE=MAX_REQUEST_BYTES)
    app.extensions["publisher"] = endpoint
    views = {view: _with_endpoint(view) for _, _, view in ROUTES}  # one per Flask endpoint name
    for rule, method, view in ROUTES:
        app.add_url_rule(rule, view.__name__, views[view], methods=[method])
    app.register_error_handler(404, _with_endpoint(handle_not_found))
    app.register_error_handler(HTTPException, _with_endpoint(handle_http_error))
    app.register_error_handler(Exception, _with_endpoint(handle_bug))
    app.after_request(_with_endpoint(security_headers))

    # lazy: the providers' bounce/complaint webhooks (newsletter.providers, newsletter.bounces: ~25 ms)
    from .newsletter.providers import webhooks_blueprint
    app.register_blueprint(webhooks_blueprint(endpoint))
    return app


def _with_endpoint(view: Callable[..., Any]) -> Callable[..., Any]:
    """`view(endpoint, ...)` as Flask calls a view or handler: the endpoint is the app's."""
    # lazy: Flask (~0.1 s), as in create_app
    from flask import current_app

    @functools.wraps(view)
    def bound(*args: Any, **kwargs: Any) -> Any:
        return view(current_app.extensions["publisher"], *args, **kwargs)

    return bound


# --- the routes: each a function of the endpoint (and the URL's token), reading flask.request ---

def not_found(endpoint: Endpoint):
    return endpoint.page("web_not_found.html", 404, page_title="Link not valid")


def subscribe_form(endpoint: Endpoint, status: int = 200, *, email: str = "", name: str = "",
                   error: str = "", field: str = "", chosen: tuple[str, ...] = ()):
    return endpoint.page("web_subscribe.html", status, page_title="Subscribe",
                         csrf_token=endpoint.csrf.new(), email=email, name=name,
                         error=error, error_field=field,
                         topics=topics.offered(endpoint.config, endpoint.state()), chosen=chosen)


def foreign_post(endpoint: Endpoint, also: frozenset[str] = frozenset()) -> str | None:
    """Why a form post looks sent by another site in the background, or None. `also`: more
    origins whose pages may post it (form_origins, for the subscribe form)."""
    from flask import request  # lazy: Flask (~0.1 s), as in create_app

    if request.headers.get("Sec-Fetch-Site") == "cross-site" and embedded_origin(also) is None:
        return "cross-site request"
    foreign = foreign_origin(request.headers.get("Origin"), request.headers.get("Referer"),
                             {_origin(endpoint.config.web_url), _origin(request.host_url), *also})
    return None if foreign is None else f"posted from another site ({foreign})"


def form_origins(config: Config) -> frozenset[str]:
    """The origins whose pages may post the subscribe form that `publisher form` prints: the
    blog's own (site.url's) and newsletter.form_origins."""
    return frozenset({_origin(config.site.url), *config.newsletter.form_origins})


def embedded_origin(allowed: frozenset[str]) -> str | None:
    """The request's Origin if it is one of `allowed`, else None. Browsers send Origin with
    every POST, and a page of another site cannot send a blog's."""
    from flask import request  # lazy: Flask (~0.1 s), as in create_app

    origin = (request.headers.get("Origin") or "").strip()
    if not origin or origin == "null":
        return None
    return _origin(origin) if _origin(origin) in allowed else None


def chosen_topics(endpoint: Endpoint) -> tuple[str, ...]:
    """The ticked topics; ConfigError for one not on offer (a stale or forged form)."""
    from flask import request  # lazy: Flask (~0.1 s), as in create_app

    return topics.parse_choice(request.form.getlist("topic")[:200],
                               topics.offered(endpoint.config, endpoint.state()), "the form's topics")


def subscribe_page(endpoint: Endpoint):
    return subscribe_form(endpoint)


def subscribe(endpoint: Endpoint):
    from flask import request  # lazy: Flask (~0.1 s), as in create_app

    started = time.monotonic()
    config = endpoint.config
    email_in = request.form.get("email", "")[:320]
    name = clean_name(request.form.get("name", ""))
    # The signed token proves the form came from this server, and is accepted once;
    # Sec-Fetch-Site and Origin/Referer (when the browser sends them) refuse a form
    # that another site submits in the background.
    token, allowed = request.form.get("csrf_token", ""), form_origins(config)
    if not token and embedded_origin(allowed):
        # `publisher form` on a static page of the blog cannot hold a signed token: the
        # Origin stands in for it (see embedded_origin); rate limits hold as for any request.
        problem, nonce = None, "form:" + secrets.token_urlsafe(16)
    else:
        problem, nonce = endpoint.csrf.check(token)
        if problem is None:
            problem = foreign_post(endpoint, allowed)
    if problem is not None:
        log.info("subscribe form refused: %s", problem)
        return subscribe_form(endpoint, 400, email=email_in.strip(), name=name, field="form",
                              error="This form has expired. Please submit it again.")
    try:
        address = normalize_address(email_in)
    except InvalidAddress as e:
        return subscribe_form(endpoint, 400, email=email_in.strip(), name=name, field="email",
                              error=f"Please check the email address: {e}.")
    try:
        chosen = chosen_topics(endpoint)
    except ConfigError:
        return subscribe_form(endpoint, 400, email=email_in.strip(), name=name, field="topics",
                              error="One of those topics is no longer offered. Please choose again.")
    now = endpoint.clock()
    client = client_address(request.remote_addr, request.headers.get("X-Forwarded-For"))
    limits = {"total": config.newsletter.confirm_per_hour,
              "client:" + client: config.newsletter.confirm_per_client,
              "mailbox:" + mailbox_key(address): MAILBOX_PER_HOUR}
    outcome, reserved = endpoint.state().subscribe_request(
        address, name, form=nonce, limits=limits, now=now,
        resend_after=now - RESEND_AFTER, valid_after=now - CONFIRM_TTL,
        forms_after=now - CSRF_MAX_AGE - CSRF_CLOCK_SKEW, topics=chosen)
    if outcome == "reused":
        log.info("subscribe form refused: already submitted once")
        return subscribe_form(endpoint, 400, email=email_in.strip(), name=name, field="form",
                              error="This form was already sent. Please submit it again.")
    if outcome == "refused":
        log.warning("subscribe %s refused: confirm_per_client requests from %s this hour", address, client)
        response = endpoint.page("web_error.html", 429, page_title="Too many requests", code=429,
                                 message=_ERROR_TEXT[429])
        response.headers["Retry-After"] = "3600"
        return response
    if outcome == "limited":
        log.warning("subscribe %s: no mail (this mailbox's limit per hour is reached)", address)
    elif outcome == "queued":
        log.info("subscribe %s: stored; confirmation queued (newsletter.confirm_per_hour reached)", address)
    elif reserved is None:
        log.info("subscribe %s: no mail (already active, or a confirmation went out within %s)",
                 address, RESEND_AFTER)
    # The same page, byte for byte, whatever happened above, and at the same moment: the
    # work above is the same for every address, and what is left of its jitter (an
    # insert is not an update) is hidden under a floor most answers wait for. Past the
    # hour's total every answer says the link comes later: it does (send_owed).
    queued = outcome == "queued"
    response = endpoint.page("web_check_email.html", queued=queued,
                             page_title="Almost there" if queued else "Check your inbox")
    time.sleep(max(0.0, SUBSCRIBE_FLOOR - (time.monotonic() - started)))
    # Queued once the answer is out, so the mail's work never shows in its timing; an
    # answer that mails nobody leaves the same work behind it.
    if reserved is not None:
        response.call_on_close(lambda: endpoint.mailer.submit(*reserved))
    else:
        response.call_on_close(lambda: endpoint.mailer.rehearse(address))
    return response


def pending(endpoint: Endpoint, token: str) -> Subscriber | None:
    if not _TOKEN.fullmatch(token):
        return None
    sub = endpoint.state().subscriber_by_confirm_token(token)
    if sub is None or sub.confirm_sent_at is None or sub.confirm_sent_at <= endpoint.clock() - CONFIRM_TTL:
        return None
    return sub


def confirm_page(endpoint: Endpoint, token: str):
    sub = pending(endpoint, token)
    if sub is None:
        return not_found(endpoint)
    return endpoint.page("web_confirm.html", page_title="Confirm your subscription", email=sub.email)


def confirm(endpoint: Endpoint, token: str):
    if not _TOKEN.fullmatch(token):
        return not_found(endpoint)
    now = endpoint.clock()
    sub = endpoint.state().confirm_subscriber(token, now=now, valid_after=now - CONFIRM_TTL)
    if sub is None:
        return not_found(endpoint)
    log.info("%s confirmed the subscription", sub.email)
    return endpoint.page("web_confirmed.html", page_title="You're subscribed", email=sub.email)


def unsubscribe_page(endpoint: Endpoint, token: str):
    sub = endpoint.state().subscriber_by_token(token) if _TOKEN.fullmatch(token) else None
    if sub is None:
        return not_found(endpoint)
    return endpoint.page("web_unsubscribe.html", page_title="Unsubscribe", email=sub.email,
                         subscribed=sub.status in (ACTIVE, PENDING))


def unsubscribe(endpoint: Endpoint, token: str):
    # RFC 8058: the body is "List-Unsubscribe=One-Click", but any POST to this URL means
    # the same, and the answer is a 200 page (no redirect a mail provider would not follow).
    sub = endpoint.state().unsubscribe_by_token(token, now=endpoint.clock()) if _TOKEN.fullmatch(token) else None
    if sub is None:
        return not_found(endpoint)
    log.info("%s unsubscribed", sub.email)
    return endpoint.page("web_unsubscribed.html", page_title="You're unsubscribed", email=sub.email)


def preferences_form(endpoint: Endpoint, sub: Subscriber, status: int = 200, *, saved: str = "",
                     error: str = ""):
    config = endpoint.config
    paused = sub.paused_until if topics.paused(sub, endpoint.clock()) else None
    return endpoint.page(
        "web_preferences.html", status, page_title="Your emails", email=sub.email,
        subscribed=sub.status == ACTIVE, topics=topics.offered(config, endpoint.state()),
        chosen=sub.topics, pause_weeks=topics.PAUSE_WEEKS, saved=saved, error=error,
        paused_until=f"{paused.astimezone(config.tz):%-d %B %Y}" if paused else "")


def preferences_page(endpoint: Endpoint, token: str):
    sub = endpoint.state().subscriber_by_token(token) if _TOKEN.fullmatch(token) else None
    if sub is None:
        return not_found(endpoint)
    return preferences_form(endpoint, sub)


def preferences(endpoint: Endpoint, token: str):
    from flask import request  # lazy: Flask (~0.1 s), as in create_app

    sub = endpoint.state().subscriber_by_token(token) if _TOKEN.fullmatch(token) else None
    if sub is None:
        return not_found(endpoint)
    problem = foreign_post(endpoint)
    if problem is not None:
        log.info("preferences form refused: %s", problem)
        return preferences_form(endpoint, sub, 400, error="This form was sent from another site. Please use this page.")
    if sub.status != ACTIVE:
        return preferences_form(endpoint, sub)
    action, now = request.form.get("action", ""), endpoint.clock()
    state = endpoint.state()
    if action == "unsubscribe":
        state.unsubscribe_by_token(token, now=now)
        log.info("%s unsubscribed (preference page)", sub.email)
        return endpoint.page("web_unsubscribed.html", page_title="You're unsubscribed", email=sub.email)
    if action == "topics":
        try:
            chosen = chosen_topics(endpoint)
        except ConfigError:
            return preferences_form(endpoint, sub, 400, error="One of those topics is no longer offered. Please choose again.")
        sub = state.set_preferences(token, topics=chosen, now=now) or sub
        return preferences_form(endpoint, sub, saved="Saved. Your next email follows your new topics.")
    weeks = {f"pause-{w}": w for w in topics.PAUSE_WEEKS}.get(action)
    if weeks:
        sub = state.set_preferences(token, paused_until=now + timedelta(weeks=weeks), now=now) or sub
        return preferences_form(endpoint, sub, saved=f"Paused for {weeks} week{'s' if weeks > 1 else ''}.")
    if action == "resume":
        sub = state.set_preferences(token, resume=True, now=now) or sub
        return preferences_form(endpoint, sub, saved="Resumed: you’ll get the next email.")
    return preferences_form(endpoint, sub, 400, error="That did not work. Please use one of the buttons.")


# (URL rule, method, view): the view's name is its Flask endpoint name.
ROUTES = (
    ("/", "GET", subscribe_page), ("/subscribe", "GET", subscribe_page),
    ("/", "POST", subscribe), ("/subscribe", "POST", subscribe),
    ("/confirm/<token>", "GET", confirm_page), ("/confirm/<token>", "POST", confirm),
    ("/unsubscribe/<token>", "GET", unsubscribe_page), ("/unsubscribe/<token>", "POST", unsubscribe),
    ("/preferences/<token>", "GET", preferences_page), ("/preferences/<token>", "POST", preferences),
)


def handle_not_found(endpoint: Endpoint, _e):
    return not_found(endpoint)


def handle_http_error(endpoint: Endpoint, e):
    return endpoint.page("web_error.html", e.code or 500, page_title=e.name, code=e.code,
                         message=_ERROR_TEXT.get(e.code, "That request did not work."))


def handle_bug(endpoint: Endpoint, e: Exception):
    from flask import request  # lazy: Flask (~0.1 s), as in create_app

    log.exception("unexpected error serving %s %s", request.method, request.path)
    return endpoint.page("web_error.html", 500, page_title="Something went wrong", code=500,
                         message=_ERROR_TEXT[500])


def security_headers(endpoint: Endpoint, response):
    from flask import request  # lazy: Flask (~0.1 s), as in create_app

    headers = response.headers
    body = response.get_data(as_text=True) if response.mimetype == "text/html" and not response.is_streamed else ""
    headers["Content-Security-Policy"] = content_security_policy(body, endpoint.config.site.url)
    headers["X-Content-Type-Options"] = "nosniff"
    # The URLs carry tokens: never hand them to another site in a Referer. same-origin,
    # not no-referrer: under no-referrer a browser posts our own forms with "Origin:
    # null", which the subscribe form refuses (a foreign page can send null too).
    headers["Referrer-Policy"] = "same-origin"
    headers["X-Frame-Options"] = "DENY"
    headers["Cross-Origin-Opener-Policy"] = "same-origin"
    # Token pages must not be stored anywhere; the form holds a timestamped token, so a
    # cached copy would expire. Nothing here is worth caching.
    headers["Cache-Control"] = "no-store"
    if request.path != "/" and request.path != "/subscribe":
        headers["X-Robots-Tag"] = "noindex, nofollow"
    elif request.method == "POST":
        # The blog's own pages may read the answer to the form they posted (fetch), as CORS
        # allows: only theirs, never any origin.
        origin = embedded_origin(form_origins(endpoint.config))
        headers["Vary"] = "Origin"
        if origin:
            headers["Access-Control-Allow-Origin"] = origin
    return response


_ERROR_TEXT = {
    400: "The request was not understood. Please go back and try again.",
    405: "This page cannot be used that way. Please go back and use the button on the page.",
    413: "That was more than this form accepts.",
    429: "Too many requests have come from your network this hour. Please try again later.",
    500: "Something went wrong on our side. Please try again in a few minutes.",
}


def create_app_from_env():
    """The WSGI entry point for servers such as gunicorn: the config comes from
    $PUBLISHER_CONFIG (default ./config.yaml).

        PUBLISHER_CONFIG=/srv/blog/config.yaml \\
            gunicorn --workers 2 --threads 4 --bind 127.0.0.1:8080 'publisher.web:create_app_from_env()'
    """

    return create_app(load_config(os.environ.get(CONFIG_ENV, "config.yaml")))


__all__ = [
    "CONFIRM_TTL", "RESEND_AFTER", "CSRF_MAX_AGE", "ConfirmationMailer", "CsrfTokens", "Endpoint",
    "check_templates", "confirm_url", "content_security_policy", "create_app", "create_app_from_env",
    "render_confirmation", "render_page", "template_environment",
]
