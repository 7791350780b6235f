"""Sign-up with a real Celery worker process, consuming from Redis, against PostgreSQL.

The worker is a separate ``celery worker`` process on the same test database; it writes the
emails with Django's file backend into a temporary directory, which the tests read.
"""

from __future__ import annotations

import os
import re
import uuid
from collections import Counter
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.db import connection
from django.db.models import F
from django.urls import NoReverseMatch, reverse

from consents import links, services
from consents.models import ConsentState, Contact, Event, Outbox
from consents.outbox import outbox_due
from consents.tasks import outbox_send, outbox_sweep
from preferences.services import (
    CONFIRM_TEMPLATE,
    ConfirmOutcome,
    SignupOutcome,
    signup_confirm,
    signup_submit,
)
from tests.workers import (
    UNREACHABLE_BROKER,
    UNREACHABLE_PORT,
    CeleryWorker,
    celery_publishing,
    database_url,
    purge_queue,
    read_mails,
    text_body,
    wait_for,
    waits_counted,
)

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),  # committed: the worker must see the rows
]

MAIL_TIMEOUT = 30
BROKER_CONNECT_TIMEOUT = settings.CELERY_BROKER_TRANSPORT_OPTIONS["socket_connect_timeout"]
CONFIRM_LINK = re.compile(r"https?://[^\s\"'<>]+/confirm/[^\s\"'<>/]+/")


def _resolves(name: str, *args: str) -> bool:
    try:
        reverse(name, args=args)
    except NoReverseMatch:
        return False
    return True


# The HTTP pages when they exist; the services they call otherwise.
SUBSCRIBE_VIEW = _resolves("subscribe") and _resolves("subscribe_done")
CONFIRM_VIEW = _resolves("confirm", "token")


@pytest.fixture
def worker(transactional_db, tmp_path):
    """A real Celery worker on its own queue, the test process publishing to it.

    It depends on the test database, so it is stopped before the database is flushed.
    """
    queue = f"assent-test-{uuid.uuid4().hex[:12]}"
    mail_dir = tmp_path / "mail"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "PYTEST_"))},
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": database_url(connection.settings_dict),
        "REDIS_URL": settings.REDIS_URL,
        "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
        "VAR_DIR": str(tmp_path),  # the file backend writes to VAR_DIR/mail
        "PYTHONUNBUFFERED": "1",
    }
    process = CeleryWorker(queue=queue, env=env, log_path=tmp_path / "worker.log")
    with celery_publishing(settings.REDIS_URL, eager=False, queue=queue):
        process.start()
        process.mail_dir = mail_dir
        try:
            yield process
        finally:
            process.stop()
            purge_queue(settings.REDIS_URL, queue)
    assert not process.alive()


@pytest.fixture(autouse=True)
def no_ip_limit(settings):
    # The per-IP counters live in Redis and outlast a test run; this test is not about them.
    settings.SIGNUP_MAX_PER_IP_PER_HOUR = 10_000


@pytest.fixture
def topic(make_topic):
    return make_topic("news", channels=["email", "sms"], name_fr="Actualités", name_en="News")


def sign_up(client, topic, address: str, *, ip: str = "198.51.100.7") -> None:
    """Through the HTTP sign-up page when it exists, else through the service."""
    if SUBSCRIBE_VIEW:
        response = client.post(
            reverse("subscribe"),
            {
                "email": address,
                "first_name": "",
                "phone": "",
                "language": "fr",
                "choice": [f"{topic.slug}:email"],
                "website": "",
            },
            REMOTE_ADDR=ip,
            HTTP_USER_AGENT="pytest worker test",
        )
        assert response.status_code == 302, response.content.decode()[:2000]
        assert response["Location"].startswith(reverse("subscribe_done"))
    else:
        outcome = signup_submit(
            email=address,
            choices=[(topic.slug, "email")],
            language="fr",
            collection_point="https://assent.example/subscribe/",
            ip_address=ip,
            user_agent="pytest worker test",
        )
        assert outcome is SignupOutcome.CONFIRMATION_SENT


def confirm(client, url: str) -> str:
    """Through the confirmation page when it exists, else through the service."""
    path = urlsplit(url).path
    token = path.rstrip("/").rsplit("/", 1)[-1]
    if CONFIRM_VIEW:
        response = client.post(path, REMOTE_ADDR="198.51.100.7", HTTP_USER_AGENT="pytest")
        assert response.status_code == 200, response.content.decode()[:2000]
    else:
        link = links.read("confirm", token)
        outcome, _ = signup_confirm(
            contact=link.contact, nonce=link.payload["s"], token_digest=links.token_digest(token)
        )
        assert outcome is ConfirmOutcome.CONFIRMED
    return token


def mails_to(mail_dir, address: str):
    return [m for m in read_mails(mail_dir) if m["To"] == address]


