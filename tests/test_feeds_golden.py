"""Whole output trees, byte for byte: every feed file render_feeds makes for each engine's
fixture site and for a site using every feed feature (tags and categories, RFC 5005 archives,
a podcast with enclosures, images, authors with and without an address, two posts published
at the same second, titles and summaries that look like HTML, a translation, a WebSub hub,
icon and logo) is compared with the golden copy under tests/fixtures/golden/.

The golden copies were written by the feed code before it assembled feeds from per-entry
fragments: a speed-up must not change one byte a reader sees. After an intended change of
the output, rewrite them with `python tests/test_feeds_golden.py` and review the diff."""

from __future__ import annotations

import shutil
import sys
import textwrap
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml

from publisher.config import load_config
from publisher.content import load_posts
from publisher.content.markup import render_html
from publisher.feeds import render_feeds

HERE = Path(__file__).parent
SITES = HERE / "fixtures" / "sites"
GOLDEN = HERE / "fixtures" / "golden"
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=timezone.utc)
ENGINES = ("astro", "eleventy", "hugo", "jekyll", "nanoc", "pelican")
# content settings of each engine's site, as tests/test_dialects.py reads it
ENGINE_CONTENT = {
    "astro": {"dir": "src/content/blog", "permalink": "/blog/{slug}/"},
    "eleventy": {"dir": "content/blog", "permalink": "/blog/{stem}/"},
    "hugo": {"dir": "content", "permalink": "/{section}/{stem}/"},
    "jekyll": {"dir": "_posts", "permalink": "/{categories}/{year}/{month}/{day}/{slug}.html"},
    "nanoc": {"dir": "content", "permalink": "/{section}/{stem}/"},
    "pelican": {"dir": "content", "permalink": "/{slug}.html", "exclude": ["pages"]},
}


def _engine_site(root: Path, engine: str) -> Path:
    shutil.copytree(SITES / engine, root)
    config = {
        "site": {"title": f"{engine} fixture", "url": f"https://{engine}.example.org",
                 "language": "en"},
        "content": {"dialect": engine, **ENGINE_CONTENT[engine]},
        "feeds": {"output_dir": "out", "limit": 3, "archive": True, "archive_size": 2},
        "state": {"database": "state.db"},
    }
    (root / "config.yaml").write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return root / "config.yaml"


# (file, front matter, body) of the feature site
_FEATURE_POSTS = [
    ("a.md", """
        title: "Fish & <Chips>"
        pubDate: 2024-03-01T10:00:00Z
        description: "AT&amp;T and </b> in a summary"
        tags: [Food, food, "C++", c]
        categories: [Recipes]
        image: img/my photo.png
        author: {name: Ann, email: ann@example.org}
        """, "Hello **fish**.\n\n<script>alert(1)</script>\n\n[rel](../b/) and a footnote[^1].\n\n[^1]: Note.\n"),
    ("b.md", """
        title: Same second one
        pubDate: 2024-03-02T10:00:00Z
        tags: [food]
        enclosure: {url: "https://cdn.example.org/ep1.mp3", length: 1234, type: audio/mpeg}
        author: Bob Only
        """, "Body of b.\n"),
    ("c.md", """
        title: Same second two
        pubDate: 2024-03-02T10:00:00Z
        tags: [Travel, food]
        enclosure: https://cdn.example.org/ep2.ogg
        author: {name: Cy, email: "not an address"}
        """, "    indented code first\n\nthen text with a <https://example.org> link.\n"),
    ("d.md", """
        title: A post in French
        pubDate: 2024-03-03
        lang: fr
        tags: [Food]
        """, "Bonjour.\n"),
    ("e.md", """
        title: "Unicode ünïcode — 日本"
        pubDate: 2024-02-01 08:30:00 +0200
        updated: 2024-03-05
        id: "1234"
        summary: Plain summary
        tags: travel, food
        """, "- one\n  - nested\n- [x] done\n\n~~gone~~\n"),
] + [(f"old-{i}.md", f"""
        title: Old post {i}
        pubDate: 2023-01-0{i + 1}
        tags: [Food, Travel]
        categories: [Recipes]
        """, f"Old {i}.\n") for i in range(8)]  # enough older posts for archive pages everywhere


