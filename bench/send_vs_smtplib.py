"""`publisher send` of one digest to N subscribers (default 5,000) vs a bare smtplib loop
sending N ready-made messages over one connection, both to the same minimal SMTP sink (a
separate process on 127.0.0.1 that answers 250 to everything and discards the data).

publisher's side includes everything a real send does: start-up, the scan, rendering and
recording the digest, the per-subscriber ledger, building every message. The subscribers have
real-looking names that are not ASCII ("Reader 7 Ünïcode"), so every To header needs an
RFC 2047 encoded word (`--names ascii` for plain "Reader 7"). It runs once against a sink
that offers PIPELINING (publisher pipelines, smtplib never does) and once against one that
does not (both then send one command at a time). Target: publisher's median at most 1.0x the
loop's, in both.

    .venv/bin/python bench/send_vs_smtplib.py --subscribers 5000 --runs 5
"""

from __future__ import annotations

import resource
import shutil
import statistics
import sys
from datetime import datetime, timezone
from pathlib import Path

import _common as c

TARGET = 1.0
NEW_POSTS = 5
NAMES = {
    "unicode": lambda i: f"Reader {i} Ünïcode",
    "ascii": lambda i: f"Reader {i}",
}


def prepare_site(work: Path, posts: int, subscribers: int, port: int,
                 name_of=NAMES["unicode"]) -> tuple[Path, Path]:
    """A site after its first run, with `subscribers` active subscribers and NEW_POSTS posts
    not yet mailed. Returns (config path, saved state database to restore before each run)."""
    from publisher.state import State

    site = work / "site"
    config = c.make_site(site, posts, smtp_port=port)
    c.run_timed(c.publisher_cmd(config, "run", "--quiet"))  # baseline: existing posts announced
    with State(f"sqlite:///{site / 'state.db'}") as state:
        state.add_subscribers([(f"reader{i:06d}@example.org", name_of(i)) for i in range(subscribers)])
    c.write_posts(site / "content", posts, NEW_POSTS)  # dated in the past: published, unmailed
    saved = work / "state-before-send.db"
    shutil.copyfile(site / "state.db", saved)
    return config, saved


def restore(site: Path, saved: Path) -> None:
    c.reset_outputs(site)
    shutil.copyfile(saved, site / "state.db")


def ready_made_messages(config: Path, count: int, path: Path, name_of) -> None:
    """The same digest's messages, one per subscriber, as publisher would build them."""
    from publisher.config import load_config
    from publisher.content import load_posts
    from publisher.newsletter.digest import Recipient, render_digest
    from publisher.newsletter.message import compile_message

    cfg = load_config(config)
    now = datetime.now(timezone.utc)
    posts = load_posts(cfg, now).posts[:NEW_POSTS]
    compiled = compile_message(render_digest(posts, cfg), cfg, message_key="bench", date=now)
    with open(path, "wb") as f:
        for i in range(count):
            rcpt = f"reader{i:06d}@example.org"
            data = compiled.bytes_for(Recipient(rcpt, name_of(i), f"token{i:06d}"))
            f.write(f"{rcpt}\n{len(data)}\n".encode() + data)


def measure(args, work: Path, pipelining: bool) -> bool:
    name_of = NAMES[args.names]
    mode = "with" if pipelining else "without"
    with c.Sink(pipelining) as sink:
        config, saved = prepare_site(work, args.posts, args.subscribers, sink.port, name_of)
        messages = work / "messages.bin"
        ready_made_messages(config, args.subscribers, messages, name_of)
        site = config.parent
        print(f"send: one digest to {args.subscribers} subscribers ({args.names} names, e.g. "
              f"{name_of(7)!r}), {args.runs} alternating runs each, sink on 127.0.0.1:{sink.port} "
              f"({mode} PIPELINING), in {work}")
        counts = []
        cpu: dict[str, list[float]] = {"publisher": [], "loop": []}

        def timed(side: str, cmd: list[str]) -> float:
            """Wall time of `cmd`; its CPU time (user + system) goes to cpu[side]."""
            before, used = sink.count(), resource.getrusage(resource.RUSAGE_CHILDREN)
            elapsed = c.run_timed(cmd)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu[side].append(after.ru_utime - used.ru_utime + after.ru_stime - used.ru_stime)
            counts.append(sink.count() - before)
            return elapsed

        def send_once() -> float:
            return timed("publisher", c.publisher_cmd(config, "send", "--quiet"))

        def loop_once() -> float:
            return timed("loop", [c.PYTHON, str(c.BENCH / "_smtplib_loop.py"), str(sink.port),
                                  str(messages)])

        mine, base = c.alternate(args.runs, ("publisher send", lambda: restore(site, saved), send_once),
                                 ("bare smtplib loop", lambda: None, loop_once))
        if set(counts) != {args.subscribers}:
            raise SystemExit(f"the sink did not get {args.subscribers} messages per run: {counts}")
        print(f"  every run delivered {args.subscribers} messages to the sink")
        print("  " + mine.describe())
        print("  " + base.describe())
        # Apart from the verdict: on a machine shared with other work, the side that needs
        # more CPU loses more wall time than its CPU share; this figure does not move with load.
        mine_cpu, loop_cpu = statistics.median(cpu["publisher"]), statistics.median(cpu["loop"])
        print(f"  CPU (user + system), medians: publisher send {mine_cpu:.3f}s, smtplib loop "
              f"{loop_cpu:.3f}s ({mine_cpu / loop_cpu:.2f}x)")
        return c.verdict(f"send to {args.subscribers} ({args.names} names, {mode} PIPELINING) "
                         f"vs smtplib loop", mine.median / base.median, TARGET)


def main(argv=None) -> int:
    p = c.parser(__doc__.splitlines()[0])
    p.add_argument("--subscribers", type=int, default=5000)
    p.add_argument("--posts", type=int, default=20, help="posts on the site (default 20)")
    p.add_argument("--names", choices=sorted(NAMES), default="unicode",
                   help="subscribers' display names: 'unicode' (default, 'Reader 7 Ünïcode') "
                        "or 'ascii' ('Reader 7')")
    p.add_argument("--pipelining", choices=("both", "on", "off"), default="both",
                   help="whether the sink offers PIPELINING: both (default: one measurement "
                        "each), on, or off (publisher then sends one command at a time, as "
                        "smtplib does)")
    p.add_argument("--no-pipelining", dest="pipelining", action="store_const", const="off",
                   help="same as --pipelining off")
    args = p.parse_args(argv)
    c.allow_bytecode_cache()
    sys.path.insert(0, str(c.REPO))
    modes = {"both": (True, False), "on": (True,), "off": (False,)}[args.pipelining]
    with c.Workdir(args.workdir, args.keep) as work:
        verdicts = [measure(args, work, pipelining) for pipelining in modes]
    return 0 if all(verdicts) or not args.strict else 1


if __name__ == "__main__":
    sys.exit(main())
