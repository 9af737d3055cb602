"""The command line as users script it: exit statuses, stdout vs stderr, --quiet."""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner
from smtp_helpers import SmtpServer

from publisher.cli import main


def invoke(site, *args):
    runner = CliRunner()
    return runner.invoke(main, ["--config", str(site.root / "config.yaml"), *args], catch_exceptions=False)


def test_build_ok_then_skipped_post_gives_status_1_with_named_file(site):
    site.post("good.md", "title: Good\npubDate: 2024-01-01")
    result = invoke(site, "build")
    assert result.exit_code == 0 and "feeds: 1 post," in result.stdout
    site.post("bad.md", "title: Bad\npubDate: someday")
    result = invoke(site, "build")
    assert result.exit_code == 1
    assert "content/bad.md: skipped: 'pubDate' is not a date: 'someday'" in result.stderr
    assert "skipped" not in result.stdout


def test_config_error_exits_2_and_writes_nothing(site):
    site.post("good.md", "title: Good\npubDate: 2024-01-01")
    site.write_config(feeds={"limit": "lots"})
    result = invoke(site, "build")
    assert result.exit_code == 2
    assert "feeds.limit: expected an integer >= 0, got 'lots'" in result.stderr
    assert not (site.root / "public").exists() and not (site.root / "state.db").exists()


def test_config_option_after_the_command_and_quiet(site):
    site.post("good.md", "title: Good\npubDate: 2024-01-01")
    result = CliRunner().invoke(main, ["build", "--quiet", "--config", str(site.root / "config.yaml")])
    assert result.exit_code == 0 and result.stdout == ""


def test_missing_config_is_exit_2(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["check"])
    assert result.exit_code == 2 and "config.yaml: no such file" in result.stderr


def test_check_changes_nothing_and_reports_unbuilt_feeds(site):
    site.post("good.md", "title: Good\npubDate: 2024-01-01")
    result = invoke(site, "check")
    assert result.exit_code == 1
    assert "publisher build" in result.stderr
    assert not (site.root / "state.db").exists() and not (site.root / "public").exists()
    invoke(site, "build")
    result = invoke(site, "check")
    assert result.exit_code == 0 and "config OK; 1 published post," in result.stdout


def test_subscribers_commands(site, tmp_path):
    assert invoke(site, "subscribers", "add", "Ann@Example.org", "--name", "Ann").exit_code == 0
    again = invoke(site, "subscribers", "add", "ann@example.org")
    assert again.exit_code == 0 and "already on the list" in again.stdout
    bad = invoke(site, "subscribers", "add", "not-an-address")
    assert bad.exit_code == 2 and "not a valid address" in bad.stderr
    csv_path = tmp_path / "more.csv"
    csv_path.write_text("email,name\nbob@example.org,Bob\nnope,X\n")
    imported = invoke(site, "subscribers", "import", str(csv_path))
    assert imported.exit_code == 1
    assert f"{csv_path}: line 3: 'nope': expected exactly one '@'" in imported.stderr
    assert "1 added, 0 already on the list, 1 rejected" in imported.stdout
    listed = invoke(site, "subscribers", "list")
    assert listed.stdout.splitlines() == ["Ann@example.org\tactive\tAnn", "bob@example.org\tactive\tBob"]
    assert invoke(site, "subscribers", "remove", "ANN@example.org").exit_code == 0
    missing = invoke(site, "subscribers", "remove", "ann@example.org")
    assert missing.exit_code == 1 and "not on the list" in missing.stderr


def test_subscribers_import_columns_named_on_the_command_line(site, tmp_path):
    csv_path = tmp_path / "custom.csv"
    csv_path.write_text("Who,Correo\nAna Ruiz,ana@example.org\n,no-address\n")
    imported = invoke(site, "subscribers", "import", str(csv_path), "--email-column", "correo", "--name-column", "Who")
    assert imported.exit_code == 1
    assert f"{csv_path}: line 3: 'no-address': expected exactly one '@'" in imported.stderr
    assert "1 added, 0 already on the list, 1 rejected" in imported.stdout
    assert invoke(site, "subscribers", "list").stdout.splitlines() == ["ana@example.org\tactive\tAna Ruiz"]
    wrong = invoke(site, "subscribers", "import", str(csv_path), "--email-column", "mail")
    assert wrong.exit_code == 1
    assert f"{csv_path}: line 1: --email-column 'mail': no such column (found: Who, Correo)" in wrong.stderr
    missing = invoke(site, "subscribers", "import", str(csv_path))
    assert missing.exit_code == 1
    assert "header has no 'email' column (found: Who, Correo); name it with --email-column" in missing.stderr


