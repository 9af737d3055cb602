"""Mailgun webhooks (JSON): HMAC-SHA256 of timestamp+token with the signing key from
$PUBLISHER_MAILGUN_SIGNING_KEY; a token is accepted once, and a timestamp older than
WEBHOOK_MAX_AGE not at all."""

from __future__ import annotations

import hashlib
import hmac
import os
from typing import Any

from ...config import MAILGUN_KEY_ENV
from ..bounces import COMPLAINT, SOFT, Event, kind_of
from .common import NONCE_KEEP, Refused, body_json, dict_of, fresh


def signature_ok(key: str, timestamp: str, token: str, signature: str) -> bool:
    expected = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature or "")


def check(endpoint, request) -> Any:
    key = os.environ.get(MAILGUN_KEY_ENV, "")
    if not key:
        raise Refused(404, "the Mailgun webhook is not configured")
    payload = body_json(request)
    sig = payload.get("signature") if isinstance(payload, dict) else None
    if not isinstance(sig, dict):
        raise Refused(401, "no 'signature' object")
    timestamp, token = str(sig.get("timestamp", "")), str(sig.get("token", ""))
    if not signature_ok(key, timestamp, token, str(sig.get("signature", ""))):
        raise Refused(401, "bad signature")
    now = endpoint.clock()
    if not fresh(timestamp, now):
        raise Refused(401, "timestamp too old (or in the future): a replay?")
    if not endpoint.state().use_nonce("mailgun:" + token, now=now, forget_before=now - NONCE_KEEP):
        raise Refused(401, "token already used: a replay")
    return payload


def events(payload: Any) -> list[Event]:
    data = payload.get("event-data") if isinstance(payload, dict) else None
    if not isinstance(data, dict):
        raise Refused(400, "expected a JSON object with 'event-data'")
    event, address = str(data.get("event", "")), str(data.get("recipient") or "")
    if not address:
        return []
    key = f"mailgun|{data.get('id', '')}|{address.lower()}"
    if event == "complained":
        return [Event(COMPLAINT, address.lower(), "", "complaint (Mailgun)", key)]
    if event != "failed":
        return []
    status = dict_of(data.get("delivery-status"))
    code = str(status.get("code") or "")
    detail = str(status.get("description") or status.get("message") or data.get("reason") or "")[:300]
    if data.get("severity") == "temporary":
        kind = SOFT
    else:
        kind = kind_of(str(status.get("enhanced-code") or ""), f"{code} {detail}") or SOFT
    return [Event(kind, address.lower(), str(status.get("enhanced-code") or ""), f"{code} {detail}".strip(), key)]
