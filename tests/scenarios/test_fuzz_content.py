"""Content fuzzing: generated front matter and Markdown (random Unicode, control characters,
`]]>`, `--`, huge and empty values, values of the wrong type, broken YAML, bytes that are not
UTF-8) never crash `publisher build`; every feed it writes stays well-formed and
feedparser-clean; and every file is either a post or named, with a reason, in one "skipped"
line. A folder of 1,000 posts with 5% broken files builds the other 95%.

Hypothesis runs derandomized (a fixed seed, no example database), so CI is reproducible;
on a failure it prints the smallest example it found."""

from __future__ import annotations

import json
import os
import random
import re
import tempfile
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from reliability_helpers import feed_problems, run_cli
from sites import make_config

from publisher import pipeline
from publisher.content import load_posts
from publisher.feeds import check_feeds

NOW = datetime(2030, 1, 1, tzinfo=timezone.utc)

NASTY = [
    "]]>", "<![CDATA[", "--", "<!--", "-->", "&", "&amp;", "&#0;", "&#x1;", "&bogus;", "<", ">",
    "<script>alert(1)</script>", "<img src=x onerror=alert(1)>", '"', "'", "\\", "\x00", "\x01",
    "\x08", "\x0b", "\x0c", "\x1b", "\x7f", "\x85", "\x9f", "\r", "\r\n", "\n", "\t", "\u2028",
    "\u2029", "\ufeff", "\ufffe", "\uffff", "\ufdd0", "\u200b", "\u202e", "🚀", "שלום", "مرحبا",
    "e\u0301", "ﬁ", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "=?utf-8?q?=0D=0ABcc:_evil@example.org?=", "\r\nBcc: evil@example.org",
    "{{ 7*7 }}", "{% raw %}", "@@PUBLISHER_EMAIL@@", "%s%n", "../../etc/passwd", "/etc/passwd",
    "C:\\Windows", "..", ".", "", " ", "---", "...", "#", "[x](../rel/)", "![i](img/p.png)",
    "javascript:alert(1)", "http://", "mailto:a@b", "a@b.c",
]

safe_chars = st.characters(blacklist_categories=("Cs",))  # every code point UTF-8 can carry
nasty_text = st.lists(st.one_of(st.sampled_from(NASTY), st.text(safe_chars, max_size=12)),
                      max_size=8).map("".join)
huge_text = st.builds(lambda piece, n: (piece or "x")[:24] * n, nasty_text, st.integers(1000, 4000))
text = st.one_of(nasty_text, nasty_text, nasty_text, huge_text)

aware = st.datetimes(min_value=datetime(1901, 1, 1), max_value=datetime(2040, 1, 1),
                     timezones=st.sampled_from([timezone.utc, timezone(timedelta(hours=5, minutes=30)),
                                                timezone(timedelta(hours=-11))]))
naive = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30))
date_strings = st.one_of(
    aware.map(lambda d: d.isoformat()), naive.map(lambda d: d.strftime("%Y-%m-%d %H:%M:%S +0200")),
    st.dates().map(str), st.sampled_from(["2024-02-30", "2024-13-01", "yesterday", "0000-00-00",
                                          "Tue, 10 Jun 2003 04:00:00 GMT", "2024-04-20T25:00:00Z",
                                          "99999-01-01", "2024-04-20 10:00:00 +9999", ""]))
scalar = st.one_of(text, st.integers(-2**70, 2**70), st.floats(allow_nan=True), st.booleans(),
                   st.none(), st.dates(), naive, aware, date_strings)
value = st.recursive(scalar, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                     st.dictionaries(nasty_text, inner, max_size=3)),
                     max_leaves=8)
def mostly(good, times: int = 12):
    """`good` `times` times out of `times + 1`, anything (any type, any depth) otherwise.
    (one_of would not do: it draws each distinct strategy equally often.)"""
    return st.sampled_from(range(times + 1)).flatmap(lambda i: value if i == times else good)


flag = st.one_of(st.booleans(), st.sampled_from(["yes", "no", "true", "off", 1, 0, ""]))
tag_list = st.one_of(st.lists(nasty_text, max_size=5), nasty_text.map(lambda t: t + ", b, " + t))
author = st.one_of(nasty_text, st.fixed_dictionaries({"name": nasty_text, "email": nasty_text}))
when = st.one_of(aware, aware, date_strings)
front_matter = st.fixed_dictionaries(
    {"title": mostly(st.builds(str.__add__, nasty_text, st.sampled_from(
        ["Title", "x", "Ünïcode", "<b>bold</b>", "A & B", "]]>", "--"]))), "pubDate": mostly(when)},
    optional={
        "date": mostly(when, 3), "description": mostly(text), "summary": mostly(text),
        "author": mostly(author), "tags": mostly(tag_list), "categories": mostly(tag_list, 3),
        "featured": mostly(flag), "draft": mostly(st.just(False), 8) | flag,
        "updatedDate": mostly(when), "lastmod": mostly(when, 3), "slug": mostly(nasty_text),
        "image": mostly(nasty_text), "heroImage": mostly(nasty_text, 3), "id": mostly(nasty_text),
    },
)
body = st.lists(st.one_of(
    nasty_text, st.sampled_from([
        "# Heading\n", "```\ncode ]]> -- <b>\n```\n", "| a | b |\n|---|---|\n| ]]> | -- |\n",
        "[^1]\n\n[^1]: note ]]>\n", "<div><p>unclosed\n", "<a href='../x'>x</a>\n",
        '<img src="p.png" srcset="a.png 1x, b.png 2x">\n', "> quote\n", "* a\n* b\n", "\n\n",
        "<![CDATA[ x ]]>\n", "<?php echo 1; ?>\n", "<!-- comment -- nested -->\n", "&nbsp;&#x0;\n",
    ])), max_size=10).map("".join)


