from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from publisher.content import (
    absolutize_html,
    clean_text,
    derive_summary,
    load_posts,
    render_html,
    render_many,
    slugify,
)
from publisher.content.markup import PARALLEL_RENDER_MIN
from publisher.errors import ContentError

NOW = datetime(2025, 1, 1, 12, 0, tzinfo=timezone.utc)


def load(site, now=NOW):
    return load_posts(site.config(), now)


def only(site):
    result = load(site)
    assert result.problems == []
    assert len(result.posts) == 1, result
    return result.posts[0]


# --- front matter dialects ---------------------------------------------------------------

def test_astro_dialect(site):
    site.post("a.md", """
        title: "Product-Engineer Collaboration"
        description: "How to build partnerships."
        pubDate: 2024-04-20T00:00:00.000Z
        author: "Team"
        tags: ["product management", "collaboration"]
        featured: true
        heroImage: "/images/hero.png"
        """)
    post = only(site)
    assert post.title == "Product-Engineer Collaboration"
    assert post.summary == "How to build partnerships."
    assert post.published == datetime(2024, 4, 20, tzinfo=timezone.utc)
    assert post.author == "Team"
    assert post.tags == ("product management", "collaboration")
    assert post.featured is True
    assert post.image == "https://blog.test.example/images/hero.png"
    assert post.url == "https://blog.test.example/blog/a/"
    assert post.id == post.url


def test_hugo_jekyll_dialect(site):
    site.post("b.md", """
        title: Hugo post
        date: 2024-04-20 10:00:00 +0200
        summary: Short.
        tags: "one, two ,  three"
        lastmod: 2024-05-01
        slug: Custom Slug
        id: "urn:uuid:1234"
        image: cover.png
        draft: false
        """)
    post = only(site)
    assert post.published == datetime(2024, 4, 20, 8, 0, tzinfo=timezone.utc)
    assert post.updated == datetime(2024, 5, 1, tzinfo=timezone.utc)
    assert post.modified == post.updated
    assert post.summary == "Short."
    assert post.tags == ("one", "two", "three")
    assert post.slug == "custom-slug"
    assert post.id == "urn:uuid:1234"
    assert post.image == "https://blog.test.example/blog/custom-slug/cover.png"
    assert post.author == "Site Author"  # falls back to site.author
    assert post.author_email == "author@blog.test.example"


@pytest.mark.parametrize(
    "value, expected",
    [
        ("2024-04-20", datetime(2024, 4, 20, tzinfo=timezone.utc)),
        ('"2024-04-20"', datetime(2024, 4, 20, tzinfo=timezone.utc)),
        ('"2024-04-20T10:00:00Z"', datetime(2024, 4, 20, 10, tzinfo=timezone.utc)),
        ('"2024-04-20 10:00:00 +0200"', datetime(2024, 4, 20, 8, tzinfo=timezone.utc)),
        ("2024-04-20T10:00:00+02:00", datetime(2024, 4, 20, 8, tzinfo=timezone.utc)),
        ('"Sat, 20 Apr 2024 10:00:00 +0000"', datetime(2024, 4, 20, 10, tzinfo=timezone.utc)),
    ],
)
def test_date_forms(site, value, expected):
    site.post("d.md", f"title: D\npubDate: {value}")
    assert only(site).published == expected


def test_date_without_offset_uses_newsletter_timezone(site):
    site.write_config(newsletter={"timezone": "America/New_York"})
    site.post("tz.md", "title: TZ\npubDate: 2024-07-01 09:00:00")
    assert only(site).published.astimezone(timezone.utc) == datetime(2024, 7, 1, 13, tzinfo=timezone.utc)


def test_permalink_placeholders(site):
    site.write_config(content={"permalink": "/{year}/{month}/{day}/{slug}.html"})
    site.post("p.md", "title: P\npubDate: 2024-03-05")
    assert only(site).url == "https://blog.test.example/2024/03/05/p.html"


# --- slugs ---------------------------------------------------------------------------------

