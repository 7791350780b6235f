"""Email-service tracking events (django-anymail's ``tracking`` signal) as ledger facts.

Anymail authenticates the webhook (basic auth, plus the ESP's signature where it has one) and
normalises the payload; this receiver maps the few events that are facts of RULES.md:

=================  =====================================================================
anymail event      ledger fact
=================  =====================================================================
``bounced``        ``bounce`` on email, ``hard`` unless the ESP's own payload says soft
``complained``     ``complaint`` on email
``unsubscribed``   ``opt_out`` of ``*`` on email, method ``unsubscribe_link``
``clicked``        ``interaction`` click (person-initiated: extends retention)
``opened``         ``interaction`` open (does not)
=================  =====================================================================

Everything else is ignored, ``deferred`` included: anymail documents it as a delay the ESP keeps
retrying, followed by ``bounced`` if it gives up, so it is not a delivery failure yet.

The receiver only stores each event in the inbox (``TrackingInbox``) and the ESP gets its 200;
``preferences.tracking.drain`` moves the inbox into the ledger in batches. ESPs retry webhooks, so
each fact carries the ESP's event reference in ``Event.proof`` and an event already in the
contact's ledger with the same type, actor and reference is not recorded again. Nothing here
answers the ESP with a 500 for a bad event: unknown recipients and invalid facts are logged and
dropped by the drain. Database errors still propagate, so that the ESP retries later. Opens are
counted per message and day, not written per person, unless ``TRACKING_OPENS_PER_PERSON``.
"""

from __future__ import annotations

import errno
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from functools import wraps
from typing import Any

from anymail.signals import AnymailTrackingEvent
from django.conf import settings
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import URLPattern
from django.utils import timezone

from consents import clock, services
from consents.models import Contact, Event
from consents.vocab import EventType, InteractionKind
from preferences import tracking

logger = logging.getLogger(__name__)


def _first(raw: Any) -> Any:
    # SparkPost wraps each event as {"msys": {"<class>_event": {...}}}.
    return next(iter(raw["msys"].values()))


# Anymail reports soft bounces as "bounced" too for these ESPs; their raw payload tells which
# bounces are permanent. An ESP missing here only reports permanent failures as "bounced" (its
# temporary ones become "deferred": Mailgun, Mailtrap, Postal, Unisender Go).
_HARD_BOUNCE: dict[str, Callable[[Any], bool]] = {
    "Postmark": lambda raw: "HardBounce" in (raw.get("Type"), raw.get("SuppressionReason")),
    "Brevo": lambda raw: raw.get("event") in ("hard_bounce", "invalid_email"),
    "SendinBlue": lambda raw: raw.get("event") in ("hard_bounce", "invalid_email"),
    "Mandrill": lambda raw: raw.get("event") == "hard_bounce",
    "MailerSend": lambda raw: raw["data"]["type"] == "hard_bounced",
    "Amazon SES": lambda raw: raw["bounce"]["bounceType"] == "Permanent",
    "Resend": lambda raw: raw["data"]["bounce"]["type"] == "Permanent",
    # "bounce" is a hard bounce, "blocked" a block by the receiving server.
    "SendGrid": lambda raw: raw.get("type", "bounce") == "bounce",
    "Mailjet": lambda raw: bool(raw.get("hard_bounce")),
    # SparkPost's hard bounce classes: 10 invalid recipient, 30 no RCPT (90 is an unsubscribe).
    "SparkPost": lambda raw: str(_first(raw).get("bounce_class")) in ("10", "30"),
}


def bounce_is_hard(esp_name: str, event: AnymailTrackingEvent) -> bool:
    test = _HARD_BOUNCE.get(esp_name)
    if test is None:
        return True
    try:
        return test(event.esp_event)
    except (KeyError, TypeError, AttributeError, StopIteration):
        return False  # not shown to be permanent


def _is_persons_unsubscribe(esp_name: str, event: AnymailTrackingEvent) -> bool:
    """Postmark also reports suppressions added by the account or by its staff."""
    if esp_name == "Postmark":
        try:
            return event.esp_event.get("Origin", "Recipient") == "Recipient"
        except AttributeError:
            return True
    return True


def occurred_at(event: AnymailTrackingEvent) -> datetime:
    """The ESP's instant; now when it has none or dates it beyond the allowed clock skew."""
    now = clock.now()
    at = event.timestamp
    if not isinstance(at, datetime):
        return now
    if timezone.is_naive(at):
        at = at.replace(tzinfo=UTC)
    if at > now + settings.LEDGER_MAX_CLOCK_SKEW:
        return now
    return at


