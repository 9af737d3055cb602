"""content/links.py: links to other posts' source files become their URLs; local images are
found where the engine keeps them, copied into the output under content-hashed names, and a
missing one is named; the render cache never serves HTML whose links went stale."""

from __future__ import annotations

import dataclasses

import hashlib
import json
import re
from datetime import datetime, timezone
from pathlib import Path

from sites import Site

from publisher import pipeline
from publisher.content import links

NOW = datetime(2024, 6, 1, tzinfo=timezone.utc)
BASE = "https://blog.test.example"


def items(site) -> dict[str, dict]:
    """feed.json's items by URL."""
    feed = json.loads((site.root / "public" / "feed.json").read_text(encoding="utf-8"))
    return {item["url"]: item for item in feed["items"]}


def html_of(site, slug: str) -> str:
    return items(site)[f"{BASE}/blog/{slug}/"]["content_html"]


def srcs(html: str) -> list[str]:
    """Every src attribute, in order (how a Markdown engine spells the rest of <img> is its own)."""
    return re.findall(r'src="([^"]*)"', html)


def media_name(data: bytes, name: str) -> str:
    return f"media/{hashlib.sha256(data).hexdigest()[:12]}-{name}"


def test_links_to_source_files_become_the_posts_urls(site):
    site.post("blog/first.md", "title: First\npubDate: 2024-01-01")
    site.post("blog/2020-01-01-dated.md", "title: Dated\npubDate: 2020-01-01\nslug: dated")
    site.post("notes/other.mdx", "title: Other\npubDate: 2024-01-02")
    site.post("notes/linker.md", "title: Linker\npubDate: 2024-01-03", """\
[a](../blog/first.md), [b](/blog/first.md#intro), [c](./../blog/2020-01-01-dated.md#frag),
[d](other.mdx), [e][ref], <a href="../blog/first.md">f</a>, [g](https://other.example/x.md),
[h](../blog/gone.md), and [i](relative/page/).

[ref]: ../blog/first.md
""")
    report = pipeline.build(site.config(), NOW)
    assert report.warnings == [
        "content/notes/linker.md: link to ../blog/gone.md: no published post has that source file"]
    assert html_of(site, "linker") == (
        f'<p><a href="{BASE}/blog/first/">a</a>, <a href="{BASE}/blog/first/#intro">b</a>, '
        f'<a href="{BASE}/blog/dated/#frag">c</a>,\n'
        f'<a href="{BASE}/blog/other/">d</a>, <a href="{BASE}/blog/first/">e</a>, '
        f'<a href="{BASE}/blog/first/">f</a>, <a href="https://other.example/x.md">g</a>,\n'
        f'<a href="{BASE}/blog/blog/gone.md">h</a>, and <a href="{BASE}/blog/linker/relative/page/">i</a>.</p>')


def test_a_link_to_a_source_file_follows_that_posts_url_past_the_render_cache(site):
    site.post("a.md", "title: A\npubDate: 2024-01-01", "See [b](b.md).\n")
    b = site.post("b.md", "title: B\npubDate: 2024-01-02\nslug: bee")
    pipeline.build(site.config(), NOW)
    assert html_of(site, "a") == f'<p>See <a href="{BASE}/blog/bee/">b</a>.</p>'
    b.write_text("---\ntitle: B\npubDate: 2024-01-02\nslug: renamed\n---\nHello.\n", encoding="utf-8")
    report = pipeline.build(site.config(), NOW)
    assert (report.problems, report.warnings) == ([], [])
    # a.md's bytes did not change; its HTML did, because what it links to did.
    assert html_of(site, "a") == f'<p>See <a href="{BASE}/blog/renamed/">b</a>.</p>'
    assert "1 rendered" not in report.lines[0] and "2 rendered" in report.lines[0]