def test_slug_from_stem_and_bundle_folder(site):
    site.post("nested/deep/My Post.md", "title: A\npubDate: 2024-01-01")
    site.post("bundle-post/index.md", "title: B\npubDate: 2024-01-02")
    result = load(site)
    assert sorted(p.slug for p in result.posts) == ["bundle-post", "my-post"]


def test_duplicate_slugs_are_reported_and_first_kept(site):
    site.post("a/same.md", "title: First\npubDate: 2024-01-01")
    site.post("b/same.md", "title: Second\npubDate: 2024-01-02")
    result = load(site)
    assert [p.title for p in result.posts] == ["First"]
    assert result.problems == [
        "content/b/same.md: skipped: slug 'same' gives the same URL as content/a/same.md "
        "(https://blog.test.example/blog/same/)"
    ]


def test_slugify_is_path_safe():
    assert slugify("../../etc/passwd") == "etc-passwd"
    assert slugify("C++ & Rust") == "c-rust"
    assert slugify("Café Ünïcode") == "café-ünïcode"
    assert "/" not in slugify("/abs/path") and "." not in slugify("..")
    assert slugify("!!!") .startswith("x-")


# --- drafts and the future --------------------------------------------------------------------

def test_drafts_and_future_posts_are_held_back_until_their_date(site):
    site.post("draft.md", "title: Draft\npubDate: 2024-01-01\ndraft: true")
    site.post("future.md", "title: Future\npubDate: 2025-01-02")
    site.post("now.md", "title: Now\npubDate: 2025-01-01T12:00:00Z")
    result = load(site)
    assert [p.title for p in result.posts] == ["Now"]
    assert sorted(p.title for p in result.held_back) == ["Draft", "Future"]
    later = load(site, NOW + timedelta(days=2))
    assert [p.title for p in later.posts] == ["Future", "Now"]


# --- broken files -----------------------------------------------------------------------------

