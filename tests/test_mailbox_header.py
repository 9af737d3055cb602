"""newsletter/mailbox_header.py: the To line of each message, written without the email
package's header parser, must be byte for byte what the email package (policy SMTP) writes,
for every display name the fast path accepts; the names it declines go to the email package.

The reference is the exact expression message.py used before the fast path existed:
SMTP.fold("To", SMTP.header_factory("To", Address(...))) on the sanitised, truncated name."""

from __future__ import annotations

from email.headerregistry import Address
from email.policy import SMTP

import random

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from test_security import INJECTIONS

from publisher.newsletter import message as message_module
from publisher.newsletter.digest import NAME_MAX
from publisher.newsletter.mailbox_header import sanitize_header
from publisher.newsletter.mailbox_header import truncate as _truncate
from publisher.newsletter.message import _to_header
from publisher.newsletter.mailbox_header import MAX_LINE, encoded_word, fold_mailbox

LOCAL, DOMAIN = "reader000007", "example.org"


def email_package(display: str, local: str = LOCAL, domain: str = DOMAIN) -> str:
    return SMTP.fold("To", SMTP.header_factory(
        "To", Address(display_name=display, username=local, domain=domain)))


def clean(name: str) -> str:
    """What message.py hands to fold_mailbox."""
    return _truncate(sanitize_header(name), NAME_MAX)


def check(name: str, local: str = LOCAL, domain: str = DOMAIN) -> str | None:
    """fold_mailbox's answer for `name` (None: declined), after checking it equals the email
    package's byte for byte, and that digest._to_header equals it whichever path answers."""
    display = clean(name)
    fast = fold_mailbox("To", display, f"{local}@{domain}")
    expected = email_package(display, local, domain)
    if fast is not None:
        assert fast == expected, (name, fast, expected)
    assert _to_header(name, local, domain) == expected
    return fast


# Names the fast path must answer itself (a realistic list is mostly these).
FAST = [
    "Reader 7 Ünïcode",
    "Ünïcode",
    "Zoë Ünïcødé",
    "José García",
    "李小龙",
    "Reader 7",
    "Ann",
    "",
    "   ",
    "O'Brien-Smith",
    "Tom & Jerry",  # & is atext: no quoting
    "🎉 Party 🎉",  # emoji, non-ASCII words around an ASCII one: one encoded word
    "😀 emoji",
    "e\u0301 combining",  # a combining acute accent
    "a\u0301\u0302\u0303 x \u0308",
    "Ü x Ö y Ä",  # the email package merges from the first non-ASCII word to the last
    "x Ü",
    "Ü Ö",
    "a_b? c=d",  # '_', '?', '=' must be Q-encoded inside an encoded word
    "Ünï_cø?de=",
    "\u202eevil\u202c עברית",  # bidi controls are not C0/C1: encoded, not removed
    "=?utf-8?q?x?=",  # an encoded-word look-alike: sanitize_header breaks it first
    "=?utf-8?b?SGVsbG8NCkJj?=",
    "Dr. Who",  # ASCII specials: quoted
    "Dr. Who, Jr.",
    'He said "hi" \\ bye',  # quotes and backslashes escaped in the quoted string
    '"',
    "\\",
    "(comment) <angle> [box] ;:@,.",
    "x" * 45,  # long, but fits on the first line with the address
    "Ñ" * 10,
    "Reader 12 Ünïcode Ünïcode",  # too long after "To: ": moved whole to the next line
    "x" * 50,
    "Hi =?utf-8?q?x?= there",
    "=?utf-8?b?SGVsbG8N?=",
]

# Names the fast path leaves to the email package: folded over several lines, or quoted and
# not ASCII. digest._to_header must still give the email package's bytes for them.
SLOW = [
    "Bartholomew " * 12,
    "Ñ" * 150,  # truncated to 100 characters, then split over several encoded words
    "x" * 120,  # one word longer than a line
    "Müller, Hans",  # a special in a non-ASCII name
    "Jöhn \"Q\" Dœ, Jr.",
    "Reader 7 Ünïcode " * 6,
    "x" * 70 + " Ü",
    "=?utf-8?b?SGVsbG8NCkJjYzogZXZpbEBhdHRhY2tlci5leGFtcGxl?=",  # one long word
    "x" * 53,  # ASCII, too long for a line even on its own
    "x" * 60,
    "Reader 12345 Ünïcode Ünïcode",  # the address goes to a continuation line
    "Hi =?utf-8?q?=0ABcc_evil?= there",
    "=?utf-8?b?SGVsbG8NCkJjYzogZXZpbEBh?=",
    "Hi =?utf-8?q?=0ABcc:_evil@attacker.example?= there",  # ':' '@' and non-ASCII: quoted
]


@pytest.mark.parametrize("name", FAST)
def test_fast_path_answers_and_equals_the_email_package(name):
    assert check(name) is not None, f"{name!r} should take the fast path"


