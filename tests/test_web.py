"""publisher/web.py: the subscribers' endpoint, through Flask's test client, on a real SQLite
state file, with confirmation mails going to a real aiosmtpd server on 127.0.0.1."""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from smtp_helpers import smtp_server  # noqa: F401  (fixture)
from web_helpers import WEB_URL, Clock, WebSite, confirm_link, csrf_token, web_config

from publisher.errors import ConfigError
from publisher.state import ACTIVE, BOUNCED, PENDING, UNSUBSCRIBED

ONE_CLICK = b"List-Unsubscribe=One-Click"
FORM = "application/x-www-form-urlencoded"


@pytest.fixture
def web(tmp_path, smtp_server):  # noqa: F811
    site = WebSite(tmp_path / "site", smtp_server)
    yield site
    site.close()


def _token_in(url: str) -> str:
    return url.rsplit("/", 1)[1]


def _subscribe_and_confirm(web: WebSite, email: str) -> str:
    """Double opt-in end to end; returns the confirm URL that was used."""
    web.subscribe(email)
    url = confirm_link(web.mails_to(email)[-1])
    assert web.client.post(web.path(url)).status_code == 200
    return url


# --- the subscribe form -------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/", "/subscribe"])
def test_subscribe_page_is_an_accessible_form_with_a_csrf_token(web, path):
    response = web.client.get(path)
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert '<html lang="en-GB">' in html
    assert "<title>Subscribe · Test Blog</title>" in html
    assert "<h1>Subscribe to Test Blog</h1>" in html
    assert "Notes on testing things properly" in html
    # Every visible input has a label tied to it by id.
    for field in ("email", "name"):
        assert f'<label for="{field}">' in html
        assert f'id="{field}" name="{field}"' in html
    assert 'type="email"' in html and 'autocomplete="email"' in html
    assert csrf_token(html)
    assert "<script" not in html.lower()
    # The form posts back to its own URL, so the app works under any mount point.
    assert '<form method="post">' in html


def test_subscribe_stores_pending_and_mails_a_confirmation_link(web):
    response = web.subscribe("Reader@Example.ORG", "Ada")
    assert response.status_code == 200
    assert "<h1>Check your inbox</h1>" in response.get_data(as_text=True)

    sub = web.subscriber("reader@example.org")
    assert (sub.email, sub.name, sub.status) == ("Reader@example.org", "Ada", PENDING)
    assert sub.confirm_token and sub.confirm_token != sub.token
    assert sub.confirm_sent_at == web.clock.now

    [received] = web.server.received
    assert received.rcpt == "Reader@example.org"
    assert received.mail_from == "news@blog.test.example"
    message = received.message
    assert message["Subject"] == "Confirm your subscription to Test Blog"
    assert message["To"] == "Reader@example.org"
    assert message["From"] == "Test Blog <news@blog.test.example>"
    assert message["Message-ID"]
    assert message["List-Unsubscribe"] is None  # a transactional mail, not list mail
    url = f"{WEB_URL}/confirm/{sub.confirm_token}"
    assert confirm_link(message) == url
    html = message.get_body(("html",)).get_content()
    assert f'href="{url}"' in html
    # The name typed into the form never reaches the mail: anyone can submit any address.
    assert "Ada" not in message.as_string()


def test_an_invalid_address_re_renders_the_form_with_the_reason_and_stores_nothing(web):
    response = web.subscribe("not an address", "Ada")
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "Please check the email address: contains spaces or control characters." in html
    assert 'aria-invalid="true" aria-describedby="email-error"' in html
    assert 'id="email-error" role="alert"' in html
    assert 'value="not an address"' in html and 'value="Ada"' in html  # nothing to retype
    assert csrf_token(html)  # a fresh token: the corrected form can be sent at once
    assert web.state.list_subscribers() == []
    assert web.server.received == []


def test_names_and_addresses_are_escaped(web):
    response = web.subscribe("<script>alert(1)</script>", "<script>alert(2)</script>")
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "<script>" not in html
    assert 'value="&lt;script&gt;alert(1)&lt;/script&gt;"' in html
    assert 'value="&lt;script&gt;alert(2)&lt;/script&gt;"' in html

    web.add_active('x"><script>y@example.org')  # stored by other means; shown on its pages
    sub = web.subscriber('x"><script>y@example.org')
    page = web.client.get(f"/unsubscribe/{sub.token}").get_data(as_text=True)
    assert "<script>" not in page
    assert "x&#34;&gt;&lt;script&gt;y@example.org" in page