@pytest.mark.parametrize(
    "raw, reason",
    [
        (b"---\ntitle: [unclosed\npubDate: 2024-01-01\n---\nx", "front matter is not valid YAML at line 2"),
        (b"---\npubDate: 2024-01-01\n---\nno title", "front matter has no 'title'"),
        (b"---\ntitle: T\n---\nno date", "front matter has no 'pubDate' (or 'date')"),
        (b"---\ntitle: T\npubDate: next tuesday\n---\n", "'pubDate' is not a date: 'next tuesday'"),
        (b"---\ntitle: T\npubDate: 2024-01-01\n---\n\xff\xfe bad", "not UTF-8 (invalid byte at offset"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary file, not Markdown"),
        (b"just text, no front matter", "no front matter"),
        (b"---\n- a\n- b\n---\nlist", "front matter is empty or not a mapping of keys"),
        (b"---\ntitle: T\npubDate: 2024-01-01\nfeatured: maybe\n---\n", "'featured' should be true or false"),
        (b"---\ntitle: {a: 1}\npubDate: 2024-01-01\n---\n", "'title' should be text"),
    ],
)
def test_broken_file_is_skipped_with_reason_and_others_still_load(site, raw, reason):
    site.post("good.md", "title: Good\npubDate: 2024-01-01")
    site.post("broken.md", "", raw=raw)
    result = load(site)
    assert [p.title for p in result.posts] == ["Good"]
    assert len(result.problems) == 1
    assert result.problems[0].startswith("content/broken.md: skipped: ")
    assert reason in result.problems[0]


def test_crlf_and_bom(site):
    site.post("win.md", "", raw=b"\xef\xbb\xbf---\r\ntitle: Windows\r\npubDate: 2024-01-01\r\n---\r\nLine one\r\nLine two\r\n")
    post = only(site)
    assert post.title == "Windows"
    assert "\r" not in post.body
    assert "<p>Line one\nLine two</p>" in render_html(post)


def test_hidden_and_section_files_are_not_posts(site):
    site.post(".obsidian/notes.md", "title: Hidden\npubDate: 2024-01-01")
    site.post("_index.md", "title: Section\npubDate: 2024-01-01")
    site.post("readme.txt", "title: Text\npubDate: 2024-01-01")
    site.post("real.markdown", "title: Real\npubDate: 2024-01-01")
    result = load(site)
    assert [p.title for p in result.posts] == ["Real"] and result.problems == []


def test_missing_content_dir_is_a_config_error(site):
    from publisher.errors import ConfigError

    site.content.rmdir()
    with pytest.raises(ConfigError, match=r"content\.dir: the posts folder '.*content' does not "
                                          r"exist; nothing was written"):
        load(site)


# --- nasty text ----------------------------------------------------------------------------------

def test_nasty_titles_survive_and_control_characters_go(site):
    kept = 'Tom & Jerry <script>alert("x")</script> \u202eRTL\u202c עברית 🎉 it\'s'
    # Raw control characters in the file (YAML itself would refuse them; a NUL byte means binary) ...
    site.post("raw.md", "", raw=("---\ntitle: '" + kept.replace("'", "''") + " \x07\x1b\x7f\x85\ufffe'\n"
                                 "pubDate: 2024-01-01\n---\nbody \x08here\n").encode("utf-8"))
    # ... and escaped ones that only appear once YAML has decoded them.
    site.post("escaped.md", 'title: "' + kept.replace('"', '\\"') + ' \\x00\\x07\\e"\npubDate: 2024-01-02\n'
              'description: "a\\x0cb"')
    result = load(site)
    assert result.problems == []
    by_slug = {p.slug: p for p in result.posts}
    assert by_slug["raw"].title == kept
    assert by_slug["raw"].body.strip() == "body here"
    assert by_slug["escaped"].title == kept
    assert by_slug["escaped"].summary == "ab"
    assert clean_text("a\x00b\ud800c\r\nd") == "abc\nd"


def test_huge_post(site):
    body = ("Paragraph with **bold** and a [link](../x/).\n\n" * 5000)
    assert len(body) > 200_000
    site.post("huge.md", "title: Huge\npubDate: 2024-01-01", body)
    post = only(site)
    html = render_html(post)
    assert html.count("<strong>bold</strong>") == 5000
    assert 'href="https://blog.test.example/blog/x/"' in html


def test_summary_derived_from_first_paragraph_when_missing(site):
    site.post("s.md", "title: S\npubDate: 2024-01-01", "# Heading\n\n```\ncode\n```\n\nThe *first* [real](x) paragraph.\n\nSecond.")
    assert only(site).summary == "The first real paragraph."
    assert derive_summary("word " * 200).endswith("…")


# --- Markdown and URLs ----------------------------------------------------------------------------

def test_markdown_extensions(site):
    site.post("m.md", "title: M\npubDate: 2024-01-01",
              "```python\nx = '<b>' & 1\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\nNote.[^1]\n\n[^1]: Footnote.\n")
    html = render_html(only(site))
    assert '<code class="language-python">x = \'&lt;b&gt;\' &amp; 1' in html
    assert "<table>" in html and "<td>1</td>" in html
    assert 'class="footnote"' in html
    assert 'href="https://blog.test.example/blog/m/#fn:1"' in html


def test_relative_urls_made_absolute_against_the_post_url():
    base = "https://blog.example.org/blog/post/"
    html = (
        '<a href="/root/">r</a><a href="./here.png">h</a><a href="../about/">a</a>'
        "<img src='pic.jpg' srcset=\"a.jpg 1x, /b.jpg 2x\"><a href=\"https://x.org/\">abs</a>"
        '<a href="mailto:a@b.org">m</a><a href="#top">t</a><a href="//cdn.org/x">p</a>'
        '<video poster="p.png"></video><a href=bare.html>b</a><a href="q?a=1&amp;b=2">q</a>'
    )
    out = absolutize_html(html, base)
    assert 'href="https://blog.example.org/root/"' in out
    assert 'href="https://blog.example.org/blog/post/here.png"' in out
    assert 'href="https://blog.example.org/blog/about/"' in out
    assert 'src="https://blog.example.org/blog/post/pic.jpg"' in out
    assert 'srcset="https://blog.example.org/blog/post/a.jpg 1x, https://blog.example.org/b.jpg 2x"' in out
    assert 'href="https://x.org/"' in out
    assert 'href="mailto:a@b.org"' in out
    assert 'href="https://blog.example.org/blog/post/#top"' in out
    assert 'href="https://cdn.org/x"' in out
    assert 'poster="https://blog.example.org/blog/post/p.png"' in out
    assert 'href="https://blog.example.org/blog/post/bare.html"' in out
    assert 'href="https://blog.example.org/blog/post/q?a=1&amp;b=2"' in out


def test_text_that_merely_looks_like_an_attribute_is_left_alone(site):
    site.post("t.md", "title: T\npubDate: 2024-01-01", "Write `<a href=\"/x\">` in code, and href=\"/y\" in prose.\n")
    html = render_html(only(site))
    assert "&lt;a href=&quot;/x&quot;&gt;" in html or '&lt;a href="/x"&gt;' in html
    assert 'href="/y"' in html


def test_render_key_changes_with_body_and_url(site):
    path = site.post("k.md", "title: K\npubDate: 2024-01-01", "one")
    key1 = only(site).render_key
    path.write_text(path.read_text().replace("one", "two"))
    assert only(site).render_key != key1


def _many_posts(site, count: int) -> list:
    for i in range(count):
        site.post(f"p{i:03d}/index.md", f"title: Post {i} & <{i}>\npubDate: 2024-01-{i % 28 + 1:02d}",
                  f"Text [rel](../p{i - 1:03d}/) ![img](./a{i}.png) `code & <b>`\n\n| a | b |\n|---|---|\n"
                  f"| {i} | 😀 |\n\nNote[^1].\n\n[^1]: foot {i}\n")
    return load_posts(site.config(), NOW).posts


def test_render_many_in_worker_processes_gives_the_same_html(site):
    posts = _many_posts(site, PARALLEL_RENDER_MIN + 6)
    rendered = render_many(posts + posts[:3])  # a post asked twice is rendered once
    assert sorted(rendered) == sorted(p.render_key for p in posts)
    for post in posts:
        assert rendered[post.render_key] == render_html(post)
    fifth = next(p for p in posts if p.slug == "p005")
    assert '<a href="https://blog.test.example/blog/p004/">rel</a>' in rendered[fifth.render_key]
    assert 'src="https://blog.test.example/blog/p005/a5.png"' in rendered[fifth.render_key]
    assert "<td>😀</td>" in rendered[fifth.render_key]


def _renderer_pid(post) -> str:
    return str(os.getpid())


def test_render_many_renders_in_worker_processes(site, monkeypatch):
    import publisher.content.markup as content

    posts = _many_posts(site, PARALLEL_RENDER_MIN + 6)
    monkeypatch.setattr(content, "render_html", _renderer_pid)
    pids = set(render_many(posts).values())
    if len(os.sched_getaffinity(0)) < 2:
        assert pids == {str(os.getpid())}  # one core: no pool to pay for
    else:
        assert pids and str(os.getpid()) not in pids


def test_render_many_reports_a_file_changed_since_the_scan(site):
    """Posts restored from the scan cache read their bodies when rendered, in the workers."""
    posts = _many_posts(site, PARALLEL_RENDER_MIN + 6)
    config = site.config()
    first = load_posts(config, NOW, cache={})
    cached = load_posts(config, NOW, cache=dict(first.cache_changed))
    victim = cached.posts[10]
    Path(victim._path).write_text("---\ntitle: Changed\npubDate: 2024-01-01\n---\nNew body.\n")
    with pytest.raises(ContentError, match="changed while publisher was running"):
        render_many(cached.posts)
    assert len(posts) == len(cached.posts)
