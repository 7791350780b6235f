"""Managing endpoints: what the admin and the API call to create, change, rotate and replay."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from consents import clock, ledger
from consents.models import WebhookDelivery, WebhookEndpoint
from consents.webhooks_out.network import check_url
from consents.webhooks_out.sending import queue_many
from consents.webhooks_out.signing import EVENT_TYPES, secret_new

logger = logging.getLogger(__name__)


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
