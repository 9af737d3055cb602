"""A feed's face and attachments: site.icon / site.logo, a post's image, enclosures (length
and type from the local file), the podcast tags, and what `publisher check` says of each feed.
Real sites on disk, real builds."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone

import feedparser
from lxml import etree
from reliability_helpers import run_cli
from sites import make_config, write_post

from publisher import cache, pipeline
from publisher.content import load_posts

SITE = "https://blog.test.example"
ATOM = "{http://www.w3.org/2005/Atom}"
ITUNES = "{http://www.itunes.com/dtds/podcast-1.0.dtd}"
NOW = datetime(2030, 1, 1, tzinfo=timezone.utc)


def read(config, name: str) -> bytes:
    return (config.output_dir / name).read_bytes()


def test_icon_and_logo_in_every_format(tmp_path):
    root = tmp_path / "site"
    config = make_config(root, site={"icon": "/favicon.png", "logo": "https://cdn.example.org/logo.svg"})
    write_post(root, "a.md", {"title": "A", "pubDate": "2024-01-01"})
    pipeline.build(config)
    atom = etree.fromstring(read(config, "atom.xml"))
    assert atom.findtext(f"{ATOM}icon") == f"{SITE}/favicon.png"
    assert atom.findtext(f"{ATOM}logo") == "https://cdn.example.org/logo.svg"
    channel = etree.fromstring(read(config, "rss.xml")).find("channel")
    # RSS <image> must be a GIF, JPEG or PNG: the SVG logo is left out, the PNG icon used,
    # with the channel's own title and link (the validator compares them).
    image = channel.find("image")
    assert [image.findtext(k) for k in ("url", "title", "link")] == [
        f"{SITE}/favicon.png", channel.findtext("title"), channel.findtext("link")]
    doc = json.loads(read(config, "feed.json"))
    assert (doc["icon"], doc["favicon"]) == ("https://cdn.example.org/logo.svg", f"{SITE}/favicon.png")
    parsed = feedparser.parse(read(config, "rss.xml"))
    assert parsed.feed.image.href == f"{SITE}/favicon.png"


def test_no_face_configured_means_no_face_elements(tmp_path):
    root = tmp_path / "site"
    config = make_config(root)
    write_post(root, "a.md", {"title": "A", "pubDate": "2024-01-01"})
    pipeline.build(config)
    assert b"<image>" not in read(config, "rss.xml")
    assert b"<icon>" not in read(config, "atom.xml") and b"<logo>" not in read(config, "atom.xml")
    assert "icon" not in json.loads(read(config, "feed.json"))


def test_enclosures_take_length_and_type_from_the_local_file(tmp_path):
    root = tmp_path / "site"
    config = make_config(root)
    (root / "static" / "audio").mkdir(parents=True)
    (root / "static" / "audio" / "episode 1.mp3").write_bytes(b"\xff\xfb" * 5000)
    (root / "content" / "ep2").mkdir(parents=True)
    (root / "content" / "ep2" / "talk.m4v").write_bytes(b"\0" * 777)
    write_post(root, "ep1.md", {"title": "Episode 1", "pubDate": "2024-01-01",
                                "audio": "/audio/episode 1.mp3"})
    write_post(root, "ep2/index.md", {"title": "Episode 2", "pubDate": "2024-01-02",
                                      "video": "talk.m4v"})
    write_post(root, "ep3.md", {"title": "Episode 3", "pubDate": "2024-01-03",
                                "enclosure": "https://cdn.example.org/ep3.ogg"})
    write_post(root, "ep4.md", {"title": "Episode 4", "pubDate": "2024-01-04",
                                "enclosure": {"url": "https://cdn.example.org/ep4.bin",
                                              "length": 1234, "type": "audio/flac"}})
    write_post(root, "plain.md", {"title": "No enclosure", "pubDate": "2024-01-05"})
    pipeline.build(config)
    expected = {
        "Episode 1": (f"{SITE}/audio/episode%201.mp3", "10000", "audio/mpeg"),
        "Episode 2": (f"{SITE}/blog/ep2/talk.m4v", "777", "video/x-m4v"),
        "Episode 3": ("https://cdn.example.org/ep3.ogg", "0", "audio/ogg"),  # 0: unknown
        "Episode 4": ("https://cdn.example.org/ep4.bin", "1234", "audio/flac"),
    }
    rss = etree.fromstring(read(config, "rss.xml"))
    found = {item.findtext("title"): tuple(item.find("enclosure").get(k) for k in ("url", "length", "type"))
             for item in rss.iter("item") if item.find("enclosure") is not None}
    assert found == expected
    atom = etree.fromstring(read(config, "atom.xml"))
    found = {}
    for entry in atom.iter(f"{ATOM}entry"):
        for link in entry.iter(f"{ATOM}link"):
            if link.get("rel") == "enclosure":
                found[entry.findtext(f"{ATOM}title")] = (link.get("href"), link.get("length", "0"),
                                                         link.get("type"))
    assert found == expected
    doc = json.loads(read(config, "feed.json"))
    found = {item["title"]: (item["attachments"][0]["url"],
                             str(item["attachments"][0].get("size_in_bytes", 0)),
                             item["attachments"][0]["mime_type"])
             for item in doc["items"] if "attachments" in item}
    assert found == expected
    # A reader sees one enclosure per post, and the post's own link is still the permalink.
    parsed = feedparser.parse(read(config, "atom.xml"))
    ep1 = next(e for e in parsed.entries if e.title == "Episode 1")
    assert ep1.link == f"{SITE}/blog/ep1/"
    assert [e.href for e in ep1.enclosures] == [f"{SITE}/audio/episode%201.mp3"]


def test_enclosures_survive_the_scan_cache(tmp_path):
    root = tmp_path / "site"
    config = make_config(root)
    (root / "static").mkdir()
    (root / "static" / "a.mp3").write_bytes(b"x" * 42)
    write_post(root, "ep.md", {"title": "Ep", "pubDate": "2024-01-01", "audio": "/a.mp3"})
    state = pipeline.open_state(config)
    try:
        first = cache.load_site(config, state, NOW)
        second = cache.load_site(config, state, NOW)
    finally:
        state.close()
    assert second.cache_hits == 1
    assert first.posts[0].enclosure == second.posts[0].enclosure == (f"{SITE}/a.mp3", 42, "audio/mpeg")
    assert first.posts == second.posts


def test_a_bad_enclosure_skips_the_post_with_one_line(tmp_path):
    root = tmp_path / "site"
    config = make_config(root)
    write_post(root, "bad.md", {"title": "Bad", "pubDate": "2024-01-01",
                                "audio": {"url": "/a.mp3", "length": "big"}})
    write_post(root, "ftp.md", {"title": "Ftp", "pubDate": "2024-01-01",
                                "video": "ftp://example.org/v.mp4"})
    write_post(root, "type.md", {"title": "Type", "pubDate": "2024-01-01",
                                 "enclosure": {"url": "/a.flac", "type": "audio flac"}})
    write_post(root, "good.md", {"title": "Good", "pubDate": "2024-01-02"})
    result = load_posts(config, NOW)
    assert [p.title for p in result.posts] == ["Good"]
    assert result.problems == [
        "content/bad.md: skipped: 'audio.length' should be a number of bytes, got 'big'",
        "content/ftp.md: skipped: 'video' should be an http(s) URL or a path, got 'ftp://example.org/v.mp4'",
        "content/type.md: skipped: 'enclosure.type' should be a media type such as audio/mpeg, "
        "got 'audio flac'",
    ]


def test_podcast_tags(tmp_path):
    root = tmp_path / "site"
    config = make_config(root, site={"logo": "/cover.jpg"},
                        feeds={"podcast": "Technology/Tech News"})
    write_post(root, "ep.md", {"title": "Ep", "pubDate": "2024-01-01",
                               "audio": "https://cdn.example.org/ep.mp3"})
    pipeline.build(config)
    channel = etree.fromstring(read(config, "rss.xml")).find("channel")
    category = channel.find(f"{ITUNES}category")
    assert category.get("text") == "Technology"
    assert category.find(f"{ITUNES}category").get("text") == "Tech News"
    assert channel.findtext(f"{ITUNES}explicit") == "false"  # Apple's and the validator's form
    assert channel.findtext(f"{ITUNES}owner/{ITUNES}email") == "author@blog.test.example"
    assert channel.find(f"{ITUNES}image").get("href") == f"{SITE}/cover.jpg"
    # Channel metadata comes before the items.
    tags = [child.tag for child in channel]
    assert tags.index(f"{ITUNES}explicit") < tags.index("item")
    assert b"itunes" not in read(config, "atom.xml")


def test_check_reports_each_feed_as_a_reader_sees_it(tmp_path, caplog):
    root = tmp_path / "site"
    config = make_config(root, feeds={"limit": 2, "archive": True, "archive_size": 2,
                                     "websub_hub": "http://127.0.0.1:9/hub"})
    for n in range(5):
        write_post(root, f"p{n}.md", {"title": f"P{n}", "pubDate": f"2024-01-0{n + 1}",
                                      **({"tags": ["python"]} if n == 4 else {})})
    state = pipeline.open_state(config)  # write the feeds without pinging the (absent) hub
    try:
        from publisher.feeds import render_feeds, write_feeds
        from publisher.content import render_html

        write_feeds(render_feeds(load_posts(config, NOW).posts, config, render_html), config.output_dir)
    finally:
        state.close()
    (config.output_dir / "tags/python/rss.xml").write_bytes(
        (config.output_dir / "tags/python/rss.xml").read_bytes()
        + b"<!--" + b"x" * 600 * 1024 + b"-->")
    with caplog.at_level(logging.WARNING, logger="publisher"):
        report = pipeline.check(config, NOW)
    sizes = {p.name: round(p.stat().st_size / 1024) for p in config.output_dir.glob("*.*")}
    assert report.lines[1:] == [
        "feed /: 2 items, 2024-01-04 … 2024-01-05; hub http://127.0.0.1:9/hub; "
        "2 archive pages (3 older items); "
        f"atom.xml {sizes['atom.xml']} KB, feed.json {sizes['feed.json']} KB, rss.xml {sizes['rss.xml']} KB",
        "feed tags/python/: 1 item, 2024-01-05 … 2024-01-05; hub http://127.0.0.1:9/hub; "
        f"atom.xml 1 KB, feed.json 1 KB, rss.xml 601 KB",
    ]
    assert [r.getMessage() for r in caplog.records] == [
        f"{config.output_dir / 'tags/python/rss.xml'}: 601 KB, above 512 KB, where some feed "
        "readers and proxies give up (lower feeds.limit, or turn on feeds.archive)"]


def test_check_command_prints_the_feed_lines(tmp_path):
    root = tmp_path / "site"
    config = make_config(root)
    write_post(root, "a.md", {"title": "A", "pubDate": "2024-01-01"})
    assert run_cli(config.path, "build").returncode == 0
    done = run_cli(config.path, "check")
    assert done.returncode == 0, done.stderr
    assert "feed /: 1 item, 2024-01-01 … 2024-01-01; no hub; atom.xml 1 KB" in done.stdout
