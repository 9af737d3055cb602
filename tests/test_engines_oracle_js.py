"""The JavaScript engines are the authority: the real Eleventy 3, Astro 5 and Docusaurus 3 (from
npm: .ci/run installs each under .ci/engines/<engine> and names the folder in
PUBLISHER_TEST_ELEVENTY, _ASTRO, _DOCUSAURUS) build a fixture blog of tests/fixtures/oracle/,
publisher reads the same blog, and every post must come out the same: URL, title, date to the
minute (in UTC: these engines keep an instant), tags, and which files are posts at all (drafts,
excluded, unlisted ones are not).

Each engine prints its own posts, from its own data, never re-derived here: Eleventy through a
`posts.json.njk` template of the fixture (collections.posts), Astro through an endpoint
`posts.json.ts` (getCollection, filtered by the fixture's own route rules), Docusaurus through
the blog plugin's JSON feed. Skipped when an engine's folder is unset or not installed, except
under CI=true, where a missing engine fails."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from urllib.parse import unquote

import pytest
from sites import FIXTURES, PG_BASE, make_config
from test_engines_oracle import differences

from publisher.content import load_posts

# The engines' builds compare posts and touch no database (their sites' state is a SQLite
# file): run once, in the SQLite pass, not again in CI's PostgreSQL pass.
pytestmark = pytest.mark.skipif(bool(PG_BASE), reason="no database involved: run in the SQLite pass")

ORACLE = FIXTURES / "oracle"
NOW = datetime.now(timezone.utc)


def engine_home(engine: str, binary: str) -> Path:
    """The folder npm installed `engine` into (its node_modules/.bin/`binary` runs it)."""
    variable = f"PUBLISHER_TEST_{engine.upper()}"
    home = os.environ.get(variable)
    if home and (Path(home) / "node_modules" / ".bin" / binary).exists():
        return Path(home)
    why = (f"{variable} is unset" if not home else f"{variable}={home} holds no node_modules/.bin/{binary}")
    if os.environ.get("CI") == "true":
        pytest.fail(f"{engine}: {why} (CI installs it: .ci/run)")
    pytest.skip(f"{engine}: {why} (.ci/run installs it under .ci/engines/{engine})")


def run_engine(engine: str, binary: str, root: Path, *args: str, timeout: int = 600) -> None:
    """Run the engine's command in `root`, a copy of a fixture site, its node_modules linked in."""
    home = engine_home(engine, binary)
    (root / "node_modules").symlink_to(home / "node_modules")
    env = {**os.environ, "TZ": "UTC", "NO_COLOR": "1", "ASTRO_TELEMETRY_DISABLED": "1",
           "DOCUSAURUS_NO_UPDATE_NOTIFIER": "1",
           # webpack's persistent cache sits in the shared node_modules: a later build of another
           # copy of the site took a former build's modules for its own (pages without metadata)
           "DOCUSAURUS_NO_PERSISTENT_CACHE": "1"}
    proc = subprocess.run([str(home / "node_modules" / ".bin" / binary), *args], cwd=root, capture_output=True,
                          text=True, timeout=timeout, env=env)
    assert proc.returncode == 0, f"{engine} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"


def minute(stamp: str | datetime) -> str:
    """An instant to the minute, in UTC."""
    when = datetime.fromisoformat(stamp.replace("Z", "+00:00")) if isinstance(stamp, str) else stamp
    return when.astimezone(timezone.utc).isoformat(timespec="minutes")


def publisher_posts(root: Path, content_dir: str, dialect: str, permalink: str, zone: str = "UTC",
                    base: str = "https://oracle.example.org") -> tuple[dict, list[str]]:
    """{source: (URL path, title, published to the minute in UTC, sorted tags)} of the posts
    publisher publishes (not held back), and its problem lines."""
    config = make_config(root, site={"url": base, "language": "en"},
                         content={"dir": content_dir, "dialect": dialect, "permalink": permalink},
                         newsletter={"timezone": zone}, state={"database": "state.db"})
    result = load_posts(config, NOW)
    return ({p.source: (unquote(p.url.removeprefix(base)), p.title, minute(p.published), tuple(sorted(p.tags)))
             for p in result.posts}, result.problems)


