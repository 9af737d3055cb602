"""Checking written feeds (check_feeds: is each file what its name says) and describing them
(describe_feeds, for `publisher check`). Reads only."""

from __future__ import annotations

import json
import logging
from pathlib import Path, PurePosixPath

from lxml import etree

from .common import ARCHIVE_DIR, ATOM_NS, FEED_FILES, JSON_FEED_VERSION, JSON_FILE, RSS_FILE

log = logging.getLogger(__name__)

_BUILD_HINT = "run `publisher build` to write the feeds"


def check_feeds(output_dir: Path) -> list[str]:
    """One line per problem with the written feeds (empty: all good). Parses every rss.xml,
    atom.xml and feed.json under output_dir and checks its root element and version. Reads
    only."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return [f"{output_dir}: no feeds folder ({_BUILD_HINT})"]
    problems = []
    for name in FEED_FILES:
        if not (output_dir / name).is_file():
            problems.append(f"{output_dir / name}: missing ({_BUILD_HINT})")
    found = sorted(p for p in output_dir.rglob("*") if p.name in FEED_FILES and p.is_file())
    for path in found:
        try:
            data = path.read_bytes()
        except OSError as e:
            problems.append(f"{path}: cannot read: {e.strerror or e}")
            continue
        problem = _check_json(data) if path.name == JSON_FILE else _check_xml(data, path.name)
        if problem:
            problems.append(f"{path}: {problem}")
    return problems


def _check_xml(data: bytes, name: str) -> str:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                             huge_tree=True)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as e:
        return f"not well-formed XML: {e.msg or e}"  # msg: lxml's text without "(<string>...)"
    found = f"<{etree.QName(root).localname}>"
    if root.get("version"):
        found += f" version {root.get('version')!r}"
    if etree.QName(root).namespace:
        found += f" in namespace {etree.QName(root).namespace}"
    if name == RSS_FILE:
        if root.tag != "rss" or root.get("version") != "2.0" or root.find("channel") is None:
            return f'expected RSS 2.0 (<rss version="2.0"> holding a <channel>), found {found}'
    elif root.tag != f"{{{ATOM_NS}}}feed":
        return f"expected Atom 1.0 (<feed> in namespace {ATOM_NS}), found {found}"
    return ""


def _check_json(data: bytes) -> str:
    try:
        doc = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as e:
        return f"not UTF-8 (invalid byte at offset {e.start})"
    except ValueError as e:
        return f"not valid JSON: {e}"
    if not isinstance(doc, dict):
        return f"expected a JSON Feed object, found a JSON {type(doc).__name__}"
    if doc.get("version") != JSON_FEED_VERSION:
        return f"expected JSON Feed version {JSON_FEED_VERSION!r}, found {doc.get('version')!r}"
    if not isinstance(doc.get("items"), list):
        return "expected an 'items' list, found " + (
            "none" if "items" not in doc else f"a JSON {type(doc['items']).__name__}")
    return ""


# --- describing (publisher check) -------------------------------------------------------

SIZE_WARNING_KB = 512  # some readers and proxies give up on larger feeds


def describe_feeds(output_dir: Path) -> list[str]:
    """One line per feed folder, as a reader would see it: items, oldest and newest dates,
    file sizes, hubs, archive pages. Warns (log) about a file above SIZE_WARNING_KB. Reads
    only; a file that cannot be parsed is check_feeds' to report, and is left out here."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return []
    folders: dict[PurePosixPath, list[Path]] = {}
    for path in sorted(output_dir.rglob("*")):
        if path.name in FEED_FILES and path.is_file():
            rel = PurePosixPath(path.relative_to(output_dir).as_posix())
            folders.setdefault(rel.parent, []).append(path)
    lines = []
    for folder, paths in sorted(folders.items()):
        parts = folder.parts
        if len(parts) >= 2 and parts[-2] == ARCHIVE_DIR and parts[-1].isdigit():
            continue  # an archive page: counted with its feed
        lines.append(_describe_folder(output_dir, folder, paths, folders))
    return lines


def _json_feed(path: Path) -> dict:
    try:
        doc = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) and isinstance(doc.get("items"), list) else {}


def _describe_folder(output_dir: Path, folder: PurePosixPath, paths: list[Path],
                     folders: dict[PurePosixPath, list[Path]]) -> str:
    name = "/" if str(folder) == "." else f"{folder}/"
    sizes = []
    for path in paths:
        kb = path.stat().st_size / 1024
        sizes.append(f"{path.name} {kb:.0f} KB")
        if kb > SIZE_WARNING_KB:
            log.warning("%s: %.0f KB, above %d KB, where some feed readers and proxies give "
                        "up (lower feeds.limit, or turn on feeds.archive)", path, kb,
                        SIZE_WARNING_KB)
    doc = _json_feed(output_dir / str(folder) / JSON_FILE)
    facts = []
    if doc:
        items = doc["items"]
        dates = sorted(str(i.get("date_published", ""))[:10] for i in items
                       if isinstance(i, dict) and i.get("date_published"))
        facts.append(f"{len(items)} item{'' if len(items) == 1 else 's'}"
                     + (f", {dates[0]} … {dates[-1]}" if dates else ""))
        hubs = [h.get("url", "") for h in doc.get("hubs", []) if isinstance(h, dict)]
        facts.append("hub " + ", ".join(hubs) if hubs else "no hub")
    pages = sorted(f for f in folders if f.parent == folder / ARCHIVE_DIR and f.name.isdigit())
    if pages:
        archived = sum(len(_json_feed(output_dir / str(p) / JSON_FILE).get("items", []))
                       for p in pages)
        facts.append(f"{len(pages)} archive page{'' if len(pages) == 1 else 's'} "
                     f"({archived} older item{'' if archived == 1 else 's'})")
    return f"feed {name}: " + "; ".join(facts + [", ".join(sizes)])
