"""Writing inside the output folder (feeds.output_dir): files written atomically (a temporary
file beside each, then os.replace) and only when their bytes changed, and the removal of
what a build no longer produces. The feeds (feeds/), the local images they link
(content/links.py's MediaFile, read by pipeline.py) and the newsletter archive
(newsletter/archive.py) are all written through here; this module knows no feed format.
Below the output folder nothing is written, replaced or removed through a symlink (see
"never through a symlink")."""

from __future__ import annotations

import logging
import os
import re
import secrets
import stat
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable, Iterator

from .errors import OutputError

log = logging.getLogger(__name__)


@dataclass
class WriteReport:
    """What write_files (and feeds.write_feeds) did; every entry is a path relative to the
    output folder, '/'-separated."""

    written: list[str] = field(default_factory=list)  # created or changed
    unchanged: list[str] = field(default_factory=list)  # same bytes already there: not touched
    removed: list[str] = field(default_factory=list)  # stale tag feeds deleted
    # Not written because a symlink is on the way: {the link's path: the files below it}.
    refused: dict[str, list[str]] = field(default_factory=dict)

    def raise_refused(self) -> None:
        """OutputError naming each symlink that files were not written through, if any."""
        if self.refused:
            raise OutputError("\n".join(
                f"{link}: a symbolic link inside the output folder: nothing is written through it"
                f" ({len(rels)} not written: {', '.join(rels[:3])}{', ...' if len(rels) > 3 else ''})"
                for link, rels in sorted(self.refused.items())))


# --- never through a symlink --------------------------------------------------------------
# The output folder the user configured may itself be a symlink: their choice. Below it, a
# symlink (committed to a blog's repository, say `public/tags -> /elsewhere`) would let a build
# write, replace or delete files that were never ours. So every folder below output_dir is
# reached from a descriptor of its parent, opened with O_NOFOLLOW (no check-then-use gap),
# and a file is replaced or removed through its folder's descriptor.

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


class ThroughSymlink(OutputError):
    """A folder below the output folder that is a symlink, where one was about to be entered."""

    def __init__(self, link: Path):
        super().__init__(f"{link}: a symbolic link inside the output folder: "
                         "nothing is written or removed through it")
        self.link = link


def _is_link(dir_fd: int, name: str) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


@contextmanager
def _folder(output_dir: Path, parts: tuple[str, ...] | list[str], create: bool = False) -> Iterator[int]:
    """A descriptor of output_dir/parts, every part entered without following a symlink
    (ThroughSymlink names the first that is one); `create` makes the missing folders.
    OSError for a folder that is missing (without `create`) or cannot be opened."""
    fd = os.open(output_dir, _DIR_FLAGS)
    try:
        for i, part in enumerate(parts):
            if create:
                try:
                    os.mkdir(part, dir_fd=fd)
                except FileExistsError:
                    pass
            try:
                child = os.open(part, _DIR_FLAGS | _NOFOLLOW, dir_fd=fd)
            except OSError:
                if _is_link(fd, part):
                    raise ThroughSymlink(output_dir.joinpath(*parts[:i + 1])) from None
                raise
            os.close(fd)
            fd = child
        yield fd
    finally:
        os.close(fd)


def _symlink_on_the_way(output_dir: Path, rel: str) -> Path | None:
    """The first symlink among the existing components of output_dir/rel below output_dir
    (the file itself included), or None."""
    path = output_dir
    for part in rel.split("/"):
        path = path / part
        try:
            mode = os.lstat(path).st_mode
        except OSError:
            return None  # missing: created as a real folder (checked again when entered)
        if stat.S_ISLNK(mode):
            return path
    return None


