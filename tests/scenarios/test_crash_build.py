"""Files are never left half-written: `publisher build` killed with SIGKILL at 50 random
points leaves every feed on disk equal to either the old or the new complete file, and the
state database intact; a read-only output folder and a full disk give a clear error (naming
the file and the reason, exit status 1) and change no file into anything but a complete feed.

The site flips between two versions, A and B, before each kill (different titles, and tags
that exist in one version only, so tag feeds are created and deleted), so a file may hold
A or B, whatever mix of the two the kills left, but never anything else."""

from __future__ import annotations

import os
import random
import shutil
import sqlite3
import subprocess
import time
from contextlib import contextmanager, nullcontext
from datetime import datetime, timezone
from pathlib import Path

import pytest
from reliability_helpers import BuildForks, FEED_NAMES, feed_problems, run_cli, snapshot
from sites import make_config

from publisher.content import load_posts, render_html
from publisher.feeds import render_feeds

NOW = datetime(2030, 1, 1, tzinfo=timezone.utc)
POSTS = 100
TAGS = 25


def write_version(root: Path, version: str, *, big: bool = False) -> None:
    """POSTS posts; tag i of post n depends on the version, so each version has tags the other
    lacks. Written with plain file writes (the content folder is not under test). `big` adds
    a 1.5 MB post, so that the first feeds written take milliseconds, not microseconds."""
    if big:
        (root / "content" / "big.md").write_text(
            f"---\ntitle: Big {version}\npubDate: 2024-02-01\ntags: [big]\n---\n"
            + f"A long paragraph of version {version}, over and over. " * 30000 + "\n", encoding="utf-8")
    for n in range(POSTS):
        tags = [f"topic {(n + k) % TAGS}" for k in range(3)]
        tags.append(f"only {version} {n % 7}")
        text = (f"---\ntitle: \"Post {n} — version {version}\"\npubDate: 2024-01-{1 + n % 28:02d}"
                f"T{n % 24:02d}:00:00Z\ntags: {tags!r}\n---\n"
                + f"Paragraph {n} of version {version}, with a [link](../p{n - 1}/).\n\n" * 20)
        (root / "content" / f"p{n:03d}.md").write_text(text, encoding="utf-8")


def sqlite_file(config) -> Path | None:
    url = config.database_url
    return Path(url.split("///", 1)[1]) if url.startswith("sqlite:///") else None


def feeds_of(config) -> dict[str, bytes]:
    loaded = load_posts(config, NOW)
    assert loaded.problems == []
    return render_feeds(loaded.posts, config, render_html)


def feed_files(out: Path) -> dict[str, bytes]:
    return {rel: data for rel, data in snapshot(out).items() if rel.rsplit("/", 1)[-1] in FEED_NAMES}


def temp_files(out: Path) -> list[str]:
    return [rel for rel in snapshot(out) if rel.rsplit("/", 1)[-1] not in FEED_NAMES]


def integrity(db: Path | None) -> str:
    """SQLite's own consistency check of the state file (PostgreSQL: the server's business)."""
    if db is None:
        return "ok"
    conn = sqlite3.connect(db)
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()


