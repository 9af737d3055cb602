from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from email import message_from_bytes, policy
from pathlib import Path

import pytest

from digest_helpers import DigestSite, by_class, parts, reparse, style_blocks, tags
from publisher.newsletter.digest import (
    TOKEN_EMAIL,
    TOKEN_GREETING_NAME,
    TOKEN_UNSUBSCRIBE_URL,
    Recipient,
    RenderedDigest,
    personalise,
    render_digest,
    render_preview,
    unsubscribe_url,
)
from publisher.newsletter.mailbox_header import sanitize_header
from publisher.newsletter.message import build_message as build_bytes
from publisher.newsletter.message import build_simple_message as build_simple_bytes
from publisher.errors import ConfigError, DeliveryError

WHEN = datetime(2024, 6, 3, 9, 0, tzinfo=timezone.utc)
ALICE = Recipient(email="alice@example.org", name="Alice", token="tok-alice_123")
BOB = Recipient(email="bob@example.org", name="", token="tok-bob_456")
BASE_HEADERS = {"From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type"}
LIST_HEADERS = {"List-Unsubscribe", "List-Unsubscribe-Post", "List-Id"}


@pytest.fixture
def dsite(tmp_path: Path) -> DigestSite:
    return DigestSite(tmp_path / "site")


@pytest.fixture
def cfg(dsite: DigestSite):
    return dsite.config()


@pytest.fixture
def three(dsite: DigestSite, cfg):
    """Old-featured, newest, middle: the digest order must be featured, newest, middle."""
    return [
        dsite.post(cfg, "middle", title="Middle post", pubDate="2024-05-10T10:00:00Z",
                   description="The middle one."),
        dsite.post(cfg, "old-featured", title="Old featured post", pubDate="2024-01-02T10:00:00Z",
                   description="Featured, but old.", featured=True, image="/img/hero.png"),
        dsite.post(cfg, "newest", title="Newest post", pubDate="2024-06-01T10:00:00Z",
                   description="The newest one.", author="Ana Ruiz"),
    ]


def post_links(html):
    """The compact list's links to posts (the note after it links to the site)."""
    return [a for a in by_class(html, "a", "more-link") if "/blog/" in a["href"]]


def parsed(data: bytes):
    """message.py's bytes read back, keeping them as `.raw` for the wire-format checks."""
    msg = message_from_bytes(data, policy=policy.default)
    msg.raw = data
    return msg


def build_message(*args, **kwargs):
    return parsed(build_bytes(*args, **kwargs))


def build_simple_message(*args, **kwargs):
    return parsed(build_simple_bytes(*args, **kwargs))


def message(digest, cfg, recipient=ALICE, key="digest-1"):
    return build_message(digest, recipient, cfg, message_key=key, date=WHEN)


# --- structure ----------------------------------------------------------------------------

def test_message_is_multipart_alternative_text_then_html_utf8(three, cfg):
    msg = reparse(message(render_digest(three, cfg), cfg))
    assert msg.get_content_type() == "multipart/alternative"
    body_parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in body_parts] == ["text/plain", "text/html"]
    assert [p.get_content_charset() for p in body_parts] == ["utf-8", "utf-8"]
    assert [p["Content-Transfer-Encoding"] for p in body_parts] == ["quoted-printable"] * 2


def test_bodies_survive_transfer_encoding_exactly(dsite, cfg):
    post = dsite.post(cfg, "qp", title="a=b =?x?= trailing   ", description="line with = and tab\t end")
    digest = render_digest([post], cfg)
    html, text = personalise(digest, ALICE, cfg)
    text += "\n.dot line\nFrom the start\ntrailing spaces   \n" + "y" * 2000 + "\n"
    stored = RenderedDigest("digest", digest.subject, html, text, digest.post_ids, ())
    for serialise in (None, policy.SMTP):
        got_text, got_html = (p.replace("\r\n", "\n") for p in parts(reparse(message(stored, cfg), serialise)))
        assert got_text == text and got_html == html


