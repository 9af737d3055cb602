"""The growth table: where a cost bends, as a site and a list grow.

Posts (default 500, 2,000, 5,000 and 20,000): at each size, a cold `publisher build` (no
state, no feeds) and an unchanged `publisher run` (caches and the idle stamp in place), timed
in alternating runs, with the cold build's peak memory (RSS, from the kernel: wait4); and,
shown apart, the unchanged run that takes the full path (the first after a change: it scans
through the scan cache, finds the feeds unchanged and leaves the idle stamp).

Subscribers (default 1,000, 10,000 and 100,000): at each size, `publisher send` of one digest
(5 new posts on a 20-post site, "Reader N Ünïcode" names) to a local SMTP sink, as
send_vs_smtplib.py sends it, with its peak memory.

Each table prints the median (min-max), the cost per post or message, and the cost each
post or message *added* since the size before (the marginal cost: start-up and other fixed
costs drop out of it, so a cost that grows faster than the size shows there). Verdicts:

- a cold build, an unchanged run and a send grow roughly linearly: the marginal cost from
  the second-largest size to the largest is at most 1.5x the marginal cost from the
  smallest to the second (a quadratic cost would make it ~10x);
- the posts rendered stop growing once every feed is full (at most (tags + 1) x
  feeds.limit), whatever the size.

    .venv/bin/python bench/scale.py --runs 5
    .venv/bin/python bench/scale.py --posts 500,2000 --subscribers 1000,10000 --runs 3
"""

from __future__ import annotations

import re
import statistics
import subprocess
import sys
from dataclasses import dataclass, field

import _common as c
from send_memory import peak_rss_mb
from send_vs_smtplib import prepare_site, restore

LINEAR_TARGET = 1.5
POSTS = "500,2000,5000,20000"
SUBSCRIBERS = "1000,10000,100000"
SEND_SITE_POSTS = 20


@dataclass
class Row:
    size: int
    times: c.Series
    peaks: list[float] = field(default_factory=list)  # MB, one per timed run
    extra: dict = field(default_factory=dict)

    @property
    def peak(self) -> float:
        return statistics.median(self.peaks)


def sizes(text: str, what: str) -> list[int]:
    try:
        values = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise SystemExit(f"--{what}: expected sizes such as {POSTS}, got {text!r}") from None
    if len(values) < 2 or values != sorted(set(values)) or values[0] <= 0:
        raise SystemExit(f"--{what}: give at least two increasing sizes, got {text!r}")
    return values


def timed_with_peak(cmd: list[str], peaks: list[float]) -> float:
    """Wall seconds of `cmd`; its peak RSS (MB) goes to `peaks`."""
    rss, elapsed = peak_rss_mb(cmd)
    peaks.append(rss)
    return elapsed


def rendered_count(config) -> int:
    c.reset_outputs(config.parent)
    out = subprocess.run(c.publisher_cmd(config, "build"), capture_output=True, text=True,
                         check=True).stdout
    m = re.search(r"\((\d+) rendered, (\d+) from cache\)", out)
    return int(m.group(1)) if m else -1


def marginal(rows: list[Row], value) -> list[float | None]:
    """Per row: what each unit added since the previous row cost (None for the first)."""
    return [None] + [(value(b) - value(a)) / (b.size - a.size) for a, b in zip(rows, rows[1:])]


def growth(rows: list[Row], value) -> float:
    """The largest step's marginal cost over the first step's (1.0 when the first is not
    positive: nothing measurable to grow from)."""
    steps = marginal(rows, value)
    # (A largest step that cost nothing, or less than nothing, is no growth.)
    return max(steps[-1] / steps[1], 0.0) if steps[1] and steps[1] > 0 else 1.0


def span(series: c.Series) -> str:
    return f"{series.median:8.3f}s ({min(series.times):.3f}-{max(series.times):.3f})"


def added(value: float | None, scale: float, fmt: str) -> str:
    return "-" if value is None else format(value * scale, fmt)


def measure_posts(work, counts: list[int], runs: int) -> tuple[list[Row], list[Row]]:
    cold_rows, warm_rows = [], []
    for n in counts:
        site = work / f"site-{n}"
        config = c.make_site(site, n)
        rendered = rendered_count(config)
        full_path = c.Series("unchanged run, full path", [])
        peaks: list[float] = []

        def warm_up(config=config, full_path=full_path) -> None:
            """The baseline run, then the first unchanged run (full path, timed apart),
            which leaves the idle stamp for the unchanged runs measured next."""
            c.run_timed(c.publisher_cmd(config, "run", "--quiet"))
            full_path.times.append(c.run_timed(c.publisher_cmd(config, "run", "--quiet")))

        warm_up()

        def cold_run(config=config, site=site, peaks=peaks, warm_up=warm_up) -> float:
            # Cold build, then put the warm state back for the next unchanged run.
            c.reset_outputs(site)
            elapsed = timed_with_peak(c.publisher_cmd(config, "build", "--quiet"), peaks)
            warm_up()
            return elapsed

        cold, warm = c.alternate(
            runs,
            ("cold build", lambda: None, cold_run),
            ("unchanged run", lambda: None,
             lambda config=config: c.run_timed(c.publisher_cmd(config, "run", "--quiet"))))
        cold_rows.append(Row(n, cold, peaks, {"rendered": rendered}))
        warm_rows.append(Row(n, warm, extra={"full path": full_path}))
        print(f"  {n:>6} posts: {cold.describe()}, peak RSS {statistics.median(peaks):.1f} MB; "
              f"{warm.describe()}; {full_path.describe()}; {rendered} rendered", flush=True)
    return cold_rows, warm_rows


