"""Eleventy: eleventy.config.* or .eleventy.js; dir.input, _data/metadata, the permalink in the
posts folder's data file."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from datetime import date, datetime, timezone, tzinfo
from pathlib import Path
from typing import Any, Iterable

from ..config import Config
from ..content.frontmatter import Skip, read_flag
from ..content.frontmatter import read_text as field_text
from ..content.links import inside, site_folders
from ..content.slugs import eleventy_slug, kept_slug
from ..datafiles import DataError, brace_end, load_json
from .base import (
    SKIP_DIRS, Detected, first_file, js_object, js_string, js_top_level, load_data, posts_folder, read_text, rel,
    set_permalink, strip_js_comments, translate,
)
from .rules import _DATE_PREFIX, MARKDOWN_PLUGINS, Engine, Fields, Source, Syntax, as_list, match_date

NAME = "eleventy"
LABEL = "Eleventy"


def eleventy_permalink(template: str) -> tuple[str, list[str]]:
    tokens = {"page.fileSlug": "{slug}", "title | slugify": "{title}", "title | slug": "{title}",
              "slug": "{slug}", "page.lang": "{lang}", "lang": "{lang}"}
    text, unknown = translate(template, tokens, r"\{\{-?\s*(.*?)\s*-?\}\}")
    text = re.sub(r"/index\.html$", "/", text)
    return text, unknown


_POSTS_TAG = re.compile(r"""(?<![\w$])["']?tags["']?\s*:\s*\[?\s*["'](posts?)["']""")


def _tagged_posts_folder(base: Path) -> tuple[Path, Path, str] | None:
    """The one folder whose directory data file (`posts/posts.11tydata.js`, `posts.json`)
    tags its templates `post` or `posts`: Eleventy's posts collection, whatever other content
    folders beside it hold (notes, reading logs). (folder, data file, tag), or None."""
    found = []
    for root, dirs, _names in os.walk(base):
        dirs[:] = sorted(n for n in dirs if n not in SKIP_DIRS and not n.startswith((".", "_")))
        parent = Path(root)
        for name in (f"{parent.name}.json", f"{parent.name}.11tydata.json", f"{parent.name}.11tydata.js",
                     f"{parent.name}.11tydata.mjs", f"{parent.name}.11tydata.cjs"):
            data = parent / name
            m = _POSTS_TAG.search(strip_js_comments(read_text(data))) if data.is_file() else None
            if m:
                found.append((parent, data, m.group(1)))
    return found[0] if len(found) == 1 else None


CONFIG_FILES = ("eleventy.config.js", "eleventy.config.mjs", "eleventy.config.cjs", "eleventy.config.ts",
                ".eleventy.js", ".eleventy.cjs")


def _dirs(config: str) -> str:
    """The `dir: {...}` block of an Eleventy config's text, or ""."""
    dirs = re.search(r"\bdir\s*:\s*\{(.*?)\}", config, flags=re.S)
    return dirs.group(1) if dirs else ""


@functools.lru_cache(maxsize=8)
def _input_dir(marker: str, _mtime_ns: int, _size: int) -> str:
    return js_string(_dirs(strip_js_comments(read_text(Path(marker)))), "input") or "."


def input_folder(root: Path) -> Path:
    """Eleventy's input folder for the site in `root`: its config's `dir.input` (read as
    text), else `root` itself, Eleventy's default."""
    marker = first_file(root, *CONFIG_FILES)
    if marker is None:
        return root
    st = marker.stat()
    return root / _input_dir(str(marker), st.st_mtime_ns, st.st_size)


