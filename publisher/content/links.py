"""URLs: every relative href/src in a post's HTML made absolute (its permalink: content/urls.py),
links to other posts' source files turned into their URLs, and local images found where the
engine keeps them (see SiteIndex)."""

from __future__ import annotations

import errno
import hashlib
import html
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping
from urllib.parse import quote, unquote, urljoin, urlsplit

import yaml

from ..config import Config
from ..datafiles import DataError
from .frontmatter import split_front_matter
from .syntax import SyntaxContext, is_mdx, prose_only, resolve, source_format, syntax_of
from .text import clean_text

if TYPE_CHECKING:
    from ..engines.rules import Syntax
    from .posts import Post

log = logging.getLogger(__name__)


# A start tag with an attribute value: the only ones a URL can be in (most tags of a post,
# <p>, <li>, <code>..., have none, and are not worth a Python call each).
_TAG = re.compile(r"<[a-zA-Z][^<>=]*=[^<>]*>")
_URL_ATTR = re.compile(
    r"""(\s(?:href|src|poster|cite|action|data)\s*=\s*)("[^"]*"|'[^']*'|[^\s"'>]+)""", re.I
)
_SRCSET_ATTR = re.compile(r"""(\ssrcset\s*=\s*)("[^"]*"|'[^']*')""", re.I)


def absolutize_url(value: str, base: str) -> str:
    value = value.strip()
    if not value:
        return base
    try:
        scheme = urlsplit(value).scheme
        if scheme and scheme.lower() not in ("http", "https"):
            return value  # mailto:, data:, tel:, ... stay as written
        return urljoin(base, value)
    except ValueError:  # e.g. "http://[i]/": urllib refuses a malformed bracketed host
        return value


def absolutize_html(fragment: str, base: str, links: Mapping[str, str] | None = None) -> str:
    """Make every relative href/src/srcset in an HTML fragment absolute against `base`; a
    value found in `links` (as written in the Markdown) becomes the URL given there."""

    def absolute(value: str) -> str:
        if links:
            mapped = links.get(value) or links.get(unquote(value))
            if mapped:
                return mapped
        return absolutize_url(value, base)

    def fix_attr(m: re.Match) -> str:
        raw = m.group(2)
        quote_char = raw[0] if raw[0] in "\"'" else ""
        value = raw[1:-1] if quote_char else raw
        fixed = html.escape(absolute(html.unescape(value)), quote=True)
        return f'{m.group(1)}"{fixed}"'

    def fix_srcset(m: re.Match) -> str:
        items = []
        for candidate in html.unescape(m.group(2)[1:-1]).split(","):
            parts = candidate.strip().split(None, 1)
            if parts:
                parts[0] = absolute(parts[0])
                items.append(" ".join(parts))
        return f'{m.group(1)}"{html.escape(", ".join(items), quote=True)}"'

    def fix_tag(m: re.Match) -> str:
        tag = _URL_ATTR.sub(fix_attr, m.group(0))
        return _SRCSET_ATTR.sub(fix_srcset, tag)

    return _TAG.sub(fix_tag, fragment)


# --- the site index: links to source files, local images --------------------------------

SOURCE_SUFFIXES = (".md", ".markdown", ".mdx", ".rst")  # a link to one of these is a link to a post
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp", ".avif", ".svg")
MEDIA_DIR = "media"  # under feeds.output_dir, where local images are copied
# Where engines serve a site-absolute path like /images/x.png from: Hugo's static/, Astro's
# and Eleventy's public/, and the site folder itself (Jekyll, Eleventy passthrough copies).
STATIC_DIRS = ("static", "public", ".")


# --- files a post names: read only inside the site ---------------------------------------
# A post (or a pull request to a blog whose owner builds it in CI) can name any path: through
# '..', or through a symlink it commits. Every file it names is read (opened, hashed, copied,
# measured) only when its real path, every symlink resolved, lies inside the site folder or
# content.dir: folders the user configured. A symlink inside the site pointing inside it works.

