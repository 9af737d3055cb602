"""The idle stamp (idle.py): a `publisher run` with nothing to do answers from the stamp,
without opening the state database through SQLAlchemy, and says exactly what a full run
would have said; anything that could change the outcome sends it down the full path.

Real files, a real SQLite state, a real SMTP server on 127.0.0.1, an injected clock."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest
from sites import PG_BASE
from smtp_helpers import SmtpServer

from publisher import cache, cache_sqlite3, idle, pipeline
from publisher.config import load_config
from publisher.errors import ConfigError
from publisher.state import State

MON = datetime(2025, 1, 6, 9, 0, tzinfo=timezone.utc)  # schedule "0 9 * * 1" fires here
TUE = MON + timedelta(days=1)

sqlite_only = pytest.mark.skipif(bool(PG_BASE), reason="the idle stamp is for SQLite only")


class _FullPath(Exception):
    pass


@pytest.fixture
def blog(site, server):
    """A site with two subscribers, a first run (the baseline) and a second run that found
    nothing to do, so the stamp is in place."""
    site.write_config(smtp={**server.smtp_settings(), "retry_base_delay": 0})
    state = State(site.config().database_url)
    state.add_subscribers([("ann@example.org", "Ann"), ("bob@example.org", "Bob")])
    state.close()
    site.post("old.md", "title: Old & <post>\npubDate: 2024-12-01\ntags: [a, b]")
    pipeline.run_once(site.config(), TUE)
    site.idle_report = pipeline.run_once(site.config(), TUE + timedelta(minutes=5))
    return site


def full_path_forbidden(monkeypatch):
    """Make any run that opens the state database fail: only the idle shortcut gets through."""

    def refuse(config):
        raise _FullPath()

    monkeypatch.setattr(pipeline, "open_state", refuse)


def stamp_of(site) -> str | None:
    state = State(site.config().database_url)
    try:
        return state.get_meta(cache_sqlite3.IDLE_STAMP_KEY)
    finally:
        state.close()


@sqlite_only
def test_a_second_idle_run_answers_from_the_stamp_with_the_same_report(blog, monkeypatch):
    assert stamp_of(blog) is not None
    full_path_forbidden(monkeypatch)
    report = pipeline.run_once(blog.config(), TUE + timedelta(minutes=10))
    assert report.lines == blog.idle_report.lines
    assert report.lines[-1].startswith("nothing new to mail (next digest due ")
    assert report.lines[0].startswith("feeds: 1 post, 0 files written, 9 unchanged")
    assert report.exit_status == 0


@sqlite_only
def test_skipped_posts_are_reported_again_with_exit_status_1(blog, monkeypatch):
    blog.post("broken.md", "title: [unclosed\npubDate: 2024-12-02")
    first = pipeline.run_once(blog.config(), TUE + timedelta(minutes=10))
    second = pipeline.run_once(blog.config(), TUE + timedelta(minutes=15))  # writes the stamp
    full_path_forbidden(monkeypatch)
    third = pipeline.run_once(blog.config(), TUE + timedelta(minutes=20))
    assert len(first.problems) == 1 and "content/broken.md: skipped" in first.problems[0]
    assert third.problems == second.problems == first.problems
    assert third.lines == second.lines
    assert third.exit_status == 1


@sqlite_only
@pytest.mark.parametrize("change", ["new post", "edited post", "deleted post", "feed deleted",
                                    "feed edited", "config changed", "code changed"])
def test_any_change_takes_the_full_path(blog, server, monkeypatch, change):
    later = TUE + timedelta(minutes=10)
    feed = blog.root / "public" / "rss.xml"
    if change == "new post":
        blog.post("new.md", "title: New\npubDate: 2025-01-07")
    elif change == "edited post":
        with open(blog.content / "old.md", "a", encoding="utf-8") as f:
            f.write("One more line.\n")
    elif change == "deleted post":
        (blog.content / "old.md").unlink()
    elif change == "feed deleted":
        feed.unlink()
    elif change == "feed edited":
        feed.write_bytes(feed.read_bytes() + b"\n")
    elif change == "config changed":
        blog.write_config(smtp={**server.smtp_settings(), "retry_base_delay": 0},
                          feeds={"output_dir": "public", "limit": 5})
    elif change == "code changed":
        monkeypatch.setattr(idle, "_CODE_SIGNATURE", "another version")
    assert idle.still_idle(blog.config(), later) is None
    report = pipeline.run_once(blog.config(), later)
    if change in ("feed deleted", "feed edited"):
        assert feed.exists() and b"<title>Old &#x26; &#x3C;post&gt;</title>" in feed.read_bytes()
        assert "1 file written" in report.lines[0]


@sqlite_only
def test_the_stamp_expires_when_the_schedule_fires(blog, server, monkeypatch):
    # A post the last digest did not carry: it waits for Monday's firing.
    blog.post("new.md", "title: Waiting\npubDate: 2025-01-07T12:00:00Z")
    pipeline.run_once(blog.config(), TUE + timedelta(hours=12))
    waiting = pipeline.run_once(blog.config(), TUE + timedelta(hours=13))
    assert waiting.lines[-1] == ("1 post waiting for the next digest, due Mon 2025-01-13 09:00 UTC "
                                 "(0 9 * * 1)")
    next_monday = MON + timedelta(days=7)
    assert idle.still_idle(blog.config(), next_monday - timedelta(seconds=1)) is not None
    assert idle.still_idle(blog.config(), next_monday) is None
    pipeline.run_once(blog.config(), next_monday + timedelta(minutes=1))
    assert sorted(m.rcpt for m in server.received) == ["ann@example.org", "bob@example.org"]


@sqlite_only
def test_the_stamp_expires_when_a_future_post_comes_due(blog):
    blog.post("later.md", "title: Later\npubDate: 2025-01-08T10:00:00Z")
    pipeline.run_once(blog.config(), TUE + timedelta(minutes=10))
    pipeline.run_once(blog.config(), TUE + timedelta(minutes=15))
    due = datetime(2025, 1, 8, 10, 0, tzinfo=timezone.utc)
    assert idle.still_idle(blog.config(), due - timedelta(seconds=1)) is not None
    assert idle.still_idle(blog.config(), due) is None
    report = pipeline.run_once(blog.config(), due + timedelta(minutes=1))
    assert "0 files written" not in report.lines[0]
    assert b"Later" in (blog.root / "public" / "rss.xml").read_bytes()


@sqlite_only
def test_the_stamp_expires_when_a_post_expires(blog):
    """Hugo's expiryDate: the post leaves the feeds at that instant, so the stamp ends then."""
    blog.post("brief.md", "title: Brief\npubDate: 2025-01-06\nexpiryDate: 2025-01-09T12:00:00Z")
    pipeline.run_once(blog.config(), TUE + timedelta(minutes=10))
    pipeline.run_once(blog.config(), TUE + timedelta(minutes=15))
    assert b"Brief" in (blog.root / "public" / "rss.xml").read_bytes()
    expiry = datetime(2025, 1, 9, 12, 0, tzinfo=timezone.utc)
    assert idle.still_idle(blog.config(), expiry - timedelta(seconds=1)) is not None
    assert idle.still_idle(blog.config(), expiry) is None
    report = pipeline.run_once(blog.config(), expiry + timedelta(minutes=1))
    assert "0 files written" not in report.lines[0]
    assert b"Brief" not in (blog.root / "public" / "rss.xml").read_bytes()


