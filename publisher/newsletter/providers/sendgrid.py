"""SendGrid event webhook: the signed webhook's ECDSA signature with
newsletter.sendgrid_public_key, else basic auth as for Postmark."""

from __future__ import annotations

import base64
from typing import Any

from ..bounces import COMPLAINT, HARD, SOFT, Event, kind_of
from .common import Refused, basic_auth_configured, basic_auth_ok, body_json, fresh


def signature_ok(public_key_b64: str, timestamp: str, body: bytes, signature_b64: str) -> bool:
    # lazy: cryptography's import is ~50 ms, needed only by the SES and SendGrid webhooks
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import load_der_public_key

    try:
        key = load_der_public_key(base64.b64decode(public_key_b64))
        if not isinstance(key, ec.EllipticCurvePublicKey):
            return False
        key.verify(base64.b64decode(signature_b64, validate=True), timestamp.encode() + body,
                   ec.ECDSA(hashes.SHA256()))
        return True
    except (InvalidSignature, ValueError, TypeError):
        return False


def check(endpoint, request) -> Any:
    config = endpoint.config
    key = config.newsletter.sendgrid_public_key
    if key:
        timestamp = request.headers.get("X-Twilio-Email-Event-Webhook-Timestamp", "")
        signature = request.headers.get("X-Twilio-Email-Event-Webhook-Signature", "")
        if not signature_ok(key, timestamp, request.get_data(cache=True), signature):
            raise Refused(401, "bad signature")
        if not fresh(timestamp, endpoint.clock()):
            raise Refused(401, "timestamp too old (or in the future): a replay?")
    elif basic_auth_configured(config):
        if not basic_auth_ok(config, request.headers.get("Authorization")):
            raise Refused(401, "wrong or missing basic-auth credentials")
    else:
        raise Refused(404, "the SendGrid webhook is not configured")
    return body_json(request)


def events(payload: Any) -> list[Event]:
    if not isinstance(payload, list):
        raise Refused(400, "expected a JSON array of events")
    found = []
    for item in payload:
        if not isinstance(item, dict) or not item.get("email"):
            continue
        address, event = str(item["email"]).lower(), item.get("event")
        key = f"sendgrid|{item.get('sg_event_id', '')}|{address}"
        if event == "spamreport":
            found.append(Event(COMPLAINT, address, "", "spam report (SendGrid)", key))
        elif event == "bounce":
            status, reason = str(item.get("status") or ""), str(item.get("reason") or "")
            if item.get("type") == "blocked":
                kind = SOFT
            else:
                kind = kind_of(status, reason) or HARD
            found.append(Event(kind, address, status, reason[:300], key))
    return found
