"""content/frontmatter.py: every front matter format, its errors with the file's line, and
every date form real posts carry."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from publisher.content.frontmatter import Skip, parse_date, read_tags, split_front_matter

UTC = timezone.utc


def skip_reason(text: str, **kw) -> str:
    with pytest.raises(Skip) as e:
        split_front_matter(text, **kw)
    return str(e.value)


# --- formats ---------------------------------------------------------------------------------

def test_yaml():
    meta, body = split_front_matter("---\ntitle: T\ndate: 2024-04-20\n---\n\nBody.\n")
    assert meta == {"title": "T", "date": date(2024, 4, 20)} and body == "Body."


def test_yaml_may_close_with_dots_as_jekyll_allows():
    assert split_front_matter("---\ntitle: T\n...\nBody")[0] == {"title": "T"}


def test_toml():
    meta, body = split_front_matter(
        "+++\ntitle = 'Hugo'\ndate = 2023-10-15T13:18:50+02:00\ntags = ['a', 'b']\n+++\nBody\n")
    assert meta["title"] == "Hugo" and meta["tags"] == ["a", "b"]
    assert meta["date"] == datetime(2023, 10, 15, 13, 18, 50, tzinfo=timezone(timedelta(hours=2)))
    assert body == "Body"


def test_json_object_at_the_top():
    meta, body = split_front_matter('{\n  "title": "J",\n  "tags": ["x"]\n}\n\nBody {not json}\n')
    assert meta == {"title": "J", "tags": ["x"]} and body == "Body {not json}"


def test_json_in_a_fence():
    meta, body = split_front_matter('---json\n{"title": "J", "date": "2023-07-01"}\n---\nBody')
    assert meta == {"title": "J", "date": "2023-07-01"} and body == "Body"


def test_pelican_header():
    text = ("Title: My super title\nDate: 2010-12-03 10:20\nAuthors: Alexis, Conan\n"
            "Summary: Short version\n    on two lines\n\nThe body: not a header.\n")
    meta, body = split_front_matter(text, key_value_header=True)
    assert meta == {"title": "My super title", "date": "2010-12-03 10:20",
                    "authors": "Alexis, Conan", "summary": "Short version\non two lines"}
    assert body == "The body: not a header."


def test_pelican_header_in_dashes():
    meta, body = split_front_matter("---\nTitle: T\nTags: a; b\n---\nBody", key_value_header=True)
    assert meta == {"title": "T", "tags": "a; b"} and body == "Body"


def test_an_empty_block_is_an_empty_mapping():
    assert split_front_matter("---\n---\nA Jekyll page.") == ({}, "A Jekyll page.")


def test_no_front_matter_is_an_empty_mapping():
    assert split_front_matter("# Just Markdown\n\ntext") == ({}, "# Just Markdown\n\ntext")


# --- errors, with the file's line ------------------------------------------------------------------

@pytest.mark.parametrize("text, reason", [
    ("---\ntitle: ok\ntags: [unclosed\n---\nx",
     "front matter is not valid YAML at line 3: "),
    ("+++\ntitle = 'T'\ndate = 2024-01-01\ntags = [unclosed\n+++\nx",
     "front matter is not valid TOML at line 4, column "),
    ("+++\ntitle = 'T'\ntitle = 'again'\n+++\nx",
     "front matter is not valid TOML at line 3, column "),
    ('---json\n{\n  "title": "T",\n  "date": 2024-01-01\n}\n---\nx',
     "front matter is not valid JSON at line 4, column 15: Expecting ',' delimiter"),
    ('{\n  "title": "T"\n  "date": "2024-01-01"\n}\nx',
     "front matter is not valid JSON at line 3, column 3: Expecting ',' delimiter"),
    ("---js\n{ title: 'T', date: new Date() }\n---\nx",
     "JavaScript front matter is not supported (---js)"),
    ("---\ntitle: T\n\nbody without a closing fence",
     "front matter opened with '---' at line 1 has no closing '---'"),
    ("+++\ntitle = 'T'\n---\nx", "front matter opened with '+++' at line 1 has no closing '+++'"),
    ("---\n- a\n- b\n---\nlist", "front matter is empty or not a mapping of keys"),
    ("---org\n#+TITLE: x\n---\n", "front matter format '---org' is not supported"),
])
def test_broken_front_matter_is_named_with_its_line(text, reason):
    assert skip_reason(text).startswith(reason), skip_reason(text)


# --- what reading may cost (issue 25) ----------------------------------------------------------

def _laughs(levels: int) -> str:
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return "\n".join(lines)


BOMB = "front matter refused: its aliases (*name) expand it to more than 100,000 values beyond those written"
DEEP = "front matter refused: nested more than 100 levels deep"


@pytest.mark.parametrize("text, reason", [
    ("---\ntitle: Bomb\ndate: 2024-01-01\n" + _laughs(9) + "\n---\nx", BOMB),
    ("---\ntitle: T\nx: &x [*x]\n---\nx",
     "front matter refused: an alias refers to a value that holds it (a recursive anchor)"),
    ("---\ntitle: T\nx: " + "[" * 500 + "]" * 500 + "\n---\nx", DEEP),
    ("---\ntitle: T\nx:\n" + "".join(" " * i + "- \n" for i in range(1, 300)) + "---\nx", DEEP),
    ("+++\ntitle = 'T'\nx = " + "[" * 5000 + "]" * 5000 + "\n+++\nx", DEEP),
    ("+++\ntitle = 'T'\nx = " + "[" * 200 + "]" * 200 + "\n+++\nx", DEEP),
    ("---json\n{\"title\": \"T\", \"x\": " + "[" * 5000 + "]" * 5000 + "}\n---\nx", DEEP),
    ('{"title": "T", "x": ' + "[" * 5000 + "]" * 5000 + "}\nx", DEEP),
    ('{"title": "T", "x": ' + "[" * 200 + "]" * 200 + "}\nx", DEEP),
])
def test_alias_bombs_and_deep_nesting_are_refused_by_name(text, reason):
    assert skip_reason(text).startswith(reason), skip_reason(text)


def test_aliases_and_nesting_real_posts_use_are_read():
    meta, _ = split_front_matter(
        "---\ntitle: T\nbase: &b {src: a.png, alt: A}\nimages: [*b, {<<: *b, alt: B}]\n"
        "x: " + "[" * 99 + "]" * 99 + "\nmany: &m [" + ", ".join(["w"] * 1000) + "]\n"
        "again: [" + ", ".join(["*m"] * 90) + "]\n---\nx")
    assert meta["images"] == [{"src": "a.png", "alt": "A"}, {"src": "a.png", "alt": "B"}]
    assert len(meta["again"]) == 90 and len(meta["again"][0]) == 1000  # 90,000 values: within limits


# --- dates -------------------------------------------------------------------------------------------

PARIS = ZoneInfo("Europe/Paris")


@pytest.mark.parametrize("value, expected", [
    ("2024-04-20", datetime(2024, 4, 20, tzinfo=PARIS)),
    ("2024-04-20T10:00:00Z", datetime(2024, 4, 20, 10, tzinfo=UTC)),
    ("2024-04-20T10:00:00.000Z", datetime(2024, 4, 20, 10, tzinfo=UTC)),
    ("2024-04-20 10:00:00 +0200", datetime(2024, 4, 20, 8, tzinfo=UTC)),
    ("2024-04-20 10:00:00 UTC", datetime(2024, 4, 20, 10, tzinfo=UTC)),
    ("2023-10-15T13:18:50", datetime(2023, 10, 15, 13, 18, 50, tzinfo=PARIS)),
    ("Jul 08 2022", datetime(2022, 7, 8, tzinfo=PARIS)),  # Astro's blog starter
    ("July 8, 2022", datetime(2022, 7, 8, tzinfo=PARIS)),
    ("July 8th, 2022", datetime(2022, 7, 8, tzinfo=PARIS)),
    ("2022/07/08", datetime(2022, 7, 8, tzinfo=PARIS)),
    ("2022/07/08 09:15", datetime(2022, 7, 8, 9, 15, tzinfo=PARIS)),
    ("2025.12.20", datetime(2025, 12, 20, tzinfo=PARIS)),  # a real Astro blog's pubDate
    ("2014-3-12 2:26", datetime(2014, 3, 12, 2, 26, tzinfo=PARIS)),  # a real Pelican blog's
    ("2014-12-4", datetime(2014, 12, 4, tzinfo=PARIS)),
    ("2022/7/8 9:15:30 +0200", datetime(2022, 7, 8, 7, 15, 30, tzinfo=UTC)),
    ("15 Oct 2023", datetime(2023, 10, 15, tzinfo=PARIS)),  # Hugo's list
    ("Sat, 20 Apr 2024 10:00:00 +0000", datetime(2024, 4, 20, 10, tzinfo=UTC)),  # RFC 2822
    ("Jul 08 2022 10:00 +0200", datetime(2022, 7, 8, 8, tzinfo=UTC)),
    ("2023-01-29 18:30:22 2023 -0800", datetime(2023, 1, 30, 2, 30, 22, tzinfo=UTC)),  # jekyllrb.com's
    (date(2024, 4, 20), datetime(2024, 4, 20, tzinfo=PARIS)),  # a YAML/TOML date
    (datetime(2024, 4, 20, 10, 0), datetime(2024, 4, 20, 10, tzinfo=PARIS)),  # local date-time
])
def test_date_forms(value, expected):
    parsed = parse_date(value, PARIS, "date")
    assert parsed == expected and parsed.tzinfo is not None


@pytest.mark.parametrize("value, reason", [
    ("next tuesday", "'date' is not a date: 'next tuesday' (expected e.g. 2024-04-20"),
    ("2024-02-30", "'date' is not a date: '2024-02-30'"),
    (True, "'date' is not a date: got True"),
    ("0999-01-01", "'date' is out of range: 999"),
])
def test_bad_dates_say_what_was_found(value, reason):
    with pytest.raises(Skip) as e:
        parse_date(value, UTC, "date")
    assert str(e.value).startswith(reason), str(e.value)


# --- tags --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("value, separator, expected", [
    ("a, b ,c", ",", ("a", "b", "c")),
    ("ruby static-sites", None, ("ruby", "static-sites")),  # Jekyll
    ("release notes", "", ("release notes",)),  # Hugo: one term
    ("one, two; three", ";,", ("one, two", "three")),  # Pelican: ';' first
    ("one, two", ";,", ("one", "two")),
    (["A", "a", " b "], ",", ("A", "b")),
    (2024, ",", ("2024",)),
])
def test_tags(value, separator, expected):
    assert read_tags(value, "tags", separator) == expected
