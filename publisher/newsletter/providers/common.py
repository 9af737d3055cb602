"""What the webhook providers share: the refusal, freshness of a signed timestamp, basic
auth, and reading a JSON body."""

from __future__ import annotations

import base64
import hmac
import json
import os
import re
from datetime import datetime, timedelta, timezone
from typing import Any

from ...config import WEBHOOK_PASSWORD_ENV, Config

WEBHOOK_MAX_AGE = timedelta(minutes=10)  # older signed requests are refused (replays)
WEBHOOK_MAX_BYTES = 1024 * 1024  # SendGrid batches events; a batch stays well under this
# A request's events are recorded in one transaction; a provider's batch is far smaller
# (SendGrid posts at 768 KB, a few thousand events), and a bigger one is refused whole (413)
# rather than cut, so the provider retries it rather than losing the rest.
WEBHOOK_MAX_EVENTS = 5000
NONCE_KEEP = timedelta(hours=2)  # one-time tokens and SNS MessageIds are remembered this long:
# longer than any provider's window (SNS: 1 hour), one rule for all, as they share a table
JSON_MAX_DEPTH = 32  # the providers' payloads nest 5 deep; json.loads recurses per level


class Refused(Exception):
    """A request to refuse: (HTTP status, one line saying why)."""

    def __init__(self, status: int, why: str):
        super().__init__(why)
        self.status = status


class Answer(dict):
    """What a signature check answers itself (an SNS subscription confirmation): the
    request is accepted and records no event."""


def dict_of(value: Any) -> dict:
    """A JSON object, or {} for anything else: a payload of the wrong shape records nothing."""
    return value if isinstance(value, dict) else {}


def dicts_of(value: Any) -> list[dict]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_JSON_BRACKET = re.compile(r"[\[\]{}]")


def loads(text: str | bytes, what: str = "the body") -> Any:
    """JSON from a request, refused (400, saying why) when it is not UTF-8 JSON or nests
    deeper than JSON_MAX_DEPTH: the depth is counted before parsing, as json.loads would
    recurse (and fail with a RecursionError) on "[[[[...". Linear in the size."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise Refused(400, f"{what} is not UTF-8 JSON") from None
    depth = 0
    # Brackets inside strings do not nest: strings are blanked first. For valid JSON this
    # tokenises exactly as the parser does; invalid JSON fails in json.loads no deeper.
    for m in _JSON_BRACKET.finditer(_JSON_STRING.sub('""', text)):
        depth += 1 if m.group() in "[{" else -1
        if depth > JSON_MAX_DEPTH:
            raise Refused(400, f"{what} nests deeper than {JSON_MAX_DEPTH} levels")
    try:
        return json.loads(text or "null")
    except (ValueError, RecursionError):
        raise Refused(400, f"{what} is not JSON") from None


def body_json(request) -> Any:
    return loads(request.get_data(cache=True))


def basic_auth_configured(config: Config) -> bool:
    return bool(config.newsletter.webhook_user and os.environ.get(WEBHOOK_PASSWORD_ENV))


def basic_auth_ok(config: Config, header: str | None) -> bool:
    password = os.environ.get(WEBHOOK_PASSWORD_ENV, "")
    if not (config.newsletter.webhook_user and password and header and header.startswith("Basic ")):
        return False
    try:
        given = base64.b64decode(header[6:], validate=True)
    except ValueError:
        return False
    expected = f"{config.newsletter.webhook_user}:{password}".encode()
    return hmac.compare_digest(given, expected)


def fresh(timestamp: str, now: datetime) -> bool:
    try:
        when = datetime.fromtimestamp(float(timestamp), timezone.utc)
    except (TypeError, ValueError, OverflowError, OSError):
        return False
    return abs(now - when) <= WEBHOOK_MAX_AGE
