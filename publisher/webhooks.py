"""Provider webhooks in `publisher serve`: bounces and complaints reported by the relay.

    POST /webhooks/postmark   Postmark bounce and spam-complaint webhooks; HTTP basic auth
                              (newsletter.webhook_user, password from $PUBLISHER_WEBHOOK_PASSWORD)
    POST /webhooks/mailgun    Mailgun webhooks (JSON); HMAC-SHA256 of timestamp+token with the
                              signing key from $PUBLISHER_MAILGUN_SIGNING_KEY; a token is accepted
                              once, and a timestamp older than WEBHOOK_MAX_AGE not at all
    POST /webhooks/ses        Amazon SES through SNS; the SNS signature is checked against the
                              certificate in newsletter.sns_certificate (nothing is fetched), and
                              newsletter.sns_topic_arn, if set, must match. A subscription
                              confirmation is recorded for the owner (`publisher report` shows
                              its URL), never visited by us.
    POST /webhooks/sendgrid   SendGrid event webhook: the signed webhook's ECDSA signature with
                              newsletter.sendgrid_public_key, else basic auth as for Postmark

A webhook whose credentials are not configured answers 404, as if it did not exist. Every
event goes through bounces.apply_events: the same rules as a bounce read from a mailbox.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
from datetime import datetime, timedelta, timezone
from typing import Any

from .config import MAILGUN_KEY_ENV, WEBHOOK_PASSWORD_ENV, Config
from .newsletter.bounces import COMPLAINT, HARD, SOFT, BounceReport, Event, apply_events, kind_of

log = logging.getLogger(__name__)

WEBHOOK_MAX_AGE = timedelta(minutes=10)  # older signed requests are refused (replays)
WEBHOOK_MAX_BYTES = 1024 * 1024  # SendGrid batches events; a batch stays well under this
SNS_URL_META = "sns_subscribe_url"

# Postmark's bounce types (https://postmarkapp.com/developer/api/bounce-api#bounce-types).
_POSTMARK_KIND = {
    "HardBounce": HARD, "BadEmailAddress": HARD,
    "SoftBounce": SOFT, "Transient": SOFT, "DnsError": SOFT, "InboxFull": SOFT, "Blocked": SOFT,
    "DMARCPolicy": SOFT, "Undeliverable": SOFT,
    "SpamComplaint": COMPLAINT, "SpamNotification": COMPLAINT,
}


class Refused(Exception):
    """A request to refuse: (HTTP status, one line saying why)."""

    def __init__(self, status: int, why: str):
        super().__init__(why)
        self.status = status


# --- provider payloads → events (pure) --------------------------------------------------------

def _dict(value: Any) -> dict:
    """A JSON object, or {} for anything else: a payload of the wrong shape records nothing."""
    return value if isinstance(value, dict) else {}


def _dicts(value: Any) -> list[dict]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def postmark_events(payload: Any) -> list[Event]:
    if not isinstance(payload, dict):
        raise Refused(400, "expected a JSON object")
    kind = _POSTMARK_KIND.get(str(payload.get("Type", "")))
    if payload.get("RecordType") == "SpamComplaint":
        kind = COMPLAINT
    address = str(payload.get("Email") or "")
    if kind is None or not address:
        return []
    detail = str(payload.get("Details") or payload.get("Description") or payload.get("Name") or "")
    status = "5.1.1" if kind == HARD else ""
    return [Event(kind, address.lower(), status, detail[:300], f"postmark|{payload.get('ID', '')}|{address.lower()}")]


def mailgun_events(payload: Any) -> list[Event]:
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
    status = _dict(data.get("delivery-status"))
    code = str(status.get("code") or "")
    detail = str(status.get("description") or status.get("message") or data.get("reason") or "")[:300]
    if data.get("severity") == "temporary":
        kind = SOFT
    else:
        kind = kind_of(str(status.get("enhanced-code") or ""), f"{code} {detail}") or SOFT
    return [Event(kind, address.lower(), str(status.get("enhanced-code") or ""), f"{code} {detail}".strip(), key)]


def ses_events(notification: Any) -> list[Event]:
    """Events of an SES notification (the JSON inside an SNS message)."""
    if not isinstance(notification, dict):
        raise Refused(400, "expected an SES notification (JSON object) in Message")
    what = notification.get("notificationType") or notification.get("eventType")
    events: list[Event] = []
    if what == "Bounce":
        bounce = _dict(notification.get("bounce"))
        permanent = bounce.get("bounceType") == "Permanent"
        for r in _dicts(bounce.get("bouncedRecipients")):
            address = str(r.get("emailAddress") or "").lower()
            status, detail = str(r.get("status") or ""), str(r.get("diagnosticCode") or bounce.get("bounceSubType") or "")
            kind = HARD if permanent else SOFT
            if address:
                events.append(Event(kind, address, status, detail[:300],
                                    f"ses|{bounce.get('feedbackId', '')}|{address}"))
    elif what == "Complaint":
        complaint = _dict(notification.get("complaint"))
        if complaint.get("complaintFeedbackType") == "not-spam":
            return []
        for r in _dicts(complaint.get("complainedRecipients")):
            address = str(r.get("emailAddress") or "").lower()
            if address:
                events.append(Event(COMPLAINT, address, "",
                                    f"complaint ({complaint.get('complaintFeedbackType') or 'abuse'})",
                                    f"ses|{complaint.get('feedbackId', '')}|{address}"))
    return events


def sendgrid_events(payload: Any) -> list[Event]:
    if not isinstance(payload, list):
        raise Refused(400, "expected a JSON array of events")
    events = []
    for item in payload:
        if not isinstance(item, dict) or not item.get("email"):
            continue
        address, event = str(item["email"]).lower(), item.get("event")
        key = f"sendgrid|{item.get('sg_event_id', '')}|{address}"
        if event == "spamreport":
            events.append(Event(COMPLAINT, address, "", "spam report (SendGrid)", key))
        elif event == "bounce":
            status, reason = str(item.get("status") or ""), str(item.get("reason") or "")
            if item.get("type") == "blocked":
                kind = SOFT
            else:
                kind = kind_of(status, reason) or HARD
            events.append(Event(kind, address, status, reason[:300], key))
    return events


# --- signatures --------------------------------------------------------------------------------

def _basic_auth_ok(config: Config, header: str | None) -> bool:
    password = os.environ.get(WEBHOOK_PASSWORD_ENV, "")
    if not (config.newsletter.webhook_user and password and header and header.startswith("Basic ")):
        return False
    try:
        given = base64.b64decode(header[6:], validate=True)
    except ValueError:
        return False
    expected = f"{config.newsletter.webhook_user}:{password}".encode()
    return hmac.compare_digest(given, expected)


def mailgun_signature_ok(key: str, timestamp: str, token: str, signature: str) -> bool:
    expected = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature or "")


def sns_string_to_sign(message: dict) -> bytes:
    """The canonical form SNS signs (AWS: "Verifying the signatures of Amazon SNS messages")."""
    if message.get("Type") == "Notification":
        names = ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
    else:
        names = ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"]
    out = []
    for name in names:
        if name in message and message[name] is not None:
            out.append(f"{name}\n{message[name]}\n")
    return "".join(out).encode()


def sns_signature_ok(certificate_pem: bytes, message: dict) -> bool:
    # lazy: cryptography's import is ~50 ms, needed only by the SES and SendGrid webhooks
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    version = str(message.get("SignatureVersion", ""))
    algorithm = {"1": hashes.SHA1(), "2": hashes.SHA256()}.get(version)
    if algorithm is None:
        return False
    try:
        signature = base64.b64decode(str(message.get("Signature", "")), validate=True)
        key = x509.load_pem_x509_certificate(certificate_pem).public_key()
        key.verify(signature, sns_string_to_sign(message), padding.PKCS1v15(), algorithm)
        return True
    except (InvalidSignature, ValueError, TypeError):
        return False


def sendgrid_signature_ok(public_key_b64: str, timestamp: str, body: bytes, signature_b64: str) -> bool:
    # lazy: as above
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


def _fresh(timestamp: str, now: datetime) -> bool:
    try:
        when = datetime.fromtimestamp(float(timestamp), timezone.utc)
    except (TypeError, ValueError, OverflowError, OSError):
        return False
    return abs(now - when) <= WEBHOOK_MAX_AGE


# --- the blueprint ------------------------------------------------------------------------------

def webhooks_blueprint(endpoint):
    """The webhook routes, sharing web.py's Endpoint (config, state, clock)."""
    # lazy: Flask (~0.1 s); web.py has it loaded when it builds this blueprint, and the
    # signature checks do without
    from flask import Blueprint, jsonify, request

    config: Config = endpoint.config
    bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")

    @bp.before_request
    def allow_batches():
        request.max_content_length = WEBHOOK_MAX_BYTES  # the forms' 16 KB limit is for forms

    def body_json() -> Any:
        try:
            return json.loads(request.get_data(cache=True) or b"null")
        except (ValueError, UnicodeDecodeError):
            raise Refused(400, "the body is not JSON") from None

    def record(events: list[Event], source: str):
        report = BounceReport()
        apply_events(events, config, endpoint.state(), source=source, now=endpoint.clock(), report=report)
        for address in report.suppressed:
            log.warning("%s webhook: %s suppressed", source, address)
        return jsonify(recorded=report.hard + report.soft + report.complaints,
                       duplicates=report.duplicates, suppressed=len(report.suppressed))

    def guarded(handler):
        def view():
            try:
                return handler()
            except Refused as e:
                log.warning("webhook %s refused: %s", request.path, e)
                return jsonify(error=str(e)), e.status
        view.__name__ = handler.__name__
        return view

    @bp.post("/postmark")
    @guarded
    def postmark():
        if not (config.newsletter.webhook_user and os.environ.get(WEBHOOK_PASSWORD_ENV)):
            raise Refused(404, "the Postmark webhook is not configured")
        if not _basic_auth_ok(config, request.headers.get("Authorization")):
            raise Refused(401, "wrong or missing basic-auth credentials")
        return record(postmark_events(body_json()), "postmark")

    @bp.post("/mailgun")
    @guarded
    def mailgun():
        key = os.environ.get(MAILGUN_KEY_ENV, "")
        if not key:
            raise Refused(404, "the Mailgun webhook is not configured")
        payload = body_json()
        sig = payload.get("signature") if isinstance(payload, dict) else None
        if not isinstance(sig, dict):
            raise Refused(401, "no 'signature' object")
        timestamp, token = str(sig.get("timestamp", "")), str(sig.get("token", ""))
        if not mailgun_signature_ok(key, timestamp, token, str(sig.get("signature", ""))):
            raise Refused(401, "bad signature")
        now = endpoint.clock()
        if not _fresh(timestamp, now):
            raise Refused(401, "timestamp too old (or in the future): a replay?")
        if not endpoint.state().use_nonce("mailgun:" + token, now=now, forget_before=now - 2 * WEBHOOK_MAX_AGE):
            raise Refused(401, "token already used: a replay")
        return record(mailgun_events(payload), "mailgun")

    @bp.post("/ses")
    @guarded
    def ses():
        if not config.newsletter.sns_certificate:
            raise Refused(404, "the SES webhook is not configured")
        path = config.root / config.newsletter.sns_certificate
        try:
            certificate = path.read_bytes()
        except OSError as e:
            log.error("newsletter.sns_certificate %s: cannot read: %s", path, e.strerror)
            raise Refused(500, "the SNS certificate cannot be read") from e
        message = body_json()
        if not isinstance(message, dict) or "Type" not in message:
            raise Refused(400, "expected an SNS message")
        if not sns_signature_ok(certificate, message):
            raise Refused(401, "bad SNS signature")
        topic = config.newsletter.sns_topic_arn
        if topic and message.get("TopicArn") != topic:
            raise Refused(403, f"topic {message.get('TopicArn')!r} is not newsletter.sns_topic_arn")
        kind = message.get("Type")
        if kind == "SubscriptionConfirmation":
            url = str(message.get("SubscribeURL", ""))
            endpoint.state().set_meta(SNS_URL_META, f"{message.get('TopicArn', '')} {url}")
            log.warning("SNS subscription to %s awaits confirmation: the owner must open %s",
                        message.get("TopicArn"), url)
            return jsonify(recorded=0, confirmation="recorded for the owner")
        if kind != "Notification":
            return jsonify(recorded=0)
        try:
            notification = json.loads(str(message.get("Message", "")))
        except ValueError:
            raise Refused(400, "Message is not JSON") from None
        return record(ses_events(notification), "ses")

    @bp.post("/sendgrid")
    @guarded
    def sendgrid():
        key = config.newsletter.sendgrid_public_key
        if key:
            timestamp = request.headers.get("X-Twilio-Email-Event-Webhook-Timestamp", "")
            signature = request.headers.get("X-Twilio-Email-Event-Webhook-Signature", "")
            if not sendgrid_signature_ok(key, timestamp, request.get_data(cache=True), signature):
                raise Refused(401, "bad signature")
            if not _fresh(timestamp, endpoint.clock()):
                raise Refused(401, "timestamp too old (or in the future): a replay?")
        elif config.newsletter.webhook_user and os.environ.get(WEBHOOK_PASSWORD_ENV):
            if not _basic_auth_ok(config, request.headers.get("Authorization")):
                raise Refused(401, "wrong or missing basic-auth credentials")
        else:
            raise Refused(404, "the SendGrid webhook is not configured")
        return record(sendgrid_events(body_json()), "sendgrid")

    return bp
