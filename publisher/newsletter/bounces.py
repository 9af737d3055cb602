"""Bounces and complaints that arrive after the server said yes → suppressions.

A relay's `250` only means it took the message: most bounces come back minutes later as a
delivery status notification (RFC 3464) to the envelope sender, and spam complaints as ARF
reports (RFC 5965) or provider webhooks (providers/). This module reads such a message
(`classify`), finds the subscriber it is about, and records it through publisher.state (its
suppressions.py), which applies the rules:

- hard bounce (a permanent failure of the mailbox itself: 5.1.x, 5.2.x but 5.2.2 "mailbox
  full", or a 5.x.x whose text says the user is unknown): suppressed at once (`bounced`);
- soft bounce (4.x.x, and any other 5.x.x: a full mailbox, a policy block): suppressed once
  `newsletter.soft_bounce_limit` digests in a row bounced with no delivery in between;
- complaint (ARF `Feedback-Type: abuse`/`fraud`, a provider's spam report): unsubscribed at once,
  and an import never brings the address back;
- delay warnings, auto-replies and ARF `not-spam` reports: recognised, nothing recorded.

Who may be suppressed (the CONTRACT: "a report suppresses only the address its VERP token
names (the token is signed) or that a signed webhook names"): anyone can mail the bounce
address, so a report read from the mailbox counts only when it came back to a VERP envelope
sender (`newsletter.bounce_address`) whose token is valid, and only for the subscriber that
token names, whatever addresses its body lists (a forwarding address, a redacted one, or a
forged list): one message is at most one event. A report without a valid token suppresses
nobody: it is recorded for a person (`publisher report` lists it: the addresses it names and
why it was not acted on) and left in the mailbox. Provider webhooks are signed, so their
events name their subscriber by address (apply_events). A message that is none of the above,
or names nobody on the list, is "not recognised" and left where it is.
"""

from __future__ import annotations

import base64
import email
import email.policy
import hashlib
import hmac
import logging
import re
from dataclasses import dataclass, field, replace
from datetime import datetime
from email.message import EmailMessage, Message
from email.utils import getaddresses, parseaddr

from ..config import Config
from ..state import State
from ..state.subscriber_list import Subscriber
from ..state.suppressions import Bounce

log = logging.getLogger(__name__)

HARD, SOFT, COMPLAINT = "hard", "soft", "complaint"

# RFC 3463 enhanced status code anywhere in a text.
_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_REPLY_CODE = re.compile(r"\b([245])\d\d\b")
# Texts that name a mailbox that does not exist, whatever code came with them.
_NO_MAILBOX = re.compile(
    r"user unknown|unknown user|no such (user|mailbox|recipient|address)|does not exist|"
    r"doesn't exist|mailbox (is )?(unavailable|not found|disabled)|unknown recipient|"
    r"invalid recipient|recipient (address )?rejected|address rejected|no mailbox here|"
    r"account (has been )?(disabled|closed)|not a valid mailbox|unrouteable address",
    re.IGNORECASE)
_AUTO_SUBJECT = re.compile(
    r"^(auto(matic)?[ -]?(reply|response|antwort)|out of (the )?office|abwesenheit|"
    r"absence|vacation|on leave|r[ée]ponse automatique)", re.IGNORECASE)
_TOKEN_LINK = re.compile(r"/unsubscribe/([A-Za-z0-9_-]{20,100})")
_VERP_TOKEN = re.compile(r"^(\d+)\.(\d+)\.([a-z2-7]{10})$")
# A report is about one copy, so one recipient; a long list is a forgery or a list server's:
# reading stops here, and at most one event of the message is ever recorded.
MAX_EVENTS_PER_REPORT = 20


@dataclass(frozen=True)
class Event:
    """One bounce or complaint about one recipient."""

    kind: str  # hard | soft | complaint
    recipient: str = ""  # the failed address as the report names it ("" when it names none)
    status: str = ""  # RFC 3463 code, e.g. "5.1.1"
    detail: str = ""  # the diagnostic, one line
    key: str = ""  # unique per report and recipient: the same report twice is recorded once
    verp: str = ""  # the VERP token the report came back to, if any
    unsubscribe_token: str = ""  # from the returned message's List-Unsubscribe, if any
    digest_id: int | None = None  # when the provider or VERP says which digest


