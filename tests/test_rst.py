"""content/rst.py: Pelican's reStructuredText posts, read as Pelican reads them: the title and
field list are the metadata, docutils renders the body. The fixture site
(tests/fixtures/syntax/pelican/: .rst and .md posts) is also built by Pelican itself, and each
post's URL, title, date and body text are compared with publisher's."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml

from publisher.config import load_config
from publisher.content import load_posts
from publisher.content.markup import render_html

SITE = Path(__file__).parent / "fixtures" / "syntax" / "pelican"
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=timezone.utc)
PUBLISHER = [sys.executable, "-c", "from publisher.cli import main; main()"]


def pelican_site(tmp_path: Path, dialect: str = "pelican") -> Path:
    root = tmp_path / "pelican"
    shutil.copytree(SITE, root)
    config = {
        "site": {"title": "Syntax fixture", "url": "https://pelican.example.org",
                 "author": {"name": "Ana", "email": "ana@ex.org"}},
        "content": {"dir": "content", "permalink": "/{slug}.html", "dialect": dialect},
        "feeds": {"output_dir": "feeds", "limit": 0},
        "newsletter": {"from": "T <news@ex.org>", "timezone": "UTC"},
        "state": {"database": "sqlite:///state.db"},
    }
    (root / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    return root


def load(root: Path):
    return load_posts(load_config(root / "config.yaml"), NOW)


def test_rst_posts_take_their_metadata_from_the_document(tmp_path):
    root = pelican_site(tmp_path)
    result = load(root)
    assert result.problems == []
    posts = {p.url: p for p in result.posts}
    assert sorted(posts) == ["https://pelican.example.org/a-post-in-markdown.html",
                             "https://pelican.example.org/getting-started.html",
                             "https://pelican.example.org/second-thoughts-on-naming.html"]
    first = posts["https://pelican.example.org/getting-started.html"]
    assert (first.title, first.published, first.updated) == (
        "Getting started with the tools", datetime(2024, 3, 10, 9, 30, tzinfo=timezone.utc),
        datetime(2024, 3, 12, 18, 0, tzinfo=timezone.utc))
    assert (first.tags, first.categories, first.slug) == (("setup", "tooling"), ("Guides",), "getting-started")
    assert first.summary == "How to install the tools in five minutes."
    assert first.author == "Ana Ruiz"
    second = posts["https://pelican.example.org/second-thoughts-on-naming.html"]
    assert (second.categories, second.tags) == (("notes",), ("naming",))  # the folder, as Pelican
    assert second.summary == ("Names outlive the code that needs them. A good name says what a thing is, "
                              "not how it was built.")
    body = render_html(second)
    assert body == ("<p>Names outlive the code that needs them. A <strong>good</strong> name says what a "
                    "thing <em>is</em>, not how\nit was built.</p>\n"
                    "<p>A second paragraph, with <code>inline code</code>.</p>")
    html_first = render_html(first)
    assert "Getting started" not in html_first and ":date:" not in html_first  # title and fields: metadata
    assert '<div class="admonition note">' in html_first
    assert '<pre class="literal-block">\ntool install --all\n</pre>' in html_first


def test_a_broken_or_untitled_rst_post_is_skipped_with_its_line(tmp_path):
    root = pelican_site(tmp_path)
    (root / "content" / "broken.rst").write_text("Broken\n======\n\n:date: 2024-01-01\n\nA `dangling start.\n",
                                                  encoding="utf-8")
    (root / "content" / "untitled.rst").write_text(":date: 2024-01-01\n\nNo title here.\n", encoding="utf-8")
    result = load(root)
    assert result.problems == [
        "content/broken.rst: skipped: reStructuredText: line 6: Inline interpreted text or phrase "
        "reference start-string without end-string.",
        "content/untitled.rst: skipped: reStructuredText has no document title (one top-level "
        "section title, before the :date: and other fields)"]
    assert len(result.posts) == 3


def test_rst_files_are_posts_only_for_pelican(tmp_path):
    root = pelican_site(tmp_path, dialect="auto")
    (root / "content" / "plain-markdown.md").write_text(
        "---\ntitle: A post in Markdown\ndate: 2024-04-20\n---\nHi.\n", encoding="utf-8")
    result = load(root)
    assert (result.problems, [p.source for p in result.posts]) == ([], ["content/plain-markdown.md"])


def _pelican() -> str | None:
    found = os.environ.get("PUBLISHER_TEST_PELICAN") or shutil.which("pelican")
    return found if found and os.access(found, os.X_OK) else None


def _text(fragment: str) -> str:
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", fragment))).strip()


def test_posts_are_what_pelican_itself_publishes(tmp_path):
    """Pelican (a venv of its own: .ci/run makes it, PUBLISHER_TEST_PELICAN names its binary)
    builds the fixture, .rst and .md posts; its Atom feed and publisher's feed agree on each
    post's URL, title, date and body text."""
    pelican = _pelican()
    if pelican is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI: pelican not found (PUBLISHER_TEST_PELICAN or PATH); .ci/run installs it")
        pytest.skip("pelican is not installed (set PUBLISHER_TEST_PELICAN to its binary)")
    from lxml import etree

    root = pelican_site(tmp_path)
    subprocess.run([pelican, "content", "-s", "pelicanconf.py", "-o", "output", "-q"], cwd=root,
                   check=True, capture_output=True, timeout=300)
    atom = etree.parse(str(root / "output/feeds/all.atom.xml"))
    ns = {"a": "http://www.w3.org/2005/Atom"}
    theirs = {}
    for entry in atom.findall("a:entry", ns):
        published = datetime.fromisoformat(entry.findtext("a:published", namespaces=ns))
        theirs[entry.find("a:link", ns).get("href")] = (
            entry.findtext("a:title", namespaces=ns), published, _text(entry.findtext("a:content", namespaces=ns)))
    proc = subprocess.run(PUBLISHER + ["build"], cwd=root, capture_output=True, text=True, timeout=120)
    assert (proc.returncode, proc.stderr) == (0, "")
    items = json.loads((root / "feeds/feed.json").read_text(encoding="utf-8"))["items"]
    ours = {item["url"]: (item["title"], datetime.fromisoformat(item["date_published"]),
                          _text(item["content_html"])) for item in items}
    assert ours == theirs
    assert len(ours) == 3


