"""A missing, mistyped or unreadable posts folder never empties the published feeds (issue 15,
item 3). Real files, real permissions, real `publisher` processes. As root, a folder's mode
does not stop the reader, so the processes then run without capabilities (setpriv)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def cli(site, *args: str) -> subprocess.CompletedProcess:
    # Root reads a mode-000 folder anyway (CAP_DAC_OVERRIDE): drop every capability.
    prefix = (["setpriv", "--bounding-set=-all", "--inh-caps=-all"]
              if os.geteuid() == 0 else [])
    return subprocess.run([*prefix, sys.executable, "-m", "publisher.cli", "--config",
                           str(site.root / "config.yaml"), *args],
                          capture_output=True, text=True, timeout=120)


def snapshot(folder) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


@pytest.fixture
def built(site):
    site.post("blog/a.md", "title: Alpha\npubDate: 2024-01-01\ntags: [x]")
    site.post("blog/b.md", "title: Beta\npubDate: 2024-01-02\ntags: [y]")
    site.post("notes/c.md", "title: Gamma note\npubDate: 2024-01-03\ntags: [z]")
    proc = cli(site, "build")
    assert proc.returncode == 0, proc.stderr
    feeds = snapshot(site.root / "public")
    assert "tags/z/rss.xml" in feeds and b"Gamma note" in feeds["rss.xml"]
    return feeds


@pytest.fixture
def locked():
    folders = []

    def lock(folder):
        folder.chmod(0)
        folders.append(folder)

    yield lock
    for folder in folders:
        folder.chmod(0o755)


@pytest.mark.parametrize("command", ["build", "run", "send", "check"])
def test_a_mistyped_content_dir_is_exit_2_and_writes_nothing(site, built, command):
    site.write_config(content={"dir": "contnet"})
    before = sorted(p.name for p in site.root.iterdir())
    proc = cli(site, command, "--quiet")

    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        f"publisher: config error: {site.root / 'config.yaml'}: content.dir: the posts folder "
        f"'{site.root / 'contnet'}' does not exist; nothing was written (the feeds stay as "
        "they are)"]
    assert snapshot(site.root / "public") == built
    assert sorted(p.name for p in site.root.iterdir()) == before


def test_an_unreadable_content_dir_is_exit_2_and_writes_nothing(site, built, locked):
    locked(site.content)
    proc = cli(site, "build")

    assert proc.returncode == 2
    assert "content.dir: the posts folder" in proc.stderr
    assert "cannot be read (Permission denied)" in proc.stderr
    assert snapshot(site.root / "public") == built


def test_an_unreadable_subfolder_is_named_and_its_posts_stay_in_the_feeds(site, built, locked):
    locked(site.content / "notes")
    proc = cli(site, "build")

    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        "content/notes: folder cannot be read (Permission denied); its 1 post kept as last read"]
    assert snapshot(site.root / "public") == built  # Gamma and tags/z are still published


def test_check_checks_the_content_folder(site):
    site.write_config(content={"dir": "missing"})
    proc = cli(site, "check")

    assert proc.returncode == 2 and "config OK" not in proc.stdout
    assert "content.dir: the posts folder" in proc.stderr
