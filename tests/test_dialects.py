"""Each engine's fixture site (tests/fixtures/sites/<engine>/, written by us in that engine's
real layout) comes out as the engine itself publishes it: URLs, dates, titles, taxonomies,
languages, and what is held back. For Hugo, the real `hugo` builds the same site and its RSS
is compared with publisher's."""

from __future__ import annotations

import os
import shutil
import subprocess
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from lxml import etree

from publisher.config import load_config
from publisher.content import load_posts

SITES = Path(__file__).parent / "fixtures" / "sites"
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=timezone.utc)
UTC = timezone.utc


def engine_site(tmp_path: Path, engine: str, url: str, **content) -> Path:
    """A copy of the engine's fixture site with a publisher config.yaml at its root."""
    root = tmp_path / engine
    shutil.copytree(SITES / engine, root)
    timezone_name = content.pop("timezone", "UTC")
    config = {
        "site": {"title": f"{engine} fixture", "url": url, "language": content.pop("language", "en")},
        "content": {"dialect": engine, **content},
        "feeds": {"output_dir": "publisher-feeds", "limit": 0},
        "newsletter": {"timezone": timezone_name},
        "state": {"database": "state.db"},
    }
    (root / "config.yaml").write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return root


def load(root: Path):
    return load_posts(load_config(root / "config.yaml"), NOW)


def by_url(posts) -> dict[str, object]:
    return {p.url: p for p in posts}


# --- Astro -----------------------------------------------------------------------------------

def test_astro_blog_starter(tmp_path):
    root = engine_site(tmp_path, "astro", "https://astro.example.org", dir="src/content/blog",
                       permalink="/blog/{slug}/")
    result = load(root)
    assert result.problems == [] and result.held_back == []
    posts = by_url(result.posts)
    assert sorted(posts) == [
        "https://astro.example.org/blog/2024/notesonrelease_2/",  # id: the path, github-slugged
        "https://astro.example.org/blog/first-post/",
        "https://astro.example.org/blog/markdown-style-guide/",
        "https://astro.example.org/blog/own-slug/",
        "https://astro.example.org/blog/second-post/",
    ]
    first = posts["https://astro.example.org/blog/first-post/"]
    assert first.title == "First post"
    assert first.published == datetime(2022, 7, 8, tzinfo=UTC)  # 'Jul 08 2022'
    assert first.summary == "Lorem ipsum dolor sit amet"
    second = posts["https://astro.example.org/blog/second-post/"]
    assert second.updated == datetime(2022, 7, 16, tzinfo=UTC)  # 'July 16, 2022'
    assert posts["https://astro.example.org/blog/own-slug/"].published == datetime(2024, 5, 6, tzinfo=UTC)


# --- Jekyll ----------------------------------------------------------------------------------

def test_jekyll_posts_folder(tmp_path):
    """Jekyll's default permalink (`date`): /:categories/:year/:month/:day/:title.html, the
    day taken in the site's time zone (_config.yml `timezone: Europe/Berlin`)."""
    root = engine_site(tmp_path, "jekyll", "https://jekyll.example.org", dir="_posts",
                       permalink="/{categories}/{year}/{month}/{day}/{slug}.html",
                       timezone="Europe/Berlin")
    result = load(root)
    assert result.problems == []
    berlin = ZoneInfo("Europe/Berlin")
    posts = by_url(result.posts)
    assert sorted(posts) == [
        "https://jekyll.example.org/2022/05/06/v1.2.3-released.html",
        "https://jekyll.example.org/2024/07/01/across-midnight.html",
        "https://jekyll.example.org/jekyll/update/2025/01/29/welcome-to-jekyll.html",
        "https://jekyll.example.org/notes/2024/12/31/late-night.html",
    ]
    welcome = posts["https://jekyll.example.org/jekyll/update/2025/01/29/welcome-to-jekyll.html"]
    assert welcome.title == "Welcome to Jekyll!"
    assert welcome.categories == ("jekyll", "update")  # a string is split on whitespace
    assert welcome.published == datetime(2025, 1, 29, 9, 0, tzinfo=UTC)
    late = posts["https://jekyll.example.org/notes/2024/12/31/late-night.html"]
    assert late.published == datetime(2024, 12, 31, tzinfo=berlin)  # the file name's date
    assert late.tags == ("ruby", "static-sites")
    assert late.categories == ("Notes",)
    assert late.slug == "late-night"
    assert [p.title for p in result.held_back] == ["Not for now"]  # published: false


def test_jekyll_site_root(tmp_path):
    """content.dir at the site's root: pages (index.md, about.md) are no posts, _drafts are
    held back, and the folders above a _posts folder are categories."""
    root = engine_site(tmp_path, "jekyll", "https://jekyll.example.org", dir=".",
                       permalink="/{categories}/{year}/{month}/{day}/{slug}.html",
                       timezone="Europe/Berlin")
    (root / "_docs").mkdir()
    (root / "_docs" / "page.md").write_text("---\n---\nA page: empty front matter, as Jekyll allows.\n")
    result = load(root)
    assert result.problems == []
    assert sorted(p.title for p in result.held_back) == ["An idea", "Not for now"]
    assert len(result.posts) == 5
    folder = by_url(result.posts)["https://jekyll.example.org/blog/travel/far%20away/2024/02/02/in-a-folder.html"]
    assert folder.categories == ("blog", "Travel", "Far Away")
    assert folder.tags == ("one tag",)  # `tag`: one, as it is


# --- Hugo ------------------------------------------------------------------------------------

HUGO_CONTENT = {"dir": "content", "permalink": "/{section}/{stem}/"}


