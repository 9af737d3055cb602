"""The feeds' thin, atomic writer: the only part of feeds/ that touches the disk."""

from __future__ import annotations

import logging
from pathlib import Path, PurePosixPath
from typing import Callable

from ..output import (WriteReport, remove_orphaned_temp_files, remove_stale, remove_stale_archives,
                      write_files)
from .common import ARCHIVE_DIR, FEED_FILES, TAGS_DIR, TERM_DIRS

log = logging.getLogger(__name__)


def write_feeds(files: dict[str, bytes], output_dir: Path, keep: frozenset[str] = frozenset(),
                meanwhile: Callable[[], object] | None = None) -> WriteReport:
    """Write `files` under output_dir: atomically, and only those whose bytes differ from what
    is there. Then delete the tag feeds (rss.xml, atom.xml, feed.json under tags/<slug>/) that
    are no longer produced (neither in `files` nor in `keep`: feeds left as they are), and the
    tag folders that leaves empty; nothing else is ever removed.
    Raises OutputError naming the path when the disk refuses; a failed write leaves the old
    file as it was. A file with a symlink on its way below output_dir is not written (nor is
    anything removed through one): the others are, stale ones removed, then OutputError names
    the link. `meanwhile`: see write_files."""
    output_dir = Path(output_dir)
    report = write_files(files, output_dir, meanwhile, check=False)
    remove_orphaned_temp_files(output_dir, {str(PurePosixPath(rel).parent) for rel in files},
                               TERM_DIRS)
    keep = set(files) | set(keep)
    report.removed = remove_stale_archives(output_dir, keep, FEED_FILES, TAGS_DIR, ARCHIVE_DIR)
    report.removed += [rel for terms in TERM_DIRS
                       for rel in remove_stale(output_dir, keep, terms, FEED_FILES)]
    log.info("feeds in %s: %d written, %d unchanged, %d removed", output_dir,
             len(report.written), len(report.unchanged), len(report.removed))
    report.raise_refused()
    return report
