"""The second core (content/parallel.py, feeds.write_feeds' threads): the parallel paths give
exactly what the serial ones give, a worker really does its share, and a failing worker
loses nothing. Real files, real fork, real fsync."""

from __future__ import annotations

import errno
import logging
import os
import shutil
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from publisher import content, feeds, output
from publisher.content import load_posts, parallel
from publisher.errors import OutputError

NOW = datetime(2025, 1, 6, 9, 0, tzinfo=timezone.utc)


def _wait_for(check, what: str) -> None:
    """Until check() is true (the other process got a core), for at most 30 s."""
    deadline = time.monotonic() + 30
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.002)


def _pid_marking(folder: Path, wait: bool = True):
    """fn for split_map: writes which process computed each item, as a real file; with
    `wait`, this process waits on its first item until the worker computed one (so both
    take part)."""
    here = os.getpid()

    def fn(item: int) -> int:
        if wait and os.getpid() == here and not list(folder.glob("*.pid")):
            (folder / f"{item}.pid").write_text(str(here))
            _wait_for(lambda: any(p.read_text() != str(here) for p in folder.glob("*.pid")),
                      "the worker's first item")
        (folder / f"{item}.pid").write_text(str(os.getpid()))
        return item * item

    return fn


def test_split_map_gives_the_tail_to_one_worker_process(tmp_path):
    items = list(range(40))
    results = parallel.split_map(_pid_marking(tmp_path), items, min_items=2)
    assert results == [i * i for i in items]
    pids = [int((tmp_path / f"{i}.pid").read_text()) for i in items]
    here = os.getpid()
    worker = {p for p in pids if p != here}
    assert len(worker) == 1  # one worker, and it did part of the work
    cut = pids.index(next(iter(worker)))
    assert 0 < cut < len(items)
    assert pids[:cut] == [here] * cut and set(pids[cut:]) == worker  # each item done once, in its half


def test_meanwhile_runs_here_while_the_worker_works(tmp_path):
    here = os.getpid()
    seen = []

    def meanwhile():
        _wait_for(lambda: any(p.read_text() != str(here) for p in tmp_path.glob("*.pid")),
                  "the worker's first item")
        seen.append(os.getpid())

    def fn(item):
        (tmp_path / f"{item}.pid").write_text(str(os.getpid()))
        return -item

    assert parallel.split_map(fn, list(range(30)), min_items=2, meanwhile=meanwhile) == [-i for i in range(30)]
    assert seen == [here]


def test_a_failure_here_kills_the_worker_and_is_raised(tmp_path):
    def meanwhile():
        raise RuntimeError("cannot open the state")

    def fn(item):
        time.sleep(0.01)
        return item

    with pytest.raises(RuntimeError, match="cannot open the state"):
        parallel.split_map(fn, list(range(500)), min_items=2, meanwhile=meanwhile)
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)  # the worker was reaped: no zombie left


def test_split_map_stays_serial_below_the_threshold_and_with_other_threads(tmp_path):
    fn = _pid_marking(tmp_path, wait=False)
    assert parallel.split_map(fn, list(range(10)), min_items=11) == [i * i for i in range(10)]
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        assert not parallel.can_fork()
        assert parallel.split_map(fn, list(range(10, 20)), min_items=2) == [i * i for i in range(10, 20)]
    finally:
        stop.set()
        thread.join()
    assert {(tmp_path / f"{i}.pid").read_text() for i in range(20)} == {str(os.getpid())}


def _mixed_site(site) -> None:
    """Posts, and every way a file can be skipped or collide, spread over the walk order."""
    for n in range(12):
        site.post(f"p{n:02d}.md", f"title: Post {n}\npubDate: 2024-01-{n + 1:02d}\ntags: [t{n % 3}]",
                  f"Body {n} with *emphasis*.\n")
    site.post("p03-broken.md", "", raw=b"---\ntitle: [unclosed\npubDate: 2024-01-01\n---\nx")
    site.post("p05-binary.md", "", raw=b"\0\1\2binary")
    site.post("p07-latin1.md", "", raw=b"---\ntitle: Caf\xe9\npubDate: 2024-01-01\n---\nx")
    site.post("p08-twin.md", "title: Twin\nslug: p08\npubDate: 2024-02-01", "Same URL.\n")
    site.post("p09-draft.md", "title: Draft\npubDate: 2024-01-09\ndraft: true", "Not yet.\n")
    site.post("p10-no-title.md", "pubDate: 2024-01-09", "No title.\n")
    site.post("z-future.md", "title: Later\npubDate: 2030-01-01", "Future.\n")


def _load(config, min_items: int, monkeypatch):
    monkeypatch.setattr(parallel, "MIN_ITEMS", min_items)
    return load_posts(config, NOW, cache={})


