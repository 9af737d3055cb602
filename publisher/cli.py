"""The `publisher` command. Each command loads the config, calls one function, reports.

Exit status: 0 done; 1 done, but some posts were skipped or some deliveries failed;
2 usage or config error, nothing done. Summaries go to stdout (silenced by --quiet),
problems and errors to stderr.
"""

from __future__ import annotations

import sys

if __name__ == "__main__":
    # `python -m publisher.cli run` with nothing to do, and a plain build or run: answered
    # before click is imported, as the `publisher` command does it (publisher/__main__.py).
    from publisher.__main__ import answer_build_or_run, answer_idle_run

    _status = answer_idle_run(sys.argv[1:])
    if _status is None:
        _status = answer_build_or_run(sys.argv[1:])
    if _status is not None:
        sys.exit(_status)

import functools  # noqa: E402
import logging  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Callable  # noqa: E402

import click  # noqa: E402

from . import __version__  # noqa: E402
# Shared with the click-free build and run of the `publisher` command (__main__.py).
from .__main__ import (  # noqa: E402
    Context,
    _finish,
    _Progress,
    _setup_logging,
    _stop_on_signals,
    _stopped,
    build_command,
    reported,
    run_command,
)
from .errors import ConfigError, UsageError  # noqa: E402

log = logging.getLogger("publisher")


def _options(f: Callable) -> Callable:
    """--config, --quiet and --verbose are accepted before or after the command name."""

    def set_config(ctx: click.Context, _param, value):
        if value is not None:
            ctx.ensure_object(Context).config_path = Path(value)
        return value

    def set_quiet(ctx: click.Context, _param, value):
        if value:
            obj = ctx.ensure_object(Context)
            obj.quiet = True
            _setup_logging(True, obj.verbose)
        return value

    def set_verbose(ctx: click.Context, _param, value):
        if value:
            obj = ctx.ensure_object(Context)
            obj.verbose = True
            _setup_logging(obj.quiet, True)
        return value

    f = click.option("-v", "--verbose", "_verbose", is_flag=True, expose_value=False,
                     callback=set_verbose, help="Log what each stage does.")(f)
    f = click.option("--config", "_config", type=click.Path(dir_okay=False), expose_value=False,
                     callback=set_config, is_eager=True,
                     help="Site config file (default ./config.yaml).")(f)
    f = click.option("-q", "--quiet", "_quiet", is_flag=True, expose_value=False, callback=set_quiet,
                     help="Print only errors (for cron).")(f)
    return f


def _reporting(f: Callable) -> Callable:
    """Map PublisherError to a message on stderr and its exit status; let bugs keep tracebacks."""

    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        ctx = click.get_current_context().find_object(Context)
        sys.exit(reported(ctx, lambda: f(*args, **kwargs)))

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@_options
@click.version_option(__version__, prog_name="publisher")
@click.pass_context
def main(ctx: click.Context) -> None:
    """Feeds and an exactly-once newsletter for a folder of Markdown posts."""
    obj = ctx.ensure_object(Context)
    _setup_logging(obj.quiet, obj.verbose)


pass_ctx = click.make_pass_decorator(Context, ensure=True)


@main.command()
@click.argument("folder", required=False, type=click.Path(file_okay=False))
@click.option("--ci", type=click.Choice(["github"]), help="also write a workflow that runs publisher "
              "on a static host's CI (GitHub Actions); with an existing config, only the workflow")
@_options
@pass_ctx
@_reporting
def init(ctx: Context, folder: str | None, ci: str | None) -> int:
    """Detect the blog in FOLDER (default: the config's folder) and write config.yaml."""
    # lazy: init.py (~70 ms: PyYAML, tomllib) serves `publisher init` alone
    from .init import InitReport, init_site

    config_path = ctx.config_path
    if folder is not None and config_path == Path("config.yaml"):  # no --config: write in FOLDER
        config_path = Path(folder) / "config.yaml"
    if ci and config_path.exists():
        report = InitReport()
    else:
        report = init_site(Path(folder) if folder else config_path.parent, config_path)
    if ci:
        from .config import load_config
        from .static_host import write_github_workflow

        report.lines.extend(write_github_workflow(load_config(config_path)))
    return _finish(ctx, report)


# build and run: content warnings fail the command, for CI (content.strict in the config).
_strict_option = click.option("--strict", is_flag=True, help="Content warnings fail the command "
                              "(exit 1), as content.strict: true does; for CI.")


@main.command()
@_strict_option
@_options
@pass_ctx
@_reporting
def build(ctx: Context, strict: bool) -> int:
    """Scan the posts and write the feeds."""
    return build_command(ctx, strict)


@main.command()
@_strict_option
@_options
@pass_ctx
@_reporting
def run(ctx: Context, strict: bool) -> int:
    """The cron job: scan, write feeds, send what is due, finish interrupted sends."""
    return run_command(ctx, strict)


