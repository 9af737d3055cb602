"""smtp.py's wire helpers and reply reader, against smtplib's own (the session itself is
tested through delivery.py against real servers: tests/test_delivery.py)."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from publisher.newsletter import smtp


_MESSAGE = (b"From: news@blog.test.example\r\nTo: a@example.org\r\nSubject: hi\r\n\r\n"
            b"Hello there.\r\n.\r\n..two\r\n.")


def test_dot_stuffing_matches_smtplib():
    import smtplib

    for data in (b"", b".", b"a", b".a\r\n", b"a\r\n.\r\n..\r\nb", b"x\r\n.y", b"\r\n.\r\n.",
                 _MESSAGE):
        framed = smtplib._quote_periods(data)
        framed += b"" if framed.endswith(b"\r\n") else b"\r\n"
        assert smtp._dot_stuffed(data) == framed + b".\r\n", data


@given(st.lists(st.lists(st.sampled_from([b"", b".", b"..", b"a", b".a", b"a.", b" ."]),
                         max_size=4).map(lambda words: b"".join(words) + b"\r\n"),
                min_size=1, max_size=6))
def test_pieces_that_each_start_a_line_can_be_stuffed_one_by_one(lines):
    """message.py stuffs a compiled message's fixed pieces once and each copy's own pieces
    per copy (CompiledMessage.wire_for): joined, they are the whole copy stuffed."""
    pieces = [b"".join(lines[:2]), *lines[2:]]
    joined = b"".join(smtp.stuffed_lines(piece) for piece in pieces) + smtp.END_OF_DATA
    assert joined == smtp._dot_stuffed(b"".join(pieces))


def test_plain_addresses_are_quoted_as_smtplib_quotes_them():
    import smtplib

    for address in ("a@b.c", "first.last+tag@sub.example.org", "A_B-c@x-y.z", "a..b@c.d",
                    ".a@b.c", "a@b", "a b@c.d", "a(b)@c.d", '"q"@c.d', "", "ü@x.org", "<a@b.c>"):
        assert smtp._quoted(address) == smtplib.quoteaddr(address), address


def test_long_line_check_never_misses_a_long_line():
    import random

    rng = random.Random(11)
    for _ in range(3000):
        lines = [b"x" * rng.choice([0, 1, 997, 998, 999, 1000, 1996, 1997, 3000, rng.randint(0, 3000)])
                 for _ in range(rng.randint(1, 6))]
        data = b"\r\n".join(lines) + rng.choice([b"", b"\r\n"])
        if max(map(len, data.split(b"\r\n"))) > smtp.MAX_LINE:
            assert smtp.may_have_long_line(data), [len(line) for line in lines]
    assert not smtp.may_have_long_line((b"y" * 997 + b"\r\n") * 30)


# --- replies read straight from the socket (Session._reply) -------------------------------

class _ChunkedSocket:
    """A socket whose recv() hands out a byte stream in the given chunks, then b"" (closed)."""

    def __init__(self, chunks):
        self.chunks = list(chunks)

    def recv(self, size):
        if not self.chunks:
            return b""
        chunk = self.chunks.pop(0)
        if isinstance(chunk, BaseException):
            raise chunk
        assert len(chunk) <= size
        return chunk


def _every_reply(read) -> list:
    """read() until it raises: the replies, then ("error", code) or ("closed",)."""
    import smtplib

    out = []
    while True:
        try:
            out.append(read())
        except smtplib.SMTPResponseException as e:
            return out + [("error", e.smtp_code)]
        except smtplib.SMTPServerDisconnected:
            return out + [("closed",)]


def _replies_as_smtplib_reads_them(stream: bytes) -> list:
    import io
    import smtplib

    smtp = smtplib.SMTP()  # not connected: getreply reads the file given
    smtp.file = io.BufferedReader(io.BytesIO(stream))
    return _every_reply(smtp.getreply)


def _replies_as_the_session_reads_them(chunks) -> list:
    session = smtp.Session(None, None)
    session.sock = _ChunkedSocket(chunks)
    return _every_reply(session._reply)


_REPLY_LINES = [b"250 ok\r\n", b"250-first\r\n", b"250-8BITMIME\r\n", b"354 go ahead\r\n",
                b"550 5.1.1 <x@example.org>: no such user\r\n", b"250 \t spaced  \r\n",
                b"25\r\n", b"2x0 broken code\r\n", b"421-a\n", b"221 bye\n", b"250-\r\n",
                b"250 " + b"y" * 300 + b"\r\n", b"\r\n", "250 Grüße\r\n".encode()]


@given(lines=st.lists(st.sampled_from(_REPLY_LINES), max_size=12),
       cuts=st.lists(st.integers(min_value=0, max_value=5000), max_size=8))
@settings(max_examples=300, deadline=None)
def test_replies_read_from_the_socket_are_smtplibs_however_they_arrive(lines, cuts):
    stream = b"".join(lines)
    points = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    chunks = [stream[a:b] for a, b in zip(points, points[1:]) if b > a]
    assert _replies_as_the_session_reads_them(chunks) == _replies_as_smtplib_reads_them(stream)


def test_a_reply_line_too_long_or_a_failing_socket_is_an_oserror_as_in_smtplib():
    import smtplib

    long_line = b"250 " + b"z" * 9000 + b"\r\n"
    assert _replies_as_the_session_reads_them([long_line[:5000], long_line[5000:]]) == \
        _replies_as_smtplib_reads_them(long_line) == [("error", 500)]
    session = smtp.Session(None, None)
    session.sock = _ChunkedSocket([b"250-part", TimeoutError("timed out")])
    with pytest.raises(smtplib.SMTPServerDisconnected, match="timed out") as caught:
        session._reply()
    assert isinstance(caught.value, OSError)  # what transmit retries
