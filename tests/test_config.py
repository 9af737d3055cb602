from __future__ import annotations

import textwrap

import pytest

from publisher.config import describe_schema, load_config
from publisher.errors import ConfigError

BASE = """\
site:
  title: "T"
  url: "https://blog.example.org"
"""


def write(tmp_path, text):
    path = tmp_path / "config.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def error_of(tmp_path, text) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    assert info.value.exit_status == 2
    return str(info.value)


def test_minimal_config_gets_documented_defaults(tmp_path):
    config = load_config(write(tmp_path, BASE))
    assert config.site.url == "https://blog.example.org"
    assert config.feeds.limit == 20
    assert config.content.permalink == "/blog/{slug}/"
    assert config.newsletter.schedule == "0 9 * * 1"
    assert config.web_url == "https://blog.example.org/newsletter"
    assert config.smtp.host == "127.0.0.1"
    assert config.smtp.verify_tls is True


def test_relative_paths_resolve_against_config_folder_not_cwd(tmp_path, monkeypatch):
    sub = tmp_path / "site"
    sub.mkdir()
    path = write(sub, BASE + "content: {dir: posts}\nfeeds: {output_dir: out}\n")
    monkeypatch.chdir(tmp_path)
    config = load_config(path.relative_to(tmp_path))
    assert config.content_dir == sub.resolve() / "posts"
    assert config.output_dir == sub.resolve() / "out"
    assert config.database_url == "sqlite:///" + str(sub.resolve() / "state.db")


def test_postgresql_url_passes_through(tmp_path):
    config = load_config(write(tmp_path, BASE + "state: {database: 'postgresql://u@127.0.0.1/db'}\n"))
    assert config.database_url == "postgresql://u@127.0.0.1/db"


@pytest.mark.parametrize(
    "extra, expected",
    [
        ("smtp: {port: abc}\n", "smtp.port: expected an integer >= 1, got 'abc'"),
        ("smtp: {port: true}\n", "smtp.port: expected an integer >= 1, got true"),
        ("smtp: {security: tls}\n", "smtp.security: expected one of none, starttls, ssl, got 'tls'"),
        ("smtp: {hots: x}\n", "smtp.hots: unknown key"),
        ("smtp: {password: hunter2}\n", "smtp.password: passwords are never read from config files"),
        ("feeds: {limit: -1}\n", "feeds.limit: expected an integer >= 0, got -1"),
        ("newsletter: {schedule: 'every monday'}\n", "newsletter.schedule: expected a 5-field cron string"),
        ("newsletter: {schedule: '0 25 * * *'}\n", "newsletter.schedule: expected a 5-field cron string"),
        ("newsletter: {timezone: Mars/Olympus}\n", "newsletter.timezone: expected an IANA time zone"),
        ("newsletter: {featured_alert: 'yes'}\n", "newsletter.featured_alert: expected true or false, got 'yes'"),
        ("newsletter: {from: 'nobody'}\n", "newsletter.from: expected an address"),
        ("content: {permalink: 'blog/{slug}'}\n", "content.permalink: expected a path starting with '/'"),
        ("content: {permalink: '/blog/{name}/'}\n", "content.permalink: expected only the placeholders"),
        ("content: {permalink: '/blog/{year}/'}\n", "content.permalink: expected a path containing {slug}, {stem}, {title}, {path} or {contentbasename}"),
        ("feeds: [1, 2]\n", "feeds: expected a mapping of keys, got a list"),
        ("bogus: {}\n", "bogus: unknown section"),
        ("schedule: {build_every: 0}\n", "schedule.build_every: expected an integer >= 1, got 0"),
        ("smtp: {connections: 0}\n", "smtp.connections: expected auto or an integer >= 1, got 0"),
        ("smtp: {connections: many}\n", "smtp.connections: expected auto or an integer >= 1, got 'many'"),
        ("smtp: {connections: '2'}\n", "smtp.connections: expected auto or an integer >= 1, got '2'"),
        ("smtp: {connections: true}\n", "smtp.connections: expected auto or an integer >= 1, got true"),
    ],
)
def test_each_bad_key_is_named_with_expected_and_found(tmp_path, extra, expected):
    message = error_of(tmp_path, BASE + extra)
    assert expected in message
    assert str(tmp_path / "config.yaml") in message


def test_smtp_connections_is_auto_by_default_and_takes_auto_or_a_number(tmp_path):
    assert load_config(write(tmp_path, BASE)).smtp.connections == "auto"
    assert load_config(write(tmp_path, BASE + "smtp: {connections: auto}\n")).smtp.connections == "auto"
    assert load_config(write(tmp_path, BASE + "smtp: {connections: 3}\n")).smtp.connections == 3


def test_site_url_must_be_absolute(tmp_path):
    message = error_of(tmp_path, 'site: {title: T, url: "blog.example.org"}\n')
    assert "site.url: expected an absolute http(s) URL" in message


def test_missing_required_keys(tmp_path):
    assert "site: required section, but missing" in error_of(tmp_path, "feeds: {limit: 3}\n")
    message = error_of(tmp_path, "site: {description: x}\n")
    assert "site.title: required, but missing" in message
    assert "site.url: required, but missing" in message


def test_every_error_is_reported_at_once(tmp_path):
    message = error_of(tmp_path, BASE + "smtp: {port: x, security: y}\nfeeds: {limit: z}\n")
    assert len(message.splitlines()) == 3


def test_broken_yaml_names_the_line(tmp_path):
    message = error_of(tmp_path, 'site:\n  title: "unclosed\n  url: x\n')
    assert "not valid YAML" in message
    assert "line" in message


def test_missing_file_hint(tmp_path):
    with pytest.raises(ConfigError, match="no such file.*--config"):
        load_config(tmp_path / "nope.yaml")


def test_bom_and_crlf_config_is_read(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + BASE.replace("\n", "\r\n").encode())
    assert load_config(path).site.title == "T"


def test_schema_description_documents_every_section():
    text = describe_schema()
    for key in ("site:", "url:", "permalink:", "limit:", "featured_alert:", "security:", "database:", "build_every:"):
        assert key in text
    assert "# " in text
