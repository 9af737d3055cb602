"""How far long work has come, for people: a side channel, like logging.

The CLI installs a reporter for the commands whose work can be long on a big site (`build`,
`run`: cli._Progress, a bar on a terminal, a line every tenth elsewhere, nothing under
--quiet); the work says how far it is (`tracker(label)`, then `tick(done, total)`) without
knowing who listens, and nothing is said when nobody does. content/parallel.split_map ticks
for the posts it reads and renders.
"""

from __future__ import annotations

import contextlib
from contextvars import ContextVar
from typing import Callable, Iterator

Tick = Callable[[int, int], None]

_reporter: ContextVar[Callable[[str], Tick] | None] = ContextVar("publisher_progress", default=None)


@contextlib.contextmanager
def reporting(factory: Callable[[str], Tick]) -> Iterator[None]:
    """While the block runs, `tracker(label)` gives `factory(label)`."""
    token = _reporter.set(factory)
    try:
        yield
    finally:
        _reporter.reset(token)


def tracker(label: str) -> Tick | None:
    """The tick of a stage of work called `label`, or None when nobody listens."""
    factory = _reporter.get()
    return factory(label) if factory is not None else None
