"""The whole double opt-in and one-click unsubscribe, in Debian's headless chromium (Playwright),
against the endpoint on a real werkzeug server on 127.0.0.1, with the confirmation mail read
from a real aiosmtpd server and the unsubscribe link read from a real digest's header.

Set PUBLISHER_WEB_SHOTS=/some/dir to keep PNG screenshots of every page (desktop 1280x900
and mobile 390x844)."""

from __future__ import annotations

import contextlib
import functools
import http.server
import re
import tempfile
import threading
from datetime import datetime, timezone
from email.utils import parseaddr
from pathlib import Path

import pytest
from browser_helpers import Pages, browser, live_site  # noqa: F401  (fixture)
from smtp_helpers import smtp_server  # noqa: F401  (fixture)
from web_helpers import WebSite, confirm_link

pytestmark = pytest.mark.browser

@pytest.fixture
def live(tmp_path, smtp_server):  # noqa: F811
    """The endpoint on a real server thread; newsletter.web_url is that server's own URL."""
    with live_site(tmp_path / "site", smtp_server) as site:
        yield site


def _digest_unsubscribe_url(site: WebSite, email: str) -> str:
    """Build a real digest for `email` and take the http link from its List-Unsubscribe."""
    from publisher.content import load_posts
    from email import message_from_bytes, policy

    from publisher.newsletter.digest import Recipient, render_digest
    from publisher.newsletter.message import build_message

    (site.config.content_dir).mkdir(parents=True, exist_ok=True)
    (site.config.content_dir / "hello.md").write_text(
        "---\ntitle: Hello, subscribers\ndate: 2025-03-01\nsummary: The first post.\n---\nHello.\n", encoding="utf-8")
    now = datetime.now(timezone.utc)
    posts = load_posts(site.config, now).posts
    assert [p.title for p in posts] == ["Hello, subscribers"]
    sub = site.subscriber(email)
    message = message_from_bytes(build_message(
        render_digest(posts, site.config), Recipient(sub.email, sub.name, sub.token),
        site.config, message_key="browser-test", date=now), policy=policy.default)
    links = [part.strip().strip("<>") for part in message["List-Unsubscribe"].split(",")]
    [http] = [link for link in links if link.startswith("http")]
    assert parseaddr(message["To"])[1] == email
    return http


def test_subscribe_confirm_and_unsubscribe_in_a_real_browser(browser, live):
    from publisher.state import ACTIVE, PENDING, UNSUBSCRIBED

    base = live.config.web_url
    pages = Pages(browser, base)
    page = pages.desktop
    try:
        # Subscribe, with no JavaScript at all (the contexts have it switched off).
        pages.shoot("1-subscribe", base + "/subscribe")
        assert page.title() == "Subscribe · Test Blog"
        # The style arrived despite the strict CSP: the button is the accent colour.
        assert page.eval_on_selector("button", "b => getComputedStyle(b).backgroundColor") == "rgb(29, 78, 216)"
        # Keyboard users see where they are: the focused input gets the focus ring.
        page.keyboard.press("Tab")
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.id") == "email"
        assert page.eval_on_selector("#email", "e => getComputedStyle(e).outlineStyle") == "solid"

        for each in pages.pages.values():  # the second request is within the hour: no mail
            each.get_by_label("Email address").fill("reader@example.org")
            each.get_by_label("Name (optional)").fill("Ada <b>Lovelace</b>")
            each.get_by_role("button", name="Subscribe").click()
            each.wait_for_load_state()
            assert each.get_by_role("heading", level=1).inner_text() == "Check your inbox"
        pages.shoot("2-check-email")
        assert live.endpoint.mailer.wait(15)
        assert live.subscriber("reader@example.org").status == PENDING
        assert live.subscriber("reader@example.org").name == "Ada <b>Lovelace</b>"

        # Confirm: the link from the mail, then the button.
        [mail] = live.mails_to("reader@example.org")
        link = confirm_link(mail)
        assert link.startswith(base + "/confirm/")
        pages.shoot("3-confirm", link)
        assert live.subscriber("reader@example.org").status == PENDING  # looking changes nothing
        page.get_by_role("button", name="Yes, subscribe me").click()
        page.wait_for_load_state()
        assert page.get_by_role("heading", level=1).inner_text() == "You’re subscribed"
        pages.shoot("4-confirmed", only="desktop")  # the link is used up now
        assert live.subscriber("reader@example.org").status == ACTIVE

        # Unsubscribe, from the link in a real digest's List-Unsubscribe header.
        unsubscribe = _digest_unsubscribe_url(live, "reader@example.org")
        assert re.fullmatch(re.escape(base) + r"/unsubscribe/[A-Za-z0-9_-]{43}", unsubscribe)
        pages.shoot("5-unsubscribe", unsubscribe)
        assert live.subscriber("reader@example.org").status == ACTIVE
        for each in pages.pages.values():  # a second POST answers the same
            each.get_by_role("button", name="Unsubscribe").click()
            each.wait_for_load_state()
            assert each.get_by_role("heading", level=1).inner_text() == "You’re unsubscribed"
        pages.shoot("6-unsubscribed")
        assert live.subscriber("reader@example.org").status == UNSUBSCRIBED

        # The pages people reach by mistake look like the product too.
        pages.shoot("7-not-found", base + "/confirm/" + "x" * 43, status=404)
        assert page.get_by_role("heading", level=1).inner_text() == "This link doesn’t work"
        assert pages.violations == []
    finally:
        pages.close()


