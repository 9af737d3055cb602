"""publisher.feeds: RSS 2.0, Atom 1.0 and JSON Feed 1.1 from real post files.

Every site here is written to tmp_path as config.yaml plus Markdown files and read back with
the real parsers (load_config, content.load_posts / read_post), so these tests see what a
user's build sees. `write_nasty_site` is also what the W3C validator run (see the report for
the command) builds its feeds from.
"""

from __future__ import annotations

import errno
import html
import json
import os
import re
import shutil
import subprocess
from collections import Counter
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path

import feedparser
import pytest
from lxml import etree

from publisher import output
from publisher.config import Config
from publisher.content import Post, load_posts, read_post, render_html, slugify
from publisher.content.sanitize import sanitize_html
from publisher.errors import OutputError
from publisher.feeds import check_feeds, render_feeds, write_feeds
import sites
from sites import make_config

SITE_URL = "https://blog.example.org"
NOW = datetime(2030, 1, 1, tzinfo=timezone.utc)  # fixed "now": no test depends on the clock
NS = {
    "atom": "http://www.w3.org/2005/Atom",
    "content": "http://purl.org/rss/1.0/modules/content/",
    "dc": "http://purl.org/dc/elements/1.1/",
    "media": "http://search.yahoo.com/mrss/",
}
FEED_NAMES = ("rss.xml", "atom.xml", "feed.json")

# Written into YAML with escapes, so the control characters reach the parser; content.py
# removes them, and the feeds must carry the rest unchanged.
NASTY_TITLE_RAW = "Tom & Jerry: <b>bold</b> \"double\" 'single' \x01\x08\x1b\x7f\x85 🚀 שלום עולם مرحبا"
NASTY_TITLE = "Tom & Jerry: <b>bold</b> \"double\" 'single' 🚀 שלום עולם مرحبا"
NASTY_SUMMARY = 'Summary with <b>tags</b> & "quotes" < > 🚀'
SITE_TITLE_RAW = "Nasty & <Site> \x07“Blog”"
SITE_TITLE = "Nasty & <Site> “Blog”"
NASTY_TAGS = ["../../etc", "C++", "Café", "🚀", "R&D"]
BIG_BODY_BYTES = 200_000


# --- building sites from real files -----------------------------------------------------

def write_config(root: Path, *, limit: int = 20, title: str = "Test Blog",
                 author: dict | None = None, description: str = "A blog for tests") -> Config:
    """sites.make_config with this file's site (its own URL, owner and language)."""
    author = author if author is not None else {"name": "Site Owner", "email": "owner@blog.example.org"}
    return make_config(root, site={"title": title, "url": SITE_URL, "description": description,
                                   "language": "en", "author": author},
                       feeds={"limit": limit})


def write_post(root: Path, name: str, body: str = "Hello, world.\n", **front) -> Path:
    return sites.write_post(root, name, front, body)


def load(config: Config) -> list[Post]:
    result = load_posts(config, NOW)
    assert result.problems == []
    return result.posts


def build(config: Config, html_for=render_html) -> tuple[dict[str, bytes], output.WriteReport]:
    files = render_feeds(load(config), config, html_for)
    return files, write_feeds(files, config.output_dir)


NASTY_BODY = """\
Intro paragraph with a [relative link](../other/) and an ![image](pic.png).\x85Next line.

<p>Raw HTML: <a href="/about/">about</a> <img src="img/x.png" srcset="a.png 1x, b.png 2x" alt=""></p>

```
code with ]]> and &amp; and <tags>
```

Footnote[^1].

[^1]: The note.
"""