def test_a_link_to_a_post_not_yet_published_resolves_when_it_is(site, monkeypatch):
    """A post's preparation is recorded with the lookups it made (feed_cache.FeedSelection): the
    next build takes it from its record without preparing it again, unless a lookup gives
    another answer now, as when the post a link names is published."""
    site.post("a.md", "title: A\npubDate: 2024-01-01", "See [later](later.md).\n")
    site.post("b.md", "title: B\npubDate: 2024-01-02", "Nothing to resolve.\n")
    report = pipeline.build(site.config(), NOW)
    assert report.warnings == [
        "content/a.md: link to later.md: no published post has that source file"]
    assert html_of(site, "a") == f'<p>See <a href="{BASE}/blog/a/later.md">later</a>.</p>'
    prepared: list[str] = []
    real = links._prepare

    def counted(post, index):
        prepared.append(post.source)
        return real(post, index)

    monkeypatch.setattr(links, "_prepare", counted)
    site.post("c.md", "title: C\npubDate: 2024-01-03")  # a.md's lookup still finds nothing
    report = pipeline.build(site.config(), NOW)
    assert prepared == ["content/c.md"]
    assert report.warnings == []  # said by the first build, and a.md is unchanged
    strict = pipeline.build(dataclasses.replace(site.config(), content=dataclasses.replace(
        site.config().content, strict=True)), NOW)  # still known: --strict names it
    assert strict.problems == ["content/a.md: link to later.md: no published post has that source file"]
    prepared.clear()
    site.post("later.md", "title: Later\npubDate: 2024-01-04")
    report = pipeline.build(site.config(), NOW)
    assert sorted(prepared) == ["content/a.md", "content/later.md"]
    assert (report.problems, report.warnings) == ([], [])
    assert html_of(site, "a") == f'<p>See <a href="{BASE}/blog/later/">later</a>.</p>'


def test_local_images_are_copied_under_content_hashed_names_once(site):
    pic, shared, cover = b"\x89PNG first picture", b"GIF89a shared", b"\xff\xd8 cover"
    (site.content / "blog").mkdir()
    (site.content / "blog" / "pic.png").write_bytes(pic)
    (site.content / "img").mkdir()
    (site.content / "img" / "shared one.gif").write_bytes(shared)
    (site.content / "blog" / "cover.jpg").write_bytes(cover)
    site.post("blog/post.md", "title: Post\npubDate: 2024-01-01\nimage: ./cover.jpg", """\
![a picture](./pic.png "A title") and again ![same](pic.png)

<img src="../img/shared one.gif" alt="shared">

![elsewhere](https://cdn.example/x.png)
""")
    report = pipeline.build(site.config(), NOW)
    assert (report.problems, report.warnings) == ([], [])
    out = site.root / "public"
    names = [media_name(pic, "pic.png"), media_name(shared, "shared-one.gif"), media_name(cover, "cover.jpg")]
    for name, data in zip(names, (pic, shared, cover)):
        assert (out / name).read_bytes() == data
    assert sorted(p.name for p in (out / "media").iterdir()) == sorted(n[6:] for n in names)
    assert srcs(html_of(site, "post")) == [f"{BASE}/{names[0]}", f"{BASE}/{names[0]}",
                                           f"{BASE}/{names[1]}", "https://cdn.example/x.png"]
    assert items(site)[f"{BASE}/blog/post/"]["image"] == f"{BASE}/{names[2]}"
    assert f'<media:content url="{BASE}/{names[2]}"' in (out / "rss.xml").read_text()

    # Nothing changed: nothing is written again.
    stamps = {name: (out / name).stat().st_mtime_ns for name in names}
    pipeline.build(site.config(), NOW)
    assert {name: (out / name).stat().st_mtime_ns for name in names} == stamps

    # The picture changes: a new name, linked from fresh HTML (the cached render is not reused).
    (site.content / "blog" / "pic.png").write_bytes(b"\x89PNG second picture")
    report = pipeline.build(site.config(), NOW)
    renamed = media_name(b"\x89PNG second picture", "pic.png")
    assert (out / renamed).read_bytes() == b"\x89PNG second picture"
    assert srcs(html_of(site, "post"))[:2] == [f"{BASE}/{renamed}", f"{BASE}/{renamed}"]
    assert "1 rendered" in report.lines[0]


def test_a_page_bundles_images_stay_where_the_engine_publishes_them(site):
    (site.content / "bundle").mkdir()
    (site.content / "bundle" / "photo.png").write_bytes(b"\x89PNG photo")
    site.post("bundle/index.md", "title: Bundle\npubDate: 2024-01-01", "![p](photo.png)\n")
    assert pipeline.build(site.config(), NOW).warnings == []
    assert srcs(html_of(site, "bundle")) == [f"{BASE}/blog/bundle/photo.png"]
    assert not (site.root / "public" / "media").exists()


