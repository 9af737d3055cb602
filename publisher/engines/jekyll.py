"""Jekyll: _config.yml, or a _posts/ of YYYY-MM-DD-* files (GitHub Pages' defaults)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from .base import (
    SKIP_DIRS, Detected, first_file, load_data, read_text, rel, set_permalink, translate,
    valid_timezone,
)

NAME = "jekyll"
LABEL = "Jekyll"


_JEKYLL_STYLES = {  # jekyll/lib/jekyll/utils.rb: the named permalink styles
    "date": "/:categories/:year/:month/:day/:title:output_ext",
    "pretty": "/:categories/:year/:month/:day/:title/",
    "ordinal": "/:categories/:year/:y_day/:title:output_ext",
    "weekdate": "/:categories/:year/W:week/:short_day/:title:output_ext",
    "none": "/:categories/:title:output_ext",
}
_JEKYLL_TOKENS = {"year": "{year}", "month": "{month}", "i_month": "{month}", "day": "{day}",
                  "i_day": "{day}", "title": "{slug}", "slug": "{slug}", "name": "{slug}",
                  "categories": "{categories}", "output_ext": ".html", "lang": "{lang}"}

def jekyll_permalink(style: str) -> tuple[str, list[str]]:
    pattern = _JEKYLL_STYLES.get(style, style)
    return translate(pattern, _JEKYLL_TOKENS, r":([a-z_]+)")



def _jekyll(folder: Path, marker: Path) -> Detected:
    d = Detected("jekyll", marker.name + ("/" if marker.is_dir() else ""))
    if marker.is_dir():  # no _config.yml: GitHub Pages builds such a site with Jekyll's defaults
        data = {}
    else:
        data = load_data(marker)
        if data is None:
            d.notes.append(f"{marker.name}: not readable as YAML; nothing read from it")
            data = {}
    name = "_config.yml" if marker.is_dir() else marker.name
    if data.get("title"):
        d.found("site.title", str(data["title"]), f"{name}: title")
    elif isinstance(data.get("name"), str) and data["name"].strip():  # jekyll-feed's fallback
        d.found("site.title", data["name"].strip(), f"{name}: name")
    else:
        _feed_template(d, folder)
    url = str(data.get("url") or "").rstrip("/")
    if url:
        baseurl = str(data.get("baseurl") or "").strip("/")
        if data.get("enforce_ssl") and url.startswith("http://"):  # the site redirects to https
            url = "https://" + url.removeprefix("http://")
        d.found("site.url", url + ("/" + baseurl if baseurl else ""),
                f"{name}: url" + (" + baseurl" if baseurl else "")
                + (" (https: enforce_ssl)" if data.get("enforce_ssl") else ""))
    elif (folder / "CNAME").is_file() and read_text(folder / "CNAME").strip():
        domain = read_text(folder / "CNAME").split()[0].strip("/")
        d.guess("site.url", "https://" + domain, "CNAME: the GitHub Pages domain")
    for key in ("lang", "locale", "language"):
        if data.get(key):
            d.found("site.language", str(data[key]).replace("_", "-"), f"{name}: {key}")
            break
    if isinstance(data.get("description"), str):
        d.found("site.description", data["description"].strip(), f"{name}: description")
    author = data.get("author")
    if isinstance(author, dict):
        if author.get("name"):
            d.found("site.author.name", str(author["name"]), f"{name}: author.name")
        if author.get("email"):
            d.found("site.author.email", str(author["email"]), f"{name}: author.email")
    elif isinstance(author, str) and author:
        d.found("site.author.name", author, f"{name}: author")
    if isinstance(data.get("email"), str) and data["email"].strip() and "site.author.email" not in d.facts:
        d.found("site.author.email", data["email"].strip(), f"{name}: email")
    if data.get("timezone") and valid_timezone(data["timezone"]):
        d.found("newsletter.timezone", str(data["timezone"]), f"{name}: timezone")
    collections = str(data.get("collections_dir") or "").strip("/")
    posts = folder / collections / "_posts" if collections else folder / "_posts"
    nested = [] if posts.is_dir() else _nested_posts(posts.parent)
    if len(nested) == 1:  # en/news/_posts: folders above _posts are categories to Jekyll
        d.found("content.dir", rel(nested[0], folder), "Jekyll's posts folder (the only _posts/)")
    elif nested:
        common = Path(os.path.commonpath(nested))
        d.guess("content.dir", rel(common, folder) if common != folder else ".",
                f"the folder holding every _posts/ ({', '.join(rel(p, folder) for p in nested)})")
    else:
        d.found("content.dir", rel(posts, folder), "Jekyll's posts folder")
    style, where = _permalink_setting(data, name)
    if style:
        text, unknown = jekyll_permalink(str(style))
        set_permalink(d, text, unknown, f"{where}: {style}", jekyll_permalink("date")[0])
    else:
        d.guess("content.permalink", jekyll_permalink("date")[0],
                "Jekyll's default permalink style (date)")
    d.guess("feeds.output_dir", "public", "Jekyll wipes _site/ at each build: copy public/ to "
            "the site's root when you deploy")
    d.notes.append(f"add config.yaml, public and .publisher to {name}'s exclude: list, so Jekyll "
                   "does not publish them")
    return d

def _feed_template(d: Detected, folder: Path) -> None:
    """No title in the config (GitHub Pages sites often have none): the site's own feed
    template (atom.xml, feed.xml, rss.xml at its root) may hold it, and the author, literally."""
    for feed_name in ("atom.xml", "feed.xml", "rss.xml"):
        text = read_text(folder / feed_name)
        title = re.search(r"<title>([^<{]+)</title>", text)
        if title and title.group(1).strip():
            d.guess("site.title", title.group(1).strip(), f"{feed_name}: the feed's <title>")
            author = re.search(r"<author>\s*<name>([^<{]+)</name>", text)
            if author and author.group(1).strip():
                d.guess("site.author.name", author.group(1).strip(), f"{feed_name}: the feed's <author>")
            return


def _nested_posts(base: Path) -> list[Path]:
    """The _posts/ folders below `base` (a site per language: en/news/_posts, fr/news/_posts)."""
    found = []
    for root, dirs, _files in os.walk(base):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.startswith(".") and d != "_site")
        if "_posts" in dirs:
            found.append(Path(root) / "_posts")
            dirs.remove("_posts")
    return found


def _permalink_setting(data: dict, name: str) -> tuple[object, str]:
    """The permalink a post gets, as Jekyll decides it: a front matter default for the posts
    (`defaults:` with `scope: {type: posts}` and no narrower path) beats the posts
    collection's `permalink`, which beats the site's `permalink`."""
    defaults = data.get("defaults") if isinstance(data.get("defaults"), list) else []
    for i, entry in enumerate(defaults):
        if not isinstance(entry, dict):
            continue
        scope = entry.get("scope") if isinstance(entry.get("scope"), dict) else {}
        values = entry.get("values") if isinstance(entry.get("values"), dict) else {}
        if scope.get("type") == "posts" and not str(scope.get("path") or "").strip("/") and values.get("permalink"):
            return values["permalink"], f"{name}: defaults[{i}] (type posts) permalink"
    collections = data.get("collections") if isinstance(data.get("collections"), dict) else {}
    posts = collections.get("posts") if isinstance(collections.get("posts"), dict) else {}
    if posts.get("permalink"):
        return posts["permalink"], f"{name}: collections.posts.permalink"
    return data.get("permalink"), f"{name}: permalink"


def detect(folder: Path) -> Detected | None:
    marker = first_file(folder, "_config.yml", "_config.yaml")
    if marker:
        return _jekyll(folder, marker)
    posts = folder / "_posts"
    if posts.is_dir() and any(re.match(r"\d{4}-\d\d-\d\d-", p.name) for p in posts.iterdir()):
        return _jekyll(folder, posts)  # _posts/YYYY-MM-DD-*: Jekyll's alone
    return None
