from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from publisher.content import (
    absolutize_html,
    clean_text,
    load_posts,
    render_html,
    slugify,
)

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


def test_loaded_posts_keep_no_body_and_read_it_again_when_rendered(site):
    """A post load_posts gives holds its metadata only (a 20,000-post site's bodies were
    most of a cold build's memory); its body is read again from the file when asked, and
    a file that changed since it was parsed is said to have changed, not mixed in."""
    from publisher.errors import ContentError

    site.post("a.md", "title: A\npubDate: 2024-01-01", "Body of *A*.\n")
    site.post("b.md", "title: B\npubDate: 2024-01-02", "Body of *B*.\n")
    result = load(site)
    assert [p._body for p in result.posts] == [None, None]
    b, a = result.posts
    assert a.body == "Body of *A*." and "<em>A</em>" in render_html(a, site.config())
    site.post("b.md", "title: B\npubDate: 2024-01-02", "Edited after the scan.\n")
    with pytest.raises(ContentError, match=r"content/b.md: changed while publisher was running"):
        b.body


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


# --- Markdown and URLs ----------------------------------------------------------------------------

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


def test_render_key_changes_with_body_and_url(site):
    path = site.post("k.md", "title: K\npubDate: 2024-01-01", "one")
    key1 = only(site).render_key
    path.write_text(path.read_text().replace("one", "two"))
    assert only(site).render_key != key1