@dataclass
class Classified:
    """What a message is: `what` is dsn | arf | delay | autoreply | not-spam, or "" (not
    recognised: left alone)."""

    what: str
    events: list[Event] = field(default_factory=list)


# --- status codes --------------------------------------------------------------------------

def kind_of(status: str, detail: str = "") -> str | None:
    """hard, soft or None (not a failure) for an RFC 3463 status (and its diagnostic text)."""
    m = _STATUS.search(status or "")
    if m is None:
        m = _STATUS.search(detail or "")
    if m is None:
        code = _REPLY_CODE.search(detail or "")
        if code is None:
            return HARD if _NO_MAILBOX.search(detail or "") else None
        klass, subject, item = code.group(1), "0", "0"
    else:
        klass, subject, item = m.groups()
    if klass == "2":
        return None
    if klass == "4":
        return SOFT
    if subject == "1" or (subject == "2" and item != "2") or _NO_MAILBOX.search(detail or ""):
        return HARD
    return SOFT


def _status_of(status: str, detail: str) -> str:
    m = _STATUS.search(status or "") or _STATUS.search(detail or "")
    return ".".join(m.groups()) if m else ""


# --- VERP -----------------------------------------------------------------------------------

def verp_token(secret: str, digest_id: int, subscriber_id: int) -> str:
    """`DIGEST.SUBSCRIBER.MAC`: lowercase (mail systems fold case), short enough for a local
    part, and signed, so a forged bounce cannot suppress someone else."""
    mac = hmac.new(secret.encode(), f"{digest_id}.{subscriber_id}".encode(), hashlib.sha256).digest()
    return f"{digest_id}.{subscriber_id}.{base64.b32encode(mac).decode().lower()[:10]}"


def parse_verp_token(secret: str, token: str) -> tuple[int, int] | None:
    m = _VERP_TOKEN.match(token.lower())
    if m is None:
        return None
    digest_id, subscriber_id = int(m.group(1)), int(m.group(2))
    if not hmac.compare_digest(verp_token(secret, digest_id, subscriber_id), token.lower()):
        return None
    return digest_id, subscriber_id


def verp_sender(config: Config, secret: str, digest_id: int, subscriber_id: int) -> str | None:
    """The envelope sender for one subscriber's copy, or None when VERP is off."""
    template = config.newsletter.bounce_address
    if not template:
        return None
    return template.replace("{token}", verp_token(secret, digest_id, subscriber_id))


def _verp_pattern(config: Config) -> re.Pattern | None:
    template = config.newsletter.bounce_address
    if not template:
        return None
    before, after = template.split("{token}", 1)
    return re.compile(re.escape(before) + r"([A-Za-z0-9.]+)" + re.escape(after), re.IGNORECASE)


_REPORTED_SENDER = re.compile(r"^(?:Return-Path|Original-Mail-From|X-Postfix-Sender):[ \t]*(.+)$",
                              re.MULTILINE | re.IGNORECASE)


def find_verp(message: Message, config: Config) -> str:
    """The VERP token of the address a report was delivered to, if any. Local delivery
    records the envelope recipient in Delivered-To / X-Original-To; the To header of a DSN
    is the envelope sender too. A feedback loop mails its ARF reports to one address of its
    own: there the token is in the report's Original-Mail-From or the returned copy's
    Return-Path. (Wherever it is found, only a valid signature makes it count.)"""
    pattern = _verp_pattern(config)
    if pattern is None:
        return ""
    for name in ("Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To", "To",
                 "Original-Mail-From"):
        for value in message.get_all(name) or ():
            m = pattern.search(str(value))
            if m:
                return m.group(1)
    for part in message.walk():
        if part.get_content_type() in ("message/feedback-report", "message/delivery-status", "message/rfc822",
                                       "text/rfc822-headers", "message/rfc822-headers"):
            head = re.split(r"\r?\n[ \t]*\r?\n", _text(part)[:65536], maxsplit=1)[0]  # (its header block)
            for line in _REPORTED_SENDER.finditer(head):
                m = pattern.search(line.group(1))
                if m:
                    return m.group(1)
    return ""