def reference(event: AnymailTrackingEvent) -> str:
    """The ESP's reference for this event, the same on every redelivery."""
    parts = []
    if event.event_id:
        parts.append(f"event:{event.event_id}")
    if event.message_id:
        parts.append(f"message:{event.message_id}")
    if not event.event_id and isinstance(event.timestamp, datetime):
        # Without an event id (Postmark opens and clicks, Mailjet), the message and the ESP's
        # instant identify the event.
        parts.append(f"at:{event.timestamp.isoformat()}")
    # NUL is no character of a reference, and PostgreSQL refuses it in text.
    return " ".join(parts).replace("\x00", "")[: Event._meta.get_field("proof").max_length]


def find_contact(recipient: str | None) -> Contact | None:
    if not recipient:
        return None
    contact = services.contact_find(email=recipient)
    if contact is not None:
        return contact
    # Some ESPs lower-case the whole address; normalize_email keeps the local part's case.
    try:
        email = services.normalize_email(recipient)
    except ValidationError:
        return None
    matches = list(Contact.objects.filter(email__iexact=email)[:2])
    return matches[0] if len(matches) == 1 else None


FACTS = {
    "bounced": EventType.BOUNCE,
    "complained": EventType.COMPLAINT,
    "unsubscribed": EventType.OPT_OUT,
    "clicked": EventType.INTERACTION,
    "opened": EventType.INTERACTION,
}
INTERACTION_KINDS = {"clicked": InteractionKind.CLICK, "opened": InteractionKind.OPEN}


# What a payload that is not an event makes anymail's parsing (or the receiver) raise: JSON that
# does not parse, a list where an object was expected, a missing key, an instant out of range.
UNREADABLE_PAYLOAD = (ValueError, TypeError, LookupError, AttributeError, ArithmeticError)


def bad_payloads_answered(patterns: list[URLPattern]) -> list[URLPattern]:
    """Anymail's webhook URLs, each answering 400 to a payload it cannot read, rather than a 500
    the ESP would retry forever. Database errors still answer 500: the ESP retries later."""
    return [
        URLPattern(p.pattern, _answer_bad_payloads(p.callback), p.default_args, p.name)
        for p in patterns
    ]


def _answer_bad_payloads(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    @wraps(view)  # keeps csrf_exempt: the ESP posts without a token
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except OSError as exc:
            # An instant the platform cannot represent (datetime.fromtimestamp), not an outage.
            if exc.errno != errno.EOVERFLOW:
                raise
            return _unreadable(request, exc)
        except UNREADABLE_PAYLOAD as exc:
            return _unreadable(request, exc)

    return wrapped


def _unreadable(request: HttpRequest, exc: Exception) -> HttpResponse:
    logger.warning(
        "webhook %s: a payload that is not an event we can read, refused (%s: %s)",
        request.path,
        type(exc).__name__,
        str(exc)[:200],
    )
    return JsonResponse({"error": "This payload is not an event we can read."}, status=400)


def tracking_received(
    sender: Any, event: AnymailTrackingEvent, esp_name: str, **kwargs: Any
) -> None:
    """Receiver of ``anymail.signals.tracking``, connected in ``PreferencesConfig.ready``."""
    fact = FACTS.get(event.event_type)
    if fact is None:
        return
    if fact == EventType.OPT_OUT and not _is_persons_unsubscribe(esp_name, event):
        logger.info("%s suppression not made by the recipient: not an opt-out", esp_name)
        return
    tracking.received(
        esp=esp_name,
        event_type=event.event_type,
        fact=fact,
        recipient=event.recipient or "",
        reference=reference(event),
        occurred_at=occurred_at(event),
        hard=fact == EventType.BOUNCE and bounce_is_hard(esp_name, event),
        message=message_of(event),
        raw=_json_or_none(event.esp_event),
    )


def message_of(event: AnymailTrackingEvent) -> str:
    """What opens are counted by: the message's ``message`` metadata, else its first tag."""
    metadata = event.metadata if isinstance(event.metadata, dict) else {}
    message = metadata.get("message") or (event.tags[0] if event.tags else "")
    return str(message)[:200]


def _json_or_none(value: Any) -> Any:
    """The service's payload as JSON (what it is, for every service anymail reads as JSON)."""
    try:
        # PostgreSQL refuses NUL in text, JSON included.
        return json.loads(json.dumps(value, default=str).replace("\\u0000", ""))
    except (TypeError, ValueError):
        return None
