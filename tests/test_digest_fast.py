"""digest.compile_message: per-recipient bytes by substitution into a pre-encoded message
must be the message build_message + message_bytes would produce, for every recipient.

Each case is checked two ways: parsed with the email package (every header, in order, and
every decoded part), and byte for byte once the reference message is given the same MIME
boundary (the only thing the email package picks at random)."""

from __future__ import annotations

import email
import email.policy
from datetime import datetime, timezone
from pathlib import Path

import pytest
from digest_helpers import DigestSite
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from publisher.newsletter.digest import (
    Recipient,
    RenderedDigest,
    build_message,
    compile_message,
    render_digest,
)
from publisher.errors import ConfigError, DeliveryError
from publisher.newsletter.sending import message_bytes

WHEN = datetime(2025, 1, 6, 9, 0, tzinfo=timezone.utc)
KEY = "https://blog.test.example|digest|7|2025-01-06T09:00:00+00:00"

NASTY = [
    Recipient("ann@example.org", "Ann", "tok-ann"),
    Recipient("bob@example.org", "", "tok-bob"),
    Recipient("Mixed.Case+tag@Example.ORG", "Mixed Case", "tok_mixed"),
    Recipient("zoe@example.org", "Zoë Ünïcødé", "t1"),
    Recipient("li@example.org", "李小龙", "t2"),
    Recipient("rtl@example.org", "\u202eevil\u202c עברית", "t3"),
    Recipient("emoji@example.org", "🎉 Party 🎉", "t4"),
    Recipient("lt@example.org", "<script>alert(1)</script>", "t5"),
    Recipient("amp@example.org", "Tom & Jerry", "t6"),
    Recipient("quote@example.org", 'He said "hi" \\ bye', "t7"),
    Recipient("apos@example.org", "O'Brien-Smith", "t8"),
    Recipient("comma@example.org", "Dr. Who, Jr.", "t9"),
    Recipient("long@example.org", "Bartholomew " * 12, "t10"),
    Recipient("longer@example.org", "Ñ" * 150, "t11"),
    Recipient("word@example.org", "x" * 120, "t12"),
    Recipient("ctl@example.org", "Line\r\nBcc: victim@example.org", "t13"),
    Recipient("ew@example.org", "=?utf-8?q?=0D=0ABcc:_x@y?=", "t14"),
    Recipient("tokenish@example.org", "@@PUBLISHER_EMAIL@@", "t15"),
    Recipient("idn@bücher.example", "Bücher Fan", "t16"),
    Recipient("idn2@例え.テスト", "", "t17"),
    Recipient("spaces@example.org", "   ", "t18"),
    Recipient("odd-token@example.org", "Odd", "a/b%c d"),
]


@pytest.fixture
def dsite(tmp_path: Path) -> DigestSite:
    return DigestSite(tmp_path / "site")


@pytest.fixture
def cfg(dsite):
    return dsite.config()


@pytest.fixture
def digest(dsite, cfg):
    posts = [
        dsite.post(cfg, "one", title="Fresh & <new> =?utf-8?q?x?=", description="Café ☕ " * 40,
                   featured=True, pubDate="2024-06-01T10:00:00Z"),
        dsite.post(cfg, "two", title="Ünïcode " + "long title " * 20, pubDate="2024-05-01T10:00:00Z"),
        dsite.post(cfg, "three", title=".", description=".", pubDate="2024-04-01T10:00:00Z"),
    ]
    return render_digest(posts, cfg)


def reference(rendered, recipient, config, boundary=None) -> bytes:
    msg = build_message(rendered, recipient, config, message_key=KEY, date=WHEN)
    if boundary and msg.is_multipart():
        msg.set_boundary(boundary)
    return message_bytes(msg)


def parsed(data: bytes):
    return email.message_from_bytes(data, policy=email.policy.default)


def headers(msg) -> list[tuple[str, str]]:
    """Every header, in order; the MIME boundary (random in the reference) normalised."""
    boundary = msg.get_boundary()
    return [(k, str(v).replace(boundary, "BOUNDARY") if boundary else str(v)) for k, v in msg.items()]


def assert_same_message(fast: bytes, slow: bytes) -> None:
    a, b = parsed(fast), parsed(slow)
    assert headers(a) == headers(b)
    parts_a = list(a.walk())
    parts_b = list(b.walk())
    assert [p.get_content_type() for p in parts_a] == [p.get_content_type() for p in parts_b]
    for pa, pb in zip(parts_a, parts_b):
        assert headers(pa) == headers(pb)
        if not pa.is_multipart():
            assert pa.get_content() == pb.get_content()
    assert b"\n" not in fast.replace(b"\r\n", b"")  # CRLF only
    assert max(len(line) for line in fast.split(b"\r\n")) <= 998


@pytest.mark.parametrize("recipient", NASTY, ids=lambda r: r.email)
def test_compiled_bytes_equal_the_email_package_for_nasty_recipients(digest, cfg, recipient):
    compiled = compile_message(digest, cfg, message_key=KEY, date=WHEN)
    fast = compiled.bytes_for(recipient)
    assert_same_message(fast, reference(digest, recipient, cfg))
    assert fast == reference(digest, recipient, cfg, boundary=compiled.boundary)