def test_sign_up_the_worker_sends_the_link_confirm_see_the_ledger(worker, client, topic):
    services.notice_publish(topic=None, language="fr", text="Vos données restent chez nous.")
    address = f"marie.{uuid.uuid4().hex[:8]}@example.fr"

    sign_up(client, topic, address)
    contact = Contact.objects.get(email=address)
    row = Outbox.objects.get(contact=contact, template=CONFIRM_TEMPLATE)
    opt_in = Event.objects.get(contact=contact, type="opt_in")
    assert (opt_in.topic, opt_in.channel, opt_in.data["doi"]) == (topic.slug, "email", "pending")
    state = ConsentState.objects.get(contact=contact, topic=topic.slug, channel="email")
    assert state.status == ConsentState.Status.PENDING

    (message,) = wait_for(
        lambda: mails_to(worker.mail_dir, address),
        timeout=MAIL_TIMEOUT,
        what=f"the worker to send the confirmation email\n{worker.log()[-3000:]}",
    )
    assert str(message["List-Unsubscribe"]).strip().startswith("<http")
    assert str(message["List-Unsubscribe-Post"]).strip() == "List-Unsubscribe=One-Click"
    link = CONFIRM_LINK.search(text_body(message))
    assert link, text_body(message)
    # The row says "sent" once the provider has returned: a moment after the mail file exists.
    wait_for(
        lambda: Outbox.objects.filter(pk=row.pk, status=Outbox.Status.SENT).exists(),
        timeout=MAIL_TIMEOUT,
        what="the worker to record the send",
    )
    row.refresh_from_db()
    assert row.status == Outbox.Status.SENT
    assert row.sent_at is not None and row.attempts == 1

    token = confirm(client, link.group(0))

    events = list(Event.objects.filter(contact=contact).order_by("seq"))
    assert [(e.type, e.topic, e.channel) for e in events] == [
        ("opt_in", topic.slug, "email"),
        ("doi_confirmed", topic.slug, "email"),
    ]
    assert events[1].data["token_digest"] == links.token_digest(token)
    state = ConsentState.objects.get(contact=contact, topic=topic.slug, channel="email")
    assert state.status == ConsentState.Status.OPTED_IN

    # A task for a row already sent (a redelivery after a lost ack, the sweep) sends nothing.
    task_id = outbox_send.apply_async(args=[row.pk]).id
    results = wait_for(
        lambda: task_id in worker.results() and worker.results(),
        timeout=MAIL_TIMEOUT,
        what="the worker to run the duplicate task",
    )
    assert results[task_id] == "'sent'"
    assert len(mails_to(worker.mail_dir, address)) == 1
    row.refresh_from_db()
    assert row.attempts == 1


def test_broker_outage_fifty_sign_ups_then_the_sweep_sends_each_once(
    worker, client, topic, settings
):
    run = uuid.uuid4().hex[:8]
    addresses = [f"person{i}.{run}@example.fr" for i in range(50)]

    with celery_publishing(UNREACHABLE_BROKER, eager=False, queue=worker.queue):
        for i, address in enumerate(addresses):
            with waits_counted(UNREACHABLE_PORT) as waits:
                sign_up(client, topic, address, ip=f"198.18.{i // 200}.{i % 200 + 1}")
            # Publishing must fail fast (see the kombu connection retry settings): what a
            # sign-up could wait for is counted, not timed. One attempt to connect, bounded by
            # its timeout; no retry loop sleeping between attempts.
            assert len(waits.connects) == 1 and waits.sleeps == [], waits
            assert waits.longest_possible <= BROKER_CONNECT_TIMEOUT, waits

    rows = Outbox.objects.filter(template=CONFIRM_TEMPLATE)
    assert rows.count() == 50
    assert set(rows.values_list("status", flat=True)) == {Outbox.Status.PENDING}
    assert read_mails(worker.mail_dir) == []

    # The broker is back. The rows are older than the sweep delay; the sweep re-queues them
    # from this process, the worker sends.
    assert outbox_due() == []
    rows.update(created_at=F("created_at") - settings.OUTBOX_SWEEP_AFTER - timedelta(seconds=1))
    queued = outbox_sweep()
    assert queued == 50
    # A second sweep at once, while most are still in flight: duplicates must not send twice.
    queued += outbox_sweep()

    wait_for(
        lambda: len(worker.results()) >= queued,
        timeout=MAIL_TIMEOUT,
        what=f"the worker to run {queued} tasks\n{worker.log()[-3000:]}",
    )
    assert set(rows.values_list("status", flat=True)) == {Outbox.Status.SENT}
    assert set(rows.values_list("attempts", flat=True)) == {1}
    assert outbox_sweep() == 0

    sent = Counter(m["To"] for m in read_mails(worker.mail_dir))
    assert sum(sent.values()) == 50
    assert set(sent) == set(addresses)
    assert max(sent.values()) == 1