def test_a_name_with_markup_is_stored_as_text_and_never_rendered_as_html(web):
    web.subscribe("ada@example.org", "<b>Ada</b> <script>alert(1)</script>")
    assert web.subscriber("ada@example.org").name == "<b>Ada</b> <script>alert(1)</script>"
    [message] = web.mails_to("ada@example.org")
    assert "<script>" not in message.as_string() and "<b>Ada" not in message.as_string()


# --- no address enumeration -----------------------------------------------------------------

def test_every_valid_address_gets_the_same_response_byte_for_byte(web):
    web.add_active("active@example.org")
    web.add_active("gone@example.org")
    web.client.post(f"/unsubscribe/{web.subscriber('gone@example.org').token}")
    web.subscribe("waiting@example.org")  # pending, mailed a moment ago
    mails_before = len(web.server.received)

    responses = {email: web.subscribe(email) for email in
                 ("new@example.org", "active@example.org", "gone@example.org", "waiting@example.org")}
    seen = {(r.status_code, tuple(sorted(r.headers.items())), r.get_data()) for r in responses.values()}
    assert len(seen) == 1, "the responses differ, which tells who is on the list"
    assert responses["new@example.org"].status_code == 200
    body = responses["new@example.org"].get_data(as_text=True)
    assert "new@example.org" not in body

    # What happened behind the identical pages: new and unsubscribed get a confirmation,
    # active gets nothing, pending is within the hour's limit.
    assert sorted(m.rcpt for m in web.server.received[mails_before:]) == ["gone@example.org", "new@example.org"]


def test_an_active_subscriber_gets_no_new_mail_and_stays_active(web):
    web.add_active("active@example.org", "Ada")
    web.subscribe("ACTIVE@example.org", "Someone Else")
    sub = web.subscriber("active@example.org")
    assert (sub.status, sub.name, sub.confirm_token) == (ACTIVE, "Ada", None)
    assert web.server.received == []


# --- rate limit --------------------------------------------------------------------------------

def test_at_most_one_confirmation_per_address_per_hour(web):
    web.subscribe("reader@example.org")
    web.clock.advance(minutes=59, seconds=59)
    web.subscribe("reader@example.org")
    assert len(web.mails_to("reader@example.org")) == 1

    web.clock.advance(seconds=1)
    web.subscribe("reader@example.org")
    first, second = web.mails_to("reader@example.org")
    # The same link again: the first mail's link keeps working.
    assert confirm_link(second) == confirm_link(first)
    assert web.subscriber("reader@example.org").confirm_sent_at == web.clock.now
    assert first["Message-ID"] != second["Message-ID"]


def test_an_expired_confirmation_is_replaced_by_a_new_link(web):
    web.subscribe("reader@example.org")
    old = confirm_link(web.mails_to("reader@example.org")[0])
    web.clock.advance(days=8)
    web.subscribe("reader@example.org")
    new = confirm_link(web.mails_to("reader@example.org")[1])
    assert new != old
    assert web.client.post(web.path(old)).status_code == 404
    assert web.client.post(web.path(new)).status_code == 200
    assert web.subscriber("reader@example.org").status == ACTIVE


def test_concurrent_requests_for_one_address_send_one_mail(tmp_path, smtp_server):  # noqa: F811
    """Two server processes (two apps on one database) and many threads at once."""
    a = WebSite(tmp_path / "site", smtp_server)
    b = WebSite(tmp_path / "site", smtp_server, config=a.config, clock=a.clock)
    try:
        tokens = [a.form_token() for _ in range(16)]  # a form is accepted once

        def post(i: int) -> int:
            app = (a if i % 2 else b).app
            data = {"email": "reader@example.org", "csrf_token": tokens[i]}
            with app.test_client() as client:  # a test client per thread
                response = client.post("/subscribe", data=data)
                response.close()  # as a server does: a confirmation is queued then
                return response.status_code

        with ThreadPoolExecutor(8) as pool:
            assert set(pool.map(post, range(16))) == {200}
        assert a.endpoint.mailer.wait(15) and b.endpoint.mailer.wait(15)
        assert len(smtp_server.received) == 1
        assert len(a.state.list_subscribers()) == 1
    finally:
        a.close()
        b.close()


