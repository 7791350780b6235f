"""The one clock the consent code reads.

Tests and the case-book runner freeze it to a fixed instant; everything else sees real time.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import datetime

from django.utils import timezone

_frozen: ContextVar[datetime | None] = ContextVar("assent_frozen_now", default=None)


def now() -> datetime:
    return _frozen.get() or timezone.now()


@contextlib.contextmanager
def frozen(at: datetime) -> Iterator[datetime]:
    token = _frozen.set(at)
    try:
        yield at
    finally:
        _frozen.reset(token)
