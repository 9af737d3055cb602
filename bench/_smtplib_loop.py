"""The send benchmark's baseline: a bare smtplib loop sending ready-made messages over one
connection. Usage: _smtplib_loop.py PORT MESSAGES_FILE (as written by send_vs_smtplib.py:
records of "<recipient>\\n<length>\\n<bytes>")."""

from __future__ import annotations

import smtplib
import sys


def read_messages(path: str) -> list[tuple[str, bytes]]:
    messages = []
    with open(path, "rb") as f:
        while True:
            rcpt = f.readline()
            if not rcpt:
                return messages
            length = int(f.readline())
            messages.append((rcpt.strip().decode(), f.read(length)))


def main() -> None:
    port, path = int(sys.argv[1]), sys.argv[2]
    messages = read_messages(path)
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as smtp:
        for rcpt, data in messages:
            smtp.sendmail("news@bench.example.org", [rcpt], data)


if __name__ == "__main__":
    main()