def agreeing(theirs: dict, ours: dict) -> str:
    return f"{sum(1 for s in theirs if ours.get(s) == theirs[s])}/{len(set(theirs) | set(ours))}"


# --- Eleventy 3 ---------------------------------------------------------------------------------
# The fixture is eleventy-base-blog's layout: posts/ with a directory data file tagging them
# `posts`, the starter's drafts preprocessor; posts.json.njk prints collections.posts.

ELEVENTY_CONTENT = {"content_dir": "posts", "dialect": "eleventy", "permalink": "/posts/{path}/"}


def eleventy_build(site: Path, root: Path) -> dict[str, tuple]:
    """Build `site` (copied to `root`) with Eleventy: {source: (URL, title, date, tags)}."""
    shutil.copytree(site, root)
    (root / "package.json").write_text('{"name": "oracle", "private": true, "type": "module"}', encoding="utf-8")
    run_engine("eleventy", "eleventy", root, "--quiet")
    found = {}
    for post in json.loads((root / "_site" / "posts.json").read_text(encoding="utf-8")):
        if post["url"] is False:  # permalink: false, no page written (in the collection all the same)
            continue
        found[post["source"].removeprefix("./")] = (post["url"], post["title"], minute(post["date"]),
                                                    tuple(sorted(post["tags"] or ())))
    return found


@pytest.fixture(scope="module")
def eleventy_site(tmp_path_factory):
    root = tmp_path_factory.mktemp("oracle") / "eleventy"
    return root, eleventy_build(ORACLE / "eleventy", root)


@pytest.mark.parametrize("zone", ["UTC", "America/New_York"])
def test_every_eleventy_post_is_eleventys(eleventy_site, zone):
    """Whatever newsletter.timezone is: Eleventy reads a date without offset (a YAML time, a
    quoted ISO string, a file name's) in UTC."""
    root, theirs = eleventy_site
    ours, problems = publisher_posts(root, zone=zone, **ELEVENTY_CONTENT)
    assert problems == []
    assert len(theirs) >= 18
    assert differences(theirs, ours) == [], agreeing(theirs, ours)


# --- Astro 5 ------------------------------------------------------------------------------------
# The blog starter's layout: a glob-loader collection in src/content/blog published by
# src/pages/blog/[...slug].astro, drafts filtered by the route; a second collection, news, under
# a dated route (src/pages/news/[year]/[month]/[day]/[slug].astro, the date's parts in the
# build's local zone, as `getFullYear()` gives them). posts.json.ts prints what the routes built.

ASTRO_COLLECTIONS = [("src/content/blog", "/blog/{slug}/"), ("src/content/news", "/news/{year}/{month}/{day}/{slug}/")]
# The build's TZ, and publisher's newsletter.timezone set to the same zone.
ASTRO_ZONES = ["UTC", "America/New_York"]


def astro_build(site: Path, root: Path, zone: str = "UTC") -> subprocess.Popen:
    """Start building `site` (copied to `root`) with Astro in the zone `zone`."""
    home = engine_home("astro", "astro")
    shutil.copytree(site, root)
    (root / "package.json").write_text('{"name": "oracle", "private": true, "type": "module"}', encoding="utf-8")
    (root / "node_modules").symlink_to(home / "node_modules")
    return subprocess.Popen([str(home / "node_modules" / ".bin" / "astro"), "build", "--silent"], cwd=root,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "TZ": zone, "NO_COLOR": "1", "ASTRO_TELEMETRY_DISABLED": "1"})


def astro_posts(root: Path, proc: subprocess.Popen) -> dict[str, tuple]:
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, f"astro failed:\n{out[-3000:]}\n{err[-3000:]}"
    found = {}
    for post in json.loads((root / "dist" / "posts.json").read_text(encoding="utf-8")):
        # the route wrote the page (the listing is the routes' data, the page their output)
        assert (root / "dist" / post["url"].strip("/") / "index.html").is_file(), post["url"]
        found[post["source"]] = (post["url"], post["title"], minute(post["date"]), tuple(sorted(post["tags"])))
    return found


