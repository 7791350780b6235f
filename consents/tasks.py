from __future__ import annotations

import logging
from typing import Any

from celery import shared_task
from django.db.models import Max, Min

from consents.ledger import verify_range
from consents.models import Event
from consents.outbox import OutboxSendError, outbox_deliver, outbox_due, queue_send

logger = logging.getLogger(__name__)


@shared_task(acks_late=True)
def ledger_verify() -> dict[str, Any]:
    """Nightly: walk every chain; a broken link is logged as an error for the operators."""
    bounds = Event.objects.aggregate(lo=Min("contact_id"), hi=Max("contact_id"))
    if bounds["lo"] is None:
        return {"checked": 0, "broken": None}
    checked, broken = verify_range(bounds["lo"], bounds["hi"] + 1)
    if broken:
        logger.error("ledger verification failed: %s", broken)
    else:
        logger.info("ledger verified: %d events", checked)
    return {"checked": checked, "broken": broken}


@shared_task(acks_late=True)
def outbox_send(outbox_id: int) -> str:
    """Send one outbox row if it is due; idempotent (running it twice sends once).

    A failed attempt is not retried by Celery: the row records when its next attempt is due
    (``next_attempt_at``, with backoff), and the sweep hands it back then.
    """
    try:
        return outbox_deliver(outbox_id)
    except OutboxSendError as exc:
        logger.warning("outbox %s: attempt failed (%s); the sweep will retry", outbox_id, exc)
        return "pending"


@shared_task(acks_late=True)
def outbox_sweep() -> int:
    """Re-queue the rows that are due: retries whose backoff has passed, rows whose task never
    ran (the broker was down at commit time), rows whose sender died mid-send."""
    due = outbox_due()
    for outbox_id in due:
        queue_send(outbox_id)
    if due:
        logger.info("outbox sweep: re-queued %d rows", len(due))
    return len(due)


@shared_task(acks_late=True)
def retention_daily() -> dict[str, int]:
    """Daily: the last ask to those within 30 days of expiry, erasure of those past it."""
    from consents import retention

    done = retention.run()
    logger.info("retention: %(asked)d asked, %(erased)d erased", done)
    return done


@shared_task(acks_late=True)
def reconfirm_campaigns() -> int:
    """Every minute: the next batch of notice re-confirmation emails (rate-limited)."""
    from consents import notices

    return notices.campaigns_run()
