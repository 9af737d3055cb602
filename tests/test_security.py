"""Security: header injection (CRLF, RFC 2047 encoded words per CVE-2024-6923) through post
titles, subscriber names and addresses; path traversal through slugs and tag names; HTML in
front matter escaped in mail and pages; Jinja2 autoescaping; secrets never printed; TLS
verification on unless the config turns it off, and then loudly; plaintext passwords in the
config refused. Everything through real files, real processes and real servers on 127.0.0.1."""

from __future__ import annotations

import email
import email.policy
import hashlib
import json
import logging
import os
import re
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliability_helpers import run_cli, snapshot
from sites import make_config, write_config, write_post
from smtp_helpers import SmtpServer, smtp_cert  # noqa: F401  (fixture)

from publisher import pipeline
from publisher.config import load_config
from publisher.state import State

WEEK_AGO = datetime.now(timezone.utc) - timedelta(days=7)
NOW = datetime(2030, 1, 1, tzinfo=timezone.utc)
SECRET = "hunter2-Do-Not-Print-Me-7f3a"
EXPECTED_HEADERS = {"from", "to", "subject", "date", "message-id", "list-unsubscribe",
                    "list-unsubscribe-post", "list-id", "mime-version", "content-type"}
INJECTIONS = [
    "Hello\r\nBcc: evil@attacker.example",
    "Hello\nBcc: evil@attacker.example",
    "Hello\rBcc: evil@attacker.example",
    "=?utf-8?q?Hello=0D=0ABcc:_evil@attacker.example?=",
    "=?utf-8?b?SGVsbG8NCkJjYzogZXZpbEBhdHRhY2tlci5leGFtcGxl?=",  # "Hello\r\nBcc: evil@..."
    "=?utf-8?q?Hi?= =?utf-8?q?=0ABcc:_evil@attacker.example?=",
    "Hello\u2028Bcc: evil@attacker.example",
    "Hello\x85Bcc: evil@attacker.example",
    "Hello\x00\x0bBcc: evil@attacker.example",
    "X" * 2000 + "\r\nBcc: evil@attacker.example",
]


def header_names(raw: bytes) -> list[str]:
    """The names of the top-level header fields, read line by line from the raw bytes
    (not through a parser that might merge or drop what an attacker added)."""
    head = raw.split(b"\r\n\r\n", 1)[0]
    names = []
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t"):
            continue  # a folded continuation line
        name, colon, _value = line.partition(b":")
        assert colon and re.fullmatch(rb"[!-9;-~]+", name), f"not a header line: {line[:120]!r}"
        names.append(name.decode().lower())
    return names


def assert_clean_headers(raw: bytes, to: str) -> None:
    names = header_names(raw)
    assert sorted(names) == sorted(EXPECTED_HEADERS), names  # each exactly once, nothing added
    assert b"\n" not in raw.replace(b"\r\n", b"")  # no bare LF anywhere
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert [a.addr_spec for a in msg["To"].addresses] == [to]
    assert len(msg["From"].addresses) == 1
    assert not [d for d in msg.defects if "Header" in type(d).__name__], msg.defects
    for name in ("Subject", "From", "To"):
        value = str(msg[name])
        assert "\r" not in value and "\n" not in value, (name, value)


# --- header injection ---------------------------------------------------------------------

def test_titles_and_names_cannot_inject_headers_into_digests_or_alerts(tmp_path):
    with SmtpServer() as server:
        config = make_config(tmp_path / "site", smtp={**server.smtp_settings(), "retry_base_delay": 0},
                            newsletter={"featured_alert": True, "schedule": "* * * * *"},
                            site={"title": "Blog =?utf-8?q?=0D=0ABcc:_evil@attacker.example?="})
        write_post(config.root, "old.md", {"title": "Old", "pubDate": "2024-01-01"})
        pipeline.run_once(config, WEEK_AGO)
        state = State(config.database_url)
        # Names stored as they might come from an older import or another tool: raw CR/LF.
        subscribers = [(f"reader{i}@example.org", name) for i, name in enumerate(INJECTIONS)]
        state.add_subscribers(subscribers)
        for i, title in enumerate(INJECTIONS):
            write_post(config.root, f"p{i}.md", {
                "title": title, "pubDate": (WEEK_AGO + timedelta(hours=1, minutes=i)).isoformat(),
                "featured": i == 0, "author": title, "description": title})
        report = pipeline.run_once(config)  # the featured alert, then the digest
        assert report.exit_status == 0, report
        received = server.received
        state.close()
    assert len(received) == 2 * len(subscribers)  # an alert and a digest each
    for m in received:
        assert m.rcpt_tos[0].startswith("reader") and m.rcpt_tos[0].endswith("@example.org")
        assert_clean_headers(m.data, m.rcpt)


