"""SMTP test servers that offer PIPELINING (RFC 2920), for the send tests.

smtp_helpers' aiosmtpd server does not announce PIPELINING, so against it delivery.py
takes its one-command-at-a-time path. These are the same servers (same faults, same spool)
with PIPELINING in the EHLO reply, so the pipelined path is tested against a real server:
aiosmtpd reads the commands one line at a time, whether or not they came in one write.
"""

from __future__ import annotations

from pathlib import Path

import smtp_helpers
from smtp_helpers import SmtpServer, SpoolServerProcess


class _PipeliningHandler(smtp_helpers._Handler):
    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        return responses[:-1] + ["250-PIPELINING", responses[-1]]


class PipeliningServer(SmtpServer):
    """smtp_helpers.SmtpServer, announcing PIPELINING."""

    def start(self) -> PipeliningServer:
        super().start()
        # Each connection gets the controller's handler when it is accepted.
        self._controller.handler = _PipeliningHandler(self)
        return self


class PipeliningSpoolServer(SpoolServerProcess):
    """smtp_helpers.SpoolServerProcess (in a child process, spooling), announcing PIPELINING."""

    def __init__(self, spool: Path, **kwargs):
        super().__init__(spool, **kwargs)
        self._args[1] = str(Path(__file__).resolve())


if __name__ == "__main__":
    smtp_helpers._main(server_class=PipeliningServer)
