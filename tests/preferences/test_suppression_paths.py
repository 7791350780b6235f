"""An erased person who had opted out stays suppressed, whatever path brings their address back.

Each path that creates a contact or gives one an address is followed to ``decide`` and to the
audience query, which must agree: the suppression is an ``opt_out`` in the ledger, not a special
case of either.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.test import Client

from consents import clock, links, rules, services
from consents.audience import audience
from consents.models import Category, Contact, Event, Store
from consents.selectors import proof
from consents.vocab import Method, Reason
from preferences import store
from preferences.models import Device
from tests.preferences.pages import CONFIRM_LINK, path_in
from tests.preferences.store_fixtures import *  # noqa: F403  (the store fixtures)
from tests.preferences.store_fixtures import capture_data

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("pages", "topics")]

EMAIL = "lea@example.fr"
PHONE = "+33611111111"
WEB = services.Proof(method=Method.WEB_FORM, actor="person", ip_address="203.0.113.9")


def promotion(channel: str) -> rules.Message:
    return rules.Message(channel=channel, purpose="promotion", topic="promotions", category="sofas")


def verdict(contact: Contact, message: rules.Message) -> str:
    """``decide``'s reason for this person, checked against the audience query."""
    now = clock.now()
    contact.refresh_from_db()
    _, facts = proof.history(contact)
    decided = proof.decide_for(contact, facts, message, now)
    listed = {row.contact_id: row.reason for row in audience(message, now)}
    assert listed.get(contact.pk) == (decided.reason if decided.allowed else None), (
        decided,
        listed,
    )
    return decided.reason


def suppression_facts(contact: Contact) -> list[tuple[str, str, str, str]]:
    return [
        (e.type, e.topic, e.channel, e.actor)
        for e in Event.objects.filter(contact=contact, method=Method.SUPPRESSION).order_by("seq")
    ]


@pytest.fixture(autouse=True)
def erased(db: Any, sofas: Category) -> Iterator[None]:
    """Léa opted out of everything, then asked to be erased: her addresses are suppressed."""
    lea = services.contact_create(email=EMAIL, phone=PHONE, informed_at_collection=True)
    services.consent_withdraw(
        contact=lea,
        topic="*",
        channel="*",
        proof=services.Proof(method=Method.UNSUBSCRIBE_LINK, actor="person"),
    )
    services.contact_erase(contact=lea, reason="DSR 12", actor="staff:dpo")
    yield


def test_a_created_contact_with_a_purchase_stays_opted_out_not_soft_opt_in() -> None:
    """The path of imports and the API: ``contact_create``, then a purchase."""
    contact = services.contact_create(
        email=EMAIL, phone="06 11 11 11 11", informed_at_collection=True
    )
    services.purchase_record(
        contact=contact, category="sofas", product="Oslo", proof=services.Proof(actor="api:shop")
    )
    first = Event.objects.filter(contact=contact).order_by("seq")[:3]
    assert [(e.type, e.channel, e.method, e.actor) for e in first] == [
        ("opt_out", "email", "suppression", "system"),
        ("opt_out", "sms", "suppression", "system"),
        ("opt_out", "phone", "suppression", "system"),
    ]
    assert verdict(contact, promotion("email")) == Reason.OPTED_OUT  # was SOFT_OPT_IN
    assert verdict(contact, promotion("sms")) == Reason.OPTED_OUT
    # Consent from a file, another system or the admin is still refused for this address.
    imported = services.Proof(method=Method.IMPORT, actor="api:crm", reference="crm 2027")
    with pytest.raises(ValidationError, match="suppression"):
        services.consent_grant(contact=contact, topic="promotions", channel="email", proof=imported)
    # The person's own yes, on our form, lifts it as it lifts any opt-out.
    services.consent_grant(contact=contact, topic="promotions", channel="email", proof=WEB)
    assert verdict(contact, promotion("email")) == Reason.OPT_IN
    assert verdict(contact, promotion("sms")) == Reason.OPTED_OUT


def test_a_contact_never_on_the_list_gets_no_suppression() -> None:
    contact = services.contact_create(email="other@example.fr", phone="0622222222")
    assert suppression_facts(contact) == []


