"""newsletter/message.py: the one way a message is built, checked against golden .eml files.

Each golden file under tests/fixtures/eml/ is a whole message as publisher hands it to the
server, with what legitimately varies normalised (see `normalise`): the Message-ID, the Date,
the MIME boundary, the DKIM signature's timestamp and signature value, and a subscriber's
random unsubscribe token. Everything else (header order, folding, encoded words, the
quoted-printable bodies, the list headers) must match byte for byte.

To regenerate them after an intended change, run

    PUBLISHER_REGENERATE_EML=1 .venv/bin/python -m pytest tests/test_message.py -q

then read the diff (`git diff tests/fixtures/eml/`) before committing it: every changed
line is a change in what subscribers receive.
"""

from __future__ import annotations

import base64
import os
import re
from datetime import datetime, timedelta, timezone
from email import message_from_bytes, policy
from pathlib import Path
from urllib.parse import quote

import dkim
import pytest
from digest_helpers import DigestSite
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sites import make_config, write_post
from smtp_helpers import DkimKey, smtp_server  # noqa: F401

from publisher import pipeline
from publisher.errors import ConfigError, DeliveryError, RecipientError
from publisher.newsletter import smtp
from publisher.newsletter.digest import NAME_MAX, Recipient, RenderedDigest, render_digest
from publisher.newsletter.mailbox_header import sanitize_header, truncate
from publisher.newsletter.message import (build_message, build_simple_message, check_from_and_dkim,
                                          compile_message, from_address)
from publisher.state import State, Subscriber

EML = Path(__file__).parent / "fixtures" / "eml"
REGENERATE = os.environ.get("PUBLISHER_REGENERATE_EML") == "1"
WHEN = datetime(2025, 1, 6, 9, 0, tzinfo=timezone.utc)
KEY = "https://blog.test.example|digest|7|2025-01-06T09:00:00+00:00"
# A key made for these tests only (openssl genpkey -algorithm RSA, 1024 bits): not a secret.
TEST_KEY = DkimKey(EML / "dkim-test-key.pem", (EML / "dkim-test-key.pub.b64").read_text().strip())


# --- golden files ---------------------------------------------------------------------------

def normalise(data: bytes, tokens: tuple[str, ...] = (), body_hash: bool = False) -> bytes:
    """`data` with what may differ between two correct runs replaced by fixed names (and the
    DKIM body hash too if `body_hash`: it covers the boundary)."""
    head, _, _ = data.partition(b"\r\n\r\n")
    boundary = re.search(rb'boundary="([^"]+)"', head)
    if boundary:
        data = data.replace(boundary.group(1), b"BOUNDARY")
    data = re.sub(rb"^Message-ID: <[^>]+>", b"Message-ID: <MESSAGE-ID>", data, count=1, flags=re.M)
    data = re.sub(rb"^Date: [^\r\n]+", b"Date: DATE", data, count=1, flags=re.M)
    # DKIM: t= (signing time) and b= (the signature over it); bh=, h=, d= and s= are kept.
    data = re.sub(rb"(\bt=)\d+", rb"\g<1>TIME", data, count=1)
    value = rb"(?:[A-Za-z0-9+/=]|[ \t]|\r\n[ \t])+"  # base64, folded over continuation lines
    data = re.sub(rb"(\bb=)" + value, rb"\g<1>SIGNATURE", data, count=1)
    if body_hash:
        data = re.sub(rb"(\bbh=)" + value, rb"\g<1>BODY-HASH", data, count=1)
    for token in tokens:
        data = data.replace(token.encode("ascii"), b"TOKEN")
    return data


def assert_golden(name: str, data: bytes, tokens: tuple[str, ...] = ()) -> None:
    path = EML / f"{name}.eml"
    got = normalise(data, tokens)
    if REGENERATE:
        path.write_bytes(got)
    assert path.is_file(), f"{path} missing: run with PUBLISHER_REGENERATE_EML=1 (module docstring)"
    assert got == path.read_bytes(), f"{path.name} differs: diff it after regenerating"
    assert b"\n" not in data.replace(b"\r\n", b"")  # CRLF only, as SMTP wants
    assert max(len(line) for line in data.split(b"\r\n")) <= 998