def _eleventy(folder: Path, marker: Path) -> Detected:
    d = Detected("eleventy", marker.name)
    config = strip_js_comments(read_text(marker))
    block = _dirs(config)
    input_dir = js_string(block, "input") or "."
    data_dir = js_string(block, "data") or "_data"
    source = f"{marker.name}: dir.input" if js_string(block, "input") else "Eleventy's default input folder"
    base = (folder / input_dir).resolve()
    data_base = (base / data_dir).resolve()
    meta = None
    for name in ("metadata.json", "metadata.js", "metadata.mjs", "metadata.cjs", "site.json", "site.js"):
        if (data_base / name).is_file():
            meta = data_base / name
            break
    if meta:
        label = rel(meta, folder)
        if meta.suffix == ".json":
            values = load_data(meta) or {}
            get = lambda key: values.get(key) if isinstance(values.get(key), str) else None  # noqa: E731
            author = values.get("author") if isinstance(values.get("author"), dict) else {}
            author_name = author.get("name")
            author_email = author.get("email")
        else:
            text = strip_js_comments(read_text(meta))
            get = lambda key: js_string(text, key)  # noqa: E731
            block_m = re.search(r"\bauthor\s*:\s*\{(.*?)\}", text, flags=re.S)
            author_name = js_string(block_m.group(1), "name") if block_m else None
            author_email = js_string(block_m.group(1), "email") if block_m else None
        for key, name in (("site.title", "title"), ("site.url", "url"),
                          ("site.language", "language"), ("site.description", "description")):
            value = get(name)
            if value:
                d.found(key, value, f"{label}: {name}")
        if author_name:
            d.found("site.author.name", author_name, f"{label}: author.name")
        if author_email:
            d.found("site.author.email", author_email, f"{label}: author.email")
    tagged = _tagged_posts_folder(base)
    posts = tagged[0] if tagged else posts_folder(base, folder)
    if tagged:
        d.found("content.dir", rel(posts, folder), f"{rel(tagged[1], folder)}: tags: {tagged[2]} (the posts collection)")
        prefix = "/" + rel(posts, base) + "/"
    elif posts:
        where = rel(base, folder) + "/" if base != folder.resolve() else "the input folder"
        d.guess("content.dir", rel(posts, folder), f"the posts folder in {where} ({source})")
        prefix = "/" + rel(posts, base) + "/"
    else:
        d.guess("content.dir", rel(base, folder), source)
        prefix = "/"
    # Eleventy's default URL: the file's path under the input folder as written (its date too:
    # /blog/2024-01-05-x/, and nested folders), a folder's index.md (or x/x.md) at its folder.
    default = prefix + "{path}/"
    data_file = None
    if posts:
        for name in (f"{posts.name}.11tydata.js", f"{posts.name}.11tydata.json", f"{posts.name}.json"):
            if (posts / name).is_file():
                data_file = posts / name
                break
    template = js_string(strip_js_comments(read_text(data_file)), "permalink") if data_file else None
    if template:
        text, unknown = eleventy_permalink(template)
        set_permalink(d, text, unknown, f"{rel(data_file, folder)}: permalink", default)
    else:
        d.guess("content.permalink", default, "Eleventy's default URL: the file's folder and name")
    # A posts collection of the folder's own files (getFilteredByGlob('src/blog/*.md')): its
    # sub-folders' pages are not posts.
    for glob in re.findall(r"""getFilteredByGlob\(\s*["']([^"'*]*/)?([^"'/]*)["']""", config):
        where, pattern = (glob[0] or "").removeprefix("./"), glob[1]
        if not posts or "**" in pattern or (folder / where).resolve() != posts.resolve():
            continue
        subs = sorted(p.name for p in posts.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))
                      and any(q.suffix in (".md", ".markdown") for q in p.rglob("*")))
        if subs:
            d.found("content.exclude", subs, f"{marker.name}: getFilteredByGlob('{glob[0] or ''}{pattern}') "
                    "takes the folder's own files")
        break
    passthrough = re.search(r"""addPassthroughCopy\(\s*\{\s*["']\./?public/?["']\s*:\s*["']/["']""", config)
    if passthrough:
        d.found("feeds.output_dir", "public", f"{marker.name}: public/ is copied to the site's root")
    else:
        d.guess("feeds.output_dir", "public", "add eleventyConfig.addPassthroughCopy({\"public\": \"/\"}) "
                "so Eleventy copies it to the site's root")
    return d

CONFIG_FILES = ("eleventy.config.js", "eleventy.config.mjs", "eleventy.config.cjs", "eleventy.config.ts",
                ".eleventy.js", ".eleventy.cjs")


def detect(folder: Path) -> Detected | None:
    marker = first_file(folder, *CONFIG_FILES)
    return _eleventy(folder, marker) if marker else None


def markdown_it_containers(config: str) -> dict[str, bool]:
    """The blocks an Eleventy config registers with markdown-it-container (`md.use(container,
    'note')`): each name, True where the plugin renders it (`<div class="note">`), False where
    the site gives its own `render` function (what it makes is not known here)."""
    var = re.search(r"""(?:(?:const|let|var)\s+([A-Za-z_$][\w$]*)\s*=\s*require\s*\(\s*|import\s+([A-Za-z_$][\w$]*)\s+from\s*)["']markdown-it-container["']""", config)
    if not var:
        return {}
    name = var.group(1) or var.group(2)
    found: dict[str, bool] = {}
    for m in re.finditer(r"\.use\s*\(\s*" + re.escape(name) + r"""\s*,\s*(["'`])([\w-]+)\1\s*(,\s*\{)?""", config):
        options = ""
        if m.group(3):
            end = brace_end(config, m.end() - 1)
            options = config[m.end():end - 1] if end != -1 else ""
        found[m.group(2)] = not re.search(r"(?<![\w$])render\s*[(:]", options)
    return found


# --- the engine's posts: what its files and front matter mean -------------------------