def test_hugo_site(tmp_path):
    root = engine_site(tmp_path, "hugo", "https://hugo.example.org", **HUGO_CONTENT)
    result = load(root)
    assert result.problems == []  # _index.md and _index.ja.md are no posts, and no noise
    assert sorted(p.title for p in result.held_back) == ["Draft", "Expired offer", "Not yet"]
    posts = by_url(result.posts)
    assert sorted(posts) == [
        "https://hugo.example.org/ja/posts/first-post/",
        "https://hugo.example.org/posts/first-post/",
        "https://hugo.example.org/posts/json-post/",
        "https://hugo.example.org/posts/v1.2.3/",
        "https://hugo.example.org/posts/yaml-dated/",
    ]
    first = posts["https://hugo.example.org/posts/first-post/"]
    ja = posts["https://hugo.example.org/ja/posts/first-post/"]
    assert (first.lang, ja.lang) == ("en", "ja")
    assert first.translation_key == ja.translation_key == "posts/first-post/index"
    assert first.tags == ("intro", "hugo") and first.categories == ("Notes",)
    assert posts["https://hugo.example.org/posts/v1.2.3/"].tags == ("release notes",)  # one term
    assert posts["https://hugo.example.org/posts/json-post/"].categories == ("Notes", "Formats")
    assert posts["https://hugo.example.org/posts/yaml-dated/"].published == datetime(2023, 10, 15, tzinfo=UTC)


def _rss_items(path: Path) -> list[tuple[str, str, datetime]]:
    root = etree.parse(str(path)).getroot()
    return [(item.findtext("title"), item.findtext("link"), parsedate_to_datetime(item.findtext("pubDate")))
            for item in root.iter("item")]


def test_hugo_rss_matches_what_hugo_publishes(tmp_path):
    """The real hugo (Debian's package; .ci/run installs it) builds the fixture; its RSS of
    each language and of a category lists the same posts, links and dates as publisher's."""
    hugo = shutil.which("hugo")
    if hugo is None:
        if os.environ.get("CI") == "true":
            pytest.fail("hugo is not installed (CI installs it: .ci/run)")
        pytest.skip("hugo is not installed")
    from publisher.pipeline import build

    root = engine_site(tmp_path, "hugo", "https://hugo.example.org", **HUGO_CONTENT)
    out = tmp_path / "hugo-public"
    subprocess.run([hugo, "--quiet", "--source", str(root), "--destination", str(out)],
                   check=True, capture_output=True, timeout=120)
    report = build(load_config(root / "config.yaml"), NOW)
    assert report.problems == []
    feeds = root / "publisher-feeds"
    for hugo_feed, ours in [("index.xml", "rss.xml"), ("ja/index.xml", "ja/rss.xml"),
                            ("categories/notes/index.xml", "categories/notes/rss.xml")]:
        expected = _rss_items(out / hugo_feed)
        assert expected, hugo_feed
        assert _rss_items(feeds / ours) == expected, hugo_feed


# --- Eleventy --------------------------------------------------------------------------------

def test_eleventy_site(tmp_path):
    root = engine_site(tmp_path, "eleventy", "https://eleventy.example.org", dir="content/blog",
                       permalink="/blog/{stem}/")
    result = load(root)
    assert result.problems == [
        "content/blog/draft-in-js.md: skipped: JavaScript front matter is not supported (---js): "
        "write it as YAML (---) or JSON (---json)",
    ]
    assert [p.title for p in result.held_back] == ["Rendered but listed nowhere"]
    posts = by_url(result.posts)
    assert sorted(posts) == [
        "https://eleventy.example.org/blog/2023-05-01-hello-eleventy/",  # the prefix stays
        "https://eleventy.example.org/blog/firstpost/",  # firstpost/firstpost.md
        "https://eleventy.example.org/blog/json-post/",
        "https://eleventy.example.org/notes/custom-url/",  # permalink: /notes/{{ page.fileSlug }}/
    ]
    hello = posts["https://eleventy.example.org/blog/2023-05-01-hello-eleventy/"]
    assert hello.published == datetime(2023, 5, 1, tzinfo=UTC)  # from the file name
    assert hello.title == "Hello, Eleventy"
    assert hello.tags == ("posts", "intro")  # blog.11tydata.json's tags, then the post's
    assert posts["https://eleventy.example.org/blog/json-post/"].tags == ("posts", "formats")


# --- nanoc -----------------------------------------------------------------------------------

def test_nanoc_articles(tmp_path):
    root = engine_site(tmp_path, "nanoc", "https://nanoc.example.org", dir="content",
                       permalink="/{section}/{stem}/")
    result = load(root)
    assert result.problems == []  # about.md has no `kind: article`: a page, silently
    posts = by_url(result.posts)
    assert sorted(posts) == ["https://nanoc.example.org/posts/2020-01-01-x/",
                             "https://nanoc.example.org/posts/2021-02-03-dated-by-name/"]
    assert posts["https://nanoc.example.org/posts/2020-01-01-x/"].published == datetime(2020, 1, 1, 10, tzinfo=UTC)
    assert posts["https://nanoc.example.org/posts/2021-02-03-dated-by-name/"].published == datetime(2021, 2, 3, tzinfo=UTC)


# --- Pelican ---------------------------------------------------------------------------------