@settings(derandomize=True, database=None, max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(subject=st.text(st.characters(blacklist_categories=("Cs",))) | st.sampled_from(INJECTIONS),
       name=st.text(st.characters(blacklist_categories=("Cs",))) | st.sampled_from(INJECTIONS))
def test_any_subject_and_name_give_exactly_the_expected_headers(subject, name, tmp_path_factory):
    from publisher.newsletter.digest import Recipient, RenderedDigest
    from publisher.newsletter.message import build_message

    config = _config(tmp_path_factory)
    digest = RenderedDigest(kind="digest", subject=subject, html="<p>Hi</p>", text="Hi",
                            post_ids=("x",), warnings=())
    data = build_message(digest, Recipient("reader@example.org", name, "t" * 43), config,
                         message_key="k", date=NOW)
    assert_clean_headers(data, "reader@example.org")


_CONFIGS: dict = {}


def _config(factory):
    if "c" not in _CONFIGS:
        _CONFIGS["c"] = make_config(factory.mktemp("hdr") / "site")
    return _CONFIGS["c"]


# Found here: this one passed normalize_address (every character is legal in a local part),
# and Python 3.11's email package decoded it while writing the To header, which came out as
# "To: a" and "Bcc: victim@evil.example@example.org" (CVE-2024-6923). Anyone could subscribe
# with it through the web form. Fixed in subscribers.normalize_address.
ENCODED_WORD_ADDRESS = "=?utf-8?q?a=0D=0ABcc=3A_victim=40evil.example?=@example.org"


@pytest.mark.parametrize("address", [
    "a@example.org\r\nBcc: evil@attacker.example", "a@example.org\nBcc: evil@attacker.example",
    ENCODED_WORD_ADDRESS, "=?utf-8?q?a=0D=0A?=@example.org", "a@example.org, evil@attacker.example",
    "Evil <evil@attacker.example>", "a@example.org\x00", "a@exa\u2028mple.org",
])
def test_addresses_that_could_inject_are_refused_everywhere(tmp_path, address):
    from publisher.newsletter.subscribers import InvalidAddress, normalize_address

    config = make_config(tmp_path / "site")
    with pytest.raises(InvalidAddress):  # the web form's check, too
        normalize_address(address)
    if "\x00" not in address:  # an argv cannot hold NUL
        added = run_cli(config.path, "subscribers", "add", address)
        assert added.returncode == 2 and "not a valid address" in added.stderr, added.stderr
        to = run_cli(config.path, "send", "--to", address)
        assert to.returncode == 2, to.stderr
    csv = tmp_path / "list.csv"
    csv.write_text('email,name\n"' + address.replace('"', '""') + '",x\n', encoding="utf-8")
    imported = run_cli(config.path, "subscribers", "import", str(csv))
    assert imported.returncode == 1 and "line 2:" in imported.stderr, imported.stderr
    state = State(config.database_url)
    assert state.list_subscribers() == []
    state.close()


def test_an_encoded_word_address_already_stored_is_sent_without_injected_headers(tmp_path):
    """An address stored before normalize_address refused encoded words (or by another tool):
    the digest still goes out to everyone, and no message gains a header."""
    with SmtpServer() as server:
        config = make_config(tmp_path / "site", smtp={**server.smtp_settings(), "retry_base_delay": 0})
        write_post(config.root, "old.md", {"title": "Old", "pubDate": "2024-01-01"})
        pipeline.run_once(config, WEEK_AGO)
        state = State(config.database_url)
        state.add_subscribers([("first@example.org", ""), (ENCODED_WORD_ADDRESS, ""),
                               ("last@example.org", "")])  # straight into the database
        state.close()
        write_post(config.root, "new.md", {"title": "New", "pubDate": (WEEK_AGO + timedelta(hours=1)).isoformat()})
        pipeline.send_now(config)
        received = server.received
    assert {"first@example.org", "last@example.org"} <= {m.rcpt for m in received}
    for m in received:
        assert sorted(header_names(m.data)) == sorted(EXPECTED_HEADERS)


# Found here: digest.build_message wrote such an address as "To: a" plus an injected
# "Bcc: victim@evil.example@example.org" header (CVE-2024-6923 on Python 3.11.7). Such an
# address is now refused, naming the subscriber and the "=?" that breaks it.
def test_build_message_never_turns_an_encoded_word_address_into_headers(tmp_path):
    from publisher.errors import DeliveryError
    from publisher.newsletter.digest import Recipient, RenderedDigest
    from publisher.newsletter.message import build_message

    config = make_config(tmp_path / "site")
    digest = RenderedDigest(kind="digest", subject="s", html="<p>x</p>", text="x",
                            post_ids=("a",), warnings=())
    expected = f"recipient {ENCODED_WORD_ADDRESS!r}: expected one address such as someone@example.org, "
    with pytest.raises(DeliveryError) as refused:
        build_message(digest, Recipient(ENCODED_WORD_ADDRESS, "", "t" * 43), config,
                      message_key="k", date=NOW)
    assert str(refused.value).startswith(expected) and str(refused.value).endswith("(it contains '=?')")


def test_names_with_line_breaks_are_cleaned_on_the_way_in(tmp_path):
    config = make_config(tmp_path / "site")
    assert run_cli(config.path, "subscribers", "add", "a@example.org", "--name",
                   "Ann\r\nBcc: evil@attacker.example").returncode == 0
    csv = tmp_path / "list.csv"
    csv.write_text('email,name\nb@example.org,"Bob\r\nBcc: evil@attacker.example"\n', encoding="utf-8")
    assert run_cli(config.path, "subscribers", "import", str(csv)).returncode == 0
    state = State(config.database_url)
    names = {s.email: s.name for s in state.list_subscribers()}
    state.close()
    assert names == {"a@example.org": "Ann Bcc: evil@attacker.example",
                     "b@example.org": "Bob Bcc: evil@attacker.example"}


# --- path traversal -------------------------------------------------------------------------

TRAVERSALS = ["../../etc", "../../../../tmp/pwned", "/etc/passwd", "/tmp/pwned", "..", ".",
              "C:\\Windows\\evil", "..\\..\\evil", "%2e%2e%2fevil", "a/../../b", "\x00evil",
              "tags/../../../evil", "~/evil", "-", "...."]


def test_slugs_and_tags_never_write_outside_the_output_folder(tmp_path):
    outside = tmp_path / "outside-marker"
    config = make_config(tmp_path / "site")
    for i, bad in enumerate(TRAVERSALS):
        write_post(config.root, f"p{i}.md", {"title": f"Post {i}", "pubDate": f"2024-01-{i + 1:02d}",
                                              "slug": bad, "tags": [bad, f"ok{i}", bad + "/x"]})
    write_post(config.root, "cat.md", {"title": "Categories", "pubDate": "2024-02-01",
                                      "categories": "../../etc, /abs, .."})
    before = {p for p in tmp_path.rglob("*")}
    result = run_cli(config.path, "build")
    assert result.returncode == 1, result.stderr  # the skipped posts are problems
    assert "Traceback" not in result.stderr
    created = {p for p in tmp_path.rglob("*")} - before
    out = config.output_dir.resolve()
    strays = [p for p in created
              if not p.resolve().is_relative_to(out) and p.name not in ("state.db", "state.db-wal",
                                                                         "state.db-shm", "state.db.lock")]
    assert strays == []
    assert not outside.exists() and not Path("/tmp/pwned").exists()
    for p in created:
        if p.is_relative_to(config.output_dir):
            parts = p.relative_to(config.output_dir).parts
            assert all(part not in ("..", ".", "") and not part.startswith(".") for part in parts), p
    # Every URL in the feeds stays on the site, without dot segments.
    for rel, data in snapshot(config.output_dir).items():
        for url in re.findall(rb'(?:href|url|src)="([^"]+)"', data) + re.findall(rb'"url": "([^"]+)"', data):
            if url.startswith(b"https://blog.test.example"):
                assert b"/../" not in url and b"/./" not in url, (rel, url)


def test_dry_run_and_preview_file_names_come_from_safe_parts(tmp_path):
    config = make_config(tmp_path / "site")
    write_post(config.root, "p.md", {"title": "../../etc/passwd", "pubDate": "2024-01-01",
                                     "slug": "../../x"})
    state = State(config.database_url)
    state.add_subscribers([("a.b+c@example.org", "../../evil"), ("x_y@example.org", "/etc/passwd")])
    state.close()
    out = tmp_path / "outbox"
    result = run_cli(config.path, "send", "--dry-run", "--out", str(out))
    assert result.returncode == 0, result.stderr
    names = sorted(p.name for p in out.iterdir())
    assert names == ["000001-a.b+c@example.org.eml", "000002-x_y@example.org.eml"]
    assert [p for p in tmp_path.rglob("*.eml") if p.parent != out] == []


# --- HTML in front matter, templates ------------------------------------------------------------

XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def test_html_in_front_matter_is_escaped_in_mail_preview_and_feeds(tmp_path):
    with SmtpServer() as server:
        config = make_config(tmp_path / "site", smtp={**server.smtp_settings(), "retry_base_delay": 0})
        write_post(config.root, "old.md", {"title": "Old", "pubDate": "2024-01-01"})
        pipeline.run_once(config, WEEK_AGO)
        state = State(config.database_url)
        state.add_subscribers([("reader@example.org", XSS)])
        state.close()
        write_post(config.root, "xss.md", {
            "title": "Title " + XSS, "description": "Summary " + XSS, "author": "Author " + XSS,
            "tags": ["tag " + XSS], "pubDate": (WEEK_AGO + timedelta(hours=1)).isoformat()},
            body="Body text.\n")
        preview = run_cli(config.path, "preview", "--out", str(tmp_path / "preview"))
        assert preview.returncode == 0, preview.stderr
        assert pipeline.send_now(config).exit_status == 0
        [message] = server.received
    html = message.message.get_body(("html",)).get_content()
    previewed = (tmp_path / "preview" / "digest.html").read_text(encoding="utf-8")
    for page in (html, previewed):
        assert "<script" not in page and "onerror=alert" not in page.replace("onerror=alert(1)&gt;", "")
        assert "Title &lt;script&gt;alert(" in page
        assert "Summary &lt;script&gt;" in page
    assert "<img src=x" not in html
    # The feeds carry the text as text: escaped in the XML, never as markup.
    rss = (config.output_dir / "rss.xml").read_bytes()
    assert b"<script" not in rss and b"<img src=x" not in rss


def test_a_site_template_override_is_autoescaped_too(tmp_path):
    """Autoescaping is on for every .html template, bundled or the site's own."""
    from publisher.content import load_posts
    from publisher.newsletter.digest import render_digest

    config = make_config(tmp_path / "site")
    (config.root / "templates").mkdir()
    (config.root / "templates" / "digest.html").write_text(
        "<html><body>{% for post in posts %}<h2>{{ post.title }}</h2><p>{{ post.summary }}</p>"
        "{% endfor %}<a href=\"{{ unsubscribe_url }}\">x</a></body></html>\n", encoding="utf-8")
    write_post(config.root, "x.md", {"title": XSS, "description": XSS, "pubDate": "2024-01-01"})
    posts = load_posts(config, NOW).posts
    rendered = render_digest(posts, config)
    assert "<script" not in rendered.html and "&lt;script&gt;" in rendered.html


def test_web_pages_escape_what_visitors_type(tmp_path):
    from publisher.web import create_app

    config = make_config(tmp_path / "site", smtp={"host": "127.0.0.1", "port": 1, "max_attempts": 1})
    app = create_app(config)
    try:
        client = app.test_client()
        page = client.get("/subscribe").get_data(as_text=True)
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        response = client.post("/subscribe", data={"email": '"><script>alert(1)</script>',
                                                   "name": XSS, "csrf_token": token})
        body = response.get_data(as_text=True)
        assert response.status_code == 400
        assert "<script>" not in body and "<img src=x" not in body
        assert response.headers["Content-Security-Policy"].startswith("default-src 'none'")
    finally:
        app.extensions["publisher"].close(5)


# --- secrets -----------------------------------------------------------------------------------

def test_the_smtp_password_is_never_printed(tmp_path, smtp_cert):  # noqa: F811
    env = {**os.environ, "PUBLISHER_SMTP_PASSWORD": SECRET}
    outputs = []
    with SmtpServer(tls="starttls", cert=smtp_cert, auth={"news": SECRET}) as server:
        config = _tls_site(tmp_path, server)  # one reader owed a digest of the new post
        for args in (["-v", "send"], ["-v", "run"], ["-v", "check"], ["-v", "send", "--to", "x@example.org"],
                     ["-v", "subscribers", "list"], ["-v", "preview", "--out", str(tmp_path / "p")]):
            outputs.append(run_cli(config.path, *args, env=env))
        assert len(server.received) == 2  # the digest and the test copy: the login worked
        # A wrong password, and a server that does not know the user.
        outputs.append(run_cli(config.path, "-v", "send", "--to", "x@example.org",
                               env={**env, "PUBLISHER_SMTP_PASSWORD": SECRET + "-wrong"}))
        assert outputs[-1].returncode == 1 and "rejected the login" in outputs[-1].stderr
    # The server is gone: "cannot reach" messages must not carry it either.
    outputs.append(run_cli(config.path, "-v", "send", "--to", "x@example.org", env=env))
    for result in outputs:
        assert SECRET not in result.stdout + result.stderr, result.args


@pytest.mark.parametrize("url", [
    f"postgresql://blog:{SECRET}@127.0.0.1:1/blog",
    f"postgresql://blog@127.0.0.1:1/blog?password={SECRET}",
    f"postgresql+psycopg://blog@127.0.0.1:1/blog?sslmode=disable&password={SECRET}",
])
def test_a_database_url_password_is_never_printed(tmp_path, url):
    root = tmp_path / "site"
    write_config(root, state={"database": url})
    for args in (["build"], ["-v", "run"], ["check"], ["subscribers", "list"]):
        result = run_cli(root / "config.yaml", *args)
        assert SECRET not in result.stdout + result.stderr, (args, result.stderr[-2000:])
        assert result.returncode == 2, (args, result.stderr)


# --- TLS ----------------------------------------------------------------------------------------

def _tls_site(tmp_path, server, **smtp):
    settings = {**server.smtp_settings(), "retry_base_delay": 0, "max_attempts": 1, **smtp}
    config = make_config(tmp_path / "site", smtp=settings)
    write_post(config.root, "old.md", {"title": "Old", "pubDate": "2024-01-01"})
    pipeline.run_once(config, WEEK_AGO)
    state = State(config.database_url)
    state.add_subscribers([("reader@example.org", "")])
    state.close()
    write_post(config.root, "new.md", {"title": "New", "pubDate": (WEEK_AGO + timedelta(hours=1)).isoformat()})
    return config


@pytest.mark.parametrize("tls", ["starttls", "ssl"])
def test_an_untrusted_certificate_stops_the_send_and_nothing_is_lost(tmp_path, smtp_cert, tls):  # noqa: F811
    with SmtpServer(tls=tls, cert=smtp_cert) as server:
        settings = server.smtp_settings()
        settings.pop("ca_file")  # verification on, against the system's CAs only
        config = _tls_site(tmp_path, server, ca_file="")
        result = run_cli(config.path, "send")
        assert server.received == []
        assert result.returncode == 1
        assert "TLS certificate not trusted" in result.stderr and "Traceback" not in result.stderr
        state = State(config.database_url)
        assert state.count_owed(1) == 1  # still owed: sent once the certificate is fixed
        state.close()


def test_verify_tls_false_sends_but_warns_on_every_run(tmp_path, smtp_cert):  # noqa: F811
    with SmtpServer(tls="starttls", cert=smtp_cert) as server:
        config = _tls_site(tmp_path, server, ca_file="", verify_tls=False)
        first = run_cli(config.path, "send")
        assert first.returncode == 0, first.stderr
        assert len(server.received) == 1
        second = run_cli(config.path, "send", "--to", "x@example.org")
        assert second.returncode == 0, second.stderr
        quiet = run_cli(config.path, "send", "--quiet", "--to", "x@example.org")  # cron's way
        assert quiet.returncode == 0, quiet.stderr
    for result in (first, second, quiet):
        assert "verify_tls is false" in result.stderr and "NOT checked" in result.stderr, result.stderr


# --- passwords in the config file ---------------------------------------------------------------

@pytest.mark.parametrize("section, key, value", [
    ("smtp", "password", SECRET),
    ("state", "database", f"postgresql://blog:{SECRET}@127.0.0.1:1/blog"),
    ("state", "database", f"postgresql+psycopg://blog@127.0.0.1:1/blog?password={SECRET}"),
])
def test_a_plaintext_password_in_the_config_is_refused_without_echoing_it(tmp_path, section, key, value):
    root = tmp_path / "site"
    sections = {"state": {"database": "state.db"}}
    sections.setdefault(section, {})[key] = value
    write_config(root, **sections)
    for command in (["build"], ["check"], ["run"], ["send"]):
        result = run_cli(root / "config.yaml", *command)
        assert result.returncode == 2, (command, result.stderr)
        assert f"{section}.{key}:" in result.stderr and "password" in result.stderr
        assert SECRET not in result.stdout + result.stderr
    assert sorted(p.name for p in root.iterdir()) == ["config.yaml", "content"]  # nothing written


def test_a_database_url_without_a_password_is_accepted(tmp_path):
    from publisher.config import load_config

    config = make_config(tmp_path / "site", state={"database": "postgresql://blog@127.0.0.1/blog"})
    assert load_config(config.path).state.database == "postgresql://blog@127.0.0.1/blog"


# --- a hostile blog repository: files a post names, read only inside the site ------------

_OPENED: list[str] | None = None  # paths opened while a test listens (audit hook below)


def _record_open(event: str, args: tuple) -> None:
    if _OPENED is not None and event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        _OPENED.append(os.fsdecode(args[0]))


sys.addaudithook(_record_open)  # audit hooks cannot be removed: this one listens only when asked


def opened_while(action) -> tuple[object, list[str]]:
    """action()'s result, and every path open() / os.open() was called with meanwhile."""
    global _OPENED
    _OPENED = []
    try:
        return action(), _OPENED
    finally:
        _OPENED = None


def hostile_site(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    """A site whose posts name files out of it: by '..', and through symlinks it commits
    (to a private file beside the site, to /etc/passwd), in every place a post can name a file:
    Markdown images, <img>/<source>/<video> src, srcset, front matter cover, an enclosure, a
    Liquid variable from a symlinked _config.yml, an Eleventy data file. Also a symlink inside
    the site pointing inside it, which must keep working. Returns the root and the secrets."""
    secrets = {"id_rsa": b"\x89PNG -----BEGIN OPENSSH PRIVATE KEY----- id_rsa",
               "cover": b"\x89PNG private cover bytes",
               "episode": b"ID3 private episode" * 100,
               "config": b"title: Site\nsecret_token: leaked-config-value-1234\n",
               "data": b'{"title": "leaked-data-title-5678", "description": "leaked-data-5678"}'}
    private = tmp_path / "secret"
    private.mkdir()
    (private / "id_rsa.png").write_bytes(secrets["id_rsa"])
    (private / "cover.png").write_bytes(secrets["cover"])
    (private / "episode.mp3").write_bytes(secrets["episode"])
    (private / "config.yml").write_bytes(secrets["config"])
    (private / "data.json").write_bytes(secrets["data"])
    config = make_config(tmp_path / "site")
    root = config.root
    blog = root / "content" / "blog"
    blog.mkdir(parents=True)
    (blog / "cover.png").symlink_to(private / "cover.png")
    (blog / "passwd.jpg").symlink_to("/etc/passwd")
    (blog / "episode.mp3").symlink_to(private / "episode.mp3")
    (root / "_config.yml").symlink_to(private / "config.yml")
    (blog / "blog.11tydata.json").symlink_to(private / "data.json")
    (blog / "img").mkdir()
    (blog / "img" / "real.png").write_bytes(b"\x89PNG a picture inside the site")
    (blog / "alias.png").symlink_to("img/real.png")  # inside -> inside: fine
    write_post(root, "blog/post.md", {
        "title": "Hostile", "pubDate": "2024-01-01", "cover": "./cover.png",
        "enclosure": "./episode.mp3", "tags": ["t"]}, body="""\
![key](../../../secret/id_rsa.png) ![cover](cover.png) ![pw](./passwd.jpg)

<img src="passwd.jpg" srcset="cover.png 2x, ../../../secret/id_rsa.png 3x">

<video src="../../../secret/id_rsa.png"><source src="./passwd.jpg"></video>

Token: {{ site.secret_token }}

![fine](alias.png)
""")
    return root, secrets


def test_a_post_cannot_make_the_build_read_or_publish_files_outside_the_site(tmp_path, caplog):
    root, secrets = hostile_site(tmp_path)
    config = load_config(root / "config.yaml")
    with caplog.at_level(logging.WARNING, logger="publisher"):
        report, opened = opened_while(lambda: pipeline.build(config, NOW))

    # Nothing outside the site was opened (an audit hook sees every open() and os.open()).
    site, outside = str(root.resolve()), str((tmp_path / "secret").resolve())
    assert [p for p in opened if os.path.realpath(p).startswith((outside, "/etc/passwd"))] == []

    # Nothing outside is in the output, under any name; the one image inside is copied.
    published = snapshot(config.output_dir)
    passwd = Path("/etc/passwd").read_bytes()
    for rel, data in published.items():
        for secret in (*secrets.values(), passwd, b"leaked-config-value-1234", b"leaked-data"):
            assert secret[:40] not in data, rel
    inside = hashlib.sha256(b"\x89PNG a picture inside the site").hexdigest()[:12]
    assert sorted(rel for rel in published if rel.startswith("media/")) == [f"media/{inside}-alias.png"]

    # No feed links to a copy that does not exist.
    for rel, data in published.items():
        for name in set(re.findall(rb"https://blog\.test\.example/(media/[^\"'\s<>&,)\\]+)", data)):
            assert os.fsdecode(name) in published, (rel, name)

    # The enclosure is not measured (no size given), and named; so is the symlinked
    # _config.yml; each image is named with the path the post gave.
    (item,) = json.loads(published["feed.json"])["items"]
    assert item["attachments"] == [{"url": "https://blog.test.example/blog/post/episode.mp3",
                                    "mime_type": "audio/mpeg"}]
    logged = [r.getMessage() for r in caplog.records if "outside the site folder" in r.getMessage()]
    assert logged == [
        f"content/blog/post.md: enclosure ./episode.mp3: length unknown: {root / 'content/blog/episode.mp3'}"
        " is outside the site folder",
        f"{root / '_config.yml'}: not read: it is outside the site folder (a symbolic link out of it)"], logged
    refused = [p for p in report.warnings if "outside the site folder" in p]
    assert refused == [
        "content/blog/post.md: image not copied: ../../../secret/id_rsa.png is outside the site folder",
        "content/blog/post.md: image not copied: cover.png is outside the site folder",
        "content/blog/post.md: image not copied: ./passwd.jpg is outside the site folder",
        "content/blog/post.md: image not copied: passwd.jpg is outside the site folder",
        "content/blog/post.md: image not copied: ./cover.png is outside the site folder",
    ], report.warnings


def test_an_eleventy_data_file_linked_out_of_the_site_is_not_read(tmp_path):
    (tmp_path / "secret.json").write_text('{"title": "leaked-title", "description": "leaked"}')
    config = make_config(tmp_path / "site", content={"dialect": "eleventy"})
    blog = config.root / "content" / "blog"
    blog.mkdir(parents=True)
    (blog / "blog.json").symlink_to(tmp_path / "secret.json")
    (blog / "ok.11tydata.json").write_text('{"description": "from the data file"}')
    write_post(config.root, "blog/post.md", {"title": "Post", "date": "2024-01-01"})
    write_post(config.root, "blog/ok.md", {"title": "Fine", "date": "2024-01-02"})
    report, opened = opened_while(lambda: pipeline.build(config, NOW))
    assert [p for p in opened if os.path.realpath(p) == str(tmp_path / "secret.json")] == []
    assert report.problems == ["content/blog/ok.md: skipped: data file blog.json is outside the site "
                               "folder (a symbolic link out of it)",
                               "content/blog/post.md: skipped: data file blog.json is outside the site "
                               "folder (a symbolic link out of it)"]
    assert b"leaked" not in b"".join(snapshot(config.output_dir).values())


def test_a_post_file_linked_out_of_the_site_is_never_read(site):
    """A blog repository can commit `content/x.md -> /home/ci/.secrets.md`: the build on the
    machine that builds the blog must not publish it. A link inside the site still works."""
    private = site.root.parent / "private.md"
    private.write_text("---\ntitle: Secret\npubDate: 2024-01-01\n---\nAPI_KEY=hunter2\n", encoding="utf-8")
    (site.content / "blog").mkdir()
    (site.content / "blog" / "leak.md").symlink_to(private)
    shared = site.root / "drafts" / "shared.md"
    shared.parent.mkdir()
    shared.write_text("---\ntitle: Shared\npubDate: 2024-01-02\n---\nInside the site.\n", encoding="utf-8")
    (site.content / "blog" / "shared.md").symlink_to(shared)
    report = pipeline.build(site.config())
    assert report.problems == [f"content/blog/leak.md: skipped: a symbolic link out of the site folder "
                               f"(to {private.resolve()}): not read"]
    feed = (site.root / "public" / "feed.json").read_text(encoding="utf-8")
    assert "hunter2" not in feed and "Secret" not in feed
    assert [item["title"] for item in json.loads(feed)["items"]] == ["Shared"]


# --- a hostile blog repository: what reading and building may cost (issue 25) ----------------

def test_a_yaml_alias_bomb_in_the_sites_files_is_refused_by_name(tmp_path):
    """Jekyll's _config.yml (the Liquid `site` variables), a post's front matter and
    config.yaml itself, each an 800-byte alias bomb expanding to 387 million values: build took
    4.5 GB for the first. Each is named; the build finishes within 1 GB and the other posts
    are published."""
    from reliability_helpers import billion_laughs, cli, run_limited

    config = make_config(tmp_path / "site")
    (config.root / "_config.yml").write_text("title: Bomb\n" + billion_laughs(), encoding="utf-8")
    write_post(config.root, "uses-site.md", {"title": "Uses site", "pubDate": "2024-01-01"},
               body="Hello {{ site.a8 }} and {{ site.title }}.\n")
    write_post(config.root, "bomb.md", "title: Bomb\npubDate: 2024-01-02\n" + billion_laughs())
    result = run_limited(cli(config.path, "build"))
    assert "Traceback" not in result.stderr and result.returncode == 1, result.stderr[-2000:]
    lines = result.stderr.splitlines()
    assert (f"publisher: WARNING: {config.root / '_config.yml'}: not read: its aliases (*name) expand "
            "it to more than 100,000 values beyond those written (a YAML alias bomb?)") in lines
    assert ("content/bomb.md: skipped: front matter refused: its aliases (*name) expand it to more "
            "than 100,000 values beyond those written (a YAML alias bomb?)") in lines
    assert b"Uses site" in (config.output_dir / "rss.xml").read_bytes()

    config.path.write_text(config.path.read_text() + "x:\n" + "".join(
        "  " + line + "\n" for line in billion_laughs().splitlines()), encoding="utf-8")
    result = run_limited(cli(config.path, "check"))
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert result.stderr.strip() == (
        f"publisher: config error: {config.path}: refused: its aliases (*name) expand it to more than "
        "100,000 values beyond "
        "those written (a YAML alias bomb?)")


def test_front_matter_urls_that_leave_are_checked(tmp_path):
    """A front matter image reaches media:content, the digest's and the archive's <img src>
    (on the blog's own domain): a script URL there refuses the post, by name. An explicit
    url with dot segments is published as a browser resolves it, or refused if it climbs out
    of the site."""
    config = make_config(tmp_path / "site")
    write_post(config.root, "img.md", {"title": "Img", "pubDate": "2024-01-01", "image": "javascript:alert(1)"})
    write_post(config.root, "hero.md", {"title": "Hero", "pubDate": "2024-01-02",
                                        "heroImage": "java\nscript:alert(1)"})
    write_post(config.root, "cover.md", {"title": "Cover", "pubDate": "2024-01-03",
                                         "cover": {"src": "data:text/html,<script>alert(1)</script>"}})
    write_post(config.root, "dots.md", {"title": "Dots", "pubDate": "2024-01-04", "url": "/../../x/./y/"})
    write_post(config.root, "fine.md", {"title": "Fine", "pubDate": "2024-01-05", "image": "https://cdn.test.example/a.png"})
    result = run_cli(config.path, "build")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert sorted(result.stderr.splitlines()) == [
        "content/cover.md: skipped: 'cover' should be an http(s) URL or a path, got "
        "'data:text/html,<script>alert(1)</script>'",
        "content/hero.md: skipped: 'heroImage' should be an http(s) URL or a path, got 'java\\nscript:alert(1)'",
        "content/img.md: skipped: 'image' should be an http(s) URL or a path, got 'javascript:alert(1)'",
    ]
    feeds = b"".join(snapshot(config.output_dir).values())
    assert b"script:" not in feeds and b"data:" not in feeds and b"/../" not in feeds
    assert b"https://blog.test.example/x/y/" in feeds and b"https://cdn.test.example/a.png" in feeds

    below = make_config(tmp_path / "below", site={"url": "https://blog.test.example/blog"})
    write_post(below.root, "up.md", {"title": "Up", "pubDate": "2024-01-01", "url": "/../x/"})
    write_post(below.root, "in.md", {"title": "In", "pubDate": "2024-01-02", "url": "/a/../b/"})
    result = run_cli(below.path, "build")
    assert result.stderr.splitlines() == [
        "content/up.md: skipped: 'url' leads out of the site (https://blog.test.example/blog): '/blog/../x/'"]
    assert b"https://blog.test.example/blog/b/" in (below.output_dir / "rss.xml").read_bytes()


def test_what_one_post_may_ask_for_is_capped_by_name(tmp_path):
    """Every tag makes three feeds listing every tag of its posts: 4,000 tags on one post
    wrote 12,003 files (1.3 GB). Past 100 tags (or categories), or 2 MB, a post is skipped
    by name; 100 tags are still a post."""
    from reliability_helpers import cli, run_limited

    config = make_config(tmp_path / "site")
    write_post(config.root, "many.md", {"title": "Many", "pubDate": "2024-01-01",
                                        "tags": [f"tag {i}" for i in range(500)]})
    write_post(config.root, "cats.md", {"title": "Cats", "pubDate": "2024-01-02",
                                        "categories": ", ".join(f"c{i}" for i in range(101))})
    write_post(config.root, "big.md", {"title": "Big", "pubDate": "2024-01-03"},
               body="A long line of text.\n" * 150_000)
    write_post(config.root, "hundred.md", {"title": "Hundred", "pubDate": "2024-01-04",
                                           "tags": [f"t{i}" for i in range(100)]})
    result = run_limited(cli(config.path, "build"))
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert sorted(result.stderr.splitlines()) == [
        "content/big.md: skipped: 3.0 MB: a post may be at most 2 MB",
        "content/cats.md: skipped: 101 categories: a post may have at most 100",
        "content/many.md: skipped: 500 tags: a post may have at most 100",
    ]
    written = [p for p in config.output_dir.rglob("*") if p.is_file()]
    assert len(written) == 3 + 3 * 100  # the site's feeds, and the hundred tags' of the one post


def test_a_deeply_nested_post_builds_in_seconds(tmp_path):
    """A 200 KB post of nested '>' (200,000 blockquotes) took 5.5 minutes of CPU to sanitise,
    100,000 nested <div>s 23 s: both are published, their nesting flattened past 256 levels
    as browsers flatten it, within a minute and 1 GB."""
    from reliability_helpers import cli, run_limited

    config = make_config(tmp_path / "site")
    write_post(config.root, "quotes.md", {"title": "Quotes", "pubDate": "2024-01-01"},
               body=">" * 200_000 + " deep quote\n")
    write_post(config.root, "divs.md", {"title": "Divs", "pubDate": "2024-01-02"},
               body="<div>" * 100_000 + "deep div" + "</div>" * 100_000 + "\n")
    result = run_limited(cli(config.path, "build"), timeout=60)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-2000:]
    feed = (config.output_dir / "feed.json").read_text(encoding="utf-8")
    assert "deep quote" in feed and "deep div" in feed
    result = run_limited(cli(config.path, "check"), timeout=60)
    assert "content/divs.md: made safe for readers: removed nesting past 256 levels (flattened)" in result.stdout