def test_css_is_inlined_and_layout_needs_no_style_element(three, cfg):
    html = render_digest(three, cfg).html
    post_cells = by_class(html, "td", "post")
    assert len(post_cells) == 3
    assert all("padding:" in cell.get("style", "") for cell in post_cells)
    container = by_class(html, "table", "container")[0]
    assert container["role"] == "presentation"
    assert "max-width:600px" in container["style"].replace(" ", "")
    assert by_class(html, "a", "read-more")[0]["style"]  # links are styled inline too
    # What stays in <style> is only what cannot be inlined: the mobile media query.
    for block in style_blocks(html):
        assert block.strip().startswith("@media"), block[:80]
    assert all(a.get("role") == "presentation" for t, a in tags(html).tags if t == "table")


def test_html_has_preheader_header_footer_links(three, cfg):
    html, text = personalise(render_digest(three, cfg), ALICE, cfg)
    parsed = tags(html)
    preheader = by_class(html, "div", "preheader")[0]
    assert "display:none" in preheader["style"].replace(" ", "")
    hrefs = [a["href"] for t, a in parsed.tags if t == "a"]
    assert "https://blog.test.example/newsletter/unsubscribe/tok-alice_123" in hrefs
    assert "https://blog.test.example/rss.xml" in hrefs
    assert "https://blog.test.example" in hrefs
    body = "".join(parsed.text)
    assert "Test Blog" in body and "Unsubscribe" in body and "feed reader" in body
    assert html.index("Newest post") > html.index('class="preheader"')


def test_featured_first_then_newest_in_html_text_and_ids(three, cfg):
    digest = render_digest(three, cfg)
    titles = ["Old featured post", "Newest post", "Middle post"]
    html, text = personalise(digest, ALICE, cfg)
    body_html = html[html.index("</head>"):]  # the <title> holds the subject, not the order
    assert sorted(body_html.index(t) for t in titles) == [body_html.index(t) for t in titles]
    assert sorted(text.index(t) for t in titles) == [text.index(t) for t in titles]
    assert digest.post_ids == (
        "https://blog.test.example/blog/old-featured/",
        "https://blog.test.example/blog/newest/",
        "https://blog.test.example/blog/middle/",
    )
    assert by_class(html, "span", "badge")  # the featured post is marked


def test_links_and_images_are_absolute_with_alt_text(three, cfg):
    html, text = personalise(render_digest(three, cfg), BOB, cfg)
    parsed = tags(html)
    urls = [a["href"] for t, a in parsed.tags if t == "a"] + [a["src"] for t, a in parsed.tags if t == "img"]
    assert urls and all(u.startswith("https://") for u in urls), urls
    images = [a for t, a in parsed.tags if t == "img"]
    assert [i["src"] for i in images] == ["https://blog.test.example/img/hero.png"]
    assert images[0]["alt"] == "Old featured post"
    assert int(images[0]["width"]) <= 600 and "max-width" in images[0]["style"]
    for slug in ("old-featured", "newest", "middle"):
        assert f"https://blog.test.example/blog/{slug}/" in text


def test_text_part_is_readable(three, cfg):
    _html, text = personalise(render_digest(three, cfg), ALICE, cfg)
    assert "<p" not in text and "<a " not in text and "&amp;" not in text
    assert "Newest post" in text and "The newest one." in text
    assert "Hi Alice," in text
    last_lines = text.strip().splitlines()[-3:]
    assert "Unsubscribe: https://blog.test.example/newsletter/unsubscribe/tok-alice_123" in last_lines
    assert all(len(line) <= 200 for line in text.splitlines())


# --- placeholders and personalisation ----------------------------------------------------

def test_premailer_is_imported_without_requests_and_never_fetches(three, cfg):
    """digest._premailer: premailer imports requests (urllib3, chardet, ...) only to fetch
    stylesheets by URL, which the digest never does; it is imported with a stand-in that
    refuses to fetch, and whatever imports requests afterwards gets the real one."""
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from publisher.newsletter import digest\n"
        "premailer = digest._premailer()\n"
        "assert 'requests' not in sys.modules and 'urllib3' not in sys.modules, 'imported'\n"
        "import premailer.premailer as p\n"
        "try:\n"
        "    p.requests.get('https://example.org/x.css')\n"
        "except Exception as e:\n"
        "    print('refused:', e)\n"
        "import requests\n"
        "print('real:', hasattr(requests, 'Session'))\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True).stdout
    assert out == ("refused: premailer asked for 'https://example.org/x.css': the digest's CSS "
                   "is never fetched\nreal: True\n")
    # and the CSS is inlined all the same (in this process)
    assert 'style="' in render_digest(three, cfg).html