@main.command()
@click.option("--dry-run", is_flag=True, help="Write the messages to .eml files instead of sending.")
@click.option("--to", "to", metavar="ADDRESS", help="Send one test copy to ADDRESS; record nothing.")
@click.option("--out", "out", type=click.Path(file_okay=False), default=None,
              help="Folder for --dry-run files (default: outbox/ beside the config).")
@_options
@pass_ctx
@_reporting
def send(ctx: Context, dry_run: bool, to: str | None, out: str | None) -> int:
    """Mail a digest of every post not yet mailed, now."""
    # lazy: pipeline.py with the content package is ~80 ms; `--help` does without
    from . import pipeline

    if to and dry_run:
        raise UsageError("use either --to or --dry-run, not both")
    # The checks that need a slow import (the schedule's: APScheduler, ~35 ms) are done
    # unless the state records that these very values passed them (a build or run did).
    from .cache import check_config_once

    config = ctx.config(defer_slow_checks=True)
    pipeline.require_content_dir(config)  # before the state is read (or created: WAL files)
    check_config_once(config)
    if to:
        # lazy: newsletter.subscribers imports the state (SQLAlchemy, ~0.25 s)
        from .newsletter.subscribers import InvalidAddress, normalize_address

        try:
            address = normalize_address(to)
        except InvalidAddress as e:
            raise UsageError(f"--to {to!r}: {e}") from e
        return _finish(ctx, pipeline.send_test(config, address))
    if dry_run:
        out_dir = Path(out) if out else config.root / "outbox"
        return _finish(ctx, pipeline.dry_run(config, out_dir))
    with _stop_on_signals() as (stop, caught):
        report = pipeline.send_now(config, progress=_Progress(ctx), stop=stop)
    return _finish(ctx, _stopped(report, caught))


@main.command()
@click.option("--out", "out", type=click.Path(file_okay=False), default=None,
              help="Folder for the files (default: preview/ beside the config).")
@click.option("--topics", "topic_names", default=None, metavar="A,B",
              help="Preview the digest of a subscriber of these topics (names, comma-separated).")
@click.option("--open", "open_it", is_flag=True, help="Open the HTML file in the browser.")
@_options
@pass_ctx
@_reporting
def preview(ctx: Context, out: str | None, topic_names: str | None, open_it: bool) -> int:
    """Render the next digest to an HTML and a text file and print their paths."""
    # lazy: pipeline.py with the content package is ~80 ms; `--help` does without
    from .pipeline import preview as run_preview

    config = ctx.config()
    chosen = tuple(n for n in topic_names.split(",") if n.strip()) if topic_names is not None else None
    report, paths = run_preview(config, Path(out) if out else config.root / "preview", topics=chosen)
    status = _finish(ctx, report)
    for path in paths:
        click.echo(str(path))  # the point of the command: printed even under --quiet
    if open_it and paths:
        click.launch(str(paths[0]))  # the system's browser (xdg-open, open, start)
    return status


@main.command()
@_options
@pass_ctx
@_reporting
def check(ctx: Context) -> int:
    """Validate the config and every post, and parse the written feeds. Changes nothing."""
    # lazy: pipeline.py with the content package is ~80 ms; `--help` does without
    from .pipeline import check as run_check

    return _finish(ctx, run_check(ctx.config()))


@main.command()
@_options
@pass_ctx
@_reporting
def schedule(ctx: Context) -> int:
    """Stay running: build and send on schedule until SIGTERM."""
    # lazy: scheduler.py with the pipeline is ~0.1 s, for `publisher schedule` alone
    from .scheduler import run_service

    config = ctx.config()
    if not ctx.quiet and not ctx.verbose:
        logging.getLogger("publisher").setLevel(logging.INFO)  # a service logs what each job did
    for handler in logging.getLogger("publisher").handlers:
        # A service's log is read later: each line says when (local time, with its offset).
        handler.setFormatter(logging.Formatter(
            "%(asctime)s publisher: %(levelname)s: %(message)s", "%Y-%m-%d %H:%M:%S%z"))
    return run_service(config)


@main.group()
def subscribers() -> None:
    """Manage the subscriber list."""


@subscribers.command("add")
@click.argument("email")
@click.option("--name", default="", help="The subscriber's name, used in the greeting.")
@_options
@pass_ctx
@_reporting
def subscribers_add(ctx: Context, email: str, name: str) -> int:
    """Add EMAIL as an active subscriber."""
    # lazy: the state and newsletter.subscribers import SQLAlchemy (~0.25 s)
    from .state import State
    from .newsletter.subscribers import InvalidAddress, clean_name, normalize_address

    config = ctx.config()
    try:
        address = normalize_address(email)
    except InvalidAddress as e:
        raise UsageError(f"{email!r}: not a valid address: {e}") from e
    with State.open(config) as state:
        added, _present = state.add_subscribers([(address, clean_name(name))])
        suppressed = not added and state.suppressed_emails([address])
    if suppressed:  # never silently: a bounce or complaint stopped this address's mail
        ctx.say(f"{address} is on the list but suppressed (bounced or complained); nothing changed; "
                f"see `publisher subscribers reactivate`")
        return 0
    ctx.say(f"added {address}" if added else f"{address} is already on the list; nothing changed")
    return 0