def astro_publisher(root: Path, dialect: str, zone: str) -> tuple[dict, list[str]]:
    ours, problems = {}, []
    for content_dir, permalink in ASTRO_COLLECTIONS:
        found, trouble = publisher_posts(root, content_dir, dialect, permalink, zone=zone)
        ours.update(found)
        problems += trouble
    return ours, problems


@pytest.fixture(scope="module")
def astro_sites(tmp_path_factory):
    """The fixture built once per zone, the builds side by side: [(zone, root, posts)]."""
    base = tmp_path_factory.mktemp("oracle")
    started = [(zone, base / f"astro-{i}", astro_build(ORACLE / "astro", base / f"astro-{i}", zone))
               for i, zone in enumerate(ASTRO_ZONES)]
    return [(zone, root, astro_posts(root, proc)) for zone, root, proc in started]


@pytest.mark.parametrize("variant", range(len(ASTRO_ZONES)))
def test_every_astro_post_is_astros(astro_sites, variant):
    """Ids of the glob loader (folder index, nested folders, uppercase, spaces, dots, `slug`),
    pubDate in every form z.coerce.date() reads, drafts the route filters, dated routes."""
    zone, root, theirs = astro_sites[variant]
    ours, problems = astro_publisher(root, "astro", zone)
    # Astro logs ENOENT for it and publishes nothing: publisher says why
    assert problems == ["src/content/blog/issue #12 recap.md: skipped: Astro cannot load a file whose path "
                        "holds '#' or '?' (its glob loader logs ENOENT and publishes nothing): rename it"]
    assert len(theirs) >= 20
    assert differences(theirs, ours) == [], agreeing(theirs, ours)


# --- Docusaurus 3 -------------------------------------------------------------------------------
# A minimal site: the blog plugin and the classic theme. Which posts are published, with what
# title, date and tags: the blog's JSON feed (unlisted posts and drafts are not in it); which
# file each is: the plugin's own metadata in .docusaurus/ (its `source` and `permalink`). The
# build costs about a minute on 2 cores (webpack): one build per test session.

DOCUSAURUS_CONTENT = {"content_dir": "blog", "dialect": "docusaurus", "permalink": "/blog/{year}/{month}/{day}/{slug}"}


def docusaurus_posts(root: Path) -> dict[str, tuple]:
    sources = {}
    for meta in (root / ".docusaurus" / "docusaurus-plugin-content-blog" / "default").glob("site-blog-*.json"):
        data = json.loads(meta.read_text(encoding="utf-8"))
        sources[data["permalink"]] = data["source"].removeprefix("@site/")
    found = {}
    for item in json.loads((root / "build" / "blog" / "feed.json").read_text(encoding="utf-8"))["items"]:
        url = item["url"].removeprefix("https://oracle.example.org")
        found[sources[url]] = (url, item["title"], minute(item["date_modified"]), tuple(sorted(item.get("tags", ()))))
    return found


@pytest.fixture(scope="session")
def docusaurus_site(tmp_path_factory):
    """The fixture blog, with the generated posts (below) in blog/generated/: one build."""
    root = tmp_path_factory.mktemp("oracle") / "docusaurus"
    shutil.copytree(ORACLE / "docusaurus", root)
    (root / "package.json").write_text('{"name": "oracle", "private": true}', encoding="utf-8")
    for _zone, (rel, text) in generated_posts(_docusaurus_post):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    run_engine("docusaurus", "docusaurus", root, "build", "--no-minify")
    return root, docusaurus_posts(root)


def _fixture_only(posts: dict) -> dict:
    return {s: post for s, post in posts.items() if not s.startswith("blog/generated/")}