# --- CSRF ----------------------------------------------------------------------------------------

def _assert_refused(web: WebSite, response) -> None:
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert '<p class="alert" role="alert">This form has expired. Please submit it again.</p>' in html
    assert 'value="reader@example.org"' in html  # kept for the resubmission
    assert web.state.list_subscribers() == []
    assert web.server.received == []


def test_a_missing_csrf_token_is_refused_and_nothing_is_stored(web):
    _assert_refused(web, web.subscribe("reader@example.org", token=""))
    response = web.client.post("/subscribe", data={"email": "reader@example.org"})
    _assert_refused(web, response)


@pytest.mark.parametrize("forge", ["tampered", "other key", "other purpose", "garbage"])
def test_a_forged_csrf_token_is_refused(web, forge):
    from itsdangerous import TimestampSigner

    from publisher.web import CsrfTokens

    good = web.form_token()
    token = {
        "tampered": good[:-2] + ("AA" if not good.endswith("AA") else "BB"),
        "other key": CsrfTokens("not the secret", web.clock).new(),
        "other purpose": TimestampSigner(web.state.web_secret(), salt="publisher.web.subscribe",
                                         digest_method=hashlib.sha256).sign(b"unsubscribe").decode(),
        "garbage": "subscribe.x.y",
    }[forge]
    _assert_refused(web, web.subscribe("reader@example.org", token=token))


def test_an_expired_csrf_token_is_refused_and_a_fresh_one_works(web):
    token = web.form_token()
    web.clock.advance(days=1, seconds=1)
    response = web.subscribe("reader@example.org", token=token)
    _assert_refused(web, response)
    fresh = csrf_token(response.get_data(as_text=True))
    assert web.subscribe("reader@example.org", token=fresh).status_code == 200
    assert len(web.mails_to("reader@example.org")) == 1


def test_a_token_a_day_old_is_still_accepted(web):
    token = web.form_token()
    web.clock.advance(hours=23, minutes=59)
    assert web.subscribe("reader@example.org", token=token).status_code == 200
    assert web.subscriber("reader@example.org").status == PENDING


def test_a_cross_site_browser_post_is_refused_even_with_a_valid_token(web):
    response = web.subscribe("reader@example.org", **{"Sec-Fetch-Site": "cross-site"})
    _assert_refused(web, response)
    assert web.subscribe("reader@example.org", **{"Sec-Fetch-Site": "same-origin"}).status_code == 200


def test_the_blogs_own_pages_may_post_the_form_without_a_token_and_no_one_else(web):
    """`publisher form` on a static page of the blog (site.url's origin) holds no signed token:
    the Origin browsers send with every POST stands in for it; any other origin, or none, is
    refused, and the answer is readable by the blog's page alone (CORS)."""
    blog = "https://blog.test.example"  # site.url's origin
    for refused in ({"Origin": "https://evil.example"}, {"Origin": "null"}, {},
                    {"Origin": "https://blog.test.example.evil.example"},
                    {"Referer": blog + "/about/"}):  # a Referer alone is not enough
        response = web.subscribe("reader@example.org", token="", **refused)
        _assert_refused(web, response)
        assert "Access-Control-Allow-Origin" not in response.headers
    response = web.subscribe("reader@example.org", token="", Origin=blog, **{"Sec-Fetch-Site": "cross-site"})
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == blog
    assert response.headers["Vary"] == "Origin"
    assert web.subscriber("reader@example.org").status == PENDING
    assert len(web.mails_to("reader@example.org")) == 1
    # a page of another site still cannot post even a good token cross-site
    response = web.subscribe("other@example.org", Origin="https://evil.example", **{"Sec-Fetch-Site": "cross-site"})
    assert response.status_code == 400 and web.subscriber("other@example.org") is None


def test_every_server_process_accepts_the_others_tokens(tmp_path, smtp_server):  # noqa: F811
    a = WebSite(tmp_path / "site", smtp_server)
    b = WebSite(tmp_path / "site", smtp_server, config=a.config, clock=a.clock)
    try:
        assert b.subscribe("reader@example.org", token=a.form_token()).status_code == 200
        assert a.state.get_meta("web_secret") == b.state.web_secret()
    finally:
        a.close()
        b.close()


