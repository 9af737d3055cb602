"""The README is part of the contract: its commands and its config reference must stay true."""

from __future__ import annotations

import re

from sites import REPO

from publisher.config import describe_schema


def readme() -> str:
    return (REPO / "README.md").read_text(encoding="utf-8")


def shell_blocks(text: str) -> list[str]:
    return [b.strip() for b in re.findall(r"```sh\n(.*?)```", text, re.S)]


def test_readme_starts_with_setup_and_test_commands_and_ci_runs_the_test_command():
    first, second = shell_blocks(readme())[:2]
    assert first.endswith("publisher build")
    assert "pytest" in second
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8").strip().splitlines()
    assert second in ci  # CI runs exactly the README's command (then a PostgreSQL pass)


def test_readme_config_reference_matches_the_schema():
    block = re.search(r"```yaml\n(site:\n.*?)```", readme(), re.S).group(1)
    assert block.strip() == describe_schema().strip()


def test_example_site_config_is_valid():
    from publisher.config import load_config

    config = load_config(REPO / "config.yaml")
    assert config.site.url.startswith("https://")