@st.composite
def post_file(draw) -> bytes:
    """One file's bytes: mostly YAML front matter dumped from a generated mapping, sometimes
    raw (probably invalid) YAML, sometimes not text at all."""
    kind = draw(st.sampled_from(["yaml"] * 6 + ["ascii-yaml", "raw", "bytes", "crlf"]))
    if kind == "bytes":
        return draw(st.binary(max_size=300))
    md = draw(body)
    if kind == "raw":
        fm = draw(st.lists(st.one_of(st.sampled_from(
            ["title: x", "pubDate: 2024-01-01", "a: &a [1, *a]", "b: !!python/object:os.system x",
             "  bad indent: [", "tags: {", "\t", "title: |", "date: 2024-01-01 10:00:00 +0200",
             "? complex key", "- list", "title: >-", "%YAML 1.2", "title: 'unterminated"]),
            nasty_text), max_size=6).map("\n".join))
        return ("---\n" + fm + "\n---\n" + md).encode("utf-8", "surrogatepass")
    meta = draw(front_matter)
    try:
        fm = yaml.safe_dump(meta, allow_unicode=(kind != "ascii-yaml"), sort_keys=False, width=80)
    except yaml.YAMLError:
        fm = "title: unrepresentable\n"
    text = "---\n" + fm + "---\n" + md
    if kind == "crlf":
        text = "\ufeff" + text.replace("\n", "\r\n")
    return text.encode("utf-8", "surrogatepass")


def check_site(files: list[bytes], names: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "site"
        config = make_config(root, feeds={"limit": 0}, state={"database": "state.db"})
        for name, data in zip(names, files):
            path = root / "content" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)

        loaded = load_posts(config, NOW)
        report = pipeline.build(config, NOW)  # must not raise
        # The skipped files first, then one line per post and problem of what rendering met
        # (engine syntax left unresolved, a missing image, a link to no post's source).
        assert report.problems[:len(loaded.problems)] == loaded.problems
        for line in report.problems[len(loaded.problems):]:
            assert re.fullmatch(r"content/[^:\n]+: (unresolved engine syntax: .+|image not found: .+"
                                r"|link to .+: no published post has that source file)", line), line

        # Every file is a post (published or held back) or one "skipped" line naming it.
        posts = {p.source for p in loaded.posts + loaded.held_back}
        rels = {f"content/{n}" for n in names}
        skipped = {}
        for line in loaded.problems:
            rel, sep, reason = line.partition(": skipped: ")
            assert rel in rels and sep and reason.strip(), (
                f"a problem line that does not name a file and a reason: {line!r}")
            assert "\n" not in line and "\r" not in line, f"a problem that spans lines: {line!r}"
            assert rel not in skipped, f"a file skipped twice: {line!r}"
            skipped[rel] = reason
        assert not posts & set(skipped)
        assert posts | set(skipped) == rels

        event(f"published posts: {min(len(loaded.posts), 2)}+")
        for reason in skipped.values():
            event("skipped: " + re.sub(r"[:(].*", "", reason).strip()[:40])

        # Every feed well-formed, feedparser-clean, and the JSON feed valid.
        assert feed_problems(config.output_dir) == []
        assert check_feeds(config.output_dir) == []
        doc = json.loads((config.output_dir / "feed.json").read_bytes())
        assert len(doc["items"]) == len(loaded.posts)


NAMES = st.lists(st.sampled_from(["a.md", "b.markdown", "dir/index.md", "x y/ü.md", "c.md",
                                  "deep/er/post.md"]), min_size=1, max_size=4, unique=True)


# Content and feeds only, and derandomized: the PostgreSQL pass of CI would repeat the same
# examples on a slower database for nothing.
@pytest.mark.skipif(bool(os.environ.get("PUBLISHER_TEST_POSTGRES")),
                    reason="content and feeds only: runs in the SQLite pass")
@settings(derandomize=True, database=None, max_examples=400, deadline=None, print_blob=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.large_base_example])
@given(names=NAMES, data=st.data())
def test_generated_posts_never_crash_build_and_feeds_stay_clean(names, data):
    files = [data.draw(post_file(), label=name) for name in names]
    check_site(files, names)


@pytest.mark.slow
@settings(derandomize=False, database=None, max_examples=3000, deadline=None, print_blob=True,
          suppress_health_check=list(HealthCheck))