# --- confirm -----------------------------------------------------------------------------------

def test_get_confirm_shows_a_button_and_never_activates(web):
    web.subscribe("reader@example.org")
    path = web.path(confirm_link(web.mails_to("reader@example.org")[0]))
    for _ in range(3):
        response = web.client.get(path)
        html = response.get_data(as_text=True)
        assert response.status_code == 200
        assert '<form method="post">' in html and '<button type="submit">Yes, subscribe me</button>' in html
        assert '<span class="address">reader@example.org</span>' in html
        assert web.client.head(path).status_code == 200
    sub = web.subscriber("reader@example.org")
    assert sub.status == PENDING and sub.confirm_token == _token_in(path)


def test_post_confirm_activates_once(web):
    web.subscribe("reader@example.org")
    path = web.path(confirm_link(web.mails_to("reader@example.org")[0]))
    web.clock.advance(hours=2)
    response = web.client.post(path)
    assert response.status_code == 200
    assert "<h1>You’re subscribed</h1>" in response.get_data(as_text=True)
    sub = web.subscriber("reader@example.org")
    assert (sub.status, sub.confirm_token) == (ACTIVE, None)
    assert web.state.count_subscribers(ACTIVE) == 1
    # The token is used up: a second click gets the friendly page, and nothing changes.
    again = web.client.post(path)
    assert again.status_code == 404
    assert "If you just confirmed your subscription, you’re all set." in again.get_data(as_text=True)
    assert web.subscriber("reader@example.org").status == ACTIVE


def test_confirmed_at_is_recorded(web):
    import sqlalchemy as sa

    from publisher.state import subscribers

    web.subscribe("reader@example.org")
    web.clock.advance(minutes=5)
    web.client.post(web.path(confirm_link(web.mails_to("reader@example.org")[0])))
    with web.state.read() as conn:
        confirmed_at = conn.execute(sa.select(subscribers.c.confirmed_at)).scalar()
    assert confirmed_at == web.clock.now


def test_a_confirm_link_expires_after_seven_days(web):
    web.subscribe("reader@example.org")
    path = web.path(confirm_link(web.mails_to("reader@example.org")[0]))
    web.clock.advance(days=7, seconds=-1)
    assert web.client.get(path).status_code == 200
    web.clock.advance(seconds=1)
    for response in (web.client.get(path), web.client.post(path)):
        assert response.status_code == 404
        assert "<h1>This link doesn’t work</h1>" in response.get_data(as_text=True)
    assert web.subscriber("reader@example.org").status == PENDING


def test_an_unsubscribe_token_cannot_confirm(web):
    web.subscribe("reader@example.org")
    sub = web.subscriber("reader@example.org")
    assert web.client.get(f"/confirm/{sub.token}").status_code == 404
    assert web.client.post(f"/confirm/{sub.token}").status_code == 404
    assert web.subscriber("reader@example.org").status == PENDING


# --- unsubscribe -------------------------------------------------------------------------------

def test_get_unsubscribe_shows_a_button_and_never_changes_anything(web):
    sub = web.add_active("reader@example.org")
    for _ in range(3):
        response = web.client.get(f"/unsubscribe/{sub.token}")
        html = response.get_data(as_text=True)
        assert response.status_code == 200
        assert '<form method="post">' in html and '<button type="submit">Unsubscribe</button>' in html
        assert '<input type="hidden" name="List-Unsubscribe" value="One-Click">' in html
        assert '<span class="address">reader@example.org</span>' in html
        assert web.client.head(f"/unsubscribe/{sub.token}").status_code == 200
    assert web.subscriber("reader@example.org").status == ACTIVE


def test_rfc8058_one_click_post_unsubscribes_at_once_without_cookies(web):
    sub = web.add_active("reader@example.org")
    client = web.app.test_client(use_cookies=False)
    for _ in range(2):  # a second POST (a retrying mail provider) is still a 200
        response = client.post(f"/unsubscribe/{sub.token}", data=ONE_CLICK, content_type=FORM)
        assert response.status_code == 200
        assert "Set-Cookie" not in response.headers
        assert "<h1>You’re unsubscribed</h1>" in response.get_data(as_text=True)
        assert web.subscriber("reader@example.org").status == UNSUBSCRIBED
    assert web.state.count_subscribers(ACTIVE) == 0