def test_pelican_headers(tmp_path):
    root = engine_site(tmp_path, "pelican", "https://pelican.example.org", dir="content",
                       permalink="/{slug}.html", exclude=["pages"], timezone="Europe/Paris")
    result = load(root)
    assert result.problems == []
    assert [p.title for p in result.held_back] == ["Still a draft"]  # Status: draft
    posts = by_url(result.posts)
    assert sorted(posts) == [
        "https://pelican.example.org/my-super-post-fr.html",  # ARTICLE_LANG_URL
        "https://pelican.example.org/my-super-post.html",
        "https://pelican.example.org/tags-with-commas-split-on-semicolons.html",
    ]
    post = posts["https://pelican.example.org/my-super-post.html"]
    assert post.published == datetime(2010, 12, 3, 10, 20, tzinfo=ZoneInfo("Europe/Paris"))
    assert post.updated == datetime(2010, 12, 5, 19, 30, tzinfo=ZoneInfo("Europe/Paris"))
    assert post.tags == ("thats", "awesome")
    assert post.categories == ("python",)  # the parent folder
    assert post.summary == "Short version for index and feeds"
    assert post.author == "Alexis Metaireau, Conan Doyle"
    assert posts["https://pelican.example.org/my-super-post-fr.html"].lang == "fr"
    semi = posts["https://pelican.example.org/tags-with-commas-split-on-semicolons.html"]
    assert semi.tags == ("one, two", "three") and semi.categories == ("Misc Things",)


# --- the contract's defaults (content.dialect: auto) -------------------------------------------

def only(result):
    assert result.problems == [] and len(result.posts) == 1, result
    return result.posts[0]


def test_file_name_date_and_slug_without_its_prefix(site):
    site.post("2025-01-29-x.md", "title: X")
    post = only(load_posts(site.config(), NOW))
    assert post.published == datetime(2025, 1, 29, tzinfo=UTC)
    assert (post.slug, post.url) == ("x", "https://blog.test.example/blog/x/")


def test_front_matter_date_beats_the_file_name_and_aliases_are_read(site):
    site.post("2025-01-29-a.md", "title: A\ndate: 2024-02-03")
    site.post("b.md", "title: B\npublishDate: 2024-02-04")
    site.post("c.md", "title: C\npublished: 2024-02-05")
    site.post("d.md", "title: D\ncreated_at: 2024-02-06 10:00:00 +0000")
    result = load_posts(site.config(), NOW)
    assert result.problems == []
    assert {p.title: p.published.date().isoformat() for p in result.posts} == {
        "A": "2024-02-03", "B": "2024-02-04", "C": "2024-02-05", "D": "2024-02-06"}


def test_published_false_is_a_flag_not_a_date(site):
    site.post("hidden.md", "title: Hidden\ndate: 2024-01-01\npublished: false")
    site.post("shown.md", "title: Shown\ndate: 2024-01-01\npublished: true")
    result = load_posts(site.config(), NOW)
    assert [p.title for p in result.posts] == ["Shown"]
    assert [p.title for p in result.held_back] == ["Hidden"]


def test_hugo_publish_and_expiry_dates_hold_back_in_any_dialect(site):
    site.post("later.md", "title: Later\ndate: 2024-01-01\npublishDate: 2025-07-01")
    site.post("expires.md", "title: Expires\ndate: 2024-01-01\nexpiryDate: 2025-07-01")
    result = load_posts(site.config(), NOW)
    assert [p.title for p in result.posts] == ["Expires"]
    after = load_posts(site.config(), datetime(2025, 7, 2, tzinfo=UTC))
    assert [p.title for p in after.posts] == ["Later"]
    assert after.posts[0].published == datetime(2025, 7, 1, tzinfo=UTC)


@pytest.mark.parametrize("slug, expected", [("v1.2.3", "v1.2.3"), ("Keep_Case", "Keep_Case"),
                                            ("Two words", "two-words"), ("..", "x-")])
def test_explicit_slug_is_kept_as_written_when_a_url_can_carry_it(site, slug, expected):
    site.post("p.md", f"title: P\ndate: 2024-01-01\nslug: '{slug}'")
    post = only(load_posts(site.config(), NOW))
    assert post.slug.startswith(expected) and post.url == f"https://blog.test.example/blog/{post.slug}/"


def test_the_file_name_is_the_slug_as_written(site):
    """The README: else the file name without its YYYY-MM-DD- prefix (`3.9.0.md` is /3.9.0/,
    as an explicit `slug: 3.9.0` is); only a name no URL segment can carry is slugified."""
    site.post("3.9.0.md", "title: Release\ndate: 2024-01-01")
    site.post("2024-01-02-Keep_Case.md", "title: K")
    site.post("two words.md", "title: T\ndate: 2024-01-03")
    assert sorted(p.url for p in load_posts(site.config(), NOW).posts) == [
        "https://blog.test.example/blog/3.9.0/", "https://blog.test.example/blog/Keep_Case/",
        "https://blog.test.example/blog/two-words/"]


@pytest.mark.parametrize("key", ["url", "permalink"])
def test_explicit_url_wins(site, key):
    site.post("p.md", f"title: P\ndate: 2024-01-01\n{key}: /elsewhere/p.html")
    assert only(load_posts(site.config(), NOW)).url == "https://blog.test.example/elsewhere/p.html"


def test_index_and_a_file_named_as_its_folder_are_the_folders_post(site):
    site.post("2024-03-01-bundle/index.md", "title: Bundle")
    site.post("foo/foo.md", "title: Foo\ndate: 2024-01-01")
    result = load_posts(site.config(), NOW)
    assert sorted(p.url for p in result.posts) == ["https://blog.test.example/blog/bundle/",
                                                   "https://blog.test.example/blog/foo/"]
    assert {p.title: p.published.date().isoformat() for p in result.posts}["Bundle"] == "2024-03-01"


