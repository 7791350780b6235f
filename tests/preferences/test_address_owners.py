"""Addresses change only through their owner: a number on file is never replaced by a form."""

from __future__ import annotations

from typing import Any

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.test import Client

from consents import services
from consents.models import Category, Contact, Event
from consents.vocab import Method
from preferences import store
from preferences.models import Device
from tests.preferences.pages import CONFIRM_LINK, path_in
from tests.preferences.store_fixtures import *  # noqa: F403  (the store fixtures)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("pages", "topics")]

ON_FILE = "+33611111111"
TYPED = "+33622222222"
WEB = services.Proof(method=Method.WEB_FORM, actor="person")


@pytest.fixture
def marie(make_contact: Any) -> Contact:
    """Marie's number on file, with her consent to text messages on it."""
    contact = make_contact(email="marie@example.fr", phone=ON_FILE)
    services.consent_grant(contact=contact, topic="promotions", channel="sms", proof=WEB)
    return contact


def sms_states(contact: Contact) -> str:
    return contact.consent_states.get(topic="promotions", channel="sms").status


def test_confirming_a_sign_up_never_replaces_the_number_on_file(
    marie: Contact, sign_up: Any
) -> None:
    sign_up(email="marie@example.fr", phone="06 22 22 22 22", choice=["promotions:sms"])
    Client().post(path_in(CONFIRM_LINK, mail.outbox[-1]))
    marie.refresh_from_db()
    assert marie.phone == ON_FILE  # a click in a mailbox proves nothing about a phone
    assert not marie.events.filter(type="address_changed").exists()
    assert sms_states(marie) == "opted_in"  # her consent stays with the number she controls
    # The choice made for the typed number is the typed number's, confirmed by the same email.
    typed = Contact.objects.get(phone=TYPED)
    assert typed.email is None
    assert sms_states(typed) == "opted_in"
    assert typed.events.filter(type="doi_confirmed", channel="sms").exists()


def test_a_number_joins_a_contact_that_has_none_once_confirmed(
    make_contact: Any, sign_up: Any
) -> None:
    contact = make_contact(email="jean@example.fr")
    sign_up(email="jean@example.fr", phone="06 22 22 22 22", choice=["promotions:sms"])
    contact.refresh_from_db()
    assert contact.phone == ""  # not before the owner of the address confirms
    Client().post(path_in(CONFIRM_LINK, mail.outbox[-1]))
    contact.refresh_from_db()
    assert contact.phone == TYPED
    assert sms_states(contact) == "opted_in"
    assert not Contact.objects.filter(phone=TYPED).exclude(pk=contact.pk).exists()


def test_the_store_confirming_by_email_never_replaces_a_number_either(
    marie: Contact,
    staff: Any,
    shop: Any,
    tablet: Device,
    sofas: Category,
    django_capture_on_commit_callbacks: Any,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        store.store_capture(
            key="e" * 32,
            user=staff,
            store=shop,
            device=tablet,
            email="marie@example.fr",
            phone="06 22 22 22 22",  # nobody's yet
            choices=[("promotions", "sms"), ("newsletter", "email")],
            confirm="email",
        )
    Client().post(path_in(CONFIRM_LINK, mail.outbox[-1]))
    marie.refresh_from_db()
    assert marie.phone == ON_FILE
    assert sms_states(Contact.objects.get(phone=TYPED)) == "opted_in"


def test_details_never_replace_a_number_silently(marie: Contact) -> None:
    with pytest.raises(ValidationError) as exc:
        services.contact_update_details(contact=marie, phone=TYPED)
    assert "phone" in exc.value.message_dict
    marie.refresh_from_db()
    assert marie.phone == ON_FILE


def test_a_number_its_owner_confirmed_is_recorded_with_address_changed(marie: Contact) -> None:
    proof = services.Proof(actor="person", collection_point="code sent by text message")
    services.contact_phone_change(contact=marie, new_phone="06 22 22 22 22", proof=proof)
    marie.refresh_from_db()
    assert marie.phone == TYPED
    changes = Event.objects.filter(contact=marie, type="address_changed").order_by("seq")
    assert [(e.channel, e.actor) for e in changes] == [("sms", "person"), ("phone", "person")]


def test_the_ledger_never_holds_the_address_a_link_prefilled(sign_up: Any) -> None:
    """The ledger is never erased: the form's address it records drops the query string (and the
    prefilled ``email`` with it)."""
    sign_up(path="/subscribe/?email=lea%40example.fr&source=footer", email="lea@example.fr")
    event = Event.objects.get(type="opt_in")
    assert "lea" not in event.collection_point
    assert event.collection_point.endswith("/subscribe/")


def test_a_confirmation_writes_nothing_on_a_contact_erased_meanwhile(
    marie: Contact, sign_up: Any
) -> None:
    sign_up(email="marie@example.fr", phone="06 22 22 22 22", choice=["promotions:sms"])
    typed = Contact.objects.get(phone=TYPED)
    services.contact_erase(contact=typed, reason="DSR 7", actor="staff:dpo")
    before = typed.events.count()
    assert Client().post(path_in(CONFIRM_LINK, mail.outbox[-1])).status_code == 200
    assert typed.events.count() == before
