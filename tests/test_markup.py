"""content/markup.py: Markdown rendered as the blog's engine renders it, for both engines
(CommonMark + GFM through cmark-gfm, the default; Python-Markdown on request), on posts shaped
like real ones; and the summary taken from the rendered text."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path

import pytest

from publisher.config import load_config
from publisher.content import load_posts, render_html
from publisher.content.markup import derive_summary, render_body
from publisher.errors import ConfigError, ContentError
from publisher.pipeline import build

NOW = datetime(2025, 1, 1, 12, 0, tzinfo=timezone.utc)
URL = "https://blog.test.example/blog"

# A post as people write them: a first line indented four spaces (a code block), nested lists
# indented by two, a C++ header escaped, attribute-looking braces, bare URLs, a task list,
# strikethrough, a footnote, two headings with the same text, a fenced block and raw HTML.
REAL_POST = """\
    $ make install

Steps:

- build
  - with `make`
  - or with ninja
- test

Include \\<cstdlib> first; *x*{x} stays as written.

See https://example.org/docs and www.example.com for more.

- [ ] write tests
- [x] write code

~~old~~ new[^why].

[^why]: Because it is faster.

## Setup

## Setup

```cpp
#include <cstdlib>
```

<div class="note">raw <b>HTML</b> kept</div>
"""


def engine_site(site, engine: str):
    if engine == "python-markdown":
        site.write_config(content={"dir": "content", "permalink": "/blog/{slug}/",
                                   "markdown": "python-markdown"})
    return site


def render(site, engine: str, body: str, slug: str = "real") -> str:
    engine_site(site, engine)
    site.post(f"{slug}.md", f"title: {slug}\npubDate: 2024-01-01", body)
    config = site.config()
    loaded = load_posts(config, NOW)
    assert loaded.problems == []
    post = next(p for p in loaded.posts if p.slug == slug)
    return render_html(post, config)


def test_commonmark_renders_a_real_post_as_gfm_does(site):
    html = render(site, "commonmark", REAL_POST)
    assert html.startswith("<pre><code>$ make install\n</code></pre>")  # the indented first line
    assert ("<ul>\n<li>build\n<ul>\n<li>with <code>make</code></li>\n<li>or with ninja</li>\n"
            "</ul>\n</li>\n<li>test</li>\n</ul>") in html
    assert "Include &lt;cstdlib&gt; first; <em>x</em>{x} stays as written." in html
    assert ('See <a href="https://example.org/docs">https://example.org/docs</a> and '
            '<a href="http://www.example.com">www.example.com</a> for more.') in html
    assert '<li><input type="checkbox" disabled="" /> write tests</li>' in html
    assert '<li><input type="checkbox" checked="" disabled="" /> write code</li>' in html
    assert "<del>old</del> new" in html
    assert '<h2 id="setup">Setup</h2>\n<h2 id="setup-1">Setup</h2>' in html
    assert '<pre><code class="language-cpp">#include &lt;cstdlib&gt;\n</code></pre>' in html
    assert '<div class="note">raw <b>HTML</b> kept</div>' in html


def test_python_markdown_renders_as_pelican_does(site):
    """The same post through Python-Markdown with its default extensions: what Pelican and
    MkDocs sites get, differences from CommonMark included (pinned, so they stay known)."""
    html = render(site, "python-markdown", REAL_POST)
    assert html.startswith("<pre><code>$ make install\n</code></pre>")
    # Two-space nesting is not nesting for Python-Markdown: one flat list.
    assert "<li>build</li>\n<li>with <code>make</code></li>\n<li>or with ninja</li>" in html
    assert "Include \\<cstdlib> first" in html  # the escape is not one: a raw tag goes through
    assert "<em x>x</em> stays as written." in html  # attr_list takes {x}
    assert "See https://example.org/docs and www.example.com for more." in html
    assert "<li>[ ] write tests</li>" in html and "~~old~~" in html
    assert '<h2 id="setup">Setup</h2>\n<h2 id="setup-1">Setup</h2>' in html
    assert '<pre><code class="language-cpp">#include &lt;cstdlib&gt;\n</code></pre>' in html
    assert '<div class="note">raw <b>HTML</b> kept</div>' in html


@pytest.mark.parametrize("engine", ["commonmark", "python-markdown"])
def test_footnotes_are_prefixed_per_post_and_links_follow(site, engine):
    html = render(site, engine, "Claim[^1] and more[^1].\n\n[^1]: Source.\n")
    ids = re.findall(r'\sid="([^"]+)"', html)
    hrefs = re.findall(r'\shref="([^"]+)"', html)
    assert len(ids) == 3 and len(hrefs) == 4  # note and 2 references; 2 refs and 2 links back
    prefix = re.match(r"real-[0-9a-f]{6}-", ids[0]).group(0)
    assert all(i.startswith(prefix) for i in ids), ids
    # Every footnote link lands on an id of the post (absolute: RSS wants no relative refs).
    assert {h.split("#")[1] for h in hrefs} == set(ids) and all(h.startswith(f"{URL}/real/#") for h in hrefs)


@pytest.mark.parametrize("engine", ["commonmark", "python-markdown"])
def test_footnote_ids_are_unique_across_a_feed(site, engine):
    engine_site(site, engine)
    for i, slug in enumerate(("first", "second")):
        site.post(f"{slug}.md", f"title: {slug}\npubDate: 2024-01-0{i + 1}",
                  f"Text[^1] of {slug}.\n\n[^1]: Note of {slug}.\n")
    assert build(site.config(), NOW).exit_status == 0
    feed = json.loads((site.root / "public" / "feed.json").read_text())
    document = "".join(item["content_html"] for item in feed["items"])
    ids = re.findall(r'\sid="([^"]+)"', document)
    assert len(ids) == 4 and len(set(ids)) == 4, ids
    assert {h.split("#")[1] for h in re.findall(r'\shref="([^"]+)"', document)} == set(ids)


@pytest.mark.parametrize("engine", ["commonmark", "python-markdown"])
def test_heading_ids_unique_within_a_post_and_raw_ids_kept(site, engine):
    html = render(site, engine, '<p id="intro">x</p>\n\n## Intro\n\n## Intro\n\n## Ça va? Yes!\n')
    assert '<h2 id="intro-1">Intro</h2>' in html and '<h2 id="intro-2">Intro</h2>' in html
    assert '<h2 id="ça-va-yes">Ça va? Yes!</h2>' in html


@pytest.mark.parametrize("engine", ["commonmark", "python-markdown"])
def test_relative_links_absolute_and_fenced_code_class(site, engine):
    html = render(site, engine, "[up](../other/) ![i](./a.png)\n\n```python\nx = '<b>' & 1\n```\n")
    assert f'<a href="{URL}/other/">up</a>' in html
    assert f'src="{URL}/real/a.png"' in html
    assert '<pre><code class="language-python">x = \'&lt;b&gt;\' &amp; 1' in html


def test_text_that_merely_looks_like_an_attribute_is_left_alone(site):
    html = render(site, "commonmark", 'Write `<a href="/x">` in code, and href="/y" in prose.\n')
    assert "<code>&lt;a href=&quot;/x&quot;&gt;</code>" in html
    assert "and href=&quot;/y&quot; in prose." in html


def test_huge_post(site):
    body = "Paragraph with **bold** and a [link](../x/).\n\n" * 5000
    html = render(site, "commonmark", body)
    assert html.count("<strong>bold</strong>") == 5000
    assert f'href="{URL}/x/"' in html


def test_unknown_python_markdown_extension_is_a_config_error(site):
    site.write_config(content={"dir": "content", "permalink": "/blog/{slug}/",
                               "markdown": "python-markdown",
                               "markdown_extensions": ["no_such_extension"]})
    site.post("a.md", "title: A\npubDate: 2024-01-01", "text\n")
    with pytest.raises(ConfigError, match=r"config\.yaml: content\.markdown_extensions: cannot load \['no_such_extension'\]"):
        load_posts(site.config(), NOW)


def test_python_markdown_extensions_are_used(site):
    site.write_config(content={"dir": "content", "permalink": "/blog/{slug}/",
                               "markdown": "python-markdown", "markdown_extensions": ["toc"]})
    site.post("t.md", "title: T\npubDate: 2024-01-01", "[TOC]\n\n## One\n\n*x*{x}\n")
    config = site.config()
    html = render_html(load_posts(config, NOW).posts[0], config)
    assert '<div class="toc">' in html
    assert "<em>x</em>{x}" in html  # attr_list is not in the list: braces stay


def test_switching_engines_renders_again(site, tmp_path):
    """The engine is part of the render cache's key and of the feeds' fingerprint."""
    site.post("s.md", "title: S\npubDate: 2024-01-01", "~~gone~~\n")
    assert build(site.config(), NOW).exit_status == 0
    rss = site.root / "public" / "rss.xml"
    assert "&lt;del&gt;gone&lt;/del&gt;" in rss.read_text()
    engine_site(site, "python-markdown")
    report = build(site.config(), NOW)
    assert "~~gone~~" in rss.read_text(), report.lines


def test_a_file_changed_since_the_scan_is_reported_when_rendered(site):
    """A post restored from the scan cache reads its body when rendered."""
    site.post("a.md", "title: A\npubDate: 2024-01-01", "Old body.\n")
    config = site.config()
    first = load_posts(config, NOW, cache={})
    cached = load_posts(config, NOW, cache=dict(first.cache_changed))
    Path(cached.posts[0]._path).write_text("---\ntitle: Changed\npubDate: 2024-01-01\n---\nNew.\n")
    with pytest.raises(ContentError, match="changed while publisher was running"):
        render_html(cached.posts[0], config)


def test_indented_first_line_kept_through_the_scan_cache(site):
    site.post("a.md", "title: A\npubDate: 2024-01-01", "\n\n    indented code\n\nText.\n\n")
    config = site.config()
    fresh = load_posts(config, NOW, cache={})
    cached = load_posts(config, NOW, cache=dict(fresh.cache_changed))
    assert fresh.posts[0].body == cached.posts[0].body == "    indented code\n\nText."
    assert render_html(cached.posts[0], config).startswith("<pre><code>indented code\n")


# --- summary -------------------------------------------------------------------------------

@pytest.mark.parametrize("engine", ["commonmark", "python-markdown"])
def test_summary_is_the_first_paragraph_of_rendered_text(site, engine):
    engine_site(site, engine)
    site.post("s.md", "title: S\npubDate: 2024-01-01",
              "Big title\n=========\n\n{% include toc.html %}\n\n{{< figure src=\"a.png\" >}}\n\n"
              "![only an image](a.png)\n\n```\ncode\n```\n\n"
              "The *first* [real](x) paragraph &amp; more[^1].\n\nSecond.\n\n[^1]: Note.\n")
    loaded = load_posts(site.config(), NOW)
    assert loaded.posts[0].summary == "The first real paragraph & more."


def test_summary_is_cut_at_a_word():
    summary = derive_summary(render_body("word " * 200))
    assert summary.endswith("word…") and len(summary) <= 280


def test_summary_from_front_matter_wins(site):
    site.post("s.md", "title: S\npubDate: 2024-01-01\ndescription: Given.", "Derived.\n")
    assert load_posts(site.config(), NOW).posts[0].summary == "Given."


def test_summary_from_the_beginning_is_the_whole_posts():
    """A long post's summary is found by rendering its beginning: the same as from the whole."""
    from publisher.content.markup import SUMMARY_PREFIX, summary_of

    filler = "\n\n".join(f"Paragraph {i} with [a reference][ref] and *text*." for i in range(200))
    cases = [
        "# Title\n\nThe [first][ref] one.\n\n" + filler + "\n\n[ref]: https://example.org/\n",
        "```\n" + "code\n\n" * 900 + "```\n\nAfter the fence.\n",
        "<!--\n" + "hidden\n\n" * 900 + "-->\n\nAfter the comment.\n",
        "![only](a.png)\n\n" + "| a |\n|---|\n| 1 |\n\n" * 300 + "Late text.\n",
    ]
    for body in cases:
        assert len(body) > 2 * SUMMARY_PREFIX
        assert summary_of(body) == derive_summary(render_body(body)) != ""
    assert summary_of(cases[0]) == "The first one."