def test_send_to_sends_one_test_copy_and_records_nothing(site):
    site.post("good.md", "title: Good\npubDate: 2024-01-01")
    with SmtpServer() as server:
        site.write_config(smtp=server.smtp_settings())
        invoke(site, "subscribers", "add", "real@example.org")
        result = invoke(site, "send", "--to", "me@example.org")
        assert result.exit_code == 0, result.stderr
        assert [m.rcpt for m in server.received] == ["me@example.org"]
    from publisher.state import State

    state = State(site.config().database_url)
    assert state.open_digests() == [] and state.get_meta("baseline_at") is None


def test_send_unreachable_server_is_a_clear_error(site):
    from smtp_helpers import unused_port

    site.write_config(smtp={"port": unused_port()})
    site.post("good.md", "title: Good\npubDate: 2024-01-01")
    invoke(site, "subscribers", "add", "a@example.org")
    invoke(site, "run")  # baseline
    site.post("new.md", "title: New\npubDate: 2024-06-01")
    result = invoke(site, "send")
    assert result.exit_code == 1
    assert "cannot reach SMTP server 127.0.0.1:" in result.stderr
    # Nothing lost: the digest is recorded and still owed.
    from publisher.state import State

    assert len(State(site.config().database_url).open_digests()) == 1


def test_preview_prints_paths(site):
    site.post("good.md", "title: Good\npubDate: 2024-01-01")
    result = invoke(site, "preview")
    assert result.exit_code == 0
    paths = result.stdout.split()
    assert paths[-2].endswith("digest.html") and paths[-1].endswith("digest.txt")


