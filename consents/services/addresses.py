"""Addresses and names as the ledger keeps them: one spelling of each, or a ``ValidationError``
naming the field; and the lock on decisions about one email address."""

from __future__ import annotations

import hashlib
import re
import unicodedata

import phonenumbers
from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator
from django.db import connection

from consents import statements

_email_validator = EmailValidator()
EMAIL_MAX_LENGTH = 254  # Contact.email, Outbox.to


# An address whose normalised form is itself but for the domain's case, and that the validator
# accepts: a dot-atom local part in ASCII and an ASCII host name of labels of 1 to 63 letters,
# digits and inner hyphens, ending in a top-level domain of letters. Every address of this shape
# is valid and its IDNA form is its lower-cased self, so most addresses skip the slower checks
# (the same result: tests/consents/test_addresses.py compares both on many addresses).
_PLAIN_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_PLAIN_EMAIL = re.compile(
    r"([-!#$%&'*+/=?^_`{}|~0-9a-z]+(?:\.[-!#$%&'*+/=?^_`{}|~0-9a-z]+)*)"
    rf"@((?:{_PLAIN_LABEL}\.)+[a-z]{{2,63}})",
    re.ASCII | re.IGNORECASE,
)


def normalize_email(raw: str) -> str:
    """Trim, lower-case the domain (the local part is the mailbox owner's business)."""
    value = (raw or "").strip()
    if len(value) <= EMAIL_MAX_LENGTH:
        plain = _PLAIN_EMAIL.fullmatch(value)
        if plain is not None:
            return f"{plain[1]}@{plain[2].lower()}"
    return _normalize_email_checked(value)


def _normalize_email_checked(value: str) -> str:
    """``normalize_email`` of a trimmed address, every check made."""
    if "@" not in value:
        raise ValidationError({"email": "Enter a valid email address."})
    local, domain = value.rsplit("@", 1)
    try:
        # One spelling per domain: internationalised names in their ASCII (IDNA) form.
        domain = domain.lower().encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise ValidationError({"email": "Enter a valid email address."}) from exc
    value = f"{local}@{domain}"
    # The ASCII form of an internationalised domain is longer than what was typed: an address
    # that fit the form may not fit the column (RFC 5321's 254 characters).
    if len(value) > EMAIL_MAX_LENGTH:
        raise ValidationError({"email": "This email address is too long."})
    try:
        _email_validator(value)
    except ValidationError as exc:
        raise ValidationError({"email": "Enter a valid email address."}) from exc
    return value


# Regions that share France's national format (a leading 0, ten digits) but have their own
# country codes: 0690 is Guadeloupe (+590), 0696 Martinique (+596), 0694 French Guiana (+594),
# 0692 and 0693 Réunion (+262), 0639 Mayotte (+262), 0508 Saint-Pierre-et-Miquelon (+508).
OVERSEAS_REGIONS = ("GP", "MQ", "GF", "RE", "YT", "PM", "BL", "MF")
# What a person may type around the digits; anything else (letters, digits of another script,
# which ``phonenumbers`` would quietly read as ASCII ones) is refused.
_PHONE_CHARACTERS = re.compile(r"[0-9+ .\-()\t]*")
_PHONE_ERROR = "Enter a phone number in international format (+33…)."


def address_lock(address: str) -> None:
    """Hold, until the current transaction ends, the lock on decisions about one email address
    (how many emails it has had): parallel sign-ups of one address then decide one after the
    other, each seeing what the previous one wrote.

    A PostgreSQL advisory lock on a hash of the address, case ignored as the contact lookup
    ignores it (the contact row may not exist yet). SQLite needs none: its transactions here
    begin IMMEDIATE, one writer at a time."""
    if connection.vendor != "postgresql":
        return
    if not connection.in_atomic_block:
        raise RuntimeError("address_lock is held until the transaction ends: call it in one.")
    digest = hashlib.sha256(b"assent.address:" + address.lower().encode()).digest()
    # Inside ``statements.together()`` sent with the reads that follow it (each statement of a
    # round trip has its own snapshot: those reads see what the lock waited for).
    statements.run(
        "SELECT pg_advisory_xact_lock(%s)",
        [int.from_bytes(digest[:8], "big", signed=True)],
        prepare=True,
    )


# A first name as people write theirs: letters of any script with their accents, and the
# hyphen, apostrophe, full stop (initials) and space between the parts ("Marie-Hélène",
# "O’Neill", "J.-P."). Nothing else, so that a first name greeted in an email cannot carry
# someone else's message ("your parcel is blocked, call 08 99 ...").
FIRST_NAME_MAX_LENGTH = 35
FIRST_NAME_MAX_WORDS = 4
FIRST_NAME_JOINERS = frozenset(" -'’.")


def normalize_first_name(raw: str) -> str:
    """One space between words, composed accents; a ValidationError for anything not a name."""
    value = unicodedata.normalize("NFC", " ".join((raw or "").split()))
    invalid = ValidationError({"first_name": "Enter only a first name."})
    if not value:
        return ""
    if len(value) > FIRST_NAME_MAX_LENGTH or len(value.split(" ")) > FIRST_NAME_MAX_WORDS:
        raise invalid
    if not unicodedata.category(value[0]).startswith("L"):
        raise invalid
    for char in value:
        if char not in FIRST_NAME_JOINERS and unicodedata.category(char)[0] not in "LM":
            raise invalid
    return value


def normalize_phone(raw: str) -> str:
    """E.164, parsed with ``phonenumbers``: ``06 12 34 56 78`` becomes ``+33612345678``, and a
    French national number of an overseas region its own country code (``0690…`` is ``+590…``).
    Only ASCII digits are read; a number that no numbering plan allocates is refused."""
    value = (raw or "").strip()
    if not value or not _PHONE_CHARACTERS.fullmatch(value):
        raise ValidationError({"phone": _PHONE_ERROR})
    digits = re.sub(r"\D", "", value)
    if not value.startswith("+") and re.fullmatch(r"0[1-9]\d{8}", digits):
        regions: tuple[str, ...] = (*OVERSEAS_REGIONS, "FR")  # the French national format
    else:
        regions = ("FR",)  # international, or nothing any region could read as national
    for region in regions:
        try:
            number = phonenumbers.parse(value, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    raise ValidationError({"phone": _PHONE_ERROR})