@sqlite_only
def test_a_changed_data_file_the_dialect_reads_takes_the_full_path(blog, server):
    """Jekyll's {{ site.x }} comes from _config.yml: an edit there reaches the feed on the
    next run, as an edited post would."""
    blog.write_config(smtp={**server.smtp_settings(), "retry_base_delay": 0},
                      content={"dialect": "jekyll"})
    (blog.root / "_config.yml").write_text("title: T\nrepository: ana/blog\n", encoding="utf-8")
    blog.post("2024-12-05-liquid.md", "title: Liquid\ndate: 2024-12-05",
              "Source: https://github.com/{{ site.repository }}\n")
    later = TUE + timedelta(minutes=10)
    pipeline.run_once(blog.config(), later)
    pipeline.run_once(blog.config(), later + timedelta(minutes=5))
    assert idle.still_idle(blog.config(), later + timedelta(minutes=10)) is not None
    (blog.root / "_config.yml").write_text("title: T\nrepository: ana/new-blog\n", encoding="utf-8")
    assert idle.still_idle(blog.config(), later + timedelta(minutes=10)) is None
    pipeline.run_once(blog.config(), later + timedelta(minutes=10))
    rss = (blog.root / "public" / "rss.xml").read_bytes()
    assert b"ana/new-blog" in rss and b"ana/blog<" not in rss


