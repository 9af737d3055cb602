"""content/ -> Post objects.

Reading is cheap and total: every file is read and validated, every problem is collected as
one line naming the file, and a broken file never stops the others. Rendering Markdown to
HTML is a separate step (`render_html`), done only for the posts that reach a feed, and
cached by content hash by the caller. A post keeps only its metadata: its Markdown body is
read again from its file when it is rendered (`Post.body`), and checked to be the bytes the
post was parsed from, so a large site's posts that no feed carries in full never stay in
memory with their bodies.

The scan cache: `load_posts(..., cache=...)` skips re-reading and re-parsing every file whose
path, size and mtime_ns match what the previous scan stored, as long as nothing else that
parsing depends on changed (cache.scan_fingerprint: the config keys that shape a Post, and this
module's own code). Residual risk, as for make and rsync: a rewrite that keeps the size AND the mtime to the
nanosecond (e.g. a tool that restores mtimes, or an edit within one coarse filesystem clock
tick) goes unnoticed until the file changes again or the cache is dropped.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from functools import partial
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, NamedTuple
from urllib.parse import unquote, urlsplit

from ..config import Config
from ..errors import ConfigError, ContentError
from ..engines import engine_for
from ..engines.rules import Engine, Fields, Source, same_language, source_of
from .enclosures import read_enclosure
from .files import FilesSignature, post_files
from .frontmatter import (Skip, first_key, frontmatter_date_key, parse_date, read_author, read_flag, read_text,
                          split_front_matter)
from .links import absolutize_url
from .markup import RENDERER_VERSION, summary_of
from .parallel import split_map
from .sanitize import url_allowed
from . import rst
from .syntax import is_mdx, source_format, syntax_of
from .text import clean_text
from .urls import post_url


# What one post may ask for: far past what real posts hold, short of what makes a build
# blow up. Every tag makes three feeds, each listing every tag of its posts: a post with
# n tags writes 3n files of n categories each (4,000 tags wrote 12,003 files, 1.3 GB). The
# HTML's nesting is bounded where it is cleaned (sanitize.MAX_HTML_DEPTH); cleaning costs
# ~1 s a MB at worst. A post past a limit is skipped, by name: published in part, it would
# not be the post its engine publishes.
MAX_POST_BYTES = 2 << 20  # the file, front matter and body
MAX_TERMS = 100  # tags, and categories, each

@dataclass(frozen=True)
class Post:
    source: str  # path relative to the site folder, for messages
    slug: str
    title: str
    published: datetime  # timezone-aware
    updated: datetime | None
    summary: str  # plain text
    author: str
    author_email: str
    tags: tuple[str, ...]
    featured: bool
    draft: bool  # held back whatever the date (draft, published: false, Status: draft...)
    image: str  # absolute URL, or ""
    id: str
    url: str  # absolute permalink
    content_hash: str  # sha256 of the raw file bytes
    categories: tuple[str, ...] = ()
    lang: str = ""  # the post's language (BCP 47); site.language unless the post says otherwise
    translation_key: str = ""  # what a translation shares with its original (path w/o language)
    expires: datetime | None = None  # Hugo's expiryDate: held back from then on
    enclosure: tuple = ()  # (URL, length in bytes or 0, MIME type) or (): see enclosures.py
    # The Markdown source, cleaned: read with the front matter (read_post), or, for a post
    # load_posts gives, from the file on first use (see `body`). Excluded from ==: content_hash
    # already says whether two bodies are the same.
    _body: str | None = field(default=None, repr=False, compare=False)
    _path: str = field(default="", repr=False, compare=False)  # the file, to read the body
    _dialect: str = field(default="auto", repr=False, compare=False)  # how to split its body

    @property
    def body(self) -> str:
        """The Markdown source. Most posts of a large site never need it (only those that
        reach a feed uncached are rendered), so a post load_posts gives (parsed now or
        restored from the scan cache) reads it only when asked."""
        if self._body is None:
            object.__setattr__(self, "_body", _read_body(self))
        return self._body

    def is_translation(self, config: Config) -> bool:
        """True for a post in another language than site.language: it goes in the feeds
        under <lang>/, never in the main feeds or the newsletter."""
        return not same_language(self.lang, config.site.language)

    @property
    def modified(self) -> datetime:
        """The date feeds show as 'updated': the later of updated and published."""
        if self.updated and self.updated > self.published:
            return self.updated
        return self.published

    @property
    def render_key(self) -> str:
        """Cache key for rendered HTML: what render_html's output depends on. The file's hash
        stands for the body, so the key is known without reading the body."""
        h = hashlib.sha256()
        for part in (RENDERER_VERSION, self.url, self.content_hash):
            h.update(part.encode("utf-8", "surrogatepass"))
            h.update(b"\0")
        return h.hexdigest()


class ScanEntry(NamedTuple):
    """What the scan cache keeps per file (publisher.state stores these columns as they are)."""

    size: int
    mtime_ns: int
    content_hash: str
    post: str | None  # the parsed Post fields as JSON (no body), or None for a skipped file
    problem: str | None  # why the file is skipped, or None for a post


@dataclass
class LoadResult:
    posts: list[Post] = field(default_factory=list)  # published, newest first
    held_back: list[Post] = field(default_factory=list)  # drafts and future posts
    problems: list[str] = field(default_factory=list)  # one line per skipped file
    # With a scan cache: what to store back (new or changed files) and what to drop
    # (files gone), keyed by path relative to the site folder; and how many files were
    # taken from the cache without being read.
    cache_changed: dict[str, ScanEntry] = field(default_factory=dict)
    cache_removed: list[str] = field(default_factory=list)
    cache_hits: int = 0
    # What the scan saw of the files, before reading any (see files_signature).
    files_signature: str = ""


def _source(path: Path, config: Config) -> str:
    try:
        return str(path.relative_to(config.root))
    except ValueError:
        return str(path)


def read_post(path: Path, config: Config, raw: bytes | None = None) -> Post:
    """Read one file as a Post, or raise Skip with the reason, phrased for the user."""
    if raw is None:
        raw = path.read_bytes()
    return _parse_post(path, config, raw, hashlib.sha256(raw).hexdigest())


class NotAPost(Exception):
    """The file is a page of the site (a nanoc item that is no article...): no post, no noise."""


def _parts(path: Path, config: Config) -> tuple[str, ...]:
    try:
        return path.relative_to(config.content_dir).parts
    except ValueError:
        return (path.name,)


def _parse_post(path: Path, config: Config, raw: bytes, content_hash: str,
                located: tuple[tuple[str, ...], str] | None = None) -> Post:
    """`located`: (path parts under content.dir, path for messages) when the caller has them
    (load_posts does, from its walk: two pathlib relative_to calls per file less)."""
    if b"\0" in raw[:8192]:
        raise Skip("binary file, not Markdown")
    if len(raw) > MAX_POST_BYTES:
        raise Skip(f"{len(raw) / (1 << 20):.1f} MB: a post may be at most {MAX_POST_BYTES >> 20} MB")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise Skip(f"not UTF-8 (invalid byte at offset {e.start})") from None
    if not _clean_already(raw):
        text = clean_text(text)
    engine = engine_for(config)
    fmt = source_format(path.name)
    meta, body = _split(text, fmt, engine.name)
    parts, source = located or (_parts(path, config), _source(path, config))
    src = source_of(parts)
    if meta:
        meta = engine.data(meta, path, src, config)
    if not engine.is_post(meta, src, path) or (fmt == "html" and not meta):
        raise NotAPost()  # (Hugo copies an .html file without front matter as it is: no page)
    if not meta:
        untitled = engine.untitled(body, src, path)
        if text.startswith(("---", "+++")) and not untitled:
            raise Skip("front matter is empty or not a mapping of keys")
        if engine.front_matter_required and not untitled:
            raise Skip("no front matter (expected a '---' block with at least 'title' and 'pubDate')")
        meta = {}

    title = read_text(meta.get("title"), "title") or engine.untitled(body, src, path)
    if not title:
        raise Skip("front matter has no 'title'")
    title = re.sub(r"\s+", " ", title)
    published, dated = _published(meta, src, path, engine, config)
    upd_key, upd_value = frontmatter_date_key(meta, engine.updated_keys)
    updated = parse_date(upd_value, config.tz, upd_key) if upd_value is not None else None
    exp_value = meta.get("expiryDate", meta.get("expirydate"))
    expires = parse_date(exp_value, config.tz, "expiryDate") if exp_value not in (None, "") else None

    lang = engine.lang(meta, src, config)
    translation = not same_language(lang, config.site.language)
    categories = engine.categories(meta, src)
    tags = engine.tags(meta, src)
    for kind, terms in (("tags", tags), ("categories", categories)):
        if len(terms) > MAX_TERMS:
            raise Skip(f"{len(terms):,} {kind}: a post may have at most {MAX_TERMS}")
    slug = engine.slug(meta, src, title)
    fields = Fields(slug=slug, stem=engine.stem(meta, src), title_slug=engine.title_slug(title),
                    section=src.section, categories=engine.categories_path(categories),
                    lang=lang if translation else "", path=engine.path(meta, src),
                    basename=engine.basename(src), url_date=engine.url_date_parts(meta, src))
    url = _without_dot_segments(
        post_url(config, engine, fields, dated, engine.explicit_path(meta, src, fields)), config)
    _k, summary_value = first_key(meta, "description", "summary", "excerpt")
    summary = (re.sub(r"\s+", " ", read_text(summary_value, "description"))
               or summary_of(body, config, mdx=is_mdx(path.name, engine.name), fmt=fmt))
    author, author_email = read_author(meta.get("author", meta.get("authors")), config)
    image_key, image_value = first_key(meta, "image", "heroImage", "cover")
    if isinstance(image_value, dict):  # {src: ..., alt: ...} as some themes write it
        image_value = image_value.get("src") or image_value.get("url")
    image = read_text(image_value, image_key)
    if image:
        image = _image_url(image, url, image_key)
    post_id = re.sub(r"\s+", " ", read_text(meta.get("id"), "id")) or url  # one line, as feeds need
    return Post(
        source=source,
        slug=slug,
        title=engine.shown_title(title, config),
        published=published,
        updated=updated,
        summary=summary,
        author=author,
        author_email=author_email,
        tags=tags,
        featured=read_flag(meta.get("featured"), "featured"),
        draft=bool(engine.held_back(meta, src)),
        image=image,
        id=post_id,
        url=url,
        content_hash=content_hash,
        categories=categories,
        lang=lang,
        translation_key=engine.translation_key(meta, src),
        expires=expires,
        enclosure=read_enclosure(meta, path, url, config),
        _body=body,
        _path=str(path),
        _dialect=engine.name,
    )


# Bytes that UTF-8 text clean_text changes must hold one of: a C0 control but tab and line
# feed, a carriage return (\r\n and \r become \n), DEL; a C1 control (C2 80-9F: any C2
# byte is looked at again), or a noncharacter (U+FDD0-FDEF: EF B7 xx; U+FFFE, U+FFFF).
# Surrogates cannot be in UTF-8 that decodes.
_CONTROL_BYTES = bytes([*range(0x09), 0x0B, 0x0C, *range(0x0D, 0x20), 0x7F])


def _clean_already(raw: bytes) -> bool:
    """Whether the text of `raw` (UTF-8 that decodes) is what clean_text returns: checked on
    the bytes (~2 instructions a byte), where clean_text looks at every character of the
    decoded text (a post's clean_text was ~7% of a cold build's instructions)."""
    return (len(raw.translate(None, _CONTROL_BYTES)) == len(raw) and b"\xc2" not in raw
            and b"\xef\xb7" not in raw and b"\xef\xbf\xbe" not in raw and b"\xef\xbf\xbf" not in raw)


def _image_url(value: str, url: str, key: str) -> str:
    """The front matter's image as an absolute http(s) URL: it goes out as media:content and
    as an <img src> in mail and on the archive pages (the blog's own domain), so a
    `javascript:` or `data:` one refuses the post, as an enclosure's does (enclosures.py)."""
    absolute = absolutize_url(value, url)
    if not absolute.startswith(("http://", "https://")) or not url_allowed(value):
        raise Skip(f"'{key}' should be an http(s) URL or a path, got {value[:80]!r}")
    return absolute


def _without_dot_segments(url: str, config: Config) -> str:
    """`url` with its '.' and '..' path segments (%2e too) resolved as a browser resolves them
    (an explicit `url: /a/../b` is published as /b); a path that climbs out of site.url's own
    path refuses the post."""
    if "/." not in url and "/%2" not in url:
        return url  # (a dot segment starts after a '/' with '.' or '%2e': most URLs have none)
    parts = urlsplit(url)
    segments = parts.path.split("/")
    if not any(unquote(s) in (".", "..") for s in segments):
        return url
    kept: list[str] = []
    for i, segment in enumerate(segments[1:], 1):
        dots = unquote(segment)
        if dots == "..":
            if kept:
                kept.pop()
        elif dots != ".":
            kept.append(segment)
            continue
        if i == len(segments) - 1:
            kept.append("")  # '/a/b/..' is '/a/', a folder
    resolved = parts._replace(path="/" + "/".join(kept)).geturl()
    if not (resolved + "/").startswith(config.site.url + "/") and url.startswith(config.site.url + "/"):
        raise Skip(f"'url' leads out of the site ({config.site.url}): {parts.path[:80]!r}")
    return resolved


def _published(meta: dict, src: Source, path: Path, engine: Engine,
               config: Config) -> tuple[datetime, datetime]:
    """(published, dated): the front matter's date (its aliases, in the engine's order), else
    the file name's YYYY-MM-DD- prefix. A later `publishDate` (Hugo's "not before") wins: the
    post is published then, and held back until then; its URL's date stays the date (Hugo's
    :year/:month/:day are .Date's, not .PublishDate's)."""
    key, value = frontmatter_date_key(meta, engine.date_keys)
    if value is None:
        from_path = engine.date_from_path(src, path)
        where = "file name"
        if from_path is None:
            from_path, where = engine.date_from_url(meta), "path"
        if from_path is None:
            raise Skip(engine.undated)
        dated = engine.shown(parse_date(from_path, engine.date_zone(from_path, config), where), config)
        return dated, dated
    zone = engine.timestamp_zone(config)
    dated = published = parse_date(value, engine.date_zone(value, config), key, timestamp_tz=zone)
    embargo = meta.get("publishDate")
    if key != "publishDate" and embargo not in (None, "") and not isinstance(embargo, bool):
        published = max(published, parse_date(embargo, engine.date_zone(embargo, config), "publishDate",
                                               timestamp_tz=zone))
    return engine.shown(published, config), engine.shown(dated, config)


def _read_body(post: Post) -> str:
    """The body of a post restored from the scan cache, from its file, which must still hold
    the bytes the post was parsed from (else its metadata and body would disagree)."""
    try:
        raw = Path(post._path).read_bytes()
    except OSError as e:
        raise ContentError(f"{post.source}: cannot read: {e.strerror or e}") from e
    if hashlib.sha256(raw).hexdigest() != post.content_hash:
        raise ContentError(
            f"{post.source}: changed while publisher was running (expected the bytes it "
            "scanned a moment ago); run again to pick up the change"
        )
    text = raw.decode("utf-8-sig")
    return _split(text if _clean_already(raw) else clean_text(text), source_format(post._path), post._dialect,
                  load=False)[1]


def _split(text: str, fmt: str, dialect: str, load: bool = True) -> tuple[dict, str]:
    """(front matter, body) of a post file of format `fmt` (syntax.source_format): a reST
    post's metadata is its title and field list, and its body the whole document (rst.py)."""
    if fmt == "rst":
        return rst.read(text) if load else ({}, text)
    syntax = syntax_of(dialect)
    return split_front_matter(text, load=load, key_value_header=syntax.key_value_header, js_yaml=syntax.js_yaml)


# --- the scan cache -----------------------------------------------------------------------

# Post fields stored as they are; the dates, tags and content hash are handled apart.
_PLAIN_FIELDS = ("source", "slug", "title", "summary", "author", "author_email", "featured",
                 "draft", "image", "id", "url", "lang", "translation_key")


def _post_json(post: Post) -> str:
    data: dict[str, Any] = {name: getattr(post, name) for name in _PLAIN_FIELDS}
    data["published"] = post.published.isoformat()
    data["updated"] = post.updated.isoformat() if post.updated else None
    data["tags"] = list(post.tags)
    data["categories"] = list(post.categories)
    data["expires"] = post.expires.isoformat() if post.expires else None
    data["enclosure"] = list(post.enclosure)
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def _post_from_json(text: str, content_hash: str, path: str, dialect: str) -> Post:
    data = json.loads(text)
    updated = data["updated"]
    expires = data["expires"]
    # isoformat keeps the UTC offset, so dates come back as the same instants with the
    # same offsets (a named zone becomes its fixed offset at that instant).
    return Post(
        **{name: data[name] for name in _PLAIN_FIELDS},
        published=datetime.fromisoformat(data["published"]),
        updated=datetime.fromisoformat(updated) if updated else None,
        tags=tuple(data["tags"]),
        categories=tuple(data["categories"]),
        expires=datetime.fromisoformat(expires) if expires else None,
        enclosure=tuple(data.get("enclosure") or ()),
        content_hash=content_hash,
        _path=path,
        _dialect=dialect,
    )


def is_held_back(post: Post, now: datetime) -> bool:
    """A draft, a post dated in the future, or one past its expiryDate (Hugo)."""
    return post.draft or post.published > now or (post.expires is not None and post.expires <= now)


def require_content_dir(config: Config) -> None:
    """A missing or unreadable content.dir is a config error, raised before anything is
    written: a typo or an unmounted disk must never empty the published feeds."""
    content_dir = config.content_dir
    try:
        with os.scandir(content_dir):
            pass
    except FileNotFoundError:
        reason = "does not exist"
    except NotADirectoryError:
        reason = "is not a folder"
    except OSError as e:
        reason = f"cannot be read ({e.strerror or type(e).__name__})"
    else:
        return
    raise ConfigError(
        f"{config.path}: content.dir: the posts folder {str(content_dir)!r} {reason}; nothing "
        "was written (the feeds stay as they are)")


def _kept_from_cache(cache: Mapping[str, ScanEntry] | None, folder: str, seen: set[str],
                     result: LoadResult, config: Config, now: datetime) -> int:
    """The scan cache's entries under `folder` (an unreadable folder), kept as they are.
    Returns how many are posts; they are added to the result as if read again."""
    if not cache:
        return 0
    prefix = folder.rstrip(os.sep) + os.sep
    kept = 0
    for rel, entry in cache.items():
        if not rel.startswith(prefix):
            continue
        seen.add(rel)  # so the cache entry is not dropped either
        if entry.post is not None:
            post = _post_from_json(entry.post, entry.content_hash, os.path.join(config.root, rel),
                                   config.content.dialect)
            if is_held_back(post, now):
                result.held_back.append(post)
            else:
                result.posts.append(post)
            kept += 1
    return kept


def _read_file(config: Config, cached: bool, item: tuple[str, tuple[str, ...], str]) -> tuple:
    """One file to read and parse, for load_posts (and its worker process: the answer pickles):
    ("post", Post, content_hash, the scan cache's JSON of it if `cached`, else None), ("skip",
    reason, content_hash), ("not a post", None, content_hash) or ("unreadable", strerror). Any
    other exception is raised, as ever."""
    path_str, parts, rel = item
    path = Path(path_str)
    try:
        with open(path_str, "rb") as f:
            raw = f.read()
    except OSError as e:
        return ("unreadable", e.strerror)
    content_hash = hashlib.sha256(raw).hexdigest()
    try:
        post = _parse_post(path, config, raw, content_hash, (parts, rel))
    except NotAPost:
        return ("not a post", None, content_hash)
    except Skip as e:
        return ("skip", str(e), content_hash)
    # The post is kept without its body (~7 KB of Markdown, twice that as a str holding one
    # character past Latin-1: most of a cold build's memory, 140 MB at 20,000 posts), by
    # this process as by the parse worker (which would also pickle it: ~30 ms a 1,000
    # posts). Post.body reads it again from the file if it is ever needed: only the posts a
    # feed carries in full are rendered (~300 of a 2,000-post site), ~50 us each.
    object.__setattr__(post, "_body", None)
    return ("post", post, content_hash, _post_json(post) if cached else None)


def load_posts(config: Config, now: datetime, *,
               cache: Mapping[str, ScanEntry] | None = None,
               meanwhile: Callable[[], Any] | None = None) -> LoadResult:
    """Read every post; split into published and held back; collect one line per problem.

    With `cache` (the scan cache's entries under the current cache.scan_fingerprint, by path
    relative to the site folder), a file whose size and mtime_ns match its entry is not read
    at all; the result then says what to store back and what to drop. Whether a post is
    published or held back is decided here on every call, never cached: it depends on `now`.

    `meanwhile()` is called once the files are listed, while a worker process (if any) parses
    (content/parallel.py); cache.open_and_load_site creates the state database then."""
    result = LoadResult()
    require_content_dir(config)
    signature = FilesSignature(config.content_dir, config)
    seen: set[str] = set()
    # Each file's path for messages, as _source gives it, without a pathlib call per file.
    base = _source(config.content_dir, config)
    unreadable: list[tuple[tuple[str, ...], str]] = []
    refused: list[tuple[tuple[str, ...], str]] = []
    walked = post_files(config, unreadable, refused)
    _report_out_of_sight(config, now, cache, base, unreadable, refused, seen, result)
    # First the stat of every file and the scan cache's answer, then the files to read are
    # read and parsed (by two processes on a large site: parallel.py), then everything is
    # taken in walk order, so messages and duplicates come out as from one serial pass.
    pending, to_read = _plan_reads(walked, base, cache, signature, seen)
    read = iter(split_map(partial(_read_file, config, cache is not None), to_read,
                          meanwhile=meanwhile, label="reading posts"))
    site = _Admitted(now, result)
    for rel, entry, found in pending:
        post = _take(rel, entry, found, read, cache, config.content.dialect, result)
        if post is not None:
            site.admit(rel, post)
    if cache is not None:
        result.cache_removed = [rel for rel in cache if rel not in seen]
    result.files_signature = signature.hexdigest()
    result.posts.sort(key=lambda p: (p.published, p.url), reverse=True)
    return result


def _report_out_of_sight(config: Config, now: datetime, cache: Mapping[str, ScanEntry] | None,
                         base: str, unreadable: list[tuple[tuple[str, ...], str]],
                         refused: list[tuple[tuple[str, ...], str]], seen: set[str],
                         result: LoadResult) -> None:
    """load_posts: a line for each post file linked out of the site (never read) and each
    folder that cannot be listed; such a folder's posts stand in from the scan cache."""
    for parts, real in refused:
        result.problems.append(f"{os.path.join(base, *parts)}: skipped: a symbolic link out of the site "
                               f"folder (to {real}): not read")
    for parts, reason in unreadable:
        # Its posts are not gone, only out of sight: the scan cache's copies of them stand
        # in, so a permission slip never takes posts out of the published feeds.
        folder = os.path.join(base, *parts)
        kept = _kept_from_cache(cache, folder, seen, result, config, now)
        result.problems.append(
            f"{folder}: folder cannot be read ({reason}); "
            + (f"its {kept} post{'' if kept == 1 else 's'} kept as last read" if kept
               else "no post from it was ever read"))


def _plan_reads(walked: list[tuple[tuple[str, ...], os.DirEntry]], base: str,
                cache: Mapping[str, ScanEntry] | None, signature: FilesSignature, seen: set[str],
                ) -> tuple[list[tuple[str, os.DirEntry, Any]], list[tuple[str, tuple[str, ...], str]]]:
    """load_posts: each walked file's stat and the scan cache's answer: (pending, to_read).
    pending holds (path for messages, entry, what stands for the file: the cache's entry,
    the stat of a file to read, or the message of a failed stat), in walk order."""
    pending: list[tuple[str, os.DirEntry, Any]] = []
    to_read: list[tuple[str, tuple[str, ...], str]] = []
    for parts, entry in walked:
        rel = os.path.join(*parts) if base == "." else os.path.join(base, *parts)
        seen.add(rel)
        try:
            st = entry.stat()
        except OSError as e:
            signature.add(parts, None)
            pending.append((rel, entry, f"{rel}: skipped: cannot read: {e.strerror}"))
            continue
        signature.add(parts, st)
        cached = cache.get(rel) if cache is not None else None
        if cached is not None and cached.size == st.st_size and cached.mtime_ns == st.st_mtime_ns:
            pending.append((rel, entry, cached))
        else:
            # stat before read: if the file changes in between, the stored stat is older
            # than the bytes, so the next scan reads the file again.
            pending.append((rel, entry, st))
            to_read.append((entry.path, parts, rel))
    return pending, to_read


def _take(rel: str, entry: os.DirEntry, found: Any, read: Iterator, cache: Mapping[str, ScanEntry] | None,
          dialect: str, result: LoadResult) -> Post | None:
    """load_posts: the post a pending file gives (from the scan cache, or the next outcome of
    `read`), or None with its problem reported; what the scan cache must store is recorded."""
    if isinstance(found, str):  # the stat failed
        result.problems.append(found)
        return None
    if isinstance(found, ScanEntry):
        result.cache_hits += 1
        if found.post is None:
            if found.problem is not None:
                result.problems.append(f"{rel}: skipped: {found.problem}")
            return None
        return _post_from_json(found.post, found.content_hash, entry.path, dialect)
    st = found
    outcome = next(read)
    kind = outcome[0]
    if kind == "unreadable":
        result.problems.append(f"{rel}: skipped: cannot read: {outcome[1]}")
        return None
    content_hash = outcome[2]
    if kind == "not a post":
        if cache is not None:
            result.cache_changed[rel] = ScanEntry(st.st_size, st.st_mtime_ns, content_hash, None, None)
        return None
    if kind == "skip":
        result.problems.append(f"{rel}: skipped: {outcome[1]}")
        if cache is not None:  # cached too, so the problem is reported every run
            result.cache_changed[rel] = ScanEntry(st.st_size, st.st_mtime_ns, content_hash, None, outcome[1])
        return None
    if cache is not None:
        result.cache_changed[rel] = ScanEntry(st.st_size, st.st_mtime_ns, content_hash, outcome[3], None)
    return outcome[1]


class _Admitted:
    """load_posts: the posts taken so far, by URL and by id; the first file of a URL or an id
    wins, the others are skipped by name; each post published or held back at `now`."""

    def __init__(self, now: datetime, result: LoadResult):
        self.now, self.result = now, result
        self.by_url: dict[str, Post] = {}
        self.by_id: dict[str, Post] = {}

    def admit(self, rel: str, post: Post) -> None:
        twin = self.by_url.get(post.url)
        if twin is not None:
            self.result.problems.append(
                f"{rel}: skipped: slug '{post.slug}' gives the same URL as {twin.source} ({post.url})")
            return
        twin = self.by_id.get(post.id)
        if twin is not None:  # an `id` copied with a file: one id, one post
            self.result.problems.append(f"{rel}: skipped: id '{post.id}' is already the id of {twin.source}")
            return
        self.by_url[post.url] = post
        self.by_id[post.id] = post
        (self.result.held_back if is_held_back(post, self.now) else self.result.posts).append(post)