def parsed(data: bytes):
    return message_from_bytes(data, policy=policy.default)


def verifies(data: bytes, domain: str = "blog.test.example") -> bool:
    return dkim.verify(data, dnsfunc=TEST_KEY.dnsfunc("mail", domain))


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


def test_golden_digest_to_a_non_ascii_name(digest, cfg):
    data = build_message(digest, Recipient("zoe@example.org", "Zoë Ünïcødé", "tok-zoe"), cfg,
                         message_key=KEY, date=WHEN)
    assert_golden("digest-non-ascii-name", data)
    assert parsed(data)["To"] == "Zoë Ünïcødé <zoe@example.org>"
    assert b"\r\nTo: =?utf-8?b?Wm/DqyDDnG7Dr2PDuGTDqQ==?= <zoe@example.org>\r\n" in data


def test_golden_featured_alert(dsite, cfg):
    post = dsite.post(cfg, "solo", title="Solo ✓ launch", description="The one big thing.",
                      featured=True, pubDate="2024-06-01T10:00:00Z")
    alert = render_digest([post], cfg, kind="alert")
    data = build_message(alert, Recipient("ann@example.org", "Ann", "tok-ann"), cfg,
                         message_key=KEY.replace("digest", "alert"), date=WHEN)
    assert_golden("featured-alert", data)
    assert parsed(data)["Subject"] == "Solo ✓ launch"


def test_golden_confirmation_mail(tmp_path):
    from publisher.newsletter.confirmations import ConfirmationMailer
    from publisher.web import template_environment

    config = make_config(tmp_path / "site")
    mailer = ConfirmationMailer(config, template_environment(config), lambda: None, lambda: WHEN)
    try:
        data = mailer._message(Subscriber(id=3, email="new@example.org", name="Ignored Name",
                                          status="pending", token="t" * 43, created_at=WHEN,
                                          confirm_token="c" * 43, confirm_sent_at=WHEN))
    finally:
        mailer._pool.shutdown()
    assert_golden("confirmation", data)
    msg = parsed(data)
    assert "List-Unsubscribe" not in msg and msg["To"] == "new@example.org"
    assert "https://blog.test.example/newsletter/confirm/" + "c" * 43 in msg.get_body(("plain",)).get_content()


def test_golden_test_copy_is_what_the_server_received(tmp_path, smtp_server):  # noqa: F811
    config = make_config(tmp_path / "site", smtp=smtp_server.smtp_settings())
    write_post(config.root, "hello.md", {"title": "Héllo wörld", "pubDate": "2025-01-01T10:00:00Z"})
    report = pipeline.send_test(config, "me@example.org", now=WHEN)
    assert report.lines[-1] == "test copy of 'Test Blog: Héllo wörld' sent to me@example.org; nothing recorded"
    [received] = smtp_server.received
    assert (received.mail_from, received.rcpt_tos) == ("news@blog.test.example", ["me@example.org"])
    assert_golden("test-copy", received.data)


def set_token(config, email: str, token: str) -> None:
    """The subscriber's unsubscribe token, made fixed so its copy can be compared byte for byte
    (a token is random, and where the bodies' quoted-printable lines break depends on it)."""
    import sqlalchemy as sa

    from publisher import state as state_mod

    state = State(config.database_url)
    try:
        with state.write() as conn:
            conn.execute(sa.update(state_mod.subscribers)
                         .where(state_mod.subscribers.c.email == email).values(token=token))
    finally:
        state.close()


def dkim_site(root: Path, **smtp):
    """A site after its first run, one subscriber and one post not mailed yet, with DKIM on.
    The archive is off: its "View in browser" link names the issue's number, which a dry run
    (nothing recorded) does not have, so with it on a dry run differs by that one link."""
    key = {"dkim": {"key_file": str(TEST_KEY.key_file), "selector": "mail"}}
    config = make_config(root, smtp={**key, **smtp}, newsletter={"archive": False})
    write_post(config.root, "old.md", {"title": "Old", "pubDate": "2024-12-01T10:00:00Z"})
    pipeline.run_once(config, WHEN - timedelta(days=7))  # baseline: the old post is never mailed
    with State(config.database_url) as state:
        state.add_subscribers([("reader@example.org", "Reader 7 Ünïcode")])
    set_token(config, "reader@example.org", "r" * 43)
    write_post(config.root, "hello.md", {"title": "Héllo wörld", "pubDate": "2025-01-02T10:00:00Z"})
    return config