def write_nasty_site(root: Path, *, limit: int = 20) -> Config:
    """Every trap at once: markup, quotes, emoji, RTL and control characters in titles and
    config text; tags that are paths, punctuation, accents, emoji, and case variants; ids that
    are not URLs; authors with and without (valid) addresses; a 200 KB post."""
    config = write_config(root, limit=limit, title=SITE_TITLE_RAW,
                          description="Tests & <things>\x0b\x85 for “readers”")
    write_post(root, "nasty.md", NASTY_BODY, title=NASTY_TITLE_RAW,
               pubDate="2024-05-01T10:00:00+02:00", updatedDate="2024-05-03T08:00:00Z",
               description=NASTY_SUMMARY, author={"name": "Zoë O'Brien", "email": "zoe@example.org"},
               tags=NASTY_TAGS, image="img/hero image.png")
    write_post(root, "custom-id.md", "Custom id body.\n", title="Custom id", id="1234",
               pubDate="2024-04-01", author="Ana Ruiz", tags=["c"])
    write_post(root, "tag-uri.md", "Tag URI body.\n", title="Tag URI id",
               id="tag:blog.example.org,2024:post-7", date="2024-03-15 09:30:00 +0530",
               tags="CAFÉ, python")
    write_post(root, "bad-email.md", "Bad email body.\n", title="Bob's post",
               pubDate="2024-03-01", author={"name": "Bob", "email": "not-an-address"},
               tags=["Python"])
    paragraph = "Lorem ipsum dolor sit amet, x < y & adipiscing elit. " * 10 + "\n\n"
    big = paragraph * (BIG_BODY_BYTES // len(paragraph) + 1)
    write_post(root, "big.md", big, title="A 200 KB post", pubDate="2024-02-15",
               description="Very long.", tags=["python"])
    write_post(root, "rtl.md", "نص عربي. טקסט בעברית.\n", title="مرحبا بالعالم — שלום עולם",
               pubDate="2024-02-01T12:00:00Z", tags=["🚀"])
    write_post(root, "no-summary.md", "# Only a heading\n", title="No summary here",
               pubDate="2024-01-01")
    write_post(root, "email-only.md", "Body.\n", title="Email only", pubDate="2023-12-01",
               author={"email": "solo@example.org"})
    return config


@pytest.fixture
def nasty(tmp_path: Path) -> tuple[Config, dict[str, bytes]]:
    config = write_nasty_site(tmp_path / "site")
    files, _report = build(config)
    return config, files


def rss_items(data: bytes) -> list[etree._Element]:
    return etree.fromstring(data).findall("channel/item")


def atom_entries(data: bytes) -> list[etree._Element]:
    return etree.fromstring(data).findall("atom:entry", NS)


def parsed(data: bytes):
    """feedparser's view; bozo must be 0 for every feed publisher writes."""
    result = feedparser.parse(data, resolve_relative_uris=False, sanitize_html=False)
    assert result.bozo == 0, result.get("bozo_exception")
    return result


def shown(detail) -> str:
    """The text a reader shows for one of feedparser's text constructs. Where it is HTML, it
    must hold no markup (nasty text is escaped, never interpreted) and is decoded."""
    if detail.type == "text/html":
        assert "<" not in detail.value, detail.value
        return html.unescape(detail.value)
    assert detail.type == "text/plain", detail.type
    return detail.value


def entry_by_title(result, title: str):
    matches = [e for e in result.entries if shown(e.title_detail) == title]
    assert len(matches) == 1, [e.title for e in result.entries]
    return matches[0]


# --- what is written --------------------------------------------------------------------

def test_every_written_feed_parses_cleanly(nasty):
    config, files = nasty
    tag_slugs = {slugify(t) for t in NASTY_TAGS + ["c", "CAFÉ", "python", "Python"]}
    assert tag_slugs == {"etc", "c", "café", slugify("🚀"), "r-d", "python"}
    expected = set(FEED_NAMES) | {f"tags/{s}/{n}" for s in tag_slugs for n in FEED_NAMES}
    assert set(files) == expected
    on_disk = {p.relative_to(config.output_dir).as_posix()
               for p in config.output_dir.rglob("*") if p.is_file()}
    assert on_disk == expected
    for rel in sorted(expected):
        data = (config.output_dir / rel).read_bytes()
        assert data == files[rel]
        if rel.endswith(".json"):
            assert json.loads(data)["version"] == "https://jsonfeed.org/version/1.1"
        else:
            result = parsed(data)
            assert result.version == ("rss20" if rel.endswith("rss.xml") else "atom10"), rel
    assert check_feeds(config.output_dir) == []


def test_items_are_newest_first_in_every_format(tmp_path):
    config = write_config(tmp_path / "site")
    # File names sort in a different order from the dates, so order cannot come from the disk.
    dates = {"a.md": "2024-03-01", "b.md": "2024-01-01", "c.md": "2024-05-01",
             "d.md": "2024-04-01T23:00:00-05:00", "e.md": "2024-04-02T03:00:00+02:00"}
    for name, date in dates.items():
        write_post(tmp_path / "site", name, title=f"Post {name[0]}", pubDate=date, tags=["t"])
    files, _ = build(config)
    # d is 2024-04-02T04:00Z, e is 2024-04-02T01:00Z: offsets are compared, not local text.
    newest_first = [f"{SITE_URL}/blog/{s}/" for s in ("c", "d", "e", "a", "b")]
    for folder in ("", "tags/t/"):
        assert [i.findtext("guid") for i in rss_items(files[folder + "rss.xml"])] == newest_first
        assert [e.findtext("atom:id", namespaces=NS)
                for e in atom_entries(files[folder + "atom.xml"])] == newest_first
        assert [i["id"] for i in json.loads(files[folder + "feed.json"])["items"]] == newest_first
        assert [e.id for e in parsed(files[folder + "atom.xml"]).entries] == newest_first


class CountingRenderer:
    def __init__(self):
        self.calls: Counter[str] = Counter()

    def __call__(self, post: Post) -> str:
        self.calls[post.slug] += 1
        return render_html(post)


def test_limit_applies_to_each_feed_and_only_included_posts_are_rendered(tmp_path):
    config = write_config(tmp_path / "site", limit=2)
    tags = {0: ["mid"], 3: ["old"], 4: ["old"], 5: ["old"]}
    for n in range(6):  # p0 newest
        write_post(tmp_path / "site", f"p{n}.md", title=f"P{n}", pubDate=f"2024-06-{20 - n:02d}",
                   tags=tags.get(n, []))
    renderer = CountingRenderer()
    files = render_feeds(load(config), config, renderer)
    assert set(files) == set(FEED_NAMES) | {f"tags/{t}/{n}" for t in ("mid", "old") for n in FEED_NAMES}

    def slugs(folder: str) -> list[str]:
        return [i["url"].rstrip("/").rsplit("/", 1)[1]
                for i in json.loads(files[folder + "feed.json"])["items"]]

    assert slugs("") == ["p0", "p1"]
    assert slugs("tags/mid/") == ["p0"]
    assert slugs("tags/old/") == ["p3", "p4"]
    for folder in ("", "tags/old/"):
        assert len(rss_items(files[folder + "rss.xml"])) == 2
        assert len(atom_entries(files[folder + "atom.xml"])) == 2
    # p2 and p5 appear in no feed: never rendered; the others exactly once across all feeds.
    assert renderer.calls == Counter({"p0": 1, "p1": 1, "p3": 1, "p4": 1})


def test_limit_zero_means_every_post(tmp_path):
    config = write_config(tmp_path / "site", limit=0)
    for n in range(25):
        write_post(tmp_path / "site", f"p{n}.md", title=f"P{n}", pubDate=f"2024-01-{n + 1:02d}")
    files = render_feeds(load(config), config, render_html)
    assert len(rss_items(files["rss.xml"])) == 25
    assert len(json.loads(files["feed.json"])["items"]) == 25


def test_tag_feeds_are_per_slug_self_linked_and_titled(nasty):
    config, files = nasty
    rocket = slugify("🚀")
    assert rocket.startswith("x-") and "/" not in rocket
    # Case variants share one feed; "c" and "C++" share a slug, so they share it too.
    cafe = json.loads(files["tags/café/feed.json"])
    assert cafe["title"] == f"{SITE_TITLE} — Café"
    assert [i["title"] for i in cafe["items"]] == [NASTY_TITLE, "Tag URI id"]
    python = json.loads(files["tags/python/feed.json"])
    assert [i["title"] for i in python["items"]] == ["Tag URI id", "Bob's post", "A 200 KB post"]
    shared = json.loads(files["tags/c/feed.json"])
    assert shared["title"] == f"{SITE_TITLE} — c / C++"
    assert [i["title"] for i in shared["items"]] == [NASTY_TITLE, "Custom id"]
    assert json.loads(files["tags/etc/feed.json"])["title"] == f"{SITE_TITLE} — ../../etc"
    assert json.loads(files[f"tags/{rocket}/feed.json"])["title"] == f"{SITE_TITLE} — 🚀"

    # Nothing was written outside the output folder ("../../etc" stayed a folder name).
    site = config.root
    stray = [p for p in site.parent.rglob("*") if p.name in FEED_NAMES
             and config.output_dir not in p.parents]
    assert stray == []

    cafe_url = f"{SITE_URL}/tags/caf%C3%A9/"
    assert cafe["feed_url"] == cafe_url + "feed.json"
    assert cafe["home_page_url"] == SITE_URL + "/"
    rss = etree.fromstring(files["tags/café/rss.xml"])
    assert rss.find("channel/atom:link[@rel='self']", NS).get("href") == cafe_url + "rss.xml"
    assert rss.findtext("channel/link") == SITE_URL + "/"
    assert rss.findtext("channel/title") == f"{SITE_TITLE} — Café"
    atom = etree.fromstring(files["tags/café/atom.xml"])
    assert atom.find("atom:link[@rel='self']", NS).get("href") == cafe_url + "atom.xml"
    assert atom.findtext("atom:title", namespaces=NS) == f"{SITE_TITLE} — Café"
    # Each feed has its own Atom id.
    ids = {etree.fromstring(files[r]).findtext("atom:id", namespaces=NS)
           for r in files if r.endswith("atom.xml")}
    assert len(ids) == len([r for r in files if r.endswith("atom.xml")])


def test_top_level_feeds_link_to_themselves_and_the_site(nasty):
    _config, files = nasty
    rss = etree.fromstring(files["rss.xml"])
    assert rss.find("channel/atom:link[@rel='self']", NS).attrib == {
        "href": f"{SITE_URL}/rss.xml", "rel": "self", "type": "application/rss+xml"}
    assert rss.findtext("channel/link") == SITE_URL + "/"
    atom = etree.fromstring(files["atom.xml"])
    links = {link.get("rel"): link.get("href") for link in atom.findall("atom:link", NS)}
    assert links == {"self": f"{SITE_URL}/atom.xml", "alternate": SITE_URL + "/"}
    assert json.loads(files["feed.json"])["feed_url"] == f"{SITE_URL}/feed.json"


# --- determinism and writing only what changed ------------------------------------------

def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {p.relative_to(folder).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_rebuild_is_byte_identical_and_touches_nothing(tmp_path):
    config = write_nasty_site(tmp_path / "site")
    files, first = build(config)
    assert sorted(first.written) == sorted(files) and first.unchanged == []
    # Back-date every file, so a rewrite would show even on a coarse-timestamp filesystem.
    for p in config.output_dir.rglob("*"):
        os.utime(p, ns=(1_000_000_000, 1_000_000_000))
    before = snapshot(config.output_dir)

    posts = load(config)  # fresh Post objects, as a new run would have
    again = render_feeds(list(reversed(posts)), config, render_html)  # input order is irrelevant
    assert again == files
    report = write_feeds(again, config.output_dir)
    assert report.written == [] and report.removed == []
    assert sorted(report.unchanged) == sorted(files)
    assert snapshot(config.output_dir) == before


def test_only_changed_files_are_rewritten(tmp_path):
    root = tmp_path / "site"
    config = write_config(root)
    write_post(root, "a.md", title="A", pubDate="2024-01-01", tags=["x"])
    write_post(root, "b.md", title="B", pubDate="2024-02-01", tags=["y"])
    build(config)
    write_post(root, "a.md", "Edited.\n", title="A", pubDate="2024-01-01", tags=["x"])
    _files, report = build(config)
    assert sorted(report.written) == sorted(list(FEED_NAMES) + [f"tags/x/{n}" for n in FEED_NAMES])
    assert sorted(report.unchanged) == [f"tags/y/{n}" for n in sorted(FEED_NAMES)]


def test_feed_date_is_newest_item_date_not_now(tmp_path):
    root = tmp_path / "site"
    config = write_config(root, limit=0)
    write_post(root, "new.md", title="New", pubDate="2024-06-01T00:00:00Z")
    # Older post, edited later: its updated date is the newest date in the feed.
    write_post(root, "old.md", title="Old", pubDate="2024-01-01T00:00:00Z",
               updatedDate="2024-07-04T12:30:00+02:00")
    files = render_feeds(load(config), config, render_html)
    expected = datetime(2024, 7, 4, 10, 30, tzinfo=timezone.utc)
    channel = etree.fromstring(files["rss.xml"]).find("channel")
    assert parsedate_to_datetime(channel.findtext("lastBuildDate")) == expected
    assert parsedate_to_datetime(channel.findtext("pubDate")) == expected
    atom = etree.fromstring(files["atom.xml"])
    assert datetime.fromisoformat(atom.findtext("atom:updated", namespaces=NS)) == expected
    # Order stays by publication: the edit does not move the old post up.
    assert [e.title for e in parsed(files["atom.xml"]).entries] == ["New", "Old"]


def test_empty_site_gives_valid_deterministic_feeds(tmp_path):
    config = write_config(tmp_path / "site", author={})
    files, _ = build(config)
    assert set(files) == set(FEED_NAMES)
    for name in ("rss.xml", "atom.xml"):
        assert parsed(files[name]).entries == []
    atom = etree.fromstring(files["atom.xml"])
    assert atom.findtext("atom:updated", namespaces=NS) == "2000-01-01T00:00:00+00:00"
    # With no author configured, the site title stands in (Atom requires an author).
    assert atom.findtext("atom:author/atom:name", namespaces=NS) == "Test Blog"
    assert json.loads(files["feed.json"])["items"] == []
    assert render_feeds([], config, render_html) == files
    assert check_feeds(config.output_dir) == []


# --- item fields -------------------------------------------------------------------------

def test_rss_item_fields(nasty):
    _config, files = nasty
    items = {i.findtext("link").split("/")[-2]: i for i in rss_items(files["rss.xml"])}
    item = items["nasty"]
    url = f"{SITE_URL}/blog/nasty/"
    # The title looks like HTML, so it is escaped to HTML that shows it literally, and
    # written with hexadecimal references as the RSS profile asks.
    assert item.findtext("title") == html.escape(NASTY_TITLE, quote=False)
    assert "<title>Tom &#x26;amp; Jerry: &#x26;lt;b&#x26;gt;bold&#x26;lt;/b&#x26;gt;" in \
        files["rss.xml"].decode("utf-8")
    assert item.find("guid").text == url and item.find("guid").get("isPermaLink") == "true"
    assert item.findtext("author") == "zoe@example.org (Zoë O'Brien)"
    assert item.find("dc:creator", NS) is None
    assert [c.text for c in item.findall("category")] == NASTY_TAGS
    assert parsedate_to_datetime(item.findtext("pubDate")) == datetime(
        2024, 5, 1, 8, 0, tzinfo=timezone.utc)
    # The summary is plain text inside HTML: escaped once more, so it shows, not renders.
    assert html.unescape(item.findtext("description")) == NASTY_SUMMARY
    content = item.findtext("content:encoded", namespaces=NS)
    assert content.startswith("<p>Intro paragraph") and "The note." in content
    image = f"{SITE_URL}/blog/nasty/img/hero%20image.png"
    assert item.find("media:content", NS).attrib == {"url": image, "medium": "image"}
    assert item.find("media:thumbnail", NS).get("url") == image

    custom = items["custom-id"]
    assert custom.findtext("title") == "Custom id"
    # "1234" is not globally unique: the guid is a stable UUID derived from it, not a permalink.
    assert re.fullmatch(r"urn:uuid:[0-9a-f-]{36}", custom.findtext("guid"))
    assert custom.find("guid").get("isPermaLink") == "false"
    assert items["tag-uri"].findtext("guid") == "tag:blog.example.org,2024:post-7"
    assert custom.find("author") is None  # no address: RSS <author> would be invalid
    assert custom.findtext("dc:creator", namespaces=NS) == "Ana Ruiz"
    assert custom.find("media:content", NS) is None
    bob = items["bad-email"]
    assert bob.find("author") is None and bob.findtext("dc:creator", namespaces=NS) == "Bob"
    assert items["email-only"].findtext("author") == "solo@example.org (solo@example.org)"
    site_authored = items["no-summary"]
    assert site_authored.findtext("author") == "owner@blog.example.org (Site Owner)"
    # No summary: the description holds the title, and the HTML is still content:encoded.
    assert site_authored.findtext("description") == "No summary here"
    assert '<h1 id="only-a-heading">Only a heading</h1>' in site_authored.findtext("content:encoded", namespaces=NS)


def test_atom_entry_fields(nasty):
    _config, files = nasty
    entries = {e.find("atom:link", NS).get("href").split("/")[-2]: e
               for e in atom_entries(files["atom.xml"])}
    entry = entries["nasty"]
    url = f"{SITE_URL}/blog/nasty/"
    title = entry.find("atom:title", NS)
    assert title.get("type") == "html" and title.text == html.escape(NASTY_TITLE, quote=False)
    assert entry.findtext("atom:id", namespaces=NS) == url
    assert entry.find("atom:link", NS).get("href") == url
    assert entry.findtext("atom:published", namespaces=NS) == "2024-05-01T10:00:00+02:00"
    assert entry.findtext("atom:updated", namespaces=NS) == "2024-05-03T08:00:00+00:00"
    assert entry.findtext("atom:author/atom:name", namespaces=NS) == "Zoë O'Brien"
    assert entry.findtext("atom:author/atom:email", namespaces=NS) == "zoe@example.org"
    assert [c.get("term") for c in entry.findall("atom:category", NS)] == NASTY_TAGS
    summary = entry.find("atom:summary", NS)
    assert summary.get("type") == "html" and summary.text == html.escape(NASTY_SUMMARY, quote=False)
    content = entry.find("atom:content", NS)
    assert content.get("type") == "html" and content.text.startswith("<p>Intro paragraph")
    assert entry.find("media:content", NS).get("url") == f"{SITE_URL}/blog/nasty/img/hero%20image.png"

    # An id that is not an IRI is mapped to a stable urn:uuid (Atom requires an IRI) ...
    custom_id = entries["custom-id"].findtext("atom:id", namespaces=NS)
    assert re.fullmatch(r"urn:uuid:[0-9a-f-]{36}", custom_id)
    # ... one that is stays as written.
    assert entries["tag-uri"].findtext("atom:id", namespaces=NS) == "tag:blog.example.org,2024:post-7"
    assert entries["custom-id"].find("atom:title", NS).get("type") is None  # plain stays text
    assert entries["custom-id"].findtext("atom:author/atom:name", namespaces=NS) == "Ana Ruiz"
    assert entries["custom-id"].find("atom:author/atom:email", NS) is None
    assert entries["bad-email"].find("atom:author/atom:email", NS) is None
    assert entries["no-summary"].find("atom:summary", NS) is None


def test_json_feed_follows_the_1_1_spec(nasty):
    config, files = nasty
    doc = json.loads(files["feed.json"].decode("utf-8"))
    assert list(doc)[:4] == ["version", "title", "home_page_url", "feed_url"]
    assert doc["version"] == "https://jsonfeed.org/version/1.1"
    assert doc["title"] == SITE_TITLE
    assert doc["home_page_url"] == SITE_URL + "/"
    assert doc["feed_url"] == f"{SITE_URL}/feed.json"
    assert doc["description"] == "Tests & <things> for “readers”"
    assert doc["language"] == "en"
    assert doc["authors"] == [{"name": "Site Owner", "url": "mailto:owner@blog.example.org"}]
    posts = {p.title: p for p in load(config)}
    assert [i["title"] for i in doc["items"]] == list(posts)  # newest first, as loaded
    allowed = {"id", "url", "external_url", "title", "content_html", "content_text", "summary",
               "image", "banner_image", "date_published", "date_modified", "authors", "tags",
               "language", "attachments"}
    for item in doc["items"]:
        post = posts[item["title"]]
        assert set(item) <= allowed
        assert isinstance(item["id"], str) and item["id"] == post.id
        assert item["url"] == post.url
        # U+0085 is legal XML but flagged by the validator: the feeds carry a newline instead.
        assert item["content_html"] == sanitize_html(render_html(post)).replace("\x85", "\n")
        assert datetime.fromisoformat(item["date_published"]) == post.published
        assert datetime.fromisoformat(item["date_modified"]) == post.modified
        assert item.get("tags", []) == list(post.tags)
        assert all(set(a) <= {"name", "url", "avatar"} and a["name"] for a in item["authors"])
    nasty_item = doc["items"][0]
    assert nasty_item["summary"] == NASTY_SUMMARY
    assert nasty_item["image"] == f"{SITE_URL}/blog/nasty/img/hero%20image.png"
    assert nasty_item["date_published"] == "2024-05-01T10:00:00+02:00"
    assert nasty_item["date_modified"] == "2024-05-03T08:00:00+00:00"
    assert nasty_item["authors"] == [{"name": "Zoë O'Brien", "url": "mailto:zoe@example.org"}]
    by_title = {i["title"]: i for i in doc["items"]}
    assert by_title["Custom id"]["id"] == "1234"
    assert by_title["Custom id"]["authors"] == [{"name": "Ana Ruiz"}]
    assert "summary" not in by_title["No summary here"]


def test_relative_links_are_absolute_in_every_feeds_content(nasty):
    _config, files = nasty
    base = f"{SITE_URL}/blog/nasty/"
    expected = [f'href="{SITE_URL}/blog/other/"', f'src="{base}pic.png"',
                f'href="{SITE_URL}/about/"', f'src="{base}img/x.png"',
                f'srcset="{base}a.png 1x, {base}b.png 2x"']
    contents = {
        "rss": rss_items(files["rss.xml"])[0].findtext("content:encoded", namespaces=NS),
        "atom": atom_entries(files["atom.xml"])[0].findtext("atom:content", namespaces=NS),
        "json": json.loads(files["feed.json"])["items"][0]["content_html"],
    }
    for fmt, content in contents.items():
        for fragment in expected:
            assert fragment in content, (fmt, fragment)
        for value in re.findall(r'(?:href|src)="([^"]*)"', content):
            assert value.startswith(("https://", "#", "mailto:")), (fmt, value)


def test_nasty_text_round_trips_through_feedparser(nasty):
    _config, files = nasty
    rss, atom = parsed(files["rss.xml"]), parsed(files["atom.xml"])
    doc = json.loads(files["feed.json"])
    assert shown(rss.feed.title_detail) == shown(atom.feed.title_detail) == SITE_TITLE
    assert doc["title"] == SITE_TITLE
    assert shown(rss.feed.subtitle_detail) == shown(atom.feed.subtitle_detail) == \
        "Tests & <things> for “readers”"
    for result in (rss, atom):
        entry = entry_by_title(result, NASTY_TITLE)
        assert shown(entry.summary_detail) == NASTY_SUMMARY
        assert [t.term for t in entry.tags] == NASTY_TAGS
        assert entry.author_detail.name == "Zoë O'Brien"
        assert entry.author_detail.email == "zoe@example.org"
        assert entry_by_title(result, "مرحبا بالعالم — שלום עולם").id
        assert entry_by_title(result, "Bob's post").author == "Bob"
        tag_feed = parsed(files["tags/etc/" + ("rss.xml" if result is rss else "atom.xml")])
        assert shown(tag_feed.feed.title_detail) == f"{SITE_TITLE} — ../../etc"
    assert doc["items"][0]["title"] == NASTY_TITLE
    for data in files.values():  # no control character survived anywhere
        assert not re.search(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", data)


def test_plain_titles_stay_plain_text(tmp_path):
    # Only text that readers would take for HTML is escaped; "&" and "<" alone are just text.
    root = tmp_path / "site"
    config = write_config(root)
    title = "AT&T & Friends <3 <b> R&D 'n' \"quotes\""
    write_post(root, "plain.md", title=title, description=title, pubDate="2024-01-01")
    files = render_feeds(load(config), config, render_html)
    for name in ("rss.xml", "atom.xml"):
        entry = parsed(files[name]).entries[0]
        assert entry.title_detail.type == "text/plain" and entry.title == title
    atom_entry = atom_entries(files["atom.xml"])[0]
    assert atom_entry.find("atom:title", NS).get("type") is None
    assert atom_entry.find("atom:summary", NS).get("type") is None
    assert "<title>AT&#x26;T &#x26; Friends &#x3C;3 &#x3C;b&gt; R&#x26;D" in files["rss.xml"].decode()


def test_a_200_kb_post_is_carried_whole(nasty):
    config, files = nasty
    big = next(p for p in load(config) if p.slug == "big")
    full = sanitize_html(render_html(big))
    assert len(full.encode("utf-8")) > BIG_BODY_BYTES
    rss_item = next(i for i in rss_items(files["rss.xml"]) if i.findtext("title") == big.title)
    assert rss_item.findtext("content:encoded", namespaces=NS) == full
    atom_entry = next(e for e in atom_entries(files["atom.xml"])
                      if e.findtext("atom:title", namespaces=NS) == big.title)
    assert atom_entry.findtext("atom:content", namespaces=NS) == full
    json_item = next(i for i in json.loads(files["feed.json"])["items"] if i["title"] == big.title)
    assert json_item["content_html"] == full
    assert entry_by_title(parsed(files["atom.xml"]), big.title).content[0].value == full
    assert entry_by_title(parsed(files["rss.xml"]), big.title).content[0].value == full


def test_read_post_objects_render_like_loaded_ones(tmp_path):
    # The pipeline passes load_posts' output; a single read_post must give the same feed item.
    root = tmp_path / "site"
    config = write_config(root)
    path = write_post(root, "one.md", title="One", pubDate="2024-01-02", tags=["solo"])
    direct = render_feeds([read_post(path, config)], config, render_html)
    assert direct == render_feeds(load(config), config, render_html)


# --- stale files and failures ------------------------------------------------------------

def test_stale_tag_feeds_are_removed_and_nothing_else(tmp_path):
    root = tmp_path / "site"
    config = write_config(root)
    write_post(root, "a.md", title="A", pubDate="2024-01-01", tags=["gone", "kept"])
    build(config)
    out = config.output_dir
    # Things publisher did not write must survive.
    (out / "tags" / "gone" / "notes.txt").write_text("mine")
    (out / "tags" / "foreign").mkdir()
    (out / "tags" / "foreign" / "index.html").write_text("mine")
    (out / "index.html").write_text("mine")

    write_post(root, "a.md", title="A", pubDate="2024-01-01", tags=["kept"])
    _files, report = build(config)
    assert sorted(report.removed) == [f"tags/gone/{n}" for n in sorted(FEED_NAMES)]
    assert sorted(p.name for p in (out / "tags" / "gone").iterdir()) == ["notes.txt"]
    assert (out / "tags" / "foreign" / "index.html").read_text() == "mine"
    assert (out / "index.html").read_text() == "mine"
    assert all((out / "tags" / "kept" / n).is_file() for n in FEED_NAMES)

    # Once only feeds were in it, the folder goes too; then an empty tags/ goes.
    (out / "tags" / "gone" / "notes.txt").unlink()
    shutil.rmtree(out / "tags" / "foreign")
    write_post(root, "a.md", title="A", pubDate="2024-01-01")
    _files, report = build(config)
    assert sorted(report.removed) == [f"tags/kept/{n}" for n in sorted(FEED_NAMES)]
    assert sorted(p.name for p in out.iterdir()) == ["atom.xml", "feed.json", "index.html", "rss.xml"]


def test_paths_outside_the_output_folder_are_refused(tmp_path):
    out = tmp_path / "out"
    for bad in ("../evil.xml", "tags/../../evil.xml", "/tmp/evil.xml", "tags//x.xml", ""):
        with pytest.raises(ValueError, match="not a plain relative path"):
            write_feeds({"rss.xml": b"<rss/>", bad: b"x"}, out)
    assert not out.exists() and not (tmp_path / "evil.xml").exists()


@pytest.fixture
def read_only():
    """Make folders unwritable, for root too (chmod does not stop root; chattr +i does)."""
    made: list[Path] = []

    def make(*folders: Path) -> None:
        for folder in folders:
            made.append(folder)
            folder.chmod(0o555)
            if os.geteuid() == 0 and shutil.which("chattr"):
                subprocess.run(["chattr", "+i", str(folder)], check=False, capture_output=True)
        probe = folders[0] / ".probe"
        try:
            probe.write_bytes(b"")
        except OSError:
            return
        probe.unlink()
        pytest.skip("cannot make a folder read-only here (root without chattr)")

    yield make
    for folder in reversed(made):
        if os.geteuid() == 0 and shutil.which("chattr"):
            subprocess.run(["chattr", "-i", str(folder)], check=False, capture_output=True)
        folder.chmod(0o755)


def test_read_only_output_folder_raises_and_keeps_old_files(tmp_path, read_only):
    root = tmp_path / "site"
    config = write_config(root)
    write_post(root, "a.md", title="A", pubDate="2024-01-01", tags=["t"])
    build(config)
    out = config.output_dir
    before = snapshot(out)
    write_post(root, "a.md", "Changed.\n", title="A", pubDate="2024-01-01", tags=["t"])
    read_only(out, out / "tags" / "t")
    with pytest.raises(OutputError) as caught:
        build(config)
    message = str(caught.value)
    assert str(out / "atom.xml") in message and "cannot write feed" in message
    assert re.search(r"Permission denied|Operation not permitted|Read-only", message)
    assert snapshot(out) == before  # old bytes, old mtimes, no temporary files


def test_disk_full_during_write_keeps_old_file(tmp_path, monkeypatch):
    root = tmp_path / "site"
    config = write_config(root)
    write_post(root, "a.md", title="A", pubDate="2024-01-01")
    build(config)
    before = snapshot(config.output_dir)
    write_post(root, "a.md", "Changed.\n", title="A", pubDate="2024-01-01")

    def full(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(output.os, "fsync", full)  # the data never reached the disk
    with pytest.raises(OutputError, match=r"atom\.xml: cannot write feed: No space left on device"):
        build(config)
    assert snapshot(config.output_dir) == before  # and the temporary file is gone


def test_new_files_get_a_readable_mode(tmp_path):
    # A web server must be able to read the feeds (a bare mkstemp would make them 0600).
    root = tmp_path / "site"
    config = write_config(root)
    old = os.umask(0o022)
    try:
        build(config)
    finally:
        os.umask(old)
    assert (config.output_dir / "rss.xml").stat().st_mode & 0o777 == 0o644


# --- check_feeds -------------------------------------------------------------------------

def test_check_feeds_reports_missing_output(tmp_path):
    missing = tmp_path / "public"
    problems = check_feeds(missing)
    assert problems == [f"{missing}: no feeds folder (run `publisher build` to write the feeds)"]
    missing.mkdir()
    (missing / "rss.xml").write_bytes(b'<rss version="2.0"><channel/></rss>')
    assert check_feeds(missing) == [
        f"{missing / 'atom.xml'}: missing (run `publisher build` to write the feeds)",
        f"{missing / 'feed.json'}: missing (run `publisher build` to write the feeds)",
    ]


def test_check_feeds_finds_each_corrupted_file_and_changes_nothing(nasty):
    config, _files = nasty
    out = config.output_dir
    assert check_feeds(out) == []
    (out / "rss.xml").write_bytes((out / "rss.xml").read_bytes()[:500])  # truncated
    (out / "tags" / "etc" / "atom.xml").write_bytes((out / "tags" / "etc" / "rss.xml").read_bytes())
    (out / "tags" / "c" / "rss.xml").write_bytes(b'<rss version="0.91"><channel/></rss>')
    doc = json.loads((out / "feed.json").read_bytes())
    doc["version"] = "https://jsonfeed.org/version/1"
    (out / "feed.json").write_text(json.dumps(doc))
    (out / "tags" / "python" / "feed.json").write_bytes(b"{not json")
    before = snapshot(out)

    problems = check_feeds(out)
    assert len(problems) == 5
    assert problems[0].startswith(f"{out / 'feed.json'}: expected JSON Feed version "
                                  "'https://jsonfeed.org/version/1.1', found "
                                  "'https://jsonfeed.org/version/1'")
    assert problems[1].startswith(f"{out / 'rss.xml'}: not well-formed XML: ")
    assert "<string>" not in problems[1]
    by_path = {p.split(": ", 1)[0]: p.split(": ", 1)[1] for p in problems}
    assert by_path[str(out / "tags" / "c" / "rss.xml")] == (
        "expected RSS 2.0 (<rss version=\"2.0\"> holding a <channel>), found <rss> version '0.91'")
    assert by_path[str(out / "tags" / "etc" / "atom.xml")] == (
        "expected Atom 1.0 (<feed> in namespace http://www.w3.org/2005/Atom), "
        "found <rss> version '2.0'")
    assert by_path[str(out / "tags" / "python" / "feed.json")].startswith("not valid JSON:")
    assert snapshot(out) == before