def test_sign_up_arrives_opted_out_and_the_confirmation_lifts_it(sign_up: Any) -> None:
    sign_up(email=EMAIL, phone="06 11 11 11 11", choice=["newsletter:email", "promotions:sms"])
    contact = Contact.objects.get(email=EMAIL)
    assert suppression_facts(contact) == [
        ("opt_out", "*", "email", "system"),
        ("opt_out", "*", "sms", "system"),
        ("opt_out", "*", "phone", "system"),
    ]
    assert Event.objects.filter(contact=contact).order_by("seq")[0].method == "suppression"
    newsletter = rules.Message(channel="email", purpose="newsletter", topic="newsletter")
    # Denied until the owner of the address confirms: a pending opt-in lifts no objection.
    assert verdict(contact, newsletter) == Reason.OPTED_OUT
    assert verdict(contact, promotion("email")) == Reason.OPTED_OUT
    Client().post(path_in(CONFIRM_LINK, mail.outbox[-1]))
    contact.refresh_from_db()
    assert contact.phone == PHONE
    assert verdict(contact, newsletter) == Reason.OPT_IN
    assert verdict(contact, promotion("sms")) == Reason.OPT_IN
    # What the person did not choose stays suppressed.
    assert verdict(contact, promotion("email")) == Reason.OPTED_OUT
    assert len(suppression_facts(contact)) == 3  # the number joining records nothing twice


def test_store_tablet_opt_in_lifts_only_what_the_person_chose(
    staff_client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(
            "/store/capture/",
            capture_data(
                email=EMAIL,
                phone="06 11 11 11 11",
                choice=["promotions:sms"],
            ),
        )
    assert response.status_code == 302
    contact = Contact.objects.get(email=EMAIL)
    assert contact.phone == PHONE
    events = list(Event.objects.filter(contact=contact).order_by("seq"))
    assert [e.method for e in events[:3]] == ["suppression"] * 3
    assert verdict(contact, promotion("sms")) == Reason.OPT_IN
    assert verdict(contact, promotion("email")) == Reason.OPTED_OUT  # not chosen: stays out


def test_store_tablet_number_added_to_a_known_email_arrives_opted_out(
    staff: Any, shop: Store, tablet: Device, sofas: Category
) -> None:
    known = services.contact_create(email="known@example.fr", informed_at_collection=True)
    store.store_capture(
        key="n" * 32,
        user=staff,
        store=shop,
        device=tablet,
        email="known@example.fr",
        phone="0611111111",
        choices=[("newsletter", "email")],
        confirm="here",
    )
    known.refresh_from_db()
    assert known.phone == PHONE
    assert [channel for _, _, channel, _ in suppression_facts(known)] == ["sms", "phone"]
    assert verdict(known, promotion("sms")) == Reason.OPTED_OUT


def test_store_phone_call_yes_lifts_and_an_unasked_channel_stays_out(
    staff: Any, sofas: Category
) -> None:
    store.phone_capture(
        key="p" * 32,
        user=staff,
        call_reference="CALL-1",
        email="",
        phone="06 11 11 11 11",
        answers=[("promotions", "sms")],
    )
    contact = Contact.objects.get(phone=PHONE)
    assert Event.objects.filter(contact=contact).order_by("seq")[0].method == "suppression"
    assert verdict(contact, promotion("sms")) == Reason.OPT_IN
    call = rules.Message(channel="phone", purpose="promotion", topic="promotions")
    assert verdict(contact, call) == Reason.OPTED_OUT


def test_admin_rectification_to_a_suppressed_address_arrives_opted_out(
    django_capture_on_commit_callbacks: Any,
) -> None:
    marc = services.contact_create(email="marc@example.fr", informed_at_collection=True)
    services.consent_grant(contact=marc, topic="promotions", channel="email", proof=WEB)
    assert verdict(marc, promotion("email")) == Reason.OPT_IN
    response = Client().post(
        f"/confirm-email/{links.make('email_change', marc, to=EMAIL, e=EMAIL)}/"
    )
    assert response.status_code == 200
    marc.refresh_from_db()
    assert marc.email == EMAIL
    kinds = [
        (e.type, e.method)
        for e in Event.objects.filter(contact=marc).order_by("seq")
        if e.type != "opt_in"
    ]
    assert kinds == [("opt_out", "suppression"), ("address_changed", "")]
    # The consent given for the former address does not carry over to a suppressed one.
    assert verdict(marc, promotion("email")) == Reason.OPTED_OUT