def test_the_unsubscribe_page_for_someone_already_unsubscribed_says_so(web):
    sub = web.add_active("reader@example.org")
    web.client.post(f"/unsubscribe/{sub.token}", data=ONE_CLICK, content_type=FORM)
    html = web.client.get(f"/unsubscribe/{sub.token}").get_data(as_text=True)
    assert "<h1>You’re not subscribed</h1>" in html and "<form" not in html


def test_a_confirm_token_cannot_unsubscribe(web):
    sub = web.add_active("reader@example.org")
    # An unsubscribed address asking again holds a confirm token besides its own token.
    web.client.post(f"/unsubscribe/{sub.token}")
    web.subscribe("reader@example.org")
    pending = web.subscriber("reader@example.org")
    assert pending.confirm_token
    assert web.client.get(f"/unsubscribe/{pending.confirm_token}").status_code == 404
    assert web.client.post(f"/unsubscribe/{pending.confirm_token}", data=ONE_CLICK,
                           content_type=FORM).status_code == 404
    assert web.subscriber("reader@example.org").confirm_token == pending.confirm_token


def test_a_bounced_address_stays_bounced_when_its_link_is_used(web):
    sub = web.add_active("reader@example.org")
    web.state.set_subscriber_status(sub.id, BOUNCED)
    assert web.client.post(f"/unsubscribe/{sub.token}").status_code == 200
    assert web.subscriber("reader@example.org").status == BOUNCED


def test_a_pending_subscriber_can_unsubscribe_and_the_confirm_link_then_dies(web):
    web.subscribe("reader@example.org")
    sub = web.subscriber("reader@example.org")
    path = web.path(confirm_link(web.mails_to("reader@example.org")[0]))
    assert web.client.post(f"/unsubscribe/{sub.token}").status_code == 200
    assert web.client.post(path).status_code == 404
    assert web.subscriber("reader@example.org").status == UNSUBSCRIBED


# --- re-subscribe ----------------------------------------------------------------------------

def test_an_unsubscribed_address_can_subscribe_again(web):
    _subscribe_and_confirm(web, "reader@example.org")
    sub = web.subscriber("reader@example.org")
    web.client.post(f"/unsubscribe/{sub.token}", data=ONE_CLICK, content_type=FORM)
    assert web.subscriber("reader@example.org").status == UNSUBSCRIBED

    # The hour's limit counts from the last confirmation mail, whatever happened since.
    web.clock.advance(minutes=1)
    web.subscribe("reader@example.org")
    assert len(web.mails_to("reader@example.org")) == 1
    web.clock.advance(hours=1)
    web.subscribe("reader@example.org")
    assert len(web.mails_to("reader@example.org")) == 2
    # Until it confirms, the address stays unsubscribed (it is not mailed).
    assert web.subscriber("reader@example.org").status == UNSUBSCRIBED
    assert web.client.post(web.path(confirm_link(web.mails_to("reader@example.org")[1]))).status_code == 200
    again = web.subscriber("reader@example.org")
    assert again.status == ACTIVE
    assert again.token == sub.token  # links in mails already sent keep working


def test_the_latest_request_wins_unsubscribe_cancels_an_outstanding_confirmation(web):
    _subscribe_and_confirm(web, "reader@example.org")
    token = web.subscriber("reader@example.org").token
    web.client.post(f"/unsubscribe/{token}")
    web.clock.advance(hours=2)
    web.subscribe("reader@example.org")
    link = confirm_link(web.mails_to("reader@example.org")[-1])
    web.client.post(f"/unsubscribe/{token}")  # an old mail's link, clicked afterwards
    assert web.client.post(web.path(link)).status_code == 404
    assert web.subscriber("reader@example.org").status == UNSUBSCRIBED


# --- bad URLs and errors -------------------------------------------------------------------

