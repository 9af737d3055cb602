"""`publisher init`: detect a blog's engine and write a commented config.yaml.

`detect(folder)` only reads: it asks each engine module (publisher/engines/) in turn whether
it knows the folder; the one that does reads the site's title, URL, language, time zone,
posts folder and URL pattern from the engine's own config. Every value is a Fact that says
where it came from, or why it is a guess; what no engine said is guessed here.
`render_config` renders the facts as YAML with a comment per key; it is written, never over
an existing file. An empty folder gets a starter
site instead: config.yaml and one example post.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import engines
from .config import DIALECTS, PLACEHOLDER_URL
from .engines.base import Detected, Fact, posts_folder, rel
from .errors import ConfigError

__all__ = ["Detected", "Fact", "InitReport", "detect", "init_site", "render_config"]


@dataclass
class InitReport:
    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    exit_status: int = 0


def detect(folder: Path) -> Detected:
    """Find the engine of the blog in `folder` and read what its config says. Reads only."""
    folder = Path(folder)
    return _finish(engines.detect(folder) or Detected(None), folder)


def _finish(d: Detected, folder: Path) -> Detected:
    """Fill what the engine's config did not say with guesses, each saying why."""
    f = d.facts
    if "site.title" not in f:
        d.guess("site.title", folder.resolve().name or "My blog", "the folder's name")
    if "site.url" not in f:
        d.guess("site.url", PLACEHOLDER_URL, "no site URL found: set your blog's address")
    else:  # an address without scheme ("//example.com", "example.com") cannot make links
        url = str(f["site.url"].value).rstrip("/")
        if url.startswith("//"):
            url = "https:" + url
        elif not re.match(r"https?://", url):
            url = "https://" + url
        f["site.url"].value = url
    if "site.language" not in f:
        d.guess("site.language", "en", "no language found")
    if d.engine and "content.dir" not in f:
        d.guess("content.dir", "content", "no posts folder found")
    if d.engine and "content.permalink" not in f:
        d.guess("content.permalink", "/blog/{slug}/", "no URL pattern found")
    if d.engine and "content.dialect" not in f:
        if d.engine in DIALECTS:
            d.found("content.dialect", d.engine, d.marker)
        else:  # an engine init knows before publisher reads its posts its own way
            d.guess("content.dialect", "auto", f"publisher has no {engines.label(d.engine)} dialect "
                    "yet: posts are read by publisher's own rules; check dates and URLs")
    return d


# --- writing ----------------------------------------------------------------------------

def _yaml_str(value: Any) -> str:
    return json.dumps(str(value), ensure_ascii=False)  # a JSON string is a YAML string


def _comment(fact: Fact | None) -> str:
    if fact is None:
        return ""
    return f"  # {'guessed: ' if fact.guessed else 'from '}{fact.source}"


def render_config(d: Detected) -> str:
    """The config.yaml text for what `detect` found: every key commented with its source."""
    f = d.facts
    engine = engines.label(d.engine)
    head = (f"# publisher's config for a {engine} blog, written by `publisher init` from {d.marker}.\n"
            if engine else "# publisher's config, written by `publisher init`.\n")
    lines = [head.rstrip("\n"),
             "# Each value says where it came from; check the guessed ones. Every key is documented",
             "# in publisher's README; `publisher check` validates this file.",
             "site:"]

    def key(indent: str, name: str, dotted: str, always: bool = True) -> None:
        fact = f.get(dotted)
        if fact is None and not always:
            return
        value = fact.value if fact else ""
        lines.append(f"{indent}{name}: {_yaml_str(value)}{_comment(fact)}")

    key("  ", "title", "site.title")
    key("  ", "url", "site.url")
    key("  ", "description", "site.description", always=False)
    key("  ", "language", "site.language")
    if "site.author.name" in f or "site.author.email" in f:
        lines.append("  author:")
        key("    ", "name", "site.author.name", always=False)
        key("    ", "email", "site.author.email", always=False)
    lines.append("content:")
    key("  ", "dir", "content.dir")
    if "content.dialect" in f:
        key("  ", "dialect", "content.dialect")
    else:
        lines.append("  dialect: auto  # posts as publisher reads them; " + "|".join(d for d in DIALECTS if d != "auto"))
    key("  ", "permalink", "content.permalink")
    if "content.exclude" in f:
        lines.append(f"  exclude: {json.dumps(f['content.exclude'].value)}{_comment(f['content.exclude'])}")
    key("  ", "markdown", "content.markdown", always=False)
    lines.append("feeds:")
    if "feeds.output_dir" in f:
        key("  ", "output_dir", "feeds.output_dir")
    else:
        lines.append('  output_dir: "public"  # feeds are served at the site\'s root')
    lines.append("  limit: 20  # newest N items per feed; 0 = all")
    lines.append("newsletter:")
    lines.append('  from: ""  # e.g. "Blog <news@example.org>": set it to mail digests')
    lines.append('  schedule: "0 9 * * 1"  # 5-field cron: when a digest may go out (Mondays 09:00)')
    if "newsletter.timezone" in f:
        key("  ", "timezone", "newsletter.timezone")
    else:
        lines.append('  timezone: "UTC"  # of the schedule, and of post dates without an offset')
    lines.append("smtp:")
    lines.append('  host: "127.0.0.1"  # your mail relay; the password comes only from PUBLISHER_SMTP_PASSWORD')
    lines.append("  port: 25")
    lines.append("  security: none  # none | starttls | ssl")
    lines.append("state:")
    lines.append('  database: ".publisher/state.db"  # what was mailed to whom; keep it, back it up')
    return "\n".join(lines) + "\n"


