"""Shared helpers for the benchmarks: a generated site, a Hugo twin of it, a minimal SMTP
sink, and timing that alternates the measured command with its baseline.

Every benchmark reports a ratio against a baseline measured in the same run, on the same
machine, so the figures mean something on any machine (absolute times do not).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
PYTHON = sys.executable
EXAMPLE = REPO.parent / "shared" / "examples" / "product-engineer-collaboration.md"
HUGO = shutil.which("hugo")

# 40 tags, each post has 2-4: a realistic spread, so the site has 41 feed sets (home + tags)
# and the posts that reach some feed are a small, fixed share of a large site.
TAGS = [
    "product management", "collaboration", "engineering", "teamwork", "discovery", "roadmaps",
    "pricing", "analytics", "design", "research", "hiring", "leadership", "strategy", "growth",
    "onboarding", "retention", "experiments", "metrics", "okrs", "planning", "delivery",
    "quality", "testing", "devops", "architecture", "api design", "security", "performance",
    "accessibility", "mobile", "web", "data", "ml", "support", "sales", "marketing", "content",
    "community", "culture", "remote work",
]
FEEDS_LIMIT = 20
SITE_URL = "https://bench.example.org"
# Four hours apart from 2010: even 20,000 posts end in 2019, so none is in the future.
FIRST_DATE = datetime(2010, 1, 1, tzinfo=timezone.utc)


# --- the site -----------------------------------------------------------------------------

def _example_body() -> str:
    """The example post's Markdown body, without its front matter."""
    text = EXAMPLE.read_text(encoding="utf-8")
    return text.split("\n---\n", 1)[1]


def post_text(i: int, body: str, rng: random.Random) -> str:
    """Post number i: the example's shape, with its own title, date, tags and a line of its own."""
    date = FIRST_DATE + timedelta(hours=4 * i)
    tags = rng.sample(TAGS, rng.randint(2, 4))
    featured = "true" if i % 25 == 0 else "false"
    return (
        "---\n"
        f'title: "Post {i}: Product-Engineer Collaboration, part {i}"\n'
        f'description: "How to build effective partnerships between product managers and '
        f'engineers, installment {i}."\n'
        f"pubDate: {date.strftime('%Y-%m-%dT%H:%M:%S.000Z')}\n"
        'author: "Full Product Dev Team"\n'
        f"tags: {json.dumps(tags)}\n"
        f"featured: {featured}\n"
        "---\n"
        f"\nThis is installment {i} of the series; see [the previous one](../post-{max(i - 1, 0):05d}/).\n"
        + body
    )


def write_posts(content: Path, start: int, count: int, seed: int = 6) -> list[Path]:
    """Write posts start .. start+count-1 under content/ (in 100-post folders, as real sites
    nest them). Deterministic: the same numbers give the same bytes."""
    body = _example_body()
    paths = []
    for i in range(start, start + count):
        rng = random.Random(seed * 1_000_003 + i)
        folder = content / f"{(i // 100):03d}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"post-{i:05d}.md"
        path.write_text(post_text(i, body, rng), encoding="utf-8")
        paths.append(path)
    return paths


def write_config(root: Path, *, smtp_port: int = 2525, extra: dict | None = None) -> Path:
    newsletter = {
        "from": "Bench Blog <news@bench.example.org>",
        "schedule": "0 9 * * 1",
        "timezone": "UTC",
        "web_url": SITE_URL + "/newsletter",
    }
    data = {
        "site": {"title": "Bench Blog", "url": SITE_URL, "description": "A generated site",
                 "author": {"name": "Bench Author", "email": "author@bench.example.org"}},
        "content": {"dir": "content", "permalink": "/blog/{slug}/"},
        "feeds": {"output_dir": "public", "limit": FEEDS_LIMIT},
        "newsletter": newsletter,
        "smtp": {"host": "127.0.0.1", "port": smtp_port, "security": "none", "timeout": 60.0},
        "state": {"database": "state.db"},
    }
    for section, values in (extra or {}).items():
        data.setdefault(section, {}).update(values)
    path = root / "config.yaml"
    # JSON is YAML: no need to import PyYAML here.
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return path


def make_site(root: Path, posts: int, **config) -> Path:
    """A fresh publisher site with `posts` generated posts; returns its config path."""
    if root.exists():
        shutil.rmtree(root)
    (root / "content").mkdir(parents=True)
    write_posts(root / "content", 0, posts)
    return write_config(root, **config)


