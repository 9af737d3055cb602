"""`publisher build` of a generated site vs Hugo building the same feeds: cold, and after one new post.

Both sides build the same feeds: the site's RSS and one RSS per tag (40 tags), each with the
newest feeds.limit items and their FULL rendered content (Hugo through a small RSS layout
written into its site; publisher also writes Atom and JSON Feed for each). Hugo has no
incremental build: every Hugo run builds everything into a fresh folder.

- cold: a fresh process, no state database (so no scan or render cache) and no feeds folder.
  Target: publisher's median <= 1.0x Hugo's (issue #29).
- one new post: the site was built before; one post is added (newest, 2 tags), then
  `publisher build`. Hugo builds the same posts (the new one included). Target: <= 0.35x.

Also printed, outside the verdicts: the peak memory (max RSS, from wait4) of one cold build,
and per post (issue #29 asks <= 4 KB a post at 20,000 posts: bench/scale.py's sizes).

    .venv/bin/python bench/build_vs_hugo.py --posts 2000 --runs 5
"""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import _common as c
from _common import link_post, make_hugo_site

TARGET_COLD = 1.0
TARGET_ONE_POST = 0.35


def new_post(site: Path, hugo_site: Path, number: int) -> None:
    """Post `number`, dated after every other one (so it is in the site's feeds and its
    tags'), in both sites."""
    body = c._example_body()
    text = c.post_text(number, body, random.Random(number))
    date = c.FIRST_DATE + timedelta(hours=4 * number)
    text = re.sub(r"^pubDate: .*$", f"pubDate: {date.strftime('%Y-%m-%dT%H:%M:%S.000Z')}",
                  text, count=1, flags=re.M)
    path = site / "content" / "new" / f"post-{number:05d}.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    link_post(path, site / "content", hugo_site)


def peak_rss_kb(cmd: list[str], env: dict) -> int:
    """The largest resident set of `cmd`'s process and the workers it forked and waited for
    (ru_maxrss of wait4, in KB on Linux), untimed."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} exited {proc.returncode}: {proc.stderr.read().decode()}")
    return usage.ru_maxrss


def feeds_built(site: Path, hugo_out: Path) -> str:
    """What both sides wrote, and a check that each holds the full content of its posts."""
    rss = (site / "public" / "rss.xml").read_text(encoding="utf-8")
    hugo_rss = (hugo_out / "index.xml").read_text(encoding="utf-8")
    tag_feeds = len(list((site / "public" / "tags").glob("*/rss.xml")))
    hugo_tag_feeds = len(list((hugo_out / "tags").glob("*/index.xml")))
    full = "Daily Collaboration" in rss and "Daily Collaboration" in hugo_rss
    return (f"publisher rss.xml items: {rss.count('<item>')}, tag feeds: {tag_feeds}; "
            f"hugo index.xml items: {hugo_rss.count('<item>')}, tag feeds: {hugo_tag_feeds}; "
            f"full content in both: {'yes' if full else 'NO'}")


def main(argv=None) -> int:
    p = c.parser(__doc__.splitlines()[0])
    p.add_argument("--posts", type=int, default=2000)
    args = p.parse_args(argv)
    with c.Workdir(args.workdir, args.keep) as work:
        site = work / "site"
        config = c.make_site(site, args.posts)
        hugo_site = make_hugo_site(work / "hugo", site / "content")
        hugo_out = work / "hugo-public"
        print(f"build: {args.posts} posts, {args.runs} alternating runs each, in {work}")

        def hugo_fresh():
            shutil.rmtree(hugo_out, ignore_errors=True)

        # As installed, Python modules are compiled once (pip writes .pyc files); a shell
        # that sets PYTHONDONTWRITEBYTECODE would make every run compile publisher's source.
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}

        def build():
            return c.run_timed(c.publisher_cmd(config, "build", "--quiet"), env=env)

        build()  # untimed: compiles the modules once, as an install does
        c.reset_outputs(site)
        peak = peak_rss_kb(c.publisher_cmd(config, "build", "--quiet"), env)
        print(f"  peak memory of a cold build: {peak / 1024:.0f} MB, "
              f"{peak / args.posts:.1f} KB a post ({args.posts} posts)")

        def hugo():
            return c.run_timed(c.hugo_cmd(hugo_site, hugo_out))

        cold, cold_hugo = c.alternate(
            args.runs,
            ("publisher build (cold)", lambda: c.reset_outputs(site), build),
            ("hugo (home + tag RSS, full content)", hugo_fresh, hugo))
        print("  cold: " + feeds_built(site, hugo_out))

        added = iter(range(args.posts, args.posts + 10 * args.runs + 10))
        build()  # untimed: the site as it was, built

        def add_one():
            hugo_fresh()
            new_post(site, hugo_site, next(added))

        one, one_hugo = c.alternate(
            args.runs,
            ("publisher build (one new post)", lambda: new_post(site, hugo_site, next(added)), build),
            ("hugo (home + tag RSS, full content)", add_one, hugo))
        print("  one new post: " + feeds_built(site, hugo_out))

        for series in (cold, cold_hugo, one, one_hugo):
            print("  " + series.describe())
        ok = c.verdict(f"cold build {args.posts} posts vs hugo", cold.median / cold_hugo.median,
                       TARGET_COLD)
        ok &= c.verdict(f"build after one new post, {args.posts} posts, vs hugo",
                        one.median / one_hugo.median, TARGET_ONE_POST)
    return 0 if ok or not args.strict else 1


if __name__ == "__main__":
    sys.exit(main())
