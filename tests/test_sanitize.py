"""content/sanitize.py: feed HTML made safe for readers (nh3), what `publisher check` says it
removed, and the feeds a build writes from real-looking posts."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from click.testing import CliRunner

from publisher.cli import main
from publisher.content.sanitize import removed_by_sanitizing, replace_iframes, sanitize_html
from publisher.pipeline import build

NOW = datetime(2025, 1, 1, 12, 0, tzinfo=timezone.utc)

TWEET = """\
<blockquote class="twitter-tweet"><p lang="en" dir="ltr">Great release!</p>&mdash; Someone
<a href="https://twitter.com/someone/status/1">May 2, 2024</a></blockquote>
<script async src="https://platform.twitter.com/widgets.js" charset="utf-8"></script>

<p style="color: #666">Posted from the floor.</p>

<a href="javascript:void(0)" onclick="share()">Share this</a> <a href="JaVaScRiPt:x()">again</a>
"""


def test_scripts_handlers_styles_and_javascript_urls_go():
    out = sanitize_html(TWEET)
    assert "<script" not in out and "widgets.js" not in out
    assert "style=" not in out and "onclick" not in out and "javascript" not in out.lower()
    assert '<blockquote class="twitter-tweet"><p lang="en" dir="ltr">Great release!</p>' in out
    assert '<a href="https://twitter.com/someone/status/1">May 2, 2024</a>' in out
    assert "<p>Posted from the floor.</p>" in out
    assert "<a>Share this</a> <a>again</a>" in out


def test_data_urls_only_on_images():
    png = "data:image/png;base64,iVBORw0KGgo="
    out = sanitize_html(f'<img src="{png}" alt="dot"><a href="data:text/html,x">x</a>'
                        f'<video poster="data:image/png;base64,AA" src="v.mp4"></video>')
    assert f'<img src="{png}" alt="dot">' in out
    assert "<a>x</a>" in out
    assert '<video controls="" src="v.mp4"></video>' in out  # poster gone


def test_what_readers_show_is_kept():
    fragment = (
        '<figure><img src="https://x.org/a.png" alt="A" width="300"><figcaption>Cap</figcaption></figure>'
        '<table><thead><tr><th align="center">h</th></tr></thead><tbody><tr><td>1</td></tr></tbody></table>'
        '<pre><code class="language-cpp">#include &lt;cstdlib&gt;\n</code></pre>'
        '<details open><summary>More</summary><p>Body</p></details>'
        '<audio src="https://x.org/a.mp3" autoplay></audio>'
        '<ul><li><input type="checkbox" checked="" disabled="" /> done</li></ul>'
        '<h2 id="setup">Setup</h2><p>x<sup class="footnote-ref"><a href="https://b.org/p/#p-1-fn-1" '
        'id="p-1-fnref-1" data-footnote-ref>1</a></sup></p><del>old</del><kbd>Ctrl</kbd>'
    )
    out = sanitize_html(fragment)
    for kept in ('<figure><img src="https://x.org/a.png" alt="A" width="300"><figcaption>Cap</figcaption></figure>',
                 '<th align="center">h</th>', '<code class="language-cpp">#include &lt;cstdlib&gt;\n</code>',
                 '<details open=""><summary>More</summary><p>Body</p></details>',
                 '<audio src="https://x.org/a.mp3" controls=""></audio>',
                 '<input type="checkbox" checked="" disabled="">', '<h2 id="setup">Setup</h2>',
                 '<a href="https://b.org/p/#p-1-fn-1" id="p-1-fnref-1" data-footnote-ref="">1</a>',
                 "<del>old</del>", "<kbd>Ctrl</kbd>"):
        assert kept in out, kept
    assert removed_by_sanitizing(fragment) == ["autoplay="]


def test_embeds_become_links():
    out = replace_iframes(
        '<iframe width="560" src="https://www.youtube.com/embed/dQw4w9WgXcQ?si=x" title="Talk" allowfullscreen></iframe>'
        '<iframe src="https://www.youtube-nocookie.com/embed/abcdefghijk"></iframe>'
        '<iframe src="//player.vimeo.com/video/76979871?h=8272103f6e"></iframe>'
        '<iframe src="https://codepen.io/x/embed/y" title="Pen &amp; demo"></iframe>'
        '<IFRAME src="javascript:alert(1)"></IFRAME><iframe srcdoc="<b>x</b>"></iframe>'
    )
    assert out == (
        '<a href="https://www.youtube.com/watch?v=dQw4w9WgXcQ"><img '
        'src="https://i.ytimg.com/vi/dQw4w9WgXcQ/hqdefault.jpg" alt="Talk"></a>'
        '<a href="https://www.youtube.com/watch?v=abcdefghijk"><img '
        'src="https://i.ytimg.com/vi/abcdefghijk/hqdefault.jpg" alt="Watch the video on YouTube"></a>'
        '<a href="https://vimeo.com/76979871">Watch the video on Vimeo</a>'
        '<a href="https://codepen.io/x/embed/y">Pen &amp; demo</a>'
    )


def test_removed_lists_each_kind_once_with_counts():
    fragment = TWEET + '<iframe src="https://a.org/x"></iframe><iframe src="https://b.org/y"></iframe>'
    assert removed_by_sanitizing(fragment) == [
        "<iframe> made a link x2", "<script>", "javascript: URL in <a href> x2", "onclick=", "style="]
    assert removed_by_sanitizing("<p>Plain <em>text</em> and <a href='https://x.org/'>a link</a></p>") == []


def test_feeds_carry_sanitised_html_and_check_names_what_went(site):
    site.post("tweet.md", "title: Tweet\npubDate: 2024-05-02T10:00:00Z", TWEET)
    site.post("clean.md", "title: Clean\npubDate: 2024-05-02T10:00:00Z", "Just *text*.\n")
    site.post("md-link.md", "title: Link\npubDate: 2024-05-01T10:00:00Z", "[click](javascript:alert(1))\n")
    config = site.config()
    assert build(config, NOW).exit_status == 0
    feed = json.loads((site.root / "public" / "feed.json").read_text())
    html = next(i["content_html"] for i in feed["items"] if i["title"] == "Tweet")
    assert "<script" not in html and "onclick" not in html and "Great release!" in html
    for name in ("rss.xml", "atom.xml"):
        text = (site.root / "public" / name).read_text()
        assert "widgets.js" not in text and "javascript:" not in text and "style=" not in text
    result = CliRunner().invoke(main, ["--config", str(site.root / "config.yaml"), "check"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[:2] == [
        "content/md-link.md: made safe for readers: removed javascript: URL in <a href>",
        "content/tweet.md: made safe for readers: removed <script>, javascript: URL in <a href> x2, "
        "onclick=, style="]
    assert "content/clean.md" not in result.output


def test_posts_published_at_the_same_second_get_distinct_atom_updated(site):
    for slug in ("b", "a", "c"):
        site.post(f"{slug}.md", f"title: {slug}\npubDate: 2024-05-02T10:00:00Z")
    assert build(site.config(), NOW).exit_status == 0
    atom = (site.root / "public" / "atom.xml").read_text()
    assert "<updated>2024-05-02T10:00:00+00:00</updated>" in atom  # the feed's and /blog/a/'s
    assert atom.count("<updated>2024-05-02T10:00:00.000001+00:00</updated>") == 1
    assert atom.count("<updated>2024-05-02T10:00:00.000002+00:00</updated>") == 1
    entry_updates = [part.split("<updated>")[1].split("<")[0]
                     for part in atom.split("<entry>")[1:]]
    assert len(set(entry_updates)) == 3


def test_the_render_cache_holds_sanitised_html_and_a_new_sanitiser_cleans_again(site, monkeypatch):
    # The render cache keeps what a feed carries (sanitised, in the forked worker's share too):
    # a build that takes a post from it writes the same safe feed; an upgraded nh3 renders again.
    import nh3

    from publisher.state import State

    site.post("tweet.md", "title: Tweet\npubDate: 2024-05-02T10:00:00Z", TWEET)
    config = site.config()
    assert build(config, NOW).exit_status == 0
    first = (site.root / "public" / "atom.xml").read_bytes()
    with State(config.database_url) as state, state.read() as conn:
        cached = [html for (html,) in conn.exec_driver_sql("SELECT html FROM render_cache")]
    assert len(cached) == 1 and "Great release!" in cached[0]
    assert "<script" not in cached[0] and "onclick" not in cached[0] and "style=" not in cached[0]
    site.post("later.md", "title: Later\npubDate: 2024-05-03T10:00:00Z", "More.\n")
    report = build(config, NOW)
    assert "(1 rendered, 1 from cache)" in report.lines[0]
    feed = (site.root / "public" / "atom.xml").read_bytes()
    assert b"widgets.js" not in feed and b"onclick" not in feed and b"&lt;script" not in feed
    assert first.split(b"<entry>")[1] == feed.split(b"<entry>")[2]  # the tweet's entry, unchanged
    monkeypatch.setattr(nh3, "__version__", nh3.__version__ + ".post1")
    (site.root / "public" / "rss.xml").unlink()
    assert "(2 rendered, 0 from cache)" in build(config, NOW).lines[0]


# --- every URL that leaves, read as a browser reads it (issue 25) ----------------------------

@pytest.mark.parametrize("fragment, expected", [
    ('<a href="da&#x0A;ta:text/html,&lt;script&gt;alert(1)&lt;/script&gt;">x</a>', "<a>x</a>"),
    ('<a href="da\nta:text/html,x">x</a>', "<a>x</a>"),
    ('<a href="java&#x09;script:alert(1)">x</a>', "<a>x</a>"),
    ('<a href="&amp;#x6A;avascript:alert(1)">x</a>', "<a>x</a>"),  # for readers that decode twice
    ('<a href="\x01 javascript:alert(1)">x</a>', "<a>x</a>"),
    ('<a href="vbscript:x">x</a><a href="tel:+123">t</a>', '<a>x</a><a href="tel:+123">t</a>'),
    ('<img srcset="javascript:alert(1) 1x, https://x.org/a.png 2x" alt="a">', '<img alt="a">'),
    ('<picture><source srcset="https://x.org/a.webp, JAVASCRIPT:x 2x"></picture>', "<picture><source></picture>"),
    ('<blockquote cite="javascript:alert(1)">q</blockquote>', "<blockquote>q</blockquote>"),
    ('<q cite="JaVaScRiPt:alert(1)">q</q><del cite="data:text/html,x">d</del>', "<q>q</q><del>d</del>"),
    ('<video poster="javascript:alert(1)" src="javascript:x"></video>', '<video controls=""></video>'),
    ('<img src="data:image/svg+xml,&lt;svg onload=alert(1)&gt;">', "<img>"),
    ('<a href="da&#x0A;ta:text/html,x"><img src="data:text/html,x"></a>', "<a><img></a>"),
])
def test_every_url_attribute_is_read_as_a_browser_reads_it(fragment, expected):
    assert sanitize_html(fragment) == expected


def test_urls_readers_follow_are_kept():
    fragment = ('<a href="https://x.org/a?b=1&amp;c=2">a</a><a href="mailto:me@x.org">m</a>'
                '<a href="/rel/path">r</a><a href="#top">t</a><a href="//cdn.x.org/x">n</a>'
                '<img srcset="a.png 1x, https://x.org/b.png 2x" src="data:image/png;base64,AA">'
                '<blockquote cite="https://x.org/q">q</blockquote>')
    assert sanitize_html(fragment) == fragment
    assert removed_by_sanitizing(fragment) == []


def test_check_names_the_urls_that_went():
    assert removed_by_sanitizing(
        '<a href="da&#x0A;ta:text/html,x">x</a><img srcset="javascript:x 1x">'
        '<blockquote cite="java&#9;script:x">q</blockquote>') == [
        "data: URL in <a href>", "javascript: URL in <blockquote cite>", "javascript: URL in <img srcset>"]


# --- nesting: linear, as browsers cap it (issue 25) -----------------------------------------

def test_nesting_past_the_limit_is_flattened_and_its_text_kept():
    from publisher.content.sanitize import MAX_HTML_DEPTH

    n = MAX_HTML_DEPTH + 50
    out = sanitize_html("<div>" * n + "<p>deep <b>text</b></p>" + "</div>" * n + "<p>after</p>")
    # (the <b> is deeper than the limit too: its text stays, in the deepest kept <div>)
    assert out == "<div>" * MAX_HTML_DEPTH + "<p>deep text</p>" + "</div>" * MAX_HTML_DEPTH + "<p>after</p>"
    shallow = "<div>" * MAX_HTML_DEPTH + "x" + "</div>" * MAX_HTML_DEPTH
    assert sanitize_html(shallow) == shallow
    # Paragraphs, list items and void elements make nothing deeper: hundreds of them are kept.
    flat = "<ul>" + "<li><p>item<br><img src='a.png'>" * 1000 + "</ul>"
    assert sanitize_html(flat).count("<li>") == 1000
    assert removed_by_sanitizing("<blockquote>" * n + "x" + "</blockquote>" * n) == [
        f"nesting past {MAX_HTML_DEPTH} levels (flattened)"]


def test_sanitising_deep_nesting_is_linear():
    """nh3 walks the open elements at each tag: 100,000 nested <div>s took 23 s, 200,000
    nested blockquotes (a 200 KB post of '>') 5.5 minutes. Generous bound: 10 s for both."""
    import time

    from publisher.content.markup import _cmark

    started = time.process_time()
    divs = sanitize_html("<div>" * 100_000 + "x" + "</div>" * 100_000)
    quotes = sanitize_html(_cmark()(">" * 200_000 + " x\n"))
    unclosed = sanitize_html("<div/>" * 100_000 + "x")  # '/>' closes nothing in HTML
    assert time.process_time() - started < 10
    assert divs.count("<div>") == quotes.count("<blockquote>") == unclosed.count("<div>") == 256
    assert "x" in divs and "<p>x</p>" in quotes