def test_every_placeholder(site):
    site.write_config(content={"permalink": "/{section}/{categories}/{year}/{month}/{day}/{title}--{stem}--{slug}/"})
    site.post("notes/2024-03-05-Some.File.md", "title: Hello, World!\ncategories: [Big News, Misc]\nslug: s")
    assert only(load_posts(site.config(), NOW)).url == (
        "https://blog.test.example/notes/big-news/misc/2024/03/05/hello-world--2024-03-05-Some.File--s/")


def test_path_is_the_files_own_path_as_hugo_makes_its_default_url(site):
    """Hugo's default URL is the content path: nested folders kept, lowercased, `slug`
    replacing the last part; a bundle's index.md is its folder (a real blog: /post/startup/x/)."""
    site.write_config(content={"permalink": "/post/{path}/", "dialect": "hugo"})
    site.post("Startup/Building-Product.md", "title: Michael Seibel - building product\ndate: 2024-01-01")
    site.post("life/2023W17/index.md", "title: 2023W17 - Three suggestions\ndate: 2024-01-02")
    site.post("life/renamed.md", "title: R\ndate: 2024-01-03\nslug: Kept")
    site.post("top.md", "title: Top\ndate: 2024-01-04")
    assert sorted(p.url for p in load_posts(site.config(), NOW).posts) == [
        "https://blog.test.example/post/life/2023w17/",
        "https://blog.test.example/post/life/kept/",
        "https://blog.test.example/post/startup/building-product/",
        "https://blog.test.example/post/top/"]


def test_path_keeps_the_file_name_as_it_is_outside_hugo(site):
    site.write_config(content={"permalink": "/{path}/"})
    site.post("notes/2024-03-05-Some.File.md", "title: S")
    assert only(load_posts(site.config(), NOW)).url == "https://blog.test.example/notes/2024-03-05-Some.File/"


def test_empty_placeholders_leave_no_double_slash(site):
    site.write_config(content={"permalink": "/{section}/{categories}/{slug}/"})
    site.post("p.md", "title: P\ndate: 2024-01-01")
    assert only(load_posts(site.config(), NOW)).url == "https://blog.test.example/p/"


def test_category_and_categories_are_kept_beside_tags(site):
    site.post("a.md", "title: A\ndate: 2024-01-01\ncategory: Travel\ntags: [x]")
    site.post("b.md", "title: B\ndate: 2024-01-02\ncategories: [Travel, Food]")
    result = load_posts(site.config(), NOW)
    assert {p.title: (p.tags, p.categories) for p in result.posts} == {
        "A": (("x",), ("Travel",)), "B": ((), ("Travel", "Food"))}


def test_content_exclude_and_listing_pages_of_any_language(site):
    site.write_config(content={"exclude": ["drafts", "*.private.md", "notes/old-*"]})
    site.post("keep.md", "title: Keep\ndate: 2024-01-01")
    site.post("drafts/a.md", "title: Draft A\ndate: 2024-01-01")
    site.post("secret.private.md", "title: Private\ndate: 2024-01-01")
    site.post("notes/old-1.md", "title: Old\ndate: 2024-01-01")
    site.post("_index.md", "title: Section")
    site.post("posts/_index.ja.md", "title: 投稿")
    result = load_posts(site.config(), NOW)
    assert [p.title for p in result.posts] == ["Keep"] and result.problems == []


def test_a_bad_language_is_named(site):
    site.post("p.md", "title: P\ndate: 2024-01-01\nlang: '../../etc'")
    assert load_posts(site.config(), NOW).problems == [
        "content/p.md: skipped: 'lang' is not a language tag such as fr or pt-BR: '../../etc'"]


# --- languages ---------------------------------------------------------------------------------

def test_translations_have_their_own_urls_and_feeds(site):
    from publisher.pipeline import build

    site.post("hello.md", "title: Hello\ndate: 2024-01-01\ntags: [greetings]")
    site.post("hello.fr.md", "title: Bonjour\ndate: 2024-01-02\ntags: [greetings]")
    site.post("bundle/index.md", "title: Bundle\ndate: 2024-01-03")
    site.post("bundle/index.de.md", "title: Bündel\ndate: 2024-01-04")
    site.post("solo.md", "title: Solo en français\ndate: 2024-01-05\nlang: fr")
    config = site.config()
    result = load_posts(config, NOW)
    assert result.problems == []
    assert {p.title: (p.url, p.lang) for p in result.posts} == {
        "Hello": ("https://blog.test.example/blog/hello/", "en"),
        "Bonjour": ("https://blog.test.example/fr/blog/hello/", "fr"),
        "Bundle": ("https://blog.test.example/blog/bundle/", "en"),
        "Bündel": ("https://blog.test.example/de/blog/bundle/", "de"),
        "Solo en français": ("https://blog.test.example/fr/blog/solo/", "fr"),
    }
    keys = {p.title: p.translation_key for p in result.posts}
    assert keys["Hello"] == keys["Bonjour"] and keys["Bundle"] == keys["Bündel"]
    build(config, NOW)
    out = site.root / "public"

    def titles(rel):
        return [i.findtext("title") for i in etree.parse(str(out / rel)).getroot().iter("item")]

    assert titles("rss.xml") == ["Bundle", "Hello"]
    assert titles("tags/greetings/rss.xml") == ["Hello"]
    assert titles("fr/rss.xml") == ["Solo en français", "Bonjour"]
    assert titles("de/rss.xml") == ["Bündel"]
    assert etree.parse(str(out / "fr/rss.xml")).getroot().findtext("channel/language") == "fr"


