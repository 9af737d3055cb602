"""The site configuration files some engines' post rules depend on, read once per change:
Jekyll's _config.yml (is jekyll-feed the feed?) and Hexo's (new_post_name, post_asset_folder),
Eleventy's directory data files; and Hexo's slugize and file name pattern. dialects.py asks; nothing here knows a Post."""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from pathlib import Path

import yaml

from ..config import Config
from ..datafiles import DataError, load_json, load_yaml
from .frontmatter import Skip
from .links import inside, site_folders


def hexo_slugize(text: str) -> str:
    """hexo-util's slugize (what :post_title is): diacritics dropped, control characters
    removed, each run of spaces and ~`!@#$%^&*()-_+=[]{}|\\;:"'<>,.?/ one '-', trimmed; case kept
    (filename_case: 0, the default)."""
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    text = re.sub(r"[\x00-\x1f]", "", text)
    text = re.sub(r"""[\s~`!@#$%^&*()\-_+=\[\]{}|\\;:"'<>,.?/]+""", "-", text)
    return text.strip("-")


_HEXO_SEGMENTS = {"year": r"(\d{4})", "month": r"(\d{2})", "day": r"(\d{2})", "i_month": r"(\d{1,2})",
                  "i_day": r"(\d{1,2})", "hash": r"([0-9a-f]{12})"}


def hexo_filename(pattern: str, rel: str) -> dict[str, str]:
    """hexo-util's Permalink(new_post_name without its extension).parse(path): {} when the
    path does not match."""
    pattern = pattern.rsplit(".", 1)[0] if "." in pattern.rsplit("/", 1)[-1] else pattern
    names: list[str] = []

    def segment(m: re.Match) -> str:
        names.append(m.group(1))
        return _HEXO_SEGMENTS.get(m.group(1), "(.+?)")
    regex = re.sub(r":(\w+)", segment, re.escape(pattern).replace("\\:", ":"))
    m = re.fullmatch(regex, rel)
    return dict(zip(names, m.groups())) if m else {}


def hexo_config(config: Config) -> dict:
    """The Hexo site's _config.yml (at the site folder, or above content.dir's source/_posts)."""
    folders = site_folders(config)
    for folder in (config.root, config.content_dir, config.content_dir.parent, config.content_dir.parent.parent):
        path = Path(folder) / "_config.yml"
        if path.is_file() and inside(path, folders) is not None:
            try:
                st = path.stat()
            except OSError:
                return {}
            return _yaml_mapping(str(path), st.st_mtime_ns, st.st_size)
    return {}


@functools.lru_cache(maxsize=8)
def _yaml_mapping(path: str, _mtime_ns: int, _size: int) -> dict:
    try:
        data = load_yaml(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, DataError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def uses_jekyll_feed(config: Config) -> bool:
    """Whether the Jekyll site's feed is jekyll-feed's: named in its _config.yml's `plugins`
    (`gems` before Jekyll 3.5), or in its Gemfile's jekyll_plugins group. The site is the
    folder of config.yaml, or of content.dir (`.` or `_posts`) when _config.yml is there."""
    folders = site_folders(config)
    for folder in (config.root, config.content_dir, config.content_dir.parent):
        path = Path(folder) / "_config.yml"
        if path.is_file() and inside(path, folders) is not None:
            try:
                st = path.stat()
            except OSError:
                return False
            return _names_jekyll_feed(str(path), st.st_mtime_ns, st.st_size)
    return False


def _names_jekyll_feed(path: str, mtime_ns: int, size: int) -> bool:
    data = _yaml_mapping(path, mtime_ns, size)
    for key in ("plugins", "gems"):
        if isinstance(data.get(key), list) and "jekyll-feed" in data[key]:
            return True
    try:
        gemfile = Path(path).with_name("Gemfile").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    return "jekyll_plugins" in gemfile and re.search(r"""gem\s+["']jekyll-feed["']""", gemfile) is not None


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
    try:
        data = load_json(text)  # bounded in depth: see datafiles.py
    except DataError as e:
        raise Skip(f"data file {path.name} refused: {e}") from None
    except json.JSONDecodeError as e:
        raise Skip(f"data file {path.name} is not valid JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None
    return data if isinstance(data, dict) else {}
