"""Whose facts a capture records: the contacts that own the email and the phone typed.

Nothing of them is shown to staff or customer: every screen says the same whether an address
was known.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from consents import services
from consents.models import Contact
from preferences.services import PHONE_CHANNELS


def addresses(email: str, phone: str) -> tuple[str, str]:
    email = services.normalize_email(email) if email else ""
    phone = services.normalize_phone(phone) if phone else ""
    if not email and not phone:
        raise ValidationError({"email": "Enter an email address or a phone number."})
    return email, phone


def email_owner(email: str) -> Contact | None:
    return Contact.objects.filter(email__iexact=email).first() if email else None


def phone_owner(phone: str) -> Contact | None:
    return Contact.objects.filter(phone=phone).order_by("id").first() if phone else None


def create_contact(
    *, email: str, phone: str, first_name: str, locale: str, informed: bool
) -> Contact:
    try:
        with transaction.atomic():
            return services.contact_create(
                email=email or None,
                phone=phone,
                first_name=first_name,
                locale=locale,
                informed_at_collection=informed,
            )
    except ValidationError:
        # Created meanwhile by a concurrent request: append to that one.
        contact = email_owner(email)
        if contact is None:
            raise
        return contact


@dataclass(frozen=True)
class Owners:
    """Who receives each fact of one capture: the contact that owns the email typed, and the one
    that owns the phone typed. They differ when each address already belongs to its own contact;
    then neither address moves and each fact goes to the owner of the address it uses."""

    by_email: Contact | None
    by_phone: Contact | None

    def of(self, channel: str) -> Contact:
        if channel in PHONE_CHANNELS and self.by_phone is not None:
            return self.by_phone
        contact = self.by_email or self.by_phone
        assert contact is not None
        return contact

    @property
    def primary(self) -> Contact:
        contact = self.by_email or self.by_phone
        assert contact is not None
        return contact


def owners_for(*, email: str, phone: str, first_name: str, locale: str, informed: bool) -> Owners:
    """The contacts this capture's facts go to, created when an address is new. Nothing of them
    is shown: the screen is the same whether either address was known."""
    by_email = email_owner(email)
    by_phone = phone_owner(phone)
    person: dict[str, Any] = {"first_name": first_name, "locale": locale, "informed": informed}
    if by_email is None and by_phone is None:
        both = create_contact(email=email, phone=phone, **person)
        return Owners(both if email else None, both if phone else None)
    if by_email is not None and by_phone is None and phone:
        if by_email.phone:
            # Another number is on file: never replaced from a tablet. The typed number, which
            # nobody owns yet, gets a contact of its own for the facts that use it.
            return Owners(by_email, create_contact(email="", phone=phone, **person))
        # The person typed it in front of staff; it joins the contact that has no number.
        by_email = services.contact_update_details(contact=by_email, phone=phone)
        return Owners(by_email, by_email)
    if by_email is None and email:
        # The phone is known, the email is not: a contact of its own, the number is not copied.
        by_email = create_contact(email=email, phone="", **person)
    return Owners(by_email, by_phone)