def test_a_permalink_with_lang_places_the_language_itself(site):
    site.write_config(content={"permalink": "/{lang}/posts/{slug}/"})
    site.post("hello.md", "title: Hello\ndate: 2024-01-01")
    site.post("hello.fr.md", "title: Bonjour\ndate: 2024-01-02")
    assert sorted(p.url for p in load_posts(site.config(), NOW).posts) == [
        "https://blog.test.example/fr/posts/hello/", "https://blog.test.example/posts/hello/"]


def test_categories_get_feeds(site):
    from publisher.pipeline import build

    site.post("a.md", "title: A\ndate: 2024-01-01\ncategories: [Big News]")
    build(site.config(), NOW)
    feed = site.root / "public" / "categories" / "big-news" / "rss.xml"
    items = list(etree.parse(str(feed)).getroot().iter("item"))
    assert [(i.findtext("title"), i.findtext("category")) for i in items] == [("A", "Big News")]


def test_only_a_language_code_makes_a_suffix_a_language(site):
    site.post("learn.go.md", "title: Go\ndate: 2024-01-01")
    site.post("hallo.de.md", "title: Hallo\ndate: 2024-01-01")
    assert {p.title: (p.lang, p.url) for p in load_posts(site.config(), NOW).posts} == {
        "Go": ("en", "https://blog.test.example/blog/learn.go/"),  # the name as written
        "Hallo": ("de", "https://blog.test.example/de/blog/hallo/"),
    }


def test_a_translations_explicit_url(site):
    site.post("a.fr.md", "title: A\ndate: 2024-01-01\nurl: /articles/a/")
    site.post("b.fr.md", "title: B\ndate: 2024-01-01\nurl: /fr/articles/b/")
    assert sorted(p.url for p in load_posts(site.config(), NOW).posts) == [
        "https://blog.test.example/fr/articles/a/", "https://blog.test.example/fr/articles/b/"]
    site.write_config(content={"dialect": "hugo"})  # Hugo: the front matter's url is the whole path
    assert sorted(p.url for p in load_posts(site.config(), NOW).posts) == [
        "https://blog.test.example/articles/a/", "https://blog.test.example/fr/articles/b/"]


def test_an_eleventy_permalink_template_it_cannot_evaluate_is_named(site):
    site.write_config(content={"dialect": "eleventy", "permalink": "/blog/{stem}/"})
    site.post("a.md", "title: A\ndate: 2024-01-01\npermalink: \"/{{ page.date | date: '%Y' }}/a/\"")
    site.post("b.md", "title: B c\ndate: 2024-01-01\npermalink: \"/x/{{ title | slugify }}/\"")
    result = load_posts(site.config(), NOW)
    assert [p.url for p in result.posts] == ["https://blog.test.example/x/b-c/"]
    assert result.problems == [
        "content/a.md: skipped: 'permalink' is a template publisher cannot evaluate: "
        "\"/{{ page.date | date: '%Y' }}/a/\" (it understands {{ page.fileSlug }} and {{ title | slugify }})"]


def test_the_next_digest_holds_no_translation(site):
    from publisher.newsletter.owed import next_digest_posts
    from publisher.state import State

    site.post("a.md", "title: A\ndate: 2024-01-01")
    site.post("a.fr.md", "title: A en français\ndate: 2024-01-02")
    state = State(site.config().database_url)
    try:
        posts, _loaded = next_digest_posts(site.config(), state, NOW)
    finally:
        state.close()
    assert [p.title for p in posts] == ["A"]


# --- Zola ------------------------------------------------------------------------------------

def _toml_post(site, rel: str, front: str, body: str = "Hello.\n") -> None:
    site.post(rel, {}, raw=("+++\n" + front.strip() + "\n+++\n" + body).encode())


def test_zola_path_is_the_url_and_its_date_rules(site):
    """Zola's `path` is the page's URL (a '/' added, relative to base_url); the date is `date`
    else a YYYY-mm-dd prefix followed by '-' or '_', which leaves the slug; a page with
    no date at all is Zola's to publish but has no place in a feed: skipped, named."""
    site.write_config(content={"dialect": "zola", "permalink": "/blog/{slug}/"})
    _toml_post(site, "1.94.1-release.md", 'title = "Rust 1.94.1"\ndate = 2025-03-26\n'
               'path = "2026/03/26/1.94.1-release"')
    _toml_post(site, "inside/team.md", 'title = "Team"\ndate = 2025-01-02T10:00:00Z\n'
               'path = "/inside-rust/2025/01/02/team/"')
    _toml_post(site, "2024-05-06_underscored.md", 'title = "Underscored"')
    _toml_post(site, "2024-05-07-dashed.md", 'title = "Dashed"\nupdated = 2024-06-01')
    # No date for Zola, but a path filed by date: the site's own feed dates it by that path.
    _toml_post(site, "filed.md", 'title = "Filed"\npath = "inside-rust/2020/01/01/filed"')
    _toml_post(site, "undated.md", 'title = "Undated"\npath = "notes/undated"')
    result = load_posts(site.config(), NOW)
    assert result.problems == [
        "content/undated.md: skipped: Zola publishes a page without a date, but a feed item needs "
        "one: give it `date` (or a YYYY-MM-DD- file name prefix, or a `path` with /YYYY/MM/DD/)"]
    posts = by_url(result.posts)
    assert sorted(posts) == [
        "https://blog.test.example/2026/03/26/1.94.1-release/",  # the path, not the date
        "https://blog.test.example/blog/dashed/",
        "https://blog.test.example/blog/underscored/",
        "https://blog.test.example/inside-rust/2020/01/01/filed/",
        "https://blog.test.example/inside-rust/2025/01/02/team/",
    ]
    assert posts["https://blog.test.example/inside-rust/2020/01/01/filed/"].published == datetime(2020, 1, 1, tzinfo=UTC)
    assert posts["https://blog.test.example/blog/underscored/"].published == datetime(2024, 5, 6, tzinfo=UTC)
    assert posts["https://blog.test.example/blog/dashed/"].updated == datetime(2024, 6, 1, tzinfo=UTC)