def test_every_docusaurus_post_is_docusaurus(docusaurus_site):
    """File names `YYYY-MM-DD-slug.md` and `YYYY/MM/DD/slug` folders (the URL's date is the
    file's, whatever `date:` says), `slug:`, titles from the first heading, drafts and
    unlisted posts, nested folders, one-digit dates, dates read as UTC."""
    root, theirs = docusaurus_site
    theirs = _fixture_only(theirs)
    ours, problems = publisher_posts(root, **DOCUSAURUS_CONTENT)
    ours = _fixture_only(ours)
    assert problems == []
    assert len(theirs) >= 20
    assert differences(theirs, ours) == [], agreeing(theirs, ours)


def test_docusaurus_bodies_resolve_its_syntax_and_summaries_are_its_excerpts(docusaurus_site):
    """The truncate marker, admonitions and heading ids never reach a feed as text; a summary is
    the plugin's own description (its excerpt: the text above `<!-- truncate -->`, an
    admonition's text, never its `Note` title)."""
    from publisher.content.markup import render_html

    root, _theirs = docusaurus_site
    config = make_config(root, site={"url": "https://oracle.example.org", "language": "en"},
                         content={"dir": "blog", "dialect": "docusaurus",
                                  "permalink": DOCUSAURUS_CONTENT["permalink"]},
                         newsletter={"timezone": "UTC"}, state={"database": "state.db"})
    posts = {p.source: p for p in load_posts(config, NOW).posts}
    descriptions = {}
    for meta in (root / ".docusaurus" / "docusaurus-plugin-content-blog" / "default").glob("site-blog-*.json"):
        data = json.loads(meta.read_text(encoding="utf-8"))
        descriptions[data["source"].removeprefix("@site/")] = data["description"]
    for source in ("blog/2024-03-08-truncated.md", "blog/2024-03-10-admonition.md"):
        assert posts[source].summary == descriptions[source]
    for post in posts.values():
        body = re.sub(r"<!--.*?-->", "", render_html(post, config), flags=re.S)  # a comment shows nothing
        assert ":::" not in body and "{#" not in body and "truncate" not in body, post.source
    admonitions = render_html(posts["blog/2024-03-10-admonition.md"], config)
    assert 'class="admonition-title"><strong>Note</strong>' in admonitions
    assert 'class="admonition-title"><strong>A title</strong>' in admonitions
    assert 'id="custom-id"' in render_html(posts["blog/2024-03-19-heading-id.md"], config)


# --- generated Eleventy sites ---------------------------------------------------------------------
# Hypothesis makes EXAMPLES posts (tests/test_engines_oracle.py's generator: derandomized, so CI
# meets the same posts every run; PUBLISHER_ORACLE_SEED explores others, PUBLISHER_ORACLE_EXAMPLES
# makes more), written into one Eleventy site, built once, read by publisher in the zone drawn
# with the last post and in UTC.

from test_engines_oracle import EXAMPLES, NAME_WORDS, OFFSETS, TITLE_WORDS, _stamp, generated_posts  # noqa: E402


def _eleventy_date(draw, st) -> str:
    """A front matter date in a form Eleventy reads: a YAML timestamp (js-yaml) or date, or an
    ISO 8601 string (Luxon's fromISO, in UTC without an offset)."""
    y, mo, d, h, mi, s = _stamp(draw, st)
    offset = draw(st.sampled_from(OFFSETS))
    return draw(st.sampled_from([
        f"{y}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}{offset}",  # YAML timestamp, offset
        f"{y}-{mo:02d}-{d:02d} {h:02d}:{mi:02d}:{s:02d} {offset}",  # with spaces
        f"{y}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}Z",
        f"{y}-{mo}-{d} {h}:{mi:02d}:{s:02d}",  # naive, one-digit parts: UTC to js-yaml
        f"{y}-{mo:02d}-{d:02d}",  # a YAML date
        f'"{y}-{mo:02d}-{d:02d}"',  # strings: Luxon
        f'"{y}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}"',
        f'"{y}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}{offset}"',
    ]))