def test_placeholders_survive_premailer_in_href_and_text(three, cfg):
    digest = render_digest(three, cfg)
    assert f'href="{TOKEN_UNSUBSCRIBE_URL}"' in digest.html
    assert TOKEN_GREETING_NAME in digest.html and TOKEN_EMAIL in digest.html
    assert TOKEN_UNSUBSCRIBE_URL in digest.text
    assert "PUBLISHER" not in personalise(digest, ALICE, cfg)[0]


def test_two_recipients_get_their_own_links(three, cfg):
    digest = render_digest(three, cfg)
    html_a, text_a = personalise(digest, ALICE, cfg)
    html_b, text_b = personalise(digest, BOB, cfg)
    link_a = unsubscribe_url(cfg, ALICE.token)
    link_b = unsubscribe_url(cfg, BOB.token)
    assert link_a != link_b
    assert link_a in html_a and link_a in text_a and link_b not in html_a + text_a
    assert link_b in html_b and link_b in text_b and link_a not in html_b + text_b
    assert "Hi there," in text_b  # no name: the greeting still reads well
    header_a = reparse(message(digest, cfg, ALICE))["List-Unsubscribe"]
    header_b = reparse(message(digest, cfg, BOB))["List-Unsubscribe"]
    assert f"<{link_a}>" in header_a and f"<{link_b}>" in header_b


def test_names_are_escaped_in_html_and_intact_in_text(three, cfg):
    evil = Recipient(email="eve@example.org", name='Eve <b>& "Co"</b>', token="t1")
    html, text = personalise(render_digest(three, cfg), evil, cfg)
    assert "Eve &lt;b&gt;&amp; &quot;Co&quot;&lt;/b&gt;" in html
    assert "<b>&" not in html
    assert 'Hi Eve <b>& "Co"</b>,' in text


def test_recipient_values_are_not_substituted_twice(three, cfg):
    sneaky = Recipient(email="s@example.org", name=TOKEN_UNSUBSCRIBE_URL, token="t2")
    html, text = personalise(render_digest(three, cfg), sneaky, cfg)
    assert f"Hi {TOKEN_UNSUBSCRIBE_URL}," in text  # shown as typed, never expanded


def test_placeholder_in_a_post_title_is_defused(dsite, cfg):
    post = dsite.post(cfg, "trap", title=f"Click {TOKEN_UNSUBSCRIBE_URL} now")
    html, text = personalise(render_digest([post], cfg), ALICE, cfg)
    link = unsubscribe_url(cfg, ALICE.token)
    assert html.count(link) == 1 and text.count(link) == 1  # only the footer's


def test_render_preview_uses_a_sample_subscriber(three, cfg):
    html, text = render_preview(three, cfg)
    assert "@@" not in html and "@@" not in text
    assert "Hi Sample Subscriber," in text
    assert "https://blog.test.example/newsletter/unsubscribe/" in html


# --- escaping -----------------------------------------------------------------------------

def test_tricky_titles_escaped_in_html_intact_in_text(dsite, cfg):
    post = dsite.fixture_post(cfg, "tricky.md")
    digest = render_digest([post], cfg)
    html, text = personalise(digest, ALICE, cfg)
    assert "<script>" not in html and "<b>bold</b>" not in html
    assert "Tom &amp; Jerry &lt;script&gt;" in html
    assert post.title in text and post.summary in text and post.author in text
    assert "🎉 שלום עולם" in text and "مرحبا بالعالم" in text
    shown = "".join(tags(html).text)
    assert post.title in shown and post.summary in shown
    assert by_class(html, "h2", "post-title")[0]["dir"] == "auto"  # RTL titles lay out right


