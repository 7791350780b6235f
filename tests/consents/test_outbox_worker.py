"""Real Celery workers killed with ``kill -9`` while they send 200 emails: none lost, none twice.

The workers send through ``tests.mailsink.DedupingBackend``, which behaves like an email service
honouring an idempotency key and records every call and every delivery in files. Some kills land
exactly between the provider's acceptance and the row's update (the backend holds there on
request), others anywhere. The sweep, run from this process, hands back what the dead workers
left.
"""

from __future__ import annotations

import os
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import connection, transaction

from consents import links, outbox
from consents.models import Contact, Outbox
from consents.outbox import email_enqueue
from consents.tasks import outbox_sweep
from tests.mailsink import Sink
from tests.workers import CeleryWorker, celery_publishing, database_url, purge_queue, wait_for

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),  # committed: the workers must see the rows
]

EMAILS = 200
KILLS_AFTER_ACCEPTANCE = 4
KILLS_ANYWHERE = 2


class Workers:
    """One worker at a time on a private queue; each kill starts the next one."""

    def __init__(self, tmp_path: Path, queue: str, env: dict[str, str]) -> None:
        self.tmp_path, self.queue, self.env = tmp_path, queue, env
        self.current: CeleryWorker | None = None
        self.started = 0

    def start(self) -> None:
        self.started += 1
        log = self.tmp_path / f"worker-{self.started}.log"
        self.current = CeleryWorker(queue=self.queue, env=self.env, log_path=log)
        self.current.start()

    def kill(self) -> None:
        assert self.current is not None
        self.current.kill()

    def stop(self) -> None:
        if self.current is not None:
            self.current.stop()

    def logs(self) -> str:
        return "\n".join(
            (self.tmp_path / f"worker-{n}.log").read_text(errors="replace")[-2000:]
            for n in range(1, self.started + 1)
        )


@pytest.fixture
def workers(transactional_db: Any, tmp_path: Path, settings: Any) -> Iterator[Workers]:
    queue = f"assent-test-{uuid.uuid4().hex[:12]}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "PYTEST_"))},
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": database_url(connection.settings_dict),
        "REDIS_URL": settings.REDIS_URL,
        "EMAIL_BACKEND": "tests.mailsink.DedupingBackend",
        "MAILSINK_DIR": str(tmp_path / "sink"),
        "OUTBOX_IDEMPOTENCY_HEADER": "idempotencyKey",
        # A dead worker's row is handed back two seconds after its attempt began.
        "OUTBOX_SEND_LEASE_SECONDS": "2",
        "VAR_DIR": str(tmp_path),
        "PYTHONUNBUFFERED": "1",
    }
    settings.OUTBOX_SWEEP_AFTER = timedelta(0)
    pool = Workers(tmp_path, queue, env)
    with celery_publishing(settings.REDIS_URL, eager=False, queue=queue):
        pool.start()
        try:
            yield pool
        finally:
            pool.stop()
            purge_queue(settings.REDIS_URL, queue)


def unsent() -> int:
    return Outbox.objects.exclude(status=Outbox.Status.SENT).count()


def test_worker_killed_during_200_sends_loses_none_and_sends_none_twice(
    workers: Workers, make_contact: Any, tmp_path: Path
) -> None:
    sink = Sink(tmp_path / "sink")
    (sink.folder / "accepted").mkdir(parents=True, exist_ok=True)
    run = uuid.uuid4().hex[:6]
    contacts = [make_contact(email=f"p{i}.{run}@example.fr") for i in range(EMAILS)]
    with transaction.atomic():
        for contact in contacts:
            email_enqueue(
                to=contact.email,
                template="preferences-link",
                language="fr",
                contact=contact,
                context={"valid_days": 60},
                links={"preferences_url": links.intent("preferences")},
            )
    # Committed: 200 tasks are on the queue.

    held_kills = 0
    for _ in range(KILLS_AFTER_ACCEPTANCE):
        target = len(sink.delivered) + 15
        wait_for(
            lambda target=target: len(sink.delivered) >= target,
            timeout=60,
            what=f"deliveries to reach {target}\n{workers.logs()}",
        )
        before = len(sink.held())
        sink.hold()
        wait_for(
            lambda before=before: len(sink.held()) > before,
            timeout=30,
            what=f"the worker to hold after an acceptance\n{workers.logs()}",
        )
        workers.kill()  # the provider has it; the row does not say so
        sink.release()
        held_kills += 1
        workers.start()
        outbox_sweep()
    for _ in range(KILLS_ANYWHERE):
        time.sleep(0.3)
        workers.kill()
        workers.start()
        outbox_sweep()

    # The rows the dead workers held come back once their lease is over.
    deadline = time.monotonic() + 120
    while unsent() and time.monotonic() < deadline:
        outbox_sweep()
        time.sleep(1)

    rows = list(Outbox.objects.all())
    assert len(rows) == EMAILS
    assert {row.status for row in rows} == {Outbox.Status.SENT}, workers.logs()  # 0 lost
    recipients = Counter(line[1] for line in sink.delivered)
    assert set(recipients) == {c.email for c in Contact.objects.all()}
    assert max(recipients.values()) == 1, recipients.most_common(3)  # 0 duplicated
    assert len(sink.delivered) == EMAILS

    # The kills did land after acceptances: those rows were sent again, under the same key,
    # and the provider recognised them.
    keys = Counter(line[0] for line in sink.calls)
    resent = [key for key, calls in keys.items() if calls > 1]
    assert len(resent) >= held_kills
    for row in rows:
        key = outbox.idempotency_key(row.message_id)
        assert keys[key] >= 1
        assert row.provider_message_id == f"sink-{key}"
    assert sum(1 for row in rows if row.attempts > 1) >= held_kills