# --- reading a message ------------------------------------------------------------------------

def parse_bytes(data: bytes) -> EmailMessage:
    return email.message_from_bytes(data, policy=email.policy.compat32)  # type: ignore[return-value]


def _text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if payload is None:
        inner = part.get_payload()
        if isinstance(inner, list):  # message/* parts: their content is sub-messages
            return "\n".join(m.as_string() if isinstance(m, Message) else str(m) for m in inner)
        return str(inner or "")
    try:
        return payload.decode(part.get_content_charset() or "utf-8", errors="replace")
    except LookupError:  # a charset Python does not know
        return payload.decode("utf-8", errors="replace")


def _field_blocks(text: str) -> list[dict[str, str]]:
    """RFC 3464 / 5965 fields: groups separated by blank lines, `Name: value` with
    folded continuation lines; names lowercased."""
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    last = None
    for line in text.replace("\r\n", "\n").split("\n"):
        if not line.strip():
            if current:
                blocks.append(current)
            current, last = {}, None
        elif line[0] in " \t" and last:
            current[last] += " " + line.strip()
        elif ":" in line:
            name, value = line.split(":", 1)
            last = name.strip().lower()
            current[last] = value.strip()
    if current:
        blocks.append(current)
    return blocks


def _address(value: str) -> str:
    """`rfc822; user@example.org` -> user@example.org"""
    if ";" in value:
        value = value.split(";", 1)[1]
    return parseaddr(value.strip())[1] or value.strip().strip("<>")


def _one_line(text: str, limit: int = 300) -> str:
    return re.sub(r"\s+", " ", text or "").strip()[:limit]


def _returned_token(message: Message) -> str:
    """The unsubscribe token of the returned message (its headers ride along in a DSN or
    ARF report), which names the subscriber even when the recipient is redacted."""
    for part in message.walk():
        if part.get_content_type() in ("message/rfc822", "text/rfc822-headers", "message/rfc822-headers"):
            m = _TOKEN_LINK.search(_text(part))
            if m:
                return m.group(1)
    m = _TOKEN_LINK.search(_body_text(message))
    return m.group(1) if m else ""


def _body_text(message: Message) -> str:
    parts = []
    for part in message.walk():
        if part.get_content_maintype() == "text":
            parts.append(_text(part))
    return "\n".join(parts)


def _h(message: Message, name: str) -> str:
    """A header as text ("" if absent): compat32 hands undecodable ones back as Header objects."""
    value = message.get(name)
    return "" if value is None else str(value)


def _message_key(message: Message, data: bytes) -> str:
    mid = _h(message, "Message-ID").strip()
    return mid[:150] if mid else "sha256:" + hashlib.sha256(data).hexdigest()[:40]


def classify(data: bytes, config: Config) -> Classified:
    """What a message in the bounce mailbox is, and the events it reports."""
    message = parse_bytes(data)
    key = _message_key(message, data)
    verp = find_verp(message, config)
    token = _returned_token(message)
    content_type = message.get_content_type()
    report_type = str(message.get_param("report-type") or "").lower() if content_type == "multipart/report" else ""

    def event(kind: str, recipient: str, status: str, detail: str) -> Event:
        return Event(kind, recipient.lower(), status, _one_line(detail), f"{key}|{recipient.lower()}",
                     verp, token)

    if report_type == "feedback-report" or any(
            p.get_content_type() == "message/feedback-report" for p in message.walk()):
        return _arf(message, event)
    if report_type == "delivery-status" or any(
            p.get_content_type() in ("message/delivery-status", "message/global-delivery-status")
            for p in message.walk()):
        return _dsn(message, event)
    found = _plain_bounce(message, event)
    # Bounces carry Auto-Submitted too (RFC 3834): a notice is looked for first.
    if not found.what and _is_autoreply(message):
        return Classified("autoreply")
    return found