def test_site_absolute_images_are_found_in_the_static_folder(site):
    static = site.root / "static" / "images"
    static.mkdir(parents=True)
    (static / "x.png").write_bytes(b"\x89PNG x")
    site.write_config(site={"url": "https://example.github.io/blog"})
    site.post("p.md", "title: P\npubDate: 2024-01-01", "![x](/images/x.png) ![y](/images/y.png)\n")
    report = pipeline.build(site.config(), NOW)
    assert report.warnings == ["content/p.md: image not found: /images/y.png"]
    feed = json.loads((site.root / "public" / "feed.json").read_text())
    # y.png is left where the post says, made absolute; x.png is where static/ is served.
    assert srcs(feed["items"][0]["content_html"]) == ["https://example.github.io/blog/images/x.png",
                                                      "https://example.github.io/images/y.png"]


def test_a_served_image_that_goes_away_is_named_by_the_next_build_that_writes(site):
    """A post's recorded preparation (feed_cache.FeedSelection) holds only while every file the
    engine serves that it found is still there."""
    static = site.root / "static" / "images"
    static.mkdir(parents=True)
    (static / "x.png").write_bytes(b"\x89PNG x")
    site.post("p.md", "title: P\npubDate: 2024-01-01", "![x](/images/x.png)\n")
    assert pipeline.build(site.config(), NOW).warnings == []
    (static / "x.png").unlink()
    site.post("q.md", "title: Q\npubDate: 2024-01-02")
    assert pipeline.build(site.config(), NOW).warnings == ["content/p.md: image not found: /images/x.png"]


def test_only_a_body_naming_no_file_suffix_skips_the_search_for_references(site, monkeypatch):
    """Preparing a post looks for its references outside code only when some suffix of a
    source file or an image is in it (any case): the others have no reference that does
    anything. A post naming one still has it resolved, or warned about in capitals too."""
    searched = []
    real = links._references
    monkeypatch.setattr(links, "_references", lambda text: searched.append(text) or real(text))
    site.post("a.md", "title: A\npubDate: 2024-01-01", "See [B](./b.md) and ![x](./X.PNG).\n")
    site.post("b.md", "title: B\npubDate: 2024-01-02", "[A page](/about/) and [a site](https://x.example/).\n")
    report = pipeline.build(site.config(), NOW)
    assert report.warnings == ["content/a.md: image not found: ./X.PNG"]
    assert 'href="https://blog.test.example/blog/b/"' in html_of(site, "a")
    assert [text.split(" ", 1)[0] for text in searched] == ["See"]


def test_a_missing_image_is_named_once_by_build_and_by_every_check_until_it_appears(site):
    site.post("p.md", "title: P\npubDate: 2024-01-01\nheroImage: ../assets/hero.jpg",
              "![d](./diagram.svg)\n\n```\n![not an image](./in-code.png)\n```\n")
    expected = ["content/p.md: image not found: ./diagram.svg",
                "content/p.md: image not found: ../assets/hero.jpg"]
    config = site.config()
    first = pipeline.build(config, NOW)
    assert (first.warnings, first.problems, first.exit_status) == (expected, [], 0)
    second = pipeline.build(config, NOW)  # nothing changed: the feeds are not even rendered
    assert second.lines[0].startswith("feeds: 1 post, 0 files written")
    assert (second.warnings, second.problems) == ([], [])  # said once: cron does not repeat it
    assert pipeline.check(config, NOW).problems == expected  # check names every one, every time
    strict = dataclasses.replace(config, content=dataclasses.replace(config.content, strict=True))
    assert (pipeline.build(strict, NOW).problems, pipeline.build(strict, NOW).exit_status) == (expected, 1)
    site.post("p.md", "title: P\npubDate: 2024-01-01\nheroImage: ../assets/hero.jpg",
              "![d](./diagram.svg) edited\n")  # a changed post shows its warnings again
    assert pipeline.build(config, NOW).warnings == expected

    (site.root / "assets").mkdir()
    (site.root / "assets" / "hero.jpg").write_bytes(b"\xff\xd8 hero")
    (site.content / "diagram.svg").write_bytes(b"<svg/>")
    third = pipeline.build(config, NOW)
    assert third.problems == []
    item = items(site)[f"{BASE}/blog/p/"]
    assert item["image"] == BASE + "/" + media_name(b"\xff\xd8 hero", "hero.jpg")
    assert srcs(item["content_html"]) == [f'{BASE}/{media_name(b"<svg/>", "diagram.svg")}']
    assert (site.root / "public" / media_name(b"<svg/>", "diagram.svg")).read_bytes() == b"<svg/>"