def test_control_characters_never_reach_subject_or_bodies(dsite, cfg):
    path = dsite.write_post("ctl", title="x")
    path.write_bytes(b'---\ntitle: "Bell\\a and\\x1b escape\\u2028line"\npubDate: 2024-02-02\n---\nHi\n')
    from publisher.content import read_post

    post = read_post(path, cfg)
    digest = render_digest([post], cfg, kind="alert")
    assert not re.search("[\x00-\x1f\x7f\u2028]", digest.subject)
    html, text = personalise(digest, ALICE, cfg)
    assert "\x07" not in html + text and "\x1b" not in html + text


# --- headers ------------------------------------------------------------------------------

def test_headers_of_a_digest(three, cfg):
    digest = render_digest(three, cfg)
    msg = reparse(message(digest, cfg))
    assert set(msg.keys()) == BASE_HEADERS | LIST_HEADERS
    assert msg["From"] == "Test Blog <news@blog.test.example>"
    assert msg["To"] == "Alice <alice@example.org>"
    assert msg["Subject"] == digest.subject == "Test Blog: Old featured post and 2 more"
    assert msg["Date"].datetime == WHEN
    assert msg["List-Unsubscribe"] == (
        "<https://blog.test.example/newsletter/unsubscribe/tok-alice_123>, "
        "<mailto:news@blog.test.example?subject=unsubscribe>"
    )
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["List-Id"] == "Test Blog <list.blog.test.example>"
    assert re.fullmatch(r"<[0-9a-f]{40}@blog\.test\.example>", msg["Message-ID"])


def test_one_click_header_only_for_https(dsite, three):
    cfg = dsite.config(newsletter={"web_url": "http://localhost:8080/news"})
    msg = reparse(message(render_digest(three, cfg), cfg))
    assert msg["List-Unsubscribe"].startswith("<http://localhost:8080/news/unsubscribe/tok-alice_123>")
    assert "List-Unsubscribe-Post" not in msg
    assert set(msg.keys()) == BASE_HEADERS | LIST_HEADERS - {"List-Unsubscribe-Post"}


def test_configured_list_id_and_unsubscribe_mailto(dsite, three):
    cfg = dsite.config(newsletter={"list_id": "Weekly <weekly.blog.test.example>",
                                   "unsubscribe_mailto": "leave@lists.test.example"})
    msg = reparse(message(render_digest(three, cfg), cfg))
    assert msg["List-Id"] == "Weekly <weekly.blog.test.example>"
    assert msg["List-Unsubscribe"].endswith("<mailto:leave@lists.test.example?subject=unsubscribe>")


def test_list_id_for_a_title_with_specials_and_unicode(dsite, three):
    cfg = dsite.config(site={"title": "Café, Crème & <Co>"})
    raw = message(render_digest(three, cfg), cfg).raw
    line = re.search(rb"^List-Id: (.*)$", raw, re.M).group(1)
    assert line.isascii()
    parsed = reparse(message(render_digest(three, cfg), cfg))
    assert str(parsed["List-Id"]).endswith("<list.blog.test.example>")


def test_message_id_unique_per_recipient_and_stable_per_key(three, cfg):
    digest = render_digest(three, cfg)
    first = message(digest, cfg, ALICE)["Message-ID"]
    assert message(digest, cfg, ALICE)["Message-ID"] == first  # a resend keeps its id
    assert message(digest, cfg, BOB)["Message-ID"] != first
    assert message(digest, cfg, ALICE, key="digest-2")["Message-ID"] != first
    later = build_message(digest, ALICE, cfg, message_key="digest-1", date=WHEN + timedelta(hours=1))
    assert later["Message-ID"] == first  # the id does not depend on when it is sent


def test_missing_from_is_a_config_error(dsite, three):
    cfg = dsite.config(newsletter={"from": ""})
    with pytest.raises(ConfigError, match=r"config.yaml: newsletter.from: required to send mail, but missing$"):
        message(render_digest(three, cfg), cfg)


def test_naive_date_is_refused(three, cfg):
    with pytest.raises(ValueError, match="timezone-aware"):
        build_message(render_digest(three, cfg), ALICE, cfg, message_key="k",
                      date=datetime(2024, 6, 3, 9, 0))


@pytest.mark.parametrize("address", [
    "alice@example.org\r\nBcc: evil@x.org",
    "alice@example.org, evil@x.org",
    "Alice <alice@example.org>",
    "alice@example.org>",
    "no-at-sign",
    "",
])
def test_addresses_that_would_break_the_header_are_refused(three, cfg, address):
    with pytest.raises(DeliveryError, match="expected one address"):
        message(render_digest(three, cfg), cfg, Recipient(address, "X", "tok"))