def write_files(files: dict[str, bytes], output_dir: Path,
                meanwhile: Callable[[], object] | None = None, *, check: bool = True) -> WriteReport:
    """Write `files` under output_dir, atomically and only those whose bytes differ; remove
    nothing. The feeds, the images they link and the newsletter archive are written so.
    A file with a symlink on its way below output_dir (a folder, or the file itself) is not
    written, the others are; then OutputError names each such link (`check`; without it
    they are in report.refused, for WriteReport.raise_refused).
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
        link = _symlink_on_the_way(output_dir, rel)
        if link is not None:
            report.refused.setdefault(str(link), []).append(rel)
        elif _has_bytes(output_dir, rel, files[rel]):
            report.unchanged.append(rel)
        else:
            changed.append(rel)
    if len(changed) < PARALLEL_WRITES_FROM:
        if meanwhile is not None:
            meanwhile()
        for rel in changed:
            _write_atomically(output_dir, rel, files[rel])
            report.written.append(rel)
    else:
        report.written = _write_all(output_dir, files, changed, meanwhile)
    if check:
        report.raise_refused()
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


def _split(rel: str) -> tuple[list[str], str]:
    """'tags/x/rss.xml' -> (['tags', 'x'], 'rss.xml')."""
    *folder, name = rel.split("/")
    return folder, name


def _has_bytes(output_dir: Path, rel: str, data: bytes) -> bool:
    folder, name = _split(rel)
    try:
        with _folder(output_dir, folder) as dir_fd:
            fd = os.open(name, os.O_RDONLY | _NOFOLLOW | getattr(os, "O_CLOEXEC", 0), dir_fd=dir_fd)
            with os.fdopen(fd, "rb") as f:
                if os.fstat(f.fileno()).st_size != len(data):
                    return False
                return f.read() == data
    except (OSError, ThroughSymlink):
        return False  # missing, unreadable or a link: write it (and report the error if that fails)


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

    def stage(rel: str) -> tuple[str, str | None, OutputError | None]:
        try:
            return rel, _write_temporary(output_dir, rel, files[rel]), None
        except OutputError as e:
            return rel, None, e

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
        for rel, tmp, error in staged:
            if error is not None:
                raise error
            _put_in_place(output_dir, rel, tmp)
            written.append(rel)
    finally:
        for rel, tmp, _error in staged[len(written):]:
            if tmp is not None:
                _discard(output_dir, rel, tmp)
    return written


def _write_atomically(output_dir: Path, rel: str, data: bytes) -> None:
    """A temporary file in the same folder, then os.replace: readers see the old feed or the
    new one, never half of one, and a failure leaves the old file untouched."""
    _put_in_place(output_dir, rel, _write_temporary(output_dir, rel, data))


def _discard(output_dir: Path, rel: str, tmp: str) -> None:
    """Remove the temporary file `tmp` beside `rel` (never through a symlink)."""
    try:
        with _folder(output_dir, _split(rel)[0]) as dir_fd:
            os.unlink(tmp, dir_fd=dir_fd)
    except (OSError, ThroughSymlink):
        pass  # gone, or its folder is no longer where it was: the orphan sweep may find it


def _write_temporary(output_dir: Path, rel: str, data: bytes) -> str:
    """The bytes in a new temporary file beside output_dir/rel, on disk (fsync); its name."""
    path = output_dir / rel
    folder, name = _split(rel)
    tmp = f".{name}.{secrets.token_hex(6)}.tmp"
    try:
        with _folder(output_dir, folder, create=True) as dir_fd:
            # 0o666 lets the umask decide the mode, as for any new file (mkstemp's 0600
            # would hide the feeds from the web server).
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o666, dir_fd=dir_fd)
    except ThroughSymlink as e:
        raise OutputError(f"{path}: not written: {e}") from None
    except OSError as e:
        raise OutputError(f"{path}: cannot write feed: {_reason(e)}") from e
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())  # the data is on disk before the name points at it
    except OSError as e:
        _discard(output_dir, rel, tmp)
        raise OutputError(f"{path}: cannot write feed: {_reason(e)}") from e
    return tmp


def _put_in_place(output_dir: Path, rel: str, tmp: str) -> None:
    """The temporary file (_write_temporary) takes the file's name, with the old file's mode;
    a symlink there is not replaced (nor followed)."""
    path = output_dir / rel
    folder, name = _split(rel)
    try:
        with _folder(output_dir, folder) as dir_fd:
            try:
                try:
                    old = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                except FileNotFoundError:
                    pass
                else:
                    if stat.S_ISLNK(old.st_mode):
                        raise ThroughSymlink(path)
                    os.chmod(tmp, stat.S_IMODE(old.st_mode), dir_fd=dir_fd)  # a mode the owner chose
                os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            except BaseException:
                try:
                    os.unlink(tmp, dir_fd=dir_fd)
                except OSError:
                    pass
                raise
    except ThroughSymlink as e:
        raise OutputError(f"{path}: not written: {e}") from None
    except OSError as e:
        raise OutputError(f"{path}: cannot write feed: {_reason(e)}") from e


# A temporary feed file older than this was left by a build that died (SIGKILL, power loss)
# before its os.replace. Younger ones may belong to a build running right now.
ORPHAN_TEMP_AGE = 600.0  # seconds
_TEMP_NAME = re.compile(r"\.(?:rss\.xml|atom\.xml|feed\.json)\.[0-9a-f]{12}\.tmp")


def _subfolders(output_dir: Path, parts: tuple[str, ...]) -> list[str]:
    """The names of the real folders (no symlinks) in output_dir/parts, sorted; [] if it is
    missing or a symlink (never looked into)."""
    try:
        with _folder(output_dir, parts) as fd:
            with os.scandir(fd) as entries:
                return sorted(e.name for e in entries if e.is_dir(follow_symlinks=False))
    except (OSError, ThroughSymlink):
        return []


def remove_orphaned_temp_files(output_dir: Path, folders: set[str], term_dirs: tuple[str, ...]) -> None:
    """Delete the temporary files that killed builds left in the folders written to (and in
    each folder of `term_dirs`: tags/*), so they are neither published nor keep an old tag's
    folder alive."""
    candidates = {PurePosixPath(f).parts for f in folders}
    for terms in term_dirs:
        candidates.update((terms, name) for name in _subfolders(output_dir, (terms,)))
    cutoff = time.time() - ORPHAN_TEMP_AGE
    for parts in sorted(candidates):
        try:
            with _folder(output_dir, parts) as fd:
                with os.scandir(fd) as it:
                    entries = list(it)
                for entry in entries:
                    try:
                        if (_TEMP_NAME.fullmatch(entry.name) and entry.is_file(follow_symlinks=False)
                                and entry.stat(follow_symlinks=False).st_mtime < cutoff):
                            os.unlink(entry.name, dir_fd=fd)
                            log.info("removed %s, left by an interrupted build",
                                     output_dir.joinpath(*parts, entry.name))
                    except OSError:
                        pass  # gone already, or not ours to remove: never a reason to fail a build
        except (OSError, ThroughSymlink):
            continue  # missing, or a symlink (never looked into)


def _remove_files(output_dir: Path, parts: tuple[str, ...], dir_fd: int, names: tuple[str, ...],
                  keep: set[str], what: str) -> list[str]:
    """Delete the regular files called `names` in the folder `dir_fd` (output_dir/parts) that
    `keep` does not name; never a link, never through one, and never anything else.
    Returns what it removed, as paths relative to output_dir."""
    removed: list[str] = []
    for name in names:
        rel = "/".join((*parts, name))
        if rel in keep:
            continue
        try:
            if not stat.S_ISREG(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode):
                continue
            os.unlink(name, dir_fd=dir_fd)
        except FileNotFoundError:
            continue
        except OSError as e:
            raise OutputError(f"{output_dir.joinpath(*parts, name)}: cannot remove {what}: "
                              f"{_reason(e)}") from e
        removed.append(rel)
    return removed


def _rmdir_if_empty(dir_fd: int, name: str) -> None:
    try:
        os.rmdir(name, dir_fd=dir_fd)  # only succeeds if nothing else is in it (never a link)
    except OSError:
        pass


def remove_stale_archives(output_dir: Path, keep: set[str], names: tuple[str, ...],
                          tags_dir: str, archive_dir: str) -> list[str]:
    """Delete the archive pages (<archive_dir>/<n>/ under the site's and each tag's folder)
    that are no longer produced: after posts were removed, or feeds.archive_size or .archive
    changed. Only the files called `names` are removed, and then the folders that leaves
    empty; no symlink is followed."""
    bases = [()] + [(tags_dir, name) for name in _subfolders(output_dir, (tags_dir,))]
    removed: list[str] = []
    for base in bases:
        archive = (*base, archive_dir)
        pages = [p for p in _subfolders(output_dir, archive) if p.isdigit()]
        try:
            with _folder(output_dir, archive) as archive_fd:
                for page in pages:
                    try:
                        with _folder(output_dir, (*archive, page)) as page_fd:
                            removed += _remove_files(output_dir, (*archive, page), page_fd, names,
                                                     keep, "stale archive page")
                    except (OSError, ThroughSymlink):
                        continue  # gone, or replaced by a link since it was listed: not ours
                    _rmdir_if_empty(archive_fd, page)
        except (OSError, ThroughSymlink):
            continue
        _remove_folder_if_empty(output_dir, base, archive_dir)
    return removed


def _remove_folder_if_empty(output_dir: Path, parts: tuple[str, ...], name: str) -> None:
    try:
        with _folder(output_dir, parts) as fd:
            _rmdir_if_empty(fd, name)
    except (OSError, ThroughSymlink):
        pass


def remove_stale(output_dir: Path, keep: set[str], terms: str, names: tuple[str, ...]) -> list[str]:
    """Delete the files called `names` under <terms>/<slug>/ that `keep` does not name, and
    the folders that leaves empty (and <terms>/ itself, once something was removed); never
    through a symlink (a <terms>/ that is one is not looked into)."""
    tags_dir = output_dir / terms
    try:
        with _folder(output_dir, (terms,)) as fd:
            with os.scandir(fd) as it:
                entries = sorted(it, key=lambda e: e.name)
            removed: list[str] = []
            kept_folders = {PurePosixPath(rel).parts[1] for rel in keep
                            if len(PurePosixPath(rel).parts) == 3 and rel.startswith(terms + "/")}
            for entry in entries:
                if not entry.is_dir(follow_symlinks=False):  # never follow a link out of the folder
                    continue
                try:
                    with _folder(output_dir, (terms, entry.name)) as sub_fd:
                        removed += _remove_files(output_dir, (terms, entry.name), sub_fd, names,
                                                 keep, "stale feed")
                except ThroughSymlink:
                    continue  # replaced by a link since it was listed: not ours
                except FileNotFoundError:
                    continue
                if entry.name not in kept_folders:
                    _rmdir_if_empty(fd, entry.name)
    except ThroughSymlink as e:
        log.info("%s", e)  # nothing of ours is behind it; a write there is an error (write_files)
        return []
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OutputError:
        raise
    except OSError as e:
        raise OutputError(f"{tags_dir}: cannot list old tag feeds: {_reason(e)}") from e
    if removed:
        _remove_folder_if_empty(output_dir, (), terms)
    return removed