@sqlite_only
@pytest.mark.parametrize("dialect", ["eleventy", "hugo"])
def test_what_the_engine_adds_to_the_walk_is_watched(blog, server, dialect):
    """The stamp keeps what the site's engine adds to the walk (idle.stamp): Hugo's posts in
    HTML are walked too, and Eleventy's data files, which its fingerprint reads, are read
    again on every check."""
    blog.write_config(smtp={**server.smtp_settings(), "retry_base_delay": 0},
                      content={"dialect": dialect, "permalink": "/blog/{slug}/"})
    data = blog.content / "content.11tydata.json"
    if dialect == "eleventy":
        data.write_text('{"tags": ["posts"]}', encoding="utf-8")
    later = TUE + timedelta(minutes=10)
    pipeline.run_once(blog.config(), later)
    pipeline.run_once(blog.config(), later + timedelta(minutes=5))
    assert idle.still_idle(blog.config(), later + timedelta(minutes=10)) is not None
    if dialect == "eleventy":
        data.write_text('{"tags": ["articles"]}', encoding="utf-8")
        changed = blog.root / "public" / "tags" / "articles" / "rss.xml"
    else:
        (blog.content / "page.html").write_text(
            "---\ntitle: In HTML\ndate: 2024-12-03\n---\n<p>Hi.</p>\n", encoding="utf-8")
        changed = blog.root / "public" / "rss.xml"
    assert idle.still_idle(blog.config(), later + timedelta(minutes=10)) is None
    pipeline.run_once(blog.config(), later + timedelta(minutes=10))
    assert changed.exists()
    if dialect == "hugo":
        assert b"In HTML" in changed.read_bytes()


@sqlite_only
def test_a_digest_recorded_elsewhere_removes_the_stamp_and_is_delivered(blog, server):
    """A `publisher send` that recorded a digest and was killed before mailing anyone: the
    next cron run must finish it, not answer from the stamp."""
    state = State(blog.config().database_url)
    state.create_digest(kind="digest", subject="Interrupted", html="<p>hi</p>", text="hi",
                        post_ids=[], now=TUE + timedelta(minutes=6))
    state.close()
    assert stamp_of(blog) is None
    report = pipeline.run_once(blog.config(), TUE + timedelta(minutes=10))
    assert sorted(m.rcpt for m in server.received) == ["ann@example.org", "bob@example.org"]
    assert any("2 sent" in line for line in report.lines)


@sqlite_only
def test_no_stamp_while_mail_is_owed(blog, server):
    state = State(blog.config().database_url)
    state.create_digest(kind="digest", subject="Owed", html="<p>hi</p>", text="hi",
                        post_ids=[], now=TUE + timedelta(minutes=6))
    assert state.save_idle_stamp("{}") is False
    assert state.get_meta(cache_sqlite3.IDLE_STAMP_KEY) is None
    state.close()


@sqlite_only
def test_a_new_state_database_takes_the_full_path(blog, monkeypatch):
    for suffix in ("", "-wal", "-shm"):
        path = blog.root / f"state.db{suffix}"
        if path.exists():
            path.unlink()
    assert idle.still_idle(blog.config(), TUE + timedelta(minutes=10)) is None
    report = pipeline.run_once(blog.config(), TUE + timedelta(minutes=10))
    assert report.lines[0].startswith("first run:")


@pytest.mark.skipif(not PG_BASE, reason="needs PUBLISHER_TEST_POSTGRES")
def test_postgresql_sites_always_take_the_full_path(site):
    pipeline.run_once(site.config(), TUE)
    pipeline.run_once(site.config(), TUE + timedelta(minutes=5))
    assert stamp_of(site) is None
    assert cache.sqlite_path(site.config()) is None


@sqlite_only
def test_the_cli_shortcut_does_not_import_sqlalchemy(blog):
    """What makes the shortcut fast, checked in a real `publisher run` process: no SQLAlchemy,
    APScheduler, click, pipeline, zoneinfo (newsletter.timezone's check is deferred), nor
    content/ beyond its walk."""
    code = ("import sys, runpy\n"
            "sys.argv = ['publisher', '--config', sys.argv[1], 'run']\n"
            "try:\n"
            "    runpy.run_module('publisher.cli', run_name='__main__')\n"
            "except SystemExit as e:\n"
            "    print('exit', e.code, 'sqlalchemy' in sys.modules, 'apscheduler' in sys.modules,\n"
            "          'click' in sys.modules, 'publisher.pipeline' in sys.modules,\n"
            "          'zoneinfo' in sys.modules,\n"
            "          sorted(m for m in sys.modules if m.startswith('publisher.content')))\n")
    # The blog's runs used an injected clock in 2025; stamp it again for the real one.
    pipeline.run_once(blog.config())
    pipeline.run_once(blog.config())
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-c", code, str(blog.root / "config.yaml")],
                         capture_output=True, text=True, env=env, timeout=60)
    # Of content/, only the walk (files.py): not the parser, Markdown, sanitiser or engines.
    assert out.stdout.splitlines()[-1] == (
        "exit 0 False False False False False ['publisher.content', 'publisher.content.files']"
    ), out.stdout + out.stderr
    assert "nothing new to mail" in out.stdout


