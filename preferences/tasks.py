from __future__ import annotations

from celery import shared_task

from preferences.services import signups_purge as purge


@shared_task(acks_late=True)
def signups_purge() -> int:
    """Hourly: forget pending sign-ups whose confirmation link has expired."""
    return purge()
