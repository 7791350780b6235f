"""The outbox: written with the change, queued on commit, sent once, retried, swept, and never
a failed request when the broker is down."""

from __future__ import annotations

import itertools
import time
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.core import mail
from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.backends.locmem import EmailBackend as LocmemBackend
from django.db import transaction

from config.celery import app as celery_app
from consents import clock, outbox
from consents.models import Contact, Outbox
from consents.outbox import OutboxSendError, email_enqueue, outbox_deliver, outbox_due, queue_send
from consents.tasks import outbox_send, outbox_sweep
from tests.workers import UNREACHABLE_BROKER, celery_publishing

UNSUBSCRIBE = "https://assent.example/unsubscribe/tok3n/"
EMAIL_TEMPLATES = {
    "note-subject.txt": "{{ brand_name }}:\n a note for {{ name }}\n",
    "note-body.txt": "Hello {{ name }}.\nLeave: {{ unsubscribe_url }}\n",
    "note-body.html": "<p>Hello {{ name }}.</p>",
}


class FakeBackend(LocmemBackend):
    """Like a django-anymail backend: every message sent gets the provider's message id."""

    ids = itertools.count(1)

    def send_messages(self, messages):
        for message in messages:
            message.anymail_status = SimpleNamespace(message_id=f"prov-{next(self.ids)}")
        return super().send_messages(messages)


class BrokenBackend(BaseEmailBackend):
    """The email service is unreachable."""

    def send_messages(self, messages):
        raise ConnectionRefusedError("smtp.example.net:587 refused the connection")


class FlakyBackend(FakeBackend):
    """Fails once, then works."""

    failures = 0

    def send_messages(self, messages):
        if FlakyBackend.failures == 0:
            FlakyBackend.failures += 1
            raise TimeoutError("the email service timed out")
        return super().send_messages(messages)


@pytest.fixture(autouse=True)
def outbox_setup(settings, tmp_path):
    """Test-only email templates, the fake anymail-like backend, Celery tasks run in-process."""
    for name, text in EMAIL_TEMPLATES.items():
        (tmp_path / "emails").mkdir(exist_ok=True)
        (tmp_path / "emails" / name).write_text(text)
    settings.TEMPLATES = [
        {**settings.TEMPLATES[0], "DIRS": [tmp_path, *settings.TEMPLATES[0]["DIRS"]]}
    ]
    settings.EMAIL_BACKEND = "tests.consents.test_outbox.FakeBackend"
    FlakyBackend.failures = 0
    with celery_publishing("memory://", eager=True):
        yield


def enqueue(contact=None, *, to="ana@example.fr", is_service=False, unsubscribe=UNSUBSCRIBE):
    return email_enqueue(
        to=to,
        template="note",
        context={"name": "Ana"},
        language="en",
        contact=contact,
        is_service=is_service,
        unsubscribe_url=unsubscribe,
    )


def backdate(row: Outbox, delta: timedelta) -> None:
    Outbox.objects.filter(pk=row.pk).update(created_at=clock.now() - delta)


@pytest.mark.django_db
class TestWrittenWithTheChange:
    def test_a_rollback_leaves_neither_the_change_nor_the_row_and_sends_nothing(
        self, make_contact, django_capture_on_commit_callbacks
    ):
        with (
            django_capture_on_commit_callbacks(execute=True) as callbacks,
            pytest.raises(RuntimeError),
            transaction.atomic(),
        ):
            contact = make_contact(email="rolled@example.fr")
            enqueue(contact, to=contact.email)
            raise RuntimeError("the change fails after its email was written")
        assert not Contact.objects.filter(email="rolled@example.fr").exists()
        assert not Outbox.objects.exists()
        assert callbacks == []
        assert mail.outbox == []

    def test_the_task_is_queued_only_once_the_change_commits(
        self, make_contact, monkeypatch, django_capture_on_commit_callbacks
    ):
        queued: list[int] = []
        real_queue_send = outbox.queue_send
        monkeypatch.setattr(
            outbox, "queue_send", lambda pk: queued.append(pk) or real_queue_send(pk)
        )
        with django_capture_on_commit_callbacks(execute=True):
            with transaction.atomic():
                contact = make_contact()
                row = enqueue(contact, to=contact.email)
                # The row is part of the change: visible in its transaction, not yet sent.
                assert Outbox.objects.get(pk=row.pk).status == Outbox.Status.PENDING
            assert queued == []
            assert mail.outbox == []
        # Committed: the task ran (in-process here) and sent the row.
        assert queued == [row.pk]
        assert len(mail.outbox) == 1
        row.refresh_from_db()
        assert (row.status, row.attempts) == (Outbox.Status.SENT, 1)


