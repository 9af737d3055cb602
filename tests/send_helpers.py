"""SMTP test servers that offer PIPELINING (RFC 2920), for the send tests.

smtp_helpers' aiosmtpd server does not announce PIPELINING, so against it delivery.py
takes its one-command-at-a-time path. These are the same servers (same faults, same spool)
with PIPELINING in the EHLO reply, so the pipelined path is tested against a real server:
aiosmtpd reads the commands one line at a time, whether or not they came in one write.
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
from pathlib import Path

import smtp_helpers
from smtp_helpers import CertFiles, SmtpServer, SpoolServerProcess


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


def _main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="a pipelining SMTP test server that spools")
    parser.add_argument("--spool", required=True, type=Path)
    parser.add_argument("--spec", default="{}", help="JSON: faults, delay, tls, cert, auth")
    args = parser.parse_args(argv)
    spec = json.loads(args.spec)
    cert = CertFiles(*map(Path, spec["cert"])) if spec.get("cert") else None
    server = PipeliningServer(tls=spec.get("tls"), cert=cert, auth=spec.get("auth"),
                              delay=spec.get("delay", 0.0), spool=args.spool,
                              faults=spec.get("faults", []))
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    with server:
        port_file = args.spool / ".port"
        tmp = port_file.with_suffix(".tmp")
        tmp.write_text(str(server.port))
        tmp.replace(port_file)  # readers never see a half-written port
        done.wait()


if __name__ == "__main__":
    _main()