def test_a_link_to_an_rst_post_becomes_its_url(tmp_path):
    root = pelican_site(tmp_path)
    (root / "content" / "plain-markdown.md").write_text(
        "Title: A post in Markdown\nDate: 2024-04-20 08:00\n\nSee [the guide]({filename}/first-steps.rst) "
        "and [the notes](notes/second-thoughts.rst#top).\n", encoding="utf-8")
    proc = subprocess.run(PUBLISHER + ["build"], cwd=root, capture_output=True, text=True, timeout=120)
    assert (proc.returncode, proc.stderr) == (0, "")
    items = json.loads((root / "feeds/feed.json").read_text(encoding="utf-8"))["items"]
    body = {item["title"]: item["content_html"] for item in items}["A post in Markdown"]
    assert re.findall(r'href="([^"]+)"', body) == [
        "https://pelican.example.org/getting-started.html",
        "https://pelican.example.org/second-thoughts-on-naming.html#top"]


TYPOGRIFIED_TITLES = ["EulerPy -- Streamlining Project Euler", "It's \"quoted\" and 'single' in the '90s...",
                      "``Backticks'' -- and --- dashes . . . & Q&A", "A &mdash; entity, \"(parens)\" and 5' x 'y'"]


@pytest.mark.parametrize("dashes", [None, "oldschool", "oldschool_inverted"])
def test_typogrify_titles_are_what_pelican_itself_publishes(tmp_path, dashes):
    """A site with `TYPOGRIFY = True`: Pelican typogrifies every title (smartypants' quotes,
    `--` an em dash, `...` an ellipsis; TYPOGRIFY_DASHES the old-school dashes), and its feed
    shows them so (kevinyap.ca: "EulerPy — Streamlining Project Euler"); publisher kept `--`."""
    pelican = _pelican()
    if pelican is None or subprocess.run([str(Path(pelican).parent / "python"), "-c", "import typogrify"],
                                         capture_output=True).returncode != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("CI: pelican with typogrify not found (PUBLISHER_TEST_PELICAN); .ci/run installs it")
        pytest.skip("pelican with typogrify is not installed (set PUBLISHER_TEST_PELICAN to its binary)")
    from lxml import etree

    root = pelican_site(tmp_path)
    with (root / "pelicanconf.py").open("a", encoding="utf-8") as f:
        f.write("TYPOGRIFY = True\n" + (f"TYPOGRIFY_DASHES = {dashes!r}\n" if dashes else ""))
    for i, title in enumerate(TYPOGRIFIED_TITLES):
        (root / "content" / f"typo-{i}.md").write_text(
            f"Title: {title}\nDate: 2024-05-0{i + 1} 10:00\nSlug: typo-{i}\n\nBody.\n", encoding="utf-8")
    subprocess.run([pelican, "content", "-s", "pelicanconf.py", "-o", "output", "-q"], cwd=root,
                   check=True, capture_output=True, timeout=300)
    ns = {"a": "http://www.w3.org/2005/Atom"}
    theirs = {entry.find("a:link", ns).get("href"): " ".join(entry.findtext("a:title", namespaces=ns).split())
              for entry in etree.parse(str(root / "output/feeds/all.atom.xml")).findall("a:entry", ns)}
    ours = {p.url: p.title for p in load(root).posts}
    assert len(theirs) == 3 + len(TYPOGRIFIED_TITLES)
    assert ours == theirs
    if dashes is None:
        assert ours["https://pelican.example.org/typo-0.html"] == "EulerPy — Streamlining Project Euler"