@pytest.mark.parametrize("path", [
    "/confirm/" + "A" * 43, "/unsubscribe/" + "A" * 43, "/confirm/short", "/unsubscribe/%00%01",
    "/unsubscribe/" + "a" * 500, "/confirm/..%2f..%2fetc", "/no/such/page",
])
def test_bad_or_unknown_tokens_get_the_friendly_404_page(web, path):
    for response in (web.client.get(path), web.client.post(path, data=ONE_CLICK, content_type=FORM)):
        html = response.get_data(as_text=True)
        assert response.status_code == 404
        assert "<h1>This link doesn’t work</h1>" in html
        assert f'<a class="button" href="{WEB_URL}/subscribe">Subscribe</a>' in html
        assert "Traceback" not in html
    assert web.state.list_subscribers() == []


def test_other_methods_get_a_styled_405_page(web):
    response = web.client.put("/subscribe")
    assert response.status_code == 405
    assert "<h1>Method Not Allowed</h1>" in response.get_data(as_text=True)
    assert response.headers["X-Frame-Options"] == "DENY"


def test_an_oversized_form_is_refused(web):
    response = web.client.post("/subscribe", data={"email": "a@example.org", "name": "x" * 40_000,
                                                   "csrf_token": web.form_token()})
    assert response.status_code == 413
    assert web.state.list_subscribers() == []


def test_a_route_is_a_function_of_the_endpoint_and_runs_alone(web):
    """Issue 26: the routes are top-level functions of the endpoint (and the URL's token),
    not closures inside create_app, so one can be called on its own."""
    from publisher.web import not_found, unsubscribe_page

    sub = web.add_active("reader@example.org")
    with web.app.test_request_context("/unsubscribe/" + sub.token):
        page = unsubscribe_page(web.endpoint, sub.token)
        missing = unsubscribe_page(web.endpoint, "B" * 43)
        assert missing.get_data() == not_found(web.endpoint).get_data()
    assert page.status_code == 200 and "reader@example.org" in page.get_data(as_text=True)
    assert missing.status_code == 404


def test_a_bug_shows_the_error_page_and_logs_the_traceback(web, monkeypatch, caplog):
    def broken(*_a, **_k):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(web.state.__class__, "subscriber_by_token", broken)
    with caplog.at_level(logging.ERROR, logger="publisher.web"):
        response = web.client.get("/unsubscribe/" + "A" * 43)
    assert response.status_code == 500
    html = response.get_data(as_text=True)
    assert "Something went wrong on our side" in html and "disk on fire" not in html
    assert "disk on fire" in caplog.text
    assert response.headers["Content-Security-Policy"].startswith("default-src 'none'")


# --- security headers ----------------------------------------------------------------------

def _responses(web: WebSite):
    sub = web.add_active("reader@example.org")
    web.subscribe("new@example.org")
    confirm_path = web.path(confirm_link(web.mails_to("new@example.org")[0]))
    return {
        "GET /": web.client.get("/"),
        "POST /subscribe": web.subscribe("other@example.org"),
        "POST /subscribe (invalid)": web.subscribe("x"),
        "GET /confirm": web.client.get(confirm_path),
        "POST /confirm": web.client.post(confirm_path),
        "GET /unsubscribe": web.client.get(f"/unsubscribe/{sub.token}"),
        "POST /unsubscribe": web.client.post(f"/unsubscribe/{sub.token}"),
        "404": web.client.get("/confirm/" + "B" * 43),
        "405": web.client.delete("/"),
    }


def test_security_headers_on_every_response(web):
    for what, response in _responses(web).items():
        headers = response.headers
        csp = headers.get("Content-Security-Policy", "")
        directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
        assert directives["default-src"] == "'none'", what
        assert directives["form-action"] == "'self'", what
        assert directives["frame-ancestors"] == "'none'", what
        assert "unsafe-inline" not in csp and "script-src" not in csp, what
        # The page's own <style> is allowed by its hash, and only it.
        styles = re.findall(r"<style>(.*?)</style>", response.get_data(as_text=True), re.DOTALL)
        assert styles, what
        expected = " ".join("'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'"
                            for s in styles)
        assert directives["style-src"] == expected, what
        assert directives["img-src"] == "'self' https://blog.test.example", what  # the favicon
        assert headers["X-Content-Type-Options"] == "nosniff", what
        assert headers["Referrer-Policy"] == "same-origin", what
        assert headers["X-Frame-Options"] == "DENY", what
        assert headers["Cache-Control"] == "no-store", what
        assert "Set-Cookie" not in headers, what
        assert 'style="' not in response.get_data(as_text=True), what  # blocked by the CSP


