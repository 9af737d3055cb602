"""Build time at several site sizes (default 200, 2,000 and 20,000 posts).

For each size: a cold `publisher build` (no state, no feeds) and an unchanged `publisher run`
(caches and the idle stamp in place), each timed in alternating runs; and, shown apart, the
unchanged run that takes the full path (the first after a change: it scans through the scan
cache, finds the feeds unchanged and leaves the idle stamp). The posts that reach some feed (newest
feeds.limit overall and per tag) are a fixed number once a site is larger than its feeds, so:

- growth must be roughly linear in the posts scanned: the time added per post from the
  middle size to the largest is at most 1.5x the time added per post from the smallest to
  the middle one (a quadratic cost would make it ~10x);
- and flat in the posts not rendered: the number of posts rendered stops growing once every
  feed is full (at most (tags + 1) x feeds.limit), whatever the size.

    .venv/bin/python bench/scale.py --sizes 200,2000,20000 --runs 5
"""

from __future__ import annotations

import re
import subprocess
import sys

import _common as c

LINEAR_TARGET = 1.5


def rendered_count(config) -> int:
    c.reset_outputs(config.parent)
    out = subprocess.run(c.publisher_cmd(config, "build"), capture_output=True, text=True,
                         check=True).stdout
    m = re.search(r"\((\d+) rendered, (\d+) from cache\)", out)
    return int(m.group(1)) if m else -1


def main(argv=None) -> int:
    p = c.parser(__doc__.splitlines()[0])
    p.add_argument("--sizes", default="200,2000,20000")
    args = p.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    if len(sizes) < 2:
        raise SystemExit("--sizes: give at least two sizes")
    rows = []
    with c.Workdir(args.workdir, args.keep) as work:
        print(f"scale: {sizes} posts, {args.runs} alternating runs each, in {work}")
        for n in sizes:
            site = work / f"site-{n}"
            config = c.make_site(site, n)
            rendered = rendered_count(config)
            full_path = c.Series("unchanged run, full path", [])

            def warm_up(config=config) -> None:
                """The baseline run, then the first unchanged run (full path, timed apart),
                which leaves the idle stamp for the unchanged runs measured next."""
                c.run_timed(c.publisher_cmd(config, "run", "--quiet"))
                full_path.times.append(c.run_timed(c.publisher_cmd(config, "run", "--quiet")))

            warm_up()

            def cold_run(config=config, site=site) -> float:
                # Cold build, then put the warm state back for the next unchanged run.
                c.reset_outputs(site)
                elapsed = c.run_timed(c.publisher_cmd(config, "build", "--quiet"))
                warm_up()
                return elapsed

            cold, warm = c.alternate(
                args.runs,
                ("cold build", lambda: None, cold_run),
                ("unchanged run", lambda: None,
                 lambda config=config: c.run_timed(c.publisher_cmd(config, "run", "--quiet"))))
            rows.append((n, rendered, cold, warm))
            print(f"  {n:>6} posts: {cold.describe()}; {warm.describe()}; {full_path.describe()}; "
                  f"{rendered} rendered")

        print(f"\n  {'posts':>6} | {'cold build median (min-max)':>30} | {'us/post':>7} | "
              f"{'unchanged run median (min-max)':>32} | rendered")
        for n, rendered, cold, warm in rows:
            print(f"  {n:>6} | {cold.median:8.3f}s ({min(cold.times):.3f}-{max(cold.times):.3f}s) | "
                  f"{1e6 * cold.median / n:7.0f} | {warm.median:10.3f}s ({min(warm.times):.3f}-"
                  f"{max(warm.times):.3f}s) | {rendered}")
        # Marginal cost per post between consecutive sizes.
        (n0, r0, c0, w0), (n1, r1, c1, w1), *rest = rows
        last = rows[-1]
        slope_low = (c1.median - c0.median) / (n1 - n0)
        slope_high = (last[2].median - c1.median) / (last[0] - n1) if rest else slope_low
        print(f"\n  cold build: {1e6 * slope_low:.0f} us per added post ({n0}->{n1}), "
              f"{1e6 * slope_high:.0f} us per added post ({n1}->{last[0]})")
        warm_low = (w1.median - w0.median) / (n1 - n0)
        warm_high = (last[3].median - w1.median) / (last[0] - n1) if rest else warm_low
        print(f"  unchanged run: {1e6 * warm_low:.0f} us per added post ({n0}->{n1}), "
              f"{1e6 * warm_high:.0f} us per added post ({n1}->{last[0]})")
        ok_linear = c.verdict("cold build growth (marginal cost per post, large vs small sizes)",
                              slope_high / slope_low if slope_low > 0 else 1.0, LINEAR_TARGET)
        ok_warm = c.verdict("unchanged run growth (marginal cost per post, large vs small sizes)",
                            warm_high / warm_low if warm_low > 0 else 1.0, LINEAR_TARGET)
        flat = last[1] / r1 if r1 > 0 else float("inf")
        ok_flat = c.verdict(f"posts rendered at {last[0]} vs {n1} posts", flat, 1.1,
                            what=f"{last[1]} vs {r1} rendered =")
    ok = ok_linear and ok_warm and ok_flat
    return 0 if ok or not args.strict else 1


if __name__ == "__main__":
    sys.exit(main())