def _arf(message: Message, event) -> Classified:
    fields: dict[str, str] = {}
    for part in message.walk():
        if part.get_content_type() == "message/feedback-report":
            for block in _field_blocks(_text(part)):
                fields.update(block)
    feedback = fields.get("feedback-type", "").lower()
    if feedback not in ("abuse", "fraud", ""):
        return Classified("not-spam" if feedback == "not-spam" else "arf-" + feedback)
    recipient = _address(fields.get("original-rcpt-to", "")) if fields.get("original-rcpt-to") else ""
    if not recipient:
        for part in message.walk():
            if part.get_content_type() in ("message/rfc822", "text/rfc822-headers"):
                inner = part.get_payload()
                inner = inner[0] if isinstance(inner, list) and inner else None
                if isinstance(inner, Message):
                    recipient = parseaddr(_h(inner, "To"))[1]
                else:
                    m = re.search(r"^To:\s*(.+)$", _text(part), re.MULTILINE | re.IGNORECASE)
                    recipient = parseaddr(m.group(1))[1] if m else ""
                break
    detail = f"Feedback-Type: {feedback or 'abuse'}"
    if fields.get("user-agent"):
        detail += f" from {fields['user-agent']}"
    return Classified("arf", [event(COMPLAINT, recipient, "", detail)])


def _dsn(message: Message, event) -> Classified:
    events = []
    delayed = False
    for part in message.walk():
        if part.get_content_type() not in ("message/delivery-status", "message/global-delivery-status"):
            continue
        per_recipient = [b for b in _field_blocks(_text(part))
                         if "final-recipient" in b or "original-recipient" in b]
        for block in per_recipient:  # (the per-message group names no recipient)
            action = block.get("action", "").lower()
            recipient = _address(block.get("final-recipient") or block.get("original-recipient") or "")
            original = block.get("original-recipient")
            if original and not recipient:
                recipient = _address(original)
            status = block.get("status", "")
            detail = block.get("diagnostic-code", "")
            if ";" in detail:
                detail = detail.split(";", 1)[1]
            if action in ("delayed", "relayed", "delivered", "expanded"):
                delayed = delayed or action == "delayed"
                continue
            if action != "failed" and not status.startswith(("4", "5")):
                continue
            kind = kind_of(status, detail) or (SOFT if action == "failed" else None)
            if kind is None:
                continue
            events.append(event(kind, recipient, _status_of(status, detail), detail or status))
            if len(events) >= MAX_EVENTS_PER_REPORT:
                return Classified("dsn", events)
    if events:
        return Classified("dsn", events)
    return Classified("delay" if delayed else "")


def _is_autoreply(message: Message) -> bool:
    auto = _h(message, "Auto-Submitted").lower()
    if auto.startswith("auto-replied"):
        return True
    if _h(message, "X-Autoreply") or _h(message, "X-Autorespond") or _h(message, "X-Auto-Response-Suppress"):
        return True
    if _h(message, "Precedence").lower() == "auto_reply":
        return True
    return bool(_AUTO_SUBJECT.match(_one_line(_h(message, "Subject"))))


# Non-standard bounces: qmail's, Exim's and old Postfix's plain-text notices.
_QMAIL = re.compile(r"This is the qmail-send program", re.IGNORECASE)
_EXIM = re.compile(r"could not be delivered to one or more of its\s+recipients", re.IGNORECASE)
_EXIM_DELAY = re.compile(r"has not yet been delivered to one or more of its\s+recipients", re.IGNORECASE)
_POSTFIX = re.compile(r"This is the mail system at host", re.IGNORECASE)
_POSTFIX_DELAY = re.compile(r"THIS IS A WARNING ONLY", re.IGNORECASE)
_COPY_BELOW = re.compile(r"^(--- Below this line is a copy of the message|------ This is a copy of the message|"
                         r"--- The header of the original message)", re.MULTILINE | re.IGNORECASE)


