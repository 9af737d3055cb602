"""Send throughput of one digest with 1, 2 and 3 `publisher send` processes sharing it
(issue 8), against the same minimal SMTP sink on 127.0.0.1.

    .venv/bin/python bench/parallel_send.py [--subscribers 3000] [--runs 3]
        [--database postgresql://publisher@127.0.0.1:5432/publisher_test | sqlite]   (PGPASSWORD=...)

Each run uses a fresh PostgreSQL schema (or SQLite file). Prints messages per second for each
number of senders (min / median / max over the runs) and the speed-up over one sender.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import Sink, Workdir, make_site, parser, publisher_cmd, write_posts  # noqa: E402

DEFAULT_PG = "postgresql://publisher@127.0.0.1:5432/publisher_test"  # password: PGPASSWORD


def fresh_database(base: str, root: Path) -> str:
    if base == "sqlite":
        return f"sqlite:///{root / 'state.db'}"
    import sqlalchemy as sa

    from publisher.state import normalize_url

    schema = "bench_" + uuid.uuid4().hex[:12]
    engine = sa.create_engine(normalize_url(base), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    engine.dispose()
    return f"{base}?options=-csearch_path%3D{schema}"


def one_run(work: Path, base: str, senders: int, subscribers: int, port: int) -> float:
    from publisher.state import State

    root = work / f"site-{senders}-{uuid.uuid4().hex[:6]}"
    database = fresh_database(base, root.parent)
    config = make_site(root, 5, smtp_port=port, extra={"state": {"database": database}})
    subprocess.run(publisher_cmd(config, "run", "--quiet"), check=True)  # the baseline
    with State(database) as state:
        state.add_subscribers([(f"reader{i:06d}@example.org", "") for i in range(subscribers)])
    write_posts(root / "content", 1000, 1)  # one new post, owed to everyone
    start = time.perf_counter()
    procs = [subprocess.Popen(publisher_cmd(config, "send", "--quiet")) for _ in range(senders)]
    codes = [p.wait() for p in procs]
    elapsed = time.perf_counter() - start
    if any(codes):
        raise SystemExit(f"a sender failed: exit codes {codes}")
    with State(database) as state:
        counts = state.delivery_counts(1)
    if counts != {"sent": subscribers}:
        raise SystemExit(f"ledger disagrees: {counts}")
    return elapsed


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--subscribers", type=int, default=3000)
    p.add_argument("--database", default=DEFAULT_PG, help="a postgresql:// URL, or 'sqlite'")
    args = p.parse_args()
    args.runs = args.runs if args.runs != 5 else 3
    with Workdir(args.workdir, args.keep) as work, Sink() as sink:
        rates: dict[int, list[float]] = {1: [], 2: [], 3: []}
        for _ in range(args.runs):
            for senders in (1, 2, 3):  # alternating order within every round
                seconds = one_run(work, args.database, senders, args.subscribers, sink.port)
                rates[senders].append(args.subscribers / seconds)
        backend = "SQLite" if args.database == "sqlite" else "PostgreSQL"
        base = statistics.median(rates[1])
        for senders, values in rates.items():
            print(f"{backend}, {senders} sender(s), {args.subscribers} subscribers: "
                  f"median {statistics.median(values):.0f} msg/s (min {min(values):.0f}, "
                  f"max {max(values):.0f}, n={len(values)}); "
                  f"{statistics.median(values) / base:.2f}x one sender")


if __name__ == "__main__":
    main()
