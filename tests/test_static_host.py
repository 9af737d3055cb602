"""`publisher init --ci github` (static_host.py): the workflow is valid, and the commands it runs
exist and work on a fixture blog, with the state kept where the workflow keeps it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from sites import database_url

from publisher.cli import main
from publisher.cron import cron_trigger

FIXTURES = Path(__file__).parent / "fixtures" / "init"
# What the workflow's install step gives the next steps: `publisher` on the PATH.
ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}


def repository(tmp_path: Path, engine: str = "hugo", subfolder: str = "") -> tuple[Path, Path]:
    """A git repository holding a fixture blog (in `subfolder` of it): (repository, blog)."""
    repo = tmp_path / "repo"
    blog = repo / subfolder if subfolder else repo
    shutil.copytree(FIXTURES / engine, blog)
    if engine == "hugo":  # the init fixture's bundle lacks the image its post shows (a warning)
        (blog / "content" / "posts" / "hello-bundle" / "map.png").write_bytes(b"\x89PNG map")
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    return repo, blog


def init(blog: Path, *args: str):
    return CliRunner().invoke(main, ["--config", str(blog / "config.yaml"), "init", str(blog), *args],
                              catch_exceptions=False)


def workflow(repo: Path) -> dict:
    # PyYAML reads `on:` as True (YAML 1.1); GitHub reads it as the key "on".
    data = yaml.safe_load((repo / ".github" / "workflows" / "publisher.yml").read_text(encoding="utf-8"))
    data["on"] = data.pop(True)
    return data


def expand(value: str, secrets: dict[str, str], variables: dict[str, str]) -> str:
    """The two expression forms the workflow uses, as GitHub evaluates them: `${{ secrets.X }}`
    (an unset secret is '') and `${{ vars.X || 'default' }}`."""
    def one(m: re.Match) -> str:
        kind, name, default = m.groups()
        found = (secrets if kind == "secrets" else variables).get(name, "")
        return found or (default or "")
    expanded = re.sub(r"\$\{\{ (secrets|vars)\.(\w+)(?: \|\| '([^']*)')? \}\}", one, value)
    assert "${{" not in expanded, f"an expression this test does not know: {value}"
    return expanded


def run_steps(repo: Path, data: dict, env: dict[str, str], skip=("Install publisher",),
              variables: dict[str, str] | None = None) -> list[subprocess.CompletedProcess]:
    """Run each `run:` step of the job as the runner would (bash in the working directory),
    with the job's env where the secrets are `env` (an unset secret is an empty string)."""
    job = data["jobs"]["publish"]
    workdir = repo / job["defaults"]["run"]["working-directory"]
    job_env = {name: expand(value, env, variables or {}) for name, value in job["env"].items()}
    done = []
    for step in job["steps"]:
        if "run" not in step or step.get("name") in skip:
            continue
        step_env = {**ENV, **job_env,
                    **{k: expand(str(v), env, variables or {}) for k, v in step.get("env", {}).items()}}
        done.append(subprocess.run(["bash", "-e", "-c", step["run"]], cwd=workdir, env=step_env,
                                   capture_output=True, text=True, timeout=120))
    return done


def test_init_ci_github_writes_a_valid_workflow_whose_commands_work(tmp_path):
    repo, blog = repository(tmp_path)
    assert init(blog).exit_code == 0
    config = blog / "config.yaml"  # the fixture's zone is Berlin's: the newsletter's, UTC here
    config.write_text(re.sub(r'(?m)^  timezone: .*$', '  timezone: "UTC"', config.read_text()))
    result = init(blog, "--ci", "github")
    assert result.exit_code == 0, result.output
    path = repo / ".github" / "workflows" / "publisher.yml"
    assert f"wrote {path}: `publisher run` on GitHub Actions (0 9 * * 1, 23 4 * * * UTC)" in result.stdout
    data = workflow(repo)
    crons = [entry["cron"] for entry in data["on"]["schedule"]]
    assert crons == ["0 9 * * 1", "23 4 * * *"]
    for cron in crons:
        cron_trigger(cron, "UTC")  # five valid fields
    assert "workflow_dispatch" in data["on"]
    assert data["concurrency"] == {"group": "publisher", "cancel-in-progress": False}
    job = data["jobs"]["publish"]
    assert job["defaults"]["run"]["working-directory"] == "."
    assert job["env"] == {"PUBLISHER_SMTP_PASSWORD": "${{ secrets.PUBLISHER_SMTP_PASSWORD }}",
                          "PUBLISHER_STATE_DATABASE": "${{ secrets.PUBLISHER_STATE_DATABASE }}",
                          "PGPASSWORD": "${{ secrets.PGPASSWORD }}"}
    uses = [step.get("uses") for step in job["steps"]]
    assert uses == ["actions/checkout@v4", "actions/setup-python@v5", None, "actions/cache/restore@v4", None,
                    "actions/cache/save@v4"]
    restore, save = job["steps"][3], job["steps"][5]
    assert restore["with"]["path"] == save["with"]["path"] == ".publisher/state.db*"
    assert save["if"] == "always() && env.PUBLISHER_STATE_DATABASE == ''"

    # The commands, as the runner runs them, on the blog: the feeds and the state appear where
    # the host serves them and where the cache step keeps them.
    (install, run) = run_steps(repo, data, {}, skip=())
    assert install.returncode == 1  # no PUBLISHER_PACKAGE variable: a clear error, not another package
    assert "::error::set the repository variable PUBLISHER_PACKAGE" in install.stdout
    assert run.returncode == 0, run.stderr
    config = yaml.safe_load((blog / "config.yaml").read_text())
    assert (blog / config["feeds"]["output_dir"] / "rss.xml").is_file()
    assert sorted(p.name for p in (blog / ".publisher").glob("state.db*"))[0] == "state.db"
    # the next run (after the cache restored the state) finds it and sends nothing twice
    (again,) = run_steps(repo, data, {})
    assert again.returncode == 0, again.stderr


