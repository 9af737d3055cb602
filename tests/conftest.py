"""Shared fixtures only (never imported as a module: helpers live in sites.py and *_helpers.py).
Add fixtures with names prefixed by their area; don't rewrite others'."""

from __future__ import annotations

from pathlib import Path

import pytest

from sites import Site, database_url, drop_pg_schemas


@pytest.fixture(scope="session", autouse=True)
def _drop_pg_schemas():
    yield
    drop_pg_schemas()


@pytest.fixture
def db_url(tmp_path) -> str:
    return database_url(tmp_path)


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return Site(tmp_path / "site")


@pytest.fixture
def server():
    """A real SMTP server (aiosmtpd) on 127.0.0.1 that keeps every message it accepts."""
    from smtp_helpers import SmtpServer

    with SmtpServer() as s:
        yield s
