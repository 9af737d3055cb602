"""Which feeds must be rendered and written again, and the HTML and entries that need not be:

- the render cache (`CachedRenderer`): an unchanged post is never rendered twice;
- kept feed entries (`FeedFragments`): a build after one new post serialises only its entries;
- feed fingerprints (`FeedCache`, `FeedSelection`): only the feed sets whose posts, config or
  code changed are rendered and written, and a build with nothing new renders nothing.

pipeline.write_site_feeds asks, in this order: FeedCache(...).unchanged(), .selection() (its
renderer and the feed sets to write), and, once written, .record(). The storage is cache.py's
CacheStorage. Imported by the idle run's shortcut's fallbacks: its imports stay cheap, and
content/ and feeds/ are imported where they are used.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import MutableMapping
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, NamedTuple

from .cache import CacheStorage, scan_fingerprint, stat_files

if TYPE_CHECKING:
    from .config import Config
    from .content import LoadResult, Post
    from .content.links import SiteIndex


# --- the render cache -----------------------------------------------------------------------
# Keyed by content.cache_key (the post's URL and bytes, and the Markdown engine's config keys)
# and, with a site index, links.Prepared.key (what the HTML takes from other posts and files).

class CachedRenderer:
    """Markdown -> the HTML a feed carries (rendered, then feeds.safe_html: sanitised) through
    the state's cache: an unchanged post is never rendered or sanitised twice, and both happen
    in the forked worker's share too (render_ahead). The key names the sanitiser's version.

    `prefetch` looks up every post that may reach a feed at once (a query per post meant
    ~300 round trips for a 2,000-post site with 40 tags); a post outside the prefetched set
    is looked up on its own. Rendering is cheap (cmark-gfm: ~0.2 ms for a 7 KB post), so it
    happens when a post is asked for, or, for many posts at once, in `render_ahead`."""

    def __init__(self, state: CacheStorage | None, config: Config | None = None,
                 site: SiteIndex | None = None):
        self.state = state
        self.config = config
        self.site = site
        self.rendered: dict[str, str] = {}  # new renders, stored at the end
        self.cached: dict[str, str] = {}  # prefetched HTML
        self.ahead: dict[str, str] = {}  # rendered by render_ahead, not asked for yet
        self.looked_up: set[str] = set()  # keys already asked of the state
        # links.Prepared.key by (url, content_hash), as FeedSelection found it without
        # preparing the post again.
        self.prepared_keys: dict[tuple[str, str], str] = {}
        self._sanitizer: str | None = None  # part of every key (see key)
        self._keys: dict[tuple[str, str], str] = {}  # (url, content_hash) -> key, once known
        self.hits = 0
        self.misses = 0

    def key(self, post: Post) -> str:
        """The engine's key, and with a `site` index what the post's HTML takes from other
        posts and files (the URLs its links resolve to, its images' content): links.Prepared.key."""
        memo = (post.url, post.content_hash)  # what the key depends on, besides the config
        if memo in self._keys:
            return self._keys[memo]
        # lazy: content/ (PyYAML, cmarkgfm, nh3: ~60 ms), which the idle shortcut must not pay
        from .content import cache_key

        if self._sanitizer is None:
            import nh3  # lazy: compiled, ~2 ms; feeds/ sanitises with it anyway

            from .content.sanitize import SANITIZER_VERSION

            # Whose sanitising the cached HTML went through: an upgrade of nh3 or of our
            # rules (a fixed bypass, say) never reuses HTML an older one cleaned.
            self._sanitizer = f"nh3 {nh3.__version__} rules {SANITIZER_VERSION}"
        key = f"{cache_key(post, self.config)}\0{self._sanitizer}"
        if self.site is not None:
            prepared = self.prepared_keys.get((post.url, post.content_hash))
            if prepared is None:
                prepared = self.site.prepare(post).key
            key += f"\0{prepared}"
        self._keys[memo] = key = hashlib.sha256(key.encode()).hexdigest()
        return key

    def _render(self, post: Post) -> str:
        # lazy: content/ (PyYAML, cmarkgfm, nh3: ~60 ms), which the idle shortcut must not pay
        from .content import render_html
        from .feeds import safe_html  # lazy: imported by now (render_feeds calls this)

        return safe_html(render_html(post, self.config, self.site))

    def prefetch(self, posts: list[Post]) -> None:
        keys = {self.key(post) for post in posts} - self.looked_up
        if self.state is not None and keys:
            self.cached.update(self.state.cached_html(keys))
        self.looked_up |= keys

    def render_ahead(self, posts: list[Post]) -> None:
        """Render now the posts neither cached nor rendered yet, this process and a forked
        worker each doing part (content/parallel.py), when there are enough of them: a cold
        build of a 2,000-post site renders ~300. __call__ then takes each from `ahead`, and
        counts it as rendered. A post that fails to render is left to __call__, which
        raises (or not) as it always did."""
        # lazy: content/ (PyYAML, cmarkgfm, nh3: ~60 ms), which the idle shortcut must not pay
        from .content import parallel

        missing: dict[str, Post] = {}
        for post in posts:
            key = self.key(post)
            if key not in self.cached and key not in self.rendered and key not in self.ahead:
                missing.setdefault(key, post)
        if len(missing) < parallel.MIN_RENDERS or not parallel.can_fork():
            return  # rendered one by one, when asked for
        htmls = parallel.split_map(self._try_render, list(missing.values()), min_items=2,
                                   label="rendering posts")
        self.ahead.update((key, html) for key, html in zip(missing, htmls) if html is not None)

    def _try_render(self, post: Post) -> str | None:
        try:
            return self._render(post)
        except Exception:  # noqa: BLE001 -- rendered again by __call__, which raises it in place
            return None

    def __call__(self, post: Post) -> str:
        key = self.key(post)
        if key in self.rendered:
            return self.rendered[key]
        if key not in self.looked_up:
            self.prefetch([post])
        cached = self.cached.get(key)
        if cached is not None:
            self.hits += 1
            return cached
        self.misses += 1
        html = self.ahead.pop(key, None)
        if html is None:
            html = self._render(post)
        self.rendered[key] = html
        return html

    def save(self) -> None:
        if self.state is not None and self.rendered:
            self.state.store_html(self.rendered)


class FeedFragments(MutableMapping):
    """feeds.render_feeds' `fragments`, kept in the state between builds: each feed entry's
    bytes per format, so a build after one new post serialises that post's entries and
    takes the others' as the last build left them (feedgen's serialising of the ~80 posts in
    the feeds a new post changes was a fifth of such a build). _Entries' keys say all an
    entry's bytes depend on; the rows are also keyed by `base` (FeedSelection.base: the
    config and the code of feeds/ and content/), so an edit of that code never reuses old
    bytes. They share the render cache's table, under keys of their own: 16 hex digits of
    the base's hash, then 48 of the entry key's.

    Looked up at once (prefetch); what a write serialised is stored by save() only when the
    write is incremental (`keep`: the last write had the same base). A site's first write,
    or its first after an upgrade or a config change, serialises every entry: storing them
    all would cost ~27 KB a post in its feeds (+11 MB, +3.6% CPU on the 2,000-post cold
    build) for builds that may not come; the builds after it store what they serialise.
    The rows of an older base (`stale_base`) are dropped then, so they never pile up."""

    def __init__(self, state: CacheStorage | None, base: str, keep: bool = True,
                 stale_base: str | None = None):
        self.state, self.keep = state, keep
        self.prefix = self._prefix(base)
        self.stale = self._prefix(stale_base) if stale_base and stale_base != base else None
        self.held: dict[str, bytes] = {}
        self.new: dict[str, bytes] = {}

    @staticmethod
    def _prefix(base: str) -> str:
        return hashlib.sha256(f"feed entries\0{base}".encode()).hexdigest()[:16]

    def _row(self, key: str) -> str:
        return self.prefix + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:48]

    def prefetch(self, keys: Iterable[str]) -> None:
        rows = {self._row(key): key for key in keys if key not in self.held}
        if self.state is not None and rows:
            for row, text in self.state.cached_html(rows).items():
                self.held[rows[row]] = text.encode("utf-8")

    def __getitem__(self, key: str) -> bytes:
        return self.held[key]

    def __setitem__(self, key: str, value: bytes) -> None:
        self.held[key] = self.new[key] = value

    def __delitem__(self, key: str) -> None:
        del self.held[key]
        self.new.pop(key, None)

    def __iter__(self):
        return iter(self.held)

    def __len__(self) -> int:
        return len(self.held)

    def save(self) -> None:
        if self.state is None:
            return
        if self.stale is not None:
            self.state.drop_html(self.stale)
            self.stale = None
        if not self.keep or not self.new:
            return
        rows = {}
        for key, value in self.new.items():
            try:
                rows[self._row(key)] = value.decode("utf-8")
            except UnicodeDecodeError:  # (feeds are UTF-8: never expected) serialised again next time
                continue
        self.state.store_html(rows)
        self.new = {}