def site_folders(config: Config, *more: Path) -> tuple[str, ...]:
    """The real paths of the folders a post may take files from: the site folder (that of
    config.yaml) and content.dir, which the user may have put elsewhere; and `more`."""
    folders = (config.root, config.content_dir, *more)
    return tuple(dict.fromkeys(os.path.realpath(f) for f in folders))


def inside(path: str | os.PathLike, folders: Iterable[str]) -> str | None:
    """`path`'s real path if it lies in one of `folders` (real paths, from site_folders), else
    None: a `..` or a symlink out of them. Only names are resolved; no file is opened."""
    real = os.path.realpath(path)
    for folder in folders:
        if real == folder or real.startswith(folder.rstrip(os.sep) + os.sep):
            return real
    return None


def read_inside(path: str | os.PathLike, folders: Iterable[str]) -> bytes:
    """The bytes of `path`, checked by `inside` again as it is read (the file may have changed
    since it was named): its real path opened without following a symlink there. Raises
    OSError, with EACCES's message for a path outside `folders`."""
    real = inside(path, folders)
    if real is None:
        raise PermissionError(errno.EACCES, "outside the site folder", str(path))
    fd = os.open(real, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as f:
        return f.read()


def media_files(config: Config, media: Mapping[str, str]) -> tuple[dict[str, bytes], list[str]]:
    """The copies of the local images (links.MediaFile: {name under feeds.output_dir: source}),
    read again from inside the site only, for output.write_files; and a line for each image
    that cannot be read."""
    folders = site_folders(config)
    files: dict[str, bytes] = {}
    problems: list[str] = []
    for name, source in media.items():
        try:
            files[name] = read_inside(source, folders)
        except OSError as e:
            problems.append(f"{source}: cannot read image: {e.strerror or e}")
    return files, problems


@dataclass(frozen=True)
class MediaFile:
    """A local image the build copies into the output folder."""

    source: str  # absolute path of the image
    name: str  # path under feeds.output_dir: media/<sha256-12>-<file name>


@dataclass(frozen=True)
class Prepared:
    """A post ready to render: its Markdown with engine syntax resolved, the URL each local
    link or image stands for, the images to copy, and what could not be resolved. `key` is a
    digest of everything here the HTML depends on besides the post's own bytes."""

    markdown: str
    links: Mapping[str, str]  # a reference as written in the Markdown -> its absolute URL
    media: tuple[MediaFile, ...]
    image: str  # the front matter image's URL when it is a local file, else ""
    warnings: tuple[str, ...]  # whole lines, each naming the post
    key: str
    missing: tuple[str, ...] = ()  # image files looked for and not found or refused (absolute paths)


class SiteIndex:
    """Which post each source file is (source path -> URL), built from the published posts,
    and the site's folders, for resolving a post's links and images. Plain data only, so a
    forked render worker gets a copy cheaply; prepared posts are remembered per index."""

    def __init__(self, config: Config, posts: Iterable[Post]):
        self.site_url = config.site.url.rstrip("/")
        self.dialect = config.content.dialect
        self.root = os.path.abspath(config.root)
        self.content_dir = os.path.abspath(config.content_dir)
        self.folders = site_folders(config)  # where a post may take files from (`inside`)
        self.static_dirs = tuple(os.path.normpath(os.path.join(self.root, d)) for d in STATIC_DIRS)
        self.by_path: dict[str, str] = {}  # absolute file path -> URL
        self.by_stem: dict[str, list[str]] = {}  # file stem (a bundle's folder) -> URLs
        for post in posts:
            path = os.path.abspath(post._path or os.path.join(self.root, post.source))
            self.by_path[path] = post.url
            stem = os.path.splitext(os.path.basename(path))[0]
            if stem in ("index", "_index"):
                stem = os.path.basename(os.path.dirname(path))
            self.by_stem.setdefault(stem, []).append(post.url)
        self._prepared: dict[tuple[str, str], Prepared] = {}
        self.variables, self.data_files = _site_variables(self.root, self.dialect, self.folders)

    @property
    def syntax(self) -> Syntax:
        return syntax_of(self.dialect)

    @classmethod
    def alone(cls, site_url: str) -> SiteIndex:
        """An index that knows no posts and no folders: what rendering one post on its own
        (no site at hand) resolves against."""
        index = cls.__new__(cls)
        index.site_url, index.dialect = site_url.rstrip("/"), "auto"
        index.root = index.content_dir = ""
        index.static_dirs, index.by_path, index.by_stem, index._prepared = (), {}, {}, {}
        index.folders = ()
        index.variables, index.data_files = {}, ()
        return index

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_prepared": {}}

    def prepare(self, post: Post) -> Prepared:
        key = (post.url, post.content_hash)
        if key not in self._prepared:
            self._prepared[key] = _prepare(post, self)
        return self._prepared[key]

    # -- posts --

    def _url_of(self, path: str) -> str | None:
        path = os.path.normpath(path)
        for candidate in (path, *(path + s for s in SOURCE_SUFFIXES),
                          *(os.path.join(path, "index" + s) for s in SOURCE_SUFFIXES)):
            if candidate in self.by_path:
                return self.by_path[candidate]
        return None

    def post_link(self, kind: str, target: str, from_file: str) -> str | None:
        """The URL of the post `target` names, or None. kind: "post_url" (a Jekyll post's
        name), "link" (a path from the site folder), "ref" (Hugo), "file" (a Markdown link)."""
        path, _, fragment = target.partition("#")
        fragment = "#" + fragment if fragment else ""
        path = unquote(path)
        url = None
        if kind == "post_url":
            found = self.by_stem.get(os.path.basename(path), [])
            url = found[0] if len(found) == 1 else None
        elif path:
            here = os.path.dirname(from_file)
            if path.startswith("/"):
                bases = [self.content_dir, self.root]
            elif kind == "link":
                bases = [self.root, self.content_dir]
            else:
                bases = [here, self.content_dir, self.root]
            for base in bases:
                if base and (url := self._url_of(os.path.join(base, path.lstrip("/")))):
                    break
            if url is None:
                # /blog/first.md when content.dir is the blog folder itself, or Hugo's bare name.
                tail = os.sep + os.path.normpath(path.lstrip("/"))
                found = [u for p, u in self.by_path.items() if p.endswith(tail)]
                if not found and kind == "ref" and "/" not in path:
                    found = self.by_stem.get(os.path.splitext(path)[0], [])
                url = found[0] if len(set(found)) == 1 else None
        elif kind == "ref" and fragment:
            return fragment
        return url + fragment if url else None

    # -- images --

    def served_at(self, url_path: str) -> str | None:
        """The file behind a site-absolute path, if the engine serves one there."""
        rel = unquote(url_path).lstrip("/")
        for folder in self.static_dirs:
            path = os.path.normpath(os.path.join(folder, rel))
            if not path.startswith(folder + os.sep):
                continue
            real = inside(path, self.folders)
            if real is not None and os.path.isfile(real):
                return path
        return None


def _site_variables(root: str, dialect: str, folders: tuple[str, ...] = ()
                    ) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The variables the site defines for its posts' templates, as its engine reads them
    (engines/*.py: Jekyll's _config.yml as `site`, Eleventy's _data/<name>.json as
    `<name>`...), and the files they come from. A file that cannot be read defines nothing
    (the variables it would have given are then named as unresolved), nor does one whose
    real path is outside `folders` (a symlink out of the site: named here)."""
    from ..engines import rules_for  # (engines/ reads content/'s helpers: imported when used)

    reader = SiteFiles(folders)
    return rules_for(dialect).site_variables(root, reader), tuple(reader.files)


class SiteFiles:
    """How an engine's site_variables reads the site's files: only inside the site folders,
    each file read remembered (a change to one is a change to the posts)."""

    def __init__(self, folders: tuple[str, ...]):
        self.folders = folders
        self.files: list[str] = []

    def load(self, path: str, parse: Callable[[Any], Any]) -> Any:
        """`parse` of the file's text, or None for none that can be read or one outside."""
        self.files.append(path)
        if inside(path, self.folders) is None:
            log.warning("%s: not read: it is outside the site folder (a symbolic link out of it)",
                        path)
            return None
        return _data_file(path, parse)

    def names(self, folder: str) -> list[str]:
        """The file names in `folder`, sorted; none for a folder outside the site."""
        try:
            return (sorted(os.listdir(folder))
                    if os.path.isdir(folder) and inside(folder, self.folders) else [])
        except OSError:
            return []


def _data_file(path: str, load) -> Any:
    """A site data file read with `load` (bounded: see datafiles.py), or None if it cannot
    be read; a file refused for its size or depth is named, once per build."""
    try:
        with open(path, encoding="utf-8") as f:
            return load(f.read())
    except DataError as e:
        log.warning("%s: not read: %s", path, e)
    except (OSError, ValueError, yaml.YAMLError):
        pass
    return None


_INLINE_REF = re.compile(r"\]\(\s*(<[^>\n]*>|[^\s)]+)")
_DEFINITION_REF = re.compile(r"^ {0,3}\[[^\]\n]+\]:\s*(<[^>\n]*>|\S+)", re.M)
_HTML_REF = re.compile(r"""\s(?:src|href|poster)\s*=\s*(?:"([^"]*)"|'([^']*)')""", re.I)


def _references(markdown: str) -> list[str]:
    """Every link or image destination written in the Markdown outside code, in order."""

    prose = prose_only(markdown)
    found: list[str] = []
    for m in _INLINE_REF.finditer(prose):
        found.append(m.group(1))
    for m in _DEFINITION_REF.finditer(prose):
        found.append(m.group(1))
    for m in _HTML_REF.finditer(prose):
        found.append(html.unescape(m.group(1) if m.group(1) is not None else m.group(2)))
    refs: dict[str, None] = {}  # (a dict: a list's `in` made this quadratic in links)
    for ref in found:
        ref = ref[1:-1] if ref.startswith("<") and ref.endswith(">") else ref
        if ref:
            refs[ref] = None
    return list(refs)


def _may_name_a_file(markdown: str) -> bool:
    """Whether any reference in `markdown` may name a post's source file or an image: only
    those do anything (_Resolver.reference looks at a reference's path ending in one of
    their suffixes, lowercased). A body without any such suffix anywhere (most posts: links
    to pages and other sites) needs no search for references outside code, which cost a
    third of preparing a post (~0.4 ms for 7 KB of Markdown); this test costs ~10 us."""
    lowered = markdown.lower()
    return any(suffix in lowered for suffix in SOURCE_SUFFIXES + IMAGE_SUFFIXES)


_PELICAN_LINK = re.compile(r"^(?:\{(?:filename|static|attach)\}|\|(?:filename|static|attach)\|)")


def _is_local(ref: str) -> bool:
    try:
        parts = urlsplit(ref)
    except ValueError:
        return False
    return not (parts.scheme or parts.netloc or ref.startswith("#") or not parts.path)


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _media(path: str, real: str, folders: tuple[str, ...]) -> MediaFile:
    """The copy of the image `path` names (read from `real`, its real path inside the site),
    under `path`'s file name: a symlink inside the site keeps the name the post gave it."""
    digest = hashlib.sha256(read_inside(real, folders)).hexdigest()[:12]
    name = re.sub(r"[^\w.-]+", "-", os.path.basename(path)).strip("-.") or "image"
    return MediaFile(real, f"{MEDIA_DIR}/{digest}-{name}")


class _Resolver:
    """Resolves one post's references against the index; collects media and warnings."""

    def __init__(self, post: Post, index: SiteIndex):
        self.post, self.index = post, index
        self.file = os.path.abspath(post._path) if post._path else ""
        self.links: dict[str, str] = {}
        self.media: dict[str, MediaFile] = {}
        self.warnings: list[str] = []
        self.missing: list[str] = []

    def bundle(self) -> str | None:
        """A Hugo page bundle's folder: its images are published beside the post's page."""
        if self.index.syntax.page_bundles and os.path.basename(self.file).startswith("index."):
            return os.path.dirname(self.file)
        return None

    def image(self, ref: str, written: str | None = None) -> str | None:
        """The URL to use for a local image, or None to keep the reference absolutized.
        `written`: the reference as the post has it, for messages, when `ref` was derived."""
        path = urlsplit(ref).path
        written = written or ref
        if not self.file:
            return None
        if path.startswith("/"):
            if self.index.served_at(path):
                return self.index.site_url + quote(path, safe="/~-._%")
            self.warnings.append(f"{self.post.source}: image not found: {_one_line(written)}")
            self.missing.extend(os.path.join(d, unquote(path).lstrip("/")) for d in self.index.static_dirs)
            return None
        local = os.path.normpath(os.path.join(os.path.dirname(self.file), unquote(path)))
        real = inside(local, self.index.folders)
        if real is None:
            # Neither opened nor copied (nor even looked at: whether it exists is no
            # business of the feeds); the reference stays as written, made absolute.
            self.warnings.append(f"{self.post.source}: image not copied: {_one_line(written)} "
                                 "is outside the site folder")
            self.missing.append(local)  # watched: a link fixed to point inside is seen
            return None
        if os.path.isfile(real):
            bundle = self.bundle()
            if bundle and local.startswith(bundle + os.sep):
                return None  # published at the post's URL: absolutizing is right
            try:
                media = self.media.get(local) or _media(local, real, self.index.folders)
            except OSError as e:
                self.warnings.append(f"{self.post.source}: image not copied: "
                                     f"{_one_line(written)}: {e.strerror or e}")
                return None
            self.media[local] = media
            return f"{self.index.site_url}/{quote(media.name)}"
        served = urlsplit(absolutize_url(ref, self.post.url)).path
        if self.post.url.startswith(self.index.site_url) and self.index.served_at(
                served[len(urlsplit(self.index.site_url).path):]):
            return None
        self.warnings.append(f"{self.post.source}: image not found: {_one_line(written)}")
        self.missing.append(local)
        return None

    def reference(self, ref: str) -> None:
        if not _is_local(ref) or ref in self.links:
            return
        target = self.pelican_target(ref)
        path = urlsplit(target).path.lower()
        if path.endswith(SOURCE_SUFFIXES):
            url = self.index.post_link("file", target, self.file)
            if url:
                self.links[ref] = url
            elif self.file:
                self.warnings.append(f"{self.post.source}: link to {_one_line(ref)}: "
                                     "no published post has that source file")
        elif path.endswith(IMAGE_SUFFIXES):
            url = self.image(target, ref)
            if url:
                self.links[ref] = url

    def pelican_target(self, ref: str) -> str:
        """Pelican's intrasite links, `{static}/images/x.png`, `{filename}../other.md` (and
        the older `|filename|` form), and Zola's `@/blog/x.md`: the path after the marker is
        from content.dir when it starts with '/', else from the post's folder; written as a
        path from the post's folder."""
        if ref.startswith("@/") and self.file and self.index.syntax.internal_links:
            m = re.match("@", ref)  # Zola's internal link: `@/blog/x.md` is from content.dir
        else:
            m = _PELICAN_LINK.match(ref)
        if not m or not self.file:
            return ref
        rest = ref[m.end():]
        here = os.path.dirname(self.file)
        if rest.startswith("/"):
            full = os.path.join(self.index.content_dir, rest.lstrip("/"))
            return os.path.relpath(full, here).replace(os.sep, "/")
        return rest


def _front_matter(post: Post) -> Mapping[str, Any]:
    """The post's front matter, read again from its file (only when a post needs it)."""

    try:
        raw = Path(post._path).read_bytes()
        if hashlib.sha256(raw).hexdigest() != post.content_hash:
            return {}
        meta = split_front_matter(clean_text(raw.decode("utf-8-sig")))[0]
    except Exception:  # the post was read once already; a re-read problem only loses params
        return {}
    return meta if isinstance(meta, Mapping) else {}


def _front_image(meta: Mapping[str, Any]) -> str:
    for key in ("image", "heroImage", "cover"):
        value = meta.get(key)
        if isinstance(value, Mapping):
            value = value.get("src") or value.get("url")
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""


def _prepare(post: Post, index: SiteIndex) -> Prepared:
    body = post.body
    resolver = _Resolver(post, index)
    needs_meta = post._path and (post.image or "{{" in body or "{%" in body)
    meta = _front_matter(post) if needs_meta else {}
    ctx = SyntaxContext(
        site_url=index.site_url, dialect=index.dialect,
        mdx=is_mdx(post._path, index.dialect), params=meta, variables=index.variables,
        post_link=lambda kind, target: index.post_link(kind, target, resolver.file),
        fmt=source_format(post._path), post_file=post._path or "",
    )
    resolved = resolve(body, ctx)
    warnings = []
    if resolved.unresolved:
        warnings.append(f"{post.source}: unresolved engine syntax: {', '.join(resolved.unresolved)}")
    for ref in _references(resolved.text) if _may_name_a_file(resolved.text) else ():
        resolver.reference(ref)
    image = ""
    raw_image = _front_image(meta) if post.image else ""
    if raw_image and _is_local(raw_image) and urlsplit(raw_image).path.lower().endswith(IMAGE_SUFFIXES):
        image = resolver.image(raw_image) or ""
    warnings.extend(resolver.warnings)
    media = tuple(sorted(resolver.media.values(), key=lambda m: m.name))
    key = hashlib.sha256(json.dumps(
        [sorted(resolver.links.items()), [m.name for m in media], image, index.site_url, index.dialect,
         _used_variables(body, index.variables)],
    ).encode("utf-8", "surrogatepass")).hexdigest()
    return Prepared(resolved.text, dict(resolver.links), media, image, tuple(warnings), key,
                    tuple(resolver.missing))


def _used_variables(body: str, variables: Mapping[str, Any]) -> list:
    """The site variables a body may use (by their top-level name), for the render key."""
    if not variables or "{{" not in body:
        return []
    return [[name, _digest(variables[name])] for name in sorted(variables) if name in body]


_digests: dict[int, tuple[Any, str]] = {}  # id(value) -> (value, digest of its repr)


def _digest(value: Any) -> str:
    """A digest of repr(value), computed once per value (a site's _config.yml may hold up to
    datafiles.MAX_ALIAS_VALUES more values than it writes: its repr, megabytes, is not redone
    for each post that uses it). The value is kept with its digest, so its id is never reused."""
    found = _digests.get(id(value))
    if found is not None and found[0] is value:
        return found[1]
    if len(_digests) > 256:
        _digests.clear()
    digest = hashlib.sha256(repr(value).encode("utf-8", "surrogatepass")).hexdigest()
    _digests[id(value)] = (value, digest)
    return digest


def prepare(post: Post, index: SiteIndex | None = None) -> Prepared:
    """`post` ready to render against `index` (or, without one, against no other post)."""
    if index is None:
        parts = urlsplit(post.url)
        index = SiteIndex.alone(f"{parts.scheme}://{parts.netloc}")
    return index.prepare(post)