def reset_outputs(root: Path) -> None:
    """Make the next build cold: no state database (so no caches) and no feeds."""
    for name in ("state.db", "state.db-wal", "state.db-shm", "state.db.lock"):
        (root / name).unlink(missing_ok=True)
    shutil.rmtree(root / "public", ignore_errors=True)


def publisher_cmd(config: Path, *args: str) -> list[str]:
    return [PYTHON, "-m", "publisher.cli", "--config", str(config), *args]


# --- Hugo ---------------------------------------------------------------------------------

# Hugo building what `publisher build` builds: the site's RSS and one RSS per tag, each with
# the newest feeds.limit posts and their full content (Hugo's own RSS template carries only
# summaries, so the site gets a template that emits .Content too).
HUGO_CONFIG = f"""\
baseURL: "{SITE_URL}/"
title: "Bench Blog"
languageCode: en
# The site's RSS and one RSS per tag; pages are listed (with their permalinks and content)
# but never written as pages of their own.
disableKinds: [taxonomy, section, sitemap, robotsTXT, "404"]
ignoreErrors: ["error-disable-taxonomy"]
outputs:
  home: [RSS]
  term: [RSS]
  page: []
taxonomies:
  tag: tags
rssLimit: {FEEDS_LIMIT}
cascade:
  - _target:
      kind: page
    _build:
      render: never
      list: always
permalinks:
  posts: /blog/:slug/
"""

# Hugo's own RSS template, with the full content as content:encoded (as publisher writes it).
HUGO_RSS = """\
{{- $pages := .RegularPagesRecursive -}}
{{- if .IsHome }}{{ $pages = site.RegularPages }}{{ end -}}
{{- $pages = $pages.ByPublishDate.Reverse | first site.Config.Services.RSS.Limit -}}
{{- printf "<?xml version=\\"1.0\\" encoding=\\"utf-8\\" standalone=\\"yes\\"?>" | safeHTML }}
<rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom" xmlns:content="http://purl.org/rss/1.0/modules/content/">
  <channel>
    <title>{{ site.Title }}{{ if not .IsHome }} — {{ .Title }}{{ end }}</title>
    <link>{{ .Permalink }}</link>
    <description>{{ .Title }}</description>
    <language>{{ site.LanguageCode }}</language>
    {{ with .OutputFormats.Get "RSS" }}{{ printf "<atom:link href=%q rel=\\"self\\" type=%q />" .Permalink .MediaType | safeHTML }}{{ end }}
    {{- range $pages }}
    <item>
      <title>{{ .Title }}</title>
      <link>{{ .Permalink }}</link>
      <pubDate>{{ .PublishDate.Format "Mon, 02 Jan 2006 15:04:05 -0700" | safeHTML }}</pubDate>
      <guid>{{ .Permalink }}</guid>
      {{- range .Params.tags }}
      <category>{{ . }}</category>
      {{- end }}
      <description>{{ .Summary | html }}</description>
      <content:encoded>{{ .Content | html }}</content:encoded>
    </item>
    {{- end }}
  </channel>
</rss>
"""


def make_hugo_site(root: Path, content_from: Path) -> Path:
    """The Hugo twin of a bench site: content/ holds the same post files (hard links: same
    bytes), built into full-content home and tag RSS feeds."""
    if HUGO is None:
        raise SystemExit("hugo is not installed (apt-get install hugo): cannot measure the baseline")
    if root.exists():
        shutil.rmtree(root)
    (root / "content" / "posts").mkdir(parents=True)
    (root / "layouts" / "_default").mkdir(parents=True)
    (root / "hugo.yaml").write_text(HUGO_CONFIG, encoding="utf-8")
    (root / "layouts" / "_default" / "rss.xml").write_text(HUGO_RSS, encoding="utf-8")
    for path in sorted(content_from.rglob("*.md")):
        link_post(path, content_from, root)
    return root


def link_post(path: Path, content_from: Path, hugo_site: Path) -> None:
    """One post of the bench site into its Hugo twin (a hard link: same bytes)."""
    target = hugo_site / "content" / "posts" / path.relative_to(content_from)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.link(path, target)