@sqlite_only
@pytest.mark.parametrize("module", ["publisher", "publisher.cli"])
def test_the_publisher_command_answers_an_idle_run_as_the_full_run_does(blog, module):
    """`publisher run` (the console script runs publisher/__main__.py) and `python -m
    publisher.cli run`: same output and exit status from the stamp as from the full path,
    with --quiet and --config before or after the command."""
    pipeline.run_once(blog.config())
    config = str(blog.root / "config.yaml")

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", module, *args], capture_output=True,
                              text=True, timeout=60)

    blog.post("broken.md", "title: [unclosed\npubDate: 2024-12-02")
    full = run("--config", config, "run")  # full path: a post changed; leaves the stamp
    assert full.returncode == 1 and "content/broken.md: skipped" in full.stderr
    assert idle.still_idle(blog.config(), datetime.now(timezone.utc)) is not None
    for args in (("--config", config, "run"), ("run", "--config", config),
                 (f"--config={config}", "run")):
        again = run(*args)
        assert (again.returncode, again.stdout, again.stderr) == (
            full.returncode, full.stdout, full.stderr)
    quiet = run("-q", "run", "--config", config)
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (1, "", full.stderr)
    # Anything the shortcut does not know goes to click, which says what is wrong.
    bad = run("--config", config, "run", "--bogus")
    assert bad.returncode == 2 and "No such option '--bogus'" in bad.stderr


@pytest.mark.parametrize("argv, expected", [
    (["run"], ("run", "config.yaml", False, False)),
    (["--config", "a.yaml", "run", "-q"], ("run", "a.yaml", True, False)),
    (["run", "--quiet", "--config=b.yaml"], ("run", "b.yaml", True, False)),
    (["run", "--strict"], ("run", "config.yaml", False, True)),
    (["--strict", "run"], None),  # click refuses it: --strict is the command's option
    (["run", "--strict", "--strict"], None),
    (["run", "-v"], None),
    (["-v", "run"], None),
    (["run", "run"], None),
    (["build"], None),
    ([], None),
    (["run", "--config"], None),
    (["run", "--config", "a", "--config", "b"], None),
    (["run", "--config", "--quiet"], None),
    (["run", "-q", "-q"], None),
    (["run", "--help"], None),
    (["--version"], None),
])
def test_the_shortcut_takes_only_plain_run_commands(argv, expected):
    from publisher.__main__ import _command_options

    assert _command_options(argv, ("run",)) == expected


@pytest.mark.parametrize("argv, expected", [
    (["build"], ("build", "config.yaml", False, False)),
    (["-q", "build", "--strict", "--config", "c.yaml"], ("build", "c.yaml", True, True)),
    (["run", "--strict"], ("run", "config.yaml", False, True)),
    (["build", "run"], None),
    (["build", "--help"], None),
    (["send"], None),
    (["build", "-v"], None),
])
def test_build_and_run_without_click_take_only_their_plain_options(argv, expected):
    from publisher.__main__ import _command_options

    assert _command_options(argv, ("build", "run")) == expected


def test_the_code_signature_covers_every_file_of_the_package_tree(tmp_path, monkeypatch):
    """A module added in a new subpackage, or an edited template, invalidates the stamp."""
    package = tmp_path / "publisher"
    for rel in ("idle.py", "content/posts.py", "templates/digest.html", "__pycache__/x.pyc"):
        (package / rel).parent.mkdir(parents=True, exist_ok=True)
        (package / rel).write_text("x", encoding="utf-8")
    monkeypatch.setattr(idle, "__file__", str(package / "idle.py"))

    def signature() -> str:
        monkeypatch.setattr(idle, "_CODE_SIGNATURE", None)
        return idle._code_signature()

    first = signature()
    assert signature() == first
    (package / "__pycache__" / "y.pyc").write_text("bytecode", encoding="utf-8")
    assert signature() == first  # compiled bytecode follows the sources
    (package / "newsletter" / "deep").mkdir(parents=True)
    (package / "newsletter" / "deep" / "message.py").write_text("x", encoding="utf-8")
    second = signature()
    assert second != first
    (package / "templates" / "digest.html").write_text("xy", encoding="utf-8")
    assert signature() != second


