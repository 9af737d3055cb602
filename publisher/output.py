"""Writing inside the output folder (feeds.output_dir): files written atomically (a temporary
file beside each, then os.replace) and only when their bytes changed, and the removal of
what a build no longer produces. The feeds (feeds.py), the local images they link
(content/links.py's MediaFile, read by pipeline.py) and the newsletter archive
(newsletter/archive.py) are all written through here; this module knows no feed format."""

from __future__ import annotations

import logging
import os
import re
import secrets
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable

from .errors import OutputError

log = logging.getLogger(__name__)


@dataclass
class WriteReport:
    """What write_files (and feeds.write_feeds) did; every entry is a path relative to the output folder, '/'-separated."""

    written: list[str] = field(default_factory=list)  # created or changed
    unchanged: list[str] = field(default_factory=list)  # same bytes already there: not touched
    removed: list[str] = field(default_factory=list)  # stale tag feeds deleted


def write_files(files: dict[str, bytes], output_dir: Path,
                meanwhile: Callable[[], object] | None = None) -> WriteReport:
    """Write `files` under output_dir, atomically and only those whose bytes differ; remove
    nothing. The feeds and the newsletter archive (newsletter/archive.py) are written so.
    `meanwhile()`, if given, is called once, here, while writer threads wait on the disk (or
    before the files are written one by one); if it raises, no file is put in place."""
    for rel in files:
        _check_relative(rel)  # before anything is written
    report = WriteReport()
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"{output_dir}: cannot create the feeds folder: {_reason(e)}") from e
    changed = []
    for rel in sorted(files):
        if _has_bytes(output_dir / rel, files[rel]):
            report.unchanged.append(rel)
        else:
            changed.append(rel)
    if len(changed) < PARALLEL_WRITES_FROM:
        if meanwhile is not None:
            meanwhile()
        for rel in changed:
            _write_atomically(output_dir / rel, files[rel])
            report.written.append(rel)
    else:
        report.written = _write_all(output_dir, files, changed, meanwhile)
    return report


def _check_relative(rel: str) -> None:
    """Refuse a path that could leave the output folder. Tag slugs are safe by construction,
    so a failure here is a bug, and keeps its traceback."""
    parts = PurePosixPath(rel).parts
    if (not rel or "\\" in rel or "\0" in rel or PurePosixPath(rel).is_absolute()
            or any(part in ("", ".", "..") for part in parts) or rel != "/".join(parts)):
        raise ValueError(f"feed path {rel!r} is not a plain relative path inside the output folder")


def _reason(e: OSError) -> str:
    return e.strerror or str(e)


def _has_bytes(path: Path, data: bytes) -> bool:
    try:
        if path.stat().st_size != len(data):
            return False
        return path.read_bytes() == data
    except OSError:
        return False  # missing or unreadable: write it (and report the error if that fails)


# From this many files to write, their temporary files are written and fsynced by a few
# threads at once (fsync releases the GIL and waits on the disk: ~0.5 ms idle, several under
# load, for each of a 2,000-post site's ~120 feeds); below, one by one.
PARALLEL_WRITES_FROM = 16
WRITE_THREADS = 8  # 123 files of 20 KB: 4 threads 50 ms, 8 43 ms, 16 43 ms (ext4, 2 cores)


def _write_all(output_dir: Path, files: dict[str, bytes], changed: list[str],
               meanwhile: Callable[[], object] | None = None) -> list[str]:
    """_write_atomically for each of `changed` (sorted), the temporary files written and
    fsynced by WRITE_THREADS threads (while this thread runs `meanwhile`), then put in place
    one by one in the same order. As in the serial loop, the files before the first that
    fails are in place, that one and those after it are not (their temporary files deleted),
    and its OutputError is raised. If `meanwhile` raises, none is put in place."""
    from concurrent.futures import ThreadPoolExecutor  # lazy: ~5 ms, only for many files

    def stage(rel: str) -> tuple[Path, Path | None, OutputError | None]:
        path = output_dir / rel
        try:
            return path, _write_temporary(path, files[rel]), None
        except OutputError as e:
            return path, None, e

    failed: BaseException | None = None
    with ThreadPoolExecutor(max_workers=WRITE_THREADS) as pool:
        pending = pool.map(stage, changed)
        try:
            if meanwhile is not None:
                meanwhile()
        except BaseException as e:  # noqa: BLE001 -- raised below, once the threads are done
            failed = e
        staged = list(pending)
    written: list[str] = []
    try:
        if failed is not None:
            raise failed
        for rel, (path, tmp, error) in zip(changed, staged):
            if error is not None:
                raise error
            _put_in_place(path, tmp)
            written.append(rel)
    finally:
        for path, tmp, _error in staged[len(written):]:
            if tmp is not None:
                _discard(tmp)
    return written


def _write_atomically(path: Path, data: bytes) -> None:
    """A temporary file in the same folder, then os.replace: readers see the old feed or the
    new one, never half of one, and a failure leaves the old file untouched."""
    _put_in_place(path, _write_temporary(path, data))


def _discard(tmp: Path) -> None:
    try:
        tmp.unlink(missing_ok=True)
    except OSError:
        pass


