"""Shared fixtures. Add fixtures with names prefixed by their area; don't rewrite others'."""

from __future__ import annotations

import os
import textwrap
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# The whole suite runs twice in CI: on SQLite, and with this set to a PostgreSQL URL
# (e.g. postgresql://publisher:publisher@127.0.0.1:5432/publisher_test), where every test
# gets a fresh schema of its own.
PG_BASE = os.environ.get("PUBLISHER_TEST_POSTGRES", "")
_pg_schemas: list[str] = []


def _pg_engine():
    import sqlalchemy as sa

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


@pytest.fixture(scope="session", autouse=True)
def _drop_pg_schemas():
    yield
    if PG_BASE and _pg_schemas:
        with _pg_engine().connect() as conn:
            for schema in _pg_schemas:
                conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.fixture
def db_url(tmp_path) -> str:
    return database_url(tmp_path)


class Site:
    """A throwaway site folder: config.yaml plus posts, written as real files."""

    def __init__(self, root: Path):
        self.root = root
        self.content = root / "content"
        self.content.mkdir(parents=True, exist_ok=True)
        self.database = database_url(root)
        self.write_config()

    def write_config(self, **sections: dict) -> Path:
        """config.yaml with test defaults; each keyword merges keys into that section."""
        import yaml

        data = {
            "site": {"title": "Test Blog", "url": "https://blog.test.example",
                     "description": "A blog for tests",
                     "author": {"name": "Site Author", "email": "author@blog.test.example"}},
            "content": {"dir": "content", "permalink": "/blog/{slug}/"},
            "feeds": {"output_dir": "public", "limit": 20},
            "newsletter": {"from": "Test Blog <news@blog.test.example>", "schedule": "0 9 * * 1",
                           "timezone": "UTC"},
            "state": {"database": self.database},
        }
        for name, values in sections.items():
            data.setdefault(name, {}).update(values)
        path = self.root / "config.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
        return path

    def post(self, rel: str, front: str, body: str = "Hello.\n", *, raw: bytes | None = None) -> Path:
        path = self.content / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if raw is not None:
            path.write_bytes(raw)
        else:
            path.write_text("---\n" + textwrap.dedent(front).strip() + "\n---\n" + body, encoding="utf-8")
        return path

    def config(self):
        from publisher.config import load_config

        return load_config(self.root / "config.yaml")


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return Site(tmp_path / "site")


@pytest.fixture
def server():
    """A real SMTP server (aiosmtpd) on 127.0.0.1 that keeps every message it accepts."""
    from smtp_helpers import SmtpServer

    with SmtpServer() as s:
        yield s
