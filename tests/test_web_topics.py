"""web.py's topics: the subscribe form's checkboxes and /preferences/<token>, through Flask's
test client on a real state database, and in headless chromium (Playwright) with no JavaScript.

Set PUBLISHER_WEB_SHOTS=/some/dir to keep PNG screenshots (desktop 1280 wide, mobile 390)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from smtp_helpers import smtp_server  # noqa: F401  (fixture)
from browser_helpers import Pages, browser, live_site  # noqa: F401  (fixture)
from web_helpers import WebSite, confirm_link, csrf_token, web_config

from publisher.state import ACTIVE, UNSUBSCRIBED

TOPICS = ["Python", "Rust", "Go", "Data science"]
FORM = "application/x-www-form-urlencoded"


@pytest.fixture
def web(tmp_path, smtp_server):  # noqa: F811
    site = WebSite(tmp_path / "site", smtp_server, topics=TOPICS)
    yield site
    site.close()


def row(web, email):
    """Everything stored about a subscriber, to compare before and after."""
    sub = web.subscriber(email)
    with web.state.read() as conn:
        from publisher.state import subscribers

        return dict(conn.execute(subscribers.select().where(subscribers.c.id == sub.id)).one()._mapping)


def checked(html: str) -> list[str]:
    return re.findall(r'name="topic" value="([^"]+)"[^>]* checked', html)


def test_the_subscribe_form_offers_the_topics_and_stores_the_choice(web):
    html = web.client.get("/subscribe").get_data(as_text=True)
    assert re.findall(r'name="topic" value="([^"]+)"', html) == ["python", "rust", "go", "data-science"]
    assert checked(html) == []  # everything is the default
    assert "Leave them all unticked to get every post" in html
    data = {"email": "ada@example.org", "name": "", "csrf_token": web.form_token(), "topic": ["rust", "data-science"]}
    response = web.client.post("/subscribe", data=data)
    response.close()
    assert web.endpoint.mailer.wait(15)
    assert response.status_code == 200
    assert web.subscriber("ada@example.org").topics == ("data-science", "rust")
    # Confirming keeps the choice.
    assert web.client.post(web.path(confirm_link(web.mails_to("ada@example.org")[-1]))).status_code == 200
    sub = web.subscriber("ada@example.org")
    assert (sub.status, sub.topics) == (ACTIVE, ("data-science", "rust"))


def test_a_topic_not_on_offer_is_refused_by_the_subscribe_form(web):
    data = {"email": "ada@example.org", "csrf_token": web.form_token(), "topic": ["rust", "cobol"]}
    response = web.client.post("/subscribe", data=data)
    assert response.status_code == 400
    assert "One of those topics is no longer offered. Please choose again." in response.get_data(as_text=True)
    assert web.subscriber("ada@example.org") is None


def test_an_active_subscribers_topics_are_not_changed_by_the_public_form(web):
    web.add_active("ada@example.org")
    web.state.set_preferences(web.subscriber("ada@example.org").token, topics=["go"], now=web.clock())
    data = {"email": "ada@example.org", "csrf_token": web.form_token(), "topic": ["rust"]}
    web.client.post("/subscribe", data=data).close()
    assert web.endpoint.mailer.wait(15)
    assert web.subscriber("ada@example.org").topics == ("go",)


def test_get_of_the_preference_page_changes_nothing(web):
    sub = web.add_active("ada@example.org")
    web.state.set_preferences(sub.token, topics=["go"], now=web.clock())
    before = row(web, "ada@example.org")
    web.clock.advance(minutes=5)
    response = web.client.get(f"/preferences/{sub.token}")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<h1>Your emails</h1>" in html and "ada@example.org" in html
    assert checked(html) == ["go"]
    assert [b for b in re.findall(r'name="action" value="([^"]+)"', html)] == [
        "topics", "pause-1", "pause-4", "unsubscribe"]
    assert "<script" not in html
    assert row(web, "ada@example.org") == before
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Robots-Tag"] == "noindex, nofollow"


def test_post_changes_topics_pauses_resumes_and_unsubscribes(web):
    sub = web.add_active("ada@example.org")
    path = f"/preferences/{sub.token}"
    saved = web.client.post(path, data={"action": "topics", "topic": ["python", "go"]})
    assert saved.status_code == 200
    assert "Saved. Your next email follows your new topics." in saved.get_data(as_text=True)
    assert web.subscriber("ada@example.org").topics == ("go", "python")
    assert checked(saved.get_data(as_text=True)) == ["python", "go"]
    # Nothing ticked: everything again.
    web.client.post(path, data={"action": "topics"})
    assert web.subscriber("ada@example.org").topics == ()

    paused = web.client.post(path, data={"action": "pause-4"})
    assert "Paused for 4 weeks." in paused.get_data(as_text=True)
    assert "Emails are paused until <strong>31 March 2025</strong>." in paused.get_data(as_text=True)
    assert web.subscriber("ada@example.org").paused_until == web.clock() + timedelta(weeks=4)
    resumed = web.client.post(path, data={"action": "resume"})
    assert "Resumed" in resumed.get_data(as_text=True)
    assert web.subscriber("ada@example.org").paused_until is None

    gone = web.client.post(path, data={"action": "unsubscribe"})
    assert "<h1>You’re unsubscribed</h1>" in gone.get_data(as_text=True)
    assert web.subscriber("ada@example.org").status == UNSUBSCRIBED
    after = web.client.get(path).get_data(as_text=True)
    assert "<h1>You’re not subscribed</h1>" in after and 'name="action"' not in after


def test_a_preference_post_from_another_site_or_with_a_bad_topic_changes_nothing(web):
    sub = web.add_active("ada@example.org")
    before = row(web, "ada@example.org")
    path = f"/preferences/{sub.token}"
    forged = web.client.post(path, data={"action": "unsubscribe"}, headers={"Sec-Fetch-Site": "cross-site"})
    assert forged.status_code == 400
    other = web.client.post(path, data={"action": "pause-1"}, headers={"Origin": "https://evil.example"})
    assert other.status_code == 400
    bad = web.client.post(path, data={"action": "topics", "topic": ["cobol"]})
    assert bad.status_code == 400
    assert "One of those topics is no longer offered" in bad.get_data(as_text=True)
    odd = web.client.post(path, data={"action": "pause-52"})
    assert odd.status_code == 400
    assert row(web, "ada@example.org") == before


@pytest.mark.parametrize("token", ["x" * 43, "short", "A" * 101, "../../etc/passwd"])
def test_a_bad_preference_token_is_a_404_that_tells_nothing(web, token):
    web.add_active("ada@example.org")
    reference = web.client.get("/confirm/" + "y" * 43).get_data(as_text=True)
    for method in (web.client.get, web.client.post):
        response = method(f"/preferences/{token}")
        html = response.get_data(as_text=True)
        assert response.status_code == 404
        assert html == reference  # the same page as any other dead link
        assert "ada@example.org" not in html


def test_a_confirm_token_cannot_open_the_preference_page(web):
    web.subscribe("bob@example.org")
    pending = web.subscriber("bob@example.org")
    assert web.client.get(f"/preferences/{pending.confirm_token}").status_code == 404


# --- in a real browser ----------------------------------------------------------------------------

@pytest.fixture
def live(tmp_path, smtp_server):  # noqa: F811
    with live_site(tmp_path / "site", smtp_server, topics=TOPICS) as site:
        yield site


@pytest.mark.browser
def test_topics_are_chosen_on_the_form_and_changed_on_the_preference_page_in_a_browser(browser, live):  # noqa: F811
    base = live.config.web_url
    pages = Pages(browser, base)
    page = pages.desktop
    try:
        pages.shoot("topics-1-subscribe", base + "/subscribe")
        page.get_by_label("Email address").fill("reader@example.org")
        page.get_by_label("Rust").check()
        page.get_by_label("Data science").check()
        page.get_by_role("button", name="Subscribe").click()
        page.wait_for_load_state()
        assert page.get_by_role("heading", level=1).inner_text() == "Check your inbox"
        assert live.endpoint.mailer.wait(15)
        page.goto(confirm_link(live.mails_to("reader@example.org")[-1]))
        page.get_by_role("button", name="Yes, subscribe me").click()
        page.wait_for_load_state()
        sub = live.subscriber("reader@example.org")
        assert (sub.status, sub.topics) == (ACTIVE, ("data-science", "rust"))

        prefs = f"{base}/preferences/{sub.token}"
        pages.shoot("topics-2-preferences", prefs)
        assert live.subscriber("reader@example.org").topics == ("data-science", "rust")  # GET: nothing
        assert page.get_by_label("Rust").is_checked() and not page.get_by_label("Python").is_checked()
        page.get_by_label("Rust").uncheck()
        page.get_by_label("Python").check()
        page.get_by_role("button", name="Save topics").click()
        page.wait_for_load_state()
        assert page.get_by_role("status").inner_text() == "Saved. Your next email follows your new topics."
        assert live.subscriber("reader@example.org").topics == ("data-science", "python")
        page.get_by_role("button", name="Pause 1 week").click()
        page.wait_for_load_state()
        pages.shoot("topics-3-paused", only="desktop")
        assert page.get_by_role("status").inner_text() == "Paused for 1 week."
        assert live.subscriber("reader@example.org").paused_until is not None
        pages.shoot("topics-4-paused", prefs, only="mobile")
        # Everything fits the phone's width: no sideways scrolling.
        mobile = pages.pages["mobile"]
        assert mobile.evaluate("document.documentElement.scrollWidth") <= 390
        assert pages.violations == []
    finally:
        pages.close()


def test_without_topics_the_preference_page_pauses_and_unsubscribes(tmp_path, smtp_server):  # noqa: F811
    """Every mail links the page, topics offered or not: without them it has no topic form."""
    site = WebSite(tmp_path / "plain", smtp_server)
    try:
        site.add_active("ada@example.org")
        path = f"/preferences/{site.subscriber('ada@example.org').token}"
        html = site.client.get(path).get_data(as_text=True)
        assert 'name="topic"' not in html and "Save topics" not in html
        assert 'value="pause-1"' in html and 'value="pause-4"' in html and "Unsubscribe" in html
        assert site.client.post(path, data={"action": "pause-1"}).status_code == 200
        assert site.subscriber("ada@example.org").paused_until == site.clock() + timedelta(weeks=1)
    finally:
        site.close()