def test_international_domain_is_punycoded(three, cfg):
    msg = reparse(message(render_digest(three, cfg), cfg, Recipient("jo@bücher.example", "Jo", "t")))
    assert msg["To"].addresses[0].addr_spec == "jo@xn--bcher-kva.example"


# --- header injection ---------------------------------------------------------------------

INJECTIONS = [
    "Hi\r\nBcc: evil@x.org",
    "=?utf-8?q?x=0D=0ABcc:_evil@x.org?=",
    "Hello =?utf-8?q?x=0D=0ABcc:_evil@x.org?= " + "word " * 20,
    "=?utf-8?b?eA0KQmNjOiBldmlsQHgub3Jn?=",
    "=\x00?utf-8?q?x=0ABcc:_evil@x.org?=",
]


@pytest.mark.parametrize("title", INJECTIONS)
@pytest.mark.parametrize("serialise", [None, policy.SMTP, policy.default])
def test_crafted_titles_add_no_header(dsite, cfg, title, serialise):
    post = dsite.post(cfg, "crafted", title=title)
    for kind in ("digest", "alert"):
        digest = render_digest([post], cfg, kind=kind)
        assert "\r" not in digest.subject and "\n" not in digest.subject
        parsed = reparse(message(digest, cfg), serialise)
        assert set(parsed.keys()) == BASE_HEADERS | LIST_HEADERS, parsed.keys()
        assert "evil" not in str(parsed["To"])


@pytest.mark.parametrize("crafted", INJECTIONS)
def test_crafted_stored_subject_and_name_add_no_header(three, cfg, crafted):
    # A digest read back from the state database, or a name from an imported CSV,
    # never went through content.py: build_message must clean them itself.
    digest = render_digest(three, cfg)
    stored = RenderedDigest(kind="digest", subject=crafted, html=digest.html, text=digest.text,
                            post_ids=digest.post_ids, warnings=())
    parsed = reparse(message(stored, cfg, Recipient("alice@example.org", crafted, "tok")))
    assert set(parsed.keys()) == BASE_HEADERS | LIST_HEADERS
    assert parsed["To"].addresses[0].addr_spec == "alice@example.org"
    assert "\n" not in parsed["Subject"] and "\r" not in parsed["Subject"]


def test_sanitize_header():
    assert sanitize_header("  a\r\n b\tc\x00d\x7f\u2028e  ") == "a b c d e"
    cleaned = sanitize_header("=?utf-8?q?x?=")
    assert "=?" not in cleaned and cleaned.replace("\u200b", "") == "=?utf-8?q?x?="
    assert "=?" not in sanitize_header("=\r\n?utf-8?q?x?=".replace("\r\n", "\x00"))
    assert sanitize_header("Tom & Jerry 🎉 שלום") == "Tom & Jerry 🎉 שלום"


def test_subject_is_one_line_and_at_most_200_chars(dsite, cfg):
    post = dsite.post(cfg, "long", title="Long " * 80)
    for kind in ("digest", "alert"):
        subject = render_digest([post], cfg, kind=kind).subject
        assert len(subject) <= 200 and subject.endswith("…")


def test_subject_template_from_config(dsite, three):
    cfg = dsite.config(newsletter={"subject": "{{ count }} new on {{ site.title }}"})
    assert render_digest(three, cfg).subject == "3 new on Test Blog"


def test_bad_subject_template_is_a_config_error(dsite, three):
    cfg = dsite.config(newsletter={"subject": "{{ site.nope }}"})
    with pytest.raises(ConfigError, match="newsletter.subject"):
        render_digest(three, cfg)


# --- wire format --------------------------------------------------------------------------

