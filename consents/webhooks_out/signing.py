"""The webhooks' event types, their secrets and their Standard Webhooks v1 signatures."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
from datetime import datetime

from consents import clock
from consents.models import WebhookDelivery, WebhookEndpoint

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