def _notice_text(message: Message) -> str:
    """The human-readable notice, without the returned copy of the message."""
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            text = _text(part)
            cut = _COPY_BELOW.search(text)
            return text[: cut.start()] if cut else text
    return ""


def _plain_bounce(message: Message, event) -> Classified:
    sender = parseaddr(_h(message, "From"))[1].lower()
    # A notice comes from the mail system: a daemon's From, or the null reverse path.
    from_daemon = sender.split("@")[0] in ("mailer-daemon", "postmaster", "mail-delivery-system") or \
        _h(message, "Return-Path").strip() == "<>"
    text = _notice_text(message)
    if not text or not from_daemon:
        return Classified("")
    if _POSTFIX_DELAY.search(text) or _EXIM_DELAY.search(text):
        return Classified("delay")
    events = []
    if _QMAIL.search(text):
        # <user@example.org>:\n<diagnostic lines>\n\n
        for m in re.finditer(r"^<([^<>\s]+@[^<>\s]+)>:\s*\n(.*?)(?:\n\s*\n|\Z)", text, re.MULTILINE | re.DOTALL):
            recipient, detail = m.group(1), _one_line(m.group(2))
            qcode = re.search(r"\(#(\d\.\d\.\d)\)", detail)
            status = qcode.group(1) if qcode else _status_of("", detail)
            kind = kind_of(status, detail) or (SOFT if "permanent" not in text.lower() else HARD)
            events.append(event(kind, recipient, status, detail))
    elif _EXIM.search(text):
        failed = [a for _n, a in getaddresses([str(v) for v in message.get_all("X-Failed-Recipients") or []])]
        blocks = re.split(r"\n\s*\n", text)
        for block in blocks:
            lines = [line for line in block.split("\n") if line.strip()]
            if not lines:
                continue
            first = lines[0].strip()
            if re.fullmatch(r"<?[^\s<>]+@[^\s<>]+>?", first):
                recipient = first.strip("<>")
                detail = _one_line(" ".join(lines[1:]))
                kind = kind_of("", detail) or (HARD if "permanent error" in text.lower() and _NO_MAILBOX.search(detail) else SOFT)
                events.append(event(kind, recipient, _status_of("", detail), detail))
                if recipient.lower() in (f.lower() for f in failed):
                    failed = [f for f in failed if f.lower() != recipient.lower()]
        for recipient in failed:
            events.append(event(SOFT, recipient, "", "Exim: delivery failed"))
    elif _POSTFIX.search(text):
        for m in re.finditer(r"^<([^<>\s]+@[^<>\s]+)>:\s*(.*?)(?:\n\s*\n|\Z)", text, re.MULTILINE | re.DOTALL):
            recipient, detail = m.group(1), _one_line(m.group(2))
            kind = kind_of("", detail) or SOFT
            events.append(event(kind, recipient, _status_of("", detail), detail))
    return Classified("dsn", events[:MAX_EVENTS_PER_REPORT]) if events else Classified("")


# --- applying events ---------------------------------------------------------------------------

@dataclass
class BounceReport:
    """What one pass over a mailbox (or one webhook) did."""

    handled: int = 0  # messages recognised (moved or deleted)
    left: list[str] = field(default_factory=list)  # "message: why it was left alone"
    hard: int = 0
    soft: int = 0
    complaints: int = 0
    ignored: int = 0  # delay warnings, auto-replies, not-spam reports
    duplicates: int = 0
    unverified: int = 0  # of `left`: reports no valid VERP token vouches for, kept for a person
    suppressed: list[str] = field(default_factory=list)  # addresses mail now stops to

    def summary(self) -> str:
        line = (f"bounces: {self.handled} messages handled: {self.hard} hard, {self.soft} soft, "
                f"{self.complaints} complaints, {self.ignored} ignored")
        if self.duplicates:
            line += f", {self.duplicates} already recorded"
        line += f"; {len(self.suppressed)} addresses suppressed"
        if self.left and not self.unverified:
            line += f"; {len(self.left)} left in the mailbox (not recognised)"
        elif self.left:
            line += (f"; {len(self.left)} left in the mailbox ({len(self.left) - self.unverified} not recognised, "
                     f"{self.unverified} not acted on: no valid VERP token, so a person must check them; "
                     f"`publisher report` lists them)")
        return line


