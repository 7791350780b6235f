from __future__ import annotations

from celery import shared_task

from consents.locks import run_lock
from preferences.center import center_sessions_purge
from preferences.services import signups_purge as purge


@shared_task(acks_late=True)
def signups_purge() -> int:
    """Hourly: forget pending sign-ups whose confirmation link has expired, and the sessions
    that can no longer be alive."""
    with run_lock("signups-purge") as held:
        if not held:
            return 0
        center_sessions_purge()
        return purge()