def test_golden_dkim_signed_dry_run(tmp_path):
    config = dkim_site(tmp_path / "site")
    pipeline.dry_run(config, tmp_path / "out", WHEN)
    [path] = sorted((tmp_path / "out").glob("*.eml"))
    data = path.read_bytes()
    assert data.count(b"DKIM-Signature:") == 1 and data.startswith(b"DKIM-Signature: ")
    assert verifies(data)
    assert_golden("dry-run-dkim", data)


def test_dry_run_test_copy_and_send_are_the_same_bytes(tmp_path, smtp_server):  # noqa: F811
    """What `send --dry-run` writes is what `send` hands to the server (both signed once),
    and a test copy is built the same way; only the Message-ID, Date and boundary differ."""
    config = dkim_site(tmp_path / "site", **smtp_server.smtp_settings())
    pipeline.dry_run(config, tmp_path / "out", WHEN)
    [path] = sorted((tmp_path / "out").glob("*.eml"))
    report = pipeline.send_now(config)  # records the digest and sends it
    assert report.exit_status == 0, report.lines
    [sent] = smtp_server.received
    assert sent.rcpt_tos == ["reader@example.org"]
    assert sent.data.count(b"DKIM-Signature:") == 1 and verifies(sent.data)
    assert normalise(sent.data, body_hash=True) == normalise(path.read_bytes(), body_hash=True)


# --- per recipient --------------------------------------------------------------------------

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
def assert_display_name(read_back: str, name: str) -> None:
    """The name a client reads back is the sanitised, truncated name. Where the email package
    folded it into several encoded words, Python's parser puts a space between them (its
    reading, not the header's: the words hold exactly the name's bytes), so spaces are not
    compared there."""
    expected = truncate(sanitize_header(name), NAME_MAX)
    if read_back != expected:
        assert read_back.replace(" ", "") == expected.replace(" ", ""), (read_back, expected)


HEADERS = ["From", "To", "Subject", "Date", "Message-ID", "List-Unsubscribe",
           "List-Unsubscribe-Post", "List-Id", "MIME-Version", "Content-Type"]


@pytest.mark.parametrize("recipient", NASTY, ids=lambda r: r.email)
def test_nasty_names_give_one_to_header_with_the_cleaned_name(digest, cfg, recipient):
    data = compile_message(digest, cfg, message_key=KEY, date=WHEN).bytes_for(recipient)
    msg = parsed(data)
    assert list(msg.keys()) == HEADERS  # no header added by a name
    [address] = msg["To"].addresses
    assert_display_name(address.display_name, recipient.name)
    local, _, domain = recipient.email.rpartition("@")
    assert address.username == local and address.domain == domain.encode("idna").decode().lower()
    assert max(len(line) for line in data.split(b"\r\n")) <= 998
    assert smtp.wire_ready(data)  # what CompiledMessage.wire_ready promises delivery


def test_a_compiled_digest_is_wire_ready_unless_dkim_signs_or_a_fixed_line_is_too_long(
        digest, dsite, tmp_path):
    assert compile_message(digest, dsite.config(), message_key=KEY, date=WHEN).wire_ready
    signing = dkim_config(tmp_path / "dkim")
    assert not compile_message(digest, signing, message_key=KEY, date=WHEN).wire_ready
    # A mailto address long enough to push List-Unsubscribe past 998 bytes a line: delivery
    # then scans each copy and refuses it, as it does any message it cannot send.
    long_mailto = dsite.config(newsletter={"unsubscribe_mailto": "u" * 990 + "@news.example.org"})
    compiled = compile_message(digest, long_mailto, message_key=KEY, date=WHEN)
    assert not compiled.wire_ready
    assert not smtp.wire_ready(compiled.bytes_for(NASTY[0]))


