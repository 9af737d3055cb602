"""The second core, for work that is split by items: one forked worker process takes the
tail of the list while this process does the head, and sends its results back pickled over
a pipe. Used by load_posts to read and parse post files (a cold build's largest serial step).

The rules that keep it equal to the serial path:
- only from `MIN_ITEMS` items (below, the fork and the pickling cost more than they save),
  only where os.fork exists, and only from a single-threaded process (forking while another
  thread holds a lock can deadlock the child: `publisher schedule`, the web app and the
  tests' SMTP servers run threads, so they stay serial);
- the worker computes exactly what `fn` computes here; an item whose result cannot be sent
  (an unexpected exception in the worker) comes back as REDO and is computed again here, so
  it fails, or not, exactly as it would serially;
- a worker that dies, or sends anything but a complete answer, costs its half being done
  again here: no item is lost, the caller cannot tell but by the time it took.
"""

from __future__ import annotations

import logging
import os
import pickle
import threading
from typing import Callable, Sequence, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

# Measured on a generated 2,000-post site (bench/build_vs_hugo.py): forking and sending the
# results back cost ~15 ms; parsing a post costs ~0.2 ms. Below a few hundred files the
# worker's share does not pay for its start.
MIN_ITEMS = 400
# The worker's share: this process also unpickles the worker's answer, so it takes less.
WORKER_SHARE = 0.55


class _Redo:
    """An item the worker could not compute (an unexpected exception): done again here."""

    def __reduce__(self):
        return (_redo, ())


REDO = _Redo()


def _redo() -> _Redo:
    return REDO


def can_fork() -> bool:
    return hasattr(os, "fork") and threading.active_count() == 1


def split_map(fn: Callable[[T], R], items: Sequence[T], *, min_items: int | None = None) -> list[R]:
    """[fn(item) for item in items], the tail computed by a forked worker when that pays
    (see the module docstring). `fn`'s results must pickle."""
    threshold = MIN_ITEMS if min_items is None else min_items
    if len(items) < max(threshold, 2) or not can_fork():
        return [fn(item) for item in items]
    cut = len(items) - max(1, int(len(items) * WORKER_SHARE))
    head, tail = items[:cut], items[cut:]
    read_fd, write_fd = os.pipe()
    try:
        pid = os.fork()
    except OSError as e:
        os.close(read_fd)
        os.close(write_fd)
        log.debug("parallel: cannot fork (%s); serial", e)
        return [fn(item) for item in items]
    if pid == 0:  # the worker: never returns
        _work(fn, tail, read_fd, write_fd)
    os.close(write_fd)
    try:
        results = [fn(item) for item in head]
        answer = _receive(read_fd, len(tail))
    finally:
        os.close(read_fd)  # a worker still writing gets EPIPE and exits
        status = _reap(pid)
    if answer is None or status != 0:
        log.warning("parallel: the worker process failed (status %s); its %d items done here",
                    status, len(tail))
        return results + [fn(item) for item in tail]
    log.debug("parallel: %d items here, %d in worker %d", len(head), len(tail), pid)
    return results + [fn(item) if r is REDO else r for item, r in zip(tail, answer)]


def _work(fn: Callable, items: Sequence, read_fd: int, write_fd: int) -> None:
    """In the forked worker: compute, send, and leave through os._exit (no atexit handlers,
    no flushing of buffers inherited from the parent, no finalizers of its open databases)."""
    code = 1
    try:
        os.close(read_fd)
        answer = []
        for item in items:
            try:
                answer.append(fn(item))
            except Exception:  # done again in the parent, which raises it as the serial path does
                answer.append(REDO)
        data = pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL)
        with os.fdopen(write_fd, "wb") as out:
            out.write(data)
        code = 0
    except BaseException:  # noqa: BLE001 -- whatever happens, the parent redoes the work
        code = 1
    finally:
        os._exit(code)


def _receive(read_fd: int, expected: int) -> list | None:
    chunks = []
    while True:
        chunk = os.read(read_fd, 1 << 20)
        if not chunk:
            break
        chunks.append(chunk)
    try:
        answer = pickle.loads(b"".join(chunks))
    except Exception:  # a worker killed mid-write: truncated data
        return None
    if not isinstance(answer, list) or len(answer) != expected:
        return None
    return answer


def _reap(pid: int) -> int:
    try:
        _pid, status = os.waitpid(pid, 0)
    except ChildProcessError:
        return -1
    return os.waitstatus_to_exitcode(status)