def test_build_killed_at_50_random_points_leaves_only_old_or_new_feeds(tmp_path):
    seed = 50
    rng = random.Random(seed)
    config = make_config(tmp_path / "site", feeds={"limit": 0})
    out, root = config.output_dir, config.root
    expected = {}
    for version in "AB":
        write_version(root, version, big=True)
        expected[version] = feeds_of(config)
    assert set(expected["A"]) != set(expected["B"])  # tag feeds appear and disappear

    # The old site, built in full, then the new one (so the render cache holds both), then a
    # build back to the old one: how long a build takes, and how long its writing phase lasts.
    def atom_inode() -> tuple[int, int]:
        st = os.stat(out / "atom.xml")
        return st.st_ino, st.st_mtime_ns  # replaced, or (a non-atomic writer) rewritten

    def wait_for_writing(inode: tuple[int, int]) -> bool:
        """Until atom.xml (the first file written) is replaced; False if the build ended."""
        while True:
            status = builds.wait(0)
            if status is not None:
                return False
            try:
                if atom_inode() != inode:
                    return True
            except FileNotFoundError:
                pass
            time.sleep(0.0005)

    builds = BuildForks(config.path)
    for version in "AB":
        write_version(root, version, big=True)
        builds.start()
        assert builds.wait() == 0
        assert feed_files(out) == expected[version]
    write_version(root, "A", big=True)
    inode = atom_inode()
    builds.start()
    assert wait_for_writing(inode)
    writing_started = time.monotonic()
    assert builds.wait() == 0
    duration = time.monotonic() - builds.started
    writing = time.monotonic() - writing_started

    # Half the kills at a random moment of the whole build (start-up, scan, render, state
    # writes), half once the first feed has changed: at that moment or a random one after.
    kills, rounds, mixed, finished = 0, 0, 0, 0
    points = []
    while kills < 50:
        rounds += 1
        assert rounds <= 150, f"only {kills} kills landed in {rounds} builds"
        # The version atom.xml does not hold, so that the build has to replace it first.
        version = "A" if feed_files(out)["atom.xml"] == expected["B"]["atom.xml"] else "B"
        write_version(root, version, big=True)
        # Kill points, in turn: anywhere in the build; anywhere while writing; the moment the
        # first (1.5 MB) feed changes; anywhere while writing.
        while_writing = kills % 2 == 1
        delay = 0.0 if kills % 4 == 3 else rng.uniform(0, writing if while_writing else duration)
        inode = atom_inode()
        builds.start()
        if while_writing and not wait_for_writing(inode):
            raise AssertionError(f"round {rounds}: the build ended without replacing atom.xml")
        status = builds.wait(delay)
        if status is None:
            status = builds.kill()
        if status == -9:
            kills += 1
            points.append(("writing+" if while_writing else "") + f"{delay:.3f}")
        else:  # it finished first: then it must have written exactly the new site
            finished += 1
            duration = 0.7 * duration + 0.3 * (time.monotonic() - builds.started)
            assert status == 0
            assert feed_files(out) == expected[version], (
                f"round {rounds}: a build that finished after earlier kills wrote stale feeds")

        on_disk = feed_files(out)
        bad = [rel for rel, data in on_disk.items()
               if data != expected["A"].get(rel) and data != expected["B"].get(rel)]
        assert bad == [], f"round {rounds} killed at {points[-1:]} (seed {seed}): half-written {bad[:5]}"
        for rel in ("rss.xml", "atom.xml", "feed.json"):
            assert rel in on_disk, f"round {rounds}: {rel} is gone"
        versions = {("A" if data == expected["A"].get(rel) else "B") for rel, data in on_disk.items()
                    if expected["A"].get(rel) != expected["B"].get(rel)}
        mixed += len(versions) > 1
        assert integrity(sqlite_file(config)) == "ok", f"round {rounds}: state database damaged"
    builds.close()
    print(f"\ncrash-build seed {seed}: {kills} kills in {rounds} builds of {duration:.2f}s "
          f"({writing:.3f}s writing {len(expected['B'])} feeds); {mixed} left a mix of old and "
          f"new feeds, {finished} finished before their kill point, {len(temp_files(out))} "
          f"temporary files left behind; kill points (s) {points}")
    assert mixed >= 10, "too few kills landed while the feeds were being written"

    # The next build completes the job: exactly the new site's feeds, all of them clean, and
    # the temporary files the kills left are cleared once they are old enough to be orphans.
    hour_ago = time.time() - 3600
    for rel in temp_files(out):
        os.utime(out / rel, (hour_ago, hour_ago))
    version = "A" if version == "B" else "B"
    write_version(root, version, big=True)  # so that the build has feeds to write
    final = run_cli(config.path, "build")
    assert final.returncode == 0, final.stderr
    assert feed_files(out) == expected[version]
    assert feed_problems(out) == []
    assert temp_files(out) == []
    assert integrity(sqlite_file(config)) == "ok"