def _eleventy_post(draw, st, i: int) -> tuple[str, str]:
    """(path under the site, file text) of one generated Eleventy post."""
    y, mo, d, *_ = _stamp(draw, st)
    name = "-".join([f"p{i}"] + draw(st.lists(st.sampled_from(NAME_WORDS), max_size=3)))
    prefix = draw(st.sampled_from(["", f"{y}-{mo:02d}-{d:02d}-", f"{y}-{mo}-{d}-"]))
    title = " ".join([f"P{i}"] + draw(st.lists(st.sampled_from(TITLE_WORDS), min_size=1, max_size=4)))
    lines = [f"title: {json.dumps(title, ensure_ascii=False)}"]
    # one-digit file name dates are no dates to Eleventy (it would take the file's creation time)
    if prefix != f"{y}-{mo:02d}-{d:02d}-" or draw(st.booleans()):
        lines.append(f"date: {_eleventy_date(draw, st)}")
    folder = draw(st.sampled_from(["posts", "posts", "posts/sub", "posts/Deep/er"]))
    path = f"{folder}/{prefix}{name}.md"
    if draw(st.integers(0, 4)) == 0:  # a folder's own index.md
        path = f"{folder}/{prefix}{name}/index.md"
    held = draw(st.sampled_from(["draft: true", "eleventyExcludeFromCollections: true", "permalink: false"]))
    held = held if draw(st.integers(0, 6)) == 0 else ""
    if draw(st.integers(0, 3)) == 0 and not held.startswith("permalink"):
        lines.append("permalink: " + json.dumps(draw(st.sampled_from([
            "/x/{{ page.fileSlug }}/", "/t/{{ title | slugify }}/", "{{ page.filePathStem }}/",
            f"/fixed/p{i}/", f"/f/p{i}/index.html", "/x/{{ page.fileSlug }}/index.html"]))))
    if held:
        lines.append(held)
    if draw(st.integers(0, 3)) == 0:
        tags = draw(st.lists(st.sampled_from(["Travel", "web dev", "Ünï", "a_b"]), min_size=1, max_size=2, unique=True))
        lines.append(f"tags: {json.dumps(tags if len(tags) > 1 else tags[0], ensure_ascii=False)}")
    return path, "---\n" + "\n".join(lines) + "\n---\nBody.\n"


def test_generated_eleventy_posts_come_out_as_eleventy_publishes_them(tmp_path):
    """EXAMPLES generated posts (dates in every form Eleventy reads, with and without offsets,
    dated and one-digit file names, folders' index.md, permalinks with page.fileSlug, `title |
    slugify`, page.filePathStem, drafts, tags; titles and names with '_', '.', '&', emoji) in one
    Eleventy site: every post agrees with Eleventy, in UTC and in a generated zone."""
    engine_home("eleventy", "eleventy")
    found = generated_posts(_eleventy_post)
    site = tmp_path / "generated"
    shutil.copytree(ORACLE / "eleventy", site, ignore=shutil.ignore_patterns("*.md", "*.11tydata.js", "notes.json"))
    shutil.rmtree(site / "posts")
    (site / "posts").mkdir()
    shutil.copy(ORACLE / "eleventy" / "posts" / "posts.json", site / "posts")
    for _zone, (rel, text) in found:
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_text(text, encoding="utf-8")
    root = tmp_path / "built"
    theirs = eleventy_build(site, root)
    published = [text for _zone, (_rel, text) in found
                 if not any(k in text for k in ("draft: true", "eleventyExcludeFromCollections", "permalink: false"))]
    assert len(theirs) == len(published) >= min(EXAMPLES, 20) * 3 // 4
    for zone in ("UTC", found[-1][0]):
        ours, problems = publisher_posts(root, zone=zone, **ELEVENTY_CONTENT)
        assert problems == [], zone
        assert differences(theirs, ours) == [], (zone, agreeing(theirs, ours))


# --- what `publisher init` writes for each fixture -------------------------------------------------