# --- feed fingerprints ----------------------------------------------------------------------
# A feed file depends on its posts (each standing for its file's bytes), on the config keys in
# _feed_config (and, through scan_fingerprint, those parsing uses), on the code of content/
# and of FEED_CODE_FILES, and on the files its posts take images and Liquid data from.

FEEDS_WRITTEN_KEY = "feeds_written"
# The code feed files depend on besides content/: these files of this package.
# Every module of feeds/, as when they were one feeds.py (write.py and check.py shape no bytes,
# but a module left out here would be forgotten when code moves between them).
FEED_CODE_FILES = ("feeds/__init__.py", "feeds/common.py", "feeds/render.py", "feeds/history.py",
                   "feeds/face.py", "feeds/write.py", "feeds/check.py", "feed_cache.py", "__init__.py")


def _feed_config(config: Config) -> list:
    """The config keys the feed files depend on, besides those parsing uses."""
    site, feeds = config.site, config.feeds
    return [site.title, site.url, site.description, site.language, site.author.name,
            site.author.email, feeds.limit, site.icon, site.logo, list(feeds.websub_hub),
            feeds.archive, feeds.archive_size, feeds.archive_tags, feeds.podcast,
            config.content.dialect,  # which engine syntax is resolved (syntax.py)
            ]


