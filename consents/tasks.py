from __future__ import annotations

import logging
from typing import Any

from celery import shared_task
from django.db.models import Max, Min

from consents.ledger import verify_range
from consents.locks import run_lock
from consents.models import Event
from consents.outbox import OutboxSendError, outbox_deliver, outbox_due, queue_send

logger = logging.getLogger(__name__)


@shared_task(acks_late=True)
def ledger_verify() -> dict[str, Any] | None:
    """Nightly: walk every chain; a broken link is logged as an error for the operators."""
    with run_lock("ledger-verify") as held:
        if not held:
            logger.info("ledger verification already under way: skipped")
            return None
        return _ledger_verify()


def _ledger_verify() -> dict[str, Any]:
    bounds = Event.objects.aggregate(lo=Min("contact_id"), hi=Max("contact_id"))
    if bounds["lo"] is None:
        return {"checked": 0, "broken": None}
    checked, broken = verify_range(bounds["lo"], bounds["hi"] + 1)
    if broken:
        logger.error("ledger verification failed: %s", broken)
    else:
        logger.info("ledger verified: %d events", checked)
    return {"checked": checked, "broken": broken}


@shared_task(
    acks_late=True,
    autoretry_for=(OutboxSendError,),
    retry_backoff=30,
    retry_backoff_max=3600,
    retry_jitter=True,
    max_retries=8,
)
def outbox_send(outbox_id: int) -> str:
    """Send one outbox row; idempotent (running it twice sends once)."""
    return outbox_deliver(outbox_id)


@shared_task(acks_late=True)
def outbox_sweep() -> int:
    """Re-queue rows still pending after a while, e.g. when the broker was down at commit time.

    One sweep at a time: two would queue every due row twice (sent once, but sent for nothing)."""
    with run_lock("outbox-sweep") as held:
        if not held:
            return 0
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

    done = retention.run()  # one run at a time: retention.run holds its lock
    if done.get("skipped"):
        logger.info("retention: another run is under way, skipped")
    else:
        logger.info("retention: %(asked)d asked, %(erased)d erased", done)
    return done


@shared_task(acks_late=True)
def reconfirm_campaigns() -> int:
    """Every minute: the next batch of notice re-confirmation emails (rate-limited; one run at a
    time: ``campaigns_run`` holds its lock)."""
    from consents import notices

    return notices.campaigns_run()