def test_zola_path_placeholder_leaves_the_file_names_date_out(site):
    """{path} (what init writes for Zola) is the folders and then the page's slug, and Zola's
    slug leaves out the file name's date prefix: content/2018-03-15-newsletter-1.md is
    /newsletter-1/, a dated folder's index.md is the folder's name without its date; a
    `slug` replaces the last part; a name whose date is no date (2018-08-2x) keeps it all."""
    site.write_config(content={"dialect": "zola", "permalink": "/{path}/"})
    _toml_post(site, "2018-03-15-newsletter-1.md", 'title = "Newsletter 1"')
    _toml_post(site, "2019-03-20-newsletter-17.md", 'title = "Newsletter 17"\ndate = 2019-03-22')
    _toml_post(site, "news/2024-01-02_launch/index.md", 'title = "Launch"')
    _toml_post(site, "news/2024-02-03-named.md", 'title = "Named"\nslug = "own-name"')
    _toml_post(site, "this-month/2020-08/index.md", 'title = "August"\ndate = 2020-09-09')
    _toml_post(site, "2018-08-2x-psa.md", 'title = "PSA"\ndate = 2018-08-25')
    result = load_posts(site.config(), NOW)
    assert result.problems == []
    posts = by_url(result.posts)
    assert sorted(posts) == [
        "https://blog.test.example/2018-08-2x-psa/",
        "https://blog.test.example/news/launch/",
        "https://blog.test.example/news/own-name/",
        "https://blog.test.example/newsletter-1/",
        "https://blog.test.example/newsletter-17/",
        "https://blog.test.example/this-month/2020-08/",
    ]
    assert posts["https://blog.test.example/newsletter-17/"].published == datetime(2019, 3, 22, tzinfo=UTC)
    assert posts["https://blog.test.example/news/launch/"].published == datetime(2024, 1, 2, tzinfo=UTC)


def test_starlight_blog_dates_a_post_by_date_alone(site):
    """starlight-blog's schema has `date`; a `pubDate` left from an Astro blog (rainsberger.ca's
    posts carry both) is not the post's date."""
    site.write_config(content={"dialect": "starlight", "permalink": "/blog/{slug}/"})
    site.post("moved.md", "title: Moved\ndate: 2022-01-07\npubDate: '2021-05-05'")
    result = load_posts(site.config(), NOW)
    assert [(p.url, p.published) for p in result.posts] == [
        ("https://blog.test.example/blog/moved/", datetime(2022, 1, 7, tzinfo=UTC))]


# --- Docusaurus ----------------------------------------------------------------------------

def test_docusaurus_urls_are_made_from_the_file_name(site):
    """Docusaurus (plugin-content-blog's parseBlogFileName): the date folders of a post's URL
    are the file name's date, whatever `date` says (that is only the post's date); the rest
    is the file's name as written ('+' and '.' stay); a file name with no date has no date
    folders; the front matter's `slug` replaces all of it, under the blog's route."""
    site.write_config(content={"dialect": "docusaurus", "permalink": "/blog/{year}/{month}/{day}/{slug}"})
    site.post("2021-02-22-7.13.0.md", "title: Seven thirteen\ndate: 2021-01-01 0:00:00")
    site.post("2018-06-26-es2015+-packages.md", "title: Packages\ndate: 2018-06-26 12:00:00")
    site.post("2017-08-16-gsoc.md", "title: Lessons\nslug: contributing-lessons\ndate: 2017-08-16 14:00:00")
    site.post("2019-05-05-folder/index.md", "title: Folder")
    site.post("undated-name.md", "title: Undated name\ndate: 2020-03-04")
    site.post("2016-08-26-babili.md", "title: Babili\ndate: 2016-08-30 10:50:00")
    result = load_posts(site.config(), NOW)
    assert result.problems == []
    posts = by_url(result.posts)
    assert sorted(posts) == [
        "https://blog.test.example/blog/2016/08/26/babili",
        "https://blog.test.example/blog/2018/06/26/es2015+-packages",
        "https://blog.test.example/blog/2019/05/05/folder",
        "https://blog.test.example/blog/2021/02/22/7.13.0",
        "https://blog.test.example/blog/contributing-lessons",
        "https://blog.test.example/blog/undated-name",
    ]
    assert posts["https://blog.test.example/blog/2021/02/22/7.13.0"].published == datetime(2021, 1, 1, tzinfo=UTC)
    assert posts["https://blog.test.example/blog/2016/08/26/babili"].published == datetime(2016, 8, 30, 10, 50, tzinfo=UTC)
    assert posts["https://blog.test.example/blog/2019/05/05/folder"].published == datetime(2019, 5, 5, tzinfo=UTC)