def _config_fingerprint(config: Config) -> str:
    """What every feed file depends on besides its posts: _feed_config, scan_fingerprint,
    and the code that renders them."""
    # lazy: content/ (PyYAML, cmarkgfm, nh3: ~60 ms), which the idle shortcut must not pay
    from .content import code_hash

    here = Path(__file__).parent
    h = hashlib.sha256(code_hash().encode())
    for name in FEED_CODE_FILES:
        h.update(hashlib.sha256((here / name).read_bytes()).digest())
    h.update(json.dumps([scan_fingerprint(config), *_feed_config(config)])
             .encode("utf-8", "surrogatepass"))
    return h.hexdigest()


def feeds_fingerprint(config: Config, loaded: LoadResult) -> str:
    """What the feed files depend on: the published posts (each stands for its file's bytes
    under the scan fingerprint, which covers the config keys parsing uses), the config keys
    the feeds use, and the code that renders them. Equal fingerprints, equal feed bytes."""
    h = hashlib.sha256(_config_fingerprint(config).encode())
    for post in loaded.posts:
        h.update(f"{post.source}\0{post.content_hash}\n".encode("utf-8", "surrogatepass"))
    return h.hexdigest()


def feed_set_fingerprint(base: str, feed, key: Callable[[Post], str]) -> str:
    """What one feed set's files depend on (feeds.render_feeds): the config and code (`base`),
    its folder, title and description, its archive links (RFC 5005), and its items, each
    standing for its file's bytes."""
    h = hashlib.sha256(f"{base}\0{feed.folder}\0{feed.title}\0{feed.description}\0{feed.archive!r}\n"
                       .encode("utf-8", "surrogatepass"))
    for post in feed.items:
        h.update(f"{post.source}\0{post.content_hash}\0{key(post)}\n".encode("utf-8", "surrogatepass"))
    return h.hexdigest()


def _last_write(state: CacheStorage) -> dict:
    recorded = state.get_meta(FEEDS_WRITTEN_KEY)
    try:
        last = json.loads(recorded) if recorded else {}
    except ValueError:
        return {}
    return last if isinstance(last, dict) else {}