def test_publisher_run_notices_an_image_change_and_a_missing_image_that_appears(site):
    """The idle stamp of `publisher run` covers the images the feeds depend on."""
    from datetime import timedelta

    from sites import PG_BASE

    (site.content / "a.png").write_bytes(b"\x89PNG one")
    site.post("p.md", "title: P\npubDate: 2024-01-01", "![a](a.png) ![b](b.png)\n")
    config = site.config()
    missing = ["content/p.md: image not found: b.png"]
    first = pipeline.run_once(config, NOW)
    assert (first.warnings, first.exit_status) == (missing, 0)  # said once, exit 0 ...
    for minutes in (5, 10):  # ... and not again by the next runs (cron would mail it each time)
        again = pipeline.run_once(config, NOW + timedelta(minutes=minutes))
        assert (again.warnings, again.problems, again.exit_status) == ([], [], 0)
    (site.content / "b.png").write_bytes(b"\x89PNG two")
    found = pipeline.run_once(config, NOW + timedelta(minutes=15))
    assert (found.problems, found.warnings) == ([], [])
    assert (site.root / "public" / media_name(b"\x89PNG two", "b.png")).exists()
    pipeline.run_once(config, NOW + timedelta(minutes=20))  # idle from here on
    if not PG_BASE:
        assert json.loads(_idle_stamp(config))["feeds"]  # the stamp is in place
    (site.content / "a.png").write_bytes(b"\x89PNG one, edited")
    report = pipeline.run_once(config, NOW + timedelta(minutes=25))
    assert report.lines[0].startswith("feeds: 1 post, 4 files written")
    edited, two = media_name(b"\x89PNG one, edited", "a.png"), media_name(b"\x89PNG two", "b.png")
    assert srcs(html_of(site, "p")) == [f"{BASE}/{edited}", f"{BASE}/{two}"]


def _idle_stamp(config) -> str:
    from publisher import cache_sqlite3
    from publisher.state import State

    state = State(config.database_url)
    try:
        return state.get_meta(cache_sqlite3.IDLE_STAMP_KEY)
    finally:
        state.close()


def test_the_mail_shows_a_local_hero_image_from_its_copy(site, tmp_path):
    (site.root / "src" / "assets").mkdir(parents=True)
    (site.root / "src" / "assets" / "hero.jpg").write_bytes(b"\xff\xd8 hero")
    site.write_config(content={"dir": "src/content/blog"})
    post = site.root / "src" / "content" / "blog" / "first-post.md"
    post.parent.mkdir(parents=True)
    post.write_text("---\ntitle: First post\npubDate: 2024-01-01\nheroImage: '../../assets/hero.jpg'\n---\n"
                    "Hello.\n", encoding="utf-8")
    config = site.config()
    name = media_name(b"\xff\xd8 hero", "hero.jpg")
    # A preview before any build: the image is copied beside the preview and shows there
    # (the post is not online yet), never linked under the post's URL, where nothing is served.
    _report, files = pipeline.preview(config, tmp_path / "before")
    html = files[0].read_text()
    assert f'src="{name}"' in html and "assets/hero.jpg" not in html
    assert (tmp_path / "before" / name).read_bytes() == b"\xff\xd8 hero"
    # The mail (a dry run, as a send) before any build links the copy where the build puts
    # it, and puts it there.
    from publisher.state import State

    state = State(config.database_url)
    state.add_subscribers([("reader@example.org", "")])
    state.close()
    pipeline.dry_run(config, tmp_path / "outbox", NOW)
    [eml] = (tmp_path / "outbox").glob("*.eml")
    import email
    import email.policy

    mail = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    assert f'src="{BASE}/{name}"' in mail.get_body(("html",)).get_content()
    assert (site.root / "public" / name).read_bytes() == b"\xff\xd8 hero"
    pipeline.build(config, NOW)
    item = items(site)[f"{BASE}/blog/first-post/"]
    assert item["image"] == f"{BASE}/{name}"  # the feed's link is the mail's