# A folder's data files, in the order Eleventy merges them (later wins): blog.json,
# blog.11tydata.json, blog.11tydata.js (also .mjs/.cjs; read as text, see _js_data).
_DATA_FILES = (".json", ".11tydata.json", ".11tydata.js", ".11tydata.mjs", ".11tydata.cjs")
_DATE_ANYWHERE = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
_DATE_IN_NAME = re.compile(r"\d{4}-\d{2}-\d{2}-(.*)")  # TemplateFileSlug._stripDateFromSlug: anywhere in the name


class Eleventy(Engine):
    """The default URL keeps the file name as it is, date prefix included ({stem}); a date is
    the first YYYY-MM-DD anywhere in the path; `permalink: false` and
    `eleventyExcludeFromCollections` keep a post out of the feeds; `permalink` may use
    {{ page.fileSlug }} and {{ title | slugify }}."""

    name = "eleventy"
    # markdown-it prints `{#id}` as written; a site's config may add markdown-it-container
    syntax = Syntax(liquid=True, markdown_plugins=True, js_yaml=True)  # gray-matter's js-yaml

    def data(self, meta: dict, path: Path, src: Source, config: Config) -> dict:
        """Directory data files (`blog/blog.json`, `blog/blog.11tydata.json`, from the top
        folder down) and the template's own (`x.11tydata.json`), under the front matter:
        later ones win key by key, and `tags` add up, as Eleventy's data cascade does."""
        merged: dict = {}
        folder = config.content_dir
        files = [folder / f"{folder.name}{ext}" for ext in _DATA_FILES]
        for name in src.folders:
            folder = folder / name
            files += [folder / f"{name}{ext}" for ext in _DATA_FILES]
        files += [path.with_name(f"{src.parts[-1].rsplit('.', 1)[0]}{ext}") for ext in _DATA_FILES]
        folders = site_folders(config)  # a data file is read only inside the site
        for layer in [eleventy_data_file(f, folders) for f in files] + [meta]:
            tags = as_list(merged.get("tags")) + as_list(layer.get("tags"))
            merged.update(layer)
            if tags:
                merged["tags"] = list(dict.fromkeys(tags))
        # page.filePathStem (TemplateFileSlug): the path under the input folder, without the
        # extension and with the name's date stripped (`/blog/x` for blog/2024-01-05-x.md).
        file_name = src.parts[-1].rsplit(".", 1)[0]
        m = _DATE_IN_NAME.search(file_name)
        try:
            folders = path.parent.relative_to(input_folder(config.root)).parts
        except ValueError:  # content.dir outside the Eleventy site: its own folders
            folders = src.folders
        merged["page"] = {"filePathStem": "/" + "/".join((*folders, m.group(1) if m else file_name))}
        return merged

    def site_variables(self, root: str, files: Any) -> dict[str, Any]:
        """Global data: each _data/<name>.json as `<name>`; and the markdown-it-container
        blocks the site's config registers (content/syntax.py renders them)."""
        found = eleventy_global_data(root, files)
        marker = next((os.path.join(root, m) for m in CONFIG_FILES if os.path.isfile(os.path.join(root, m))), None)
        text = files.load(marker, str) if marker else None
        if isinstance(text, str):
            registered = markdown_it_containers(strip_js_comments(text))
            if registered:
                found[MARKDOWN_PLUGINS] = {"containers": registered}
        return found

    def fingerprint(self, config: Config) -> str:
        h = hashlib.sha256()
        folders = site_folders(config)
        for root, dirs, names in os.walk(config.content_dir):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(n for n in names if n.endswith((".json", ".11tydata.js", ".11tydata.mjs",
                                                                ".11tydata.cjs"))):
                path = os.path.join(root, name)
                if os.path.islink(path) and inside(path, folders) is None:
                    continue  # never read (_json_file)
                try:
                    data = Path(root, name).read_bytes()
                except OSError:
                    continue
                h.update(f"{root}/{name}\0".encode("utf-8", "surrogatepass") + hashlib.sha256(data).digest())
        return h.hexdigest()

    def date_zone(self, value: Any, config: Config) -> tzinfo:
        """Every date without offset is UTC (Template.getMappedDate): js-yaml's timestamps and
        dates, Luxon's fromISO(value, {zone: "utc"}) for a string, the file name's date."""
        return timezone.utc

    def date_from_path(self, src: Source, path: Path) -> date | datetime | None:
        for part in src.parts:
            found = match_date(_DATE_ANYWHERE.search(part))
            if found is not None:
                return found
        return None

    def slug(self, meta: dict, src: Source, title: str) -> str:
        explicit = field_text(meta.get("slug"), "slug")
        if explicit:
            return kept_slug(explicit)
        # page.fileSlug (TemplateFileSlug.getSlug): the date prefix is stripped first, then an
        # `index` slug is the parent folder's name, its own date prefix stripped too
        # (`buildless/2024-09-08-index.md` is `buildless`).
        if src.base == "index" and not src.folder_post and src.folders:
            d = _DATE_PREFIX.match(src.folders[-1])
            return d.group(4) if d else src.folders[-1]
        return src.base

    def title_slug(self, title: str) -> str:
        return eleventy_slug(title)

    def held_back(self, meta: dict, src: Source) -> str:
        if meta.get("permalink") is False:
            return "permalink: false"
        if read_flag(meta.get("eleventyExcludeFromCollections"), "eleventyExcludeFromCollections"):
            return "eleventyExcludeFromCollections"
        return super().held_back(meta, src)

    def explicit_path(self, meta: dict, src: Source, fields: Fields) -> str | None:
        value = meta.get("permalink")
        if not isinstance(value, str) or not value.strip():
            return None
        path = value.strip()
        subs = {r"page\.fileSlug": fields.slug, r"title\s*\|\s*slugify": fields.title_slug,
                r"page\.filePathStem": meta["page"]["filePathStem"],
                r"page\.lang": fields.lang}
        for pattern, replacement in subs.items():
            path = re.sub(r"\{\{-?\s*" + pattern + r"\s*-?\}\}", lambda _m: replacement, path)
        if "{{" in path or "{%" in path:
            raise Skip(f"'permalink' is a template publisher cannot evaluate: {value.strip()[:80]!r} "
                       "(it understands {{ page.fileSlug }} and {{ title | slugify }})")
        # page.url: a permalink written to a folder's index.html is served at the folder.
        return path[:-len("index.html")] if path.endswith("/index.html") else path


