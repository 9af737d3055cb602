"""What the webhook providers share: the refusal, freshness of a signed timestamp, basic
auth, and reading a JSON body."""

from __future__ import annotations

import base64
import hmac
import json
import os
from datetime import datetime, timedelta, timezone
from typing import Any

from ...config import WEBHOOK_PASSWORD_ENV, Config

WEBHOOK_MAX_AGE = timedelta(minutes=10)  # older signed requests are refused (replays)
WEBHOOK_MAX_BYTES = 1024 * 1024  # SendGrid batches events; a batch stays well under this


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


def body_json(request) -> Any:
    try:
        return json.loads(request.get_data(cache=True) or b"null")
    except (ValueError, UnicodeDecodeError):
        raise Refused(400, "the body is not JSON") from None


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
