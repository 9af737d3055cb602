"""The one factory of test sites: config.yaml (one set of defaults, keyword overrides per
section) and posts, written as real files and read back with the real parsers.

    from sites import Site, make_config, write_config, write_post

    config = make_config(root, smtp=server.smtp_settings(), feeds={"limit": 5})
    write_post(root, "a.md", {"title": "A", "date": "2024-01-01"})

    site = Site(root)                          # the `site` fixture: root/config.yaml + content/
    site.write_config(newsletter={"web_url": "https://example.org/n"})
    site.post("a.md", "title: A\ndate: 2024-01-01")

Each keyword merges its keys into that section of DEFAULTS; `section=None` drops the section.
The state database is the suite's (`database_url`: SQLite beside the config, or a fresh
PostgreSQL schema when PUBLISHER_TEST_POSTGRES is set) unless `state` is given.
"""

from __future__ import annotations

import copy
import os
import textwrap
import uuid
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures"

# The whole suite runs twice in CI: on SQLite, and with this set to a PostgreSQL URL
# (e.g. postgresql://publisher:publisher@127.0.0.1:5432/publisher_test), where every test
# gets a fresh schema of its own.
PG_BASE = os.environ.get("PUBLISHER_TEST_POSTGRES", "")
_pg_schemas: list[str] = []

DEFAULTS: dict[str, dict[str, Any]] = {
    "site": {"title": "Test Blog", "url": "https://blog.test.example",
             "description": "A blog for tests",
             "author": {"name": "Site Author", "email": "author@blog.test.example"}},
    "content": {"dir": "content", "permalink": "/blog/{slug}/"},
    "feeds": {"output_dir": "public", "limit": 20},
    "newsletter": {"from": "Test Blog <news@blog.test.example>", "schedule": "0 9 * * 1",
                   "timezone": "UTC"},
}


def _pg_engine():
    import sqlalchemy as sa  # lazy: only the PostgreSQL pass needs it (~0.2 s import)

    from publisher.state import normalize_url

    if not hasattr(_pg_engine, "engine"):
        _pg_engine.engine = sa.create_engine(normalize_url(PG_BASE), isolation_level="AUTOCOMMIT")
    return _pg_engine.engine


def database_url(directory: Path) -> str:
    """The state database a test should use: SQLite in `directory`, or a new PG schema."""
    if not PG_BASE:
        return f"sqlite:///{Path(directory) / 'state.db'}"
    schema = "t_" + uuid.uuid4().hex[:16]
    with _pg_engine().connect() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    _pg_schemas.append(schema)
    sep = "&" if "?" in PG_BASE else "?"
    return f"{PG_BASE}{sep}options=-csearch_path%3D{schema}"


def drop_pg_schemas() -> None:
    """Drop every schema database_url made (the session fixture in conftest calls this)."""
    if PG_BASE and _pg_schemas:
        with _pg_engine().connect() as conn:
            for schema in _pg_schemas:
                conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        _pg_schemas.clear()


def site_data(**sections: dict | None) -> dict:
    """DEFAULTS with each keyword's keys merged into that section (None drops the section)."""
    data = copy.deepcopy(DEFAULTS)
    for name, values in sections.items():
        if values is None:
            data.pop(name, None)
        else:
            data.setdefault(name, {}).update(values)
    return data


def write_config(root: Path, **sections: dict | None) -> Path:
    """root/config.yaml from site_data(**sections) and an empty root/content/; the state
    database is database_url(root) unless `state` names one."""
    root = Path(root)
    (root / "content").mkdir(parents=True, exist_ok=True)
    state = sections.get("state", {})
    if state is not None and "database" not in state:
        sections["state"] = {"database": database_url(root), **state}
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(site_data(**sections), sort_keys=False, allow_unicode=True),
                    encoding="utf-8")
    return path


def make_config(root: Path, **sections: dict | None):
    """write_config(root, **sections), loaded with the real config.load_config."""
    from publisher.config import load_config

    return load_config(write_config(root, **sections))


def write_post(root: Path, rel: str, front: dict | str, body: str = "Hello.\n", *,
               raw: bytes | None = None) -> Path:
    """root/content/rel: front matter (a dict dumped as YAML, or YAML text) and a body; or
    `raw` bytes as they are."""
    path = Path(root) / "content" / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if raw is not None:
        path.write_bytes(raw)
        return path
    if isinstance(front, str):
        text = textwrap.dedent(front).strip() + "\n"
    else:
        text = yaml.safe_dump(front, allow_unicode=True, sort_keys=False, width=10_000)
    path.write_text("---\n" + text + "---\n" + body, encoding="utf-8")
    return path


class Site:
    """A throwaway site folder: config.yaml plus posts, written as real files."""

    def __init__(self, root: Path, **sections: dict | None):
        self.root = Path(root)
        self.content = self.root / "content"
        self.content.mkdir(parents=True, exist_ok=True)
        self.database = database_url(self.root)
        self.write_config(**sections)

    def write_config(self, **sections: dict | None) -> Path:
        """config.yaml with the defaults; each keyword merges keys into that section."""
        state = sections.get("state", {})
        if state is not None:
            sections["state"] = {"database": self.database, **state}
        return write_config(self.root, **sections)

    def post(self, rel: str, front: dict | str, body: str = "Hello.\n", *,
             raw: bytes | None = None) -> Path:
        return write_post(self.root, rel, front, body, raw=raw)

    def config(self):
        from publisher.config import load_config

        return load_config(self.root / "config.yaml")