@pytest.mark.parametrize("dialect", ["docusaurus", "astro", "eleventy"])
def test_js_yaml_engines_roll_an_impossible_date_over(site, dialect):
    """Docusaurus, Astro and Eleventy read front matter with js-yaml, whose timestamps are
    JavaScript's Date.UTC: `2017-02-29 11:00:00` is 2017-03-01 11:00, published so; an engine
    reading YAML otherwise (Hugo) has no such date: the post is skipped, named."""
    site.write_config(content={"dialect": dialect, "permalink": "/blog/{slug}/"})
    site.post("2017-03-01-upgrade.md", "title: Upgrade\ndate: 2017-02-29 11:00:00")
    site.post("leap.md", "title: Leap\ndate: 2023-02-29")
    result = load_posts(site.config(), NOW)
    assert result.problems == []
    published = {p.title: p.published for p in result.posts}
    assert published == {"Upgrade": datetime(2017, 3, 1, 11, 0, tzinfo=UTC), "Leap": datetime(2023, 3, 1, tzinfo=UTC)}
    site.write_config(content={"dialect": "hugo", "permalink": "/blog/{slug}/"})
    assert load_posts(site.config(), NOW).problems == [
        "content/2017-03-01-upgrade.md: skipped: front matter is not valid YAML: day is out of range for month",
        "content/leap.md: skipped: front matter is not valid YAML: day is out of range for month"]


# --- Eleventy --------------------------------------------------------------------------------

def test_eleventy_dated_index_file_is_its_folders_post_at_the_folder_url(site):
    """page.fileSlug of `x/2024-09-08-index.md` is `x` (the date prefix goes first, then an
    `index` slug is the folder's name); a permalink ending in index.html is page.url's folder."""
    site.write_config(content={"dialect": "eleventy", "permalink": "/blog/{slug}/"})
    (site.content / "posts").mkdir()
    (site.content / "posts" / "posts.json").write_text(
        '{"permalink": "blog/{{ page.fileSlug }}/index.html"}', encoding="utf-8")
    site.post("posts/buildless/2024-09-08-index.md", "title: Buildless")
    site.post("posts/bottle-slider/2017-03-08-index.md", "title: Bottle")
    site.post("posts/2019-01-02-plain/index.md", "title: Plain")
    result = load_posts(site.config(), NOW)
    assert result.problems == []
    posts = by_url(result.posts)
    assert sorted(posts) == ["https://blog.test.example/blog/bottle-slider/",
                             "https://blog.test.example/blog/buildless/",
                             "https://blog.test.example/blog/plain/"]
    assert posts["https://blog.test.example/blog/buildless/"].published == datetime(2024, 9, 8, tzinfo=UTC)


# --- Astro themes' date keys -----------------------------------------------------------------

@pytest.mark.parametrize("dialect", ["astro", "auto"])
def test_astropaper_pubdatetime_and_moddatetime(site, dialect):
    """AstroPaper names its dates pubDatetime and modDatetime (null when never modified); the
    blog starter's pubDate and updatedDate come first."""
    site.write_config(content={"dialect": dialect, "permalink": "/posts/{slug}/"})
    site.post("20240307-soci/index.md", "title: SOCI\npubDatetime: 2024-03-07T22:00:00Z\n"
              "modDatetime: 2024-04-01T08:00:00Z\nslug: build-soci-index")
    site.post("never-modified.md", "title: Never\npubDatetime: 2024-03-08T10:00:00+09:00\nmodDatetime: null")
    site.post("starter.md", "title: Starter\npubDate: 'Jul 08 2022'\npubDatetime: 2020-01-01\n"
              "updatedDate: 'Jul 09 2022'")
    result = load_posts(site.config(), NOW)
    assert result.problems == []
    posts = {p.title: p for p in result.posts}
    assert posts["SOCI"].url == "https://blog.test.example/posts/build-soci-index/"
    assert posts["SOCI"].published == datetime(2024, 3, 7, 22, tzinfo=UTC)
    assert posts["SOCI"].updated == datetime(2024, 4, 1, 8, tzinfo=UTC)
    assert posts["Never"].published == datetime(2024, 3, 8, 1, tzinfo=UTC) and posts["Never"].updated is None
    assert posts["Starter"].published == datetime(2022, 7, 8, tzinfo=UTC)
    assert posts["Starter"].updated == datetime(2022, 7, 9, tzinfo=UTC)


# --- Jekyll titles ---------------------------------------------------------------------------

@pytest.mark.parametrize("site_config, smart", [(None, False), ("title: x\n", False),
                                                ("plugins:\n  - jekyll-feed\n", True),
                                                ("gems: [jekyll-feed]\n", True)])
def test_jekyll_title_is_smartified_only_where_jekyll_feed_writes_the_feed(site, site_config, smart):
    """jekyll-feed writes `post.title | smartify`; a site with its own feed template (no
    jekyll-feed in _config.yml) shows the title as written."""
    site.write_config(content={"dialect": "jekyll", "dir": "_posts", "permalink": "/{slug}/"})
    if site_config is not None:
        (site.root / "_config.yml").write_text(site_config, encoding="utf-8")
    path = site.root / "_posts" / "2020-04-02-kmon.md"
    path.parent.mkdir()
    path.write_text("---\ntitle: \"Let's see: \\\"kmon\\\"... -- it's out\"\n---\nBody.\n", encoding="utf-8")
    post = only(load_posts(site.config(), NOW))
    assert post.title == ("Let’s see: “kmon”… – it’s out" if smart else "Let's see: \"kmon\"... -- it's out")


# --- Hexo ------------------------------------------------------------------------------------