@subscribers.command("remove")
@click.argument("email")
@_options
@pass_ctx
@_reporting
def subscribers_remove(ctx: Context, email: str) -> int:
    """Remove EMAIL from the list (and any mail still owed to it)."""
    from .state import State  # lazy: SQLAlchemy's import is ~0.25 s

    with State.open(ctx.config()) as state:
        removed = state.remove_subscriber(email.strip())
    if not removed:
        click.echo(f"publisher: {email.strip()} is not on the list", err=True)
        return 1
    ctx.say(f"removed {email.strip()}")
    return 0


@subscribers.command("list")
@click.option("--status", type=click.Choice(["pending", "active", "unsubscribed", "bounced"]),
              default=None, help="Only subscribers with this status.")
@_options
@pass_ctx
@_reporting
def subscribers_list(ctx: Context, status: str | None) -> int:
    """List subscribers: email, status, name (tab-separated); with newsletter.topics, then
    their topics ('everything' when none chosen) and any pause."""
    from .state import State  # lazy: SQLAlchemy's import is ~0.25 s

    config = ctx.config()
    with State.open(config) as state:
        rows = state.list_subscribers(status)
        shown = _topic_column(config, state) if config.newsletter.topics else None
    reasons = _suppression_reasons(ctx, rows)  # bounced / complained: why and when
    for sub in rows:
        line = f"{sub.email}\t{sub.status}\t{sub.name}"
        if shown is not None:
            line += "\t" + shown(sub)
        click.echo(line + f"\t{reasons[sub.id]}" if sub.id in reasons else line)
    if not ctx.quiet:
        click.echo(f"{len(rows)} subscriber{'' if len(rows) == 1 else 's'}", err=True)
    return 0


def _topic_column(config, state):
    """sub -> 'Python;Rust' (names as offered) or 'everything', plus ' (paused until DATE)'."""
    # lazy: newsletter.topics imports the state (SQLAlchemy, ~0.25 s); pipeline.py ~80 ms
    from .newsletter import topics

    from .pipeline import now_utc

    names = {t.slug: t.name for t in topics.offered(config, state)}
    now = now_utc()

    def shown(sub) -> str:
        text = ";".join(names.get(s, s) for s in sub.topics) or "everything"
        if topics.paused(sub, now):
            text += f" (paused until {sub.paused_until:%Y-%m-%d})"
        return text

    return shown


@subscribers.command("import")
@click.argument("csv_path", metavar="CSV", type=click.Path(dir_okay=False, exists=True))
@click.option("--email-column", metavar="NAME", help="the column holding the address (default: "
              "'email', 'Email Address', 'email_address' ...)")
@click.option("--name-column", metavar="NAME", help="the column holding the name (default: 'name', "
              "or 'First Name' and 'Last Name')")
@_options
@pass_ctx
@_reporting
def subscribers_import(ctx: Context, csv_path: str, email_column: str | None, name_column: str | None) -> int:
    """Import a CSV with a header row holding 'email' (and optionally 'name', and 'topics':
    topic names separated by ';', empty for everything), or the export of Mailchimp, Substack,
    Buttondown, Kit, Ghost or listmonk; rows the export marks as unsubscribed are rejected."""
    # lazy: the state and the newsletter modules import SQLAlchemy (~0.25 s)
    from .state import State
    from .newsletter import topics
    from .newsletter.subscribers import import_csv

    config = ctx.config()
    with State.open(config) as state:
        report = import_csv(Path(csv_path), state, topics.offered(config, state),
                            email_column=email_column, name_column=name_column,
                            progress=_Progress(ctx, label="importing"))
    for line in report.rejected:
        click.echo(f"{csv_path}: {line}", err=True)
    for address in report.suppressed:  # on the list, but a bounce or complaint stopped their mail
        click.echo(f"{csv_path}: {address}: suppressed (bounced or complained), not re-subscribed; "
                   f"see `publisher subscribers reactivate`", err=True)
    ctx.say(f"{len(report.added)} added, {len(report.already)} already on the list, "
            f"{len(report.rejected)} rejected"
            + (f", {len(report.suppressed)} suppressed (not re-subscribed)" if report.suppressed else ""))
    return 1 if report.rejected else 0


# --- bounces and complaints (newsletter/bounces.py) ---