def _fields(result):
    return (result.posts, [p.body for p in result.posts], result.held_back, result.problems,
            result.cache_changed, result.files_signature)


class _ParsedBy:
    """The process that parsed each file, as written by that process to a real file. With
    `wait`, this process's first parse waits until the worker parsed one (both take part)."""

    def __init__(self, log: Path):
        self.log = log
        self.wait = False

    def worker_parsed(self) -> bool:
        here = f" {os.getpid()}"
        return self.log.exists() and any(not line.endswith(here)
                                         for line in self.log.read_text().splitlines())

    def read(self) -> dict[str, int]:
        lines = self.log.read_text(encoding="utf-8").splitlines() if self.log.exists() else []
        self.log.unlink(missing_ok=True)
        return {name: int(pid) for name, pid in (line.split() for line in lines)}


@pytest.fixture
def parse_pids(monkeypatch, tmp_path):
    parsed = _ParsedBy(tmp_path / "parsed-by.txt")
    real = content.posts._parse_post
    here = os.getpid()

    def parse(path, *args, **kwargs):
        first = not parsed.log.exists()
        with open(parsed.log, "a", encoding="utf-8") as f:
            f.write(f"{path.name} {os.getpid()}\n")
        if parsed.wait and first and os.getpid() == here:
            _wait_for(parsed.worker_parsed, "the worker's first file")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(content.posts, "_parse_post", parse)
    return parsed


def test_load_posts_in_two_processes_equals_the_serial_scan(site, monkeypatch, parse_pids):
    _mixed_site(site)
    config = site.config()
    serial = _load(config, 10**9, monkeypatch)
    assert set(parse_pids.read().values()) == {os.getpid()}
    parse_pids.wait = True
    both = _load(config, 2, monkeypatch)
    by = parse_pids.read()
    # Every post comes back without its body, the worker's as this process's (read again
    # from the file when asked: _fields reads them, and finds the serial scan's).
    assert all(p._body is None for p in both.posts + both.held_back + serial.posts + serial.held_back)
    assert _fields(both) == _fields(serial)
    # The messages, exactly as the serial scan words them, and in walk order.
    assert [line.split(":")[0] for line in serial.problems] == [
        "content/p03-broken.md", "content/p05-binary.md", "content/p07-latin1.md",
        "content/p08.md", "content/p10-no-title.md"]  # p08-twin.md walks first
    worker = {pid for pid in by.values() if pid != os.getpid()}
    assert len(worker) == 1
    assert by["z-future.md"] in worker and by["p00.md"] == os.getpid()  # the tail, the head
    assert [p.title for p in both.held_back] == ["Draft", "Later"]


def test_a_worker_that_dies_costs_time_not_posts(site, monkeypatch, parse_pids, caplog):
    _mixed_site(site)
    config = site.config()
    serial = _load(config, 10**9, monkeypatch)
    parse_pids.read()
    here = os.getpid()
    real = content.posts._parse_post

    def dying(path, *args, **kwargs):
        if os.getpid() != here:
            os._exit(3)  # the worker dies on its first file
        return real(path, *args, **kwargs)

    monkeypatch.setattr(content.posts, "_parse_post", dying)
    with caplog.at_level(logging.WARNING, logger="publisher.content.parallel"):
        both = _load(config, 2, monkeypatch)
    assert _fields(both) == _fields(serial)
    assert "worker process failed (status 3)" in caplog.text
    assert set(parse_pids.read().values()) == {here}  # all parsed here (the worker died first)


def test_an_unexpected_error_in_the_worker_is_raised_as_serially(site, monkeypatch):
    _mixed_site(site)
    config = site.config()
    real = content.posts._parse_post

    def fails(path, *args, **kwargs):
        if path.name == "z-future.md":  # last in the walk: the worker's
            raise RuntimeError(f"{path.name}: a bug")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(content.posts, "_parse_post", fails)
    with pytest.raises(RuntimeError, match="z-future.md: a bug"):
        _load(config, 10**9, monkeypatch)
    with pytest.raises(RuntimeError, match="z-future.md: a bug"):
        _load(config, 2, monkeypatch)


def _feed_files(count: int, version: str) -> dict[str, bytes]:
    return {f"tags/t{n:02d}/rss.xml": f"<rss>{version} {n}</rss>".encode() for n in range(count)}