def test_deferred_cron_check_reports_what_load_config_would(site):
    site.write_config(newsletter={"schedule": "0 9 * * 9"})
    with pytest.raises(ConfigError) as full:
        load_config(site.root / "config.yaml")
    lazy = load_config(site.root / "config.yaml", defer_slow_checks=True)
    with pytest.raises(ConfigError) as deferred:
        lazy.check_deferred()
    assert str(deferred.value) == str(full.value)
    assert "newsletter.schedule: expected a 5-field cron string" in str(full.value)
    assert lazy == load_config(site.root / "config.yaml", defer_slow_checks=True)
    # With another error in the file, every error is still reported at once.
    site.write_config(newsletter={"schedule": "0 9 * * 9"}, smtp={"port": "abc"})
    with pytest.raises(ConfigError) as both:
        load_config(site.root / "config.yaml", defer_slow_checks=True)
    assert "smtp.port" in str(both.value) and "newsletter.schedule" in str(both.value)


def test_deferred_timezone_check_reports_what_load_config_would(site):
    """newsletter.timezone is checked with zoneinfo (its import and a zone file, ~2 ms of an
    idle run) only where the deferred checks run; the message is the same."""
    site.write_config(newsletter={"timezone": "Mars/Olympus"})
    with pytest.raises(ConfigError) as full:
        load_config(site.root / "config.yaml")
    assert "newsletter.timezone: expected an IANA time zone" in str(full.value)
    lazy = load_config(site.root / "config.yaml", defer_slow_checks=True)
    with pytest.raises(ConfigError) as deferred:
        lazy.check_deferred()
    assert str(deferred.value) == str(full.value)
    # With another error in the file, every error is still reported at once.
    site.write_config(newsletter={"timezone": "Mars/Olympus"}, smtp={"port": "abc"})
    with pytest.raises(ConfigError) as both:
        load_config(site.root / "config.yaml", defer_slow_checks=True)
    assert "smtp.port" in str(both.value) and "newsletter.timezone" in str(both.value)


@pytest.mark.parametrize("command", ["build", "run"])
def test_a_bad_timezone_still_stops_publisher_build_and_run_with_exit_2(site, command):
    site.write_config(newsletter={"timezone": "Mars/Olympus"})
    out = subprocess.run([sys.executable, "-m", "publisher.cli", "--config",
                          str(site.root / "config.yaml"), command], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "newsletter.timezone: expected an IANA time zone" in out.stderr
    assert not (site.root / "state.db").exists() and not (site.root / "public").exists()


def test_a_bad_cron_string_still_stops_publisher_run_with_exit_2(site):
    site.write_config(newsletter={"schedule": "61 9 * * 1"})
    out = subprocess.run([sys.executable, "-m", "publisher.cli", "--config",
                          str(site.root / "config.yaml"), "run"], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 2
    assert "newsletter.schedule: expected a 5-field cron string" in out.stderr
    assert not (site.root / "state.db").exists() and not (site.root / "public").exists()


@sqlite_only
def test_the_shortcut_never_skips_reading_the_bounce_mailbox(blog):
    """With newsletter.bounce_mailbox set, every run reads the mailbox first (a bounce that
    arrived since the last run must suppress its address before the next send), so the
    command's idle shortcut gives way to the full run, which checks the stamp after that."""
    import yaml

    from publisher.__main__ import answer_idle_run

    config = str(blog.root / "config.yaml")
    for sub in ("new", "cur", "tmp"):
        (blog.root / "bounces" / sub).mkdir(parents=True)
    data = yaml.safe_load((blog.root / "config.yaml").read_text(encoding="utf-8"))
    data["newsletter"]["bounce_mailbox"] = "maildir:bounces"
    (blog.root / "config.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    pipeline.run_once(blog.config())
    pipeline.run_once(blog.config())
    assert idle.still_idle(blog.config(), datetime.now(timezone.utc)) is not None  # a stamp
    assert answer_idle_run(["--config", config, "run"]) is None
