"""The subscribe form cannot be used to mail-bomb an inbox or be replayed from another site
(issue 15, items 7 and 8): confirmations are limited per mailbox (sub-addresses and case
folded), per client and in all per hour, in the state database that every `serve` process
shares; a form is accepted once, and never from a foreign Origin or Referer. Flask's test
client on a real state database, mails to the real aiosmtpd server."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from smtp_helpers import smtp_server  # noqa: F401  (fixture)
from web_helpers import WEB_URL, WebSite

from publisher.state import web_limits


@pytest.fixture
def make_web(tmp_path, smtp_server):  # noqa: F811
    made = []

    def make(**newsletter):
        site = WebSite(tmp_path / "site", smtp_server, **newsletter)
        made.append(site)
        return site

    yield make
    for site in made:
        site.close()


def mailboxes(server) -> list[str]:
    return sorted(m.rcpt.lower() for m in server.received)


def test_thirty_sub_addresses_of_one_mailbox_get_one_confirmation(make_web, smtp_server):  # noqa: F811
    web = make_web()
    for n in range(30):
        address = f"Victim+{n}@Example.org" if n % 2 else f"victim+{n}@example.org"
        assert web.subscribe(address).status_code == 200
    assert web.subscribe("VICTIM@example.org").status_code == 200
    assert len(smtp_server.received) == 1
    assert smtp_server.received[0].rcpt.lower() == "victim+0@example.org"
    # An hour later the mailbox may be mailed again.
    web.clock.advance(hours=1)
    web.subscribe("victim+31@example.org")
    assert len(smtp_server.received) == 2


def test_confirmations_per_client_are_limited_and_shared_by_server_processes(make_web, smtp_server):  # noqa: F811
    a = make_web(confirm_per_client=4)
    b = WebSite(a.config.root, smtp_server, config=a.config, clock=a.clock)  # a second process
    try:
        for n in range(10):
            (a if n % 2 else b).subscribe(f"reader{n}@example.org")
        assert len(smtp_server.received) == 4
        # Another client (behind the same local proxy) is not held back by the first.
        a.subscribe("other@example.org", X_Forwarded_For="203.0.113.9")
        assert "other@example.org" in mailboxes(smtp_server)
    finally:
        b.close()


def test_a_client_on_the_internet_cannot_choose_its_key(make_web, smtp_server):  # noqa: F811
    web = make_web(confirm_per_client=2)
    for n in range(5):
        web.client.environ_base["REMOTE_ADDR"] = "8.8.4.4"
        web.subscribe(f"reader{n}@example.org", X_Forwarded_For=f"192.0.2.{n}")
    assert len(smtp_server.received) == 2


def test_confirmations_in_all_per_hour_are_limited_and_the_table_stays_small(make_web, smtp_server):  # noqa: F811
    web = make_web(confirm_per_hour=3)
    for n in range(40):
        web.subscribe(f"reader{n}@example.org", X_Forwarded_For=f"192.0.2.{n}")
    assert len(smtp_server.received) == 3
    with web.state.read() as conn:
        rows = conn.execute(sa.select(sa.func.count()).select_from(web_limits)).scalar_one()
    # "total", and one client and one mailbox row for each request under the limit: nothing
    # grows with the flood.
    assert rows == 1 + 2 * 3
    web.clock.advance(hours=1)
    web.subscribe("late@example.org", X_Forwarded_For="192.0.2.200")
    assert "late@example.org" in mailboxes(smtp_server)
    with web.state.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(web_limits)).scalar_one() == 3


def test_a_form_is_accepted_once(make_web, smtp_server):  # noqa: F811
    web = make_web()
    token = web.form_token()
    assert web.subscribe("reader@example.org", token=token).status_code == 200
    again = web.subscribe("someone.else@example.org", token=token)
    assert again.status_code == 400
    assert "This form was already sent. Please submit it again." in again.get_data(as_text=True)
    assert mailboxes(smtp_server) == ["reader@example.org"]
    assert web.subscriber("someone.else@example.org") is None


@pytest.mark.parametrize("headers", [
    {"Origin": "https://evil.example"},
    {"Origin": "null"},
    {"Referer": "https://evil.example/page"},
    {"Origin": "http://blog.test.example"},  # another scheme is another origin
])
def test_a_form_posted_from_a_foreign_origin_is_refused(make_web, smtp_server, headers):  # noqa: F811
    web = make_web()
    response = web.subscribe("reader@example.org", **headers)
    assert response.status_code == 400
    assert web.subscriber("reader@example.org") is None and smtp_server.received == []


@pytest.mark.parametrize("headers", [
    {"Origin": "https://blog.test.example"},
    {"Referer": WEB_URL + "/subscribe"},
    {"Origin": "http://localhost"},  # the host the request was made to (no proxy)
    {},
])
def test_a_form_posted_from_its_own_origin_is_accepted(make_web, smtp_server, headers):  # noqa: F811
    web = make_web()
    assert web.subscribe("reader@example.org", **headers).status_code == 200
    assert mailboxes(smtp_server) == ["reader@example.org"]