def test_orphaned_temporary_files_are_removed_but_a_running_builds_are_kept(tmp_path):
    config = make_config(tmp_path / "site")
    write_version(config.root, "A")
    assert run_cli(config.path, "build").returncode == 0
    out = config.output_dir
    tag = sorted((out / "tags").iterdir())[0]
    orphans = [out / ".rss.xml.0123456789ab.tmp", tag / ".feed.json.ba9876543210.tmp"]
    fresh = out / ".atom.xml.aaaaaaaaaaaa.tmp"  # a concurrent build's, still being written
    foreign = out / ".notes.tmp"  # not ours
    for path in orphans + [fresh, foreign]:
        path.write_bytes(b"<rss><chann")
    for path in orphans + [foreign]:
        os.utime(path, (time.time() - 3600, time.time() - 3600))
    write_version(config.root, "B")
    assert run_cli(config.path, "build").returncode == 0
    assert [p.exists() for p in orphans] == [False, False]
    assert fresh.exists() and foreign.exists()


# --- a read-only output folder, a full disk --------------------------------------------------

def _can_mount() -> bool:
    return os.geteuid() == 0 and shutil.which("mount") is not None


@contextmanager
def tmpfs(path: Path, size: str):
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


@contextmanager
def read_only_folder(path: Path):
    """Make `path` unwritable for real: chmod for a normal user; for root (whom chmod does
    not stop) a read-only remount of a tmpfs holding it."""
    if os.geteuid() != 0:
        path.chmod(0o555)
        try:
            yield
        finally:
            path.chmod(0o755)
        return
    if not _can_mount():
        pytest.skip("root without mount: cannot make a folder read-only")
    done = subprocess.run(["mount", "-o", "remount,ro", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    try:
        yield
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(path)], capture_output=True)


def copy_into(src: dict[str, bytes], out: Path) -> None:
    for rel, data in src.items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(data)


def test_read_only_output_folder_is_a_clear_error_and_nothing_changes(tmp_path):
    config = make_config(tmp_path / "site")
    root, out = config.root, config.output_dir
    write_version(root, "A")
    old = feeds_of(config)
    holder = tmpfs(out, "16m") if os.geteuid() == 0 else nullcontext()
    with holder:
        copy_into(old, out)
        before = snapshot(out)
        write_version(root, "B")
        with read_only_folder(out):
            result = run_cli(config.path, "build")
        after = snapshot(out)
    assert result.returncode == 1, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("publisher: error: "), result.stderr
    assert "cannot" in result.stderr and str(out) in result.stderr
    assert any(r in result.stderr for r in ("Read-only file system", "Permission denied")), result.stderr
    assert after == before


