"""Subscribe timing probes against a real `publisher serve` process (issue 15, item 6).

    python tests/timing_probe.py URL MEMBERS_FILE [N]    prints the distributions

The forms are fetched first; then each probe times one POST, for an address on the list
(member) or a new one (non-member), in random order. `separability` is the area under the
ROC curve of the best one-sided guess from the time alone: 0.5 is a coin toss."""

from __future__ import annotations

import random
import re
import statistics
import sys
import time
import urllib.parse
import urllib.request

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def form_token(url: str) -> str:
    with urllib.request.urlopen(url + "subscribe", timeout=10) as page:
        return _CSRF.search(page.read().decode()).group(1)


def probe(url: str, email: str, token: str) -> float:
    body = urllib.parse.urlencode({"email": email, "csrf_token": token}).encode()
    request = urllib.request.Request(url + "subscribe", data=body, method="POST")
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=10) as answer:
        answer.read()
    return time.perf_counter() - started


def measure(url: str, members: list[str], n: int, seed: int = 15) -> tuple[list[float], list[float]]:
    rng = random.Random(seed)
    kinds = ["member"] * n + ["new"] * n
    rng.shuffle(kinds)
    # The forms first: then the POSTs go back to back, as a prober's would, so whatever one
    # answer leaves running (a confirmation mail) overlaps the next.
    tokens = [form_token(url) for _ in range(len(kinds) + 10)]
    for i in range(10):  # warm-up, not counted
        probe(url, f"warmup{i}-{rng.random():.9f}@example.org", tokens.pop())
    times: dict[str, list[float]] = {"member": [], "new": []}
    for i, kind in enumerate(kinds):
        email = rng.choice(members) if kind == "member" else f"new{i}-{seed}@example.org"
        times[kind].append(probe(url, email, tokens.pop()))
    return times["member"], times["new"]


def separability(a: list[float], b: list[float]) -> float:
    """max(AUC, 1 - AUC) of telling b from a by the time: P(b > a) with ties as a half."""
    wins = 0.0
    for x in a:
        for y in b:
            wins += 1.0 if y > x else 0.5 if y == x else 0.0
    auc = wins / (len(a) * len(b))
    return max(auc, 1 - auc)


def describe(name: str, times: list[float]) -> str:
    ms = sorted(t * 1000 for t in times)
    q = statistics.quantiles(ms, n=10)
    return (f"{name}: n={len(ms)} min={ms[0]:.2f} p10={q[0]:.2f} median={statistics.median(ms):.2f} "
            f"p90={q[-1]:.2f} max={ms[-1]:.2f} ms")


if __name__ == "__main__":
    url, members_file = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 150
    members = open(members_file).read().split()
    member, new = measure(url, members, n)
    print(describe("member", member))
    print(describe("non-member", new))
    print(f"separability (AUC, 0.5 = coin toss): {separability(member, new):.3f}")