def test_token_pages_are_not_indexed(web):
    responses = _responses(web)
    assert "X-Robots-Tag" not in responses["GET /"].headers
    for what in ("GET /confirm", "GET /unsubscribe", "404"):
        assert responses[what].headers["X-Robots-Tag"] == "noindex, nofollow", what


# --- SMTP trouble -------------------------------------------------------------------------------

def test_smtp_failure_is_logged_the_visitor_sees_the_same_page_and_may_retry(web, caplog):
    web.server.add_fault("rcpt", "451 4.3.0 Try later", times=1)
    with caplog.at_level(logging.WARNING, logger="publisher.web"):
        failed = web.subscribe("reader@example.org")
    ok = web.subscribe("new@example.org")
    assert (failed.status_code, failed.get_data()) == (ok.status_code, ok.get_data())
    assert "confirmation for reader@example.org not sent after 1 attempts: 451 4.3.0 Try later" in caplog.text
    assert web.mails_to("reader@example.org") == []
    # The reservation was released: asking again at once sends the mail.
    assert web.subscriber("reader@example.org").confirm_sent_at is None
    web.subscribe("reader@example.org")
    assert len(web.mails_to("reader@example.org")) == 1


def test_an_unreachable_smtp_server_is_logged_and_the_page_is_the_same(tmp_path, caplog):
    from smtp_helpers import unused_port

    web = WebSite(tmp_path / "site", None, smtp={"port": unused_port()})
    try:
        with caplog.at_level(logging.WARNING, logger="publisher.web"):
            response = web.subscribe("reader@example.org")
        assert response.status_code == 200
        assert "<h1>Check your inbox</h1>" in response.get_data(as_text=True)
        assert re.search(r"confirmation for reader@example.org not sent: cannot reach SMTP server", caplog.text)
        assert web.subscriber("reader@example.org").status == PENDING
    finally:
        web.close()


def test_a_bounced_confirmation_keeps_the_hour_limit(web, caplog):
    web.server.add_fault("rcpt", "550 5.1.1 No such user", recipient="nobody@example.org")
    with caplog.at_level(logging.WARNING, logger="publisher.web"):
        web.subscribe("nobody@example.org")
    assert "confirmation for nobody@example.org bounced: 550 5.1.1 No such user" in caplog.text
    web.subscribe("nobody@example.org")
    assert web.server.attempts("nobody@example.org") == 1


# --- templates and start-up ----------------------------------------------------------------

def test_the_sites_own_templates_override_the_bundled_ones(tmp_path, smtp_server):  # noqa: F811
    config = web_config(tmp_path / "site", smtp_server)
    own = config.templates_dir
    own.mkdir()
    (own / "web_confirmed.html").write_text(
        '{% extends "web_base.html" %}{% block content %}<h1>Welcome aboard, {{ email }}</h1>{% endblock %}',
        encoding="utf-8")
    (own / "confirm.txt").write_text("Click: {{ confirm_url }}\n", encoding="utf-8")
    web = WebSite(tmp_path / "site", smtp_server, config=config)
    try:
        web.subscribe("reader@example.org")
        [message] = web.mails_to("reader@example.org")
        assert message.get_body(("plain",)).get_content().startswith("Click: https://")
        url = message.get_body(("plain",)).get_content().split()[1]
        html = web.client.post(web.path(url)).get_data(as_text=True)
        assert "<h1>Welcome aboard, reader@example.org</h1>" in html
        assert "<h1>Subscribe to Test Blog</h1>" in web.client.get("/").get_data(as_text=True)  # bundled
    finally:
        web.close()


