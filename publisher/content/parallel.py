"""The second core, for work that is split by items: one forked worker process takes items
from the end of the list while this process takes them from the start, until they meet; the
worker sends its results back pickled over a pipe. Used by load_posts to read and parse post
files (a cold build's largest serial step), while this process may first do something else
(`meanwhile`: on a cold build, creating the state database).

Who takes which item is decided as they go (two counters in a shared file, under a POSIX
record lock), so the split follows whichever process gets more of the machine: on a loaded
machine where the worker gets no core, this process simply does nearly everything.

The rules that keep it equal to the serial path:
- only from `MIN_ITEMS` items (below, the fork and the pickling cost more than they save),
  only where os.fork exists, and only from a single-threaded process (forking while another
  thread holds a lock can deadlock the child: `publisher schedule`, the web app and the
  tests' SMTP servers run threads, so they stay serial);
- the worker computes exactly what `fn` computes here; an item whose result cannot be sent
  (an unexpected exception in the worker) comes back as REDO and is computed again here, so
  it fails, or not, exactly as it would serially (the worker's items all come after this
  process's, so the first failure in list order is still the one raised);
- a worker that dies, or sends anything but a complete answer, costs its items being done
  again here: no item is lost, the caller cannot tell but by the time it took (a record lock
  dies with its holder: a killed worker never blocks this process).
"""

from __future__ import annotations

import fcntl
import gc
import logging
import os
import signal
import struct
import threading
from typing import Any, Callable, Sequence, TypeVar

from ..progress import tracker

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

# Measured on a generated 2,000-post site (bench/build_vs_hugo.py): the fork, the claims and
# sending the results back cost ~15 ms; parsing a post costs ~0.2 ms. Below a few hundred
# files the worker's share does not pay for its start.
MIN_ITEMS = 400
# Rendering a post to HTML costs ~0.7 ms (Markdown, links, sanitizing): feed_cache.CachedRenderer
# renders ahead in two processes from this many posts to render.
MIN_RENDERS = 100
# Items taken per claim: one lock round trip (4 system calls) per this many items.
CHUNK = 8


class _Redo:
    """An item the worker could not compute (an unexpected exception): done again here."""

    def __reduce__(self):
        return (_redo, ())


REDO = _Redo()


def _redo() -> _Redo:
    return REDO


def can_fork() -> bool:
    return hasattr(os, "fork") and threading.active_count() == 1


class _Claims:
    """[front, back): the items nobody took yet, in a file both processes share."""

    def __init__(self, count: int, chunk: int = CHUNK):
        self.chunk = chunk
        if hasattr(os, "memfd_create"):
            self.fd = os.memfd_create("publisher-claims", os.MFD_CLOEXEC)
        else:  # pragma: no cover -- BSD, macOS
            import tempfile  # lazy: only where memfd_create is missing

            self.fd = os.dup(tempfile.TemporaryFile().fileno())
        os.pwrite(self.fd, struct.pack("qq", 0, count), 0)

    def take(self, from_front: bool) -> range:
        fcntl.lockf(self.fd, fcntl.LOCK_EX)
        try:
            front, back = struct.unpack("qq", os.pread(self.fd, 16, 0))
            size = min(self.chunk, back - front)
            if size <= 0:
                return range(0)
            if from_front:
                os.pwrite(self.fd, struct.pack("qq", front + size, back), 0)
                return range(front, front + size)
            os.pwrite(self.fd, struct.pack("qq", front, back - size), 0)
            return range(back - size, back)
        finally:
            fcntl.lockf(self.fd, fcntl.LOCK_UN)

    def remaining(self) -> int:
        """How many items nobody has taken yet."""
        front, back = struct.unpack("qq", os.pread(self.fd, 16, 0))
        return max(0, back - front)

    def close(self) -> None:
        os.close(self.fd)


