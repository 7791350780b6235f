"""An officer asks for a contact's new email address (services.email_change_request): a
confirmation link goes to the new address, nothing else changes; an address another contact has
is refused."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse
from django.utils import translation

from consents.models import AccessLog, Contact, Outbox
from consents.services import email_change_request


def test_the_request_sends_a_link_to_the_new_address_and_is_logged(
    make_contact: Callable[..., Contact], admin_user: Any
) -> None:
    contact = make_contact(email="marie@example.fr")
    email_change_request(contact=contact, new_email="marie.new@example.org", user=admin_user)
    row = Outbox.objects.get(template="email-confirm")
    assert (row.to, row.is_service, row.contact) == ("marie.new@example.org", True, contact)
    assert AccessLog.objects.filter(action="rectify_request", contact=contact).count() == 1
    contact.refresh_from_db()
    assert contact.email == "marie@example.fr"


def test_an_address_another_contact_has_is_refused_and_nothing_is_sent(
    make_contact: Callable[..., Contact], admin_user: Any
) -> None:
    contact = make_contact(email="marie@example.fr")
    make_contact(email="Paul@example.org")
    with translation.override("en"), pytest.raises(ValidationError) as refused:
        email_change_request(contact=contact, new_email="paul@example.org", user=admin_user)
    assert refused.value.message_dict == {"email": ["Another contact has this address."]}
    assert not Outbox.objects.exists()
    assert not AccessLog.objects.filter(action="rectify_request").exists()


def test_the_admin_form_says_so_on_the_email_field(
    admin_client: Client, make_contact: Callable[..., Contact]
) -> None:
    contact = make_contact(email="marie@example.fr")
    make_contact(email="paul@example.org")
    response = admin_client.post(
        reverse("admin:consents_contact_rectify", args=[contact.pk]),
        {"email": "paul@example.org"},
        HTTP_ACCEPT_LANGUAGE="fr",
    )
    assert response.status_code == 200
    assert response.context["form"].errors == {"email": ["Un autre contact a déjà cette adresse."]}
    assert not Outbox.objects.exists()
