"""Redis stopped and started again under a running site: a Redis server of the test's own, the
test database on PostgreSQL and a real Celery worker.

While Redis is down every sign-up is recorded and answered (rate limits count in the process,
sessions live in the database, the page cache is skipped, the emails wait in the outbox). Once
it is back, the sweep hands the emails to the worker and each leaves once.
"""

from __future__ import annotations

import os
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core.cache import caches
from django.db import connection
from django.db.models import F
from django.test import Client

from config import cache as cache_backend
from consents import links
from consents.models import Contact, Event, Outbox
from consents.tasks import outbox_sweep
from preferences import store
from preferences.models import Device, PendingSignup
from preferences.services import CONFIRM_TEMPLATE
from tests.preferences.center_fixtures import open_session
from tests.preferences.pages import signup_data
from tests.preferences.store_fixtures import *  # noqa: F403  (the store fixtures)
from tests.preferences.store_fixtures import log_in
from tests.workers import (
    CeleryWorker,
    RedisServer,
    celery_publishing,
    database_url,
    read_mails,
    wait_for,
    waits_counted,
)

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),  # committed: the worker must see the rows
    pytest.mark.usefixtures("topics"),
]

SIGN_UPS = 50
# The most a request may wait on a Redis that is down: one connection attempt of the cache's and
# one of the broker's, each to its timeout.
BROKER_CONNECT_TIMEOUT = django_settings.CELERY_BROKER_TRANSPORT_OPTIONS["socket_connect_timeout"]
OUTAGE_WAIT_BOUND = cache_backend.CONNECT_TIMEOUT + BROKER_CONNECT_TIMEOUT
MAIL_TIMEOUT = 60


@pytest.fixture
def own_redis(tmp_path: Path, settings: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """This process's cache, sessions and broker on a Redis server of the test's own."""
    server = RedisServer(log_path=tmp_path / "redis.log")
    server.start()
    # Try Redis again soon after a failure: the test does not wait for production's delay.
    monkeypatch.setattr(cache_backend, "RETRY_AFTER", 0.2)
    settings.CACHES = {"default": {"BACKEND": "config.cache.RedisCache", "LOCATION": server.url}}
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    server.queue = f"assent-test-{uuid.uuid4().hex[:12]}"
    try:
        with celery_publishing(server.url, eager=False, queue=server.queue):
            yield server
    finally:
        server.stop()


def start_worker(server: Any, tmp_path: Path) -> CeleryWorker:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "PYTEST_"))},
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": database_url(connection.settings_dict),
        "REDIS_URL": server.url,
        "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
        "VAR_DIR": str(tmp_path),  # the file backend writes to VAR_DIR/mail
        "PYTHONUNBUFFERED": "1",
    }
    worker = CeleryWorker(queue=server.queue, env=env, log_path=tmp_path / "worker.log")
    worker.start()
    return worker


def test_redis_down_fifty_sign_ups_recorded_then_each_email_sent_once(
    own_redis: Any,
    tmp_path: Path,
    client: Client,
    staff: Any,
    tablet: Device,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Before the outage: a staff member on the tablet, their session kept in Redis too.
    client.cookies[store.DEVICE_COOKIE] = store.device_cookie_value(tablet)
    log_in(client, staff)
    assert client.get("/store/").status_code == 200
    old_session = client.cookies[django_settings.SESSION_COOKIE_NAME].value

    own_redis.stop()

    # The staff member logs out while Redis is down: the database forgets the session, the
    # cache cannot be told.
    assert client.post("/store/logout/").status_code == 302
    people = Client()
    run = uuid.uuid4().hex[:8]
    addresses = [f"person{i}.{run}@example.fr" for i in range(SIGN_UPS)]
    # As in production, once the cache has failed it leaves Redis alone for a while: here for
    # longer than the loop (its attempts are counted, so they must not depend on its speed).
    monkeypatch.setattr(cache_backend, "RETRY_AFTER", 3600)
    cache_attempts = 0
    for i, address in enumerate(addresses):
        with waits_counted(own_redis.port) as waits:
            response = people.post(
                "/subscribe/",
                signup_data(email=address, first_name="Léa"),
                REMOTE_ADDR=f"198.18.{i // 200}.{i % 200 + 1}",
            )
        assert response.status_code == 302, response.content.decode()[:1000]
        # No sign-up hangs on the outage: what it could wait for is counted, not timed. No retry
        # loop sleeps; the cache tries Redis at most once (then leaves it alone for a while), the
        # broker once; each attempt bounded by its timeout.
        assert waits.sleeps == [], waits
        assert waits.connects.count(BROKER_CONNECT_TIMEOUT) <= 1, waits
        cache_attempts += waits.connects.count(cache_backend.CONNECT_TIMEOUT)
        assert len(waits.connects) <= 2, waits
        assert waits.longest_possible <= OUTAGE_WAIT_BOUND, waits
    assert cache_attempts <= 1

    # Every write recorded; every email waiting in the outbox.
    assert Contact.objects.filter(email__in=addresses).count() == SIGN_UPS
    assert PendingSignup.objects.count() == SIGN_UPS
    assert Event.objects.filter(type="opt_in").count() == SIGN_UPS
    rows = Outbox.objects.filter(template=CONFIRM_TEMPLATE)
    assert rows.count() == SIGN_UPS
    assert set(rows.values_list("status", flat=True)) == {Outbox.Status.PENDING}

    # The links of those emails work, and so does the preference page.
    signup = PendingSignup.objects.select_related("contact").first()
    assert signup is not None
    confirm = f"/confirm/{links.make('confirm', signup.contact, s=signup.nonce)}/"
    assert people.get(confirm).status_code == 200
    open_session(people, signup.contact)
    assert people.get("/preferences/").status_code == 200
    assert people.post("/", {"email": addresses[1]}).status_code == 302

    own_redis.start()
    # The cache's retry delay is over: it tries Redis again at its next call.
    monkeypatch.setattr(cache_backend, "RETRY_AFTER", 0.2)
    caches["default"]._retry_at = 0.0

    # The session ended during the outage stays ended.
    stale = Client()
    stale.cookies[django_settings.SESSION_COOKIE_NAME] = old_session
    stale.cookies[store.DEVICE_COOKIE] = store.device_cookie_value(tablet)
    assert stale.get("/store/").status_code == 302  # to the login page
    assert people.get("/preferences/").status_code == 200

    # The emails leave once Redis is back: the sweep re-queues them, the worker sends each once.
    rows.update(
        created_at=F("created_at") - django_settings.OUTBOX_SWEEP_AFTER - timedelta(seconds=1)
    )
    worker = start_worker(own_redis, tmp_path)
    try:
        queued = outbox_sweep()
        assert queued >= SIGN_UPS
        queued += outbox_sweep()  # at once again, while most are in flight: never twice
        wait_for(
            lambda: len(worker.results()) >= queued,
            timeout=MAIL_TIMEOUT,
            what=f"the worker to run {queued} tasks\n{worker.log()[-3000:]}",
        )
    finally:
        worker.stop()
    assert set(rows.values_list("status", flat=True)) == {Outbox.Status.SENT}
    assert set(rows.values_list("attempts", flat=True)) == {1}
    sent = Counter(m["To"] for m in read_mails(tmp_path / "mail") if m["To"] in addresses)
    assert set(sent) == set(addresses)
    assert max(sent.values()) == 1