def hugo_feed_counts(destination: Path) -> tuple[int, int]:
    """(RSS files, items in the home feed) of a Hugo build into `destination`."""
    feeds = list(destination.rglob("index.xml"))
    home = (destination / "index.xml").read_text(encoding="utf-8").count("<item>")
    return len(feeds), home


def hugo_cmd(site: Path, destination: Path) -> list[str]:
    return [HUGO, "--quiet", "--source", str(site), "--destination", str(destination),
            "--cacheDir", str(site / ".hugo_cache")]


# --- the SMTP sink ------------------------------------------------------------------------

class Sink:
    """A minimal SMTP server in its own process on 127.0.0.1: 250 to everything, DATA discarded."""

    def __init__(self, pipelining: bool = True):
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.args = [] if pipelining else ["--no-pipelining"]

    def __enter__(self) -> "Sink":
        self.proc = subprocess.Popen([PYTHON, str(BENCH / "_sink.py"), *self.args],
                                     stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("PORT "):
            self.proc.kill()
            raise RuntimeError(f"SMTP sink did not start: {line!r}")
        self.port = int(line.split()[1])
        return self

    def count(self) -> int:
        """Messages accepted so far (asks the sink over its own command: XCOUNT)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
            f = s.makefile("rwb")
            f.readline()
            f.write(b"XCOUNT\r\n")
            f.flush()
            reply = f.readline().decode()
            f.write(b"QUIT\r\n")
            f.flush()
        return int(reply.split()[1])

    def __exit__(self, *exc) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# --- timing -------------------------------------------------------------------------------

def allow_bytecode_cache() -> None:
    """Let the timed commands cache compiled bytecode (__pycache__), as an installed package
    has it: with PYTHONDONTWRITEBYTECODE set (some shells and CI set it), every run of a
    command would compile each of publisher's modules from source again, a cost no user pays."""
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)


@dataclass
class Series:
    name: str
    times: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    def describe(self) -> str:
        return (f"{self.name}: median {self.median:.3f}s (min {min(self.times):.3f}s, "
                f"max {max(self.times):.3f}s, n={len(self.times)})")


def run_timed(cmd: list[str], *, cwd: Path | None = None, env: dict | None = None,
              check: bool = True) -> float:
    """Wall time of one command, from spawn to exit (start-up included: users feel it)."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if check and proc.returncode not in (0,):
        raise RuntimeError(f"{' '.join(map(str, cmd))} exited {proc.returncode}:\n"
                           f"{proc.stdout.decode()}\n{proc.stderr.decode()}")
    return elapsed


def alternate(runs: int, measured: tuple[str, callable, callable],
              baseline: tuple[str, callable, callable]) -> tuple[Series, Series]:
    """Time `measured` and `baseline` in turns (A B A B ...), `runs` times each.

    Each is (name, prepare, run): prepare() sets the stage untimed, run() returns seconds.
    Alternating spreads slow phases of the machine over both sides evenly."""
    a, b = Series(measured[0], []), Series(baseline[0], [])
    for i in range(runs):
        order = ((measured, a), (baseline, b)) if i % 2 == 0 else ((baseline, b), (measured, a))
        for (_name, prepare, run), series in order:
            prepare()
            series.times.append(run())
    return a, b


def verdict(label: str, ratio: float, limit: float, *, what: str = "ratio") -> bool:
    ok = ratio <= limit
    print(f"RESULT {label}: {what} {ratio:.2f}x (target <= {limit:g}x): {'PASS' if ok else 'FAIL'}")
    return ok


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--runs", type=int, default=5, help="timed runs of each side (default 5)")
    p.add_argument("--workdir", type=Path, default=None,
                   help="where to generate the sites (default: a fresh temporary folder)")
    p.add_argument("--keep", action="store_true", help="keep the generated files")
    p.add_argument("--strict", action="store_true", help="exit 1 when the target is missed")
    return p


class Workdir:
    def __init__(self, given: Path | None, keep: bool):
        import tempfile

        self.keep = keep or given is not None
        self.path = given or Path(tempfile.mkdtemp(prefix="publisher-bench-"))
        self.path.mkdir(parents=True, exist_ok=True)

    def __enter__(self) -> Path:
        return self.path

    def __exit__(self, *exc) -> None:
        if not self.keep:
            shutil.rmtree(self.path, ignore_errors=True)