@pytest.mark.django_db
class TestDelivery:
    def test_delivering_twice_sends_once(self):
        row = enqueue()
        assert outbox_deliver(row.pk) == "sent"
        assert outbox_deliver(row.pk) == "sent"
        assert outbox_send.apply(args=[row.pk]).get() == "sent"
        assert len(mail.outbox) == 1
        row.refresh_from_db()
        assert row.attempts == 1

    def test_a_missing_row_is_not_an_error(self):
        assert outbox_deliver(10**9) == "missing"

    def test_the_provider_message_id_is_kept(self):
        row = enqueue()
        outbox_deliver(row.pk)
        row.refresh_from_db()
        assert row.provider_message_id.startswith("prov-")
        assert row.sent_at is not None
        assert row.last_error == ""
        (message,) = mail.outbox
        assert message.to == ["ana@example.fr"]
        assert message.subject == "Assent: a note for Ana"
        assert "Hello Ana." in message.body
        assert message.alternatives[0][1] == "text/html"

    def test_a_transport_error_keeps_the_row_pending_then_gives_up(self, settings):
        settings.EMAIL_BACKEND = "tests.consents.test_outbox.BrokenBackend"
        settings.OUTBOX_MAX_ATTEMPTS = 3
        row = enqueue()
        for attempt in (1, 2):
            # Raised so that Celery retries the task (autoretry_for, with backoff).
            with pytest.raises(OutboxSendError, match="ConnectionRefusedError"):
                outbox_deliver(row.pk)
            row.refresh_from_db()
            assert (row.status, row.attempts) == (Outbox.Status.PENDING, attempt)
            assert "refused the connection" in row.last_error
            assert row.sent_at is None
        assert outbox_deliver(row.pk) == "failed"  # no exception: no more retries
        assert outbox_deliver(row.pk) == "failed"
        row.refresh_from_db()
        assert (row.status, row.attempts) == (Outbox.Status.FAILED, 3)
        assert mail.outbox == []
        assert outbox_due(timedelta(0)) == []  # the sweep leaves failed rows alone

    def test_the_task_retries_transport_errors_with_backoff(self, settings, monkeypatch):
        assert OutboxSendError in outbox_send.autoretry_for
        assert outbox_send.retry_backoff and outbox_send.max_retries
        assert outbox_send.acks_late
        settings.EMAIL_BACKEND = "tests.consents.test_outbox.FlakyBackend"
        # Run eagerly, Celery runs each retry at once instead of after the backoff; it only
        # raises the Retry when eager exceptions propagate.
        monkeypatch.setitem(celery_app.conf, "task_eager_propagates", False)
        row = enqueue()
        assert outbox_send.apply(args=[row.pk]).get() == "sent"
        row.refresh_from_db()
        assert (row.status, row.attempts) == (Outbox.Status.SENT, 2)
        assert "TimeoutError" not in row.last_error
        assert len(mail.outbox) == 1

    def test_the_task_stops_retrying_once_the_row_failed(self, settings, monkeypatch):
        settings.EMAIL_BACKEND = "tests.consents.test_outbox.BrokenBackend"
        monkeypatch.setitem(celery_app.conf, "task_eager_propagates", False)
        settings.OUTBOX_MAX_ATTEMPTS = 3
        row = enqueue()
        assert outbox_send.apply(args=[row.pk]).get() == "failed"
        row.refresh_from_db()
        assert (row.status, row.attempts) == (Outbox.Status.FAILED, 3)