def _write_temporary(path: Path, data: bytes) -> Path:
    """The bytes in a new temporary file beside `path`, on disk (fsync); its path."""
    folder = path.parent
    tmp = folder / f".{path.name}.{secrets.token_hex(6)}.tmp"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # os.open with 0o666 lets the umask decide the mode, as for any new file (mkstemp's 0600
        # would hide the feeds from the web server).
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as e:
        raise OutputError(f"{path}: cannot write feed: {_reason(e)}") from e
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())  # the data is on disk before the name points at it
    except OSError as e:
        _discard(tmp)
        raise OutputError(f"{path}: cannot write feed: {_reason(e)}") from e
    return tmp


def _put_in_place(path: Path, tmp: Path) -> None:
    """The temporary file (_write_temporary) takes the feed's name, with the old file's mode."""
    try:
        try:
            os.chmod(tmp, stat.S_IMODE(os.stat(path).st_mode))  # keep a mode the owner chose
        except FileNotFoundError:
            pass
        os.replace(tmp, path)
    except OSError as e:
        _discard(tmp)
        raise OutputError(f"{path}: cannot write feed: {_reason(e)}") from e


# A temporary feed file older than this was left by a build that died (SIGKILL, power loss)
# before its os.replace. Younger ones may belong to a build running right now.
ORPHAN_TEMP_AGE = 600.0  # seconds
_TEMP_NAME = re.compile(r"\.(?:rss\.xml|atom\.xml|feed\.json)\.[0-9a-f]{12}\.tmp")


def remove_orphaned_temp_files(output_dir: Path, folders: set[str], term_dirs: tuple[str, ...]) -> None:
    """Delete the temporary files that killed builds left in the folders written to (and in
    each folder of `term_dirs`: tags/*), so they are neither published nor keep an old tag's
    folder alive."""
    candidates = {output_dir / f for f in folders}
    for terms in (output_dir / d for d in term_dirs):
        if terms.is_dir():
            candidates.update(p for p in terms.iterdir() if p.is_dir() and not p.is_symlink())
    cutoff = time.time() - ORPHAN_TEMP_AGE
    for folder in candidates:
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            try:
                if (_TEMP_NAME.fullmatch(entry.name) and entry.is_file(follow_symlinks=False)
                        and entry.stat(follow_symlinks=False).st_mtime < cutoff):
                    os.unlink(entry.path)
                    log.info("removed %s, left by an interrupted build", entry.path)
            except OSError:
                pass  # gone already, or not ours to remove: never a reason to fail a build


def _remove_files(folder: Path, rel_folder: str, names: tuple[str, ...], keep: set[str],
                  what: str) -> list[str]:
    """Delete the files called `names` (rss.xml, atom.xml, feed.json) of `folder` that `keep`
    does not name, `rel_folder` being its path in the output ('tags/x/'); never through a
    link, and never anything else. Returns what it removed."""
    removed: list[str] = []
    for name in names:
        rel = rel_folder + name
        path = folder / name
        if rel in keep or path.is_symlink() or not path.is_file():
            continue
        try:
            path.unlink()
        except OSError as e:
            raise OutputError(f"{path}: cannot remove {what}: {_reason(e)}") from e
        removed.append(rel)
    return removed


def remove_stale_archives(output_dir: Path, keep: set[str], names: tuple[str, ...],
                          tags_dir: str, archive_dir: str) -> list[str]:
    """Delete the archive pages (<archive_dir>/<n>/ under the site's and each tag's folder)
    that are no longer produced: after posts were removed, or feeds.archive_size or .archive
    changed. Only the files called `names` are removed, and then the folders that leaves empty."""
    bases = [output_dir]
    tags = output_dir / tags_dir
    if tags.is_dir() and not tags.is_symlink():
        bases += sorted(p for p in tags.iterdir() if p.is_dir() and not p.is_symlink())
    removed: list[str] = []
    for base in bases:
        archive = base / archive_dir
        if not archive.is_dir() or archive.is_symlink():
            continue
        for page in sorted(archive.iterdir()):
            if not page.name.isdigit() or not page.is_dir() or page.is_symlink():
                continue
            removed += _remove_files(page, page.relative_to(output_dir).as_posix() + "/",
                                     names, keep, "stale archive page")
            _rmdir_if_empty(page)
        _rmdir_if_empty(archive)
    return removed


def _rmdir_if_empty(folder: Path) -> None:
    try:
        os.rmdir(folder)  # only succeeds if nothing else is in it
    except OSError:
        pass


def remove_stale(output_dir: Path, keep: set[str], terms: str, names: tuple[str, ...]) -> list[str]:
    """Delete the files called `names` under <terms>/<slug>/ that `keep` does not name, and
    the folders that leaves empty (and <terms>/ itself, once something was removed)."""
    tags_dir = output_dir / terms
    try:
        entries = sorted(os.scandir(tags_dir), key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as e:
        raise OutputError(f"{tags_dir}: cannot list old tag feeds: {_reason(e)}") from e
    removed: list[str] = []
    kept_folders = {PurePosixPath(rel).parts[1] for rel in keep
                    if len(PurePosixPath(rel).parts) == 3 and rel.startswith(terms + "/")}
    for entry in entries:
        if not entry.is_dir(follow_symlinks=False):  # never follow a link out of the folder
            continue
        removed += _remove_files(Path(entry.path), f"{terms}/{entry.name}/", names, keep,
                                 "stale feed")
        if entry.name not in kept_folders:
            try:
                os.rmdir(entry.path)  # only succeeds if nothing else is in it
            except OSError:
                pass
    if removed:
        try:
            os.rmdir(tags_dir)
        except OSError:
            pass
    return removed