def init_posts(root: Path) -> tuple[dict, list[str], dict]:
    """`publisher init` in the built site (reads the engine's config, never runs it), then the
    posts publisher publishes with that config alone, in UTC: (posts, problems, content section)."""
    from click.testing import CliRunner

    from publisher.cli import main
    from publisher.config import load_config

    config_file = root / "publisher-init.yaml"
    config_file.unlink(missing_ok=True)
    result = CliRunner().invoke(main, ["--config", str(config_file), "init", str(root)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    config = load_config(config_file)
    base = config.site.url
    loaded = load_posts(config, NOW)
    return ({p.source: (unquote(p.url.removeprefix(base)), p.title, minute(p.published), tuple(sorted(p.tags)))
             for p in loaded.posts}, loaded.problems, {"dir": config.content.dir, "permalink": config.content.permalink})


def test_init_configures_eleventy_as_eleventy_publishes(eleventy_site):
    root, theirs = eleventy_site
    ours, problems, content = init_posts(root)
    assert problems == [], content
    assert differences(theirs, ours) == [], (content, agreeing(theirs, ours))


def test_init_configures_astro_as_astro_publishes(astro_sites):
    """The blog collection's folder and its route (init picks the collection named like a blog)."""
    zone, root, theirs = astro_sites[0]
    ours, problems, content = init_posts(root)
    blog = {s: post for s, post in theirs.items() if s.startswith("src/content/blog/")}
    assert [p for p in problems if "#" not in p] == [], content
    assert differences(blog, ours) == [], (content, agreeing(blog, ours))


def test_init_configures_docusaurus_as_docusaurus_publishes(docusaurus_site):
    root, theirs = docusaurus_site
    ours, problems, content = init_posts(root)
    assert problems == [], content
    assert differences(theirs, ours) == [], (content, agreeing(theirs, ours))


# --- Starlight (Astro's docs theme) with starlight-blog ---------------------------------------------
# The posts are the docs under src/content/docs/blog; starlight-blog's RSS feed (blog/rss.xml)
# lists the published ones (drafts left out in a production build). The feed names no source
# file: posts are compared by URL. The site is built inside the engine's folder, not through a
# node_modules link: Vite cannot compile starlight-blog's routes through one.

STARLIGHT_CONTENT = {"content_dir": "src/content/docs/blog", "dialect": "starlight", "permalink": "/blog/{slug}/"}


@pytest.fixture(scope="module")
def starlight_site():
    from lxml import etree

    home = engine_home("astro", "astro")
    if not (home / "node_modules" / "starlight-blog").is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"starlight-blog is not installed in {home} (CI installs it: .ci/run)")
        pytest.skip(f"starlight-blog is not installed in {home}")
    (home / "sites").mkdir(exist_ok=True)
    root = Path(tempfile.mkdtemp(dir=home / "sites")) / "starlight"
    try:
        shutil.copytree(ORACLE / "starlight", root)
        (root / "package.json").write_text('{"name": "oracle", "private": true, "type": "module"}', encoding="utf-8")
        proc = subprocess.run([str(home / "node_modules" / ".bin" / "astro"), "build", "--silent"], cwd=root,
                              capture_output=True, text=True, timeout=600,
                              env={**os.environ, "TZ": "UTC", "NO_COLOR": "1", "ASTRO_TELEMETRY_DISABLED": "1"})
        assert proc.returncode == 0, f"astro (starlight) failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        found = {}
        for item in etree.parse(str(root / "dist" / "blog" / "rss.xml")).iter("item"):
            url = item.findtext("link").removeprefix("https://oracle.example.org")
            published = parsedate_to_datetime(item.findtext("pubDate"))
            found[url] = (url, item.findtext("title"), minute(published),
                          tuple(sorted(c.text for c in item.findall("category"))))
        yield root, found
    finally:
        shutil.rmtree(root.parent, ignore_errors=True)


def test_every_starlight_blog_post_is_starlights(starlight_site):
    """starlight-blog's posts: Starlight's ids (nested folders, a folder's index, uppercase,
    dots), `slug`, YAML dates (UTC), drafts, tags; the docs outside blog/ are no posts."""
    root, theirs = starlight_site
    ours, problems = publisher_posts(root, **STARLIGHT_CONTENT)
    ours = {post[0]: post for post in ours.values()}
    assert problems == []
    assert len(theirs) >= 9
    assert differences(theirs, ours) == [], agreeing(theirs, ours)


def test_init_configures_starlight_blog_as_starlight_publishes(starlight_site):
    root, theirs = starlight_site
    ours, problems, content = init_posts(root)
    ours = {post[0]: post for post in ours.values()}
    assert problems == [], content
    assert differences(theirs, ours) == [], (content, agreeing(theirs, ours))


# --- generated Astro sites ------------------------------------------------------------------------

def _astro_date(draw, st) -> str:
    """pubDate in a form z.coerce.date() reads: YAML timestamps and dates (UTC without offset),
    strings (ISO, and the forms Date.parse reads in the build's zone)."""
    y, mo, d, h, mi, s = _stamp(draw, st)
    offset = draw(st.sampled_from(OFFSETS))
    month = datetime(y, mo, d).strftime("%B")
    return draw(st.sampled_from([
        f"{y}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}{offset}", f"{y}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}Z",
        f"{y}-{mo}-{d} {h}:{mi:02d}:{s:02d}", f"{y}-{mo:02d}-{d:02d}", f'"{y}-{mo:02d}-{d:02d}"',
        f'"{y}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}"', f'"{y}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}{offset}"',
        f'"{month[:3]} {d:02d} {y}"', f'"{month} {d}, {y}"', f'"{y}/{mo:02d}/{d:02d}"',
    ]))


def _astro_post(draw, st, i: int) -> tuple[str, str]:
    """(path under the site, file text) of one generated post of the blog collection."""
    words = draw(st.lists(st.sampled_from(NAME_WORDS + TITLE_WORDS), max_size=3))
    # no '#': Astro loads no such file (test_every_astro_post_is_astros)
    name = " ".join([f"p{i}"] + [w for w in words if "/" not in w and "#" not in w])
    folder = draw(st.sampled_from(["", "", "Sub Folder/", "a.b/ünï/"]))
    path = f"src/content/blog/{folder}{name}.md"
    if draw(st.integers(0, 4)) == 0:
        path = f"src/content/blog/{folder}{name}/index.md"
    title = " ".join([f"P{i}"] + draw(st.lists(st.sampled_from(TITLE_WORDS), min_size=1, max_size=4)))
    lines = [f"title: {json.dumps(title, ensure_ascii=False)}", f"pubDate: {_astro_date(draw, st)}"]
    if draw(st.integers(0, 5)) == 0:
        lines.append(f"slug: {json.dumps(f'p{i}/' + draw(st.sampled_from(['Own', 'v1.2.3', 'a_b', 'x-y'])))}")
    if draw(st.integers(0, 6)) == 0:
        lines.append("draft: true")
    if draw(st.integers(0, 3)) == 0:
        tags = draw(st.lists(st.sampled_from(["Astro", "web dev", "Ünï"]), min_size=1, max_size=2, unique=True))
        lines.append(f"tags: {json.dumps(tags, ensure_ascii=False)}")
    return path, "---\n" + "\n".join(lines) + "\n---\nBody.\n"


def test_generated_astro_posts_come_out_as_astro_publishes_them(tmp_path):
    """EXAMPLES generated posts (names with spaces, dots, '_', '&', emoji, '½' in nested folders,
    folder index files, `slug`, pubDate in every form z.coerce.date() reads, drafts, tags), built
    by Astro in a generated zone and read by publisher with that newsletter.timezone."""
    engine_home("astro", "astro")
    found = generated_posts(_astro_post)
    zone = found[-1][0]
    site = tmp_path / "generated"
    shutil.copytree(ORACLE / "astro", site, ignore=shutil.ignore_patterns("*.md"))
    for _zone, (rel, text) in found:
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_text(text, encoding="utf-8")
    root = tmp_path / "built"
    theirs = astro_posts(root, astro_build(site, root, zone))
    ours, problems = astro_publisher(root, "astro", zone)
    assert problems == [], zone
    assert differences(theirs, ours) == [], (zone, agreeing(theirs, ours))
    assert len(theirs) == sum("draft: true" not in text for _z, (_r, text) in found) >= min(EXAMPLES, 20) * 3 // 4


# --- generated Docusaurus posts (built with the fixture blog, under blog/generated/) ----------------

def _docusaurus_post(draw, st, i: int) -> tuple[str, str]:
    """(path under the site, file text) of one generated Docusaurus post."""
    y, mo, d, h, mi, s = _stamp(draw, st)
    # no '!' (webpack reads it as its loaders' separator: Docusaurus's build fails) nor '#'
    name = "-".join([f"p{i}"] + [w for w in draw(st.lists(st.sampled_from(NAME_WORDS), max_size=3))
                                 if not set(w) & set("#?!")])
    form = draw(st.sampled_from(["dated", "one-digit", "folders", "folder index", "undated"]))
    path = {"dated": f"{y}-{mo:02d}-{d:02d}-{name}.md", "one-digit": f"{y}-{mo}-{d}-{name}.md",
            "folders": f"{y}/{mo:02d}/{d:02d}/{name}.md", "folder index": f"{y}-{mo:02d}-{d:02d}-{name}/index.md",
            "undated": f"{name}.md"}[form]
    lines, body = [], "Body.\n"
    title = " ".join([f"P{i}"] + draw(st.lists(st.sampled_from(TITLE_WORDS), min_size=1, max_size=4)))
    how = draw(st.sampled_from(["front matter", "front matter", "heading", "none"]))
    if how == "front matter":
        lines.append(f"title: {json.dumps(title, ensure_ascii=False)}")
    elif how == "heading":
        body = f"# {title}\n\nBody.\n"
    if form == "undated" or draw(st.integers(0, 2)) == 0:  # `date:`, in the forms Docusaurus reads
        offset = draw(st.sampled_from(OFFSETS))
        lines.append("date: " + draw(st.sampled_from([
            f"{y}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}{offset}", f"{y}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}Z",
            f"{y}-{mo}-{d} {h}:{mi:02d}:{s:02d}", f"{y}-{mo:02d}-{d:02d}", f'"{y}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}"',
            f'"{y}-{mo:02d}-{d:02d} {h:02d}:{mi:02d}"'])))
    if draw(st.integers(0, 5)) == 0:
        slug = draw(st.sampled_from(["", "/"])) + f"g/p{i}-" + draw(st.sampled_from(["Own", "v1.2.3", "a_b"]))
        lines.append(f"slug: {json.dumps(slug)}")
    if draw(st.integers(0, 6)) == 0:
        lines.append(draw(st.sampled_from(["draft: true", "unlisted: true"])))
    if draw(st.integers(0, 3)) == 0:
        tags = draw(st.lists(st.sampled_from(["Docusaurus", "release notes", "Ünï"]), min_size=1, max_size=2,
                             unique=True))
        lines.append(f"tags: {json.dumps(tags, ensure_ascii=False)}")
    text = ("---\n" + "\n".join(lines) + "\n---\n" if lines else "") + body
    return f"blog/generated/{path}", text


def test_generated_docusaurus_posts_come_out_as_docusaurus_publishes_them(docusaurus_site):
    """EXAMPLES generated posts (dated, one-digit, YYYY/MM/DD folders, folder index files and
    undated names; titles from front matter, an h1 or the name; `date:` in six forms, `slug`,
    drafts, unlisted posts, tags; names and titles with '_', '.', '&', emoji) built with the
    fixture blog: every one agrees with Docusaurus."""
    root, theirs = docusaurus_site
    theirs = {s: post for s, post in theirs.items() if s.startswith("blog/generated/")}
    ours, problems = publisher_posts(root, **DOCUSAURUS_CONTENT)
    ours = {s: post for s, post in ours.items() if s.startswith("blog/generated/")}
    assert problems == []
    assert differences(theirs, ours) == [], agreeing(theirs, ours)
    assert len(theirs) >= min(EXAMPLES, 20) * 2 // 3