_SEVERITY = {COMPLAINT: 0, HARD: 1, SOFT: 2}


def _record(sub, digest_id: int | None, events: list[Event], config: Config, state: State, *,
            source: str, now: datetime, report: BounceReport) -> None:
    """Record events about one subscriber, in one transaction."""
    bounces = [Bounce(e.kind, e.status, e.detail, source, f"{source}|{e.key}"[:200] if e.key else None,
                      digest_id if digest_id is not None else e.digest_id) for e in events]
    outcomes = state.record_bounces(sub.id, bounces, soft_limit=config.newsletter.soft_bounce_limit, now=now)
    for event, outcome in zip(events, outcomes):
        if not outcome.recorded:
            report.duplicates += 1
            continue
        if event.kind == HARD:
            report.hard += 1
        elif event.kind == SOFT:
            report.soft += 1
        else:
            report.complaints += 1
        if outcome.suppressed:
            report.suppressed.append(sub.email)
            log.info("%s suppressed: %s %s %s", sub.email, event.kind, event.status, event.detail)


def apply_events(events: list[Event], config: Config, state: State, *, source: str,
                 now: datetime, report: BounceReport) -> int:
    """Record the events of a signed webhook, each against the subscriber whose address it
    names (the signature vouches for it); returns how many matched a subscriber. Events are
    grouped per subscriber: one transaction each, however many events name them."""
    subs: dict[str, Subscriber | None] = {}
    grouped: dict[int, tuple[Subscriber, list[Event]]] = {}
    matched = 0
    for event in events:
        if event.recipient not in subs:
            subs[event.recipient] = state.subscriber_by_email(event.recipient) if event.recipient else None
        sub = subs[event.recipient]
        if sub is None:
            log.info("%s report for %s matches no subscriber", event.kind, event.recipient or "(no address)")
            continue
        matched += 1
        grouped.setdefault(sub.id, (sub, []))[1].append(event)
    for sub, found in grouped.values():
        _record(sub, None, found, config, state, source=source, now=now, report=report)
    return matched


def signed_subscriber(token: str, config: Config, state: State):
    """(subscriber, digest id, "") for a valid VERP token, else (None, None, why not)."""
    if not config.newsletter.bounce_address:
        return None, None, "no VERP token: VERP is off (newsletter.bounce_address is not set)"
    if not token:
        return None, None, "no VERP token: it did not come back to a bounces+TOKEN address"
    parsed = parse_verp_token(state.bounce_secret(), token)
    if parsed is None:
        return None, None, f"the VERP token {token[:40]!r} is not valid (forged, or from another list)"
    digest_id, subscriber_id = parsed
    sub = state.subscriber_by_id(subscriber_id)
    if sub is None:
        return None, None, f"the VERP token names subscriber #{subscriber_id}, no longer on the list"
    return sub, digest_id, ""


def _one_event(events: list[Event], sub) -> Event:
    """The event a message counts as for the token's subscriber: one naming their address if
    any, the most severe first; a report naming someone else (a forwarding address) is about
    their copy all the same, and says so in its detail."""
    address = sub.email.lower()
    event = min(events, key=lambda e: (e.recipient != address, _SEVERITY.get(e.kind, 3)))
    if event.recipient and event.recipient != address:
        event = replace(event, detail=_one_line(f"{event.detail} (the report names {event.recipient})"))
    return event