def split_map(fn: Callable[[T], R], items: Sequence[T], *, min_items: int | None = None,
              meanwhile: Callable[[], Any] | None = None,
              send: Callable[[R], R] | None = None, chunk: int = CHUNK,
              label: str | None = None) -> list[R]:
    """[fn(item) for item in items], computed by this process and a forked worker when that
    pays (see the module docstring). `meanwhile()` is called here first, while the worker
    already works. `fn`'s results must pickle. `send`, if given, is what the worker sends
    back of each result: the same result less what costs more to pickle than to get again
    (a post's body, read again from its file if it is ever needed). `chunk`: items taken per
    claim (1 for a few large items). `label`: the stage's name for progress.tracker."""
    threshold = MIN_ITEMS if min_items is None else min_items
    tick = tracker(label) if label else None
    if len(items) < max(threshold, 2) or not can_fork():
        if meanwhile is not None:
            meanwhile()
        if tick is None:
            return [fn(item) for item in items]
        out = []
        for item in items:
            out.append(fn(item))
            if len(out) % chunk == 0 or len(out) == len(items):
                tick(len(out), len(items))
        return out
    claims = _Claims(len(items), chunk)
    read_fd, write_fd = os.pipe()
    # The objects alive now are frozen out of the cyclic GC's reach, so the worker's
    # collections never write to (and copy) the pages it shares with this process.
    gc.freeze()
    try:
        pid = os.fork()
    except OSError as e:
        gc.unfreeze()
        os.close(read_fd)
        os.close(write_fd)
        claims.close()
        log.debug("parallel: cannot fork (%s); serial", e)
        if meanwhile is not None:
            meanwhile()
        return [fn(item) for item in items]
    if pid == 0:  # the worker: never returns
        _work(fn, items, claims, read_fd, write_fd, send)
    gc.unfreeze()
    os.close(write_fd)
    log.debug("parallel: worker %d started for %d items", pid, len(items))
    results: dict[int, Any] = {}
    done = False
    try:
        if meanwhile is not None:
            meanwhile()
        while taken := claims.take(from_front=True):
            for i in taken:
                results[i] = fn(items[i])
            if tick is not None:  # taken by either process: done, or being done
                tick(len(items) - claims.remaining(), len(items))
        answer = _receive(read_fd)
        done = True
    finally:
        os.close(read_fd)  # a worker still writing gets EPIPE and exits
        claims.close()
        if not done:
            _kill(pid)  # this process raises: the worker's work is of no use
        status = _reap(pid)
    mine = len(results)
    if answer is None or status != 0:
        log.warning("parallel: the worker process failed (status %s); its items done here", status)
    else:
        results.update(answer)
    log.debug("parallel: %d items here, %d in worker %d", mine, len(items) - mine, pid)
    out = []
    for i, item in enumerate(items):
        r = results.get(i, REDO)
        out.append(fn(item) if r is REDO else r)
    if tick is not None:
        tick(len(items), len(items))
    return out


def _work(fn: Callable, items: Sequence, claims: _Claims, read_fd: int, write_fd: int,
          send: Callable | None) -> None:
    """In the forked worker: compute, send, and leave through os._exit (no atexit handlers,
    no flushing of buffers inherited from the parent, no finalizers of its open databases)."""
    code = 1
    try:
        os.close(read_fd)
        answer: dict[int, Any] = {}
        while taken := claims.take(from_front=False):
            for i in reversed(taken):
                try:
                    answer[i] = fn(items[i]) if send is None else send(fn(items[i]))
                except Exception:  # done again in the parent, which raises it as serially
                    answer[i] = REDO
        import pickle  # lazy: ~2 ms, only where a worker was forked

        data = pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL)
        with os.fdopen(write_fd, "wb") as out:
            out.write(data)
        code = 0
    except BaseException:  # noqa: BLE001 -- whatever happens, the parent redoes the work
        code = 1
    finally:
        os._exit(code)


def _receive(read_fd: int) -> dict[int, Any] | None:
    chunks = []
    while True:
        chunk = os.read(read_fd, 1 << 20)
        if not chunk:
            break
        chunks.append(chunk)
    import pickle  # lazy: ~2 ms, only where a worker was forked

    try:
        answer = pickle.loads(b"".join(chunks))
    except Exception:  # a worker killed mid-write: truncated data
        return None
    return answer if isinstance(answer, dict) else None


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _reap(pid: int) -> int:
    try:
        _pid, status = os.waitpid(pid, 0)
    except ChildProcessError:
        return -1
    return os.waitstatus_to_exitcode(status)
