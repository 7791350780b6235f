from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models

from consents.models import LANGUAGES, Contact, Store


def new_nonce() -> str:
    return secrets.token_urlsafe(16)


class PendingSignup(models.Model):
    """A sign-up waiting for its double opt-in confirmation.

    The ledger already holds its ``opt_in`` events (``doi: pending``); this row is what the
    confirmation link is bound to. Purged once the link has expired; the ledger keeps the events.
    """

    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="signups")
    nonce = models.CharField(max_length=32, unique=True, default=new_nonce, editable=False)
    choices = models.JSONField(help_text='[{"topic": ..., "channel": ..., "event": id}, ...]')
    # Applied to the contact once the owner of the address confirms.
    first_name = models.CharField(max_length=150, blank=True)
    phone = models.CharField(max_length=16, blank=True)
    locale = models.CharField(max_length=2, choices=LANGUAGES, default="fr")
    source = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    confirmed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"sign-up {self.pk} of contact {self.contact_id}"


class CenterSession(models.Model):
    """A browser session that a preference link opened for a contact.

    A session keeps its data encoded, so nothing can search sessions for a person: this row is
    how erasure finds theirs and ends them. Forgotten once the session cannot live any more."""

    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="+")
    session_key = models.CharField(max_length=40, unique=True)
    created_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["contact"], name="center_session_contact")]

    def __str__(self) -> str:
        return f"preference session of contact {self.contact_id}"


class LinkRequest(models.Model):
    """Someone asked for a link to their preferences ("/"), not yet handled.

    Written the same way whatever the address, and handled after the response by a task that
    looks the address up and sends the link when it is known: the page answers in the same
    time either way, so that it does not tell whose address is on file. Deleted once handled;
    a sweep hands rows that were never handled (broker down) to the broker again.
    """

    email = models.CharField(max_length=254)
    language = models.CharField(max_length=2, choices=LANGUAGES, default="fr")
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"link request {self.pk}"


# --- Delegated consent: stores, their staff and tablets -------------------------------------------


def new_device_secret() -> str:
    return secrets.token_urlsafe(32)


class StoreMembership(models.Model):
    """A staff account belongs to one or more stores; it captures consent only for those."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="store_memberships"
    )
    store = models.ForeignKey(Store, on_delete=models.CASCADE, related_name="memberships")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "store"], name="store_membership_unique"),
        ]
        permissions = [("manage_staff", "Can manage the staff accounts of their stores")]

    def __str__(self) -> str:
        return f"{self.user} at {self.store}"


class Device(models.Model):
    """A store tablet, named by a signed cookie set when a store manager enrols it."""

    store = models.ForeignKey(Store, on_delete=models.PROTECT, related_name="devices")
    name = models.CharField(max_length=100)
    # Also in the signed cookie: revoking the row (or rotating this) disowns the cookie.
    secret = models.CharField(max_length=64, default=new_device_secret, editable=False)
    enrolled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    enrolled_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["store", "name"]
        permissions = [("manage_devices", "Can enrol and revoke the tablets of their stores")]

    def __str__(self) -> str:
        return f"{self.name} ({self.store.code})"


class Capture(models.Model):
    """One submitted capture, by its idempotency key: a retry finds it and records nothing.

    A key is unique within its ``scope`` (one tablet and one staff member); ``digest`` (a keyed
    hash of what was submitted) tells a retry from a reused key with another customer's details.
    """

    key = models.CharField(max_length=64)
    scope = models.CharField(max_length=100, default="")
    digest = models.CharField(max_length=64, blank=True, default="")
    kind = models.CharField(max_length=16)  # "store", "phone" or "purchase"
    device = models.ForeignKey(Device, null=True, blank=True, on_delete=models.PROTECT)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField()
    # Event ids and the outcome, never what the person typed.
    result = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-id"]
        permissions = [("capture_consent", "Can capture consent in a store or on the phone")]
        constraints = [
            models.UniqueConstraint(fields=["scope", "key"], name="capture_key_unique_in_scope"),
        ]

    def __str__(self) -> str:
        return f"capture {self.key}"


class TrackingInbox(models.Model):
    """An email-service tracking event, as received: kept until the drain has moved it into the
    ledger (``preferences.tracking.drain``), in the same transaction as the facts it records, so
    that an event is never lost between the webhook's answer and the ledger."""

    received_at = models.DateTimeField()
    esp = models.CharField(max_length=32)
    event_type = models.CharField(max_length=16)  # anymail's: bounced, opened, ...
    fact = models.CharField(max_length=32)  # the ledger fact it becomes, or "open_count"
    # Empty for opens counted per message and day (nobody's open is written).
    recipient = models.CharField(max_length=254, blank=True)
    reference = models.CharField(max_length=500, blank=True)
    occurred_at = models.DateTimeField()
    hard = models.BooleanField(default=False)
    message = models.CharField(max_length=200, blank=True)  # what opens are counted by
    raw = models.JSONField(null=True, blank=True)  # the service's own payload for this event

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.esp} {self.event_type} #{self.pk}"


class OpenCount(models.Model):
    """Opens of a message on a day (UTC), counted without writing whose they were: the default
    (``TRACKING_OPENS_PER_PERSON``), since opens carry no weight in the rules and per-person open
    tracking needs the person's consent."""

    day = models.DateField()
    message = models.CharField(max_length=200, blank=True)
    opens = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["day", "message"], name="open_count_day_message"),
        ]

    def __str__(self) -> str:
        return f"{self.message or '-'} {self.day}: {self.opens}"
