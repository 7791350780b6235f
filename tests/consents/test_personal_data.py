"""Erasure leaves nothing behind: every field of every model has a rule, and the rules hold."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps
from django.contrib.sessions.models import Session
from django.core import mail
from django.core.cache import cache
from django.test import Client

from consents import clock, links, services
from consents.models import (
    Contact,
    Evidence,
    ImportedRow,
    ImportRun,
    Outbox,
    Topic,
    WebhookDelivery,
    WebhookEndpoint,
)
from consents.outbox import email_enqueue, outbox_deliver
from consents.personal_data import APPS, DELETED, INVENTORY, WIPED
from preferences import devmail, pagecache
from preferences.models import CenterSession, LinkRequest, PendingSignup, TrackingInbox

RULE_PREFIXES = (WIPED, DELETED, "kept: ")


def model_fields() -> set[str]:
    found = set()
    for app in APPS:
        for model in apps.get_app_config(app).get_models():
            fields = [*model._meta.concrete_fields, *model._meta.many_to_many]
            found |= {f"{model._meta.label}.{f.name}" for f in fields}
    return found


def test_every_field_of_every_model_has_an_erasure_rule() -> None:
    fields = model_fields()
    missing = sorted(fields - INVENTORY.keys())
    assert not missing, f"fields with no erasure rule in consents/personal_data.py: {missing}"
    stale = sorted(INVENTORY.keys() - fields)
    assert not stale, f"rules for fields that no longer exist: {stale}"
    for name, rule in INVENTORY.items():
        assert rule in (WIPED, DELETED) or (rule.startswith("kept: ") and rule != "kept: "), name


def test_the_inventory_fails_on_a_field_added_without_a_rule(monkeypatch: Any) -> None:
    from django.db import models

    extra = models.CharField(max_length=10, blank=True)
    extra.set_attributes_from_name("nickname")
    extra.model = Contact
    monkeypatch.setattr(Contact._meta, "concrete_fields", (*Contact._meta.concrete_fields, extra))
    with pytest.raises(AssertionError, match="consents.Contact.nickname"):
        test_every_field_of_every_model_has_an_erasure_rule()


@pytest.fixture
def person(make_topic: Callable[..., Topic], make_contact: Callable[..., Contact]) -> Contact:
    """Someone with something in every place a person's data lives."""
    make_topic("promotions")
    contact = make_contact(
        email="Lea@Example.fr",
        phone="+33611111111",
        first_name="Léa",
        postal_address="1 rue de la Paix",
        push_token="push-123",
        profession="procurement",
    )
    services.consent_grant(
        contact=contact,
        topic="promotions",
        channel="email",
        proof=services.Proof(
            method="web_form",
            actor="person",
            ip_address="203.0.113.9",
            user_agent="UA",
            details={"typed": "Léa"},
        ),
    )
    services.consent_withdraw(
        contact=contact,
        topic="*",
        channel="*",
        proof=services.Proof(method="unsubscribe_link", actor="person", user_agent="UA"),
    )
    PendingSignup.objects.create(
        contact=contact,
        choices=[],
        first_name="Léa",
        phone="+33611111111",
        created_at=clock.now(),
        expires_at=clock.now(),
    )
    LinkRequest.objects.create(email="lea@example.fr", created_at=clock.now())
    TrackingInbox.objects.create(
        received_at=clock.now(), esp="Mailgun", event_type="clicked", fact="interaction",
        recipient="Lea@example.fr", reference="event:1", occurred_at=clock.now(),
        raw={"recipient": "Lea@example.fr"},
    )  # fmt: skip
    Outbox.objects.create(
        contact=contact,
        template="x",
        to="Lea@Example.fr",
        context={"first_name": "Léa"},
        status=Outbox.Status.SENT,
        last_error="550 Lea@Example.fr: mailbox full",
        created_at=clock.now(),
    )
    endpoint = WebhookEndpoint.objects.create(
        url="https://crm.example.com/hooks", secret="whsec_x", created_at=clock.now()
    )
    WebhookDelivery.objects.create(
        endpoint=endpoint,
        message_id="msg_1",
        type="consent.withdrawn",
        contact=contact,
        sequence=2,
        payload={"type": "consent.withdrawn", "data": {"contact": contact.public_id}},
        email="Lea@Example.fr",
        created_at=clock.now(),
        give_up_at=clock.now(),
    )
    run = ImportRun.objects.create(
        preset="mailchimp", file_sha256="0" * 64, actor="staff:dpo", created_at=clock.now()
    )
    ImportedRow.objects.create(
        run=run, row=2, contact=contact, source="mailchimp", key_digest="k", content_digest="c"
    )
    return contact


def rows_of(model: Any, contact: Contact) -> Any:
    if model is LinkRequest:
        return LinkRequest.objects.filter(email__iexact="lea@example.fr")
    if model is TrackingInbox:
        return TrackingInbox.objects.filter(recipient__iexact="lea@example.fr")
    if model is Contact:
        return Contact.objects.filter(pk=contact.pk)
    if model is Evidence:
        return Evidence.objects.filter(event__contact=contact)
    return model._default_manager.filter(contact=contact)


