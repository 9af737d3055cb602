"""Bad config: every key of the schema, made wrong in turn (a value of the wrong type, then a
value of the right type that is still wrong), stops every command with exit status 2 and a
message naming the key, what was expected and what was found, before anything is written.
Generated values (hypothesis) for any key never make load_config fail any other way."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sites import site_data, write_post

from publisher import config as config_module
from publisher.cli import main
from publisher.config import Config, load_config
from publisher.errors import ConfigError


def schema_keys() -> list[str]:
    """Every leaf key of the schema, dotted, read from the Config dataclasses themselves."""
    keys = []

    def walk(cls, prefix):
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            name = "from" if f.name == "from_" else f.name
            kind = hints[f.name]
            if dataclasses.is_dataclass(kind):
                walk(kind, f"{prefix}{name}.")
            else:
                keys.append(prefix + name)

    hints = typing.get_type_hints(Config)
    for f in dataclasses.fields(Config):
        if dataclasses.is_dataclass(hints[f.name]):
            walk(hints[f.name], f.name + ".")
    return keys


# A value of the right type that is still wrong, per key; None: any text is valid there, so
# only the wrong type can be tested.
WRONG_VALUE = {
    "site.title": "   ",
    "site.url": "blog.example.org",
    "site.description": None,
    "site.language": "",
    "site.icon": "javascript:alert(1)",
    "site.logo": "ftp://blog.example.org/logo.png",
    "site.author.name": None,
    "site.author.email": "not-an-address",
    "content.dir": "",
    "content.permalink": "/blog/{slug}/{",
    "content.dialect": "wordpress",
    "content.exclude": ["drafts/*", ""],
    "content.strict": "yes",
    "content.ignore_warnings": [""],
    "content.markdown": "kramdown",
    "content.markdown_extensions": [""],
    "feeds.output_dir": "",
    "feeds.limit": -1,
    "feeds.websub_hub": ["https://hub.example.org/", "ftp://hub.example.org/"],
    "feeds.archive": "yes",
    "feeds.archive_size": 0,
    "feeds.archive_tags": "no",
    "feeds.podcast": None,
    "newsletter.from": "Blog <not an address>",
    "newsletter.schedule": "61 9 * * 1",
    "newsletter.timezone": "Mars/Olympus_Mons",
    "newsletter.featured_alert": "yes",
    "newsletter.archive": "no",
    "newsletter.web_url": "http://[broken",
    "newsletter.subject": "",
    "newsletter.list_id": None,
    "newsletter.max_html_kb": 5,
    "newsletter.unsubscribe_mailto": "unsubscribe at example.org",
    "newsletter.bounce_address": "bounces@blog.example.org",
    "newsletter.bounce_mailbox": "pop3://bounces@mail.example.org",
    "newsletter.bounce_processed": "archive",
    "newsletter.bounce_folder": "a/b",
    "newsletter.soft_bounce_limit": 0,
    "newsletter.webhook_user": "user:password",
    "newsletter.sns_certificate": None,
    "newsletter.sns_topic_arn": "bounces",
    "newsletter.sendgrid_public_key": "not base64!",
    "newsletter.confirm_per_client": -1,
    "newsletter.confirm_per_hour": -1,
    "newsletter.form_origins": ["blog.example.org"],
    "newsletter.topics": ["Python", "python"],
    "newsletter.topics_min_posts": 0,
    "smtp.host": "",
    "smtp.port": 0,
    "smtp.security": "tls",
    "smtp.username": None,
    "smtp.verify_tls": "no",
    "smtp.ca_file": None,
    "smtp.timeout": 0,
    "smtp.connections": 0,
    "smtp.rate_limit": -1,
    "smtp.max_attempts": 0,
    "smtp.retry_base_delay": -2,
    "smtp.dkim.key_file": None,
    "smtp.dkim.selector": None,
    "smtp.dkim.domain": None,
    "state.database": "",
    "schedule.build_every": 0,
}
def site_with(tmp_path: Path, key: str, value) -> Path:
    root = tmp_path / "site"
    (root / "content").mkdir(parents=True, exist_ok=True)
    write_post(root, "a.md", {"title": "A", "pubDate": "2024-01-01"})
    data = site_data(state={"database": "state.db"})
    *sections, leaf = key.split(".")
    node = data
    for section in sections:
        node = node.setdefault(section, {})
    node[leaf] = value
    (root / "config.yaml").write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return root


def written(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.name not in ("config.yaml", "content"))


def test_the_table_covers_every_key_of_the_schema():
    assert sorted(WRONG_VALUE) == sorted(schema_keys())


COMMANDS = [["build"], ["check"], ["run"], ["send"], ["preview"], ["subscribers", "list"]]


@pytest.mark.parametrize("key", schema_keys())
@pytest.mark.parametrize("kind", ["type", "value"])
def test_every_key_wrong_in_turn_is_exit_2_naming_the_key(tmp_path, key, kind):
    value = {"oops": [1, 2]} if kind == "type" else WRONG_VALUE[key]
    if value is None:
        pytest.skip(f"every string is a valid {key}")
    root = site_with(tmp_path, key, value)
    runner = CliRunner()
    for command in COMMANDS[:1] if kind == "type" else COMMANDS:
        result = runner.invoke(main, ["--config", str(root / "config.yaml"), *command])
        assert result.exit_code == 2, (command, result.exit_code, result.output, result.exception)
        assert f"config.yaml: {key}: expected" in result.stderr, (command, result.stderr)
        assert "got " in result.stderr and result.stdout == ""
        assert written(root) == [], (command, written(root))


def test_every_key_wrong_at_once_is_one_message_naming_them_all(tmp_path):
    root = tmp_path / "site"
    (root / "content").mkdir(parents=True)
    data: dict = {}
    for key in schema_keys():
        *sections, leaf = key.split(".")
        node = data
        for section in sections:
            node = node.setdefault(section, {})
        node[leaf] = {"oops": 1}
    (root / "config.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    result = CliRunner().invoke(main, ["--config", str(root / "config.yaml"), "build"])
    assert result.exit_code == 2
    for key in schema_keys():
        assert f"config.yaml: {key}: expected" in result.stderr, key
    assert written(root) == []


@pytest.mark.parametrize("text, named", [
    ("site: {title: T, url: 'https://x.example'}\nsmtp: {host: h, pasword: x}\n", "smtp.pasword: unknown key"),
    ("site: {title: T, url: 'https://x.example'}\nnewsleter: {}\n", "newsleter: unknown section"),
    ("site: [1, 2]\n", "site: expected a mapping of keys"),
    ("- just\n- a list\n", "expected a mapping of sections"),
    ("site: {title: T\n", "not valid YAML"),
    ("feeds: {limit: 5}\n", "site: required section, but missing"),
    ("site: {url: 'https://x.example'}\n", "site.title: required, but missing"),
    ("site: {title: T, url: 'https://x.example', author: 'me'}\n", "site.author: expected a mapping"),
])
def test_structural_mistakes_are_exit_2_naming_the_place(tmp_path, text, named):
    root = tmp_path / "site"
    (root / "content").mkdir(parents=True)
    (root / "config.yaml").write_text(text, encoding="utf-8")
    result = CliRunner().invoke(main, ["--config", str(root / "config.yaml"), "build"])
    assert result.exit_code == 2 and named in result.stderr, result.stderr
    assert written(root) == []


def test_a_config_file_that_is_not_utf8_is_exit_2(tmp_path):
    root = tmp_path / "site"
    (root / "content").mkdir(parents=True)
    (root / "config.yaml").write_bytes(b"site: {title: Caf\xe9, url: 'https://x.example'}\n")
    result = CliRunner().invoke(main, ["--config", str(root / "config.yaml"), "build"])
    assert result.exit_code == 2 and "not UTF-8" in result.stderr


scalar = st.one_of(st.text(st.characters(blacklist_categories=("Cs",)), max_size=40), st.integers(),
                   st.floats(allow_nan=True), st.booleans(), st.none(),
                   st.sampled_from(["http://[", "{slug}{", "*/0 * * * *", "0 9 * * 8", "60 * * * *",
                                    "0 9 31 2 *", "@daily", "0 9 * * mon-", "UTC+1", "../..",
                                    "a@b", "x <y@z>", "=?utf-8?q?a?= <a@b.c>", "\x00", "-1"]))
values = st.one_of(scalar, st.lists(scalar, max_size=2), st.dictionaries(st.text(max_size=5), scalar, max_size=2))


@settings(derandomize=True, database=None, max_examples=400, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(changes=st.dictionaries(st.sampled_from(schema_keys()), values, min_size=1, max_size=4))
def test_generated_values_give_a_config_or_a_config_error_never_a_crash(tmp_path, changes):
    data = site_data(state={"database": "state.db"})
    for key, value in changes.items():
        *sections, leaf = key.split(".")
        node = data
        for section in sections:
            node = node.setdefault(section, {})
        node[leaf] = value
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    try:
        config = load_config(path)
    except ConfigError as e:
        for line in str(e).splitlines():
            assert line.startswith(f"{path}: "), line
        return
    # Accepted: then what build does with it must work too (a permalink, a schedule...).
    from publisher.cron import cron_trigger
    from publisher.content import permalink

    from datetime import datetime, timezone

    permalink(config, "slug", datetime(2024, 1, 1, tzinfo=timezone.utc))
    cron_trigger(config.newsletter.schedule, config.tz)


# --- keys whose wrong values only show when they are used ------------------------------------

SEND_TIME = [
    ("smtp.ca_file", "/nonexistent/ca.pem", {"security": "starttls"}),
    ("smtp.dkim.key_file", "missing-key.pem", {"dkim": {"key_file": "missing-key.pem", "selector": "s"}}),
    ("newsletter.list_id", "not a list id", {}),
    ("newsletter.subject", "{{ posts[0].title ", {}),
    ("smtp.username", "news", {"username": "news"}),  # without PUBLISHER_SMTP_PASSWORD
]


def _send_site(tmp_path, key, value, smtp_extra, monkeypatch):
    from datetime import datetime, timedelta, timezone

    from publisher import pipeline
    from publisher.state import State

    monkeypatch.delenv("PUBLISHER_SMTP_PASSWORD", raising=False)
    root = tmp_path / "site"
    (root / "content").mkdir(parents=True)
    data = site_data(state={"database": "state.db"}, smtp={"host": "127.0.0.1", "port": 1, **smtp_extra})
    if key.startswith("newsletter."):
        data["newsletter"][key.split(".", 1)[1]] = value
    if key == "smtp.ca_file":
        data["smtp"]["ca_file"] = value
    (root / "config.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    config = load_config(root / "config.yaml")
    week_ago = datetime.now(timezone.utc) - timedelta(days=7)
    write_post(root, "old.md", {"title": "Old", "pubDate": "2024-01-01"})
    pipeline.run_once(config, week_ago)
    state = State(config.database_url)
    state.add_subscribers([("reader@example.org", "")])
    write_post(root, "new.md", {"title": "New", "pubDate": (week_ago + timedelta(hours=1)).isoformat()})
    return root, state


@pytest.mark.parametrize("key, value, smtp_extra", SEND_TIME, ids=[k for k, _v, _s in SEND_TIME])
def test_keys_checked_when_mail_is_sent_are_exit_2_naming_the_key(tmp_path, monkeypatch, key, value, smtp_extra):
    root, state = _send_site(tmp_path, key, value, smtp_extra, monkeypatch)
    try:
        result = CliRunner().invoke(main, ["--config", str(root / "config.yaml"), "send"])
        assert result.exit_code == 2, (result.exit_code, result.output)
        assert key in result.stderr and "Traceback" not in result.output
    finally:
        state.close()


# Found here: these keys were first checked by delivery.deliver, after the digest had been
# recorded (posts marked announced, deliveries owed).
@pytest.mark.parametrize("key, value, smtp_extra", SEND_TIME[:2] + SEND_TIME[4:],
                         ids=[k for k, _v, _s in SEND_TIME[:2] + SEND_TIME[4:]])
def test_a_send_time_config_error_records_nothing(tmp_path, monkeypatch, key, value, smtp_extra):
    root, state = _send_site(tmp_path, key, value, smtp_extra, monkeypatch)
    try:
        CliRunner().invoke(main, ["--config", str(root / "config.yaml"), "send"])
        assert state.open_digests() == [] and state.unannounced_post_ids() != []
    finally:
        state.close()


# Found here: `publisher check` said "config OK" for all of these.
@pytest.mark.parametrize("key, value, smtp_extra", SEND_TIME[:4], ids=[k for k, _v, _s in SEND_TIME[:4]])
def test_check_reports_keys_that_would_fail_at_send_time(tmp_path, monkeypatch, key, value, smtp_extra):
    root, state = _send_site(tmp_path, key, value, smtp_extra, monkeypatch)
    state.close()
    result = CliRunner().invoke(main, ["--config", str(root / "config.yaml"), "check"])
    assert result.exit_code == 2 and key in result.stderr, result.output


def test_schema_module_is_the_one_tested():
    # If config.py grows a section, schema_keys() sees it and the table test fails first.
    assert set(k.split(".")[0] for k in schema_keys()) == set(config_module._SECTIONS)
