from __future__ import annotations

import logging
from typing import Any

from celery import shared_task
from django.core.exceptions import ValidationError

from consents import anchors
from consents.ledger import Verification, ledger_bounds, verify_chains
from consents.locks import run_lock
from consents.outbox import (
    OutboxSendError,
    outbox_deliver,
    outbox_drain_run,
    outbox_due,
    queue_send,
)

logger = logging.getLogger(__name__)


@shared_task(acks_late=True)
def ledger_verify() -> dict[str, Any] | None:
    """Nightly: walk every chain against its recorded head and check the latest anchor; a
    problem is logged as an error for the operators."""
    with run_lock("ledger-verify") as held:
        if not held:
            logger.info("ledger verification already under way: skipped")
            return None
        return _ledger_verify()


def _ledger_verify() -> dict[str, Any]:
    bounds = ledger_bounds()
    result = verify_chains(*bounds) if bounds else Verification()
    check = anchors.latest_check()
    if result.problems:
        logger.error(
            "ledger verification failed: %d problems, the first %s",
            result.problem_count,
            result.broken,
        )
    if check is not None and not check.ok:
        logger.error("ledger anchor check failed: %s: %s", check.name, "; ".join(check.problems))
    if not result.problems and (check is None or check.ok):
        logger.info("ledger verified: %d events", result.checked)
    return {
        "checked": result.checked,
        "broken": result.broken,
        "problems": result.problem_count,
        "anchor": None if check is None else {"id": check.anchor.pk, "problems": check.problems},
    }


@shared_task(acks_late=True)
def ledger_anchor() -> dict[str, Any] | None:
    """Hourly: sign the chain heads. Refused, and logged as an error, while the previous anchor
    no longer matches the ledger (``manage.py anchor_ledger --force`` once it is looked into)."""
    with run_lock("ledger-anchor") as held:
        if not held:
            logger.info("ledger anchoring already under way: skipped")
            return None
        return _ledger_anchor()


def _ledger_anchor() -> dict[str, Any]:
    try:
        anchor = anchors.anchor_create()
    except anchors.AnchorRefused as exc:
        logger.error("ledger anchor refused: %s", exc)
        return {"anchor": None, "refused": exc.check.problems}
    except ValidationError as exc:  # the latest anchor covers this instant already
        logger.warning("ledger anchor skipped: %s", "; ".join(exc.messages))
        return {"anchor": None, "skipped": exc.messages}
    logger.info("ledger anchored: %s, %d chains, %d events", anchor, anchor.chains, anchor.events)
    return {"anchor": anchor.pk, "chains": anchor.chains, "events": anchor.events}


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
def outbox_drain() -> int:
    """Hand the broker the rows committed since the last drain, one ``outbox_send`` each
    (``consents.outbox.outbox_drain_run``): queued by a commit when no drain was on its way."""
    return outbox_drain_run()


@shared_task(acks_late=True)
def outbox_sweep() -> int:
    """Re-queue the rows that are due: retries whose backoff has passed, rows whose task never
    ran (the broker was down at commit time), rows whose sender died mid-send.

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


@shared_task(acks_late=True)
def webhook_send(delivery_id: int) -> str:
    """Send one webhook delivery if it is due; idempotent. A failed attempt records when the
    next is due (backoff, or the receiver's Retry-After) and the sweep hands it back then."""
    from consents.webhooks_out import webhook_deliver

    return webhook_deliver(delivery_id)


@shared_task(acks_late=True)
def webhooks_sweep() -> int:
    """Every minute: re-queue the deliveries that are due (retries whose wait is over, rows whose
    task never ran because the broker was down, rows whose sender died). One sweep at a time."""
    from consents.webhooks_out import queue_send, webhooks_due

    with run_lock("webhooks-sweep") as held:
        if not held:
            return 0
        due = webhooks_due()
        for delivery_id in due:
            if not queue_send(delivery_id):
                break
    if due:
        logger.info("webhooks sweep: re-queued %d deliveries", len(due))
    return len(due)


@shared_task(acks_late=True)
def import_contacts(run_id: int, path: str, options: dict[str, Any]) -> str:
    """Run an import queued by the admin or the API; its record says how it went."""
    from pathlib import Path

    from consents.imports import import_execute

    return import_execute(run_id=run_id, path=Path(path), **options).status