def test_each_recipient_gets_own_message_id_to_and_links(digest, cfg):
    compiled = compile_message(digest, cfg, message_key=KEY, date=WHEN)
    messages = [parsed(compiled.bytes_for(r)) for r in NASTY]
    assert len({m["Message-ID"] for m in messages}) == len(NASTY)
    for recipient, msg in zip(NASTY, messages):
        assert msg["To"].addresses[0].username == recipient.email.rpartition("@")[0]
        from urllib.parse import quote
        link = f"https://blog.test.example/newsletter/unsubscribe/{quote(recipient.token, safe='')}"
        assert msg["List-Unsubscribe"].startswith(f"<{link}>")
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        text = msg.get_body(("plain",)).get_content()
        html = msg.get_body(("html",)).get_content()
        assert link in text and link.replace("&", "&amp;") in html
        assert "@@PUBLISHER_" not in text.replace("@@PUBLISHER_EMAIL@@", "")  # only the defused name


def test_http_web_url_list_id_and_mailto_settings(dsite, digest):
    cfg = dsite.config(newsletter={"web_url": "http://news.example.org/list",
                                   "list_id": "Weekly News <weekly.news.example.org>",
                                   "unsubscribe_mailto": "leave@news.example.org"})
    compiled = compile_message(digest, cfg, message_key=KEY, date=WHEN)
    for recipient in NASTY[:6]:
        fast = compiled.bytes_for(recipient)
        assert fast == reference(digest, recipient, cfg, boundary=compiled.boundary)
        assert "List-Unsubscribe-Post" not in parsed(fast)  # one-click only over https


def test_alert_and_text_only_digests(dsite, cfg):
    alert = render_digest([dsite.post(cfg, "solo", title="Solo ✓", featured=True)], cfg, kind="alert")
    text_only = RenderedDigest(kind="digest", subject="Plain", html="", text="Hi @@PUBLISHER_NAME@@\n"
                               "=20 trailing space \n.\nUnsubscribe: @@PUBLISHER_UNSUBSCRIBE_URL@@",
                               post_ids=("x",), warnings=())
    for rendered in (alert, text_only):
        compiled = compile_message(rendered, cfg, message_key=KEY, date=WHEN)
        for recipient in NASTY[:8]:
            fast = compiled.bytes_for(recipient)
            assert_same_message(fast, reference(rendered, recipient, cfg))
            assert fast == reference(rendered, recipient, cfg, boundary=compiled.boundary)


def test_bodies_with_long_lines_and_crlf_templates(cfg):
    html = ("<p>" + "x" * 500 + " @@PUBLISHER_GREETING_NAME@@ " + "é=" * 300 + "</p>\r\n") * 3
    text = "Hello @@PUBLISHER_GREETING_NAME@@!   \r\n" + ("word " * 200) + "\r" + "end"
    rendered = RenderedDigest(kind="digest", subject="S", html=html, text=text, post_ids=(),
                              warnings=())
    compiled = compile_message(rendered, cfg, message_key=KEY, date=WHEN)
    for recipient in NASTY:
        fast = compiled.bytes_for(recipient)
        assert fast == reference(rendered, recipient, cfg, boundary=compiled.boundary)


@pytest.mark.parametrize("address", ["no-at-sign", "two@@example.org", "a b@example.org",
                                     "x@example.org>", "ünï@example.org", ""])
def test_bad_addresses_fail_as_build_message_fails(digest, cfg, address):
    compiled = compile_message(digest, cfg, message_key=KEY, date=WHEN)
    recipient = Recipient(address, "Name", "tok")
    with pytest.raises(DeliveryError) as slow:
        build_message(digest, recipient, cfg, message_key=KEY, date=WHEN)
    with pytest.raises(DeliveryError) as fast:
        compiled.bytes_for(recipient)
    assert str(fast.value) == str(slow.value)


def test_overlong_link_and_bad_web_url_fail_as_build_message_fails(dsite, digest, cfg):
    compiled = compile_message(digest, cfg, message_key=KEY, date=WHEN)
    recipient = Recipient("a@example.org", "A", "t" * 1000)
    with pytest.raises(ConfigError, match="^newsletter.web_url: .* unsubscribe link is 10"):
        compiled.bytes_for(recipient)
    with pytest.raises(ConfigError, match="^newsletter.web_url: .* unsubscribe link is 10"):
        build_message(digest, recipient, cfg, message_key=KEY, date=WHEN)
    bad = dsite.config(newsletter={"web_url": "https://bücher.example/news"})
    compiled = compile_message(digest, bad, message_key=KEY, date=WHEN)  # no recipient yet: fine
    with pytest.raises(ConfigError, match="newsletter.web_url"):
        compiled.bytes_for(Recipient("a@example.org", "A", "tok"))


def test_naive_date_is_refused(digest, cfg):
    with pytest.raises(ValueError, match="timezone-aware"):
        compile_message(digest, cfg, message_key=KEY, date=datetime(2025, 1, 6, 9))


names = st.text(st.characters(blacklist_categories=("Cs",)), max_size=140)
locals_ = st.from_regex(r"[A-Za-z0-9._%+-]{1,30}", fullmatch=True)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=names, local=locals_, token=st.text(max_size=40))
def test_any_name_local_part_and_token_give_the_same_message(digest, cfg, name, local, token):
    recipient = Recipient(f"{local}@example.org", name, token or "t")
    compiled = compile_message(digest, cfg, message_key=KEY, date=WHEN)
    try:
        slow = reference(digest, recipient, cfg, boundary=compiled.boundary)
    except DeliveryError as e:
        with pytest.raises(DeliveryError) as fast:
            compiled.bytes_for(recipient)
        assert str(fast.value) == str(e)
        return
    assert compiled.bytes_for(recipient) == slow
