"""The flat YAML fast path (frontmatter._flat_yaml) reads what yaml.safe_load reads, or
gives the text back to it: generated front matter of the shapes real posts have (dates,
quotes, ':' and '#' in values, lists, booleans and nulls in YAML 1.1's spellings, numbers,
unicode), mixed with the shapes it must refuse (nesting, comments, escapes, block scalars,
anchors, tabs, CRLF, a BOM, repeated keys, invalid dates)."""

from __future__ import annotations

import math
from datetime import date, datetime

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from publisher.content import frontmatter
from publisher.content.frontmatter import Skip, _flat_yaml, split_front_matter


def typed(value):
    """A value with its type made part of equality (True == 1 and 1.0 == 1 in Python), a
    datetime with its UTC offset, and NaN equal to itself."""
    if isinstance(value, dict):
        return ("dict", [(typed(k), typed(v)) for k, v in value.items()])
    if isinstance(value, list):
        return ("list", [typed(v) for v in value])
    if isinstance(value, float) and math.isnan(value):
        return ("float", "nan")
    if isinstance(value, datetime):
        return ("datetime", value, value.utcoffset())
    return (type(value).__name__, value)


KEYS = st.sampled_from(["title", "date", "pubDate", "tags", "draft", "hero-image", "a_b", "on",
                        "yes", "No", "null", "2024", "x1", "ünï", "title"])
PLAIN_WORDS = st.sampled_from([
    "Hello", "world", "Hello, world", "C#", "a #b", "x:y", "http://example.org/a?b=c#d", "a: b",
    "b:", "2024-04-20", "2024-4-20", "2024-13-45", "2010-01-01T04:00:00.000Z",
    "2024-04-20 10:00:00 +02:00", "2024-04-20t10:00:00Z", "12:30", "1:30:00", "true", "True",
    "TRUE", "yes", "No", "on", "OFF", "y", "n", "null", "Null", "~", "", "0", "-5", "+5", "0x1F",
    "0o17", "017", "0b101", "1_000", "3.14", "-.5", ".inf", "-.Inf", ".NaN", "1e3", "6.8523015e+5",
    "- item", "-x", "?x", "? x", "[a]", "{a: 1}", "&anchor", "*alias", "!tag x", "|", ">",
    "'single'", '"double"', "it's", 'say "hi"', "%x", "@x", "`x`", "=", "<<", "a\\b",
    "ünïcode — 日本", "emoji 🎉", "trailing   ", "back\\slash", "a,b", "a [b]", "x  #y",
])
QUOTED = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=20).map(
        lambda t: '"' + t.replace("\\", "\\\\").replace('"', '\\"') + '"'),
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r"),
            max_size=20).map(lambda t: "'" + t.replace("'", "''") + "'"),
    st.sampled_from(['"a: b # c"', "'#'", '"2024-04-20"', '"yes"', '"\\u00e9"', '"tab\\t"',
                     '"x" # comment', "'a' b", '""', "''"]),
)
ITEMS = st.one_of(PLAIN_WORDS, QUOTED)
LISTS = st.lists(ITEMS, max_size=4).flatmap(
    lambda items: st.sampled_from([", ", ",", " , "]).map(lambda sep: "[" + sep.join(items) + "]"))
VALUES = st.one_of(PLAIN_WORDS, QUOTED, LISTS, st.sampled_from(["[]", "[ ]", "[a,]", "[[a]]",
                                                                 "{}", "[a, [b]]"]))
LINES = st.one_of(
    st.tuples(KEYS, VALUES).map(lambda kv: f"{kv[0]}: {kv[1]}"),
    st.tuples(KEYS, VALUES).map(lambda kv: f"{kv[0]}:  {kv[1]}  "),
    KEYS.map(lambda k: f"{k}:"),
    st.sampled_from(["", "# a comment", "  nested: 1", "- item", "key : spaced", "key:value",
                     "author:\n  name: Ann", "tags:\n- a\n- b", "body: |\n  text", "a:\tb",
                     "a: b\r", "---", "...", "%YAML 1.1", "a: &x 1", "b: *x", "? complex",
                     "a: 'multi\n  line'", 'a: "multi\n  line"', "a: plain\n  continued"]),
)
# Mostly `key: value` lines, so that many examples are read by the fast path itself.
LIKELY = st.sampled_from([
    "Hello, world", "C#", "x:y", "http://example.org/a?b=c#d", "2024-04-20", "2024-4-20",
    "2010-01-01T04:00:00.000Z", "2024-04-20 10:00:00 +02:00", "2024-04-20t10:00:00Z", "12:30",
    "true", "No", "on", "null", "~", "-5", "0x1F", "017", "1_000", "3.14", "-.5", ".NaN", "1e3",
    "it's", 'say "hi"', "ünïcode — 日本", "emoji 🎉", "a,b", "product management"])