def test_an_address_too_long_for_a_header_line_is_the_recipients_problem(digest, cfg):
    compiled = compile_message(digest, cfg, message_key=KEY, date=WHEN)
    address = "a" * 1000 + "@example.org"
    with pytest.raises(RecipientError, match=rf"^recipient '{address}': too long to write in a "
                                             r"To header \(SMTP allows 998 bytes a line\)$"):
        compiled.bytes_for(Recipient(address, "Ann", "tok"))


def test_each_recipient_gets_own_message_id_to_and_links(digest, cfg):
    compiled = compile_message(digest, cfg, message_key=KEY, date=WHEN)
    messages = [parsed(compiled.bytes_for(r)) for r in NASTY]
    assert len({m["Message-ID"] for m in messages}) == len(NASTY)
    for recipient, msg in zip(NASTY, messages):
        link = f"https://blog.test.example/newsletter/unsubscribe/{quote(recipient.token, safe='')}"
        assert msg["List-Unsubscribe"] == (f"<{link}>, "
                                           "<mailto:news@blog.test.example?subject=unsubscribe>")
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        text = msg.get_body(("plain",)).get_content()
        html = msg.get_body(("html",)).get_content()
        assert link in text and link.replace("&", "&amp;") in html
        assert "@@PUBLISHER_" not in text.replace("@@PUBLISHER_EMAIL@@", "")  # only the defused name


def test_build_message_is_compile_then_bytes_for(digest, cfg):
    compiled = compile_message(digest, cfg, message_key=KEY, date=WHEN)
    for recipient in NASTY[:5]:
        assert build_message(digest, recipient, cfg, message_key=KEY, date=WHEN) == \
            compiled.bytes_for(recipient)


def test_http_web_url_list_id_and_mailto_settings(dsite, digest):
    cfg = dsite.config(newsletter={"web_url": "http://news.example.org/list",
                                   "list_id": "Weekly News <weekly.news.example.org>",
                                   "unsubscribe_mailto": "leave@news.example.org"})
    msg = parsed(compile_message(digest, cfg, message_key=KEY, date=WHEN).bytes_for(NASTY[0]))
    assert "List-Unsubscribe-Post" not in msg  # one-click only over https
    assert msg["List-Id"] == "Weekly News <weekly.news.example.org>"
    assert msg["List-Unsubscribe"] == ("<http://news.example.org/list/unsubscribe/tok-ann>, "
                                       "<mailto:leave@news.example.org?subject=unsubscribe>")


def test_text_only_digest_with_awkward_lines(cfg):
    text_only = RenderedDigest(kind="digest", subject="Plain", html="", text="Hi @@PUBLISHER_NAME@@\n"
                               "=20 trailing space \n.\nUnsubscribe: @@PUBLISHER_UNSUBSCRIBE_URL@@",
                               post_ids=("x",), warnings=())
    msg = parsed(build_message(text_only, NASTY[3], cfg, message_key=KEY, date=WHEN))
    assert msg.get_content_type() == "text/plain"
    assert msg.get_content().replace("\r\n", "\n") == ("Hi Zoë Ünïcødé\n=20 trailing space \n.\n"
                                 "Unsubscribe: https://blog.test.example/newsletter/unsubscribe/t1\n")


@pytest.mark.parametrize("address", ["no-at-sign", "two@@example.org", "a b@example.org",
                                     "x@example.org>", "ünï@example.org", ""])
def test_bad_addresses_name_the_recipient(digest, cfg, address):
    compiled = compile_message(digest, cfg, message_key=KEY, date=WHEN)
    with pytest.raises(DeliveryError, match=f"^recipient {re.escape(repr(address))}: "):
        compiled.bytes_for(Recipient(address, "Name", "tok"))