def test_a_rejected_address_is_announced_next_to_its_field(browser, live):
    pages = Pages(browser, live.config.web_url)
    page = pages.desktop
    try:
        page.goto(live.config.web_url + "/subscribe")
        # "a@b" passes the browser's own type=email check but not ours.
        page.get_by_label("Email address").fill("reader@localhost")
        page.get_by_role("button", name="Subscribe").click()
        page.wait_for_load_state()
        error = page.locator("#email-error")
        assert error.get_attribute("role") == "alert"
        assert error.inner_text() == "Please check the email address: invalid domain: 'localhost'."
        assert page.get_by_label("Email address").get_attribute("aria-invalid") == "true"
        assert page.get_by_label("Email address").input_value() == "reader@localhost"
        for name, other in pages.pages.items():
            if other is not page:
                other.goto(live.config.web_url + "/subscribe")
                other.get_by_label("Email address").fill("reader@localhost")
                other.get_by_role("button", name="Subscribe").click()
                other.wait_for_load_state()
        pages.shoot("8-subscribe-error")
        assert live.state.list_subscribers() == []
        assert pages.violations == []
    finally:
        pages.close()



@contextlib.contextmanager
def static_folder():
    """A plain static server on its own port (another origin than serve's), as a blog on a
    static host: (its URL, the folder it serves)."""
    with tempfile.TemporaryDirectory() as folder:
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=folder)
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_port}", Path(folder)
        finally:
            server.shutdown()
            thread.join(10)
            server.server_close()


def test_the_form_printed_for_a_static_page_subscribes_from_the_blogs_origin_only(browser, tmp_path, smtp_server):  # noqa: F811
    """`publisher form` pasted into a page of the blog, served from another origin than
    `publisher serve`: a real browser submits it and the person is stored and mailed; the same
    form on a page of an origin not allowed is refused, nobody stored."""
    from publisher.form import render_form
    from publisher.state import PENDING

    with static_folder() as (blog, blog_files), static_folder() as (other, other_files), \
            live_site(tmp_path / "site", smtp_server, form_origins=[blog]) as live:
        html = render_form(live.config)
        assert f'action="{live.config.web_url}/subscribe"' in html
        for folder in (blog_files, other_files):
            (folder / "index.html").write_text(
                f"<!doctype html><html lang=en><meta charset=utf-8><title>Blog</title><body>{html}</body></html>",
                encoding="utf-8")
        context = browser.new_context(java_script_enabled=False)
        page = context.new_page()
        try:
            assert page.goto(blog + "/").status == 200
            page.get_by_label("Email address").fill("static@example.org")
            page.get_by_label("Name (optional)").fill("Stat Ic")
            page.get_by_role("button", name="Subscribe").click()
            page.wait_for_load_state()
            assert page.url == live.config.web_url + "/subscribe"
            assert page.get_by_role("heading", level=1).inner_text() == "Check your inbox"
            assert live.endpoint.mailer.wait(15)
            assert live.subscriber("static@example.org").status == PENDING
            assert len(live.mails_to("static@example.org")) == 1

            assert page.goto(other + "/").status == 200  # the same form on someone else's page
            page.get_by_label("Email address").fill("forged@example.org")
            page.get_by_role("button", name="Subscribe").click()
            page.wait_for_load_state()
            assert page.get_by_role("alert").inner_text() == "This form has expired. Please submit it again."
            assert live.subscriber("forged@example.org") is None
        finally:
            context.close()