def _keep_for_a_person(found: Classified, why: str, state: State, *, now: datetime,
                       report: BounceReport, label: str) -> bool:
    """Record a report no valid token vouches for; False if it names nobody on the list."""
    named = list(dict.fromkeys(e.recipient for e in found.events if e.recipient))
    listed = [a for a in named[:3] if state.subscriber_by_email(a) is not None]
    token = found.events[0].unsubscribe_token
    by_token = state.subscriber_by_token(token) if token else None
    if not listed and by_token is None:
        report.left.append(f"{label}: {found.what} for {', '.join(named[:3]) or '(no address)'}: "
                           "matches no subscriber")
        return False
    kind = min((e.kind for e in found.events), key=lambda k: _SEVERITY.get(k, 3))
    names = ", ".join(f"{a}{' (on the list)' if a in listed else ''}" for a in named[:3])
    if len(found.events) >= MAX_EVENTS_PER_REPORT:
        names += f" and more (only the first {MAX_EVENTS_PER_REPORT} are read)"
    elif len(named) > 3:
        names += f" and {len(named) - 3} more"
    text = f"{'complaint' if kind == COMPLAINT else kind + ' bounce'} for {names or '(no address)'}"
    if by_token is not None:
        text += f"; its returned copy's unsubscribe link names {by_token.email}"
    text += f"; not acted on: {why}"
    message_key = found.events[0].key.rsplit("|", 1)[0]  # (an event's key is MESSAGE|RECIPIENT)
    state.record_unverified_report(f"mailbox|{message_key}", text, now=now)
    report.unverified += 1
    report.left.append(f"{label}: {text}")
    log.info("bounce mailbox: %s", text)  # (`publisher bounces` lists report.left)
    return True


def process_message(data: bytes, config: Config, state: State, *, now: datetime,
                    report: BounceReport, label: str) -> bool:
    """Classify and record one message; True when it was recognised and acted on (so it may
    be moved or deleted), False when it must be left where it is."""
    try:
        found = classify(data, config)
    except Exception as e:  # a malformed message is left alone, never a crash of the run
        log.debug("%s: cannot be read as a report", label, exc_info=True)
        report.left.append(f"{label}: unreadable ({type(e).__name__}: {e})")
        return False
    if not found.what:
        report.left.append(f"{label}: not a bounce, complaint or auto-reply")
        return False
    if not found.events:
        report.ignored += 1
        report.handled += 1
        return True
    sub, digest_id, why = signed_subscriber(found.events[0].verp, config, state)
    if sub is None:
        _keep_for_a_person(found, why, state, now=now, report=report, label=label)
        return False
    _record(sub, digest_id, [_one_event(found.events, sub)], config, state, source="mailbox", now=now,
            report=report)
    report.handled += 1
    return True


def process_mailbox(config: Config, state: State, *, now: datetime) -> BounceReport:
    """`publisher bounces`: read `newsletter.bounce_mailbox`, record what it reports, move or
    delete the messages it recognised."""
    # lazy: bounce_mailbox.py (mailbox, ssl: ~15 ms), only with a bounce mailbox
    from .bounce_mailbox import open_mailbox

    report = BounceReport()
    with open_mailbox(config) as box:
        for handle, data in box.messages():
            if process_message(data, config, state, now=now, report=report, label=box.label(handle)):
                box.done(handle)
    return report


# --- what commands show ----------------------------------------------------------------------

UNVERIFIED_SHOWN = 20  # `publisher report` lists the newest reports kept for a person
COMPLAINT_WARN_RATE = 0.001  # 0.1%: Gmail and Yahoo want complaints well under 0.3%
BOUNCE_WARN_RATE = 0.02  # 2%: the common threshold of mail providers and sending services