def test_hexo_posts_dates_slugs_and_placeholders(site):
    """source/_posts, read as Hexo 8 reads them (tests/test_engines_oracle.py checks against
    real Hexo): the path is parsed with _config.yml's new_post_name, whose :title is the slug
    (a front matter `slug` is overwritten) and whose date dates a post without `date`; a path
    it does not match is slugized whole; {stem} is :name, {title} :post_title (lowercased),
    {categories} :category; _drafts are never published; an undated post is skipped."""
    site.write_config(content={"dialect": "hexo", "dir": "source",
                               "permalink": "/news/{year}/{month}/{day}/{slug}/"})
    (site.root / "_config.yml").write_text("new_post_name: :year-:month-:day-:title.md\n", encoding="utf-8")
    site.post("../source/_posts/2014-07-13-hexo-2-8-released.md",
              "title: Hexo 2.8 released\nupdated: 2014-07-20")
    site.post("../source/_posts/guides/setup.md", "title: Setup\ndate: 2020-02-03 10:00:00")
    site.post("../source/_posts/own.md", "title: Own\ndate: 2021-01-01\nslug: my-own")
    site.post("../source/_posts/fixed.md", "title: Fixed\ndate: 2021-01-02\npermalink: /elsewhere/fixed/")
    site.post("../source/_posts/undated.md", "title: Undated")
    site.post("../source/_drafts/wip.md", "title: WIP\ndate: 2021-01-03")
    result = load_posts(site.config(), NOW)
    assert result.problems == ["source/_posts/undated.md: skipped: front matter has no 'date' and the file "
                               "name none by new_post_name (Hexo would date it by the file's creation time, "
                               "which a feed cannot keep)"]
    assert [p.title for p in result.held_back] == ["WIP"]
    posts = by_url(result.posts)
    assert sorted(posts) == ["https://blog.test.example/elsewhere/fixed/",
                             "https://blog.test.example/news/2014/07/13/hexo-2-8-released/",
                             "https://blog.test.example/news/2020/02/03/guides-setup/",
                             "https://blog.test.example/news/2021/01/01/own/"]
    released = posts["https://blog.test.example/news/2014/07/13/hexo-2-8-released/"]
    assert released.published == datetime(2014, 7, 13, tzinfo=UTC)
    assert released.updated == datetime(2014, 7, 20, tzinfo=UTC)
    site.write_config(content={"dialect": "hexo", "dir": "source/_posts",
                               "permalink": "/{categories}/{stem}/{title}/"})
    site.post("../source/_posts/2014-07-13-hexo-2-8-released.md",
              "title: \"Héxo 2.8: Released!\"\ncategories: [News, Big Ones]")
    urls = sorted(p.url for p in load_posts(site.config(), NOW).posts)
    assert "https://blog.test.example/News/Big-Ones/hexo-2-8-released/hexo-2-8-released/" in urls
    assert "https://blog.test.example/uncategorized/own/own/" in urls


def test_every_dialect_config_accepts_has_its_engine_rules_and_no_other_module_names_an_engine():
    """content.dialect's values are the engines' modules (engines/*.py, RULES.name), and the
    modules outside engines/ ask an engine's Syntax flags, never its name (a string such as
    "hugo" compared or looked up in content/, feeds/, newsletter/ ...)."""
    import re
    from pathlib import Path

    import publisher
    from publisher import engines
    from publisher.config import DIALECTS

    assert sorted(DIALECTS) == sorted(["auto", *(m.RULES.name for m in engines.ENGINES)])
    assert all(engines.rules_for(m.NAME) is m.RULES for m in engines.ENGINES)
    names = "|".join(m.NAME for m in engines.ENGINES)
    root = Path(publisher.__file__).parent
    found = []
    for path in sorted(root.rglob("*.py")):
        if path.parent.name == "engines" or path.name == "config.py":  # (DIALECTS, checked above)
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#", 1)[0]
            if re.search(rf"""(==|!=|\bin\b)\s*\(?\s*["']({names})["']|["']({names})["']\s*(==|!=|in\b)""", code):
                found.append(f"{path.relative_to(root)}:{number}: {line.strip()}")
    assert found == []


def test_zola_slugifies_paths_as_its_config_says(site):
    """Zola's [slugify] paths is "on" by default (components/utils/src/slugs.rs: the `slug`
    crate): a file name or front matter `slug` is lowercased ASCII with '-' for every other
    run (`1.94.1-release.md` is /1-94-1-release/, `Hello_World.md` /hello-world/); "off"
    keeps it as written (one a URL segment cannot carry, with spaces, is slugified all the
    same, as everywhere in publisher); paths_keep_dates keeps the name's date prefix
    (slugified with it)."""
    site.write_config(content={"dialect": "zola", "permalink": "/{path}/"})
    _toml_post(site, "1.94.1-release.md", 'title = "Rust 1.94.1"\ndate = 2025-03-26')
    _toml_post(site, "blog/Hello_World.md", 'title = "Hello"\ndate = 2025-03-27')
    _toml_post(site, "blog/2024-05-06_Dated.Post.md", 'title = "Dated"')
    _toml_post(site, "blog/named.md", 'title = "Named"\ndate = 2025-03-28\nslug = "Own.Name"')
    urls = lambda: sorted(p.url.removeprefix("https://blog.test.example") for p in load_posts(site.config(), NOW).posts)
    assert urls() == ["/1-94-1-release/", "/blog/dated-post/", "/blog/hello-world/", "/blog/own-name/"]
    (site.root / "config.toml").write_text('base_url = "https://blog.test.example"\n[slugify]\npaths = "off"\n')
    assert urls() == ["/1.94.1-release/", "/blog/Dated.Post/", "/blog/Hello_World/", "/blog/Own.Name/"]
    (site.root / "config.toml").write_text('base_url = "https://blog.test.example"\n[slugify]\npaths_keep_dates = true\n')
    assert urls() == ["/1-94-1-release/", "/blog/2024-05-06-dated-post/", "/blog/hello-world/", "/blog/own-name/"]
