"""The way into the preference page and out of it, and the person's own copy of their data.

A person asks for a link by email (the same answer whether the address is known or not); the link
opens a session remembered per person, so that erasure or "sign out of all links" ends it; the
data leaves only through a one-time link emailed to them (GDPR art. 15).
"""

from __future__ import annotations

import enum
import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.db import transaction

from consents import clock, links, services
from consents.models import AccessLog, Contact, Outbox
from consents.outbox import email_enqueue
from consents.selectors import proof
from preferences.models import CenterSession, LinkRequest

logger = logging.getLogger(__name__)

LINK_TEMPLATE = "preferences-link"
DATA_TEMPLATE = "data-download"
SELF_EXPORT = "export_access_self"


# --- The sessions a link opens ------------------------------------------------------------------


def preferences_session_open(*, contact: Contact, session_key: str) -> None:
    """Remember which session a link opened for whom, so that erasure can end it."""
    CenterSession.objects.update_or_create(
        session_key=session_key, defaults={"contact": contact, "created_at": clock.now()}
    )


def center_sessions_purge() -> int:
    """Forget the sessions that can no longer be alive: older than a session lives and than a
    link's authorisation lasts."""
    lifetime = max(timedelta(seconds=settings.SESSION_COOKIE_AGE), settings.PREFERENCE_LINK_TTL)
    count, _ = CenterSession.objects.filter(created_at__lt=clock.now() - lifetime).delete()
    return count


@transaction.atomic
def preferences_sign_out(*, contact: Contact) -> Contact:
    """Every preference link already sent stops working, and so does every open session."""
    return services.contact_revoke_links(contact=contact)


# --- Asking for a link ---------------------------------------------------------------------------


class LinkOutcome(enum.Enum):
    SENT = "sent"
    UNKNOWN = "unknown"
    RATE_LIMITED = "rate_limited"


@transaction.atomic
def link_request_record(*, email: str, language: str) -> LinkRequest:
    """Someone asked for their link: one row, and its task queued once it commits, the same
    whether the address is known or not (the lookup happens in the task)."""
    row = LinkRequest.objects.create(
        email=email, language=language if language in ("fr", "en") else "fr", created_at=clock.now()
    )
    transaction.on_commit(lambda: queue_link_request(row.pk))
    return row


def queue_link_request(request_id: int) -> bool:
    """Hand a request to the broker. An outage must never fail the page: the sweep retries."""
    from preferences.tasks import link_request_send

    try:
        link_request_send.apply_async(args=[request_id], retry=False)
    except Exception:
        logger.warning(
            "link request %s: could not reach the broker; the sweep will retry", request_id
        )
        return False
    return True


@transaction.atomic
def link_request_handle(*, request_id: int) -> LinkOutcome | None:
    """Handle one request, once: the link email when the address is known. None when the row
    is already handled (a duplicate task, the sweep)."""
    row = LinkRequest.objects.select_for_update().filter(pk=request_id).first()
    if row is None:
        return None
    outcome = preferences_link_send(email=row.email, language=row.language)
    row.delete()
    return outcome


def link_requests_due(older_than: timedelta | None = None) -> list[int]:
    """Requests still waiting after a while: their task never ran (broker down)."""
    cutoff = clock.now() - (older_than or settings.OUTBOX_SWEEP_AFTER)
    return list(
        LinkRequest.objects.filter(created_at__lte=cutoff)
        .order_by("id")
        .values_list("id", flat=True)[:1000]
    )


@transaction.atomic
def preferences_link_send(*, email: str, language: str) -> LinkOutcome:
    """Email a fresh preference link to a known address. The caller answers the same way always."""
    contact = services.contact_find(email=email)
    if contact is None or not contact.email:
        return LinkOutcome.UNKNOWN
    # Parallel requests for one address count the links already sent one after the other.
    services.address_lock(contact.email)
    since = clock.now() - timedelta(hours=24)
    recent = Outbox.objects.filter(
        contact=contact, template=LINK_TEMPLATE, created_at__gte=since
    ).count()
    if recent >= settings.SIGNUP_MAX_EMAILS_PER_ADDRESS:
        return LinkOutcome.RATE_LIMITED
    email_enqueue(
        to=contact.email,
        template=LINK_TEMPLATE,
        language=language,
        contact=contact,
        context={"valid_days": settings.PREFERENCE_LINK_TTL.days},
        links={"preferences_url": links.intent("preferences")},
    )
    return LinkOutcome.SENT


# --- "Download my data" -------------------------------------------------------------------------


def self_exports(contact: Contact) -> int:
    """How many times the person downloaded their data: the state a download link is bound to."""
    return AccessLog.objects.filter(contact=contact, action=SELF_EXPORT).count()


@transaction.atomic
def data_download_request(*, contact: Contact, language: str) -> Outbox:
    """Email the person a one-time link to their data: a fresh proof that they hold the mailbox.

    The link is bound to the number of downloads so far, so the first download retires it (and
    any other link asked for before it)."""
    if not contact.email:
        raise ValueError("The link to the data goes to the person's email address.")
    return email_enqueue(
        to=contact.email,
        template=DATA_TEMPLATE,
        language=language,
        contact=contact,
        is_service=True,  # asked for by the person, about their data
        context={"valid_minutes": int(settings.DATA_DOWNLOAD_LINK_TTL.total_seconds() // 60)},
        links={"download_url": links.intent("data_download", n=self_exports(contact))},
    )


@transaction.atomic
def data_download(*, contact: Contact, downloads_before: int) -> dict[str, Any] | None:
    """Everything we hold about the person, once per link; None when the link was used."""
    # Two clicks at once: the second waits, then finds the link used.
    locked = Contact.objects.select_for_update().get(pk=contact.pk)
    if self_exports(locked) != downloads_before:
        return None
    # Logged before the data leaves, like every export from the admin.
    services.access_log(
        user=AnonymousUser(),
        username="person",
        action=SELF_EXPORT,
        contact=locked,
        detail="downloaded from the link emailed from the preference page",
    )
    return proof.access_export(locked, clock.now())
