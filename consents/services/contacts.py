"""Contacts: created, found, their details, their addresses changed, their links revoked."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models.signals import post_save, pre_save
from django.utils.translation import gettext

from consents import clock, links, statements, validation
from consents.models import Contact, Erasure, Event
from consents.outbox import email_enqueue
from consents.projections import projection_start
from consents.services import writing
from consents.services.access import access_log
from consents.services.addresses import normalize_email, normalize_phone
from consents.services.erasure import suppression_listed, suppression_record
from consents.services.writing import Proof, _append
from consents.vocab import Channel, ContactKind, EventType


@transaction.atomic
def contact_create(
    *,
    email: str | None = None,
    phone: str | None = None,
    kind: str = ContactKind.CONSUMER,
    first_name: str = "",
    postal_address: str = "",
    push_token: str = "",
    locale: str = "fr",
    collected_at: datetime | None = None,
    informed_at_collection: bool = False,
    profession: str = "",
) -> Contact:
    collected_at = collected_at or clock.now()
    validation.contact(kind=kind, locale=locale, collected_at=collected_at)
    email = normalize_email(email) if email else None
    if email and _contact_with_email(email) is not None:
        raise ValidationError({"email": _TAKEN})
    contact = _contact_new(
        email=email,
        phone=normalize_phone(phone) if phone else "",
        kind=kind,
        first_name=first_name[:150],
        postal_address=postal_address,
        push_token=push_token,
        locale=locale,
        collected_at=collected_at,
        informed_at_collection=informed_at_collection,
        profession=profession,
    )
    if contact is None:
        raise ValidationError({"email": _TAKEN})
    return contact


_TAKEN = "A contact with this email already exists."


def _contact_new(
    *,
    listed: statements.Pending | None = None,
    first_event: bool = False,
    reserved: statements.Pending | None = None,
    **fields: Any,
) -> Contact | None:
    """A new contact from checked and normalised ``fields`` (``Contact``'s), with its
    projections, in the caller's transaction; None when a concurrent transaction took the
    address first (the unique index decides). ``listed``: the suppression list's entries for its
    addresses, read already (``suppression_listed``). ``first_event``: an event follows (a
    sign-up's): its chain's start is known now (``writing.chain_start``), its id reserved with
    the contact's row. ``reserved``: ``contact_ids_reserved``'s, asked for already: the contact
    is written under that id, queued with what follows instead of in a round trip of its own,
    and an address taken meanwhile is then the unique index's ``IntegrityError``
    (``address_taken``), failing the transaction, instead of None."""
    if listed is None:
        listed = suppression_listed(email=fields.get("email"), phone=fields.get("phone"))
    ids = reserved.result[0] if reserved is not None else (None, None)
    first_id: statements.Pending | None
    if ids[0] is not None:
        contact = Contact(pk=ids[0], **fields)
        _contact_insert(contact, unless_taken=False)
        first_id = statements.Pending.done([(ids[1],)])
    else:
        first_id = writing.reserve_event_id() if first_event else None
        inserted = _contact_insert(Contact(**fields))
        if inserted is None:
            return None
        contact = inserted
    projection_start(contact)
    if first_id is not None:
        writing.chain_start(contact, first_id)
    # Before any other fact: an address that opted out and was erased arrives opted out.
    suppression_record(contact=contact, listed=listed)
    return contact


def contact_ids_reserved() -> statements.Pending:
    """A new contact's id and its first event's, asked for with what is queued
    (``statements.together``) before it is known whether the contact is new: with them
    (``contact_get_or_create``'s ``reserved``) the contact's row goes with its first event's
    instead of in a round trip of its own. Unused when the contact exists: a gap in the ids,
    which number nothing. PostgreSQL only (elsewhere None: the database numbers them)."""
    if connection.vendor != "postgresql":
        return statements.Pending.done([(None, None)])
    return statements.read(
        "SELECT "
        + ", ".join(
            f"nextval(pg_get_serial_sequence('{model._meta.db_table}', '{model._meta.pk.column}'))"
            for model in (Contact, Event)
        ),
        [],
        prepare=True,
    )


CONTACT_EMAIL_UNIQUE = "contact_email_unique_ci"


def address_taken(exc: IntegrityError) -> bool:
    """Is ``exc`` the unique index of the contacts' addresses refusing a contact written under
    ``contact_ids_reserved``'s id, because another transaction created the address meanwhile?"""
    diag = getattr(exc.__cause__, "diag", None)
    return getattr(diag, "constraint_name", None) == CONTACT_EMAIL_UNIQUE


def _contact_insert(contact: Contact, *, unless_taken: bool = True) -> Contact | None:
    """``contact`` written, unless its address (or another unique value) is taken by then: no
    savepoint (a concurrent creation of the same address makes this one write nothing), and
    the model's save signals sent as ``save()`` sends them. ``unless_taken=False``: a contact
    whose id is given, queued (``statements.together``): a taken address then fails the
    transaction where the queue is sent."""
    using = connection.alias
    pre_save.send(sender=Contact, instance=contact, raw=False, using=using, update_fields=None)
    statements.insert(contact, unless_taken=unless_taken)
    if contact.pk is None:
        return None
    post_save.send(
        sender=Contact, instance=contact, created=True, raw=False, using=using, update_fields=None
    )
    return contact


def contact_get_or_create(
    *,
    email: str,
    locale: str = "fr",
    found: statements.Pending | None = None,
    listed: statements.Pending | None = None,
    reserved: statements.Pending | None = None,
) -> tuple[Contact, bool]:
    """The contact with this address, created if new; safe against a concurrent creation.
    ``found``: ``contact_with_email(address, later=True)``, asked for already, and ``listed``
    the suppression list's entries for the address (``suppression_listed``) with it.
    ``reserved``: ``contact_ids_reserved()``, asked for with them, by a caller whose
    transaction is undone and tried again when the address is taken meanwhile
    (``address_taken``): the new contact's row is then queued with its first event's."""
    address = normalize_email(email)
    collected_at = clock.now()
    validation.contact(kind=ContactKind.CONSUMER, locale=locale, collected_at=collected_at)
    # Checked first: inside the caller's transaction (a sign-up's) this takes no savepoint of its
    # own, and what fails in it from here on undoes that whole transaction.
    with transaction.atomic(savepoint=False), statements.together():
        if found is None:
            found = contact_with_email(address, later=True)
            listed = suppression_listed(email=address)  # sent with it: one round trip
        existing = _first(found.result)
        if existing is not None:
            return existing, False
        contact = _contact_new(
            listed=listed,
            first_event=True,
            reserved=reserved,
            email=address,
            kind=ContactKind.CONSUMER,
            locale=locale,
            collected_at=collected_at,
        )
        if contact is not None:
            return contact, True
        existing = _contact_with_email(address)
    if existing is None:
        raise ValidationError({"email": _TAKEN})
    return existing, False


def _first(found: list[Contact]) -> Contact | None:
    return found[0] if found else None


def contact_with_email(address: str, *, later: bool = False) -> Any:
    """``Contact.objects.filter(email__iexact=address)`` as a list (a ``Pending`` of it,
    ``later``), by the unique index's own comparison (``UPPER``), read by a statement built once
    (every sign-up asks)."""
    return statements.select(Contact, "UPPER(email) = UPPER(%s)", [address], limit=1, later=later)


def _contact_with_email(address: str) -> Contact | None:
    return _first(contact_with_email(address))


def contact_find(*, email: str) -> Contact | None:
    try:
        return Contact.objects.filter(email__iexact=normalize_email(email)).first()
    except ValidationError:
        return None


@transaction.atomic
def contact_update_details(
    *,
    contact: Contact,
    first_name: str | None = None,
    phone: str | None = None,
    locale: str | None = None,
) -> Contact:
    """Details the person gave us themselves (their name, phone, language).

    A phone number is added where none is on file, never replaced: the consents given for a
    number belong to the person who controls it, and nothing here proves that the new one is
    theirs (``contact_phone_change`` is the door for a number its owner confirmed)."""
    locked = Contact.objects.select_for_update().get(pk=contact.pk)
    fields = []
    added_phone = ""
    if first_name is not None:
        locked.first_name = first_name.strip()[:150]
        fields.append("first_name")
    if phone is not None:
        number = normalize_phone(phone) if phone else ""
        if number and locked.phone and number != locked.phone:
            raise ValidationError(
                {"phone": "Another number is on file: it changes only when its owner confirms."}
            )
        if number != locked.phone:
            added_phone = number
            locked.phone = number
            fields.append("phone")
    if locale is not None:
        validation.choice("locale", locale, validation.LOCALES)
        locked.locale = locale
        fields.append("locale")
    if fields:
        locked.save(update_fields=fields)
    if added_phone:
        suppression_record(contact=locked, phone=added_phone)
    return locked


@transaction.atomic
def contact_phone_change(*, contact: Contact, new_phone: str, proof: Proof) -> Event:
    """Replace the number on file with one its owner confirmed (a code sent to it, the person in
    front of staff with their phone): ``address_changed`` on sms and on phone, the channels a
    number serves. A number on the suppression list arrives opted out, before the change."""
    number = normalize_phone(new_phone)
    locked = Contact.objects.select_for_update().get(pk=contact.pk)
    if Erasure.objects.filter(contact=locked).exists():
        raise ValidationError({"phone": "This contact is erased."})
    if number == locked.phone:
        raise ValidationError({"phone": "This number is already on file."})
    locked.phone = number
    locked.save(update_fields=["phone"])
    suppression_record(contact=locked, phone=number)
    _append(
        contact=locked,
        type=EventType.ADDRESS_CHANGED,
        occurred_at=None,
        proof=proof,
        channel=Channel.SMS,
    )
    return _append(
        contact=locked,
        type=EventType.ADDRESS_CHANGED,
        occurred_at=None,
        proof=proof,
        channel=Channel.PHONE,
    )


POSTAL_ADDRESS_MAX_LENGTH = 500


@transaction.atomic
def contact_postal_address_set(*, contact: Contact, postal_address: str, proof: Proof) -> Contact:
    """The postal address the person gave us themselves (added, changed or removed). A change
    is ``address_changed`` on the postal channel: what was said about the old address is the
    old address's."""
    text = "\n".join(line.strip() for line in postal_address.strip().splitlines() if line.strip())
    if len(text) > POSTAL_ADDRESS_MAX_LENGTH:
        raise ValidationError({"postal_address": "The address is too long."})
    locked = Contact.objects.select_for_update().get(pk=contact.pk)
    if Erasure.objects.filter(contact=locked).exists():
        raise ValidationError({"postal_address": "This contact is erased."})
    if text == locked.postal_address:
        return locked
    replaced = bool(locked.postal_address)
    locked.postal_address = text
    locked.save(update_fields=["postal_address"])
    if replaced:
        _append(
            contact=locked,
            type=EventType.ADDRESS_CHANGED,
            occurred_at=None,
            proof=proof,
            channel=Channel.POSTAL,
        )
    return locked


@transaction.atomic
def contact_revoke_links(*, contact: Contact) -> Contact:
    """Every link already sent to this contact stops working."""
    locked = Contact.objects.select_for_update().get(pk=contact.pk)
    locked.link_version += 1
    locked.save(update_fields=["link_version"])
    return locked


@transaction.atomic
def email_change_request(
    *, contact: Contact, new_email: str, user: AbstractBaseUser | AnonymousUser
) -> None:
    """An officer asks for a new address (the right to rectification). Nothing changes yet: a
    service email goes to ``new_email`` and the address changes only when its owner opens the
    link (``contact_email_change``, from ``consents.public_views``).

    Send the confirmation link for ``new_email`` (already normalised) to that address, and
    log the request as ``user``'s. Raises ``ValidationError`` on ``email`` when another contact
    has the address."""
    if Contact.objects.filter(email__iexact=new_email).exclude(pk=contact.pk).exists():
        raise ValidationError({"email": gettext("Another contact has this address.")})
    # A service email to the new address: nothing changes until its owner confirms.
    email_enqueue(
        to=new_email,
        template="email-confirm",
        context={},
        links={"confirm_url": links.intent("email_change", e=new_email)},
        language=contact.locale,
        contact=contact,
        is_service=True,
    )
    access_log(
        user=user,
        action="rectify_request",
        contact=contact,
        detail="confirmation sent to the new email address",
    )


@transaction.atomic
def contact_email_change(*, contact: Contact, new_email: str, proof: Proof) -> Event:
    """Rectification confirmed by the owner of the new address: ``address_changed`` on email."""
    address = normalize_email(new_email)
    locked = Contact.objects.select_for_update().get(pk=contact.pk)
    if Erasure.objects.filter(contact=locked).exists():
        raise ValidationError({"email": "This contact is erased."})
    if Contact.objects.filter(email__iexact=address).exclude(pk=locked.pk).exists():
        raise ValidationError({"email": "A contact with this email already exists."})
    locked.email = address
    locked.save(update_fields=["email"])
    # Before the change itself: a listed address arrives opted out, as on a new contact.
    suppression_record(contact=locked, email=address)
    return _append(
        contact=locked,
        type=EventType.ADDRESS_CHANGED,
        occurred_at=None,
        proof=proof,
        channel=Channel.EMAIL,
    )
