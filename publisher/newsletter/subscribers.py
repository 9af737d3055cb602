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
from typing import Callable

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


# The exports of the tools people leave, by their header names (folded: lower case, letters and
# digits only, so "Email Address", "email_address" and "E-mail" meet): Mailchimp ("Email Address",
# "First Name", "Last Name"), Substack ("email"), Buttondown ("email" or "email_address"), Kit
# ("email_address", "first_name"), Ghost ("email", "name"), listmonk ("email", "name").
_EMAIL_HEADERS = ("email", "emailaddress", "subscriberemail")
_NAME_HEADERS = ("name", "fullname", "displayname", "subscribername")
_FIRST_HEADERS = ("firstname", "fname", "givenname", "first")
_LAST_HEADERS = ("lastname", "lname", "surname", "familyname", "last")
# A row an export marks as not receiving mail is never imported as a subscriber: people who
# unsubscribed or bounced elsewhere must not be mailed here. Column (folded) → the values that
# mean "mail this person"; anything else rejects the row with its line and the value.
_CLEARED = {  # any non-empty value means "no longer subscribed"
    "unsubtime": "unsubscribed in the export (UNSUB_TIME)",  # Mailchimp's unsubscribed file
    "cleantime": "cleaned (bounced) in the export (CLEAN_TIME)",  # Mailchimp's cleaned file
    "deletedat": "deleted in the export (deleted_at)",  # Ghost
}
_FLAGS_OFF = {  # a true value means "not mailed"
    "emaildisabled": "email disabled in the export (email_disabled)",  # Substack
}
_FLAGS_ON = {  # a false value means "not mailed"
    "subscribedtoemails": "not subscribed to emails in the export (subscribed_to_emails)",  # Ghost
    "subscribed": "not subscribed in the export (subscribed)",
}
_STATUS_COLUMNS = ("status", "state", "subscribertype", "subscriptionstatus")
_MAILED_STATUSES = frozenset({
    "active", "enabled", "subscribed", "confirmed", "regular", "premium", "free", "paid", "comped",
    "complimentary", "gifted", "trialed", "churning", "opted in", "optin",
})
_TRUE = frozenset({"true", "yes", "1", "t", "y"})
_FALSE = frozenset({"false", "no", "0", "f", "n"})


def _fold(header: str) -> str:
    return "".join(c for c in header.lower() if c.isalnum())