def _feeds_unchanged(config: Config, last: dict, fingerprint: str) -> bool:
    """Are the posts, config and code the same as at the last write, and every file it wrote
    still there untouched (same size and mtime)?"""
    if last.get("fingerprint") != fingerprint:
        return False
    files = last.get("files") or {}
    # Deleted or edited by hand: render and rewrite what differs.
    if not files or stat_files(config.output_dir, files) != files:
        return False
    # A local image or a Liquid data file changed, appeared or went away: render again.
    return _stat_sources(last.get("sources") or {}) == (last.get("sources") or {})


def _stat_sources(paths) -> dict[str, list[int] | None]:
    """{absolute path: [size, mtime_ns], or None if there is no such file}."""
    found: dict[str, list[int] | None] = {}
    for path in paths:
        try:
            st = os.stat(path)
            found[path] = [st.st_size, st.st_mtime_ns]
        except OSError:
            found[path] = None
    return found


class FeedSelection:
    """feeds.render_feeds' `select`: the feed sets whose files are missing, touched, or whose
    fingerprint changed since the last write; the others are left as they are on disk. The
    posts of the chosen sets are looked up in the render cache at once.

    Before choosing, every post of every set is prepared against the site (engine syntax,
    links, images: links.SiteIndex, no Markdown rendered): its warnings are reported on every
    build, its local images are copied beside the feeds, a local front matter image points at
    its copy, and what its HTML takes from other posts and files is part of its set's
    fingerprint. Preparing is not free (~0.7 ms a post: the scan for links outside code), so
    what it found is recorded per post with what it depended on (see _PreparedRecord), and a
    post whose record still holds is not prepared again."""

    def __init__(self, config: Config, last: dict, renderer: CachedRenderer, site: SiteIndex):
        self.base = _config_fingerprint(config)
        self.site = site
        self.warnings: list[str] = []  # one line per post and problem
        self.media: dict[str, str] = {}  # output path -> source path of each image to copy
        # The files besides the posts the feeds depend on: images (found or not) and the
        # site's Liquid variables ({{ site.x }} comes from _config.yml and data files).
        self.watched: set[str] = set(site.data_files)
        self.last_sets = last.get("feeds") or {}
        self.last_files = last.get("files") or {}
        self.on_disk = stat_files(config.output_dir, self.last_files)
        self.renderer = renderer
        self.fingerprints: dict[str, str] = {}  # folder -> fingerprint, of every set
        self.kept: set[str] = set()  # files of the sets left as they are
        # The last write's records hold if the config and code are the same and none of the
        # files they watched (images, Liquid data) changed.
        sources = last.get("sources") or {}
        usable = last.get("base") == self.base and _stat_sources(sources) == sources
        self.last_prepared: dict[str, list] = (last.get("prepared") or {}) if usable else {}
        self.prepared: dict[str, list] = {}  # source -> _PreparedRecord fields, of this write
        # The feed entries' bytes of earlier builds (render_feeds' fragments); a write with
        # another base than the last one stores none of its own (see FeedFragments).
        self.fragments = FeedFragments(renderer.state, self.base,
                                       keep=bool(self.last_sets) and last.get("base") == self.base,
                                       stale_base=last.get("base"))
        self._ahead: dict[int, _PreparedRecord] = {}  # id(post) -> record, by _prepare_ahead

    def _record(self, post: Post) -> _PreparedRecord:
        """The post's preparation: its record from the last write when the post is the same
        and every link lookup it made gives the same answer now; else prepared again."""
        found = self.last_prepared.get(post.source)
        if isinstance(found, list) and len(found) == len(_PreparedRecord._fields):
            record = _PreparedRecord(*found)
            if record.holds(post, self.site):
                return record
        lookups: list[list] = []
        site_class = type(self.site)

        def post_link(kind: str, target: str, from_file: str) -> str | None:
            url = site_class.post_link(self.site, kind, target, from_file)
            lookups.append([kind, target, from_file, url])
            return url

        def served_at(url_path: str) -> str | None:
            found = site_class.served_at(self.site, url_path)
            lookups.append([_SERVED, url_path, "", found])
            return found

        # Every lookup of another post (SiteIndex.post_link) and of a file the engine serves
        # (SiteIndex.served_at) goes through the index: recorded here.
        self.site.post_link, self.site.served_at = post_link, served_at
        try:
            prepared = self.site.prepare(post)
        finally:
            del self.site.post_link, self.site.served_at
        return _PreparedRecord(post.url, post.content_hash, prepared.key, list(prepared.warnings),
                               [[m.name, m.source] for m in prepared.media],
                               list(prepared.missing), prepared.image, lookups)

    def _prepare_ahead(self, posts: list[Post]) -> None:
        """On a site's first write (no last write: every feed set is chosen, and every post in
        them prepared and, the render cache being empty, rendered), prepare and render the
        posts in two processes at once (content/parallel.py) rather than preparing them all
        here first: _prepare then takes their records, the renderer their HTML."""
        # lazy: content/ (PyYAML, cmarkgfm, nh3: ~60 ms), which the idle shortcut must not pay
        from .content import parallel

        if self.last_sets or len(posts) < parallel.MIN_RENDERS or not parallel.can_fork():
            return
        done = parallel.split_map(self._record_and_render, posts, min_items=2, label="rendering posts")
        for post, (record, html) in zip(posts, done):
            self._ahead[id(post)] = record
            if html is not None:  # else rendered when asked for, which raises (or not) in place
                self.renderer.prepared_keys[(post.url, post.content_hash)] = record.key
                self.renderer.ahead[self.renderer.key(post)] = html

    def _record_and_render(self, post: Post) -> tuple[_PreparedRecord, str | None]:
        return self._record(post), self.renderer._try_render(post)

    def _prepare(self, feeds: list) -> list:

        replaced: dict[int, Post] = {}
        posts = list({id(p): p for f in feeds for p in f.items}.values())
        self._prepare_ahead(posts)
        for post in posts:
            record = self._ahead.pop(id(post), None) or self._record(post)
            self.prepared[post.source] = list(record)
            self.renderer.prepared_keys[(post.url, post.content_hash)] = record.key
            self.warnings.extend(record.warnings)
            for name, source in record.media:
                self.media[name] = source
                self.watched.add(source)
            self.watched.update(record.missing)
            if record.image:
                replaced[id(post)] = dataclasses.replace(post, image=record.image)
        if not replaced:
            return feeds
        return [dataclasses.replace(f, items=tuple(replaced.get(id(p), p) for p in f.items))
                for f in feeds]

    def save(self) -> None:
        """Store what this write rendered and serialised (the HTML, the feed entries)."""
        self.renderer.save()
        self.fragments.save()

    def __call__(self, feeds: list) -> list:
        from .feeds import FEED_FILES  # feeds/ is imported by now: render_feeds calls this

        feeds = self._prepare(feeds)
        chosen = []
        for feed in feeds:
            fingerprint = feed_set_fingerprint(self.base, feed, self.renderer.key)
            self.fingerprints[feed.folder] = fingerprint
            paths = [feed.path(name) for name in FEED_FILES]
            if (self.last_sets.get(feed.folder) == fingerprint
                    and all(p in self.last_files and self.on_disk.get(p) == self.last_files[p]
                            for p in paths)):
                self.kept.update(paths)
            else:
                chosen.append(feed)
        posts = list({id(p): p for f in chosen for p in f.items}.values())
        self.renderer.prefetch(posts)
        self.renderer.render_ahead(posts)
        return chosen


