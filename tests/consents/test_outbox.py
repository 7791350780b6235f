"""The outbox: written with the change, queued on commit, holding intents (never a live link),
sent once, retried with backoff when due, swept, and never a failed request when the broker is
down."""

from __future__ import annotations

import itertools
import json
import re
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.conf import settings
from django.core import mail
from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.backends.locmem import EmailBackend as LocmemBackend
from django.db import OperationalError, connection, transaction

from consents import clock, links, outbox, services
from consents.models import Contact, Outbox
from consents.outbox import OutboxSendError, email_enqueue, outbox_deliver, outbox_due, queue_send
from consents.tasks import outbox_send, outbox_sweep
from tests.mailsink import Sink
from tests.workers import UNREACHABLE_BROKER, UNREACHABLE_PORT, celery_publishing, waits_counted

UNSUBSCRIBE = re.compile(r"^http://127\.0\.0\.1:8000/unsubscribe/([^/]+)/$")
# The longest a publish may wait on an unreachable broker: the connection timeout the settings give.
BROKER_CONNECT_TIMEOUT = settings.CELERY_BROKER_TRANSPORT_OPTIONS["socket_connect_timeout"]
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


def person(address: str) -> Contact:
    contact, _ = services.contact_get_or_create(email=address)
    return contact


def enqueue(contact=None, *, to="ana@example.fr", is_service=False, **extra):
    return email_enqueue(
        to=to,
        template="note",
        context={"name": "Ana"},
        language="en",
        contact=contact or person(to),
        is_service=is_service,
        **extra,
    )


def later(delta: timedelta):
    """The outbox's clock, ``delta`` from now."""
    return clock.frozen(clock.now() + delta)


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
            # Raised so that the task logs it; the row says when its next attempt is due.
            with (
                later(timedelta(days=attempt)),
                pytest.raises(OutboxSendError, match="ConnectionRefusedError"),
            ):
                outbox_deliver(row.pk)
            row.refresh_from_db()
            assert (row.status, row.attempts) == (Outbox.Status.PENDING, attempt)
            assert "refused the connection" in row.last_error
            assert row.sent_at is None
        with later(timedelta(days=3)):
            assert outbox_deliver(row.pk) == "failed"  # no exception: no more retries
            assert outbox_deliver(row.pk) == "failed"
        row.refresh_from_db()
        assert (row.status, row.attempts) == (Outbox.Status.FAILED, 3)
        assert mail.outbox == []
        assert outbox_due(timedelta(0)) == []  # the sweep leaves failed rows alone

    def test_a_failed_attempt_waits_for_its_backoff_then_the_sweep_sends_it(self, settings):
        # Celery no longer retries by itself (its retries ignored the row's state): the row
        # records its next attempt, and the sweep hands it back once that time has come.
        assert outbox_send.acks_late
        settings.EMAIL_BACKEND = "tests.consents.test_outbox.FlakyBackend"
        settings.OUTBOX_SWEEP_AFTER = timedelta(0)
        row = enqueue()
        assert outbox_send.apply(args=[row.pk]).get() == "pending"
        row.refresh_from_db()
        assert (row.status, row.attempts) == (Outbox.Status.PENDING, 1)
        wait = row.next_attempt_at - clock.now()
        assert timedelta(seconds=50) < wait <= timedelta(seconds=73)
        assert outbox_sweep.apply().get() == 0  # not due yet
        assert outbox_send.apply(args=[row.pk]).get() == "pending"  # a stray task waits too
        row.refresh_from_db()
        assert row.attempts == 1
        with later(wait + timedelta(seconds=1)):
            assert outbox_sweep.apply().get() == 1
        row.refresh_from_db()
        assert (row.status, row.attempts) == (Outbox.Status.SENT, 2)
        assert "TimeoutError" not in row.last_error
        assert len(mail.outbox) == 1

    def test_the_task_stops_retrying_once_the_row_failed(self, settings):
        settings.EMAIL_BACKEND = "tests.consents.test_outbox.BrokenBackend"
        settings.OUTBOX_SWEEP_AFTER = timedelta(0)
        settings.OUTBOX_MAX_ATTEMPTS = 3
        row = enqueue()
        assert outbox_send.apply(args=[row.pk]).get() == "pending"
        for day in (1, 2):
            with later(timedelta(days=day)):
                assert outbox_sweep.apply().get() == 1
        row.refresh_from_db()
        assert (row.status, row.attempts) == (Outbox.Status.FAILED, 3)
        with later(timedelta(days=3)):
            assert outbox_sweep.apply().get() == 0
            assert outbox_send.apply(args=[row.pk]).get() == "failed"
        row.refresh_from_db()
        assert row.attempts == 3