def decode_export(raw: bytes, path: Path) -> str:
    """The text of an export: UTF-8 with or without BOM, UTF-16 (Excel's "Unicode text"), or,
    when it is not UTF-8, cp1252 (Excel's "CSV" on Windows)."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return raw.decode("utf-16")
        except UnicodeDecodeError as e:
            raise ContentError(f"{path}: not UTF-16 despite its byte order mark (invalid data at offset {e.start})") from e
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as utf8_error:
        try:
            text = raw.decode("cp1252")
        except UnicodeDecodeError:
            raise ContentError(f"{path}: neither UTF-8, UTF-16 nor cp1252 "
                               f"(invalid UTF-8 byte at offset {utf8_error.start})") from utf8_error
        log.info("%s: not UTF-8, read as cp1252 (Windows)", path)
        return text


@dataclass
class _Columns:
    email: int
    name: int | None = None
    first: int | None = None
    last: int | None = None
    topics: int | None = None
    checks: list[tuple[int, str, str]] = field(default_factory=list)  # (column, kind, folded header)

    def name_of(self, record: list[str]) -> str:
        def cell(i: int | None) -> str:
            return record[i] if i is not None and i < len(record) else ""
        if self.name is not None and cell(self.name).strip():
            return clean_name(cell(self.name))
        return clean_name(" ".join(part for part in (cell(self.first).strip(), cell(self.last).strip()) if part))

    def refusal(self, record: list[str]) -> str | None:
        """Why the export says this row is not to be mailed, or None."""
        for i, kind, folded in self.checks:
            value = record[i].strip() if i < len(record) else ""
            low = value.lower()
            if kind == "cleared" and value:
                return _CLEARED[folded]
            if kind == "off" and low in _TRUE:
                return _FLAGS_OFF[folded]
            if kind == "on" and low in _FALSE:
                return _FLAGS_ON[folded]
            if kind == "status" and value and low not in _MAILED_STATUSES:
                return f"{_folded_label(folded)} {value[:40]!r} in the export (not an active subscriber)"
        return None


def _folded_label(folded: str) -> str:
    return {"subscribertype": "subscriber_type", "subscriptionstatus": "subscription status"}.get(folded, folded)


def _columns(path: Path, header: list[str], email_column: str | None, name_column: str | None) -> _Columns:
    folded = [_fold(h) for h in header]
    found = ", ".join(h.strip() for h in header) or "nothing"

    def named(column: str, option: str) -> int:
        if _fold(column) not in folded:
            raise ContentError(f"{path}: line 1: {option} {column!r}: no such column (found: {found})")
        return folded.index(_fold(column))

    def first_of(names: tuple[str, ...]) -> int | None:
        return next((folded.index(n) for n in names if n in folded), None)

    if email_column is not None:
        email = named(email_column, "--email-column")
    else:
        email = first_of(_EMAIL_HEADERS)
        if email is None:
            raise ContentError(f"{path}: line 1: header has no 'email' column (found: {found}); "
                               f"name it with --email-column")
    columns = _Columns(email=email, topics=first_of(("topics",)))
    if name_column is not None:
        columns.name = named(name_column, "--name-column")
    else:
        columns.name = first_of(_NAME_HEADERS)
        columns.first, columns.last = first_of(_FIRST_HEADERS), first_of(_LAST_HEADERS)
    for i, f in enumerate(folded):
        if f in _CLEARED:
            columns.checks.append((i, "cleared", f))
        elif f in _FLAGS_OFF:
            columns.checks.append((i, "off", f))
        elif f in _FLAGS_ON:
            columns.checks.append((i, "on", f))
    status = first_of(_STATUS_COLUMNS)
    if status is not None:
        columns.checks.append((status, "status", folded[status]))
    return columns


def read_csv_rows(path: Path, available=None, *, email_column: str | None = None,
                  name_column: str | None = None) -> tuple[list[tuple[int, str, str, tuple[str, ...]]], list[str]]:
    """(line, email, name, topic slugs) rows and the rejected-row lines of a CSV with a header
    row: our own format or another tool's export (see _EMAIL_HEADERS). An optional `topics`
    column holds topic names separated by ';' (empty: everything), checked against `available`
    (newsletter/topics.py's offered topics). A row the export marks as unsubscribed, cleaned,
    deleted or otherwise not mailed is rejected, never added."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ContentError(f"{path}: cannot read: {e.strerror}") from e
    text = decode_export(raw, path)
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
    columns = _columns(path, header, email_column, name_column)

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
        if columns.email >= len(record) or not record[columns.email].strip():
            rejected.append(f"line {start}: no value in the '{header[columns.email].strip()}' column")
            continue
        try:
            address = normalize_address(record[columns.email])
        except InvalidAddress as e:
            rejected.append(f"line {start}: {record[columns.email].strip()[:80]!r}: {e}")
            continue
        refusal = columns.refusal(record)
        if refusal:
            rejected.append(f"line {start}: {address}: {refusal}")
            continue
        chosen: tuple[str, ...] = ()
        if columns.topics is not None and columns.topics < len(record) and record[columns.topics].strip():
            # lazy: topics.py brings the content package (~40 ms); only a CSV with a topics column needs it
            from .topics import parse_choice

            try:
                chosen = parse_choice(record[columns.topics].split(";"), available or [],
                                      f"line {start}: {address}")
            except ConfigError as e:
                rejected.append(str(e))
                continue
        key = address.lower()
        if key in seen:
            rejected.append(f"line {start}: {address}: duplicate of line {seen[key]}")
            continue
        seen[key] = start
        rows.append((start, address, columns.name_of(record), chosen))
    return rows, rejected


def import_csv(path: Path, state: State, available=None, *, email_column: str | None = None,
               name_column: str | None = None,
               progress: Callable[[int, int], None] | None = None) -> ImportReport:
    """Add every valid, new address of a CSV file; safe to re-run. `available`: the topics
    on offer (newsletter/topics.offered), for a `topics` column; `email_column`/`name_column`
    name the columns when the header's names are not ones we know; `progress(done, total)`
    is called as the rows are stored."""
    rows, rejected = read_csv_rows(path, available, email_column=email_column, name_column=name_column)
    report = ImportReport(rejected=rejected)
    report.added, report.already = state.add_subscribers(
        ((email, name, chosen) for _line, email, name, chosen in rows), progress=progress)
    # Never silently: an address a bounce or complaint suppressed stays suppressed, and says so.
    report.suppressed = state.suppressed_emails(report.already)
    return report
