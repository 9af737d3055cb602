"""The state database file: an empty, foreign or damaged file is an error that names the file
and the way back, never a fresh start and never a traceback; `publisher backup` copies it
safely (issue 15, items 4 and 5). Real files, real `publisher` processes; SQLite only."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from sites import PG_BASE
from publisher import pipeline
from publisher.state import State

pytestmark = pytest.mark.skipif(bool(PG_BASE), reason="the state *file* is SQLite's")
SUBSCRIBERS = [f"reader{i:03d}@example.org" for i in range(500)]


def cli(site, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "publisher.cli", "--config",
                           str(site.root / "config.yaml"), *args],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def running(site):
    """A site that has run once, with 500 subscribers: its state.db is worth keeping."""
    site.post("a.md", "title: A\npubDate: 2024-01-01")
    config = site.config()
    pipeline.run_once(config)
    state = State(config.database_url)
    state.add_subscribers([(a, "") for a in SUBSCRIBERS])
    state.close()
    site.db = Path(config.database_url[len("sqlite:///"):])
    return site


def test_an_empty_state_file_is_an_error_not_a_new_site(running):
    for extra in ("-wal", "-shm"):
        Path(f"{running.db}{extra}").unlink(missing_ok=True)
    running.db.write_bytes(b"")
    proc = cli(running, "run", "--quiet")

    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        f"publisher: error: state database {running.db} is empty (0 bytes), not a publisher "
        "database: nothing was done. If it was truncated, restore a backup (`publisher backup` "
        "makes them); to start this site afresh, delete the file"]
    assert "first run" not in proc.stdout
    assert running.db.stat().st_size == 0  # left as found, for whoever investigates


def test_a_foreign_sqlite_database_is_not_taken_over(site):
    db = Path(site.config().database_url[len("sqlite:///"):])
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY, path TEXT)")
    conn.close()
    proc = cli(site, "subscribers", "list")

    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        f"publisher: error: state database sqlite:///{db} is not a publisher database (it "
        "holds photos but no publisher schema): nothing was done. Check state.database in "
        "the config"]
    with sqlite3.connect(db) as conn:
        assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master")] == ["photos"]
    conn.close()


def test_a_file_that_is_not_sqlite_is_an_error(site):
    db = Path(site.config().database_url[len("sqlite:///"):])
    db.write_text("site: notes\n")
    proc = cli(site, "build")

    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        f"publisher: error: state database {db} is not a SQLite database (it starts with "
        "b'site: no'): nothing was done. Check state.database in the config, or restore a "
        "backup"]
    assert db.read_text() == "site: notes\n"


def corrupt(db: Path) -> None:
    """Overwrite the start of every page after the schema's (the tables' b-tree pages)."""
    page = 4096
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        last_root = max(r[0] for r in conn.execute("SELECT rootpage FROM sqlite_master"))
    conn.close()
    size = db.stat().st_size
    with db.open("r+b") as f:
        for number in range(last_root + 1, size // page + 1):
            f.seek((number - 1) * page)
            f.write(b"\xa5" * 64)


@pytest.mark.parametrize("command", [("subscribers", "list"), ("send",), ("check",),
                                     ("backup",)])
def test_damaged_pages_give_one_line_with_the_way_back(running, command):
    corrupt(running.db)
    proc = cli(running, *command)

    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    damaged = [line for line in proc.stderr.splitlines() if "is damaged" in line]
    assert len(damaged) == 1, proc.stderr
    line = damaged[0]
    assert line.startswith(f"publisher: error: state database {running.db} is damaged ("
                           if command != ("check",) else
                           f"state database {running.db} is damaged (")
    assert "malformed" in line
    assert f"`sqlite3 {running.db} .recover | sqlite3 recovered.db`" in line
    assert "restore a backup" in line


def test_backup_copies_the_database_and_the_copy_restores(running):
    dest = running.root / "copies" / "state-1.db"
    proc = cli(running, "backup", str(dest))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"state database backed up to {dest} (")

    # A backup never overwrites.
    again = cli(running, "backup", str(dest))
    assert again.returncode == 2
    assert again.stderr.startswith(f"publisher: usage error: {dest} already exists")

    # Disaster, then the README's restore: the copy replaces the file.
    running.db.write_bytes(b"")
    for extra in ("-wal", "-shm"):
        Path(f"{running.db}{extra}").unlink(missing_ok=True)
    shutil.copyfile(dest, running.db)
    proc = cli(running, "subscribers", "list")
    assert proc.returncode == 0
    assert sorted(line.split("\t")[0] for line in proc.stdout.splitlines()) == SUBSCRIBERS


def test_backup_defaults_to_a_dated_file_in_backups(running):
    proc = cli(running, "backup", "--quiet")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
    made = list((running.db.parent / "backups").iterdir())
    assert len(made) == 1 and made[0].name.startswith("state-") and made[0].suffix == ".db"
    with sqlite3.connect(made[0]) as conn:
        assert conn.execute("SELECT count(*) FROM subscribers").fetchone() == (500,)
    conn.close()
    assert os.path.getsize(made[0]) > 0
