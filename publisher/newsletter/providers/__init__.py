"""Provider webhooks in `publisher serve`: bounces and complaints reported by the relay.
One module per provider holds its signature check and its parser; PROVIDERS is the table
the routes look a provider up in.

    POST /webhooks/postmark   postmark.py: HTTP basic auth
    POST /webhooks/mailgun    mailgun.py: HMAC-SHA256 signing key, one use per token
    POST /webhooks/ses        ses.py: Amazon SES through SNS, signature against a local certificate,
                              within an hour of its Timestamp, one use per MessageId
    POST /webhooks/sendgrid   sendgrid.py: ECDSA signed event webhook, else basic auth

A webhook whose credentials are not configured answers 404, as if it did not exist. A body is
at most WEBHOOK_MAX_BYTES of JSON nested at most JSON_MAX_DEPTH deep (checked before parsing),
and a request at most WEBHOOK_MAX_EVENTS events; a refusal is JSON {"error": why}. The events
go through bounces.apply_events: signed, they suppress the address they name.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Any, Callable

from ..bounces import BounceReport, Event, apply_events
from . import mailgun, postmark, sendgrid, ses
from .common import WEBHOOK_MAX_AGE, WEBHOOK_MAX_BYTES, WEBHOOK_MAX_EVENTS, Answer, Refused

log = logging.getLogger(__name__)

__all__ = ["PROVIDERS", "Provider", "Refused", "WEBHOOK_MAX_AGE", "WEBHOOK_MAX_BYTES", "receive",
           "webhooks_blueprint"]


@dataclass(frozen=True)
class Provider:
    # (endpoint, request) -> the payload of a request whose signature holds (or an Answer);
    # raises Refused otherwise
    check: Callable[[Any, Any], Any]
    events: Callable[[Any], list[Event]]  # payload -> events; Refused(400) for a wrong shape


PROVIDERS: dict[str, Provider] = {
    "postmark": Provider(postmark.check, postmark.events),
    "mailgun": Provider(mailgun.check, mailgun.events),
    "ses": Provider(ses.check, ses.events),
    "sendgrid": Provider(sendgrid.check, sendgrid.events),
}


def receive(endpoint, name: str):
    """POST /webhooks/NAME: check the request's signature, record its events."""
    # lazy: Flask and werkzeug (~0.1 s); web.py has them loaded when it registers this route
    from flask import jsonify, request
    from werkzeug.exceptions import RequestEntityTooLarge

    provider = PROVIDERS[name]
    try:
        try:
            payload = provider.check(endpoint, request)
        except RequestEntityTooLarge:
            raise Refused(413, f"the body is over {WEBHOOK_MAX_BYTES // 1024} KB") from None
        if isinstance(payload, Answer):
            return jsonify(**payload)
        events = provider.events(payload)
        if len(events) > WEBHOOK_MAX_EVENTS:
            raise Refused(413, f"{len(events)} events in one request: at most {WEBHOOK_MAX_EVENTS}")
    except Refused as e:
        log.warning("webhook %s refused: %s", request.path, e)
        return jsonify(error=str(e)), e.status
    report = BounceReport()
    apply_events(events, endpoint.config, endpoint.state(), source=name, now=endpoint.clock(), report=report)
    for address in report.suppressed:
        log.warning("%s webhook: %s suppressed", name, address)
    return jsonify(recorded=report.hard + report.soft + report.complaints,
                   duplicates=report.duplicates, suppressed=len(report.suppressed))


def _allow_batches():
    # lazy: as above
    from flask import request

    request.max_content_length = WEBHOOK_MAX_BYTES  # the forms' 16 KB limit is for forms


def webhooks_blueprint(endpoint):
    """The webhook routes, sharing web.py's Endpoint (config, state, clock)."""
    # lazy: as above
    from flask import Blueprint

    bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")
    bp.before_request(_allow_batches)
    for name in PROVIDERS:
        bp.add_url_rule(f"/{name}", endpoint=name, view_func=functools.partial(receive, endpoint, name),
                        methods=["POST"])
    return bp