def _feature_site(root: Path) -> Path:
    content = root / "content"
    content.mkdir(parents=True)
    for name, front, body in _FEATURE_POSTS:
        (content / name).write_text("---\n" + textwrap.dedent(front).strip() + "\n---\n" + body,
                                    encoding="utf-8")
    config = {
        "site": {"title": "Feature & <Site>", "url": "https://feature.example.org",
                 "description": "Everything a feed can hold", "language": "en",
                 "author": {"name": "Site Author", "email": "author@feature.example.org"},
                 "icon": "favicon.png", "logo": "https://cdn.example.org/logo.png"},
        "content": {"dir": "content", "permalink": "/blog/{slug}/"},
        "feeds": {"output_dir": "out", "limit": 3, "archive": True, "archive_size": 2,
                  "archive_tags": True, "podcast": "Technology",
                  "websub_hub": "https://hub.example.org/"},
        "state": {"database": "state.db"},
    }
    (root / "config.yaml").write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return root / "config.yaml"


SITES_UNDER_TEST = ENGINES + ("features",)


def render_site(name: str, root: Path) -> dict[str, bytes]:
    path = _feature_site(root) if name == "features" else _engine_site(root, name)
    config = load_config(path)
    posts = load_posts(config, NOW).posts
    return render_feeds(posts, config, lambda post: render_html(post, config))


@pytest.mark.parametrize("name", SITES_UNDER_TEST)
def test_every_feed_file_is_byte_identical_to_its_golden_copy(tmp_path, name):
    files = render_site(name, tmp_path / name)
    golden = GOLDEN / name
    expected = {p.relative_to(golden).as_posix(): p.read_bytes()
                for p in sorted(golden.rglob("*")) if p.is_file()}
    assert sorted(files) == sorted(expected)
    for rel in sorted(files):
        assert files[rel] == expected[rel], f"{name}/{rel} differs from its golden copy"


def test_the_golden_copies_cover_every_format_archives_and_terms():
    """The comparison above means something only if the golden trees hold what it claims."""
    names = {p.relative_to(GOLDEN).as_posix() for p in GOLDEN.rglob("*") if p.is_file()}
    for feature in ("features/rss.xml", "features/atom.xml", "features/feed.json",
                    "features/archive/1/rss.xml", "features/tags/food/archive/1/atom.xml",
                    "features/categories/recipes/feed.json", "features/fr/rss.xml",
                    "hugo/ja/atom.xml"):
        assert feature in names
    rss = (GOLDEN / "features" / "rss.xml").read_bytes()
    for needle in (b"<enclosure ", b"<itunes:explicit>", b"<media:content", b"<dc:creator>",
                   b'rel="hub"', b"&#x26;"):
        assert needle in rss, needle
    atom = (GOLDEN / "features" / "tags" / "food" / "atom.xml").read_bytes()
    assert b'type="html"' in atom and b'rel="enclosure"' in atom


def test_a_kept_fragment_store_gives_the_same_feeds_and_serialises_only_changed_entries(tmp_path):
    """render_feeds(fragments=...): the mapping a caller may keep across builds. Its keys say
    what an entry's bytes depend on, so a changed post gets new entries, and the rest are
    taken as they are."""
    import dataclasses

    config = load_config(_feature_site(tmp_path / "site"))
    posts = load_posts(config, NOW).posts
    html_for = lambda post: render_html(post, config)  # noqa: E731
    fresh = render_feeds(posts, config, html_for)
    store: dict[str, bytes] = {}
    assert render_feeds(posts, config, html_for, fragments=store) == fresh
    # One entry per post and format (every post here is in some feed), and one more Atom
    # entry: c.md, published at the same second as b.md, is dated 1 µs later where both are
    # in a feed, and as it is where it is alone ('travel').
    per_format = {fmt: sum(key.startswith(fmt + " ") for key in store)
                  for fmt in ("rss.xml", "atom.xml", "feed.json")}
    assert per_format == {"rss.xml": len(posts), "atom.xml": len(posts) + 1,
                          "feed.json": len(posts)}
    size = len(store)
    assert render_feeds(posts, config, html_for, fragments=store) == fresh
    assert len(store) == size  # nothing serialised again

    changed = [dataclasses.replace(p, title="Renamed") if p.title == "Old post 3" else p
               for p in posts]
    again = render_feeds(changed, config, html_for, fragments=store)
    assert again == render_feeds(changed, config, html_for)
    assert again != fresh
    assert len(store) == size + 3  # the renamed post's RSS, Atom and JSON entries


def _write_golden() -> None:
    import tempfile

    shutil.rmtree(GOLDEN, ignore_errors=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name in SITES_UNDER_TEST:
            for rel, data in render_site(name, Path(tmp) / name).items():
                path = GOLDEN / name / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
    print(f"wrote {GOLDEN}")  # a developer's script, not the product


if __name__ == "__main__":
    sys.exit(_write_golden())
