"""Cold `publisher build` of a generated site vs Hugo building the same posts' home RSS.

Cold: a fresh process, no state database (so no scan or render cache) and no feeds folder.
Hugo is configured to emit only the home RSS, with rssLimit equal to feeds.limit, and builds
into a fresh folder each run. Target: publisher's median within 1.5x of Hugo's.

    .venv/bin/python bench/build_vs_hugo.py --posts 2000 --runs 5
"""

from __future__ import annotations

import shutil
import sys

import _common as c

TARGET = 1.5


def main(argv=None) -> int:
    p = c.parser(__doc__.splitlines()[0])
    p.add_argument("--posts", type=int, default=2000)
    args = p.parse_args(argv)
    with c.Workdir(args.workdir, args.keep) as work:
        site = work / "site"
        config = c.make_site(site, args.posts)
        hugo_site = c.make_hugo_site(work / "hugo", site / "content")
        hugo_out = work / "hugo-public"
        print(f"build: {args.posts} posts, {args.runs} alternating runs each, in {work}")

        publisher = ("publisher build (cold)",
                     lambda: c.reset_outputs(site),
                     lambda: c.run_timed(c.publisher_cmd(config, "build", "--quiet")))
        hugo = ("hugo (home RSS only)",
                lambda: shutil.rmtree(hugo_out, ignore_errors=True),
                lambda: c.run_timed(c.hugo_cmd(hugo_site, hugo_out)))
        mine, base = c.alternate(args.runs, publisher, hugo)
        # Both really built what they should have.
        items = (site / "public" / "rss.xml").read_text(encoding="utf-8").count("<item>")
        hugo_items = (hugo_out / "index.xml").read_text(encoding="utf-8").count("<item>")
        print(f"  publisher rss.xml items: {items}; hugo index.xml items: {hugo_items}")
        print("  " + mine.describe())
        print("  " + base.describe())
        ok = c.verdict(f"build {args.posts} posts vs hugo", mine.median / base.median, TARGET)
    return 0 if ok or not args.strict else 1


if __name__ == "__main__":
    sys.exit(main())
