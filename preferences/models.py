from __future__ import annotations

import secrets

from django.db import models

from consents.models import LANGUAGES, Contact


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
