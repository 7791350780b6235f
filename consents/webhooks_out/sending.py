"""Sending a delivery: claimed under a lease, one attempt, then delivered, gone (410 disables the
endpoint), or retried with exponential backoff until the endpoint is marked failing."""

from __future__ import annotations

import http.client
import logging
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

from django.conf import settings
from django.db import transaction

from consents import catalogue, clock
from consents.models import WebhookDelivery, WebhookEndpoint
from consents.outbox import backoff
from consents.webhooks_out.network import UnsafeAddress, check_url, post
from consents.webhooks_out.signing import body_bytes, headers_for

logger = logging.getLogger(__name__)


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
    return backoff(attempts, settings.WEBHOOK_RETRY_BASE, settings.WEBHOOK_RETRY_MAX)


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
    catalogue.changed()  # (``update`` sends no signal) no more deliveries for it
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
