from __future__ import annotations

import logging

from celery import shared_task

from consents.locks import run_lock
from preferences.access import center_sessions_purge
from preferences.services import signups_purge as purge
from preferences.store.keys import captures_forget

logger = logging.getLogger(__name__)


@shared_task(acks_late=True)
def signups_purge() -> int:
    """Hourly: forget pending sign-ups whose confirmation link has expired, and the sessions
    that can no longer be alive."""
    with run_lock("signups-purge") as held:
        if not held:
            return 0
        center_sessions_purge()
        captures_forget()
        return purge()


@shared_task(acks_late=True)
def link_request_send(request_id: int) -> str:
    """Handle one "send me my link" request; idempotent (a second run finds nothing to do)."""
    from preferences.access import link_request_handle

    outcome = link_request_handle(request_id=request_id)
    return outcome.value if outcome is not None else "handled"


@shared_task(acks_late=True)
def link_requests_sweep() -> int:
    """Every minute: hand requests whose task never ran (broker down) to the broker again."""
    from preferences.access import link_requests_due, queue_link_request

    due = link_requests_due()
    for request_id in due:
        queue_link_request(request_id)
    if due:
        logger.info("link requests sweep: re-queued %d", len(due))
    return len(due)


@shared_task(acks_late=True)
def tracking_drain() -> int:
    """Every few seconds: move the email service's tracking events from the webhook's inbox into
    the ledger, batch after batch, for up to 50 s (one drain at a time)."""
    from preferences.tracking import drain_all

    with run_lock("tracking-drain-task") as held:
        if not held:
            return 0
        return drain_all(budget_seconds=50)