def test_a_broken_template_override_stops_start_up_naming_the_file(tmp_path, smtp_server):  # noqa: F811
    from publisher.web import create_app

    config = web_config(tmp_path / "site", smtp_server)
    config.templates_dir.mkdir()
    (config.templates_dir / "web_subscribe.html").write_text("{% if %}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"templates/web_subscribe.html: line 1: "):
        create_app(config)


def test_start_up_needs_a_from_address(tmp_path):
    from publisher.web import create_app

    config = web_config(tmp_path / "site", None, **{"from": ""})
    with pytest.raises(ConfigError, match="newsletter.from: required to send mail"):
        create_app(config)


def test_create_app_from_env_reads_publisher_config(tmp_path, monkeypatch):
    from publisher.state import State
    from publisher.web import create_app_from_env

    config = web_config(tmp_path / "site", None, web_url="https://elsewhere.example/news")
    monkeypatch.setenv("PUBLISHER_CONFIG", str(config.path))
    app = create_app_from_env()
    try:
        assert app.test_client().get("/").status_code == 200
        assert app.extensions["publisher"].config.web_url == "https://elsewhere.example/news"
        state = State(config.database_url)
        assert state.get_meta("web_secret")  # that site's database
        state.close()
    finally:
        app.extensions["publisher"].close(5)


def test_publisher_serve_answers_on_its_port_and_stops_on_sigterm(tmp_path):
    config = web_config(tmp_path / "site", None)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "publisher.cli", "--config", str(config.path), "serve", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        found = re.fullmatch(r"serving https://blog\.test\.example/newsletter at (http://127\.0\.0\.1:\d+/) "
                             r"\(Ctrl-C to stop\)\n", line)
        assert found, line + proc.stderr.read() if proc.poll() is not None else line
        with urllib.request.urlopen(found.group(1) + "subscribe", timeout=10) as response:
            assert response.status == 200
            assert response.headers["X-Frame-Options"] == "DENY"
            assert b"<h1>Subscribe to Test Blog</h1>" in response.read()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        assert '"GET /subscribe HTTP/1.1" 200' in proc.stderr.read()  # the access log
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


def test_the_database_pool_holds_a_connection_for_every_thread_that_may_ask(web):
    """Issue 25, item 9: SQLAlchemy's default pool (5, and 10 more on demand) left a burst
    of requests waiting for a connection until they failed with HTTP 500."""
    from publisher.web import MAIL_WORKERS, SERVER_THREADS

    assert web.endpoint.state().engine.pool.size() >= SERVER_THREADS + MAIL_WORKERS + 1


def test_publisher_serve_reports_a_port_in_use(tmp_path):
    import socket

    config = web_config(tmp_path / "site", None)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "publisher.cli", "--config", str(config.path), "serve", "--port", str(port)],
            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr == f"publisher: error: cannot listen on 127.0.0.1:{port}: Address already in use\n"


def test_the_mailer_is_bounded_and_releases_what_it_cannot_queue(web, monkeypatch):
    import publisher.newsletter.confirmations as confirmations

    gate = threading.Event()
    monkeypatch.setattr(confirmations, "MAIL_BACKLOG", 1)
    monkeypatch.setattr(web.endpoint.mailer, "send", lambda sub: gate.wait(10))
    for address in ("first@example.org", "second@example.org"):
        web.client.post("/subscribe", data={"email": address,
                                            "csrf_token": web.form_token()}).close()
    gate.set()
    assert web.endpoint.mailer.wait(10)
    assert web.subscriber("first@example.org").confirm_sent_at is not None
    assert web.subscriber("second@example.org").confirm_sent_at is None  # may ask again at once


def test_clock_is_injected_everywhere(web):
    """No wall-clock reads sneak in: a clock far in the past still gives working links."""
    web.clock.now = Clock().now.replace(year=2001)
    web.subscribe("reader@example.org")
    assert web.subscriber("reader@example.org").confirm_sent_at.year == 2001
    assert web.client.post(web.path(confirm_link(web.mails_to("reader@example.org")[0]))).status_code == 200


def test_shutting_down_gives_up_a_mail_waiting_for_its_retry_and_releases_it(tmp_path, smtp_server):  # noqa: F811
    smtp_server.add_fault("rcpt", "451 4.3.0 Try later")
    web = WebSite(tmp_path / "site", smtp_server, smtp={"max_attempts": 5, "retry_base_delay": 300})
    try:
        web.client.post("/subscribe", data={"email": "reader@example.org",
                                            "csrf_token": web.form_token()}).close()
        # No waiting out a five-minute backoff: close() stops the retry and releases the mail.
        web.endpoint.close(timeout=0.2)
        assert web.endpoint.mailer.wait(0)
        assert web.subscriber("reader@example.org").confirm_sent_at is None
        assert smtp_server.received == []
    finally:
        web.state.close()