SIMPLY_QUOTED = st.text(st.one_of(st.characters(min_codepoint=0x20, max_codepoint=0x7E,
                                                blacklist_characters='"\\'),
                                  st.characters(min_codepoint=0xA0, max_codepoint=0x3000)),
                        max_size=20).map(lambda t: '"' + t + '"')
FLAT_LINES = st.tuples(
    st.sampled_from(["title", "date", "tags", "draft", "id", "x-y"]),
    st.one_of(LIKELY, SIMPLY_QUOTED, PLAIN_WORDS, QUOTED,
              st.lists(st.one_of(LIKELY, SIMPLY_QUOTED), max_size=4).map(
                  lambda items: "[" + ", ".join(items) + "]")))
SOURCES = st.one_of(
    st.lists(LINES, min_size=0, max_size=8).map("\n".join),
    st.lists(FLAT_LINES, min_size=1, max_size=5, unique_by=lambda kv: kv[0]).map(
        lambda kvs: "\n".join(f"{k}: {v}" for k, v in kvs)),
)


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(SOURCES)
def test_the_fast_path_reads_what_safe_load_reads_or_gives_up(source):
    flat = _flat_yaml(source)
    if flat is None:
        return  # PyYAML reads it, as before
    assert typed(flat) == typed(yaml.safe_load(source))


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(SOURCES, st.booleans(), st.booleans(), st.sampled_from(["body\n", "", "\n\n  indented\n"]))
def test_split_front_matter_is_the_same_with_and_without_the_fast_path(source, bom, crlf, body):
    text = ("\ufeff" if bom else "") + "---\n" + source + "\n---\n" + body
    if crlf:
        text = text.replace("\n", "\r\n")

    def split():
        try:
            meta, rest = split_front_matter(text)
        except Skip as e:
            return "skip", str(e)
        return typed(meta), rest

    fast = split()
    original = frontmatter._flat_yaml
    frontmatter._flat_yaml = lambda source: None
    try:
        assert fast == split()
    finally:
        frontmatter._flat_yaml = original


@pytest.mark.parametrize("source, expected", [
    ('title: "Post 1: Product, part 1"\npubDate: 2010-01-01T04:00:00.000Z\n'
     'tags: ["security", "design"]\nfeatured: false',
     {"title": "Post 1: Product, part 1", "pubDate": datetime.fromisoformat("2010-01-01T04:00:00+00:00"),
      "tags": ["security", "design"], "featured": False}),
    ("title: Hello, world\ndate: 2024-04-20\ndraft: yes\ntags: [astro, blogging]\nid: 0x1F",
     {"title": "Hello, world", "date": date(2024, 4, 20), "draft": True,
      "tags": ["astro", "blogging"], "id": 31}),
    ("title: 'C# and #hash'\nupdated: 2024-04-20 10:00:00 +02:00\nauthor:\ncover: ~",
     {"title": "C# and #hash", "updated": datetime.fromisoformat("2024-04-20T10:00:00+02:00"),
      "author": None, "cover": None}),
])
def test_the_shapes_real_posts_have_take_the_fast_path(source, expected):
    """The path is taken (not only proven harmless) for the front matter most posts have."""
    assert typed(_flat_yaml(source)) == typed(expected) == typed(yaml.safe_load(source))


@pytest.mark.parametrize("source", [
    "title: x #comment", "tags:\n- a", "on: 1", "a: 1\na: 2", "a: 2024-13-45", "a: 'it''s'",
    'a: "esc\\n"', "a: |\n  b", "a: [a,]", "a:\tb", "a: b\r", "a: &x 1", 'a: "\x85"',
    "a: x\u2028y",  # YAML 1.1 line breaks, folded even inside quotes
])
def test_what_the_fast_path_leaves_to_pyyaml(source):
    assert _flat_yaml(source) is None


@settings(max_examples=2000, deadline=None)
@given(st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x2030), max_size=12))
def test_clean_texts_fast_path_removes_what_the_full_one_removes(text):
    # text.clean_text returns printable ASCII as it is; everything else takes the full path.
    from publisher.content.text import _XML_ILLEGAL, clean_text

    full = _XML_ILLEGAL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    assert clean_text(text) == full
