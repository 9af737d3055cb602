"""The `publisher` command's entry point (and `python -m publisher`).

`publisher run` is what cron repeats all day, and most of those runs find nothing to do. Such
a run is answered here from the idle stamp (idle.py) before click, the pipeline and the
feed, mail and database libraries are imported: their import alone would cost more than the
check. `build` and `run` with no option but --config, --quiet and --strict are run from here
too, without click (its import and cli.py's commands: ~10 ms of CPU on top of what a build
imports anyway, 3-4% of a build after one new post): cli.py's build and run call the same functions below, and every other command,
option or outcome (usage errors, --help) goes to cli.py, which does everything else.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from .errors import ConfigError, LockedError, PublisherError, UsageError


def _command_options(argv: list[str], names: tuple[str, ...]) -> tuple[str, str, bool, bool] | None:
    """(command, config path, quiet, strict) if argv is one of the commands `names` with only
    --config and --quiet, before or after the command name, and --strict after it, each at
    most once (as cli.py accepts them). None for anything else."""
    config, quiet, strict, command = None, False, False, None
    args = iter(argv)
    for arg in args:
        if arg in names and command is None:
            command = arg
        elif arg == "--strict" and command is not None:
            if strict:
                return None
            strict = True
        elif arg in ("-q", "--quiet"):
            if quiet:
                return None
            quiet = True
        elif arg == "--config" or arg.startswith("--config="):
            value = arg[len("--config="):] if "=" in arg else next(args, None)
            if config is not None or not value or value.startswith("-"):
                return None  # let click report it
            config = value
        else:
            return None
    if command is None:
        return None
    return command, config or "config.yaml", quiet, strict


def answer_idle_run(argv: list[str]) -> int | None:
    """Report an idle `publisher run` from its stamp, as the full run would have reported it,
    and return its exit status; None when the full command must run."""
    options = _command_options(argv, ("run",))
    if options is None or options[3]:
        return None  # --strict: the full run decides (content warnings fail it)
    _command, path, quiet, _strict = options
    # lazy: config.py and idle.py (~45 ms with PyYAML); `--help` and the other commands do without
    from .config import load_config  # the stamp covers the config: it must be read anyway
    from .errors import PublisherError
    from .idle import still_idle

    try:
        # The deferred checks ran when the stamp was made, on this very config.
        config = load_config(path, defer_slow_checks=True)
    except PublisherError:
        return None  # cli.py reports it, with its exit status
    if config.newsletter.bounce_mailbox:
        return None  # every run reads the bounce mailbox first (pipeline.run_once)
    stamp = still_idle(config, datetime.now(timezone.utc))
    if stamp is None:
        return None
    for problem in stamp["problems"]:
        sys.stderr.write(problem + "\n")
    if not quiet:
        for line in stamp["lines"]:
            sys.stdout.write(line + "\n")
    return 1 if stamp["problems"] else 0


def answer_build_or_run(argv: list[str]) -> int | None:
    """Run `build` or `run` as cli.py would, without click, and return its exit status; None
    when argv has anything else (cli.py then parses and reports it)."""
    options = _command_options(argv, ("build", "run"))
    if options is None:
        return None
    command, path, quiet, strict = options
    ctx = Context()
    ctx.config_path, ctx.quiet = Path(path), quiet
    _setup_logging(quiet, False)
    body = build_command if command == "build" else run_command
    try:
        return reported(ctx, lambda: body(ctx, strict))
    except KeyboardInterrupt:  # as click reports it
        echo("\nAborted!", err=True)
        return 1
    except BrokenPipeError as e:  # the reader went away (| head): as click ends
        if e.errno != errno.EPIPE:
            raise
        sys.stdout = sys.stderr = None
        return 1


def main() -> None:
    argv = sys.argv[1:]
    status = answer_idle_run(argv)
    if status is None:
        status = answer_build_or_run(argv)
    if status is not None:
        sys.exit(status)
    # lazy: cli.py with click is ~10 ms; the commands above run without it
    from .cli import main as cli_main

    cli_main()


# --- what build and run share with cli.py (click-free: cli.py imports these) ---------------

def echo(text: str, err: bool = False) -> None:
    """A line to stdout (stderr with err), flushed, as click.echo writes it."""
    stream = sys.stderr if err else sys.stdout
    if stream is None:
        return
    line = text + "\n"
    try:
        stream.write(line)
    except UnicodeEncodeError:  # a stream that cannot say it (e.g. ASCII): as click, replaced
        encoding = getattr(stream, "encoding", None) or "ascii"
        stream.write(line.encode(encoding, "replace").decode(encoding))
    stream.flush()


class Context:
    def __init__(self) -> None:
        self.config_path = Path("config.yaml")
        self.quiet = False
        self.verbose = False

    def config(self, **options):
        # lazy: config.py (~40 ms: PyYAML, dataclasses); `--help` does without
        from .config import load_config

        return load_config(self.config_path, **options)

    def say(self, line: str) -> None:
        if not self.quiet:
            echo(line)


def _only_errors_and_loud(record: logging.LogRecord) -> bool:
    """--quiet keeps errors, and the few warnings that must never go unseen (records logged
    with extra={"loud": True}, such as TLS verification being switched off)."""
    return record.levelno >= logging.ERROR or getattr(record, "loud", False)


def _setup_logging(quiet: bool, verbose: bool) -> None:
    level = logging.DEBUG if verbose else logging.WARNING
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("publisher: %(levelname)s: %(message)s"))
    if quiet:
        handler.addFilter(_only_errors_and_loud)
    root = logging.getLogger("publisher")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def reported(ctx: Context, body: Callable[[], int | None]) -> int:
    """body()'s exit status, with PublisherError mapped to a message on stderr and its exit
    status; bugs keep their tracebacks."""
    try:
        status = body()
    except LockedError as e:
        ctx.say(str(e))
        return e.exit_status
    except ConfigError as e:
        echo(f"publisher: config error:\n{e}" if "\n" in str(e) else f"publisher: config error: {e}", err=True)
        return 2
    except UsageError as e:
        echo(f"publisher: usage error: {e}", err=True)
        return e.exit_status
    except PublisherError as e:
        echo(f"publisher: error: {e}", err=True)
        return e.exit_status
    return status or 0


def _finish(ctx: Context, report) -> int:
    for problem in report.problems:
        echo(problem, err=True)
    for warning in getattr(report, "warnings", ()):  # said once, when a post first shows it
        echo(warning, err=True)
    status = report.exit_status
    # --quiet silences the summary, except when it explains a non-zero exit status that the
    # problems above do not (mail still owed, a stop): cron mails only output, and the
    # owner must hear why.
    explain = ctx.quiet and status != 0 and (getattr(report, "failed", False) or not report.problems)
    for line in report.lines:
        if explain:
            echo(line, err=True)
        else:
            ctx.say(line)
    return status


def build_command(ctx: Context, strict: bool) -> int:
    """`publisher build`: scan the posts and write the feeds."""
    # lazy: pipeline.py with the content package is ~80 ms; `--help` does without
    from .pipeline import build as run_build

    # The build completes the config's checks, unless the state vouches for them (cache.py).
    config = _strict(ctx.config(defer_slow_checks=True), strict)
    with _site_progress(ctx):
        return _finish(ctx, run_build(config))


def run_command(ctx: Context, strict: bool) -> int:
    """`publisher run`, the cron job: scan, write feeds, send what is due, finish interrupted sends."""
    # lazy: pipeline.py with the content package is ~80 ms; `--help` does without
    from .pipeline import run_once

    # run_once completes the config's checks, unless its idle stamp vouches for this config.
    config = _strict(ctx.config(defer_slow_checks=True), strict)
    with _stop_on_signals() as (stop, caught), _site_progress(ctx):
        report = run_once(config, progress=_Progress(ctx), stop=stop)
    return _finish(ctx, _stopped(report, caught))


def _site_progress(ctx: Context):
    """Progress of reading and rendering the posts of a big site (progress.py)."""
    from . import progress

    return progress.reporting(lambda label: _Progress(ctx, label=label, minimum=BIG_SITE))


BIG_SITE = 1000  # posts: a build of fewer is over before a progress line would help


def _strict(config, strict: bool):
    """The config with content.strict set by --strict."""
    if not strict or config.content.strict:
        return config
    import dataclasses

    return dataclasses.replace(config, content=dataclasses.replace(config.content, strict=True))


@contextlib.contextmanager
def _stop_on_signals():
    """SIGTERM and SIGINT (Ctrl-C) ask a send to stop: the message in flight is finished and
    recorded, no new one is started, and the summary says what is still owed. A second
    signal ends the process at once, as it would have without this."""
    import signal  # lazy: a run or send that does work (an idle run needs none)

    stop = threading.Event()
    caught: list[str] = []

    def handler(signum, _frame):
        caught.append(signal.Signals(signum).name)
        stop.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop, caught
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _stopped(report, caught: list[str]):
    """The report of a command a signal stopped: says so first, and exits 1 (mail is owed)."""
    if caught:
        report.problems.insert(0, f"publisher: stopped by {caught[0]}: the message in flight was "
                                  "finished and recorded; what is still owed is sent by the next run")
        report.failed = True
    return report


class _Progress:
    """Progress of a long send: on a terminal a bar; elsewhere (CI logs, the journal) a line on
    stderr at every tenth done and at least once a minute, with the rate and the time left;
    nothing under --quiet (cron) or for a send of fewer than 20 messages."""

    EVERY_SECONDS = 60.0

    def __init__(self, ctx: Context, label: str = "sending", clock: Callable[[], float] = time.monotonic,
                 minimum: int = 20):
        self.enabled = not ctx.quiet
        self.minimum = minimum
        self.tty = sys.stderr.isatty()
        self.label, self.clock = label, clock
        self.bar = None
        self.started: float | None = None
        self.said_at = 0.0
        self.said_tenth = 0

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled or total < self.minimum:
            return
        if self.tty:
            self._bar(done, total)
            return
        now = self.clock()
        if self.started is None or done == 0:
            self.started, self.said_at, self.said_tenth = now, now, 0
        tenth = done * 10 // total
        if tenth > self.said_tenth or now - self.said_at >= self.EVERY_SECONDS:
            self.said_at, self.said_tenth = now, tenth
            elapsed = now - self.started
            rate = done / elapsed if elapsed > 0.05 else 0.0  # none yet to speak of
            speed = f", {rate:.0f}/s" if rate else ""
            left = f", about {_duration((total - done) / rate)} left" if rate and done < total else ""
            echo(f"{self.label}: {done} of {total} ({done * 100 // total}%){speed}{left}", err=True)

    def _bar(self, done: int, total: int) -> None:
        if self.bar is None or self.bar.length != total:
            if self.bar is not None:
                self.bar.render_finish()
            import click  # lazy: a bar is drawn for a person at a terminal only

            self.bar = click.progressbar(length=total, label=self.label, file=sys.stderr, show_eta=True)
        self.bar.update(done - self.bar.pos)
        if done >= total:
            self.bar.render_finish()
            self.bar = None


def _duration(seconds: float) -> str:
    """'45 s', '12 min', '3 h 20 min'."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 120 else f"{minutes // 60} h {minutes % 60} min"


if __name__ == "__main__":
    main()
