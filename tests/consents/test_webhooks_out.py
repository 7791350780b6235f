"""Outgoing webhooks: Standard Webhooks v1 signatures, thin payloads, written with the ledger
event, sent through a real local receiver, retried for days with the same webhook-id, refused for
addresses inside the network."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.db import transaction
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from consents import clock, services, webhooks_out
from consents.models import Contact, Outbox, WebhookDelivery, WebhookEndpoint
from consents.tasks import webhooks_sweep
from consents.webhooks_out import UnsafeAddress, endpoint_create, webhook_deliver, webhooks_due
from tests.conftest import at
from tests.consents.webhook_receiver import Answer, Receiver
from tests.workers import UNREACHABLE_BROKER, celery_publishing

NOW = at("2026-11-28T12:00")
pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def webhook_settings(settings: Any) -> Iterator[None]:
    """The receiver listens on 127.0.0.1: allowed here, as the setting allows for local tests.
    Celery tasks run in-process."""
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True
    settings.WEBHOOK_REQUIRE_HTTPS = False
    settings.WEBHOOK_TIMEOUT = 5
    with celery_publishing("memory://", eager=True):
        yield


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


@pytest.fixture
def endpoint(receiver: Receiver) -> tuple[WebhookEndpoint, str]:
    return endpoint_create(url=receiver.url, description="CRM")


@pytest.fixture
def lea(make_topic: Callable[..., Any], make_contact: Callable[..., Contact]) -> Contact:
    make_topic("newsletter")
    return make_contact(email="lea@example.fr")


def grant(contact: Contact, channel: str = "email", **proof: Any) -> Any:
    proof.setdefault("method", "web_form")
    proof.setdefault("actor", "person")
    return services.consent_grant(
        contact=contact, topic="newsletter", channel=channel, proof=services.Proof(**proof)
    )


def withdraw(contact: Contact, channel: str = "email") -> Any:
    return services.consent_withdraw(
        contact=contact,
        topic="newsletter",
        channel=channel,
        proof=services.Proof(method="unsubscribe_link", actor="person"),
    )


# --- Signed as the specification says -------------------------------------------------------------


def test_a_consent_sends_a_thin_signed_message_the_reference_verifier_accepts(
    lea: Contact,
    endpoint: tuple[WebhookEndpoint, str],
    receiver: Receiver,
    django_capture_on_commit_callbacks: Any,
) -> None:
    _, secret = endpoint
    with django_capture_on_commit_callbacks(execute=True):
        event = grant(lea, ip_address="203.0.113.7", user_agent="UA")
    assert len(receiver.received) == 1
    got = receiver.received[0]
    assert got.headers["content-type"] == "application/json"
    assert got.headers["webhook-id"].startswith("msg_")
    assert got.headers["webhook-signature"].startswith("v1,")
    verified = Webhook(secret).verify(got.body, got.headers)
    assert verified["type"] == "consent.granted"
    data = verified["data"]
    assert data == {
        "event_id": f"evt_{event.pk}",
        "contact": lea.public_id,
        "sequence": event.seq,
        "previous_sequence": None,
        "topic": "newsletter",
        "channel": "email",
        "method": "web_form",
        "occurred_at": data["occurred_at"],
        # An email tool needs the address to add it; nothing else about the person is sent.
        "email": "lea@example.fr",
    }
    assert "203.0.113.7" not in got.body.decode() and "UA" not in got.body.decode()


def test_a_tampered_body_is_rejected_by_the_reference_verifier(
    lea: Contact,
    endpoint: tuple[WebhookEndpoint, str],
    receiver: Receiver,
    django_capture_on_commit_callbacks: Any,
) -> None:
    _, secret = endpoint
    with django_capture_on_commit_callbacks(execute=True):
        withdraw(lea)
    got = receiver.received[0]
    Webhook(secret).verify(got.body, got.headers)
    tampered = got.body.replace(b"consent.withdrawn", b"consent.granted")
    assert tampered != got.body
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(tampered, got.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(webhooks_out.secret_new()).verify(got.body, got.headers)


def test_secrets_are_whsec_and_32_random_bytes() -> None:
    secret = webhooks_out.secret_new()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    assert secret != webhooks_out.secret_new()


def test_during_a_rotation_both_secrets_sign_then_only_the_new_one(
    settings: Any,
    lea: Contact,
    endpoint: tuple[WebhookEndpoint, str],
    receiver: Receiver,
    django_capture_on_commit_callbacks: Any,
) -> None:
    settings.WEBHOOK_SECRET_OVERLAP = timedelta(hours=24)
    ep, old = endpoint
    with clock.frozen(NOW):
        new = webhooks_out.endpoint_rotate_secret(endpoint=ep)
        with django_capture_on_commit_callbacks(execute=True):
            grant(lea)
    got = receiver.received[-1]
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    Webhook(old).verify(got.body, got.headers)
    Webhook(new).verify(got.body, got.headers)
    with clock.frozen(NOW + timedelta(hours=25)), django_capture_on_commit_callbacks(execute=True):
        withdraw(lea)
    got = receiver.received[-1]
    assert len(got.headers["webhook-signature"].split(" ")) == 1
    Webhook(new).verify(got.body, got.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(got.body, got.headers)


# --- Which facts, and what they carry -------------------------------------------------------------


def test_every_kind_of_fact_is_told_with_its_type(
    lea: Contact,
    endpoint: tuple[WebhookEndpoint, str],
    receiver: Receiver,
    django_capture_on_commit_callbacks: Any,
) -> None:
    person = services.Proof(method="web_form", actor="person")
    system = services.Proof(actor="system")
    with clock.frozen(NOW), django_capture_on_commit_callbacks(execute=True):
        services.consent_grant(
            contact=lea, topic="newsletter", channel="email", proof=person, doi="pending"
        )
        services.consent_confirm(contact=lea, topic="newsletter", channel="email", proof=person)
        services.consent_grant(contact=lea, topic="newsletter", channel="sms", proof=person)
        services.marketing_pause(
            contact=lea, channel="*", until=NOW + timedelta(days=30), proof=person
        )
        services.marketing_resume(contact=lea, channel="*", proof=person)
        services.purchase_record(contact=lea, category="shoes", product="boot-42", proof=system)
        services.bounce_record(contact=lea, hard=True, proof=system)
        services.complaint_record(contact=lea, proof=system)
        services.consent_withdraw(
            contact=lea,
            topic="newsletter",
            channel="sms",
            proof=services.Proof(method="unsubscribe_link", actor="person"),
        )
        services.interaction_record(contact=lea, kind="click", proof=system)
        services.notice_publish(topic=None, language="fr", text="Nouvelle version")
    types = [b["type"] for b in receiver.bodies()]
    assert types == [
        "consent.pending",
        "doi.confirmed",
        "consent.granted",
        "contact.paused",
        "contact.resumed",
        "purchase.recorded",
        "address.undeliverable",
        "consent.withdrawn",
        "consent.withdrawn",
        "notice.published",
    ]
    by_type = {b["type"]: b["data"] for b in receiver.bodies()}
    # The SMS consent and SMS opt-out need no email address; the email ones carry it.
    sms = [b["data"] for b in receiver.bodies() if b["data"].get("channel") == "sms"]
    assert sms and all("email" not in d for d in sms)
    assert by_type["address.undeliverable"]["email"] == "lea@example.fr"
    assert by_type["purchase.recorded"]["category"] == "shoes"
    assert "email" not in by_type["contact.paused"]
    assert by_type["notice.published"]["version"] == 1
    # Sequences follow the ledger; previous_sequence names the previous message's, so that a
    # receiver sees a gap (the interaction, not sent, leaves none: 9 to 11 is the sequence).
    contact_bodies = [b["data"] for b in receiver.bodies() if "contact" in b["data"]]
    assert [d["previous_sequence"] for d in contact_bodies[1:]] == [
        d["sequence"] for d in contact_bodies[:-1]
    ]


def test_an_unproven_or_prechecked_opt_in_is_not_told_as_consent(
    lea: Contact,
    endpoint: tuple[WebhookEndpoint, str],
    receiver: Receiver,
    django_capture_on_commit_callbacks: Any,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        grant(lea, method="import", actor="system")  # no proof reference: not consent
        services.consent_grant(
            contact=lea,
            topic="newsletter",
            channel="email",
            proof=services.Proof(method="web_form", actor="person"),
            prechecked=True,
        )
    assert receiver.received == []


def test_an_endpoint_gets_only_the_types_it_asked_for(
    lea: Contact, receiver: Receiver, django_capture_on_commit_callbacks: Any
) -> None:
    endpoint_create(url=receiver.url, event_types=["consent.withdrawn"])
    with django_capture_on_commit_callbacks(execute=True):
        grant(lea)
        withdraw(lea)
    assert [b["type"] for b in receiver.bodies()] == ["consent.withdrawn"]


def test_unknown_event_types_are_refused() -> None:
    with pytest.raises(ValidationError) as caught:
        endpoint_create(url="http://127.0.0.1:9/", event_types=["consent.granted", "nope"])
    assert "event_types" in caught.value.message_dict


def test_erasure_is_told_without_an_address_and_wipes_it_from_earlier_messages(
    lea: Contact,
    endpoint: tuple[WebhookEndpoint, str],
    receiver: Receiver,
    django_capture_on_commit_callbacks: Any,
) -> None:
    receiver.stop()  # the first message waits: its address must not leave after the erasure
    with django_capture_on_commit_callbacks(execute=True):
        withdraw(lea)
    assert WebhookDelivery.objects.get().email == "lea@example.fr"
    receiver.start()
    with django_capture_on_commit_callbacks(execute=True):
        services.contact_erase(contact=lea, reason="DSR 1", actor="staff:dpo")
    assert not WebhookDelivery.objects.exclude(email="").exists()
    with clock.frozen(clock.now() + timedelta(hours=1)):
        for delivery_id in webhooks_due():
            webhook_deliver(delivery_id)
    bodies = receiver.bodies()
    assert sorted(b["type"] for b in bodies) == ["consent.withdrawn", "contact.erased"]
    assert all("lea@example.fr" not in json.dumps(b) for b in bodies)
    erased = next(b for b in bodies if b["type"] == "contact.erased")
    assert erased["data"]["contact"] == lea.public_id


# --- The outbox: with the transaction, and whatever the broker ------------------------------------


def test_a_rolled_back_write_sends_nothing(
    lea: Contact,
    endpoint: tuple[WebhookEndpoint, str],
    receiver: Receiver,
    django_capture_on_commit_callbacks: Any,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        try:
            with transaction.atomic():
                grant(lea)
                raise RuntimeError("the request fails after the write")
        except RuntimeError:
            pass
    assert not WebhookDelivery.objects.exists()
    assert receiver.received == []


def test_a_committed_write_is_sent_by_the_sweep_when_the_broker_was_down(
    lea: Contact,
    endpoint: tuple[WebhookEndpoint, str],
    receiver: Receiver,
    django_capture_on_commit_callbacks: Any,
) -> None:
    with (
        celery_publishing(UNREACHABLE_BROKER),
        django_capture_on_commit_callbacks(execute=True),
        clock.frozen(NOW),
    ):
        grant(lea)  # the request succeeds; the broker could not be reached
    assert receiver.received == []
    assert WebhookDelivery.objects.get().status == "pending"
    with clock.frozen(NOW + timedelta(minutes=3)):
        assert webhooks_sweep() == 1
    assert [b["type"] for b in receiver.bodies()] == ["consent.granted"]
    assert WebhookDelivery.objects.get().status == "delivered"


def test_a_receiver_down_for_two_hours_gets_every_event_once_back(
    lea: Contact,
    make_contact: Callable[..., Contact],
    endpoint: tuple[WebhookEndpoint, str],
    receiver: Receiver,
    django_capture_on_commit_callbacks: Any,
) -> None:
    _, secret = endpoint
    receiver.stop()
    tom = make_contact(email="tom@example.fr")
    # Events through the two hours of the outage, each first attempted (and refused) at once.
    t = NOW
    for minute in range(0, 120, 20):
        t = NOW + timedelta(minutes=minute)
        with clock.frozen(t), django_capture_on_commit_callbacks(execute=True):
            grant(lea) if minute % 40 == 0 else withdraw(lea)
            grant(tom)
    deliveries = WebhookDelivery.objects.order_by("id")
    assert deliveries.count() == 12
    assert set(deliveries.values_list("status", flat=True)) == {"pending"}
    message_ids = set(deliveries.values_list("message_id", flat=True))
    # The sweep runs every minute of the fake clock; the receiver comes back after two hours.
    back = NOW + timedelta(hours=2)
    minute = NOW
    while minute < NOW + timedelta(hours=8):
        minute += timedelta(minutes=1)
        if minute >= back and receiver._server is None:
            receiver.start()
        with clock.frozen(minute):
            for delivery_id in webhooks_due(older_than=timedelta(0)):
                webhook_deliver(delivery_id)
        if not WebhookDelivery.objects.filter(status="pending").exists():
            break
    assert minute < back + timedelta(hours=3)  # the backoff is capped: back within hours
    assert set(deliveries.values_list("status", flat=True)) == {"delivered"}
    received_ids = [r.headers["webhook-id"] for r in receiver.received]
    assert sorted(received_ids) == sorted(message_ids)  # every event, each once
    assert all(WebhookDelivery.objects.get(message_id=m).attempts > 1 for m in message_ids)
    for got in receiver.received:
        Webhook(secret).verify(got.body, got.headers)
    # The receiver can put each contact's messages in order and see that none is missing.
    for contact in (lea, tom):
        data = sorted(
            (b["data"] for b in receiver.bodies() if b["data"]["contact"] == contact.public_id),
            key=lambda d: d["sequence"],
        )
        assert [d["previous_sequence"] for d in data[1:]] == [d["sequence"] for d in data[:-1]]


def test_every_retry_carries_the_same_webhook_id_and_body(
    lea: Contact,
    endpoint: tuple[WebhookEndpoint, str],
    receiver: Receiver,
    django_capture_on_commit_callbacks: Any,
) -> None:
    answers = iter([Answer(500), Answer(503), Answer(200)])
    receiver.answer = lambda _: next(answers)
    with clock.frozen(NOW), django_capture_on_commit_callbacks(execute=True):
        grant(lea)
    for hours in (1, 2):
        with clock.frozen(NOW + timedelta(hours=hours)):
            for delivery_id in webhooks_due():
                webhook_deliver(delivery_id)
    assert len(receiver.received) == 3
    assert len({r.headers["webhook-id"] for r in receiver.received}) == 1
    assert len({r.body for r in receiver.received}) == 1
    row = WebhookDelivery.objects.get()
    assert (row.status, row.attempts, row.response_status) == ("delivered", 3, 200)
    assert row.latency_ms is not None


def test_retry_after_is_honoured(
    lea: Contact,
    endpoint: tuple[WebhookEndpoint, str],
    receiver: Receiver,
    django_capture_on_commit_callbacks: Any,
) -> None:
    receiver.answer = lambda _: Answer(429, {"Retry-After": "7200"})
    with clock.frozen(NOW), django_capture_on_commit_callbacks(execute=True):
        grant(lea)
    row = WebhookDelivery.objects.get()
    assert row.status == "pending"
    assert row.next_attempt_at >= NOW + timedelta(hours=2)
    with clock.frozen(NOW + timedelta(minutes=90)):
        assert webhooks_due() == []


def test_redirects_are_not_followed(
    lea: Contact,
    endpoint: tuple[WebhookEndpoint, str],
    receiver: Receiver,
    django_capture_on_commit_callbacks: Any,
) -> None:
    receiver.answer = lambda got: (
        Answer(302, {"Location": "http://169.254.169.254/latest/meta-data/"})
        if got.path == "/hooks/assent"
        else Answer(200)
    )
    with django_capture_on_commit_callbacks(execute=True):
        grant(lea)
    assert [r.path for r in receiver.received] == ["/hooks/assent"]
    row = WebhookDelivery.objects.get()
    assert row.status == "pending" and "redirects are not followed" in row.last_error


def test_410_gone_switches_the_endpoint_off(
    lea: Contact,
    endpoint: tuple[WebhookEndpoint, str],
    receiver: Receiver,
    django_capture_on_commit_callbacks: Any,
) -> None:
    receiver.answer = lambda _: Answer(410)
    with django_capture_on_commit_callbacks(execute=True):
        grant(lea)
    ep = WebhookEndpoint.objects.get()
    assert not ep.active and "410" in ep.disabled_reason
    assert WebhookDelivery.objects.get().status == "failed"
    with django_capture_on_commit_callbacks(execute=True):
        withdraw(lea)  # an inactive endpoint is told nothing more
    assert WebhookDelivery.objects.count() == 1
    assert len(receiver.received) == 1


def test_after_three_days_of_failures_the_endpoint_is_failing_and_administrators_are_told(
    django_user_model: Any,
    lea: Contact,
    endpoint: tuple[WebhookEndpoint, str],
    receiver: Receiver,
    django_capture_on_commit_callbacks: Any,
) -> None:
    django_user_model.objects.create_superuser("root", "root@assent.example", "x" * 16)
    receiver.answer = lambda _: Answer(500)
    with clock.frozen(NOW), django_capture_on_commit_callbacks(execute=True):
        grant(lea)
    t = NOW
    attempts = 1
    while WebhookDelivery.objects.get().status == "pending":
        t = WebhookDelivery.objects.get().next_attempt_at
        with clock.frozen(t), django_capture_on_commit_callbacks(execute=True):
            webhook_deliver(WebhookDelivery.objects.get().pk)
        attempts += 1
        assert attempts < 40
    row = WebhookDelivery.objects.get()
    assert row.status == "failed" and row.attempts == len(receiver.received)
    assert timedelta(hours=60) < t - NOW <= timedelta(hours=72)
    assert 10 <= row.attempts <= 30
    ep = WebhookEndpoint.objects.get()
    assert ep.failing_since is not None and ep.active
    told = Outbox.objects.get(template="webhook-failing")
    assert told.to == "root@assent.example"
    assert [m.to for m in mail.outbox] == [["root@assent.example"]]
    # A later success clears the mark.
    receiver.answer = lambda _: Answer(200)
    with clock.frozen(t + timedelta(hours=1)), django_capture_on_commit_callbacks(execute=True):
        withdraw(lea)
    assert WebhookEndpoint.objects.get().failing_since is None


def test_a_time_range_is_replayed_with_the_same_webhook_ids(
    lea: Contact,
    endpoint: tuple[WebhookEndpoint, str],
    receiver: Receiver,
    django_capture_on_commit_callbacks: Any,
) -> None:
    ep, _ = endpoint
    for hours in (0, 1, 2):
        with (
            clock.frozen(NOW + timedelta(hours=hours)),
            django_capture_on_commit_callbacks(execute=True),
        ):
            grant(lea) if hours != 1 else withdraw(lea)
    first = [r.headers["webhook-id"] for r in receiver.received]
    with clock.frozen(NOW + timedelta(hours=3)), django_capture_on_commit_callbacks(execute=True):
        replayed = webhooks_out.deliveries_replay(
            endpoint=ep, start=NOW + timedelta(minutes=30), end=NOW + timedelta(hours=3)
        )
    assert replayed == 2
    again = [r.headers["webhook-id"] for r in receiver.received[3:]]
    assert again == first[1:]


# --- Where requests may go ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hook",
        "https://localhost/hook",
        "https://10.1.2.3/hook",
        "https://192.168.1.10/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://[::1]/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://[fd00::1]/hook",
        "https://100.64.0.1/hook",
        "https://0.0.0.0/hook",
    ],
)
def test_endpoints_inside_the_network_are_refused_when_saved(settings: Any, url: str) -> None:
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False
    with pytest.raises(UnsafeAddress) as caught:
        endpoint_create(url=url)
    assert "url" in caught.value.message_dict
    assert not WebhookEndpoint.objects.exists()


def test_plain_http_is_refused_when_https_is_required(settings: Any) -> None:
    settings.WEBHOOK_REQUIRE_HTTPS = True
    with pytest.raises(ValidationError) as caught:
        endpoint_create(url="http://hooks.example.com/assent")
    assert caught.value.message_dict["url"] == ["The endpoint must be an https:// URL."]


def test_a_public_address_is_accepted(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False
    monkeypatch.setattr(
        webhooks_out.network.socket,
        "getaddrinfo",
        lambda *a, **k: [(2, 1, 6, "", ("93.184.215.14", 443))],
    )
    endpoint, _ = endpoint_create(url="https://crm.example.com/hooks")
    assert endpoint.pk


def test_an_endpoint_that_resolves_inside_the_network_later_is_refused_at_send_time(
    settings: Any,
    lea: Contact,
    endpoint: tuple[WebhookEndpoint, str],
    receiver: Receiver,
    django_capture_on_commit_callbacks: Any,
) -> None:
    # Saved while allowed (as a name that resolved outside would be), sent when it is not.
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False
    with django_capture_on_commit_callbacks(execute=True):
        grant(lea)
    assert receiver.received == []
    row = WebhookDelivery.objects.get()
    assert row.status == "pending" and "loopback, private" in row.last_error


def test_the_apis_view_of_an_endpoint_never_shows_its_secret(
    endpoint: tuple[WebhookEndpoint, str],
) -> None:
    ep, secret = endpoint
    shown = webhooks_out.endpoint_as_dict(ep)
    assert secret not in json.dumps(shown)
    assert shown["url"] == ep.url and shown["event_types"] == [] and shown["active"]
    updated = webhooks_out.endpoint_update(
        endpoint=ep, event_types=["contact.erased"], active=False
    )
    assert webhooks_out.endpoint_as_dict(updated)["event_types"] == ["contact.erased"]


def test_the_rfc_8058_one_click_unsubscribe_is_told_with_the_address(
    lea: Contact,
    endpoint: tuple[WebhookEndpoint, str],
    receiver: Receiver,
    django_capture_on_commit_callbacks: Any,
) -> None:
    from django.test import Client

    from consents import links

    grant(lea)
    provider = Client(enforce_csrf_checks=True)
    with django_capture_on_commit_callbacks(execute=True):
        response = provider.post(
            f"/unsubscribe/{links.make('unsubscribe', lea)}/",
            data="List-Unsubscribe=One-Click",
            content_type="application/x-www-form-urlencoded",
        )
    assert response.status_code == 200
    withdrawn = receiver.bodies()[-1]
    assert withdrawn["type"] == "consent.withdrawn"
    assert withdrawn["data"]["method"] == "one_click_unsubscribe"
    assert (withdrawn["data"]["topic"], withdrawn["data"]["channel"]) == ("*", "*")
    # An email tool needs the address to stop sending to it.
    assert withdrawn["data"]["email"] == "lea@example.fr"