def test_every_wiped_and_deleted_rule_holds_after_erasure(
    person: Contact, client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    client.get(f"/preferences/{links.make('preferences', person)}/")
    assert CenterSession.objects.filter(contact=person).exists()
    with django_capture_on_commit_callbacks(execute=True):
        services.contact_erase(contact=person, reason="DSR 42", actor="staff:dpo")
    checked = set()
    for name, rule in INVENTORY.items():
        if rule not in (WIPED, DELETED):
            continue
        label, field = name.rsplit(".", 1)
        model = apps.get_model(label)
        rows = rows_of(model, person)
        if rule == DELETED:
            assert not rows.exists(), name
        else:
            assert rows.exists(), f"{name}: the test person has no such row"
            for value in rows.values_list(model._meta.get_field(field).attname, flat=True):
                assert value in (None, "", {}, []), (name, value)
        checked.add(name)
    assert checked  # every wiped field above was looked at on a row that had a value


def test_pending_emails_of_an_erased_person_are_cancelled_never_sent(
    person: Contact, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=False):
        row = email_enqueue(
            to=person.email,
            template="preferences-link",
            context={"preferences_url": "x"},
            contact=person,
            is_service=True,
        )
        services.contact_erase(contact=person, reason="DSR 42", actor="staff:dpo")
    row.refresh_from_db()
    assert (row.status, row.to, row.context) == (Outbox.Status.CANCELLED, "", {})
    mail.outbox = []
    assert outbox_deliver(row.pk) == Outbox.Status.CANCELLED
    assert mail.outbox == []
    sent = Outbox.objects.get(contact=person, template="x")
    assert sent.status == Outbox.Status.SENT  # what left stays the proof that it left
    assert (sent.to, sent.context, sent.last_error) == ("", {}, "")


def test_erasure_ends_the_persons_preference_sessions(
    person: Contact, client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    other = Client()
    for browser in (client, other):
        response = browser.get(f"/preferences/{links.make('preferences', person)}/")
        assert response.status_code == 302
    keys = list(CenterSession.objects.filter(contact=person).values_list("session_key", flat=True))
    assert len(keys) == 2 and Session.objects.filter(session_key__in=keys).count() == 2
    with django_capture_on_commit_callbacks(execute=True):
        services.contact_erase(contact=person, reason="DSR 42", actor="staff:dpo")
    assert not Session.objects.filter(session_key__in=keys).exists()
    assert not CenterSession.objects.exists()
    response = client.get("/preferences/")
    assert b"preferences_contact" not in response.content
    assert client.session.get("preferences_contact") is None


@pytest.mark.redis
def test_erasure_ends_sessions_in_the_shared_cache_too(
    person: Contact, client: Client, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
    client.get(f"/preferences/{links.make('preferences', person)}/")
    key = CenterSession.objects.get(contact=person).session_key
    assert cache.get(f"django.contrib.sessions.cached_db{key}") is not None
    with django_capture_on_commit_callbacks(execute=True):
        services.contact_erase(contact=person, reason="DSR 42", actor="staff:dpo")
    assert cache.get(f"django.contrib.sessions.cached_db{key}") is None
    assert not Session.objects.filter(session_key=key).exists()


def test_erasure_drops_the_cached_page(
    person: Contact, client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    client.get(f"/preferences/{links.make('preferences', person)}/")
    key = pagecache.page_key(CenterSession.objects.get(contact=person).session_key)
    cache.set(key, ("fp", 0, "<html>Léa</html>"))
    with django_capture_on_commit_callbacks(execute=True):
        services.contact_erase(contact=person, reason="DSR 42", actor="staff:dpo")
    assert cache.get(key) is None


def test_erasure_removes_the_persons_mail_from_the_mail_files(
    person: Contact, settings: Any, tmp_path: Path, django_capture_on_commit_callbacks: Any
) -> None:
    settings.EMAIL_BACKEND = devmail.FILE_BACKEND
    settings.EMAIL_FILE_PATH = tmp_path
    from django.core.mail import EmailMessage, get_connection

    with get_connection() as connection:  # one file: both messages in it
        EmailMessage("Hello Léa", "Léa's link", to=["lea@example.fr"]).send()
        connection.send_messages(
            [
                EmailMessage("Hello Léa", "Léa's link", to=["Lea@Example.fr"]),
                EmailMessage("Hello Jean", "Jean's link", to=["jean@example.fr"]),
            ]
        )
    with get_connection() as connection:
        connection.send_messages([EmailMessage("Only Léa", "x", to=["lea@example.fr"])])
    assert sum(len(devmail.parse_file(p)) for p in tmp_path.iterdir()) == 4
    with django_capture_on_commit_callbacks(execute=True):
        services.contact_erase(contact=person, reason="DSR 42", actor="staff:dpo")
    left = [m for p in tmp_path.iterdir() for m in devmail.parse_file(p)]
    assert [m.to for m in left] == ["jean@example.fr"]
    assert "Léa" not in "".join(p.read_text() for p in tmp_path.iterdir())


def test_every_evidence_field_is_wiped_even_one_added_later(person: Contact) -> None:
    """The wipe names no field: whatever the row holds (a salt, a new trace) goes."""
    fields = [
        f.attname
        for f in Evidence._meta.concrete_fields
        if not f.primary_key and f.name != "erased_at"
    ]
    services.contact_erase(contact=person, reason="DSR 42", actor="staff:dpo")
    for evidence in Evidence.objects.filter(event__contact=person):
        assert evidence.erased_at is not None
        assert all(getattr(evidence, name) in (None, "", {}) for name in fields)


def test_the_erasure_form_says_what_stays_and_warns_against_personal_data(
    person: Contact, admin_client: Client
) -> None:
    url = f"/admin/consents/contact/{person.pk}/erase/"
    page = admin_client.get(url).content.decode()
    assert "Ce qui reste" in page
    assert "N’y saisissez aucune donnée personnelle" in page
    assert "jamais de donnée personnelle" in page  # the reason's own help text
    page = admin_client.get(url, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "What stays" in page
    assert "Do not type personal data there" in page
    assert "never personal data" in page