def test_overlong_link_and_bad_web_url(dsite, digest, cfg):
    compiled = compile_message(digest, cfg, message_key=KEY, date=WHEN)
    with pytest.raises(ConfigError, match="^newsletter.web_url: expected a shorter URL: the "
                       "unsubscribe link is 1049 characters long, over the 900"):
        compiled.bytes_for(Recipient("a@example.org", "A", "t" * 1000))
    bad = dsite.config(newsletter={"web_url": "https://bücher.example/news"})
    compiled = compile_message(digest, bad, message_key=KEY, date=WHEN)  # no recipient yet: fine
    with pytest.raises(ConfigError, match="newsletter.web_url: expected a plain ASCII URL"):
        compiled.bytes_for(Recipient("a@example.org", "A", "tok"))


def test_naive_date_is_refused(digest, cfg):
    with pytest.raises(ValueError, match="timezone-aware"):
        compile_message(digest, cfg, message_key=KEY, date=datetime(2025, 1, 6, 9))


def test_simple_message_has_no_list_headers_nor_placeholders(cfg):
    data = build_simple_message(cfg, to="New Person <new@example.org>", subject="Confirm\r\nBcc: x@y.z",
                                html="", text="Keep @@PUBLISHER_NAME@@ as typed", message_key="c-1",
                                date=WHEN)
    msg = parsed(data)
    assert list(msg.keys()) == ["From", "To", "Subject", "Date", "Message-ID", "MIME-Version",
                                "Content-Type", "Content-Transfer-Encoding"]
    assert msg["Subject"] == "Confirm Bcc: x@y.z"
    assert msg.get_content() == "Keep @@PUBLISHER_NAME@@ as typed\r\n"


names = st.text(st.characters(blacklist_categories=("Cs",)), max_size=140)
locals_ = st.from_regex(r"[A-Za-z0-9._%+-]{1,30}", fullmatch=True)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=names, local=locals_, token=st.text(max_size=40))
def test_any_name_local_part_and_token_give_a_well_formed_message(digest, cfg, name, local, token):
    recipient = Recipient(f"{local}@example.org", name, token or "t")
    compiled = compile_message(digest, cfg, message_key=KEY, date=WHEN)
    try:
        data = compiled.bytes_for(recipient)
    except DeliveryError as e:  # a local part that is not a dot-atom, named in the message
        assert str(e).startswith(f"recipient {recipient.email!r}: ")
        return
    msg = parsed(data)
    assert list(msg.keys()) == HEADERS
    assert_display_name(msg["To"].addresses[0].display_name, name)
    assert max(len(line) for line in data.split(b"\r\n")) <= 998
    assert compiled.wire_ready and smtp.wire_ready(data)
    assert compiled.wire_for(recipient) == smtp._dot_stuffed(data)  # what a send hands over


def test_a_copy_as_data_carries_it_is_the_copy_dot_stuffed_whatever_its_lines_start_with(
        digest, cfg):
    """wire_for (what a send hands to the server) stuffs the fixed pieces once, when compiled,
    and each copy's own pieces per copy: the same bytes as stuffing the whole copy, with lines
    starting with "." in the template, in a value at the start of a line, and in a value
    that quoted-printable breaks onto a line of its own."""
    dotted = RenderedDigest(
        kind="digest", subject=digest.subject,
        text=".first\n@@PUBLISHER_NAME@@ at the start\n" + "x" * 74 + "@@PUBLISHER_NAME@@\n"
             + digest.text + "\n.\n..\n.",
        html=".<p>@@PUBLISHER_NAME@@</p>\n" + digest.html + "\n.", post_ids=digest.post_ids,
        warnings=())
    for rendered in (digest, dotted):
        compiled = compile_message(rendered, cfg, message_key=KEY, date=WHEN)
        for recipient in NASTY + [Recipient("dot@example.org", ".dot .. .", "t."),
                                  Recipient("nl@example.org", "a\r\n.b\n.", "t")]:
            data = compiled.bytes_for(recipient)
            assert compiled.wire_for(recipient) == smtp._dot_stuffed(data), recipient
    assert b"\r\n..dot" in compiled.wire_for(Recipient("dot@example.org", ".dot", "t"))


