"""output.py: writes and removals inside the output folder never pass through a symlink below
it (a blog repository may commit `public/tags -> /elsewhere`); the output folder itself may be
one (the user's choice). Real files and real symlinks in tmp dirs; the build through the CLI."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest
from reliability_helpers import run_cli, snapshot
from sites import make_config, write_post

from publisher import output, pipeline
from publisher.errors import OutputError

NOW = datetime(2024, 6, 1, tzinfo=timezone.utc)


def tree(folder: Path) -> dict[str, bytes | str]:
    """Every entry below `folder`, links as their target (never followed), files as bytes."""
    found: dict[str, bytes | str] = {}
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder).as_posix()
        if p.is_symlink():
            found[rel] = "-> " + str(p.readlink())
        elif p.is_file():
            found[rel] = p.read_bytes()
        else:
            found[rel] = "dir"
    return found


def elsewhere(tmp_path: Path) -> Path:
    """A folder that is not ours, holding what a build would remove or overwrite if it went
    there: a stale-looking tag feed, an archive page, a file named like a feed."""
    other = tmp_path / "elsewhere"
    (other / "old-tag").mkdir(parents=True)
    (other / "old-tag" / "rss.xml").write_bytes(b"not ours: a stale-looking tag feed")
    (other / "t" / "archive" / "1").mkdir(parents=True)
    (other / "t" / "archive" / "1" / "atom.xml").write_bytes(b"not ours: an archive page")
    (other / "feed.json").write_bytes(b"not ours: a file named like a feed")
    return other


def tagged_site(tmp_path: Path):
    config = make_config(tmp_path / "site")
    write_post(config.root, "a.md", {"title": "A", "pubDate": "2024-01-01", "tags": ["t"]})
    write_post(config.root, "b.md", {"title": "B", "pubDate": "2024-01-02", "tags": ["u"]})
    return config


def test_a_symlinked_tags_folder_is_neither_written_through_nor_emptied(tmp_path):
    other = elsewhere(tmp_path)
    before = tree(other)
    config = tagged_site(tmp_path)
    config.output_dir.mkdir()
    (config.output_dir / "tags").symlink_to(other)
    result = run_cli(config.path, "build")
    assert tree(other) == before  # nothing written there, nothing removed
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert (f"publisher: error: {config.output_dir / 'tags'}: a symbolic link inside the output "
            "folder: nothing is written through it (6 not written: tags/t/atom.xml, "
            "tags/t/feed.json, tags/t/rss.xml, ...)") in result.stderr
    # The site's own feeds are written all the same, and the link is left as it was.
    assert {"rss.xml", "atom.xml", "feed.json"} <= set(snapshot(config.output_dir))
    assert (config.output_dir / "tags").readlink() == other


def test_stale_feeds_are_never_removed_through_a_symlinked_folder(tmp_path):
    """No tag feed to write at all: the removal of stale ones alone must not follow the link
    (it used to delete elsewhere/old-tag/rss.xml, a file that was never ours)."""
    other = elsewhere(tmp_path)
    before = tree(other)
    config = make_config(tmp_path / "site")
    write_post(config.root, "a.md", {"title": "A", "pubDate": "2024-01-01"})
    config.output_dir.mkdir()
    (config.output_dir / "tags").symlink_to(other)
    (config.output_dir / "categories").mkdir()
    (config.output_dir / "categories" / "c").symlink_to(other / "old-tag")
    report = pipeline.build(config, NOW)
    assert report.problems == []
    assert tree(other) == before


def test_a_symlinked_tag_folder_or_feed_file_is_refused_and_the_rest_written(tmp_path):
    other = elsewhere(tmp_path)
    before = tree(other)
    out = tmp_path / "public"
    (out / "tags").mkdir(parents=True)
    (out / "tags" / "t").symlink_to(other / "t")
    (out / "feed.json").symlink_to(other / "feed.json")
    files = {"rss.xml": b"<rss/>", "feed.json": b"{}", "tags/t/rss.xml": b"<rss/>",
             "tags/u/rss.xml": b"<rss/>"}
    with pytest.raises(OutputError) as raised:
        output.write_files(files, out)
    assert str(raised.value).splitlines() == [
        f"{out / 'feed.json'}: a symbolic link inside the output folder: nothing is written "
        "through it (1 not written: feed.json)",
        f"{out / 'tags/t'}: a symbolic link inside the output folder: nothing is written "
        "through it (1 not written: tags/t/rss.xml)"]
    assert tree(other) == before
    assert (out / "rss.xml").read_bytes() == b"<rss/>" and (out / "tags/u/rss.xml").read_bytes() == b"<rss/>"
    assert (out / "feed.json").is_symlink() and (out / "tags" / "t").is_symlink()


def test_media_copies_and_the_newsletter_archive_are_not_written_through_a_symlink(tmp_path):
    other = elsewhere(tmp_path)
    before = tree(other)
    out = tmp_path / "public"
    out.mkdir()
    (out / "media").symlink_to(other)
    (out / "newsletter").symlink_to(other)
    files = {"media/0123456789ab-x.png": b"\x89PNG", "newsletter/index.html": b"<html>",
             "newsletter/1/index.html": b"<html>"}
    with pytest.raises(OutputError, match="nothing is written through it"):
        output.write_files(files, out)
    assert tree(other) == before


def test_the_output_folder_itself_may_be_a_symlink(tmp_path):
    """The user's choice (a folder served by the web server elsewhere): written through."""
    real = tmp_path / "www"
    real.mkdir()
    config = tagged_site(tmp_path)
    config.output_dir.symlink_to(real)
    assert pipeline.build(config, NOW).problems == []
    assert {"rss.xml", "tags/t/rss.xml", "tags/u/feed.json"} <= set(snapshot(real))
    # A stale tag feed there is removed as usual.
    (real / "tags" / "gone").mkdir()
    (real / "tags" / "gone" / "rss.xml").write_bytes(b"stale")
    write_post(config.root, "c.md", {"title": "C", "pubDate": "2024-01-03"})
    pipeline.build(config, NOW)
    assert not (real / "tags" / "gone").exists()


def test_a_folder_swapped_for_a_symlink_after_the_check_is_still_not_entered(tmp_path):
    """The check before writing is not the only guard: every folder is entered by its
    parent's descriptor with O_NOFOLLOW, so a link made in between is refused there."""
    other = elsewhere(tmp_path)
    before = tree(other)
    out = tmp_path / "public"
    out.mkdir()
    (out / "tags").symlink_to(other)
    with pytest.raises(OutputError) as raised:
        output._write_atomically(out, "tags/t/rss.xml", b"<rss/>")
    assert str(raised.value) == (f"{out / 'tags/t/rss.xml'}: not written: {out / 'tags'}: a symbolic "
                                 "link inside the output folder: nothing is written or removed through it")
    assert output.remove_stale(out, set(), "tags", ("rss.xml", "atom.xml", "feed.json")) == []
    assert output.remove_stale_archives(out, set(), ("atom.xml",), "tags", "archive") == []
    assert tree(other) == before
