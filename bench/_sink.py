"""A minimal SMTP sink for the send benchmarks: 127.0.0.1 only, 250 to every command, DATA
read and discarded. Prints "PORT <n>" once listening; stops on SIGTERM. It announces
PIPELINING (RFC 2920), as Postfix, Exim and the big providers do, unless started with
--no-pipelining.

It is deliberately cheaper per message than any real server, so that the benchmark measures
the client (publisher, or the bare smtplib baseline) rather than the server. Both sides of a
comparison talk to the same sink. "XCOUNT" answers "250 <messages accepted so far>".
"""

from __future__ import annotations

import asyncio
import signal
import sys

END = b"\r\n.\r\n"
EXTENSIONS = [b"8BITMIME", b"SMTPUTF8"] + ([] if "--no-pipelining" in sys.argv else [b"PIPELINING"])
EHLO_REPLY = b"".join(b"250-" + e + b"\r\n" for e in [b"sink"] + EXTENSIONS[:-1]) + \
    b"250 " + EXTENSIONS[-1] + b"\r\n"


class SmtpSink(asyncio.Protocol):
    accepted = 0

    def connection_made(self, transport):
        self.transport = transport
        self.buffer = b""
        self.in_data = False
        transport.write(b"220 sink ESMTP\r\n")

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while self.buffer:
            if self.in_data:
                end = self.buffer.find(END)
                if end < 0:
                    # Keep only what could be the start of the terminator.
                    self.buffer = self.buffer[-4:]
                    return
                self.buffer = self.buffer[end + len(END):]
                self.in_data = False
                SmtpSink.accepted += 1
                self.transport.write(b"250 2.0.0 queued\r\n")
                continue
            line, sep, rest = self.buffer.partition(b"\r\n")
            if not sep:
                return
            self.buffer = rest
            self.command(line)

    def command(self, line: bytes) -> None:
        verb = line[:4].upper()
        if verb in (b"EHLO", b"HELO"):
            self.transport.write(EHLO_REPLY)
        elif verb == b"DATA":
            self.in_data = True
            # The terminator may follow at once: "\r\n.\r\n" needs the CRLF that ended DATA.
            self.buffer = b"\r\n" + self.buffer
            self.transport.write(b"354 go ahead\r\n")
        elif verb == b"QUIT":
            self.transport.write(b"221 bye\r\n")
            self.transport.close()
        elif verb == b"XCOU":
            self.transport.write(f"250 {SmtpSink.accepted}\r\n".encode())
        else:
            self.transport.write(b"250 ok\r\n")


async def main() -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(SmtpSink, "127.0.0.1", 0)
    stop = loop.create_future()
    loop.add_signal_handler(signal.SIGTERM, stop.set_result, None)
    loop.add_signal_handler(signal.SIGINT, stop.set_result, None)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await stop


if __name__ == "__main__":
    asyncio.run(main())
    sys.exit(0)