_STARTER_POST = """\
---
title: "Hello, world"
description: "The first post of this blog: how publisher turns it into feeds and a newsletter."
pubDate: {date}
author: "{author}"
tags: ["meta"]
featured: true
---

This is the first post. Write the next one beside it, in `content/blog/`, with the same
front matter: a `title`, a `pubDate`, and optionally a `description`, `tags` and `featured`.

## What happens next

- `publisher build` writes `rss.xml`, `atom.xml` and `feed.json` into `public/`.
- `publisher run`, from cron, also mails a weekly digest of new posts to your subscribers.

Edit `config.yaml` to set your blog's title and address.
"""


def _is_empty(folder: Path) -> bool:
    return not any(not p.name.startswith(".") for p in folder.iterdir())


def init_site(folder: Path, config_path: Path, today: datetime | None = None) -> InitReport:
    """Detect the blog in `folder` and write `config_path`; in an empty folder, a starter site.
    Raises ConfigError (exit 2) if config_path exists: it is never overwritten."""
    folder = Path(folder)
    config_path = Path(config_path)
    if config_path.exists():
        raise ConfigError(f"{config_path}: already exists; nothing written (publisher init never "
                          f"overwrites a config: move it away, or pass --config OTHER.yaml)")
    if not folder.is_dir():
        raise ConfigError(f"{folder}: no such folder")
    report = InitReport()
    if _is_empty(folder):
        today = today or datetime.now(timezone.utc)
        d = Detected(None)
        d.guess("site.title", "My Blog", "a starter site")
        d.guess("site.url", PLACEHOLDER_URL, "a starter site: set your blog's address")
        d.guess("site.language", "en", "a starter site")
        d.found("content.dir", "content", "the starter's posts folder")
        d.found("content.permalink", "/blog/{slug}/", "the starter's URLs")
        post = folder / "content" / "blog" / "hello-world.md"
        post.parent.mkdir(parents=True, exist_ok=True)
        post.write_text(_STARTER_POST.format(date=today.strftime("%Y-%m-%dT00:00:00Z"),
                                             author="My Blog"), encoding="utf-8")
        _write(config_path, render_config(d))
        report.lines.append(f"empty folder: wrote a starter site: {config_path.name} and "
                            f"{rel(post, folder)}")
        report.lines.append(ignore_private_files(config_path.parent))
        report.lines.append("next: edit config.yaml (title, url), then run `publisher build`")
        return report
    d = detect(folder)
    if d.engine:
        report.lines.append(f"found: {engines.label(d.engine)} blog ({d.marker})")
    else:
        known = ", ".join(e.LABEL for e in engines.ENGINES)
        report.lines.append(f"found: no known engine ({known}); writing a plain config")
        content = folder / "content"
        posts = content if content.is_dir() else posts_folder(folder, folder)
        if posts:
            d.guess("content.dir", rel(posts, folder), "the folder holding the most Markdown")
        else:
            d.guess("content.dir", "content", "no Markdown found")
        d.guess("content.permalink", "/blog/{slug}/", "publisher's default URLs")
        d.guess("feeds.output_dir", "public", "publisher's default")
    for key, fact in d.facts.items():
        if key == "content.dialect" and not fact.guessed:
            continue
        kind = "guessed" if fact.guessed else "found"
        report.lines.append(f"{kind}: {key} = {fact.value} ({fact.source})")
    for note in d.notes:
        report.lines.append(f"note: {note}")
    _write(config_path, render_config(d))
    report.lines.append(f"wrote {config_path}; check the guessed values, then run `publisher check`")
    report.lines.append(ignore_private_files(config_path.parent))
    return report


# What publisher keeps beside config.yaml that holds subscribers' addresses and tokens: the
# state database (render_config's state.database) and its backups, the --dry-run messages and
# the preview. None of it belongs in the blog's repository (often public).
PRIVATE_PATHS = (".publisher/", "outbox/", "preview/")


def ignore_private_files(folder: Path) -> str:
    """Add PRIVATE_PATHS to folder/.gitignore (the entries missing only); the report line."""
    path = folder / ".gitignore"
    try:
        text = path.read_text(encoding="utf-8") if path.exists() else ""
        present = {line.strip().lstrip("/") for line in text.splitlines()}
        missing = [entry for entry in PRIVATE_PATHS if entry not in present and entry.rstrip("/") not in present]
        if not missing:
            return f"{path.name}: already ignores {', '.join(PRIVATE_PATHS)}"
        block = "# publisher: subscribers' addresses and tokens, never committed\n" + "\n".join(missing) + "\n"
        with open(path, "a", encoding="utf-8") as f:
            f.write(("\n" if text and not text.endswith("\n") else "") + block)
    except (OSError, UnicodeDecodeError) as e:
        why = e.strerror if isinstance(e, OSError) else "not UTF-8"
        return (f"warning: {path}: cannot add {', '.join(PRIVATE_PATHS)} ({why}): keep them out of "
                f"git yourself, they hold subscribers' addresses")
    return f"{path.name}: ignoring {', '.join(missing)} (subscribers' addresses and tokens)"


def _write(path: Path, text: str) -> None:
    try:
        with open(path, "x", encoding="utf-8") as f:  # "x": never over a file that appeared meanwhile
            f.write(text)
    except FileExistsError as e:
        raise ConfigError(f"{path}: already exists; nothing written") from e
    except OSError as e:
        raise ConfigError(f"{path}: cannot write: {e.strerror}") from e