def rates_lines(state: State, last: int = 5) -> tuple[list[str], list[str]]:
    """`publisher report`: (lines, warnings) with the bounce and complaint rates of the
    last digests. Bounces include SMTP rejections at sending time and later reports."""
    lines, warnings = [], []
    for digest_id, subject, created_at, accepted, mailed, bounced, complaints in state.digest_bounce_rates(last):
        # Counted as `send` counts: sent = accepted by the server; the bounce rate is of every
        # message mailed (refused at sending, or accepted and reported later).
        bounce_rate = bounced / mailed if mailed else 0.0
        complaint_rate = complaints / accepted if accepted else 0.0
        lines.append(f"#{digest_id} {created_at:%Y-%m-%d %H:%M} {subject!r}: {accepted} sent, "
                     f"{bounced} bounced ({bounce_rate:.2%}), {complaints} complaints ({complaint_rate:.2%})")
        if bounce_rate > BOUNCE_WARN_RATE:
            warnings.append(f"digest #{digest_id}: bounce rate {bounce_rate:.2%} is over 2% (mail providers "
                            "start filtering senders with more; clean the list: `publisher subscribers list "
                            "--status bounced`)")
        if complaint_rate > COMPLAINT_WARN_RATE:
            warnings.append(f"digest #{digest_id}: complaint rate {complaint_rate:.2%} is over 0.1% "
                            "(Gmail and Yahoo start filtering senders near 0.3%)")
    if not lines:
        lines.append("no digests sent yet")
    pending = state.get_meta("sns_subscribe_url")  # recorded by the SES webhook, never visited
    if pending:
        topic, _, url = pending.partition(" ")
        warnings.append(f"Amazon SNS asks to confirm the subscription to {topic}: open {url} "
                        "if you created it (publisher never opens it)")
    kept = state.unverified_reports()
    for when, text in kept[:UNVERIFIED_SHOWN]:
        warnings.append(f"bounce report of {when:%Y-%m-%d %H:%M}Z needs a person: {text}. If it is genuine, "
                        "`publisher subscribers remove ADDRESS`; it stays in the bounce mailbox until you delete it")
    if len(kept) > UNVERIFIED_SHOWN:
        warnings.append(f"and {len(kept) - UNVERIFIED_SHOWN} older bounce reports that need a person")
    return lines, warnings


def check_lines(config: Config) -> list[str]:
    """What `publisher check` says about bounce handling: VERP needs the mail system to
    deliver every bounces+TOKEN address to one mailbox."""
    n = config.newsletter
    lines = []
    if n.bounce_address:
        before, after = n.bounce_address.split("{token}", 1)
        domain = after.split("@", 1)[1]
        local = before + "TOKEN" + after.split("@", 1)[0]
        lines.append(
            f"VERP on: each copy's envelope sender is {local}@{domain}. {domain} needs an MX "
            f"record (and an SPF record naming your relay: it is now the envelope domain), and "
            f"its mail server must deliver every such address to the bounce mailbox "
            f"(Postfix: recipient_delimiter = + and an alias or mailbox for "
            f"{before.rstrip('+-') or 'bounces'}@{domain}; Exim: a local_part_suffix router)")
    if n.bounce_mailbox:
        lines.append(f"bounces are read from {_redacted(n.bounce_mailbox)} by `publisher bounces` "
                     f"and at the start of `publisher run`; recognised ones are "
                     f"{'moved to ' + n.bounce_folder if n.bounce_processed == 'move' else 'deleted'}")
        if not n.bounce_address:
            lines.append("VERP is off (newsletter.bounce_address is not set): a report in the bounce mailbox "
                         "carries no signed token, so it suppresses nobody (anyone can mail that address); "
                         "each one is recorded for a person (`publisher report` lists it) and left in the "
                         "mailbox. Set newsletter.bounce_address to have bounces acted on")
    elif n.bounce_address:
        lines.append("newsletter.bounce_mailbox is not set: bounces to the VERP address are not read "
                     "(unless a provider's webhook reports them to `publisher serve`)")
    return lines


def _redacted(spec: str) -> str:
    return re.sub(r"//[^@/]*@", "//USER@", spec) if spec.startswith("imap") else spec


def suppression_lines(state: State, subscribers: list) -> dict[int, str]:
    """{subscriber id: "why<TAB>when"} for the suppressed ones among `subscribers`."""
    reasons = state.suppression_reasons(s.id for s in subscribers if s.status in ("bounced", "unsubscribed"))
    return {sid: f"{why}\t{when:%Y-%m-%d %H:%M}Z" for sid, (why, when) in reasons.items()}