_SERVED = "served_at"  # a lookup of a file the engine serves, in _PreparedRecord.lookups


class _PreparedRecord(NamedTuple):
    """What links.SiteIndex.prepare found for one post, and what that depended on besides
    the config and code (FeedSelection's base) and the watched files: the post itself (URL and
    bytes) and the answer to each lookup it made of another post or of a file the engine
    serves (the site's other posts change with every new post, but a post's links rarely
    point at the new one). Not covered: an image in a Hugo page bundle that goes away (its
    warning waits until the post changes)."""

    url: str
    content_hash: str
    key: str  # links.Prepared.key
    warnings: list
    media: list  # [name, source] of each image to copy
    missing: list
    image: str
    lookups: list  # [kind, target, from_file, URL or file found, or None]

    def holds(self, post: Post, site: SiteIndex) -> bool:
        return (self.url == post.url and self.content_hash == post.content_hash
                and all((site.served_at(target) if kind == _SERVED
                         else site.post_link(kind, target, from_file)) == found
                        for kind, target, from_file, found in self.lookups))


class FeedCache:
    """What the feeds last written depended on (the state's meta FEEDS_WRITTEN_KEY), and
    whether any of it changed: pipeline.write_site_feeds asks, then records what it wrote."""

    def __init__(self, config: Config, state: CacheStorage | None, loaded: LoadResult):
        self.config, self.state, self.loaded = config, state, loaded
        self.last = _last_write(state) if state is not None else {}
        self.fingerprint = feeds_fingerprint(config, loaded) if state is not None else ""

    def unchanged(self) -> bool:
        """Nothing the feed files depend on changed, and they are on disk as written."""
        return self.state is not None and _feeds_unchanged(self.config, self.last, self.fingerprint)

    @property
    def problems(self) -> list[str]:
        """The warnings the posts showed at the last write (warnings_after)."""
        return self.last.get("problems") or []

    def warnings_after(self, selection: FeedSelection) -> list[str]:
        """The warnings the site's posts show once this write is done: those of the posts it
        prepared, and those the last write recorded for the posts it did not (feed sets kept
        as they are); a post gone or prepared again keeps none of its old ones."""
        prepared = set(selection.prepared)
        sources = {post.source for post in self.loaded.posts}
        kept = [w for w in self.problems if (source := w.split(": ", 1)[0]) in sources and source not in prepared]
        return list(dict.fromkeys([*kept, *selection.warnings]))

    def new_warnings(self, selection: FeedSelection, warnings: list[str]) -> list[str]:
        """Of `warnings` (warnings_after), those to say now: the ones the last write did not
        record, and every one of a post that is new or whose file changed since."""
        last = self.last.get("prepared") or {}
        changed = {source for source, record in selection.prepared.items()
                   if not isinstance(last.get(source), list) or len(last[source]) != len(record)
                   or _PreparedRecord(*last[source]).content_hash != _PreparedRecord(*record).content_hash}
        known = set(self.problems)
        return [w for w in warnings if w not in known or w.split(": ", 1)[0] in changed]

    @property
    def posts_in_feeds(self) -> int:
        return self.last.get("posts_in_feeds", 0)

    def unchanged_files(self) -> dict[str, list[int]]:
        """For the idle stamp: the feed files found untouched, {path: [size, mtime_ns]}, and the
        other files the feeds depend on (local images, Liquid data), by absolute path: one that
        changes ends idleness, and one that is missing ([-1, -1]: never what a stat finds)
        keeps every run on the full path, which reports it and copies it once it appears."""
        sources = self.last.get("sources") or {}
        return {**self.last["files"], **{path: stamp or [-1, -1] for path, stamp in sources.items()}}

    def selection(self) -> FeedSelection:
        """feeds.render_feeds' `select` for this write, with its render cache."""
        # lazy: content/ (PyYAML, cmarkgfm, nh3: ~60 ms), which the idle shortcut must not pay
        from .content.links import SiteIndex

        site = SiteIndex(self.config, self.loaded.posts)
        return FeedSelection(self.config, self.last, CachedRenderer(self.state, self.config, site), site)

    def record(self, written: list[str], selection: FeedSelection, warnings: list[str]) -> None:
        """Remember what this write depended on, for the next build to compare, and the
        warnings its posts show (warnings_after: said once, not again by the next builds)."""
        if self.state is None:
            return
        self.state.set_meta(FEEDS_WRITTEN_KEY, json.dumps({
            "fingerprint": self.fingerprint,
            "base": selection.base,
            "feeds": selection.fingerprints,
            "prepared": selection.prepared,
            "files": stat_files(self.config.output_dir, [*written, *selection.kept]),
            "posts_in_feeds": selection.renderer.hits + selection.renderer.misses,
            "problems": warnings,
            "sources": _stat_sources(sorted(selection.watched)),
        }, sort_keys=True))
