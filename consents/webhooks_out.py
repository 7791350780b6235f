"""Events out: signed webhooks that tell other systems (an email tool, a CRM) what changed.

Signed exactly as Standard Webhooks v1 says: ``webhook-id`` (the message, the same on every
retry), ``webhook-timestamp`` (the attempt, in Unix seconds) and ``webhook-signature``
(``v1,<base64 HMAC-SHA256 of "id.timestamp.body">``, one per secret while a rotation overlaps).

Delivered like the emails of ``consents.outbox``: a ``WebhookDelivery`` row per endpoint is
written in the transaction of the ledger event it tells (a rolled-back write sends nothing), handed
to Celery on commit, and swept again when due (a committed one is sent even if the broker was
down then). A failed attempt is retried with exponential backoff for about three days, then the
endpoint is marked failing and the administrators are told.

Payloads are thin: what happened, to which contact (its public id), at which position of the
contact's ledger (``sequence``, with ``previous_sequence``: the sequence of the previous message
this endpoint was sent about the contact, so that a receiver sees a gap), on which topic and
channel, by which method, when. An email address only where the receiver needs it to act (to
stop sending to it, to add it), never after erasure: it lives in its own column, wiped with the
contact.

Endpoints are refused when their URL resolves to loopback, private, link-local or metadata
addresses, when saved and again at each send, and the request goes to the address that was
checked (no second lookup an attacker's DNS could answer differently).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import http.client
import ipaddress
import json
import logging
import random
import secrets
import socket
import ssl
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from consents import clock, ledger
from consents.models import Contact, Event, Notice, WebhookDelivery, WebhookEndpoint
from consents.vocab import ANY, METHODS_NEEDING_PROOF, Channel, Doi, EventType, Method

logger = logging.getLogger(__name__)


class Kind:
    """The event types of the webhooks, as receivers subscribe to them."""

    CONSENT_GRANTED = "consent.granted"
    CONSENT_WITHDRAWN = "consent.withdrawn"
    CONSENT_PENDING = "consent.pending"
    DOI_CONFIRMED = "doi.confirmed"
    CONTACT_PAUSED = "contact.paused"
    CONTACT_RESUMED = "contact.resumed"
    CONTACT_SUPPRESSED = "contact.suppressed"
    CONTACT_ERASED = "contact.erased"
    ADDRESS_UNDELIVERABLE = "address.undeliverable"
    PURCHASE_RECORDED = "purchase.recorded"
    NOTICE_PUBLISHED = "notice.published"


EVENT_TYPES: tuple[str, ...] = (
    Kind.CONSENT_GRANTED,
    Kind.CONSENT_WITHDRAWN,
    Kind.CONSENT_PENDING,
    Kind.DOI_CONFIRMED,
    Kind.CONTACT_PAUSED,
    Kind.CONTACT_RESUMED,
    Kind.CONTACT_SUPPRESSED,
    Kind.CONTACT_ERASED,
    Kind.ADDRESS_UNDELIVERABLE,
    Kind.PURCHASE_RECORDED,
    Kind.NOTICE_PUBLISHED,
)
# The types whose receivers need the address to act on it (add it to a list, stop sending to
# it), when they are about email.
WITH_EMAIL = frozenset(
    {
        Kind.CONSENT_GRANTED,
        Kind.CONSENT_WITHDRAWN,
        Kind.DOI_CONFIRMED,
        Kind.CONTACT_SUPPRESSED,
        Kind.ADDRESS_UNDELIVERABLE,
    }
)
SECRET_PREFIX = "whsec_"
USER_AGENT = "Assent-Webhooks/1"
# What is read of a receiver's answer: only its status matters.
MAX_RESPONSE_BYTES = 64 * 1024


# --- Secrets and signatures -----------------------------------------------------------------------


def secret_new() -> str:
    """``whsec_`` and 32 random bytes in base64, as Standard Webhooks libraries expect."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def _secret_bytes(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256>`` of ``"{id}.{timestamp}.{body}"`` (Standard Webhooks v1)."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(_secret_bytes(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signing_secrets(endpoint: WebhookEndpoint, now: datetime) -> list[str]:
    """The current secret, and the previous one while the rotation's overlap lasts."""
    found = [endpoint.secret]
    until = endpoint.previous_secret_until
    if endpoint.previous_secret and until is not None and now < until:
        found.append(endpoint.previous_secret)
    return found


def body_bytes(delivery: WebhookDelivery) -> bytes:
    """The request body: the stored payload, with the address where the type carries one.
    Keys sorted and no spaces: every retry sends the same bytes."""
    payload = json.loads(json.dumps(delivery.payload))
    if delivery.email:
        payload.setdefault("data", {})["email"] = delivery.email
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def headers_for(delivery: WebhookDelivery, body: bytes, *, timestamp: int) -> dict[str, str]:
    now = clock.now()
    signatures = " ".join(
        sign(secret, delivery.message_id, timestamp, body)
        for secret in signing_secrets(delivery.endpoint, now)
    )
    return {
        "webhook-id": delivery.message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signatures,
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
    }


# --- Where requests may go ------------------------------------------------------------------------


class UnsafeAddress(ValidationError):
    """The URL is not one Assent sends to (scheme, or an address inside this network)."""


def _address_allowed(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    # ``is_global`` is False for loopback, private (RFC 1918, fc00::/7), link-local (and so the
    # cloud metadata address 169.254.169.254), shared (100.64/10), reserved and unspecified.
    return address.is_global and not address.is_multicast


def check_url(url: str) -> None:
    """Refuse a URL Assent must not send to; raises ``UnsafeAddress`` naming the ``url`` field."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    allowed = ("https",) if settings.WEBHOOK_REQUIRE_HTTPS else ("https", "http")
    if scheme not in allowed:
        raise UnsafeAddress({"url": "The endpoint must be an https:// URL."})
    if not parts.hostname or parts.username or parts.password:
        raise UnsafeAddress({"url": "Give a URL with a host name and no credentials in it."})
    resolve(url)


def resolve(url: str) -> str:
    """The address to connect to: every address the host resolves to must be allowed (a name
    with one public and one private address is refused), and the first is used."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    except ValueError as exc:
        raise UnsafeAddress({"url": "The port is not a number."}) from exc
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeAddress({"url": f"The host {host!r} does not resolve."}) from exc
    addresses = [ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos]
    if not addresses:
        raise UnsafeAddress({"url": f"The host {host!r} does not resolve."})
    if not settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES:
        for address in addresses:
            if not _address_allowed(address):
                raise UnsafeAddress(
                    {
                        "url": "This URL leads to a loopback, private, link-local or metadata "
                        f"address ({address}): Assent does not send there."
                    }
                )
    return str(addresses[0])


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to the address that was checked, whatever the name resolves to now."""

    def __init__(self, host: str, port: int, *, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, *, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        # The certificate is checked against the URL's host name, not the address.
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


@dataclass
class Answer:
    status: int
    retry_after: str | None


def post(url: str, body: bytes, headers: dict[str, str]) -> Answer:
    """One POST, no redirect followed, within ``WEBHOOK_TIMEOUT`` for each step."""
    address = resolve(url)
    parts = urlsplit(url)
    https = parts.scheme.lower() == "https"
    port = parts.port or (443 if https else 80)
    cls = _PinnedHTTPSConnection if https else _PinnedHTTPConnection
    connection = cls(parts.hostname or "", port, address=address, timeout=settings.WEBHOOK_TIMEOUT)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        connection.request("POST", target, body=body, headers=headers)
        response = connection.getresponse()
        response.read(MAX_RESPONSE_BYTES)
        return Answer(response.status, response.getheader("Retry-After"))
    finally:
        connection.close()


# --- Writing deliveries with the facts they tell --------------------------------------------------


# Imports record history without telling anyone, unless asked to (``imports``' ``webhooks``).
_muted: ContextVar[bool] = ContextVar("assent_webhooks_muted", default=False)


@contextlib.contextmanager
def muted() -> Iterator[None]:
    """Facts recorded inside are not sent to the endpoints."""
    token = _muted.set(True)
    try:
        yield
    finally:
        _muted.reset(token)


def kind_of(event: Event) -> str | None:
    """The webhook type of a ledger event, or None for events other systems are not told of."""
    data = event.data or {}
    if event.type == EventType.OPT_IN:
        if data.get("doi") == Doi.PENDING:
            return Kind.CONSENT_PENDING
        unproven = event.method in METHODS_NEEDING_PROOF and not event.proof
        if data.get("prechecked") or data.get("bundled") or unproven:
            return None  # not consent (RULES.md): nothing to tell
        return Kind.CONSENT_GRANTED
    if event.type == EventType.DOI_CONFIRMED:
        return Kind.DOI_CONFIRMED
    if event.type == EventType.OPT_OUT:
        if event.method == Method.SUPPRESSION:
            return Kind.CONTACT_SUPPRESSED
        return Kind.CONSENT_WITHDRAWN
    if event.type == EventType.COMPLAINT:
        return Kind.CONSENT_WITHDRAWN
    if event.type == EventType.PAUSE:
        return Kind.CONTACT_RESUMED if data.get("resume") else Kind.CONTACT_PAUSED
    if event.type == EventType.BOUNCE and event.channel == Channel.EMAIL and data.get("hard"):
        return Kind.ADDRESS_UNDELIVERABLE
    if event.type == EventType.PURCHASE:
        return Kind.PURCHASE_RECORDED
    return None


def _endpoints_for(kind: str) -> list[WebhookEndpoint]:
    return [
        endpoint
        for endpoint in WebhookEndpoint.objects.filter(active=True)
        if not endpoint.event_types or kind in endpoint.event_types
    ]


def _event_data(event: Event, contact_public_id: str) -> dict[str, Any]:
    data: dict[str, Any] = {
        "event_id": f"evt_{event.pk}",
        "contact": contact_public_id,
        "sequence": event.seq,
        "topic": event.topic or None,
        "channel": event.channel or None,
        "method": event.method or None,
        "occurred_at": ledger.iso(event.occurred_at),
    }
    if event.type == EventType.COMPLAINT:
        data["topic"], data["complaint"] = ANY, True
    if event.type == EventType.PAUSE:
        data["until"] = (event.data or {}).get("until")
    if event.type == EventType.PURCHASE:
        data["category"] = (event.data or {}).get("category")
        data["product"] = (event.data or {}).get("product") or None
    return data


def _email_for(kind: str, event: Event, contact: Contact) -> str:
    if kind not in WITH_EMAIL or not contact.email:
        return ""
    # An address only for facts about email (or every channel): an SMS opt-out needs none.
    if event.channel not in (Channel.EMAIL, ANY, ""):
        return ""
    return contact.email


def event_recorded(*, event: Event, contact: Contact) -> list[WebhookDelivery]:
    """One delivery per interested endpoint, in the caller's transaction (``services._append``
    calls this for every event it appends); each is queued once the transaction commits."""
    kind = kind_of(event)
    if kind is None or _muted.get():
        return []
    endpoints = _endpoints_for(kind)
    if not endpoints:
        return []
    data = _event_data(event, contact.public_id)
    return _write(
        kind,
        endpoints,
        data,
        contact=contact,
        sequence=event.seq,
        email=_email_for(kind, event, contact),
        timestamp=event.occurred_at,
    )


def events_recorded(events: Iterable[tuple[Event, Contact]]) -> int:
    """``event_recorded`` for many events at once (an import that replays its webhooks)."""
    count = 0
    endpoints = list(WebhookEndpoint.objects.filter(active=True))
    if not endpoints:
        return 0
    rows: list[WebhookDelivery] = []
    now = clock.now()
    for event, contact in events:
        kind = kind_of(event)
        if kind is None:
            continue
        wanted = [e for e in endpoints if not e.event_types or kind in e.event_types]
        for endpoint in wanted:
            rows.append(
                _row(
                    endpoint,
                    kind,
                    _event_data(event, contact.public_id),
                    contact=contact,
                    sequence=event.seq,
                    email=_email_for(kind, event, contact),
                    timestamp=event.occurred_at,
                    now=now,
                )
            )
    if rows:
        _previous_sequences(rows)
        created = WebhookDelivery.objects.bulk_create(rows, batch_size=1000)
        count = len(created)
        ids = [row.pk for row in created]
        transaction.on_commit(lambda: queue_many(ids))
    return count


def _row(
    endpoint: WebhookEndpoint,
    kind: str,
    data: dict[str, Any],
    *,
    contact: Contact | None,
    sequence: int | None,
    email: str,
    timestamp: datetime,
    now: datetime,
) -> WebhookDelivery:
    return WebhookDelivery(
        endpoint=endpoint,
        message_id=f"msg_{uuid.uuid4().hex}",
        type=kind,
        contact=contact,
        sequence=sequence,
        payload={"type": kind, "timestamp": ledger.iso(timestamp), "data": dict(data)},
        email=email,
        created_at=now,
        next_attempt_at=now,
        give_up_at=now + settings.WEBHOOK_RETRY_FOR,
    )


def _previous_sequences(rows: Sequence[WebhookDelivery]) -> None:
    """Fill ``previous_sequence``: the latest sequence this endpoint was already told of for the
    contact (rows earlier in ``rows`` included), or null for the first."""
    last: dict[tuple[int, int], int | None] = {}
    for row in rows:
        if row.contact_id is None or row.sequence is None:
            continue
        key = (row.endpoint_id, row.contact_id)
        if key not in last:
            last[key] = WebhookDelivery.objects.filter(
                endpoint_id=row.endpoint_id, contact_id=row.contact_id
            ).aggregate(m=Max("sequence"))["m"]
        row.payload["data"]["previous_sequence"] = last[key]
        last[key] = row.sequence


def _write(
    kind: str,
    endpoints: Sequence[WebhookEndpoint],
    data: dict[str, Any],
    *,
    contact: Contact | None,
    sequence: int | None,
    email: str,
    timestamp: datetime,
) -> list[WebhookDelivery]:
    now = clock.now()
    rows = [
        _row(
            endpoint,
            kind,
            data,
            contact=contact,
            sequence=sequence,
            email=email,
            timestamp=timestamp,
            now=now,
        )
        for endpoint in endpoints
    ]
    _previous_sequences(rows)
    created = WebhookDelivery.objects.bulk_create(rows)
    ids = [row.pk for row in created]
    transaction.on_commit(lambda: queue_many(ids))
    return created


def contact_erased(*, contact: Contact, erasure_id: int) -> None:
    """In the erasure's transaction: ``contact.erased`` to the endpoints that want it, and the
    address wiped from every message about the contact, sent or not."""
    WebhookDelivery.objects.filter(contact=contact).exclude(email="").update(email="")
    endpoints = _endpoints_for(Kind.CONTACT_ERASED)
    if not endpoints:
        return
    now = clock.now()
    data = {
        "event_id": f"erasure_{erasure_id}",
        "contact": contact.public_id,
        "occurred_at": ledger.iso(now),
    }
    _write(
        Kind.CONTACT_ERASED, endpoints, data, contact=None, sequence=None, email="", timestamp=now
    )


def notice_published(*, notice: Notice) -> None:
    """In the publication's transaction: ``notice.published`` (a new wording, and its hash)."""
    endpoints = _endpoints_for(Kind.NOTICE_PUBLISHED)
    if not endpoints:
        return
    at = notice.published_at or clock.now()
    data = {
        "event_id": f"notice_{notice.pk}",
        "notice": notice.pk,
        "topic": notice.topic.slug if notice.topic_id else None,
        "language": notice.language,
        "version": notice.version,
        "sha256": notice.sha256,
        "occurred_at": ledger.iso(at),
    }
    _write(
        Kind.NOTICE_PUBLISHED, endpoints, data, contact=None, sequence=None, email="", timestamp=at
    )


# --- Sending ------------------------------------------------------------------------------------


def queue_many(ids: Sequence[int]) -> None:
    for delivery_id in ids:
        if not queue_send(delivery_id):
            return  # the broker is down: the sweep sends them all


def queue_send(delivery_id: int) -> bool:
    """Hand a delivery to the broker; a broker outage never fails the request (the sweep)."""
    from consents.tasks import webhook_send

    try:
        webhook_send.apply_async(args=[delivery_id], retry=False)
    except Exception:
        logger.warning("webhook %s: could not reach the broker; the sweep will retry", delivery_id)
        return False
    return True


def send_lease() -> timedelta:
    # Longer than one attempt can take (resolve, connect, send, answer): then it is retried.
    return timedelta(seconds=4 * settings.WEBHOOK_TIMEOUT + 30)


def retry_delay(attempts: int) -> timedelta:
    """After the ``attempts``-th failure: doubling from ``WEBHOOK_RETRY_BASE``, capped, and up to
    20% later at random, so that what an outage held back does not all come back at once."""
    base = settings.WEBHOOK_RETRY_BASE.total_seconds()
    cap = settings.WEBHOOK_RETRY_MAX.total_seconds()
    seconds = min(cap, base * 2 ** min(max(attempts, 1) - 1, 30))
    return timedelta(seconds=seconds * (1 + 0.2 * random.random()))  # noqa: S311 - not a secret


def retry_after(value: str | None, now: datetime) -> timedelta | None:
    """``Retry-After``: seconds, or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return timedelta(seconds=int(value))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(when - now, timedelta(0))


@transaction.atomic
def _claim(delivery_id: int) -> WebhookDelivery | str:
    row = (
        WebhookDelivery.objects.select_for_update(of=("self",))
        .select_related("endpoint")
        .filter(pk=delivery_id)
        .first()
    )
    if row is None:
        return "missing"
    if row.status != WebhookDelivery.Status.PENDING:
        return row.status
    now = clock.now()
    if row.next_attempt_at > now:
        return row.status  # another worker holds it, or its next attempt is not due
    if not row.endpoint.active:
        row.status = WebhookDelivery.Status.CANCELLED
        row.last_error = (row.endpoint.disabled_reason or "endpoint switched off")[:500]
        row.save(update_fields=["status", "last_error"])
        return row.status
    row.attempts += 1
    row.last_attempt_at = now
    row.next_attempt_at = now + send_lease()
    row.save(update_fields=["attempts", "last_attempt_at", "next_attempt_at"])
    return row


def webhook_deliver(delivery_id: int) -> str:
    """Send one delivery if it is due; returns its status afterwards. Idempotent."""
    claimed = _claim(delivery_id)
    if isinstance(claimed, str):
        return claimed
    row = claimed
    body = body_bytes(row)
    # The attempt's own instant, from the real clock: receivers compare it with theirs.
    timestamp = int(time.time())
    started = time.monotonic()
    try:
        check_url(row.endpoint.url)  # again: the name may resolve elsewhere since it was saved
        answer = post(row.endpoint.url, body, headers_for(row, body, timestamp=timestamp))
    except UnsafeAddress as exc:
        return _failed(row, "; ".join(exc.messages), status=None, latency=None, wait=None)
    except (OSError, http.client.HTTPException) as exc:
        latency = int((time.monotonic() - started) * 1000)
        return _failed(row, f"{type(exc).__name__}: {exc}", status=None, latency=latency, wait=None)
    latency = int((time.monotonic() - started) * 1000)
    if 200 <= answer.status < 300:
        return _delivered(row, answer.status, latency)
    if answer.status == 410:
        return _gone(row, latency)
    reason = f"HTTP {answer.status}" + (
        " (redirects are not followed)" if answer.status < 400 else ""
    )
    wait = retry_after(answer.retry_after, clock.now())
    return _failed(row, reason, status=answer.status, latency=latency, wait=wait)


def _mine(row: WebhookDelivery) -> Any:
    # Only while the row is still ours: a later attempt (after our lease) keeps its own state.
    return WebhookDelivery.objects.filter(
        pk=row.pk, status=WebhookDelivery.Status.PENDING, attempts=row.attempts
    )


def _delivered(row: WebhookDelivery, status: int, latency: int) -> str:
    now = clock.now()
    _mine(row).update(
        status=WebhookDelivery.Status.DELIVERED,
        delivered_at=now,
        response_status=status,
        latency_ms=latency,
        last_error="",
    )
    WebhookEndpoint.objects.filter(pk=row.endpoint_id, failing_since__isnull=False).update(
        failing_since=None
    )
    return WebhookDelivery.Status.DELIVERED.value


def _gone(row: WebhookDelivery, latency: int) -> str:
    """410 Gone: the receiver says this endpoint no longer exists; it is switched off."""
    _mine(row).update(
        status=WebhookDelivery.Status.FAILED,
        response_status=410,
        latency_ms=latency,
        last_error="HTTP 410: the endpoint is gone; switched off",
    )
    WebhookEndpoint.objects.filter(pk=row.endpoint_id).update(
        active=False, disabled_reason="The receiver answered 410 Gone."
    )
    logger.warning("webhook endpoint %s answered 410 Gone: switched off", row.endpoint_id)
    return WebhookDelivery.Status.FAILED.value


def _failed(
    row: WebhookDelivery,
    error: str,
    *,
    status: int | None,
    latency: int | None,
    wait: timedelta | None,
) -> str:
    now = clock.now()
    delay = retry_delay(row.attempts)
    if wait is not None:
        delay = max(delay, wait)
    next_at = now + delay
    give_up = next_at > row.give_up_at
    _mine(row).update(
        status=WebhookDelivery.Status.FAILED if give_up else WebhookDelivery.Status.PENDING,
        next_attempt_at=next_at,
        response_status=status,
        latency_ms=latency,
        last_error=error[:500],
    )
    if give_up:
        endpoint_failing(endpoint_id=row.endpoint_id, error=error)
        return WebhookDelivery.Status.FAILED.value
    return WebhookDelivery.Status.PENDING.value


@transaction.atomic
def endpoint_failing(*, endpoint_id: int, error: str) -> None:
    """A delivery was given up: the endpoint is marked failing and the administrators are told,
    once per episode (until a delivery succeeds again)."""
    from django.contrib.auth import get_user_model

    from consents.outbox import email_enqueue

    endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint_id)
    if endpoint.failing_since is not None:
        return
    endpoint.failing_since = clock.now()
    endpoint.save(update_fields=["failing_since"])
    logger.error("webhook endpoint %s is failing: %s", endpoint.pk, error)
    admins = (
        get_user_model()
        .objects.filter(is_active=True, is_superuser=True)
        .exclude(email="")
        .values_list("email", flat=True)
    )
    for address in admins:
        email_enqueue(
            to=address,
            template="webhook-failing",
            context={"endpoint": str(endpoint), "endpoint_id": endpoint.pk, "error": error[:300]},
            language=settings.LANGUAGE_CODE,
            is_service=True,
        )


def webhooks_due(older_than: timedelta | None = None) -> list[int]:
    """Deliveries to hand to the broker now: pending, due, older than the sweep's delay."""
    now = clock.now()
    cutoff = now - (settings.WEBHOOK_SWEEP_AFTER if older_than is None else older_than)
    return list(
        WebhookDelivery.objects.filter(
            status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=now, created_at__lte=cutoff
        )
        .order_by("id")
        .values_list("id", flat=True)[:1000]
    )


# --- Managing endpoints (the admin and the API call these) ----------------------------------------


def _check_types(event_types: Sequence[str]) -> list[str]:
    for kind in event_types:
        if kind not in EVENT_TYPES:
            raise ValidationError({"event_types": f"Unknown event type {kind!r}."})
    return list(dict.fromkeys(event_types))


@transaction.atomic
def endpoint_create(
    *, url: str, event_types: Sequence[str] = (), description: str = "", active: bool = True
) -> tuple[WebhookEndpoint, str]:
    """A new endpoint and its secret, returned once: only its holder can show it again."""
    url = url.strip()
    if len(url) > 500:
        raise ValidationError({"url": "The URL is too long (500 characters at most)."})
    check_url(url)
    secret = secret_new()
    endpoint = WebhookEndpoint.objects.create(
        url=url,
        description=description.strip()[:200],
        event_types=_check_types(event_types),
        active=active,
        secret=secret,
        created_at=clock.now(),
    )
    return endpoint, secret


@transaction.atomic
def endpoint_update(
    *,
    endpoint: WebhookEndpoint,
    url: str | None = None,
    event_types: Sequence[str] | None = None,
    description: str | None = None,
    active: bool | None = None,
) -> WebhookEndpoint:
    locked = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
    if url is not None and url.strip() != locked.url:
        url = url.strip()
        if len(url) > 500:
            raise ValidationError({"url": "The URL is too long (500 characters at most)."})
        check_url(url)
        locked.url = url
    if event_types is not None:
        locked.event_types = _check_types(event_types)
    if description is not None:
        locked.description = description.strip()[:200]
    if active is not None:
        locked.active = active
        if active:
            locked.disabled_reason = ""
    locked.save()
    return locked


@transaction.atomic
def endpoint_rotate_secret(*, endpoint: WebhookEndpoint) -> str:
    """A new secret, returned once; the current one keeps signing beside it during the overlap
    (``WEBHOOK_SECRET_OVERLAP``), so that the receiver can switch without losing a message."""
    locked = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
    secret = secret_new()
    locked.previous_secret = locked.secret
    locked.previous_secret_until = clock.now() + settings.WEBHOOK_SECRET_OVERLAP
    locked.secret = secret
    locked.save(update_fields=["secret", "previous_secret", "previous_secret_until"])
    return secret


@transaction.atomic
def deliveries_replay(*, endpoint: WebhookEndpoint, start: datetime, end: datetime) -> int:
    """Send again every message of ``[start, end)`` to this endpoint, with its own webhook-id
    (a receiver that lost them takes them; one that has them recognises them)."""
    if timezone.is_naive(start) or timezone.is_naive(end):
        raise ValidationError({"start": "Give timezone-aware instants."})
    if end <= start:
        raise ValidationError({"end": "The end of the range is after its start."})
    if not endpoint.active:
        raise ValidationError({"endpoint": "This endpoint is switched off: switch it on first."})
    now = clock.now()
    rows = WebhookDelivery.objects.filter(
        endpoint=endpoint, created_at__gte=start, created_at__lt=end
    ).exclude(status=WebhookDelivery.Status.PENDING)
    ids = list(rows.order_by("id").values_list("id", flat=True))
    WebhookDelivery.objects.filter(pk__in=ids).update(
        status=WebhookDelivery.Status.PENDING,
        next_attempt_at=now,
        give_up_at=now + settings.WEBHOOK_RETRY_FOR,
        last_error="",
    )
    transaction.on_commit(lambda: queue_many(ids))
    return len(ids)


def endpoint_as_dict(endpoint: WebhookEndpoint) -> dict[str, Any]:
    """An endpoint as the API shows it: never its secret (shown once, when made or rotated)."""
    return {
        "id": endpoint.pk,
        "url": endpoint.url,
        "description": endpoint.description,
        "event_types": list(endpoint.event_types),
        "active": endpoint.active,
        "created_at": ledger.iso(endpoint.created_at),
        "failing_since": ledger.iso(endpoint.failing_since) if endpoint.failing_since else None,
        "disabled_reason": endpoint.disabled_reason or None,
        "secret_rotated_until": (
            ledger.iso(endpoint.previous_secret_until) if endpoint.previous_secret_until else None
        ),
    }