def test_the_workflows_state_secret_moves_the_state_out_of_the_runner(tmp_path):
    repo, blog = repository(tmp_path)
    assert init(blog, "--ci", "github").exit_code == 0
    elsewhere = tmp_path / "db"
    elsewhere.mkdir()
    url = database_url(elsewhere)
    if url.startswith("sqlite:///"):
        url = url[len("sqlite:///"):]  # state.database takes a SQLite file name
    env = {"PUBLISHER_STATE_DATABASE": url, "PGPASSWORD": os.environ.get("PGPASSWORD", "")}  # the secrets
    subscribed = subprocess.run(["publisher", "--config", str(blog / "config.yaml"), "subscribers", "add",
                                 "ann@example.org"], env={**ENV, **env}, capture_output=True, text=True)
    assert subscribed.returncode == 0, subscribed.stderr
    (run,) = run_steps(repo, workflow(repo), env)
    assert run.returncode == 0, run.stderr
    assert not (blog / ".publisher").exists()  # nothing for the cache: the state is in the secret's database
    listed = subprocess.run(["publisher", "--config", str(blog / "config.yaml"), "subscribers", "list"],
                            env={**ENV, **env}, capture_output=True, text=True)
    assert listed.stdout.split("\t")[0] == "ann@example.org"


def test_the_state_secret_is_checked_like_the_config_key(tmp_path):
    repo, blog = repository(tmp_path)
    assert init(blog).exit_code == 0
    env = {**ENV, "PUBLISHER_STATE_DATABASE": "postgresql://me:hunter2@db.invalid/blog"}
    done = subprocess.run(["publisher", "--config", str(blog / "config.yaml"), "build"], env=env,
                          capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "publisher: config error: the environment variable PUBLISHER_STATE_DATABASE: expected a URL without a password "
        "(set PGPASSWORD or use ~/.pgpass), found 'postgresql://me:***@db.invalid/blog'")
    assert "hunter2" not in done.stdout + done.stderr


def test_a_blog_in_a_subfolder_and_an_existing_config(tmp_path):
    repo, blog = repository(tmp_path, "jekyll", subfolder="site")
    assert init(blog).exit_code == 0  # the config first; --ci later writes only the workflow
    config = blog / "config.yaml"
    config.write_text(re.sub(r'(?m)^  timezone: .*$', '  timezone: "Europe/Paris"', config.read_text()))
    result = init(blog, "--ci", "github")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0].startswith(f"wrote {repo / '.github' / 'workflows' / 'publisher.yml'}")
    data = workflow(repo)
    # GitHub's cron is UTC: a schedule in Paris time is checked hourly by `publisher run`
    assert [entry["cron"] for entry in data["on"]["schedule"]] == ["17 * * * *"]
    job = data["jobs"]["publish"]
    assert job["defaults"]["run"]["working-directory"] == "site"
    assert job["steps"][3]["with"]["path"] == "site/.publisher/state.db*"
    (run,) = run_steps(repo, data, {})
    assert run.returncode == 0, run.stderr
    assert (blog / ".publisher" / "state.db").is_file()
    again = init(blog, "--ci", "github")
    assert again.exit_code == 2
    assert "publisher.yml: already exists; nothing written" in again.output


@pytest.mark.parametrize("engine", ["astro", "nanoc", "pelican"])
def test_the_workflow_runs_on_each_engines_fixture(tmp_path, engine):
    repo, blog = repository(tmp_path, engine)
    assert init(blog, "--ci", "github").exit_code == 0
    (run,) = run_steps(repo, workflow(repo), {})
    assert run.returncode == 0, run.stderr
