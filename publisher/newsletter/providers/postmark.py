"""Postmark bounce and spam-complaint webhooks: HTTP basic auth (newsletter.webhook_user,
password from $PUBLISHER_WEBHOOK_PASSWORD)."""

from __future__ import annotations

from typing import Any

from ..bounces import COMPLAINT, HARD, SOFT, Event
from .common import Refused, basic_auth_configured, basic_auth_ok, body_json

# Postmark's bounce types (https://postmarkapp.com/developer/api/bounce-api#bounce-types).
_KIND = {
    "HardBounce": HARD, "BadEmailAddress": HARD,
    "SoftBounce": SOFT, "Transient": SOFT, "DnsError": SOFT, "InboxFull": SOFT, "Blocked": SOFT,
    "DMARCPolicy": SOFT, "Undeliverable": SOFT,
    "SpamComplaint": COMPLAINT, "SpamNotification": COMPLAINT,
}


def check(endpoint, request) -> Any:
    """The payload of an authenticated request; Refused otherwise."""
    config = endpoint.config
    if not basic_auth_configured(config):
        raise Refused(404, "the Postmark webhook is not configured")
    if not basic_auth_ok(config, request.headers.get("Authorization")):
        raise Refused(401, "wrong or missing basic-auth credentials")
    return body_json(request)


def events(payload: Any) -> list[Event]:
    if not isinstance(payload, dict):
        raise Refused(400, "expected a JSON object")
    kind = _KIND.get(str(payload.get("Type", "")))
    if payload.get("RecordType") == "SpamComplaint":
        kind = COMPLAINT
    address = str(payload.get("Email") or "")
    if kind is None or not address:
        return []
    detail = str(payload.get("Details") or payload.get("Description") or payload.get("Name") or "")
    status = "5.1.1" if kind == HARD else ""
    return [Event(kind, address.lower(), status, detail[:300], f"postmark|{payload.get('ID', '')}|{address.lower()}")]
