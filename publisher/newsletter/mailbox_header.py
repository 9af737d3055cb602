"""A To/From header line for one mailbox, byte for byte as Python's email package (policy
SMTP) writes it, without its header parser: the common shapes of display name in a few
microseconds instead of about a millisecond.

`fold_mailbox` handles a display name that, with the address, fits on one line: after
"To: ", or else alone on the next one, where the email package moves it:
- an ASCII name: written as it is, or quoted when it holds a special character;
- a name of words separated by single spaces, some of them not ASCII, none holding a special:
  the non-ASCII words become one RFC 2047 encoded word, exactly as the email package's folder
  (`_refold_parse_tree`, `_fold_as_ew`) makes it, including its habit of merging everything
  from the first non-ASCII word to the last into one encoded word.
Anything else (a name to fold over several lines, a quoted non-ASCII name, text that is not
UTF-8) returns None and the caller uses the email package. tests/test_mailbox_header.py
checks the result against the email package on generated and hand-picked nasty names.

The caller sanitises the name first (no CR/LF or control characters, whitespace collapsed to
single spaces, no "=?"): this module assumes it and returns None where it finds otherwise.

`sanitize_header` makes any text one safe header line, because Python 3.11's email package
turns CR/LF (and RFC 2047 encoded words that decode to CR/LF) into extra headers when it
serialises a message (CVE-2024-6923). It lives in this leaf module because both the digest
(its subject, the names in its body) and the message (every header) use it.
"""

from __future__ import annotations

import base64
import re

# --- header hygiene: every header value passes here first --------------------------------

# C0/C1 controls, DEL, and the Unicode line and paragraph separators: anything a mail
# parser or client could take as a line break.
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
SPACES = re.compile(r"\s+")
# Zero-width space: breaks "=?" so no decoder sees the start of an RFC 2047 encoded word,
# while the subject still reads the same.
_EW_BREAK = "=\u200b?"


def sanitize_header(value: str) -> str:
    """One safe line for a header: no CR, LF or control characters, whitespace collapsed, and
    no RFC 2047 encoded-word syntax, so a crafted title cannot add headers (CVE-2024-6923)."""
    text = CONTROL.sub(" ", str(value))
    text = SPACES.sub(" ", text).strip()
    # Repeat until stable: removing a control char may have joined "=" and "?".
    while "=?" in text:
        text = text.replace("=?", _EW_BREAK)
    return text


def truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    if " " in cut[limit // 2:]:
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip() + "…"




# What the email package sees (email._header_value_parser): specials force a quoted string.
_SPECIALS = frozenset('()<>@,:;."[]\\')
MAX_LINE = 78  # email.policy.SMTP.max_line_length
_CHARSET = "utf-8"
_CHROME = len(_CHARSET) + 7  # "=?utf-8?q?" + "?="
# Only these survive Q encoding as themselves (email._encoded_words._QByteMap); space is "_".
_Q_SAFE = frozenset(b"-!*+/ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_Q_MAP = {b: chr(b) if b in _Q_SAFE else f"={b:02X}" for b in range(256)}
_Q_MAP[ord(" ")] = "_"
_Q_LEN = [len(_Q_MAP[b]) for b in range(256)]
# Characters that are not plain printable ASCII, nor a space, in a name the caller cleaned.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f\t]|=\?")


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def encoded_word(text: str) -> str:
    """`text` as one RFC 2047 encoded word in UTF-8: Q unless it is at least 5 characters
    longer than B (email._encoded_words.encode's choice)."""
    data = text.encode(_CHARSET)
    q_len = sum(_Q_LEN[b] for b in data)
    b_len = (len(data) + 2) // 3 * 4
    if q_len - b_len < 5:
        return f"=?{_CHARSET}?q?{''.join(_Q_MAP[b] for b in data)}?="
    return f"=?{_CHARSET}?b?{base64.b64encode(data).decode('ascii')}?="


def fold_mailbox(name: str, display: str, address: str) -> str | None:
    """`name: display <address>` with CRLF, as email.policy.SMTP folds it, or None when it
    takes more than the fast path knows (then ask the email package).

    `display` is the cleaned display name ("" for none), `address` the ASCII addr-spec."""
    label = f"{name}: "
    if not display:
        return _place(label, address, ascii_only=True)
    if _UNSAFE.search(display) or display != display.strip(" ") or "  " in display:
        return None
    if display.isascii():
        if not _SPECIALS.isdisjoint(display):
            display = _quote(display)
        return _place(label, f"{display} <{address}>", ascii_only=True)
    if not _SPECIALS.isdisjoint(display):
        return None  # a quoted non-ASCII name: the email package's own path
    try:
        display.encode(_CHARSET)
    except UnicodeEncodeError:
        return None  # lone surrogates: let the email package say what it says
    mailbox = _fold_phrase(display.split(" "), f"<{address}>")
    return None if mailbox is None else _place(label, mailbox, ascii_only=False)


def _place(label: str, mailbox: str, *, ascii_only: bool) -> str | None:
    """`mailbox` after "Name: ", or alone on the next line when it does not fit there (the
    folder moves the whole address list, a "syntactic break", rather than split it)."""
    if len(mailbox) <= MAX_LINE - len(label):
        return f"{label}{mailbox}\r\n"
    # An ASCII address list is moved only if it then fits; one with an encoded word was
    # folded on its own first (from column 0: `_fold_phrase` checked it fits in a line).
    if ascii_only and len(mailbox) + 1 > MAX_LINE:
        return None
    return f"{label.rstrip(' ')}\r\n {mailbox}\r\n"


def _fold_phrase(words: list[str], angle_addr: str) -> str | None:
    """The email package's folding of `words <addr>` from column 0, when it stays on one line:
    each word with its trailing space in turn; a non-ASCII word becomes an encoded word,
    merged with the previous encoded word and all the text after it when there is one."""
    line = ""
    last_ew: int | None = None  # where the current encoded word starts in `line`
    ew_text = ""  # what that encoded word, and the plain text after it, say
    for word in words:
        if word.isascii():
            if len(word) + 1 > MAX_LINE - len(line):
                return None
            line += word + " "
            if last_ew is not None:
                ew_text += word + " "
            continue
        if last_ew is None:
            last_ew, ew_text = len(line), ""
        else:
            line = line[:last_ew]
        ew_text += word
        remaining = MAX_LINE - len(line)
        if len(ew_text) > remaining - _CHROME:
            return None  # split over several encoded words
        ew = encoded_word(ew_text)
        if len(ew) > remaining:
            return None
        line += ew
        if 1 > MAX_LINE - len(line):
            return None
        line += " "
        ew_text += " "
    if len(angle_addr) > MAX_LINE - len(line):
        return None
    return line + angle_addr