def test_console_script_entry_point(site):
    site.post("good.md", "title: Good\npubDate: 2024-01-01")
    proc = subprocess.run([sys.executable, "-m", "publisher.cli", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and "publisher" in proc.stdout


@pytest.mark.parametrize("args", [["send", "--to", "x@example.org", "--dry-run"], ["send", "--to", "bad"]])
def test_send_usage_errors_exit_2(site, args):
    site.post("good.md", "title: Good\npubDate: 2024-01-01")
    assert invoke(site, *args).exit_code == 2


def test_preview_of_an_empty_site_says_so(site):
    result = invoke(site, "preview")
    assert result.exit_code == 0 and "nothing to preview" in result.stdout


def test_check_refuses_subscribers_without_a_from_address(site):
    site.post("blog/a.md", {"title": "A", "pubDate": "2024-01-01"})
    site.write_config(newsletter={"from": ""})
    assert invoke(site, "build").exit_code == 0
    assert invoke(site, "check").exit_code == 0  # nobody to mail yet: the newsletter may be unused
    assert invoke(site, "subscribers", "add", "ann@example.org").exit_code == 0
    result = invoke(site, "check")
    assert result.exit_code == 1
    assert ("config.yaml: newsletter.from: empty, and 1 subscriber waiting for mail: set it, "
            'e.g. "Blog <news@your-domain>"') in result.stderr


def test_check_refuses_a_state_database_tracked_by_git(site):
    import os

    if site.database.startswith("postgresql"):
        pytest.skip("the state is a SQLite file only on SQLite")
    site.post("blog/a.md", {"title": "A", "pubDate": "2024-01-01"})
    assert invoke(site, "subscribers", "add", "ann@example.org").exit_code == 0
    assert invoke(site, "build").exit_code == 0
    assert invoke(site, "check").exit_code == 0
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t.example",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t.example"}
    subprocess.run(["git", "init", "-q"], cwd=site.root, check=True)
    subprocess.run(["git", "add", "state.db"], cwd=site.root, check=True, env=env)
    result = invoke(site, "check")
    assert result.exit_code == 1
    assert (f"{site.root / 'state.db'}: the state database (subscribers' addresses and tokens) is tracked by "
            f"git: `git rm --cached` it and add it to .gitignore") in result.stderr


def test_a_content_warning_is_said_once_and_never_fails_cron(site):
    site.post("blog/a.md", {"title": "A", "pubDate": "2024-01-01"}, "![x](missing.png)\n")
    warning = "content/blog/a.md: image not found: missing.png"
    first = invoke(site, "--quiet", "run")
    assert (first.exit_code, first.stdout, first.stderr) == (0, "", warning + "\n")
    for _ in range(2):  # cron's next runs: nothing to mail its owner
        again = invoke(site, "--quiet", "run")
        assert (again.exit_code, again.stdout, again.stderr) == (0, "", "")
    strict = invoke(site, "build", "--strict")  # CI: every warning fails the build
    assert (strict.exit_code, strict.stderr) == (1, warning + "\n")
    checked = invoke(site, "check")  # check names every warning, every time
    assert checked.exit_code == 1 and warning in checked.stderr.splitlines()
    site.write_config(content={"ignore_warnings": ["*: image not found: missing.png"]})
    checked = invoke(site, "check")
    assert checked.exit_code == 0, checked.output
    assert f"{warning} (acknowledged in content.ignore_warnings)" in checked.stdout.splitlines()
    assert invoke(site, "build", "--strict").exit_code == 0
    site.write_config(content={"strict": True})
    assert invoke(site, "build").exit_code == 1


def test_progress_off_a_terminal_is_a_line_every_tenth_and_every_minute():
    from publisher.cli import Context, _Progress

    ctx = Context()
    now = [100.0]
    lines: list[str] = []
    progress = _Progress(ctx, clock=lambda: now[0])
    progress.tty = False
    import publisher.__main__ as entry  # _Progress writes with its echo (no click: build, run)

    original = entry.echo
    entry.echo = lambda message, err=False: lines.append(message)
    try:
        progress(0, 200)
        for done in range(1, 201):
            now[0] += 0.5 if done != 5 else 61.0  # one slow message: a line within the minute
            progress(done, 200)
    finally:
        entry.echo = original
    assert lines[0] == "sending: 5 of 200 (2%), 0/s, about 41 min left"  # 0.08/s, printed as 0
    assert lines[1] == "sending: 20 of 200 (10%), 0/s, about 11 min left"
    assert lines[-1] == "sending: 200 of 200 (100%), 1/s"
    assert len(lines) == 11
    quiet = Context()
    quiet.quiet = True
    silent = _Progress(quiet)
    silent.tty = False
    silent(100, 200)  # --quiet: nothing at all (cron mails what is printed)


def test_a_send_reports_progress_in_a_log(site):
    site.post("blog/a.md", {"title": "A", "pubDate": "2024-01-01"})
    with SmtpServer() as server:
        site.write_config(smtp=server.smtp_settings())
        for i in range(40):
            assert invoke(site, "subscribers", "add", f"reader{i}@example.org").exit_code == 0
        assert invoke(site, "run").exit_code == 0  # the first run sets the starting point
        site.post("blog/b.md", {"title": "B", "pubDate": "2024-01-02"})
        sent = invoke(site, "send")
    assert sent.exit_code == 0, sent.output
    lines = [line for line in sent.stderr.splitlines() if line.startswith("sending: ")]
    assert [line.split(" (")[0] for line in lines] == [f"sending: {n} of 40" for n in range(4, 41, 4)]
    assert len(server.received) == 40


def test_an_import_reports_progress_in_a_log(site, tmp_path):
    csv_path = tmp_path / "big.csv"
    csv_path.write_text("email\n" + "".join(f"r{i}@example.org\n" for i in range(2000)))
    imported = invoke(site, "subscribers", "import", str(csv_path))
    assert imported.exit_code == 0, imported.output
    lines = [line.split(" (")[0] for line in imported.stderr.splitlines() if line.startswith("importing: ")]
    assert lines == [f"importing: {n} of 2000" for n in (500, 1000, 1500, 2000)]
    assert "2000 added, 0 already on the list, 0 rejected" in imported.stdout
    quiet = invoke(site, "--quiet", "subscribers", "import", str(csv_path))
    assert "importing" not in quiet.output


def test_a_big_build_reports_progress_in_a_log(site):
    site.write_config(feeds={"limit": 0})  # every post in full in the feeds: all 1,200 rendered
    for i in range(1200):
        site.post(f"blog/p{i:04}.md", f"title: Post {i}\npubDate: 2024-01-01T00:00:00Z\ntags: [t{i % 7}]",
                  f"Body {i}.\n")
    built = invoke(site, "build")
    assert built.exit_code == 0, built.output
    for stage in ("reading posts", "rendering posts"):
        lines = [line for line in built.stderr.splitlines() if line.startswith(stage + ": ")]
        assert 2 <= len(lines) <= 11, built.stderr
        assert lines[-1].startswith(f"{stage}: 1200 of 1200 (100%)")
    again = invoke(site, "build")  # nothing to read or render: nothing to say
    assert again.exit_code == 0 and again.stderr == ""
    site.post("blog/new.md", "title: New\npubDate: 2024-01-02T00:00:00Z")
    quiet = invoke(site, "--quiet", "build")
    assert quiet.exit_code == 0 and quiet.output == ""


@pytest.mark.parametrize("module", ["publisher", "publisher.cli"])
def test_build_and_run_without_click_report_as_through_click(site, module):
    """A plain `build` or `run` (only --config, --quiet, --strict) runs without importing
    click (~12 ms of a build after one new post: publisher/__main__.py); its output and exit
    status are those of the same command through click, for each outcome."""
    config = str(site.root / "config.yaml")
    probe = ("import runpy, sys\n"
             "sys.argv = [sys.argv[0], *sys.argv[2:]]\n"
             "try:\n"
             "    runpy.run_module(MODULE, run_name='__main__')\n"
             "finally:\n"
             "    sys.stderr.write('click imported: %s\\n' % ('click' in sys.modules))\n"
             ).replace("MODULE", repr(module))
    through_click = "from publisher.cli import main; main()"

    def both(*args: str) -> tuple[tuple, tuple]:
        fast = subprocess.run([sys.executable, "-c", probe, "-", *args], capture_output=True,
                              text=True, timeout=120)
        assert fast.stderr.endswith("click imported: False\n"), fast.stderr
        slow = subprocess.run([sys.executable, "-c", through_click, *args], capture_output=True,
                              text=True, timeout=120)
        stderr = fast.stderr[:-len("click imported: False\n")]
        return (fast.returncode, fast.stdout, stderr), (slow.returncode, slow.stdout, slow.stderr)

    site.post("good.md", "title: Good\npubDate: 2024-01-01")
    fast, slow = both("--config", config, "build")
    assert fast[0] == 0 and "feeds: 1 post," in fast[1]
    site.post("late.md", "title: Late\npubDate: 2024-02-01")  # each side builds a change
    fast, slow = both("--config", config, "build", "-q")
    assert fast == slow == (0, "", "")
    site.post("bad.md", "title: Bad\npubDate: someday")  # a skipped post: status 1, stderr
    fast, slow = both("build", "--config", config)
    assert fast == slow and fast[0] == 1 and "content/bad.md: skipped" in fast[2]
    fast, slow = both("--config", config, "build", "--strict")
    assert fast == slow and fast[0] == 1
    (site.root / "content" / "bad.md").unlink()
    fast, slow = both("--config", config, "run")
    assert fast[0] == slow[0] == 0
    site.write_config(feeds={"limit": "lots"})  # a config error: status 2, named on stderr
    fast, slow = both("--config", config, "run")
    assert fast == slow and fast[0] == 2 and "feeds.limit: expected an integer" in fast[2]
    fast, slow = both("--config", str(site.root / "nope.yaml"), "build")
    assert fast == slow and fast[0] == 2 and "nope.yaml: no such file" in fast[2]