def measure_send(work, counts: list[int], runs: int) -> list[Row]:
    rows = []
    with c.Sink() as sink:
        for n in counts:
            folder = work / f"list-{n}"
            folder.mkdir(parents=True, exist_ok=True)
            config, saved = prepare_site(folder, SEND_SITE_POSTS, n, sink.port)
            row = Row(n, c.Series("send", []))
            for _ in range(runs):
                restore(config.parent, saved)
                before = sink.count()
                row.times.times.append(timed_with_peak(
                    c.publisher_cmd(config, "send", "--quiet"), row.peaks))
                if sink.count() - before != n:
                    raise SystemExit(f"the sink got {sink.count() - before} messages, expected {n}")
            rows.append(row)
            print(f"  {n:>6} subscribers: {row.times.describe()}, peak RSS {row.peak:.1f} MB",
                  flush=True)
    return rows


def print_posts(cold_rows: list[Row], warm_rows: list[Row]) -> None:
    cold_added = marginal(cold_rows, lambda r: r.times.median)
    peak_added = marginal(cold_rows, lambda r: r.peak)
    warm_added = marginal(warm_rows, lambda r: r.times.median)
    print(f"\n  {'posts':>6} | {'cold build median (min-max)':>28} | {'ms/post':>7} | "
          f"{'added':>7} | {'peak MB':>7} | {'KB/post':>7} | {'added':>7} | "
          f"{'unchanged run median (min-max)':>30} | {'added':>7} | rendered")
    for i, (cold, warm) in enumerate(zip(cold_rows, warm_rows)):
        n = cold.size
        print(f"  {n:>6} | {span(cold.times):>28} | {1e3 * cold.times.median / n:7.3f} | "
              f"{added(cold_added[i], 1e3, '7.3f'):>7} | {cold.peak:7.1f} | "
              f"{1024 * cold.peak / n:7.1f} | {added(peak_added[i], 1024, '7.1f'):>7} | "
              f"{span(warm.times):>30} | {added(warm_added[i], 1e3, '7.4f'):>7} | "
              f"{cold.extra['rendered']}")
    print("  (ms/post, KB/post: the whole over the posts; added: per post added since the "
          "size above, in ms or KB)")


def print_send(rows: list[Row]) -> None:
    time_added = marginal(rows, lambda r: r.times.median)
    peak_added = marginal(rows, lambda r: r.peak)
    print(f"\n  {'subscribers':>11} | {'send median (min-max)':>28} | {'ms/message':>10} | "
          f"{'added':>7} | {'peak MB':>7} | {'added KB/msg':>12}")
    for i, row in enumerate(rows):
        print(f"  {row.size:>11} | {span(row.times):>28} | "
              f"{1e3 * row.times.median / row.size:10.3f} | "
              f"{added(time_added[i], 1e3, '7.3f'):>7} | "
              f"{row.peak:7.1f} | {added(peak_added[i], 1024, '12.3f'):>12}")
    print("  (ms/message: the whole send over the messages; added: per message added since "
          "the size above)")


def main(argv=None) -> int:
    p = c.parser(__doc__.splitlines()[0])
    p.add_argument("--posts", "--sizes", dest="posts", default=POSTS,
                   help=f"site sizes, in posts (default {POSTS}); '' skips the build table")
    p.add_argument("--subscribers", default=SUBSCRIBERS,
                   help=f"list sizes for the send (default {SUBSCRIBERS}); '' skips the send table")
    args = p.parse_args(argv)
    c.allow_bytecode_cache()
    sys.path.insert(0, str(c.REPO))
    posts = sizes(args.posts, "posts") if args.posts else []
    subscribers = sizes(args.subscribers, "subscribers") if args.subscribers else []
    if not posts and not subscribers:
        raise SystemExit("nothing to measure: --posts and --subscribers are both empty")
    ok = True
    with c.Workdir(args.workdir, args.keep) as work:
        print(f"scale: posts {posts}, subscribers {subscribers}, {args.runs} runs each, in {work}",
              flush=True)
        if posts:
            cold_rows, warm_rows = measure_posts(work, posts, args.runs)
            print_posts(cold_rows, warm_rows)
            ok &= c.verdict("cold build growth (marginal cost per post, large vs small sizes)",
                            growth(cold_rows, lambda r: r.times.median), LINEAR_TARGET)
            ok &= c.verdict("unchanged run growth (marginal cost per post, large vs small sizes)",
                            growth(warm_rows, lambda r: r.times.median), LINEAR_TARGET)
            first, last = cold_rows[-2].extra["rendered"], cold_rows[-1].extra["rendered"]
            ok &= c.verdict(f"posts rendered at {cold_rows[-1].size} vs {cold_rows[-2].size} posts",
                            last / first if first > 0 else float("inf"), 1.1,
                            what=f"{last} vs {first} rendered =")
        if subscribers:
            rows = measure_send(work, subscribers, args.runs)
            print_send(rows)
            ok &= c.verdict("send growth (marginal cost per message, large vs small lists)",
                            growth(rows, lambda r: r.times.median), LINEAR_TARGET)
    return 0 if ok or not args.strict else 1


if __name__ == "__main__":
    sys.exit(main())
