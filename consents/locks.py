"""One run at a time of each scheduled job, across processes and machines.

Two beat processes, or the ``retention`` command typed while the daily task runs, must not do the
same work twice. On PostgreSQL a run holds a session-level advisory lock named after its job for
as long as it lasts (its work commits in many small transactions); a second run finds it taken
and does nothing. The embedded default (SQLite) runs its tasks in-process, one at a time, and its
writers are serialised by the database itself: there the lock is always granted.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Iterator

from django.db import DatabaseError, connection

logger = logging.getLogger(__name__)


def lock_key(name: str) -> int:
    """A signed 64-bit key per job name, as ``pg_try_advisory_lock`` takes it."""
    digest = hashlib.sha256(f"assent.run.{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextlib.contextmanager
def run_lock(name: str) -> Iterator[bool]:
    """Yield True when this run holds the job's lock, False when another run holds it."""
    if connection.vendor != "postgresql":
        yield True
        return
    key = lock_key(name)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
        held = bool(cursor.fetchone()[0])
    try:
        yield held
    finally:
        if held:
            try:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
            except DatabaseError:
                # An aborted transaction: the lock goes with the connection, closed now where
                # nobody's transaction depends on it, so that the next run is not locked out.
                logger.warning("could not release the %s run lock", name)
                if not connection.in_atomic_block:
                    connection.close()
