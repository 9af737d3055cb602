"""`publisher run` on a site where nothing changed (what cron repeats all day) vs Hugo
building the same posts' home RSS from scratch.

The site has had its first run (baseline) and a second that found nothing to do, so the scan
cache, the render cache, the feeds and the idle stamp are in place, and no mail is due.
Target: publisher's median at most 0.5x Hugo's.

    .venv/bin/python bench/run_unchanged.py --posts 2000 --runs 5
"""

from __future__ import annotations

import shutil
import sys

import _common as c

TARGET = 0.5


def main(argv=None) -> int:
    p = c.parser(__doc__.splitlines()[0])
    p.add_argument("--posts", type=int, default=2000)
    args = p.parse_args(argv)
    with c.Workdir(args.workdir, args.keep) as work:
        site = work / "site"
        config = c.make_site(site, args.posts)
        hugo_site = c.make_hugo_site(work / "hugo", site / "content")
        hugo_out = work / "hugo-public"
        c.run_timed(c.publisher_cmd(config, "run", "--quiet"))  # the first run: the baseline
        # The first run after a change takes the full path (scan through the cache, compare
        # the feeds' fingerprint) and, finding nothing to do, leaves the idle stamp; cron's
        # later runs answer from it (publisher/idle.py). Shown apart, untimed by the verdict.
        full = c.run_timed(c.publisher_cmd(config, "run", "--quiet"))
        print(f"run (nothing changed): {args.posts} posts, {args.runs} alternating runs each, in {work}")
        print(f"  the first unchanged run (full path, leaves the idle stamp): {full:.3f}s")

        publisher = ("publisher run (unchanged)", lambda: None,
                     lambda: c.run_timed(c.publisher_cmd(config, "run", "--quiet")))
        hugo = ("hugo (home RSS only)",
                lambda: shutil.rmtree(hugo_out, ignore_errors=True),
                lambda: c.run_timed(c.hugo_cmd(hugo_site, hugo_out)))
        mine, base = c.alternate(args.runs, publisher, hugo)
        print("  " + mine.describe())
        print("  " + base.describe())
        ok = c.verdict(f"unchanged run {args.posts} posts vs hugo build", mine.median / base.median,
                       TARGET)
    return 0 if ok or not args.strict else 1


if __name__ == "__main__":
    sys.exit(main())