def test_pelican_intrasite_links_resolve_from_the_content_folder_or_the_post(site):
    """Pelican's {static}/{filename} markers (and the old |filename| form): a path after them
    that starts with '/' is from content.dir, else from the post's folder (a real Pelican blog
    links every image as {filename}/images/x.png)."""
    picture = b"\x89PNG pelican"
    (site.content / "images").mkdir()
    (site.content / "images" / "shot.png").write_bytes(picture)
    site.post("2019/other.md", "title: Other\npubDate: 2019-01-01")
    site.post("2019/post.md", "title: Post\npubDate: 2019-01-02", """\
![shot]({filename}/images/shot.png) ![again]({static}../images/shot.png)
[other]({filename}other.md), [old style](|filename|/2019/other.md), [gone]({static}/images/gone.png)
""")
    report = pipeline.build(site.config(), NOW)
    assert report.warnings == ["content/2019/post.md: image not found: {static}/images/gone.png"]
    name = media_name(picture, "shot.png")
    html = html_of(site, "post")
    assert srcs(html)[:2] == [f"{BASE}/{name}", f"{BASE}/{name}"]
    assert html.count(f'<a href="{BASE}/blog/other/">') == 2
    assert (site.root / "public" / name).read_bytes() == picture


def test_images_are_copied_from_a_content_dir_the_user_put_outside_the_site(tmp_path):
    """content.dir is the user's choice, wherever it is: its images are the site's. A
    symlink inside the site to a file inside it is followed; one out of it is not."""
    shared = tmp_path / "shared-posts"
    (shared / "img").mkdir(parents=True)
    (shared / "img" / "a.png").write_bytes(b"\x89PNG shared a")
    (shared / "link.png").symlink_to("img/a.png")
    (tmp_path / "private.png").write_bytes(b"\x89PNG private")
    (shared / "out.png").symlink_to(tmp_path / "private.png")
    site = Site(tmp_path / "site", content={"dir": str(shared)})
    (shared / "p.md").write_text("---\ntitle: P\npubDate: 2024-01-01\n---\n"
                                 "![a](img/a.png) ![l](link.png) ![o](out.png)\n", encoding="utf-8")
    report = pipeline.build(site.config(), NOW)
    assert report.warnings == [f"{shared / 'p.md'}: image not copied: out.png is outside the site folder"]
    a = media_name(b"\x89PNG shared a", "a.png")
    link = media_name(b"\x89PNG shared a", "link.png")
    assert srcs(html_of(site, "p")) == [f"{BASE}/{a}", f"{BASE}/{link}", f"{BASE}/blog/p/out.png"]
    out = site.root / "public"
    assert sorted(p.relative_to(out).as_posix() for p in (out / "media").iterdir()) == sorted([a, link])


def test_an_image_linked_out_of_the_site_is_copied_once_the_link_is_replaced_by_the_file(site, tmp_path):
    (tmp_path / "private.png").write_bytes(b"\x89PNG private")
    (site.content / "pic.png").symlink_to(tmp_path / "private.png")
    site.post("p.md", "title: P\npubDate: 2024-01-01", "![p](pic.png)\n")
    expected = ["content/p.md: image not copied: pic.png is outside the site folder"]
    assert pipeline.build(site.config(), NOW).warnings == expected
    assert pipeline.build(site.config(), NOW).warnings == []  # said once: not again from the cache
    assert srcs(html_of(site, "p")) == [f"{BASE}/blog/p/pic.png"]
    assert not (site.root / "public" / "media").exists()

    (site.content / "pic.png").unlink()
    (site.content / "pic.png").write_bytes(b"\x89PNG the real one")
    assert pipeline.build(site.config(), NOW).warnings == []
    copy = media_name(b"\x89PNG the real one", "pic.png")
    assert srcs(html_of(site, "p")) == [f"{BASE}/{copy}"]