@given(names=NAMES, data=st.data())
def test_generated_posts_soak(names, data):
    files = [data.draw(post_file(), label=name) for name in names]
    check_site(files, names)


# Found by the generated posts: urllib raised ValueError ("Invalid IPv6 URL", "'i' does not
# appear to be an IPv4 or IPv6 address") from content.absolutize_url for a link, srcset or
# image whose host starts with '[', and build crashed with a traceback.
@pytest.mark.parametrize("front, body, warnings, problems", [
    ("", "[x](http://[i]/)\n", [], []),
    ("", "<a href='http://[::1'>x</a>\n", [], []),
    ("", '<img src="x.png" srcset="http://[i]/a.png 1x">\n', ["content/a.md: image not found: x.png"], []),
    ("image: 'http://[i]/p.png'\n", "ok\n", [], []),
    # not a URL a reader could load: the post is skipped by name (sanitize.url_allowed)
    ("heroImage: '//[x'\n", "ok\n", [],
     ["content/a.md: skipped: 'heroImage' should be an http(s) URL or a path, got '//[x'"]),
])
def test_malformed_bracketed_hosts_do_not_crash_build(tmp_path, front, body, warnings, problems):
    config = make_config(tmp_path / "site")
    (config.root / "content" / "a.md").write_text(
        "---\ntitle: T\npubDate: 2024-01-01\n" + front + "---\n" + body, encoding="utf-8")
    report = pipeline.build(config, NOW)
    assert feed_problems(config.output_dir) == []
    assert (report.problems, report.warnings) == (problems, warnings)  # only the local image that is not there


# --- 1,000 posts, 5% broken ------------------------------------------------------------------

BROKEN = [
    ("bad YAML", b"---\ntitle: [unclosed\npubDate: 2024-01-01\n---\nBody.\n", "not valid YAML"),
    ("no title", b"---\npubDate: 2024-01-01\n---\nBody.\n", "no 'title'"),
    ("bad date", b"---\ntitle: Bad date\npubDate: someday\n---\nBody.\n", "is not a date"),
    ("not UTF-8", b"---\ntitle: Caf\xe9\npubDate: 2024-01-01\n---\nBody.\n", "not UTF-8"),
    ("binary", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary"),
    ("no front matter", b"Just some text.\n", "no front matter"),
    ("list front matter", b"---\n- a\n- b\n---\nBody.\n", "not a mapping"),
    ("title is a list", b"---\ntitle: [a, b]\npubDate: 2024-01-01\n---\nBody.\n", "'title' should be text"),
    ("date out of range", b"---\ntitle: Old\npubDate: 1066-10-14\n---\nBody.\n", "out of range"),
    ("featured not a flag", b"---\ntitle: F\npubDate: 2024-01-01\nfeatured: maybe\n---\nB.\n",
     "'featured' should be true or false"),
]


def test_1000_posts_with_5_percent_broken_build_the_other_95_percent(tmp_path):
    rng = random.Random(1000)
    config = make_config(tmp_path / "site", feeds={"limit": 0})
    content = config.root / "content"
    broken_at = set(rng.sample(range(1000), 50))
    expected_skips = {}
    good = []
    for n in range(1000):
        folder = content / f"{2000 + n % 25}" / f"{n % 12:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"post-{n:04d}.md"
        rel = path.relative_to(config.root).as_posix()
        if n in broken_at:
            what, data, reason = BROKEN[len(expected_skips) % len(BROKEN)]
            path.write_bytes(data)
            expected_skips[rel] = reason
        else:
            tags = rng.sample(["python", "ops", "design", "C++", "Café", "../../etc"], 2)
            front = {"title": f"Post {n}: <b>{rng.choice(NASTY)}</b>",
                     "pubDate": f"{date(2000 + n % 25, 1 + n % 12, 1 + n % 28).isoformat()}"
                                f"T{n % 24:02d}:{n % 60:02d}:00Z",
                     "tags": tags}
            path.write_text("---\n" + yaml.safe_dump(front, allow_unicode=True) + "---\n"
                            f"Post {n} body with a [link](../other/) ]]> -- done.\n", encoding="utf-8")
            good.append(rel)

    result = run_cli(config.path, "build")
    assert result.returncode == 1  # done, but some posts were skipped
    # A build of 1,000 posts says how far it is too (cli._Progress: a line per tenth read)
    progress = [line for line in result.stderr.splitlines() if line.startswith("reading posts: ")]
    assert progress and progress[-1].startswith("reading posts: 1000 of 1000 (100%)")
    lines = [line for line in result.stderr.splitlines() if line not in progress]
    assert len(lines) == 50, result.stderr[-2000:]
    seen = {}
    for line in lines:
        rel, _sep, reason = line.partition(": skipped: ")
        assert rel in expected_skips, line
        assert expected_skips[rel] in reason, (line, expected_skips[rel])
        seen[rel] = reason
    assert set(seen) == set(expected_skips)
    assert "feeds: 950 posts" in result.stdout
    doc = json.loads((config.output_dir / "feed.json").read_bytes())
    assert len(doc["items"]) == 950
    assert feed_problems(config.output_dir) == []
