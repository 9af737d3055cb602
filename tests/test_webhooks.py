"""Provider webhooks (newsletter/providers/) posted to a running `publisher serve` process, with payloads
in each provider's documented shape and correct and incorrect signatures."""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.server
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID
from smtp_helpers import unused_port

from publisher.state import State
from publisher.newsletter.providers.ses import string_to_sign as sns_string_to_sign

PEOPLE = ["pm-hard@example.net", "pm-spam@example.net", "pm-soft@example.net",
          "mg-hard@example.net", "mg-spam@example.net", "ses-hard@example.net", "ses-spam@example.net",
          "ses-soft@example.net", "sg-hard@example.net", "sg-spam@example.net", "keep@example.net"]
TOPIC = "arn:aws:sns:eu-west-1:123456789012:blog-bounces"
MAILGUN_KEY = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0"
WEBHOOK_PASSWORD = "hook-password-123"


class Hits(http.server.BaseHTTPRequestHandler):
    """Counts requests: the SNS SubscribeURL points here and must never be opened."""

    count = 0

    def do_GET(self):  # noqa: N802
        Hits.count += 1
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def keys(tmp_path):
    sns_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.eu-west-1.amazonaws.com")])
    now = datetime.now(timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(sns_key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=1)).sign(sns_key, hashes.SHA256()))
    cert_path = tmp_path / "sns.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    sg_key = ec.generate_private_key(ec.SECP256R1())
    sg_public = base64.b64encode(sg_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()
    return {"sns": sns_key, "sns_cert": cert_path, "sendgrid": sg_key, "sendgrid_public": sg_public}


@pytest.fixture
def serving(site, server, keys):
    site.write_config(smtp={"host": "127.0.0.1", "port": server.port},
                      newsletter={"web_url": "https://blog.test.example/newsletter",
                                  "webhook_user": "hooks", "sns_certificate": str(keys["sns_cert"]),
                                  "sns_topic_arn": TOPIC, "sendgrid_public_key": keys["sendgrid_public"]})
    config = site.config()
    state = State(config.database_url)
    state.add_subscribers([(a, "") for a in PEOPLE])
    state.close()
    port = unused_port()
    env = {**os.environ, "PUBLISHER_WEBHOOK_PASSWORD": WEBHOOK_PASSWORD,
           "PUBLISHER_MAILGUN_SIGNING_KEY": MAILGUN_KEY}
    proc = subprocess.Popen([sys.executable, "-m", "publisher.cli", "--config", str(config.path), "serve",
                             "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(base + "/subscribe", timeout=5).read()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise AssertionError("publisher serve did not start: " + proc.stderr.read())
            time.sleep(0.1)
    try:
        yield config, base
    finally:
        proc.terminate()
        proc.wait(30)
        proc.stdout.close()
        proc.stderr.close()


def post(url: str, body: bytes | str, **headers: str) -> tuple[int, dict]:
    data = body.encode() if isinstance(body, str) else body
    request = urllib.request.Request(url, data=data, method="POST",
                                     headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def statuses(config) -> dict[str, str]:
    state = State(config.database_url)
    try:
        return {s.email: s.status for s in state.list_subscribers()}
    finally:
        state.close()


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_postmark(serving):
    config, base = serving
    url = base + "/webhooks/postmark"
    bounce = {"RecordType": "Bounce", "MessageStream": "outbound", "ID": 4323372036854775807,
              "Type": "HardBounce", "TypeCode": 1, "Name": "Hard bounce", "Tag": "digest",
              "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483", "ServerID": 23,
              "Description": "The server was unable to deliver your message (ex: unknown user, mailbox not found).",
              "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
              "Email": "pm-hard@example.net", "From": "news@blog.test.example",
              "BouncedAt": "2026-11-30T16:33:54.9070259Z", "DumpAvailable": False, "Inactive": True,
              "CanActivate": True, "Subject": "Test Blog: A post"}
    complaint = {"RecordType": "SpamComplaint", "MessageStream": "outbound", "ID": 42, "Type": "SpamComplaint",
                 "TypeCode": 512, "Name": "Spam complaint", "Email": "pm-spam@example.net",
                 "From": "news@blog.test.example", "BouncedAt": "2026-11-30T16:40:00Z", "Details": "",
                 "Subject": "Test Blog: A post"}
    soft = {**bounce, "ID": 7, "Type": "SoftBounce", "TypeCode": 4096, "Email": "pm-soft@example.net",
            "Details": "smtp;452 4.2.2 Mailbox full"}
    assert post(url, json.dumps(bounce))[0] == 401  # no credentials
    assert post(url, json.dumps(bounce), Authorization=basic("hooks", "wrong"))[0] == 401
    assert statuses(config)["pm-hard@example.net"] == "active"
    auth = basic("hooks", WEBHOOK_PASSWORD)
    assert post(url, json.dumps(bounce), Authorization=auth) == (200, {"recorded": 1, "duplicates": 0, "suppressed": 1})
    assert post(url, json.dumps(bounce), Authorization=auth) == (200, {"recorded": 0, "duplicates": 1, "suppressed": 0})
    assert post(url, json.dumps(complaint), Authorization=auth)[1]["suppressed"] == 1
    assert post(url, json.dumps(soft), Authorization=auth)[1] == {"recorded": 1, "duplicates": 0, "suppressed": 0}
    assert post(url, "not json", Authorization=auth)[0] == 400
    got = statuses(config)
    assert (got["pm-hard@example.net"], got["pm-spam@example.net"], got["pm-soft@example.net"]) == (
        "bounced", "unsubscribed", "active")


def mailgun_payload(event: dict, *, timestamp: int | None = None, token: str | None = None,
                    key: str = MAILGUN_KEY) -> str:
    timestamp = int(time.time()) if timestamp is None else timestamp
    token = token or hashlib.sha256(os.urandom(16)).hexdigest()[:50]
    signature = hmac.new(key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()
    return json.dumps({"signature": {"timestamp": str(timestamp), "token": token, "signature": signature},
                       "event-data": event})


def test_mailgun_signature_and_replay_protection(serving):
    config, base = serving
    url = base + "/webhooks/mailgun"
    failed = {"event": "failed", "severity": "permanent", "reason": "bounce", "id": "G9Bn5sl1TC6nu79C8C0bwg",
              "timestamp": time.time(), "recipient": "mg-hard@example.net", "log-level": "error",
              "delivery-status": {"code": 550, "attempt-no": 1, "enhanced-code": "5.1.1",
                                  "message": "5.1.1 The email account that you tried to reach does not exist.",
                                  "description": ""},
              "message": {"headers": {"to": "mg-hard@example.net", "message-id": "20261130.1@blog.test.example",
                                      "from": "news@blog.test.example", "subject": "Test Blog: A post"}}}
    complained = {"event": "complained", "id": "-Agny091SquKnsrW2NEKUA", "timestamp": time.time(),
                  "recipient": "mg-spam@example.net", "log-level": "warn",
                  "message": {"headers": {"message-id": "20261130.2@blog.test.example"}}}
    assert post(url, mailgun_payload(failed, key="key-wrong"))[0] == 401
    assert post(url, mailgun_payload(failed, timestamp=int(time.time()) - 3600))[0] == 401  # too old
    assert statuses(config)["mg-hard@example.net"] == "active"
    token = "f" * 50
    good = mailgun_payload(failed, token=token)
    assert post(url, good) == (200, {"recorded": 1, "duplicates": 0, "suppressed": 1})
    status, body = post(url, good)  # the same request again: a replay
    assert status == 401 and body["error"] == "token already used: a replay"
    assert post(url, mailgun_payload(complained))[1]["suppressed"] == 1
    got = statuses(config)
    assert (got["mg-hard@example.net"], got["mg-spam@example.net"]) == ("bounced", "unsubscribed")


def sns_message(key, message: dict, *, version: str = "1") -> dict:
    algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()
    signed = {**message, "SignatureVersion": version,
              "SigningCertURL": "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-abc.pem"}
    signed["Signature"] = base64.b64encode(key.sign(sns_string_to_sign(signed), padding.PKCS1v15(), algorithm)).decode()
    return signed


def sns_now(ago: timedelta = timedelta(0)) -> str:
    """An SNS Timestamp: when the notification was published."""
    return (datetime.now(timezone.utc) - ago).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def ses_notification(key, ses: dict, message_id: str, *, published: str | None = None) -> dict:
    return sns_message(key, {
        "Type": "Notification", "MessageId": message_id, "TopicArn": TOPIC,
        "Message": json.dumps(ses) if isinstance(ses, dict) else ses, "Timestamp": published or sns_now(),
        "UnsubscribeURL": f"https://sns.eu-west-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn={TOPIC}:x"},
        version="2")


SES_HARD = {"notificationType": "Bounce", "mail": {"source": "news@blog.test.example"}, "bounce": {
    "bounceType": "Permanent", "bounceSubType": "General", "feedbackId": "0000013786-old",
    "bouncedRecipients": [{"emailAddress": "ses-hard@example.net", "status": "5.1.1"}]}}


def test_old_and_replayed_sns_notifications_are_refused(serving, keys):
    config, base = serving
    url = base + "/webhooks/ses"
    old = ses_notification(keys["sns"], SES_HARD, "m-2020", published="2020-06-01T10:00:00.000Z")
    status, body = post(url, json.dumps(old))  # signed, and six years old
    assert (status, body["error"]) == (401, "Timestamp 2020-06-01T10:00:00Z is more than an hour away: a replay?")
    late = ses_notification(keys["sns"], SES_HARD, "m-late", published=sns_now(timedelta(minutes=61)))
    assert post(url, json.dumps(late))[0] == 401
    assert statuses(config)["ses-hard@example.net"] == "active"
    other = {**SES_HARD, "bounce": {**SES_HARD["bounce"], "feedbackId": "f-2",
                                    "bouncedRecipients": [{"emailAddress": "keep@example.net", "status": "5.1.1"}]}}
    fresh = ses_notification(keys["sns"], other, "m-fresh", published=sns_now(timedelta(minutes=50)))
    assert post(url, json.dumps(fresh)) == (200, {"recorded": 1, "duplicates": 0, "suppressed": 1})
    with_state_reactivate(config, "keep@example.net")
    status, body = post(url, json.dumps(fresh))  # the same signed message again
    assert (status, body["error"]) == (401, "MessageId already seen: a replay")
    assert statuses(config)["keep@example.net"] == "active"


def with_state_reactivate(config, address: str) -> None:
    state = State(config.database_url)
    try:
        state.reactivate_subscriber(address, reason="test", now=datetime.now(timezone.utc))
    finally:
        state.close()


def test_nested_or_oversized_json_is_a_400_or_413_for_every_provider(serving, keys):
    config, base = serving
    nested = "[" * 100_000 + "]" * 100_000
    auth = basic("hooks", WEBHOOK_PASSWORD)
    assert post(base + "/webhooks/postmark", nested, Authorization=auth) == (
        400, {"error": "the body nests deeper than 32 levels"})
    assert post(base + "/webhooks/mailgun", nested) == (400, {"error": "the body nests deeper than 32 levels"})
    assert post(base + "/webhooks/ses", nested) == (400, {"error": "the body nests deeper than 32 levels"})
    inner = ses_notification(keys["sns"], '{"a":' * 50_000 + "1" + "}" * 50_000, "m-nested")
    assert post(base + "/webhooks/ses", json.dumps(inner)) == (400, {"error": "Message nests deeper than 32 levels"})
    timestamp = str(int(time.time()))
    signature = base64.b64encode(keys["sendgrid"].sign(timestamp.encode() + nested.encode(),
                                                       ec.ECDSA(hashes.SHA256()))).decode()
    assert post(base + "/webhooks/sendgrid", nested, **{"X-Twilio-Email-Event-Webhook-Signature": signature,
                                                         "X-Twilio-Email-Event-Webhook-Timestamp": timestamp}) == (
        400, {"error": "the body nests deeper than 32 levels"})
    assert post(base + "/webhooks/mailgun", b"\xff\xfe{}") == (400, {"error": "the body is not UTF-8 JSON"})
    assert post(base + "/webhooks/mailgun", "x" * (2 * 1024 * 1024)) == (413, {"error": "the body is over 1024 KB"})
    assert set(statuses(config).values()) == {"active"}


def test_ses_through_sns(serving, keys):
    config, base = serving
    url = base + "/webhooks/ses"
    hits = http.server.HTTPServer(("127.0.0.1", 0), Hits)
    threading.Thread(target=hits.serve_forever, daemon=True).start()
    Hits.count = 0
    subscribe_url = f"http://127.0.0.1:{hits.server_port}/?Action=ConfirmSubscription&TopicArn={TOPIC}&Token=2336"
    confirmation = sns_message(keys["sns"], {
        "Type": "SubscriptionConfirmation", "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
        "Token": "2336412f37", "TopicArn": TOPIC,
        "Message": f"You have chosen to subscribe to the topic {TOPIC}.\nTo confirm the subscription, visit the SubscribeURL included in this message.",
        "SubscribeURL": subscribe_url, "Timestamp": sns_now()})
    headers = {"x-amz-sns-message-type": "SubscriptionConfirmation"}
    assert post(url, json.dumps(confirmation), **headers)[0] == 200

    def notification(ses: dict, message_id: str, **extra) -> dict:
        return sns_message(keys["sns"], {
            "Type": "Notification", "MessageId": message_id, "TopicArn": TOPIC,
            "Message": json.dumps(ses), "Timestamp": sns_now(),
            "UnsubscribeURL": f"https://sns.eu-west-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn={TOPIC}:x",
            **extra}, version="2")

    mail = {"timestamp": "2026-11-30T10:00:00.000Z", "source": "news@blog.test.example",
            "messageId": "0000014644fe5ef6-9a483358-9170-4cb4-a269-f5dcdf415321-000000"}
    bounce = {"notificationType": "Bounce", "mail": mail, "bounce": {
        "bounceType": "Permanent", "bounceSubType": "General", "feedbackId": "00000137860315fd-34208509",
        "timestamp": "2026-11-30T10:04:00.000Z", "reportingMTA": "dns; email.example.com",
        "bouncedRecipients": [{"emailAddress": "ses-hard@example.net", "status": "5.1.1", "action": "failed",
                               "diagnosticCode": "smtp; 550 5.1.1 user unknown"}]}}
    transient = {"notificationType": "Bounce", "mail": mail, "bounce": {
        "bounceType": "Transient", "bounceSubType": "MailboxFull", "feedbackId": "00000137860315fd-transient",
        "bouncedRecipients": [{"emailAddress": "ses-soft@example.net", "status": "4.2.2"}]}}
    complaint = {"notificationType": "Complaint", "mail": mail, "complaint": {
        "userAgent": "AnyCompany Feedback Loop (V0.01)", "complaintFeedbackType": "abuse",
        "feedbackId": "0000013786031775-163e3910", "timestamp": "2026-11-30T10:06:00.000Z",
        "complainedRecipients": [{"emailAddress": "ses-spam@example.net"}]}}
    headers = {"x-amz-sns-message-type": "Notification"}
    tampered = notification(bounce, "m-1")
    tampered["Message"] = tampered["Message"].replace("ses-hard", "keep")
    assert post(url, json.dumps(tampered), **headers)[0] == 401
    other_topic = notification(bounce, "m-2", TopicArn="arn:aws:sns:eu-west-1:999999999999:other")
    assert post(url, json.dumps(other_topic), **headers)[0] == 403
    assert post(url, json.dumps(notification(bounce, "m-3")), **headers)[1]["suppressed"] == 1
    assert post(url, json.dumps(notification(transient, "m-4")), **headers)[1] == {
        "recorded": 1, "duplicates": 0, "suppressed": 0}
    assert post(url, json.dumps(notification(complaint, "m-5")), **headers)[1]["suppressed"] == 1
    got = statuses(config)
    assert (got["ses-hard@example.net"], got["ses-soft@example.net"], got["ses-spam@example.net"],
            got["keep@example.net"]) == ("bounced", "active", "unsubscribed", "active")

    hits.shutdown()
    hits.server_close()
    assert Hits.count == 0  # the SubscribeURL was recorded, never opened
    from click.testing import CliRunner

    from publisher.cli import main

    report = CliRunner().invoke(main, ["--config", str(config.path), "report"])
    assert f"Amazon SNS asks to confirm the subscription to {TOPIC}: open {subscribe_url}" in report.stderr


def test_sendgrid_signed_event_webhook(serving, keys):
    config, base = serving
    url = base + "/webhooks/sendgrid"
    events = [
        {"email": "sg-hard@example.net", "timestamp": 1764493272, "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>",
         "event": "bounce", "category": ["digest"], "sg_event_id": "6g4ZI7SA-xmRDv57GoPIPw==",
         "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0", "reason": "550 5.1.1 User unknown",
         "status": "5.1.1", "type": "bounce"},
        {"email": "sg-spam@example.net", "timestamp": 1764493273, "event": "spamreport",
         "sg_event_id": "BN4JgcVsRMSlNLp9MbkhBQ==", "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001"},
        {"email": "keep@example.net", "timestamp": 1764493274, "event": "delivered", "response": "250 OK",
         "sg_event_id": "rWVYmVk90MjZJ9iohOBa3w==", "sg_message_id": "14c5d75ce93.dfd.64b469.filter0002"},
    ]
    body = json.dumps(events).encode()
    timestamp = str(int(time.time()))
    signature = base64.b64encode(keys["sendgrid"].sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))).decode()
    signed = {"X-Twilio-Email-Event-Webhook-Signature": signature,
              "X-Twilio-Email-Event-Webhook-Timestamp": timestamp}
    assert post(url, body)[0] == 401
    assert post(url, body.replace(b"sg-hard", b"keep"), **signed)[0] == 401
    old = str(int(time.time()) - 3600)
    old_sig = base64.b64encode(keys["sendgrid"].sign(old.encode() + body, ec.ECDSA(hashes.SHA256()))).decode()
    assert post(url, body, **{"X-Twilio-Email-Event-Webhook-Signature": old_sig,
                              "X-Twilio-Email-Event-Webhook-Timestamp": old})[0] == 401
    assert statuses(config)["sg-hard@example.net"] == "active"
    assert post(url, body, **signed) == (200, {"recorded": 2, "duplicates": 0, "suppressed": 2})
    got = statuses(config)
    assert (got["sg-hard@example.net"], got["sg-spam@example.net"], got["keep@example.net"]) == (
        "bounced", "unsubscribed", "active")


def test_unconfigured_webhooks_do_not_exist(site, server):
    from flask.testing import FlaskClient  # noqa: F401  (the app itself, without a process)

    from publisher.web import create_app

    site.write_config(smtp={"host": "127.0.0.1", "port": server.port})
    app = create_app(site.config())
    client = app.test_client()
    for provider in ("postmark", "mailgun", "ses", "sendgrid"):
        assert client.post(f"/webhooks/{provider}", data="{}").status_code == 404
    app.extensions["publisher"].close()


def test_payloads_of_the_wrong_shape_record_nothing_and_never_crash():
    from publisher.newsletter.providers import PROVIDERS, Refused

    shapes = [None, 1, "x", [], {}, [1, "a", None], {"event-data": []}, {"event-data": {"event": "failed"}},
              {"event-data": {"event": "failed", "recipient": "a@example.net", "delivery-status": "oops"}},
              {"notificationType": "Bounce", "bounce": "oops"},
              {"notificationType": "Bounce", "bounce": {"bouncedRecipients": ["a@example.net", None]}},
              {"notificationType": "Complaint", "complaint": {"complainedRecipients": "a@example.net"}},
              {"Type": "HardBounce"}, [{"email": "a@example.net", "event": "open"}]]
    recorded = []
    for name, provider in PROVIDERS.items():
        for shape in shapes:
            try:
                recorded.extend((name, e.kind) for e in provider.events(shape))
            except Refused as e:
                assert e.status == 400
    assert recorded == [("mailgun", "soft")]  # a failure without a status: soft, not hard


def test_a_batch_of_soft_bounces_for_one_address_is_linear_and_capped(serving, keys):
    """10,000 soft bounces for one address in one request took 96 s (each re-read the earlier
    ones); a batch is now recorded in one pass, and one over 5,000 events is refused whole."""
    config, base = serving
    url = base + "/webhooks/sendgrid"

    def signed(n: int, tag: str) -> tuple[bytes, dict]:
        body = json.dumps([{"email": "sg-hard@example.net", "event": "bounce", "type": "blocked",
                            "sg_event_id": f"{tag}{i}"} for i in range(n)], separators=(",", ":")).encode()
        assert len(body) < 1024 * 1024
        timestamp = str(int(time.time()))
        signature = base64.b64encode(keys["sendgrid"].sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256())))
        return body, {"X-Twilio-Email-Event-Webhook-Signature": signature.decode(),
                      "X-Twilio-Email-Event-Webhook-Timestamp": timestamp}

    body, headers = signed(10_000, "a")
    started = time.monotonic()
    assert post(url, body, **headers) == (413, {"error": "10000 events in one request: at most 5000"})
    body, headers = signed(5_000, "b")
    # No digest was sent: each soft bounce counts, and the third suppresses (once)
    assert post(url, body, **headers) == (200, {"recorded": 5000, "duplicates": 0, "suppressed": 1})
    assert time.monotonic() - started < 25  # (10,000: 96 s)
    assert statuses(config)["sg-hard@example.net"] == "bounced"