def eleventy_data_file(path: Path, folders: tuple[str, ...]) -> dict:
    """An Eleventy data file's object; {} when there is none. A broken one is the post's
    problem: it would not build with Eleventy either; so is one outside the site (links.inside)."""
    try:
        if path.is_symlink() and inside(path, folders) is None:
            raise Skip(f"data file {path.name} is outside the site folder (a symbolic link out of it)")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as e:
        raise Skip(f"data file {path.name} cannot be read: {e}") from None
    if path.suffix in (".js", ".mjs", ".cjs"):
        return _js_data(text)
    try:
        data = load_json(text)  # bounded in depth: see datafiles.py
    except DataError as e:
        raise Skip(f"data file {path.name} refused: {e}") from None
    except json.JSONDecodeError as e:
        raise Skip(f"data file {path.name} is not valid JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None
    return data if isinstance(data, dict) else {}


def _js_data(text: str) -> dict:
    """What a JavaScript data file (`blog.11tydata.js`) exports as plain values, read as text,
    never run: `export default {...}` or `module.exports = {...}` with a string or `false`
    permalink, string tags, boolean flags (eleventy-base-blog's `{tags: ["posts"], layout: ...}`).
    A computed export (a function, a template literal) gives nothing for that key."""
    text = strip_js_comments(text)
    block = js_object(text, r"(?:export\s+default|module\.exports\s*=)")
    if block is None:
        return {}
    top = js_top_level(block)  # the same offsets as `block`, nested values blanked
    data: dict[str, Any] = {}
    key = re.search(r"(?<![\w$.])[\"']?permalink[\"']?\s*:", top)
    if key:
        permalink = js_string(block[key.start():], "permalink")
        if permalink is not None:
            data["permalink"] = permalink
        elif re.match(r"\s*false\b", block[key.end():]):
            data["permalink"] = False
    tags = re.search(r"(?<![\w$.])[\"']?tags[\"']?\s*:\s*(?:\[([^\]]*)\]|([\"'])((?:(?!\2).)*)\2)", block)
    if tags and tags.group(1) is not None and "${" not in tags.group(1):
        data["tags"] = [t for _q, t in re.findall(r"""(["'])((?:(?!\1).)*)\1""", tags.group(1))]
    elif tags and tags.group(3) is not None:
        data["tags"] = tags.group(3)
    for key in ("eleventyExcludeFromCollections", "draft"):
        flag = re.search(r"(?<![\w$.])[\"']?" + key + r"[\"']?\s*:\s*(true|false)\b", top)
        if flag:
            data[key] = flag.group(1) == "true"
    return data


def eleventy_global_data(root: str, files: Any, taken: Iterable[str] = ()) -> dict[str, Any]:
    """_data/<name>.json as `<name>`, but for the names in `taken`."""
    folder = os.path.join(root, "_data")
    found: dict[str, Any] = {}
    for name in files.names(folder):
        stem = name[:-5]
        if not name.endswith(".json") or stem in taken or stem in found:
            continue
        data = files.load(os.path.join(folder, name), load_json)
        if data is not None:
            found[stem] = data
    return found


RULES = Eleventy()
