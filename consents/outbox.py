"""Emails leave through the outbox.

``email_enqueue`` writes a row in the caller's transaction and queues the send for after commit.
``outbox_deliver`` (run by the ``outbox_send`` task) renders and sends one row exactly once.
A periodic sweep re-queues rows whose task never ran (broker down at commit time).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import translation

from consents import clock
from consents.models import Contact, Outbox

logger = logging.getLogger(__name__)


def email_enqueue(
    *,
    to: str,
    template: str,
    context: dict[str, Any],
    language: str = "fr",
    contact: Contact | None = None,
    is_service: bool = False,
    unsubscribe_url: str = "",
) -> Outbox:
    """Write an outbox row in the current transaction; the send is queued once it commits.

    Every email that is not a pure service message must carry the contact's unsubscribe link.
    """
    if not is_service and not unsubscribe_url:
        raise ValueError("A marketing or consent email needs an unsubscribe_url.")
    row = Outbox.objects.create(
        contact=contact,
        template=template,
        to=to,
        language=language if language in ("fr", "en") else "fr",
        context={**context, "unsubscribe_url": unsubscribe_url},
        is_service=is_service,
        created_at=clock.now(),
    )
    transaction.on_commit(lambda: queue_send(row.pk))
    return row


def queue_send(outbox_id: int) -> bool:
    """Hand a row to the broker. A broker outage must never fail the request: the sweep retries."""
    from consents.tasks import outbox_send

    try:
        outbox_send.apply_async(args=[outbox_id], retry=False)
    except Exception:
        logger.warning("outbox %s: could not reach the broker; the sweep will retry", outbox_id)
        return False
    return True


def render_email(row: Outbox) -> EmailMultiAlternatives:
    context = {**row.context, "brand_name": settings.BRAND_NAME, "site_url": settings.SITE_URL}
    with translation.override(row.language):
        subject = render_to_string(f"emails/{row.template}-subject.txt", context)
        text = render_to_string(f"emails/{row.template}-body.txt", context)
        html = render_to_string(f"emails/{row.template}-body.html", context)
    headers = {}
    unsubscribe = row.context.get("unsubscribe_url")
    if unsubscribe and not row.is_service:
        # RFC 2369 and RFC 8058: mail clients show an unsubscribe button that POSTs here.
        headers["List-Unsubscribe"] = f"<{unsubscribe}>"
        headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message = EmailMultiAlternatives(
        subject=" ".join(subject.split()),
        body=text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[row.to],
        headers=headers,
    )
    message.attach_alternative(html, "text/html")
    return message


class OutboxSendError(Exception):
    """Sending failed; the row keeps the error and stays pending for a retry."""


def outbox_deliver(outbox_id: int) -> str:
    """Send one row, once. Returns the row's status afterwards.

    The row stays locked while it is sent, so a second run (a retry, the sweep, a duplicate
    delivery from the broker) waits, then finds it sent and does nothing.
    """
    failure: Exception | None = None
    with transaction.atomic():
        row = Outbox.objects.select_for_update().filter(pk=outbox_id).first()
        # Sent, given up, or cancelled (its person was erased): nothing to do.
        if row is None or row.status != Outbox.Status.PENDING:
            return row.status if row else "missing"
        row.attempts += 1
        try:
            message = render_email(row)
            message.send()
        except Exception as exc:
            failure = exc
            row.last_error = f"{type(exc).__name__}: {exc}"[:2000]
            if row.attempts >= settings.OUTBOX_MAX_ATTEMPTS:
                row.status = Outbox.Status.FAILED
                logger.error("outbox %s: giving up after %s attempts", row.pk, row.attempts)
        else:
            status = getattr(message, "anymail_status", None)
            row.provider_message_id = (getattr(status, "message_id", None) or "")[:255]
            row.status = Outbox.Status.SENT
            row.sent_at = clock.now()
            row.last_error = ""
        row.save(
            update_fields=["attempts", "status", "sent_at", "provider_message_id", "last_error"]
        )
    if failure is not None and row.status == Outbox.Status.PENDING:
        raise OutboxSendError(row.last_error) from failure
    return row.status


def outbox_due(older_than: timedelta | None = None) -> list[int]:
    """Rows still pending after a while: their task never ran, or is retrying."""
    cutoff = clock.now() - (older_than or settings.OUTBOX_SWEEP_AFTER)
    return list(
        Outbox.objects.filter(status=Outbox.Status.PENDING, created_at__lte=cutoff)
        .order_by("id")
        .values_list("id", flat=True)[:1000]
    )
