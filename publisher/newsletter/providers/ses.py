"""Amazon SES through SNS: the SNS signature is checked against the certificate in
newsletter.sns_certificate (nothing is fetched), and newsletter.sns_topic_arn, if set, must
match. A subscription confirmation is recorded for the owner (`publisher report` shows its
URL), never visited by us."""

from __future__ import annotations

import base64
import logging
from datetime import datetime, timedelta
from typing import Any

from ..bounces import COMPLAINT, HARD, SOFT, Event
from .common import NONCE_KEEP, Answer, Refused, body_json, dict_of, dicts_of, loads

log = logging.getLogger(__name__)

SNS_URL_META = "sns_subscribe_url"
# SNS keeps the Timestamp of the first attempt on its retries, which an HTTP delivery policy
# spreads over at most an hour: an older message is a replay.
SNS_MAX_AGE = timedelta(hours=1)


def string_to_sign(message: dict) -> bytes:
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


def signature_ok(certificate_pem: bytes, message: dict) -> bool:
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
        key.verify(signature, string_to_sign(message), padding.PKCS1v15(), algorithm)
        return True
    except (InvalidSignature, ValueError, TypeError):
        return False


def check(endpoint, request) -> Any:
    """The SES notification inside a signed SNS message, or an Answer for a message that
    records no event (a subscription confirmation, recorded for the owner). A signed message
    counts once (its MessageId) and within SNS_MAX_AGE of its Timestamp."""
    config = endpoint.config
    if not config.newsletter.sns_certificate:
        raise Refused(404, "the SES webhook is not configured")
    path = config.root / config.newsletter.sns_certificate
    try:
        certificate = path.read_bytes()
    except OSError as e:
        log.error("newsletter.sns_certificate %s: cannot read: %s", path, e.strerror)
        raise Refused(500, "the SNS certificate cannot be read") from e
    message = body_json(request)
    if not isinstance(message, dict) or "Type" not in message:
        raise Refused(400, "expected an SNS message")
    if not signature_ok(certificate, message):
        raise Refused(401, "bad SNS signature")
    topic = config.newsletter.sns_topic_arn
    if topic and message.get("TopicArn") != topic:
        raise Refused(403, f"topic {message.get('TopicArn')!r} is not newsletter.sns_topic_arn")
    now = endpoint.clock()
    sent = _timestamp(message.get("Timestamp"))
    if sent is None:
        raise Refused(400, f"Timestamp {str(message.get('Timestamp'))[:40]!r} is not an ISO 8601 time")
    if abs(now - sent) > SNS_MAX_AGE:
        raise Refused(401, f"Timestamp {sent:%Y-%m-%dT%H:%M:%SZ} is more than an hour away: a replay?")
    message_id = str(message.get("MessageId") or "")
    if not message_id or not endpoint.state().use_nonce("sns:" + message_id, now=now, forget_before=now - NONCE_KEEP):
        raise Refused(401, "MessageId already seen: a replay")
    kind = message.get("Type")
    if kind == "SubscriptionConfirmation":
        url = str(message.get("SubscribeURL", ""))
        endpoint.state().set_meta(SNS_URL_META, f"{message.get('TopicArn', '')} {url}")
        log.warning("SNS subscription to %s awaits confirmation: the owner must open %s",
                    message.get("TopicArn"), url)
        return Answer(recorded=0, confirmation="recorded for the owner")
    if kind != "Notification":
        return Answer(recorded=0)
    return loads(str(message.get("Message", "")), "Message")


def _timestamp(value: Any) -> datetime | None:
    """SNS's "2026-11-30T10:05:00.000Z", aware; None for anything else."""
    try:
        when = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return when if when.tzinfo is not None else None


def events(notification: Any) -> list[Event]:
    """Events of an SES notification (the JSON inside an SNS message)."""
    if not isinstance(notification, dict):
        raise Refused(400, "expected an SES notification (JSON object) in Message")
    what = notification.get("notificationType") or notification.get("eventType")
    found: list[Event] = []
    if what == "Bounce":
        bounce = dict_of(notification.get("bounce"))
        permanent = bounce.get("bounceType") == "Permanent"
        for r in dicts_of(bounce.get("bouncedRecipients")):
            address = str(r.get("emailAddress") or "").lower()
            status, detail = str(r.get("status") or ""), str(r.get("diagnosticCode") or bounce.get("bounceSubType") or "")
            kind = HARD if permanent else SOFT
            if address:
                found.append(Event(kind, address, status, detail[:300],
                                   f"ses|{bounce.get('feedbackId', '')}|{address}"))
    elif what == "Complaint":
        complaint = dict_of(notification.get("complaint"))
        if complaint.get("complaintFeedbackType") == "not-spam":
            return []
        for r in dicts_of(complaint.get("complainedRecipients")):
            address = str(r.get("emailAddress") or "").lower()
            if address:
                found.append(Event(COMPLAINT, address, "",
                                   f"complaint ({complaint.get('complaintFeedbackType') or 'abuse'})",
                                   f"ses|{complaint.get('feedbackId', '')}|{address}"))
    return found
