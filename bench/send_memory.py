"""Peak memory (RSS) of `publisher send` of one digest to N subscribers (default 100,000),
against the same send to a small list (default 1,000) measured in the same run: the ledger
is streamed from the database a batch at a time, so memory must stay flat in the list size.
Target: peak RSS at most 100 MB at N (#29).

    .venv/bin/python bench/send_memory.py --subscribers 100000
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import _common as c
from send_vs_smtplib import prepare_site, restore

LIMIT_MB = 100.0


def peak_rss_mb(cmd: list[str]) -> tuple[float, float]:
    """(peak RSS in MB, wall seconds) of one command, from the kernel's accounting."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    _pid, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    output = proc.stdout.read().decode()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{output}")
    return usage.ru_maxrss / 1024, elapsed  # ru_maxrss is in KiB on Linux


def measure(work, subscribers: int, sink: c.Sink) -> tuple[float, float]:
    folder = work / f"list-{subscribers}"
    folder.mkdir(parents=True, exist_ok=True)
    config, saved = prepare_site(folder, 20, subscribers, sink.port)
    restore(config.parent, saved)
    before = sink.count()
    rss, elapsed = peak_rss_mb(c.publisher_cmd(config, "send", "--quiet"))
    sent = sink.count() - before
    if sent != subscribers:
        raise SystemExit(f"the sink got {sent} messages, expected {subscribers}")
    return rss, elapsed


def main(argv=None) -> int:
    p = c.parser(__doc__.splitlines()[0])
    p.add_argument("--subscribers", type=int, default=100_000)
    p.add_argument("--small", type=int, default=1000, help="the small list to compare with")
    args = p.parse_args(argv)
    sys.path.insert(0, str(c.REPO))
    with c.Workdir(args.workdir, args.keep) as work, c.Sink() as sink:
        print(f"memory: one digest to {args.small} and to {args.subscribers} subscribers, in {work}")
        small_rss, small_s = measure(work, args.small, sink)
        big_rss, big_s = measure(work, args.subscribers, sink)
        print(f"  {args.small} subscribers: peak RSS {small_rss:.1f} MB ({small_s:.1f}s)")
        print(f"  {args.subscribers} subscribers: peak RSS {big_rss:.1f} MB ({big_s:.1f}s)")
        print(f"  growth: {big_rss / small_rss:.2f}x the small list's peak for "
              f"{args.subscribers / args.small:g}x the subscribers")
        ok = c.verdict(f"peak RSS sending to {args.subscribers}", big_rss / LIMIT_MB, 1.0,
                       what=f"{big_rss:.1f} MB = fraction of the {LIMIT_MB:g} MB limit")
    return 0 if ok or not args.strict else 1


if __name__ == "__main__":
    sys.exit(main())