def test_a_signed_message_has_no_wire_copy(digest, tmp_path):
    """DKIM signs bytes_for's bytes: a signed message is stuffed by smtp.py when it is sent."""
    compiled = compile_message(digest, dkim_config(tmp_path / "dkim"), message_key=KEY, date=WHEN)
    with pytest.raises(ValueError, match="not wire_ready"):
        compiled.wire_for(NASTY[0])


# --- the sender and DKIM ----------------------------------------------------------------------

def test_sender_is_parsed_once_here(dsite):
    cfg = dsite.config(newsletter={"from": "Zoë's Blog <News@Bücher.Example>"})
    assert from_address(cfg).address == "News@xn--bcher-kva.example"
    assert from_address(cfg).name == "Zoë's Blog"
    cfg = dsite.config(newsletter={"from": ""})
    with pytest.raises(ConfigError, match=r"config\.yaml: newsletter\.from: required to send mail"):
        from_address(cfg)


def dkim_config(root: Path, **dkim_keys):
    return make_config(root, smtp={"dkim": {"key_file": str(TEST_KEY.key_file), "selector": "mail",
                                           **dkim_keys}})


def signature_tags(signed: bytes) -> dict[str, str]:
    header = signed.split(b"\r\n\r\n", 1)[0].decode()
    value = re.search(r"^DKIM-Signature:(.*?)(?=^\S)", header + "\r\nX:", re.M | re.S).group(1)
    return {k.strip(): re.sub(r"\s+", "", v) for k, v in
            (part.split("=", 1) for part in value.split(";") if "=" in part)}


def test_dkim_signature_verifies_and_covers_the_list_headers(digest, tmp_path):
    cfg = dkim_config(tmp_path / "dkim")
    signed = build_message(digest, NASTY[3], cfg, message_key=KEY, date=WHEN)
    assert signed.startswith(b"DKIM-Signature: ") and signed.count(b"DKIM-Signature:") == 1
    assert verifies(signed)
    tags = signature_tags(signed)
    assert (tags["d"], tags["s"], tags["c"]) == ("blog.test.example", "mail", "relaxed/relaxed")
    signed_headers = tags["h"].split(":")
    for name in ("from", "to", "subject", "date", "message-id", "list-id",
                 "list-unsubscribe", "list-unsubscribe-post"):
        assert signed_headers.count(name) == 2  # oversigned: no second copy can be added
    assert not verifies(signed.replace(b"/unsubscribe/", b"/evil/"))
    unsigned = build_message(digest, NASTY[3], make_config(tmp_path / "plain"), message_key=KEY,
                             date=WHEN)
    assert signed.endswith(unsigned)  # the signature is one header in front, nothing else


def test_dkim_domain_override(digest, tmp_path):
    cfg = dkim_config(tmp_path / "dkim", domain="mail.example.net")
    signed = build_message(digest, NASTY[0], cfg, message_key=KEY, date=WHEN)
    assert signature_tags(signed)["d"] == "mail.example.net"
    assert verifies(signed, "mail.example.net")


@pytest.mark.parametrize("content", [None, b"not a key\n",
                                     b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"])
def test_bad_dkim_key_file_is_a_config_error(digest, tmp_path, content):
    key_file = tmp_path / "dkim.pem"
    if content is not None:
        key_file.write_bytes(content)
    cfg = make_config(tmp_path / "dkim", smtp={"dkim": {"key_file": str(key_file), "selector": "mail"}})
    expected = r"config\.yaml: smtp\.dkim\.key_file: expected a (readable )?PEM"
    with pytest.raises(ConfigError, match=expected):
        check_from_and_dkim(cfg)
    with pytest.raises(ConfigError, match=expected):
        compile_message(digest, cfg, message_key=KEY, date=WHEN)


def test_the_test_key_fixture_matches(tmp_path):
    """The public half beside the fixed test key is that key's (so `verifies` means something)."""
    from dkim.crypto import parse_pem_private_key

    key = parse_pem_private_key(TEST_KEY.key_file.read_bytes())
    der = base64.b64decode(TEST_KEY.public_b64)
    assert key["modulus"].to_bytes((key["modulus"].bit_length() + 7) // 8, "big") in der

