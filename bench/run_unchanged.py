"""`publisher run` on a site where nothing changed (what cron repeats all day) vs Hugo
building the same posts' feeds from scratch: the home RSS and one RSS per tag, each with the
posts' full content, as publisher's feeds have them.

The site has had its first run (baseline) and a second that found nothing to do, so the scan
cache, the render cache, the feeds and the idle stamp are in place, and no mail is due.
Target: publisher's median at most 0.15x Hugo's (issue #29).

    .venv/bin/python bench/run_unchanged.py --posts 2000 --runs 5
"""

from __future__ import annotations

import shutil
import sys

import _common as c

TARGET = 0.15


def main(argv=None) -> int:
    p = c.parser(__doc__.splitlines()[0])
    p.add_argument("--posts", type=int, default=2000)
    args = p.parse_args(argv)
    c.allow_bytecode_cache()
    with c.Workdir(args.workdir, args.keep) as work:
        site = work / "site"
        config = c.make_site(site, args.posts)
        hugo_site = c.make_hugo_site(work / "hugo", site / "content")
        hugo_out = work / "hugo-public"
        c.run_timed(c.publisher_cmd(config, "run", "--quiet"))  # the first run: the baseline
        # The first run after a change takes the full path (scan through the cache, compare
        # the feeds' fingerprint) and, finding nothing to do, leaves the idle stamp; cron's
        # later runs answer from it (publisher/cache.py). Shown apart, untimed by the verdict.
        full = c.run_timed(c.publisher_cmd(config, "run", "--quiet"))
        print(f"run (nothing changed): {args.posts} posts, {args.runs} alternating runs each, in {work}")
        print(f"  the first unchanged run (full path, leaves the idle stamp): {full:.3f}s")
        before = {p: p.stat().st_mtime_ns for p in (site / "public").rglob("*") if p.is_file()}

        publisher = ("publisher run (unchanged)", lambda: None,
                     lambda: c.run_timed(c.publisher_cmd(config, "run", "--quiet")))
        hugo = ("hugo (home + tag RSS, full content)",
                lambda: shutil.rmtree(hugo_out, ignore_errors=True),
                lambda: c.run_timed(c.hugo_cmd(hugo_site, hugo_out)))
        mine, base = c.alternate(args.runs, publisher, hugo)
        after = {p: p.stat().st_mtime_ns for p in (site / "public").rglob("*") if p.is_file()}
        if after != before:
            raise SystemExit("an unchanged run rewrote or removed feed files")
        rss = sorted(site.glob("public/**/rss.xml"))
        hugo_feeds, hugo_items = c.hugo_feed_counts(hugo_out)
        print(f"  publisher RSS feeds: {len(rss)} (untouched by the unchanged runs); "
              f"hugo RSS feeds: {hugo_feeds}, home items: {hugo_items}")
        print("  " + mine.describe())
        print("  " + base.describe())
        ok = c.verdict(f"unchanged run {args.posts} posts vs hugo build", mine.median / base.median,
                       TARGET)
    return 0 if ok or not args.strict else 1


if __name__ == "__main__":
    sys.exit(main())