@pytest.mark.django_db
class TestUnsubscribeHeaders:
    def test_a_non_service_email_carries_one_click_unsubscribe(self):
        row = enqueue()
        outbox_deliver(row.pk)
        (message,) = mail.outbox
        url = message.extra_headers["List-Unsubscribe"].strip("<>")
        match = UNSUBSCRIBE.match(url)
        assert match, url
        # Minted at send time, for this contact, bound to the address it was sent to.
        assert links.read("unsubscribe", match.group(1)).contact == row.contact
        assert f"Leave: {url}" in message.body
        assert message.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        rendered = message.message()
        assert rendered["List-Unsubscribe"] == f"<{url}>"
        assert rendered["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

    @pytest.mark.parametrize("with_contact", [False, True])
    def test_a_service_email_has_none(self, with_contact):
        contact = person("ana@example.fr") if with_contact else None
        row = email_enqueue(
            to="ana@example.fr",
            template="note",
            context={"name": "Ana"},
            contact=contact,
            is_service=True,
        )
        outbox_deliver(row.pk)
        (message,) = mail.outbox
        assert "List-Unsubscribe" not in message.message()
        assert "List-Unsubscribe-Post" not in message.message()

    def test_a_non_service_email_without_unsubscribe_link_is_refused(self):
        # Its unsubscribe link is minted for a contact: an email to nobody in particular
        # cannot carry one.
        with pytest.raises(ValueError, match="unsubscribe_url"):
            email_enqueue(to="ana@example.fr", template="note", context={"name": "Ana"})
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
            with waits_counted(UNREACHABLE_PORT) as first:
                assert queue_send(row.pk) is False
            with waits_counted(UNREACHABLE_PORT) as second:
                assert queue_send(row.pk) is False
        assert "could not reach the broker" in caplog.text
        # A sign-up waits for this in its request: it must not hang on the outage. One attempt
        # to connect, bounded by its timeout, and no retry loop sleeping between attempts.
        for waits in (first, second):
            assert len(waits.connects) == 1, waits
            assert waits.sleeps == [], waits
            assert waits.longest_possible <= BROKER_CONNECT_TIMEOUT, waits
        row.refresh_from_db()
        assert (row.status, row.attempts) == (Outbox.Status.PENDING, 0)
        assert mail.outbox == []

    def test_a_commit_during_an_outage_succeeds_and_leaves_the_row_for_the_sweep(
        self, make_contact, django_capture_on_commit_callbacks
    ):
        with (
            celery_publishing(UNREACHABLE_BROKER, eager=False),
            waits_counted(UNREACHABLE_PORT) as waits,
            django_capture_on_commit_callbacks(execute=True),
            transaction.atomic(),
        ):
            contact = make_contact()
            row = enqueue(contact, to=contact.email)
        assert len(waits.connects) == 1 and waits.sleeps == [], waits
        assert waits.longest_possible <= BROKER_CONNECT_TIMEOUT, waits
        row.refresh_from_db()
        assert row.status == Outbox.Status.PENDING
        assert mail.outbox == []
        # The broker is back (in-process here): the sweep sends it.
        backdate(row, timedelta(hours=1))
        assert outbox_sweep.apply().get() == 1
        assert len(mail.outbox) == 1


# --- Intents, not keys --------------------------------------------------------------------------

SIGNED = re.compile(r"[A-Za-z0-9_-]{8,}:[A-Za-z0-9_-]{4,}:[A-Za-z0-9_-]{8,}")


@pytest.mark.django_db
class TestIntents:
    def test_a_row_holds_the_scope_and_parameters_of_its_links_never_a_token(self):
        row = enqueue(links={"confirm_url": links.intent("confirm", s="nonce-1")})
        row.refresh_from_db()
        assert row.links == {
            "confirm_url": {"scope": "confirm", "params": {"s": "nonce-1"}},
            "unsubscribe_url": {"scope": "unsubscribe", "params": {}},
        }
        stored = json.dumps([row.context, row.links])
        assert "http" not in stored and not SIGNED.search(stored)
        # Minted when it is rendered for sending.
        message = outbox.render_email(row)
        assert "/unsubscribe/" in message.extra_headers["List-Unsubscribe"]

    def test_a_link_passed_as_plain_context_is_refused(self):
        with pytest.raises(ValueError, match="unsubscribe_url"):
            email_enqueue(
                to="ana@example.fr",
                template="note",
                context={"name": "Ana", "unsubscribe_url": "https://assent.example/u/x/"},
                contact=person("ana@example.fr"),
            )
        with pytest.raises(ValueError, match="scope"):
            enqueue(links={"x_url": {"scope": "everything", "params": {}}})
        with pytest.raises(ValueError, match="takes"):
            enqueue(links={"x_url": links.intent("preferences") | {"params": {"s": "1"}}})
        assert not Outbox.objects.exists()

    def test_links_are_bound_to_the_address_the_email_goes_to(self):
        contact = person("ana@example.fr")
        row = enqueue(contact, to="ana@example.fr")
        # The address changes before the email leaves: its links are dead on arrival.
        services.contact_email_change(
            contact=contact, new_email="ana@new.example", proof=services.Proof(actor="person")
        )
        row.refresh_from_db()
        url = outbox.render_email(row).extra_headers["List-Unsubscribe"].strip("<>")
        with pytest.raises(links.LinkError) as error:
            links.read("unsubscribe", UNSUBSCRIBE.match(url).group(1))
        assert error.value.reason == "revoked" and not error.value.same_address


# --- Retries: explicit, with backoff, only when due ---------------------------------------------


def test_the_backoff_doubles_up_to_its_cap_with_some_jitter(settings):
    settings.OUTBOX_RETRY_BASE = timedelta(seconds=60)
    settings.OUTBOX_RETRY_MAX = timedelta(hours=1)
    for attempts, base in [(1, 60), (2, 120), (3, 240), (6, 1920), (7, 3600), (20, 3600)]:
        delays = {outbox.retry_delay(attempts).total_seconds() for _ in range(20)}
        assert all(base <= d <= base * 1.2 for d in delays), (attempts, delays)
        assert len(delays) > 1  # jittered


def test_the_default_attempts_span_about_a_day(settings):
    """Documented in the README: an outage of a day loses nothing."""
    shortest = sum(
        min(
            settings.OUTBOX_RETRY_MAX.total_seconds(),
            settings.OUTBOX_RETRY_BASE.total_seconds() * 2 ** (n - 1),
        )
        for n in range(1, settings.OUTBOX_MAX_ATTEMPTS)
    )
    assert 23 * 3600 < shortest < 26 * 3600


class OutageBackend(BaseEmailBackend):
    """The email service, down until ``back_at`` (on the outbox's clock); it records each
    message it accepts."""

    back_at = None
    accepted: list = []

    def send_messages(self, messages):
        if clock.now() < OutageBackend.back_at:
            raise ConnectionRefusedError("the email service is down")
        for message in messages:
            OutageBackend.accepted.append((message.to[0], message.extra_headers["Message-ID"]))
        return len(messages)


@pytest.mark.django_db
def test_an_email_service_down_for_two_hours_loses_no_email_and_sends_none_twice(settings):
    settings.EMAIL_BACKEND = "tests.consents.test_outbox.OutageBackend"
    start = clock.now().replace(microsecond=0)
    OutageBackend.back_at = start + timedelta(hours=2)
    OutageBackend.accepted = []
    with clock.frozen(start):
        rows = [enqueue(to=f"person{i}@example.fr") for i in range(20)]
        for row in rows:
            outbox_send.apply(args=[row.pk])  # the task queued on commit: the service is down
    # Beat runs the sweep every minute, for five hours.
    minute = 0
    while minute < 5 * 60 and Outbox.objects.exclude(status=Outbox.Status.SENT).exists():
        minute += 1
        with clock.frozen(start + timedelta(minutes=minute)):
            outbox_sweep.apply()
    statuses = set(Outbox.objects.values_list("status", flat=True))
    assert statuses == {Outbox.Status.SENT}, statuses
    recipients = [to for to, _ in OutageBackend.accepted]
    assert sorted(recipients) == sorted(row.to for row in rows)  # each once
    # Back within the backoff's cap of the service's return.
    assert minute <= 120 + 75
    for row in Outbox.objects.all():
        assert row.attempts > 1 and row.sent_at >= OutageBackend.back_at


# --- The provider call, outside the transaction; a crash after it ---------------------------------


class WatchingBackend(LocmemBackend):
    """Checks, while the provider is called, what the database already says about the row."""

    seen: list = []

    def send_messages(self, messages):
        row = Outbox.objects.get(to=messages[0].to[0])
        WatchingBackend.seen.append(
            {
                "in_transaction": connection.in_atomic_block,
                "attempts": row.attempts,
                "message_id": row.message_id,
                "header": messages[0].extra_headers.get("Message-ID"),
                "leased": row.next_attempt_at > clock.now(),
            }
        )
        return super().send_messages(messages)


@pytest.mark.django_db(transaction=True)
def test_the_provider_is_called_outside_any_transaction_with_the_attempt_recorded(settings):
    settings.EMAIL_BACKEND = "tests.consents.test_outbox.WatchingBackend"
    WatchingBackend.seen = []
    row = enqueue()  # committed at once: its task runs (in-process) and sends
    row.refresh_from_db()
    assert row.status == Outbox.Status.SENT
    (seen,) = WatchingBackend.seen
    # No lock held while the provider takes its time, and the attempt is on record first.
    assert seen["in_transaction"] is False
    assert seen["attempts"] == 1 and seen["leased"]
    assert seen["message_id"] == seen["header"] == row.message_id
    assert re.fullmatch(r"<[0-9a-f-]{36}@assent\.localhost>", row.message_id)


@pytest.mark.django_db
def test_a_crash_after_the_provider_accepted_resends_with_the_same_message_id(
    settings, tmp_path, monkeypatch
):
    """The database is gone at the moment the row would say "sent": once it is back, the row is
    sent again with the same Message-ID and key, which a deduplicating provider delivers once."""
    settings.EMAIL_BACKEND = "tests.mailsink.DedupingBackend"
    settings.MAILSINK_DIR = str(tmp_path)
    settings.OUTBOX_IDEMPOTENCY_HEADER = "idempotencyKey"
    settings.OUTBOX_SWEEP_AFTER = timedelta(0)
    sink = Sink(tmp_path)
    row = enqueue()
    real_record = outbox._record_sent

    def database_gone(*args, **kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(outbox, "_record_sent", database_gone)
    with pytest.raises(OperationalError):
        outbox_deliver(row.pk)
    monkeypatch.setattr(outbox, "_record_sent", real_record)
    row.refresh_from_db()
    assert (row.status, row.attempts) == (Outbox.Status.PENDING, 1)
    assert len(sink.delivered) == 1

    # Leased: nobody sends it again before the lease ends...
    assert outbox_deliver(row.pk) == "pending"
    assert outbox_due() == []
    # ...then the sweep does, with the same identity.
    with later(settings.OUTBOX_SEND_LEASE + timedelta(seconds=1)):
        assert outbox_sweep.apply().get() == 1
    row.refresh_from_db()
    assert (row.status, row.attempts) == (Outbox.Status.SENT, 2)
    key = outbox.idempotency_key(row.message_id)
    assert [call[0] for call in sink.calls] == [key, key]
    assert len(sink.delivered) == 1  # the provider recognised it
    assert row.provider_message_id == f"sink-{key}"


class _Killed(BaseException):
    """A worker killed midway (not an ``Exception``: nothing catches it on the way)."""


@pytest.fixture
def drains(monkeypatch, settings):
    """Publishing as deployed (not in-process), with the drains queued and the send tasks
    handed over recorded instead of published: ``kicks`` counts the drains queued, ``handed``
    lists the rows handed over, in order."""
    from django.core.cache import cache

    from consents.tasks import outbox_drain

    record = SimpleNamespace(kicks=0, handed=[], refuse=False)

    def kick(*args, **kwargs):
        if record.refuse:
            raise OSError("the broker is down")
        record.kicks += 1

    monkeypatch.setattr(outbox_drain, "apply_async", kick)
    monkeypatch.setattr(outbox, "queue_send", lambda pk: record.handed.append(pk) or True)
    with celery_publishing(settings.REDIS_URL, eager=False):
        yield record
    cache.delete(outbox.DRAIN_KEY)


def committed_row(to: str, django_capture_on_commit_callbacks) -> Outbox:
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        return enqueue(to=to)


@pytest.mark.redis
@pytest.mark.django_db
class TestDrain:
    def test_a_burst_of_commits_queues_one_drain_which_hands_each_row_over_once(
        self, drains, django_capture_on_commit_callbacks
    ):
        from django.core.cache import cache

        rows = [
            committed_row(f"p{i}@example.fr", django_capture_on_commit_callbacks) for i in range(3)
        ]
        # The first commit queued a drain; the next two found it on its way.
        assert (drains.kicks, drains.handed) == (1, [])
        assert outbox.outbox_drain_run() == 3
        assert drains.handed == [row.pk for row in rows]
        assert all(row.queued_at for row in Outbox.objects.filter(pk__in=drains.handed))
        assert cache.get(outbox.DRAIN_KEY) is None  # the next commit queues a drain again
        fourth = committed_row("p3@example.fr", django_capture_on_commit_callbacks)
        assert drains.kicks == 2
        assert outbox.outbox_drain_run() == 1  # the three handed over are not handed again
        assert drains.handed[3:] == [fourth.pk]

    def test_a_row_committed_while_the_drain_ran_is_handed_over_by_its_last_look(
        self, drains, django_capture_on_commit_callbacks, monkeypatch
    ):
        first = committed_row("first@example.fr", django_capture_on_commit_callbacks)
        real = outbox.outbox_hand_over
        late = []

        def hand_over_then_a_commit(*args, **kwargs):
            handed = real(*args, **kwargs)
            if not late:  # the key is still there: this commit queues no drain
                late.append(committed_row("late@example.fr", django_capture_on_commit_callbacks))
            return handed

        monkeypatch.setattr(outbox, "outbox_hand_over", hand_over_then_a_commit)
        assert outbox.outbox_drain_run() == 2
        assert drains.kicks == 1
        assert drains.handed == [first.pk, late[0].pk]

    def test_rows_waiting_for_their_next_attempt_or_sent_are_not_handed_over(
        self, drains, django_capture_on_commit_callbacks
    ):
        waiting = committed_row("waiting@example.fr", django_capture_on_commit_callbacks)
        Outbox.objects.filter(pk=waiting.pk).update(
            next_attempt_at=clock.now() + timedelta(hours=1)
        )
        sent = committed_row("sent@example.fr", django_capture_on_commit_callbacks)
        Outbox.objects.filter(pk=sent.pk).update(status=Outbox.Status.SENT)
        due = committed_row("due@example.fr", django_capture_on_commit_callbacks)
        assert outbox.outbox_drain_run() == 1
        assert drains.handed == [due.pk]

    def test_the_broker_down_releases_the_key_and_the_next_commit_tries_again(
        self, drains, django_capture_on_commit_callbacks, caplog
    ):
        from django.core.cache import cache

        drains.refuse = True
        row = committed_row("down@example.fr", django_capture_on_commit_callbacks)
        assert cache.get(outbox.DRAIN_KEY) is None
        assert "could not reach the broker to queue a drain" in caplog.text
        drains.refuse = False
        committed_row("back@example.fr", django_capture_on_commit_callbacks)
        assert drains.kicks == 1
        # The row committed during the outage leaves with the next drain.
        assert outbox.outbox_drain_run() == 2
        assert drains.handed[0] == row.pk

    def test_a_drain_killed_midway_leaves_its_batch_for_the_next(
        self, drains, django_capture_on_commit_callbacks, monkeypatch
    ):
        rows = [
            committed_row(f"k{i}@example.fr", django_capture_on_commit_callbacks) for i in range(3)
        ]

        def killed_on_the_second(pk):
            if len(drains.handed) == 1:
                raise _Killed
            drains.handed.append(pk)
            return True

        monkeypatch.setattr(outbox, "queue_send", killed_on_the_second)
        with pytest.raises(_Killed):
            outbox.outbox_drain_run()
        # Its transaction rolled back: no row is marked as handed over.
        assert not Outbox.objects.filter(queued_at__isnull=False).exists()
        monkeypatch.setattr(outbox, "queue_send", lambda pk: drains.handed.append(pk) or True)
        assert outbox.outbox_drain_run() == 3
        assert drains.handed == [rows[0].pk] + [row.pk for row in rows]

    def test_a_row_the_broker_refuses_stops_the_hand_over_and_stays_for_the_sweep(
        self, drains, django_capture_on_commit_callbacks, monkeypatch
    ):
        rows = [
            committed_row(f"r{i}@example.fr", django_capture_on_commit_callbacks) for i in range(3)
        ]
        monkeypatch.setattr(
            outbox, "queue_send", lambda pk: pk == rows[0].pk and (drains.handed.append(pk) or True)
        )
        assert outbox.outbox_hand_over(batch=2) == 1
        assert list(
            Outbox.objects.filter(queued_at__isnull=False).values_list("pk", flat=True)
        ) == [rows[0].pk]
        backdate(rows[1], settings.OUTBOX_SWEEP_AFTER + timedelta(seconds=1))
        assert rows[1].pk in outbox_due()

    def test_batches_follow_each_other_until_none_is_left(
        self, drains, django_capture_on_commit_callbacks
    ):
        rows = [
            committed_row(f"b{i}@example.fr", django_capture_on_commit_callbacks) for i in range(5)
        ]
        assert outbox.outbox_hand_over(batch=2) == 5
        assert drains.handed == [row.pk for row in rows]

    def test_without_a_cache_the_workers_share_each_row_has_its_own_task(
        self, drains, django_capture_on_commit_callbacks, settings
    ):
        settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
        row = committed_row("alone@example.fr", django_capture_on_commit_callbacks)
        assert (drains.kicks, drains.handed) == (0, [row.pk])