def test_every_line_fits_in_998_bytes(dsite, cfg):
    long_word = "x" * 3000
    post = dsite.post(cfg, "huge", title="T " + "é" * 300, description=long_word + " " + "😀" * 500)
    long_token = "A" * 300
    msg = build_message(render_digest([post], cfg), Recipient("a@example.org", "N" * 500, long_token),
                        cfg, message_key="k", date=WHEN)
    for data in (msg.raw,):
        longest = max(len(line) for line in data.split(b"\r\n"))
        assert longest <= 998
    parsed = reparse(msg)  # the bytes a send hands to the server
    assert parsed["List-Unsubscribe"].startswith(
        f"<https://blog.test.example/newsletter/unsubscribe/{long_token}>")
    assert parts(parsed)[0].count(long_word) == 1


def test_list_unsubscribe_is_never_encoded(three, cfg):
    token = "T" * 120
    raw = message(render_digest(three, cfg), cfg, Recipient("a@example.org", "A", token)).raw
    header = re.search(rb"^List-Unsubscribe: .*?(?=\r\n\S)", raw, re.M | re.S).group(0)
    assert b"=?" not in header and token.encode() in header


# --- size budget --------------------------------------------------------------------------

def test_size_budget_with_300_long_posts(dsite, cfg):
    summary = "A long summary sentence that goes on and on. " * 12
    posts = [
        dsite.post(cfg, f"p{i:03d}", title=f"Post number {i:03d}", description=summary,
                   pubDate=(datetime(2024, 1, 1, tzinfo=timezone.utc) + timedelta(hours=i)).isoformat())
        for i in range(300)
    ]
    digest = render_digest(posts, cfg)
    limit = cfg.newsletter.max_html_kb * 1024
    html, text = personalise(digest, Recipient("a@example.org", "&" * 100, "t" * 64), cfg)
    assert len(html.encode("utf-8")) <= limit
    (warning,) = digest.warnings
    shown_in_full = len(by_class(html, "td", "post"))
    as_links = len(post_links(html))
    assert 0 < shown_in_full < 300
    assert shown_in_full + as_links == 300  # nobody's post goes missing
    assert warning == f"digest HTML over 100 KB: {300 - shown_in_full} posts shown as links only"
    assert "Post number 299" in html and "Post number 000" in html
    assert text.count("https://blog.test.example/blog/p") == 300
    # Newest in full: the post shown last in full is newer than the first listed as a link.
    assert html.index("Post number 299") < html.index("More new posts") < html.index("Post number 000")


def test_a_small_digest_has_no_warning(three, cfg):
    assert render_digest(three, cfg).warnings == ()


def test_budget_lists_fewer_links_when_even_links_do_not_fit(dsite):
    cfg = dsite.config(newsletter={"max_html_kb": 20})
    posts = [dsite.post(cfg, f"q{i:03d}", title=f"Quite a long title for post {i:03d} " * 3)
             for i in range(150)]
    digest = render_digest(posts, cfg)
    html, _text = personalise(digest, ALICE, cfg)
    assert len(html.encode("utf-8")) <= 20 * 1024
    assert not by_class(html, "td", "post")
    listed = len(post_links(html))
    assert 0 < listed < 150
    assert f"and {150 - listed} more" in html
    assert digest.warnings[0].endswith(f"{150 - listed} not listed (the mail links to the site)")


# --- templates ----------------------------------------------------------------------------

def test_site_template_overrides_the_bundled_one(dsite, three):
    cfg = dsite.config()
    dsite.install_templates()
    digest = render_digest(three, cfg)
    _html, text = personalise(digest, ALICE, cfg)
    assert text.startswith("SITE OVERRIDE for Test Blog\n")
    assert "Old featured post -> https://blog.test.example/blog/old-featured/" in text
    assert "Leave: https://blog.test.example/newsletter/unsubscribe/tok-alice_123" in text
    assert "Hi Alice" in _html  # digest.html was not overridden: still the bundled one


