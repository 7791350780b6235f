"""Email backends for benchmarks only (``bench/signup_bench.py``); never configure them elsewhere.

``SlowBackend`` stands for a slow email service: it waits ``BENCH_SLOW_EMAIL_SECONDS`` (default
2 s) per message, then hands the messages to Django's locmem backend (kept in memory, nothing
leaves the machine). ``InstantBackend`` counts the messages and sends nothing.

Select one with e.g. ``EMAIL_BACKEND=bench.backends.SlowBackend`` (the repository root must be
on ``sys.path``: it is when gunicorn or celery run from it, or set ``PYTHONPATH``).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from typing import Any

from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.backends.locmem import EmailBackend as LocmemBackend
from django.core.mail.message import EmailMessage


def slow_email_seconds() -> float:
    return float(os.environ.get("BENCH_SLOW_EMAIL_SECONDS", "2"))


class InstantBackend(BaseEmailBackend):
    """Counts messages (per process, in ``InstantBackend.sent``); sends nothing."""

    sent = 0
    _lock = threading.Lock()

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        count = len(email_messages)
        with InstantBackend._lock:
            InstantBackend.sent += count
        return count


class SlowBackend(BaseEmailBackend):
    """Waits ``BENCH_SLOW_EMAIL_SECONDS`` per message, then delegates to the locmem backend."""

    def __init__(self, fail_silently: bool = False, **kwargs: Any) -> None:
        super().__init__(fail_silently=fail_silently)
        self.delay = slow_email_seconds()
        self.inner = LocmemBackend(fail_silently=fail_silently, **kwargs)

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        if not email_messages:
            return 0
        time.sleep(self.delay * len(email_messages))
        sent = self.inner.send_messages(email_messages)
        # locmem keeps every message in django.core.mail.outbox: a long-lived worker would grow
        # without bound, so keep only the last few.
        from django.core import mail

        outbox = getattr(mail, "outbox", None)
        if outbox is not None and len(outbox) > 100:
            del outbox[:-100]
        return sent