@pytest.mark.parametrize("name", SLOW)
def test_names_the_fast_path_declines_still_get_the_email_packages_bytes(name):
    assert check(name) is None


@pytest.mark.parametrize("name", INJECTIONS + [
    "Line\r\nBcc: victim@example.org", "\r\n", "a\rb\nc", "Ü\r\nBcc: x@y", "Ünï\x00cøde",
    "tab\there", "nbsp\u00a0here", "wide\u3000space", "zero\u200bwidth",
    "=?utf-8?q?=0D=0ABcc:_x@y?=", "==??==", "=\u200b?", "?= =?", "Ü =?x?= Ö",
])
def test_header_injection_names_give_one_clean_line(name):
    check(name)
    line = _to_header(name, LOCAL, DOMAIN)
    assert line.endswith("\r\n")
    body = line[:-2]
    for piece in body.split("\r\n"):
        assert len(piece.encode("utf-8")) <= 998
    # Any further line is a folded continuation (one space, as the email package folds),
    # never a header of its own.
    assert all(piece[:1] == " " for piece in body.split("\r\n")[1:])
    assert "\n" not in body.replace("\r\n", "") and "\r" not in body.replace("\r\n", "")
    assert line.isascii()


def test_the_fast_path_writes_one_line_or_moves_the_mailbox_to_the_next():
    for name in FAST:
        line = fold_mailbox("To", clean(name), f"{LOCAL}@{DOMAIN}")
        assert line is not None and line.endswith("\r\n")
        first, *rest = line[:-2].split("\r\n")
        if rest:  # "To:" then the whole mailbox, as the email package moves it
            assert first == "To:" and len(rest) == 1 and rest[0].startswith(" ")
        assert all(len(piece) <= MAX_LINE + 1 for piece in [first, *rest])


def test_encoded_word_prefers_q_unless_b_is_five_shorter():
    assert encoded_word("Ü") == "=?utf-8?q?=C3=9C?="  # q 6, b 4: q
    assert encoded_word("Ünïcode") == "=?utf-8?b?w5xuw69jb2Rl?="  # q 17, b 12: b
    assert encoded_word("a b_c") == "=?utf-8?q?a_b=5Fc?="


def test_no_name_and_long_addresses():
    assert check("", "x", "example.org") == "To: x@example.org\r\n"
    check("", "a" * 70, "example.org")  # too long for one line: the email package folds it
    check("Ünïcode", "a" * 40, "example.org")
    check("Ünïcode", "a" * 70, "example.org")


def test_realistic_list_never_reaches_the_email_package(monkeypatch):
    """5,000 "Reader N Ünïcode" subscribers cost no header parsing at all."""
    def refuse(*args, **kwargs):
        raise AssertionError("the email package was asked for a To header")

    monkeypatch.setattr(message_module, "Address", refuse)
    for i in (0, 7, 4999, 123456789):
        assert _to_header(f"Reader {i} Ünïcode", f"reader{i:06d}", "example.org").startswith(
            f"To: Reader {i} =?utf-8?b?w5xuw69jb2Rl?= <reader{i:06d}@example.org>")


# Letters, digits, spaces, specials, Unicode of several widths, combining marks, emoji,
# encoded-word pieces and controls: everything a name may hold, weighted toward the
# characters that change how the email package writes it.
_ALPHABET = st.sampled_from(
    list("aZ09 _-?=!*+/'&~") + list('()<>@,:;."[]\\') + ["Ü", "ï", "é", "ß", "中", "😀",
    "\u0301", "\u200b", "\u202e", "\u00a0", "\t", "\r", "\n", "\x00", "\x85", "=?", "?=",
    "=?utf-8?q?", "=0D=0A"])
NAMES = st.one_of(
    st.lists(_ALPHABET, max_size=90).map("".join),
    st.text(max_size=120),
    st.lists(st.sampled_from(["Reader", "Ünïcode", "José", "7", "李", "😀", "x" * 30, "Ñ" * 9]),
             max_size=8).map(" ".join),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=NAMES, local=st.sampled_from(["r", LOCAL, "a.b+tag", "x" * 40]))
@example(name="Reader 7 Ünïcode", local=LOCAL)
def test_property_fast_path_equals_the_email_package(name, local):
    check(name, local, DOMAIN)


def test_sweep_of_generated_names_mostly_takes_the_fast_path_and_always_agrees():
    """A seeded sweep of 1,000 names made of words that need no quoting, some near the line
    length: the fast path must answer more than half of them itself (else the property test above
    proves little) and agree with the email package on every one."""
    rng = random.Random(19)
    pieces = list("aZ09-_?=!~") + ["Ü", "ï", "é", "ß", "中", "😀", "\u0301", "\u200b", " ", " "]
    answered = 0
    for n in range(1000):
        name = "".join(rng.choice(pieces) for _ in range(rng.choice([3, 8, 15, 22, 30, 45])))
        answered += check(name, f"r{n}") is not None
    assert answered > 500, answered
