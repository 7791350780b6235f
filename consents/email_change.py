"""A new email address for a contact, asked for by an officer (the right to rectification).

Nothing changes when it is asked: a service email goes to the new address, and the contact's
address changes only when its owner opens the link (``services.contact_email_change``, from
``consents.public_views``).
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext

from consents import links
from consents.models import Contact
from consents.outbox import email_enqueue
from consents.proof import access_log


@transaction.atomic
def email_change_request(
    *, contact: Contact, new_email: str, user: AbstractBaseUser | AnonymousUser
) -> None:
    """Send the confirmation link for ``new_email`` (already normalised) to that address, and
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
