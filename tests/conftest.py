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


@pytest.fixture(autouse=True)
def _par_force_parallel(monkeypatch):
    """PUBLISHER_TEST_PARALLEL=1 runs every test with the forked worker of content/parallel.py
    taking part from two items on (it otherwise starts at MIN_ITEMS files, MIN_RENDERS renders):
    the suite then proves the parallel path gives what the serial one gives. (Feeds written by
    threads are not forced: a test that fails the 5th fsync call counts calls in time order,
    which threads do not keep; test_parallel.py pins the threaded writes.)"""
    import os

    if os.environ.get("PUBLISHER_TEST_PARALLEL") == "1":
        from publisher.content import parallel

        monkeypatch.setattr(parallel, "MIN_ITEMS", 2)
        monkeypatch.setattr(parallel, "MIN_RENDERS", 2)
