"""RFC 5005 archived feeds (feeds.archive): a reader that follows prev-archive from the
subscription feed finds every post exactly once; pages are stable, so a new post changes only
the feed and the newest page. Real sites on disk, real builds, feedparser as the reader."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import feedparser
import pytest
from lxml import etree
from reliability_helpers import snapshot
from sites import make_config, write_post

from publisher import pipeline

SITE = "https://blog.test.example"
FH = "http://purl.org/syndication/history/1.0"
ATOM = "http://www.w3.org/2005/Atom"


def archived_site(tmp_path: Path, posts: int, **feeds):
    root = tmp_path / "site"
    config = make_config(root, feeds={"limit": 5, "archive": True, "archive_size": 4, **feeds})
    for n in range(posts):
        add_post(root, n)
    return root, config


def add_post(root: Path, n: int, **front) -> None:
    day = date(2023, 1, 1) + timedelta(days=n)
    write_post(root, f"post-{n:03d}.md", {"title": f"Post {n}", "pubDate": day.isoformat(), **front})


def local(config, url: str) -> Path:
    assert url.startswith(SITE + "/"), url
    return config.output_dir / url[len(SITE) + 1:]


def follow_prev_archive(config, name: str) -> list[list[str]]:
    """What a reader does: parse the feed, then each prev-archive page in turn. Returns the
    post links of each document, feed first."""
    documents, url, seen = [], f"{SITE}/{name}", set()
    while url:
        assert url not in seen, f"a loop in the prev-archive chain at {url}"
        seen.add(url)
        parsed = feedparser.parse(local(config, url).read_bytes())
        assert not parsed.bozo, parsed.get("bozo_exception")
        documents.append([entry.link for entry in parsed.entries])
        prev = [link.href for link in parsed.feed.links if link.rel == "prev-archive"]
        assert len(prev) <= 1
        url = prev[0] if prev else ""
    return documents


def post_url(n: int) -> str:
    return f"{SITE}/blog/post-{n:03d}/"


@pytest.mark.parametrize("name", ["rss.xml", "atom.xml"])
def test_following_prev_archive_collects_every_post_exactly_once(tmp_path, name):
    root, config = archived_site(tmp_path, 23)
    pipeline.build(config)
    documents = follow_prev_archive(config, name)
    # The feed keeps feeds.limit posts; 18 older posts fill pages of 4 from the oldest up:
    # pages 1-4 are full, page 5 (the newest) holds the 2 posts just older than the feed.
    assert [len(d) for d in documents] == [5, 2, 4, 4, 4, 4]
    collected = [link for document in documents for link in document]
    assert collected == [post_url(n) for n in reversed(range(23))]  # each once, newest first


def test_json_feed_pages_through_next_url(tmp_path):
    root, config = archived_site(tmp_path, 23)
    pipeline.build(config)
    urls, url = [], f"{SITE}/feed.json"
    while url:
        doc = json.loads(local(config, url).read_text(encoding="utf-8"))
        urls += [item["url"] for item in doc["items"]]
        url = doc.get("next_url", "")
    assert urls == [post_url(n) for n in reversed(range(23))]


def test_each_archive_page_is_marked_and_linked(tmp_path):
    root, config = archived_site(tmp_path, 13)  # 8 archived posts: 2 full pages
    pipeline.build(config)
    out = config.output_dir
    assert sorted(p.relative_to(out).as_posix() for p in (out / "archive").rglob("*.*")) == [
        f"archive/{n}/{name}" for n in (1, 2) for name in ("atom.xml", "feed.json", "rss.xml")]

    def links(path: Path) -> dict[str, str]:
        root_el = etree.parse(str(path)).getroot()
        holder = root_el.find("channel") if root_el.tag == "rss" else root_el
        found = {}
        for link in holder.iter(f"{{{ATOM}}}link", "link"):
            if link.getparent() is holder and link.get("rel"):
                found[link.get("rel")] = link.get("href")
        return found

    def archived(path: Path) -> bool:
        return etree.parse(str(path)).getroot().find(f".//{{{FH}}}archive") is not None

    for name in ("rss.xml", "atom.xml"):
        feed = links(out / name)
        assert feed["prev-archive"] == f"{SITE}/archive/2/{name}"
        assert "current" not in feed and "next-archive" not in feed
        assert not archived(out / name)
        page1, page2 = links(out / "archive/1" / name), links(out / "archive/2" / name)
        assert page1["self"] == f"{SITE}/archive/1/{name}"
        assert page1["current"] == page2["current"] == f"{SITE}/{name}"
        assert "prev-archive" not in page1
        assert page1["next-archive"] == f"{SITE}/archive/2/{name}"
        assert page2["prev-archive"] == f"{SITE}/archive/1/{name}"
        assert page2["next-archive"] == f"{SITE}/{name}"  # the newest page: the feed follows
        assert archived(out / "archive/1" / name) and archived(out / "archive/2" / name)


def changed_files(before: dict[str, bytes], after: dict[str, bytes]) -> list[str]:
    assert set(before) <= set(after), "nothing is ever removed by adding a post"
    return sorted(rel for rel in after if before.get(rel) != after[rel])


def test_adding_a_post_changes_only_the_feed_and_the_newest_page(tmp_path):
    root, config = archived_site(tmp_path, 14)  # 9 archived: pages 1-2 full, page 3 holds 1
    pipeline.build(config)
    before = snapshot(config.output_dir)
    add_post(root, 14)
    pipeline.build(config)
    after = snapshot(config.output_dir)
    # Per format exactly two documents: the feed and the newest archive page.
    assert changed_files(before, after) == sorted(
        [name for name in ("rss.xml", "atom.xml", "feed.json")]
        + [f"archive/3/{name}" for name in ("rss.xml", "atom.xml", "feed.json")])

    pipeline.build(config)  # unchanged: nothing rewritten
    assert snapshot(config.output_dir) == after


def test_a_full_newest_page_gains_one_link_when_the_next_page_starts(tmp_path):
    root, config = archived_site(tmp_path, 13)  # 8 archived: pages 1-2 full
    pipeline.build(config)
    before = snapshot(config.output_dir)
    add_post(root, 13)
    pipeline.build(config)
    after = snapshot(config.output_dir)
    names = ("rss.xml", "atom.xml", "feed.json")
    assert changed_files(before, after) == sorted(
        list(names) + [f"archive/2/{n}" for n in ("rss.xml", "atom.xml")]
        + [f"archive/3/{n}" for n in names])
    # Page 2 kept its posts; only its next-archive moved from the feed to page 3 (JSON Feed
    # links only backwards, so its page 2 did not change at all).
    old, new = before["archive/2/atom.xml"].decode(), after["archive/2/atom.xml"].decode()
    assert new == old.replace(f'href="{SITE}/atom.xml" rel="next-archive"',
                              f'href="{SITE}/archive/3/atom.xml" rel="next-archive"')


def test_stale_pages_are_removed_and_archive_off_removes_them_all(tmp_path):
    root, config = archived_site(tmp_path, 14)
    pipeline.build(config)
    assert (config.output_dir / "archive/3/rss.xml").is_file()
    (root / "content" / "post-000.md").unlink()
    (root / "content" / "post-001.md").unlink()
    pipeline.build(config)  # 7 archived posts: 2 pages
    assert sorted(p.name for p in (config.output_dir / "archive").iterdir()) == ["1", "2"]
    assert follow_prev_archive(config, "atom.xml")[1:] == [
        [post_url(n) for n in (8, 7, 6)], [post_url(n) for n in (5, 4, 3, 2)]]

    config = make_config(root, feeds={"limit": 5})
    pipeline.build(config)
    assert not (config.output_dir / "archive").exists()
    assert sorted(p.name for p in config.output_dir.iterdir()) == ["atom.xml", "feed.json", "rss.xml"]


def test_tag_feeds_are_archived_only_with_archive_tags(tmp_path):
    root, config = archived_site(tmp_path, 0)
    for n in range(9):
        add_post(root, n, tags=["python"])
    pipeline.build(config)
    assert not (config.output_dir / "tags/python/archive").exists()
    assert "prev-archive" not in (config.output_dir / "tags/python/rss.xml").read_text()

    config = make_config(root, feeds={"limit": 5, "archive": True, "archive_size": 4,
                                     "archive_tags": True})
    pipeline.build(config)
    documents = follow_prev_archive(config, "tags/python/rss.xml")
    assert [link for d in documents for link in d] == [post_url(n) for n in reversed(range(9))]


def test_no_archive_pages_when_the_feed_holds_everything(tmp_path):
    root, config = archived_site(tmp_path, 5)  # exactly feeds.limit posts
    pipeline.build(config)
    assert not (config.output_dir / "archive").exists()
    assert "prev-archive" not in (config.output_dir / "atom.xml").read_text()
    config = make_config(root, feeds={"limit": 0, "archive": True})  # 0: the feed holds all
    add_post(root, 5)
    pipeline.build(config)
    assert not (config.output_dir / "archive").exists()
