"""The subscriber list as people manage it: validated addresses, CSV import.

Storage is publisher.state's; this module decides what a valid address and a valid CSV row are,
so `publisher subscribers` and the web endpoint agree.
"""

from __future__ import annotations

import csv
import io
import logging
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError, ContentError
from ..state import State

log = logging.getLogger(__name__)

# Practical, not RFC 5322-complete: what mail providers accept and what is safe to put in a
# header. No quoted local parts, no comments, no IP literals.
_LOCAL = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


class InvalidAddress(ValueError):
    """Why an address is not acceptable, phrased for the user."""


def normalize_address(text: str) -> str:
    """Return the address with its domain lowercased, or raise InvalidAddress saying why."""
    if not isinstance(text, str):
        raise InvalidAddress("not text")
    address = text.strip()
    if not address:
        raise InvalidAddress("empty address")
    if any(unicodedata.category(c)[0] == "C" or c.isspace() for c in address):
        raise InvalidAddress("contains spaces or control characters")
    if len(address) > 254:
        raise InvalidAddress("longer than 254 characters")
    if "=?" in address:
        raise InvalidAddress("contains '=?' (MIME encoded-word syntax, refused in headers)")
    if address.count("@") != 1:
        raise InvalidAddress("expected exactly one '@'")
    local, domain = address.split("@")
    if not local or len(local) > 64 or not _LOCAL.match(local):
        raise InvalidAddress(f"invalid part before '@': {local!r}")
    try:
        ascii_domain = domain.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise InvalidAddress(f"invalid domain: {domain!r}") from None
    labels = ascii_domain.split(".")
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels) or labels[-1].isdigit():
        raise InvalidAddress(f"invalid domain: {domain!r}")
    return f"{local}@{domain.lower()}"


def clean_name(text: str | None) -> str:
    """A display name safe for headers and pages: one line, no control characters."""
    if not text:
        return ""
    kept = "".join(" " if c in "\r\n\t" else c for c in str(text) if unicodedata.category(c) != "Cc" or c in "\r\n\t")
    return re.sub(r"\s+", " ", kept).strip()[:200]


@dataclass
class ImportReport:
    added: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)  # on the list before, in any status
    rejected: list[str] = field(default_factory=list)  # "line N: reason"
    suppressed: list[str] = field(default_factory=list)  # of `already`: bounced or complained


def read_csv_rows(path: Path, available=None) -> tuple[list[tuple[int, str, str, tuple[str, ...]]], list[str]]:
    """(line, email, name, topic slugs) rows and the rejected-row lines of a CSV with a header
    row. An optional `topics` column holds topic names separated by ';' (empty: everything),
    checked against `available` (newsletter/topics.py's offered topics)."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ContentError(f"{path}: cannot read: {e.strerror}") from e
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ContentError(f"{path}: not UTF-8 (invalid byte at offset {e.start})") from e
    # The header row says the delimiter when it holds exactly one candidate: a topics column's
    # ';' separators must not make the sniffer take ';' for the delimiter of a ',' file.
    in_header = [d for d in ",;\t" if d in text.split("\n", 1)[0]]
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=in_header[0] if len(in_header) == 1 else ",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text, newline=""), dialect)
    try:
        header = next(reader)
    except StopIteration:
        raise ContentError(f"{path}: empty file (expected a header row with 'email')") from None
    except csv.Error as e:
        raise ContentError(f"{path}: line 1: {e}") from e
    names = [h.strip().lower() for h in header]
    if "email" not in names:
        raise ContentError(f"{path}: line 1: header has no 'email' column (found: {', '.join(header) or 'nothing'})")
    email_col = names.index("email")
    name_col = names.index("name") if "name" in names else None
    topics_col = names.index("topics") if "topics" in names else None

    rows: list[tuple[int, str, str]] = []
    rejected: list[str] = []
    seen: dict[str, int] = {}
    while True:
        start = reader.line_num + 1
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            rejected.append(f"line {start}: unreadable CSV: {e}")
            continue
        if not any(cell.strip() for cell in record):
            continue  # blank lines are not rows
        if email_col >= len(record):
            rejected.append(f"line {start}: no value in the 'email' column")
            continue
        try:
            address = normalize_address(record[email_col])
        except InvalidAddress as e:
            rejected.append(f"line {start}: {record[email_col].strip()[:80]!r}: {e}")
            continue
        chosen: tuple[str, ...] = ()
        if topics_col is not None and topics_col < len(record) and record[topics_col].strip():
            # lazy: topics.py brings the content package (~40 ms); only a CSV with a topics column needs it
            from .topics import parse_choice

            try:
                chosen = parse_choice(record[topics_col].split(";"), available or [],
                                      f"line {start}: {address}")
            except ConfigError as e:
                rejected.append(str(e))
                continue
        key = address.lower()
        if key in seen:
            rejected.append(f"line {start}: {address}: duplicate of line {seen[key]}")
            continue
        seen[key] = start
        name = clean_name(record[name_col]) if name_col is not None and name_col < len(record) else ""
        rows.append((start, address, name, chosen))
    return rows, rejected


def import_csv(path: Path, state: State, available=None) -> ImportReport:
    """Add every valid, new address of a CSV file; safe to re-run. `available`: the topics
    on offer (newsletter/topics.offered), for a `topics` column."""
    rows, rejected = read_csv_rows(path, available)
    report = ImportReport(rejected=rejected)
    report.added, report.already = state.add_subscribers(
        (email, name, chosen) for _line, email, name, chosen in rows)
    # Never silently: an address a bounce or complaint suppressed stays suppressed, and says so.
    report.suppressed = state.suppressed_emails(report.already)
    return report
