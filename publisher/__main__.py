"""The `publisher` command's entry point (and `python -m publisher`).

`publisher run` is what cron repeats all day, and most of those runs find nothing to do. Such
a run is answered here from the idle stamp (idle.py) before click, the pipeline and the
feed, mail and database libraries are imported: their import alone would cost more than the
check. Any other command, option or outcome goes to cli.py, which does everything else.
"""

from __future__ import annotations

import sys
from datetime import datetime, timezone


def _run_options(argv: list[str]) -> tuple[str, bool] | None:
    """(config path, quiet) if argv is `run` with only --config and --quiet, before or after
    the command name, each at most once (as cli.py accepts them). None for anything else."""
    config, quiet, commands = None, False, 0
    args = iter(argv)
    for arg in args:
        if arg == "run":
            commands += 1
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
    if commands != 1:
        return None
    return config or "config.yaml", quiet


def answer_idle_run(argv: list[str]) -> int | None:
    """Report an idle `publisher run` from its stamp, as the full run would have reported it,
    and return its exit status; None when the full command must run."""
    options = _run_options(argv)
    if options is None:
        return None
    path, quiet = options
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


def main() -> None:
    status = answer_idle_run(sys.argv[1:])
    if status is not None:
        sys.exit(status)
    # lazy: cli.py with click is ~45 ms; an idle run is answered without it
    from .cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