@pytest.mark.django_db
class TestUnsubscribeHeaders:
    def test_a_non_service_email_carries_one_click_unsubscribe(self):
        outbox_deliver(enqueue().pk)
        (message,) = mail.outbox
        assert message.extra_headers["List-Unsubscribe"] == f"<{UNSUBSCRIBE}>"
        assert message.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        rendered = message.message()
        assert rendered["List-Unsubscribe"] == f"<{UNSUBSCRIBE}>"
        assert rendered["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

    @pytest.mark.parametrize("unsubscribe", ["", UNSUBSCRIBE])
    def test_a_service_email_has_none(self, unsubscribe):
        outbox_deliver(enqueue(is_service=True, unsubscribe=unsubscribe).pk)
        (message,) = mail.outbox
        assert "List-Unsubscribe" not in message.message()
        assert "List-Unsubscribe-Post" not in message.message()

    def test_a_non_service_email_without_unsubscribe_link_is_refused(self):
        with pytest.raises(ValueError, match="unsubscribe_url"):
            enqueue(unsubscribe="")
        assert not Outbox.objects.exists()


@pytest.mark.django_db
class TestSweep:
    def test_only_rows_pending_longer_than_the_delay_are_requeued(self, settings):
        after = settings.OUTBOX_SWEEP_AFTER
        # Rows whose task never ran: the test's transaction never commits, so nothing was queued.
        old = [enqueue(to=f"old{i}@example.fr") for i in range(2)]
        for row in old:
            backdate(row, after + timedelta(seconds=1))
        fresh = enqueue(to="fresh@example.fr")
        backdate(fresh, after - timedelta(seconds=5))
        sent = enqueue(to="sent@example.fr")
        outbox_deliver(sent.pk)
        backdate(sent, after * 2)
        failed = enqueue(to="failed@example.fr")
        Outbox.objects.filter(pk=failed.pk).update(status=Outbox.Status.FAILED)
        backdate(failed, after * 2)
        mail.outbox.clear()

        assert outbox_due() == [row.pk for row in old]
        assert outbox_sweep.apply().get() == 2
        assert sorted(m.to[0] for m in mail.outbox) == ["old0@example.fr", "old1@example.fr"]
        assert Outbox.objects.get(pk=fresh.pk).status == Outbox.Status.PENDING
        # A second sweep finds nothing more to do, and sends nothing twice.
        assert outbox_sweep.apply().get() == 0
        assert len(mail.outbox) == 2


@pytest.mark.django_db
class TestBrokerOutage:
    def test_queue_send_fails_fast_and_quietly_when_the_broker_is_unreachable(self, caplog):
        row = enqueue()
        with celery_publishing(UNREACHABLE_BROKER, eager=False):
            started = time.perf_counter()
            assert queue_send(row.pk) is False
            first = time.perf_counter() - started
            started = time.perf_counter()
            assert queue_send(row.pk) is False
            second = time.perf_counter() - started
        assert "could not reach the broker" in caplog.text
        # A sign-up waits for this in its request: it must not hang on the outage.
        assert first < 1.0, f"queue_send took {first:.2f}s with the broker down"
        assert second < 1.0, f"queue_send took {second:.2f}s with the broker down"
        row.refresh_from_db()
        assert (row.status, row.attempts) == (Outbox.Status.PENDING, 0)
        assert mail.outbox == []

    def test_a_commit_during_an_outage_succeeds_and_leaves_the_row_for_the_sweep(
        self, make_contact, django_capture_on_commit_callbacks
    ):
        with celery_publishing(UNREACHABLE_BROKER, eager=False):
            started = time.perf_counter()
            with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
                contact = make_contact()
                row = enqueue(contact, to=contact.email)
            elapsed = time.perf_counter() - started
        assert elapsed < 1.0, f"the commit took {elapsed:.2f}s with the broker down"
        row.refresh_from_db()
        assert row.status == Outbox.Status.PENDING
        assert mail.outbox == []
        # The broker is back (in-process here): the sweep sends it.
        backdate(row, timedelta(hours=1))
        assert outbox_sweep.apply().get() == 1
        assert len(mail.outbox) == 1