def _on_disk(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_feeds_written_by_threads_are_the_serial_bytes(tmp_path, monkeypatch):
    monkeypatch.setattr(output, "PARALLEL_WRITES_FROM", 4)
    old, new = _feed_files(20, "old"), _feed_files(20, "new")
    new["tags/t05/rss.xml"] = old["tags/t05/rss.xml"]  # unchanged: not rewritten
    report = feeds.write_feeds(old, tmp_path / "out")
    assert sorted(report.written) == sorted(old) and _on_disk(tmp_path / "out") == old
    untouched = (tmp_path / "out" / "tags/t05/rss.xml").stat().st_mtime_ns
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(output.os, "fsync", lambda fd: (synced.append(threading.get_ident()), real_fsync(fd)))
    report = feeds.write_feeds(new, tmp_path / "out")
    assert report.written == sorted(set(new) - {"tags/t05/rss.xml"})
    assert report.unchanged == ["tags/t05/rss.xml"]
    assert _on_disk(tmp_path / "out") == new
    assert (tmp_path / "out" / "tags/t05/rss.xml").stat().st_mtime_ns == untouched
    assert len(synced) == 19 and threading.get_ident() not in synced


def test_meanwhile_runs_here_while_the_writer_threads_write(tmp_path, monkeypatch):
    # pipeline.write_site_feeds stores the render cache so: in this thread, while the
    # writers wait on the disk; if it fails, no feed is put in place and nothing is left over.
    monkeypatch.setattr(output, "PARALLEL_WRITES_FROM", 4)
    out = tmp_path / "out"
    old, new = _feed_files(20, "old"), _feed_files(20, "new")
    feeds.write_feeds(old, out)
    writers_started = threading.Event()
    real_fsync = os.fsync
    monkeypatch.setattr(output.os, "fsync", lambda fd: (writers_started.set(), real_fsync(fd)))
    ran_in: list[int] = []

    def meanwhile():
        assert writers_started.wait(30)  # the threads write while this runs
        ran_in.append(threading.get_ident())

    report = feeds.write_feeds(new, out, meanwhile=meanwhile)
    assert ran_in == [threading.get_ident()] and len(report.written) == 20
    assert _on_disk(out) == new

    def failing():
        raise RuntimeError("the state database refused")

    with pytest.raises(RuntimeError, match="refused"):
        feeds.write_feeds(old, out, meanwhile=failing)
    assert _on_disk(out) == new  # nothing put in place, no temporary file left
    few, found = dict(list(new.items())[:2]), []
    feeds.write_feeds(few, tmp_path / "few", meanwhile=lambda: found.append(_on_disk(tmp_path / "few")))
    assert found == [{}] and _on_disk(tmp_path / "few") == few  # below PARALLEL_WRITES_FROM: first


def test_a_failed_threaded_write_keeps_the_files_after_it_old(tmp_path, monkeypatch):
    monkeypatch.setattr(output, "PARALLEL_WRITES_FROM", 4)
    out = tmp_path / "out"
    old, new = _feed_files(20, "old"), _feed_files(20, "new")
    feeds.write_feeds(old, out)
    real_fsync = os.fsync

    def fsync(fd):
        if os.readlink(f"/proc/self/fd/{fd}").split("/")[-2] == "t07":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(output.os, "fsync", fsync)
    with pytest.raises(OutputError, match=r"t07/rss\.xml: cannot write feed: No space left on device"):
        feeds.write_feeds(new, out)
    expected = {rel: (new if rel < "tags/t07" else old)[rel] for rel in old}
    assert _on_disk(out) == expected  # before t07 in place, t07 and after old, no temporary files


def test_a_cold_build_creates_the_state_while_the_worker_parses(site, monkeypatch, parse_pids):
    from publisher import cache, pipeline

    _mixed_site(site)
    config = site.config()
    database = cache.sqlite_path(config)
    if database is None:
        pytest.skip("the overlap is for a SQLite state database (PostgreSQL: serial)")

    def outputs():
        return {p.relative_to(config.output_dir): p.read_bytes()
                for p in sorted(config.output_dir.rglob("*")) if p.is_file()}

    monkeypatch.setattr(parallel, "MIN_ITEMS", 10**9)
    serial_report = pipeline.build(config, NOW)
    serial = outputs()
    parse_pids.read()
    for path in [Path(database), config.output_dir]:
        shutil.rmtree(path) if path.is_dir() else path.unlink()

    monkeypatch.setattr(parallel, "MIN_ITEMS", 2)
    real_open = cache.open_build_state
    opened = []

    def open_build_state(config):
        _wait_for(parse_pids.worker_parsed, "the worker's first file")  # it parses meanwhile
        opened.append(os.getpid())
        return real_open(config)

    monkeypatch.setattr(cache, "open_build_state", open_build_state)
    report = pipeline.build(config, NOW)
    assert opened == [os.getpid()] and Path(database).is_file()
    assert outputs() == serial and report.problems == serial_report.problems
    by = parse_pids.read()
    assert len(by) == 19 and by["z-future.md"] != os.getpid()  # each file once; the tail by the worker
    monkeypatch.setattr(cache, "open_build_state", real_open)
    state, loaded = cache.open_and_load_site(config, NOW)  # the scan cache was stored
    with state:
        assert loaded.cache_hits == 19 and loaded.cache_changed == {}
    assert parse_pids.read() == {}


def test_posts_rendered_ahead_by_two_processes_give_the_serial_feeds(site, monkeypatch, tmp_path):
    from publisher import cache, pipeline

    for n in range(24):
        site.post(f"p{n:02d}.md", f"title: Post {n}\npubDate: 2024-01-{n + 1:02d}\ntags: [t{n % 3}]",
                  f"Body {n}: see [the previous one](p{max(n - 1, 0):02d}.md), `code`, "
                  f"a footnote[^1].\n\n[^1]: Note {n}.\n")
    config = site.config()
    if cache.sqlite_path(config) is None:
        pytest.skip("cold builds here delete a SQLite state database")
    log = tmp_path / "rendered-by.txt"
    real = content.render_html
    here = os.getpid()

    def worker_rendered() -> bool:
        return log.exists() and any(not line.endswith(f" {here}") for line in log.read_text().splitlines())

    def render_html(post, *args, **kwargs):
        first = not log.exists()
        with open(log, "a", encoding="utf-8") as f:
            f.write(f"{post.slug} {os.getpid()}\n")
        if first and os.getpid() == here and parallel.MIN_RENDERS == 2:
            _wait_for(worker_rendered, "the worker's first render")
        return real(post, *args, **kwargs)

    monkeypatch.setattr(content, "render_html", render_html)

    def cold_build(min_renders: int):
        monkeypatch.setattr(parallel, "MIN_RENDERS", min_renders)
        for path in Path(cache.sqlite_path(config)).parent.glob(Path(cache.sqlite_path(config)).name + "*"):
            path.unlink()
        shutil.rmtree(config.output_dir, ignore_errors=True)
        log.unlink(missing_ok=True)
        report = pipeline.build(config, NOW)
        by = [line.split() for line in log.read_text().splitlines()]
        return _on_disk(config.output_dir), report, by

    serial, serial_report, serial_by = cold_build(10**9)
    both, report, by = cold_build(2)
    assert both == serial and report.lines == serial_report.lines  # "24 rendered, 0 from cache"
    assert "24 rendered" in report.lines[0]
    assert sorted(slug for slug, _ in by) == sorted(slug for slug, _ in serial_by) and len(by) == 24
    assert {pid for _, pid in serial_by} == {str(here)}
    assert len({pid for _, pid in by} - {str(here)}) == 1  # the worker rendered some


def test_feed_formats_written_by_two_processes_are_the_serial_bytes(site, monkeypatch, tmp_path):
    # _Entries.render: each format (its new entries and every feed's skeleton) is one job;
    # from MIN_RENDERS posts' worth of entries this process and a forked worker take jobs
    # from both ends (JSON Feed first here, RSS there).
    for n in range(12):
        site.post(f"p{n:02d}.md", f"title: Post {n} & <co>\npubDate: 2024-01-{n + 1:02d}\ntags: [t{n % 3}]",
                  f"Body {n} with *emphasis* and a [link](https://example.org/{n}).\n")
    config = site.config()
    posts = load_posts(config, NOW).posts
    log = tmp_path / "serialised-by.txt"
    real = feeds.render._Entries._run
    here = os.getpid()

    def worker_ran() -> bool:
        return log.exists() and any(not line.endswith(f" {here}") for line in log.read_text().splitlines())

    def run(self, all_feeds, job):
        first = not log.exists()
        with open(log, "a", encoding="utf-8") as f:
            f.write(f"{job[0]} {os.getpid()}\n")
        if first and os.getpid() == here and parallel.MIN_RENDERS == 2:
            _wait_for(worker_ran, "the worker's first format")
        return real(self, all_feeds, job)

    monkeypatch.setattr(feeds.render._Entries, "_run", run)

    def render(min_renders: int):
        monkeypatch.setattr(parallel, "MIN_RENDERS", min_renders)
        log.unlink(missing_ok=True)
        files = feeds.render_feeds(posts, config, content.render_html)
        return files, dict(line.split() for line in log.read_text().splitlines())

    serial, serial_by = render(10**9)
    both, by = render(2)
    assert both == serial and len(serial) == 12  # the site's and 3 tags' rss, atom and json
    assert list(both) == list(serial)  # in the same order too
    assert set(serial_by) == set(by) == {"rss.xml", "atom.xml", "feed.json"}
    assert set(serial_by.values()) == {str(here)}
    assert by["feed.json"] == str(here) and by["rss.xml"] != str(here)  # the head here, the tail there
