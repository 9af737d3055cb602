"""The exception family (errors.py) and what the CLI makes of each member: the exit status and
the stderr line that CONTRACT.md's exit codes promise."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from publisher import cli
from publisher.errors import (ConfigError, ContentError, DeliveryError, LockedError, MailboxError,
                              OutputError, PublisherError, RecipientError, ServeError, StateError,
                              UsageError)


def run_raising(error: PublisherError):
    """A click command wrapped as every publisher command is (cli._reporting), raising `error`."""

    @click.command()
    @cli.pass_ctx
    @cli._reporting
    def command(ctx):
        raise error

    return CliRunner().invoke(command, [], obj=cli.Context())


@pytest.mark.parametrize("error, status, stderr", [
    (ConfigError("config.yaml: smtp.port: expected an integer, got 'abc'"), 2,
     "publisher: config error: config.yaml: smtp.port: expected an integer, got 'abc'\n"),
    (UsageError("--to and --dry-run exclude each other"), 2,
     "publisher: usage error: --to and --dry-run exclude each other\n"),
    (ContentError("subs.csv: line 1: header has no 'email' column"), 1,
     "publisher: error: subs.csv: line 1: header has no 'email' column\n"),
    (StateError("state database state.db is damaged"), 1,
     "publisher: error: state database state.db is damaged\n"),
    (OutputError("public/atom.xml: cannot write feed: No space left on device"), 1,
     "publisher: error: public/atom.xml: cannot write feed: No space left on device\n"),
    (DeliveryError("cannot reach SMTP server 127.0.0.1:1"), 1,
     "publisher: error: cannot reach SMTP server 127.0.0.1:1\n"),
    (MailboxError("newsletter.bounce_mailbox maildir:x: no such file"), 1,
     "publisher: error: newsletter.bounce_mailbox maildir:x: no such file\n"),
    (ServeError("cannot listen on 127.0.0.1:8080: Address already in use"), 1,
     "publisher: error: cannot listen on 127.0.0.1:8080: Address already in use\n"),
])
def test_each_error_has_its_exit_status_and_one_line_on_stderr(error, status, stderr):
    result = run_raising(error)
    assert (result.exit_code, result.stderr, result.stdout) == (status, stderr, "")


def test_a_locked_run_says_so_on_stdout_and_exits_0():
    result = run_raising(LockedError("another publisher run is in progress; nothing done"))
    assert (result.exit_code, result.stdout, result.stderr) == (
        0, "another publisher run is in progress; nothing done\n", "")


def test_the_family_tree():
    family = {cls: cls.__mro__[1] for cls in (ConfigError, UsageError, ContentError, StateError,
                                              OutputError, DeliveryError, RecipientError,
                                              MailboxError, ServeError, LockedError)}
    assert family == {ConfigError: PublisherError, UsageError: PublisherError,
                      ContentError: PublisherError, StateError: PublisherError,
                      OutputError: PublisherError, DeliveryError: PublisherError,
                      RecipientError: DeliveryError, MailboxError: PublisherError,
                      ServeError: PublisherError, LockedError: PublisherError}


def test_a_missing_bounce_mailbox_is_a_mailbox_error(site):
    from publisher.newsletter.bounce_mailbox import open_mailbox

    site.write_config(newsletter={"bounce_mailbox": "maildir:nowhere"})
    config = site.config()
    with pytest.raises(MailboxError, match=r"^newsletter.bounce_mailbox maildir:\S*nowhere: not a Maildir"):
        with open_mailbox(config):
            pass


def test_an_unwritable_feeds_folder_is_an_output_error(site):
    from publisher.pipeline import build

    site.post("a.md", "title: A\npubDate: 2024-12-01")
    (site.root / "public").write_text("a file where the feeds folder should be")
    site.write_config(feeds={"output_dir": "public"})
    config = site.config()
    with pytest.raises(OutputError, match=r"public: cannot create the feeds folder: "):
        build(config)
