"""`publisher init --ci github`: publisher where most blogs live, on a static host with no server
and no crontab. It writes a GitHub Actions workflow that runs `publisher run` on a schedule (the
digest when due, the feeds, an interrupted send finished), with the SMTP password from a secret
and the state either in PostgreSQL (`PUBLISHER_STATE_DATABASE`, a secret) or, for a small list,
in the Actions cache between runs. The feeds a host serves are built by the host's own build
command (`publisher build && hugo`, see the README), before the engine copies its static folder.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from .cache import sqlite_path
from .config import DATABASE_ENV, PASSWORD_ENV, Config
from .errors import ConfigError

WORKFLOW = Path(".github") / "workflows" / "publisher.yml"
# GitHub deletes a cache entry unused for 7 days: a daily run keeps the state of a weekly
# newsletter (and rebuilds the feeds).
KEEP_WARM_CRON = "23 4 * * *"
HOURLY_CRON = "17 * * * *"


def _repository_root(folder: Path) -> Path:
    """The git work tree holding `folder` (the workflow goes in its .github/), else `folder`."""
    try:
        done = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=folder,
                              capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return folder
    return Path(done.stdout.strip()).resolve() if done.returncode == 0 and done.stdout.strip() else folder


def _requirement() -> str:
    """How this publisher was installed, as a pip requirement a runner can install too: its VCS
    URL and commit (PEP 610's direct_url.json), else "" (a local or index install says nothing
    a runner could use: the workflow then asks for the PUBLISHER_PACKAGE variable)."""
    import importlib.metadata  # lazy: init --ci alone
    import json

    try:
        direct = json.loads(importlib.metadata.distribution("publisher").read_text("direct_url.json") or "{}")
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return ""
    vcs = direct.get("vcs_info") or {}
    url = direct.get("url", "")
    if not vcs or not url.startswith(("https://", "ssh://")) or "'" in url:
        return ""
    commit = vcs.get("commit_id", "")
    return f"publisher @ {vcs.get('vcs', 'git')}+{url}" + (f"@{commit}" if commit else "")


def _posix(path: Path) -> str:
    return path.as_posix() or "."


def workflow_crons(config: Config) -> list[str]:
    """When the workflow runs (UTC). GitHub's cron runs in UTC: a schedule in another zone is
    checked hourly (`publisher run` sends once the newsletter's own schedule has fired, in its
    zone); otherwise at the schedule, and daily to keep the cached state."""
    if config.newsletter.timezone not in ("UTC", "Etc/UTC") or config.newsletter.schedule == HOURLY_CRON:
        return [HOURLY_CRON]
    return [config.newsletter.schedule, KEEP_WARM_CRON]


def github_workflow(config: Config, repository: Path) -> str:
    """The workflow's text for a site whose config lies in `repository` (at any depth)."""
    site = config.root.resolve()
    workdir = _posix(site.relative_to(repository)) if site != repository else "."
    crons = workflow_crons(config)
    state = sqlite_path(config)
    lines = [
        "# Written by `publisher init --ci github`: the feeds and the newsletter of this blog on",
        "# GitHub Actions (no server, no crontab). Set in Settings > Secrets and variables > Actions:",
        f"#   {PASSWORD_ENV}   the mail relay's password (smtp.username is in the config)",
        f"#   {DATABASE_ENV}  a postgresql:// URL without password: where subscribers and",
        "#                              deliveries live (the same database as `publisher serve`);",
        "#   PGPASSWORD                 its password.",
        "# Without PUBLISHER_STATE_DATABASE the state (SQLite) is kept in the Actions cache between",
        "# runs: fine for a small list; back it up (`publisher backup`), GitHub may evict caches.",
        "# The feeds your host serves are built by its own build command: `publisher build` first",
        "# (see publisher's README, 'Static hosts').",
        "name: publisher",
        "on:",
        "  schedule:",
        *[f'    - cron: "{c}"' for c in crons],
        "  workflow_dispatch:",
        "concurrency:",
        "  group: publisher  # one run at a time: each run writes the state the next one reads",
        "  cancel-in-progress: false",
        "permissions:",
        "  contents: read",
        "jobs:",
        "  publish:",
        "    runs-on: ubuntu-latest",
        "    timeout-minutes: 120",
        "    defaults:",
        "      run:",
        f"        working-directory: {workdir}",
        "    env:",
        f"      {PASSWORD_ENV}: ${{{{ secrets.{PASSWORD_ENV} }}}}",
        f"      {DATABASE_ENV}: ${{{{ secrets.{DATABASE_ENV} }}}}",
        "      PGPASSWORD: ${{ secrets.PGPASSWORD }}",
        "    steps:",
        "      - uses: actions/checkout@v4",
        "      - uses: actions/setup-python@v5",
        "        with:",
        '          python-version: "3.11"',
        "      - name: Install publisher",
        "        run: |",
        '          if [ -z "$PUBLISHER_PACKAGE" ]; then',
        '            echo "::error::set the repository variable PUBLISHER_PACKAGE to publisher\'s pip requirement (a git URL)"',
        "            exit 1",
        "          fi",
        '          python -m pip install "$PUBLISHER_PACKAGE"',
        "        env:",
        "          # publisher's pip requirement, e.g. git+https://host/you/publisher@v1 (a repository",
        "          # variable overrides what init found)",
        f"          PUBLISHER_PACKAGE: ${{{{ vars.PUBLISHER_PACKAGE || '{_requirement()}' }}}}",
    ]
    cached = None
    if state is not None:
        cached = _posix((Path(workdir) / Path(state).resolve().relative_to(site)).parent
                        / (Path(state).name + "*")) if Path(state).resolve().is_relative_to(site) else None
    if cached:
        lines += [
            "      - name: Restore the state (subscribers, what was mailed to whom)",
            f"        if: env.{DATABASE_ENV} == ''",
            "        uses: actions/cache/restore@v4",
            "        with:",
            f"          path: {cached}",
            "          key: publisher-state-${{ github.run_id }}",
            "          restore-keys: publisher-state-",
        ]
    lines += [
        "      - name: Feeds, and the newsletter when it is due",
        "        run: publisher run",
    ]
    if cached:
        lines += [
            "      - name: Keep the state for the next run",
            f"        if: always() && env.{DATABASE_ENV} == ''",
            "        uses: actions/cache/save@v4",
            "        with:",
            f"          path: {cached}",
            "          key: publisher-state-${{ github.run_id }}",
        ]
    return "\n".join(lines) + "\n"


def write_github_workflow(config: Config) -> list[str]:
    """Write the workflow into the repository holding the config (never over a file); the
    report lines."""
    repository = _repository_root(config.root.resolve())
    path = repository / WORKFLOW
    text = github_workflow(config, repository)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "x", encoding="utf-8") as f:  # "x": never over a workflow of the owner's
            f.write(text)
    except FileExistsError as e:
        raise ConfigError(f"{path}: already exists; nothing written (move it away to write a new one)") from e
    except OSError as e:
        raise ConfigError(f"{path}: cannot write: {e.strerror}") from e
    return [f"wrote {path}: `publisher run` on GitHub Actions ({', '.join(workflow_crons(config))} UTC)",
            f"next: add the secrets {PASSWORD_ENV} (and {DATABASE_ENV}, PGPASSWORD for PostgreSQL) "
            f"in the repository's settings, and `publisher build` before your engine's build command"]