def _suppression_reasons(ctx: Context, rows) -> dict[int, str]:
    if not any(sub.status in ("bounced", "unsubscribed") for sub in rows):
        return {}
    # lazy: the state and newsletter.bounces import SQLAlchemy (~0.25 s)
    from .newsletter.bounces import suppression_lines
    from .state import State

    with State.open(ctx.config()) as state:
        return suppression_lines(state, rows)


@subscribers.command("reactivate")
@click.argument("email")
@click.option("--reason", required=True, help="Why mail to this address may resume (recorded).")
@_options
@pass_ctx
@_reporting
def subscribers_reactivate(ctx: Context, email: str, reason: str) -> int:
    """Mail EMAIL again after a bounce or complaint suppressed it."""
    # lazy: pipeline.py (~80 ms) and the state (SQLAlchemy, ~0.25 s)
    from .pipeline import now_utc
    from .state import State

    if not reason.strip():
        raise ConfigError("--reason: expected a few words on why, got nothing")
    with State.open(ctx.config()) as state:
        sub, why_not = state.reactivate_subscriber(email.strip(), reason=reason.strip(), now=now_utc())
    if why_not:
        click.echo(f"publisher: {email.strip()}: {why_not}; nothing changed", err=True)
        return 1
    ctx.say(f"reactivated {sub.email} ({reason.strip()})")
    return 0


@main.command()
@_options
@pass_ctx
@_reporting
def bounces(ctx: Context) -> int:
    """Read newsletter.bounce_mailbox: record bounces and complaints, suppress addresses."""
    # lazy: pipeline.py (~80 ms), the state and newsletter.bounces (SQLAlchemy, ~0.25 s)
    from .newsletter.bounces import process_mailbox
    from .pipeline import now_utc
    from .state import State

    config = ctx.config()
    with State.open(config) as state:
        report = process_mailbox(config, state, now=now_utc())
    for line in report.left:
        click.echo(f"publisher: left alone: {line}", err=True)
    for address in report.suppressed:
        ctx.say(f"suppressed {address}")
    ctx.say(report.summary())
    return 0


@main.command()
@click.option("--last", default=5, show_default=True, type=click.IntRange(1, 1000),
              help="How many recent digests.")
@_options
@pass_ctx
@_reporting
def report(ctx: Context, last: int) -> int:
    """Bounce and complaint rates of the last digests."""
    # lazy: the state and newsletter.bounces import SQLAlchemy (~0.25 s)
    from .newsletter.bounces import rates_lines
    from .state import State

    with State.open(ctx.config()) as state:
        lines, warnings = rates_lines(state, last)
    for line in lines:
        click.echo(line)  # the point of the command: printed even under --quiet
    for warning in warnings:
        click.echo(f"publisher: warning: {warning}", err=True)
    return 0


@main.command()
@_options
@pass_ctx
@_reporting
def form(ctx: Context) -> int:
    """Print a subscribe form (HTML and its CSS) to paste into the blog's pages; it posts to
    `publisher serve`, which accepts it from site.url's origin and newsletter.form_origins."""
    # lazy: form.py with Jinja2 (~30 ms) serves this command alone
    from .form import render_form

    click.echo(render_form(ctx.config()), nl=False)
    return 0


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0: every interface).")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on.")
@_options
@pass_ctx
@_reporting
def serve(ctx: Context, host: str, port: int) -> int:
    """Run the subscribers' web endpoint: subscribe, confirm, unsubscribe (until Ctrl-C)."""
    # lazy: web.py with Flask, waitress and the state is ~0.3 s, for `publisher serve` alone
    from .webserver import serve as run_serve

    config = ctx.config()
    run_serve(config, host=host, port=port, access=not ctx.quiet,
              on_ready=lambda url: ctx.say(f"serving {config.web_url} at {url} (Ctrl-C to stop)"))
    return 0


@main.command()
@click.argument("path", required=False, type=click.Path(dir_okay=False))
@_options
@pass_ctx
@_reporting
def backup(ctx: Context, path: str | None) -> int:
    """Copy the SQLite state database to PATH (default: backups/ beside it), safely while
    other commands use it. Restore: stop publisher, copy the backup over state.db."""

    from .state import State  # lazy: SQLAlchemy's import is ~0.25 s

    config = ctx.config()
    if path is not None and Path(path).exists():
        raise UsageError(f"{path} already exists; give a new file name (a backup never "
                         "overwrites a file)")
    with State.open(config) as state:
        if path is None:
            source = Path(state.path or "state.db")
            stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
            dest = source.parent / "backups" / f"{source.stem}-{stamp}.db"
        else:
            dest = Path(path)
        size = state.backup(dest)
    ctx.say(f"state database backed up to {dest} ({size:,} bytes, checked)")
    return 0


if __name__ == "__main__":  # pragma: no cover
    main()