def test_full_disk_is_a_clear_error_and_leaves_only_complete_feeds(tmp_path):
    """A tmpfs too small for the new feeds: the build stops at the first file that does not
    fit, names it and says why; every file is still one complete feed, old or new."""
    config = make_config(tmp_path / "site", feeds={"limit": 0})
    root, out = config.root, config.output_dir
    write_version(root, "A")
    old = feeds_of(config)
    # Room for the old feeds plus a little: the new ones (with longer bodies) cannot fit.
    write_version(root, "B")
    for n in range(POSTS):
        path = root / "content" / f"p{n:03d}.md"
        path.write_text(path.read_text() + "More text. " * 300, encoding="utf-8")
    new = feeds_of(config)
    pages = sum(-(-len(v) // 4096) for v in old.values()) + 64  # + folders, + some room
    assert sum(len(v) for v in new.values()) > pages * 4096 + 2**20
    if not _can_mount():
        pytest.skip("needs root to mount a small tmpfs")
    with tmpfs(out, f"{pages * 4}k"):
        copy_into(old, out)
        result = run_cli(config.path, "build")
        on_disk = feed_files(out)
        leftovers = temp_files(out)
    assert result.returncode == 1, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    assert "No space left on device" in result.stderr and "cannot write feed" in result.stderr
    assert [rel for rel, data in on_disk.items() if data not in (old.get(rel), new.get(rel))] == []
    assert leftovers == []  # the temporary file that did not fit was removed


def build_on_full_state_disk(tmp_path):
    """Build once with room, fill the disk under the state database (leaving room for it to
    open, not for the new version's rendered HTML and scan cache), build again; then make room
    and build a third time. Returns (second build, third build, database path)."""
    if not _can_mount():
        pytest.skip("needs root to mount a small tmpfs")
    small = tmp_path / "small"
    with tmpfs(small, "4m"):
        config = make_config(tmp_path / "site", state={"database": str(small / "state.db")})
        write_version(config.root, "A")
        first = run_cli(config.path, "build")
        assert first.returncode == 0, first.stderr
        filler = small / "filler"
        with open(filler, "wb", buffering=0) as f:
            try:
                while True:
                    f.write(b"\0" * 4096)
            except OSError:
                pass
        os.truncate(filler, filler.stat().st_size - 96 * 1024)
        write_version(config.root, "B")
        full = run_cli(config.path, "build")
        filler.unlink()
        again = run_cli(config.path, "build")
        return full, again, integrity(small / "state.db"), config, feeds_of(config)


def test_full_disk_under_the_state_database_leaves_it_usable(tmp_path):
    full, again, check, config, expected = build_on_full_state_disk(tmp_path)
    assert full.returncode != 0  # it did not pretend to succeed
    assert again.returncode == 0, again.stderr
    assert check == "ok"
    assert feed_files(config.output_dir) == expected


def test_full_disk_under_the_state_database_is_a_clear_error(tmp_path):
    full, _again, _check, _config, _expected = build_on_full_state_disk(tmp_path)
    print("\nfull state disk:", full.stderr.strip()[-500:])
    assert "Traceback" not in full.stderr, full.stderr[-3000:]
    assert full.returncode == 1
    assert full.stderr.startswith("publisher: error: state database "), full.stderr
    assert "full" in full.stderr.split("\n")[0]


def test_full_disk_simulated_is_a_clear_error_and_leaves_only_complete_feeds(tmp_path, monkeypatch):
    """The same through the command, without root: the disk fills up (ENOSPC from fsync) at
    the 5th feed written. Exit status 1, the file and the reason named, no traceback."""
    import errno

    from click.testing import CliRunner

    from publisher import output
    from publisher.cli import main

    config = make_config(tmp_path / "site", feeds={"limit": 0})
    write_version(config.root, "A")
    old = feeds_of(config)
    copy_into(old, config.output_dir)
    write_version(config.root, "B")
    new = feeds_of(config)
    calls = []
    real_fsync = os.fsync

    def fsync(fd):
        calls.append(fd)
        if len(calls) >= 5:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(output.os, "fsync", fsync)
    # One writer, so "the 5th fsync" is the 5th file in order (from PARALLEL_WRITES_FROM files
    # threads write them, and which one fails is a race; tests/test_parallel.py pins that case).
    monkeypatch.setattr(output, "PARALLEL_WRITES_FROM", 10**9)
    result = CliRunner().invoke(main, ["--config", str(config.path), "build"])
    assert result.exit_code == 1, (result.exit_code, result.output, result.exception)
    assert "cannot write feed: No space left on device" in result.stderr
    assert result.stderr.startswith("publisher: error: ")
    on_disk = feed_files(config.output_dir)
    assert [rel for rel, data in on_disk.items() if data not in (old.get(rel), new.get(rel))] == []
    assert sum(on_disk[rel] == new[rel] for rel in on_disk if rel in new) == 4  # then it stopped
    assert temp_files(config.output_dir) == []
