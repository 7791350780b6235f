from __future__ import annotations

import logging
from typing import Any

from celery import shared_task
from django.db.models import Max, Min

from consents.ledger import verify_range
from consents.models import Event

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