def test_a_broken_site_template_names_the_file(dsite, three):
    cfg = dsite.config()
    (dsite.root / "templates").mkdir()
    (dsite.root / "templates" / "digest.html").write_text("<p>{% for %}</p>\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"^templates/digest.html: line 1: "):
        render_digest(three, cfg)


def test_html_templates_autoescape_but_text_templates_do_not(dsite, cfg):
    post = dsite.post(cfg, "amp", title="A & B <i>")
    digest = render_digest([post], cfg)
    assert "A &amp; B &lt;i&gt;" in digest.html and "A & B <i>" in digest.text


def test_alert_uses_alert_templates_and_the_title_as_subject(dsite, cfg):
    post = dsite.post(cfg, "big-news", title="Big news", description="Read this.", featured=True)
    alert = render_digest([post], cfg, kind="alert")
    assert alert.kind == "alert" and alert.subject == "Big news" and alert.post_ids == (post.id,)
    html, text = personalise(alert, ALICE, cfg)
    assert by_class(html, "h1", "alert-title") and not by_class(html, "td", "more")
    assert "New on Test Blog" in text and "Read it: https://blog.test.example/blog/big-news/" in text
    with pytest.raises(ValueError, match="exactly one post"):
        render_digest([post, post], cfg, kind="alert")


def test_render_refuses_nothing_and_unknown_kinds(three, cfg):
    with pytest.raises(ValueError, match="no posts"):
        render_digest([], cfg)
    with pytest.raises(ValueError, match="kind"):
        render_digest(three, cfg, kind="weekly")


# --- one-off messages ---------------------------------------------------------------------

def test_simple_message_for_a_confirmation_mail(cfg):
    msg = build_simple_message(cfg, to="New Person <new@example.org>", subject="Confirm\r\nBcc: x@y.z",
                               html="<p>Click</p>", text="Click", message_key="confirm-1", date=WHEN)
    parsed = reparse(msg)
    assert set(parsed.keys()) == BASE_HEADERS
    assert parsed["To"] == "New Person <new@example.org>"
    assert parsed["Subject"] == "Confirm Bcc: x@y.z"
    assert [p.replace("\r\n", "\n") for p in parts(parsed)] == ["Click\n", "<p>Click</p>\n"]
    again = build_simple_message(cfg, to=Recipient("new@example.org", "", "t"), subject="s", html="",
                                 text="only text", message_key="confirm-1", date=WHEN)
    assert again["Message-ID"] == msg["Message-ID"]
    assert reparse(again).get_content_type() == "text/plain"
    with pytest.raises(DeliveryError):
        build_simple_message(cfg, to="a@b.example, c@d.example", subject="s", html="", text="t",
                             message_key="k", date=WHEN)


def test_unsubscribe_url(cfg):
    assert unsubscribe_url(cfg, "abc-DEF_123") == "https://blog.test.example/newsletter/unsubscribe/abc-DEF_123"
    with pytest.raises(ValueError):
        unsubscribe_url(cfg, "")


def test_an_oversized_alert_is_sent_whole_but_warned(dsite):
    cfg = dsite.config(newsletter={"max_html_kb": 20})
    post = dsite.post(cfg, "essay", title="An essay", description="word " * 6000)
    alert = render_digest([post], cfg, kind="alert")
    assert alert.text.count("word") == 6000  # nothing cut
    (warning,) = alert.warnings
    assert re.fullmatch(r"alert HTML is \d+ KB, over newsletter.max_html_kb \(20 KB\): Gmail may clip it",
                        warning)


def test_premailers_rules_kept_per_stylesheet_inline_exactly_as_premailer_does(three, cfg, monkeypatch):
    """digest._premailer keeps the rules premailer makes of a stylesheet (every topic
    variant of a digest shares one): each body is still byte for byte what premailer
    itself makes of it, the first time and once the rules are kept."""
    import premailer

    from publisher.newsletter import digest as digest_mod

    plain = []
    inline = digest_mod._inline_css

    def both(document, config, name):
        kept = inline(document, config, name)
        monkeypatch.setattr(digest_mod, "_Premailer", premailer.Premailer)  # premailer as shipped
        try:
            plain.append((inline(document, config, name), kept))
        finally:
            monkeypatch.setattr(digest_mod, "_Premailer", None)
        return kept

    digest_mod._STYLE_RULES.clear()
    monkeypatch.setattr(digest_mod, "_inline_css", both)
    bodies = [render_digest(three[:n], cfg).html for n in (3, 2, 1, 3)]
    assert len(plain) == 4 and all(expected == got for expected, got in plain)
    assert bodies[0] == bodies[3] and len(set(bodies)) == 3
    assert len(digest_mod._STYLE_RULES) == 1  # one template stylesheet, made into rules once
