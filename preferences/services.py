"""What people do through the public pages: sign up, confirm, leave.

These functions call ``consents.services`` for every consent fact; they own only the pending
sign-up state and which emails go out.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q

from consents import clock, services
from consents.models import (
    ConsentState,
    Contact,
    Event,
    Evidence,
    Notice,
    Outbox,
    Store,
    Topic,
)
from consents.outbox import email_enqueue
from consents.vocab import ANY, Channel, EventType, Method
from preferences import links
from preferences.models import PendingSignup

# Channels a person can choose on the public sign-up form (push and post need an app or address).
SIGNUP_CHANNELS = (Channel.EMAIL, Channel.SMS, Channel.PHONE)
PHONE_CHANNELS = (Channel.SMS, Channel.PHONE)
CONFIRM_TEMPLATE = "signup-confirm"
ALREADY_TEMPLATE = "signup-already"


class SignupOutcome(enum.Enum):
    CONFIRMATION_SENT = "confirmation_sent"
    ALREADY_SUBSCRIBED = "already_subscribed"
    RATE_LIMITED = "rate_limited"


class ConfirmOutcome(enum.Enum):
    CONFIRMED = "confirmed"
    ALREADY_CONFIRMED = "already_confirmed"
    EXPIRED = "expired"
    UNKNOWN = "unknown"


def notice_for(topic: Topic, language: str) -> Notice | None:
    """The wording shown for a topic: its latest published notice, else the global one."""
    notices = Notice.objects.filter(language=language, published_at__isnull=False).order_by(
        "-version"
    )
    return notices.filter(topic=topic).first() or notices.filter(topic__isnull=True).first()


def signup_topics() -> list[Topic]:
    return [
        t
        for t in Topic.objects.filter(active=True)
        if any(channel in SIGNUP_CHANNELS for channel in t.channels)
    ]


def validate_choices(
    choices: Sequence[tuple[str, str]], *, has_phone: bool
) -> list[tuple[Topic, str]]:
    """Each (topic, channel) must be an active topic on a channel it offers on this form."""
    topics = {t.slug: t for t in Topic.objects.filter(active=True)}
    valid: list[tuple[Topic, str]] = []
    for slug, channel in dict.fromkeys(choices):
        topic = topics.get(slug)
        if topic is None or channel not in SIGNUP_CHANNELS or channel not in topic.channels:
            raise ValidationError({"choices": "This choice is not offered."})
        if channel in PHONE_CHANNELS and not has_phone:
            raise ValidationError({"phone": "Enter your phone number to receive SMS or calls."})
        valid.append((topic, channel))
    if not valid:
        raise ValidationError({"choices": "Choose at least one topic and channel."})
    return valid


def _recent_emails(address: str) -> int:
    since = clock.now() - timedelta(hours=24)
    return Outbox.objects.filter(
        to__iexact=address,
        template__in=(CONFIRM_TEMPLATE, ALREADY_TEMPLATE),
        created_at__gte=since,
    ).count()


@transaction.atomic
def signup_submit(
    *,
    email: str,
    choices: Sequence[tuple[str, str]],
    language: str = "fr",
    first_name: str = "",
    phone: str = "",
    collection_point: str = "",
    source: str = "",
    ip_address: str | None = None,
    user_agent: str = "",
    notice_language: str | None = None,
    notices: Mapping[str, Notice | None] | None = None,
    method: str = Method.WEB_FORM,
    actor: str = "person",
    store: Store | None = None,
    details: Mapping[str, Any] | None = None,
    elsewhere: Sequence[Mapping[str, Any]] = (),
) -> SignupOutcome:
    """Record a sign-up: pending opt-ins in the ledger and a confirmation email in the outbox.

    The caller shows the same page whatever the outcome, so that nobody learns whether an
    address is known. The ledger names the wording the person was shown: the notices of the
    page's language (``notice_language``, default ``language``, the language of the emails), or
    exactly ``notices`` when the caller knows them (a fresh link for an earlier sign-up).
    A store tablet passes its own ``method``, ``actor`` (the staff member), ``store`` and
    ``details`` (the device, the capture). ``elsewhere`` are pending ``opt_in`` events the same
    person gave on another contact (the one that owns the phone number they typed):
    ``[{"topic", "channel", "event", "contact"}]``; the email lists them and its confirmation
    confirms them on that contact.
    """
    address = services.normalize_email(email)
    phone = services.normalize_phone(phone) if phone else ""
    first_name = services.normalize_first_name(first_name)
    chosen = validate_choices(choices, has_phone=bool(phone)) if choices or not elsewhere else []
    language = language if language in ("fr", "en") else "fr"
    # Parallel sign-ups of one address count the emails already sent one after the other.
    services.address_lock(address)
    if _recent_emails(address) >= settings.SIGNUP_MAX_EMAILS_PER_ADDRESS:
        return SignupOutcome.RATE_LIMITED

    contact, _ = services.contact_get_or_create(email=address, locale=language)
    confirmed = set(
        ConsentState.objects.filter(
            contact=contact, status=ConsentState.Status.OPTED_IN
        ).values_list("topic", "channel")
    )
    now = clock.now()
    pending = []
    for topic, channel in chosen:
        if (topic.slug, channel) in confirmed:
            continue  # never downgrade a confirmed consent to pending
        proof = services.Proof(
            method=method,
            actor=actor,
            collection_point=collection_point[:500],
            store=store,
            notice=(
                notices[topic.slug]
                if notices is not None and topic.slug in notices
                else notice_for(topic, notice_language or language)
            ),
            ip_address=ip_address,
            user_agent=user_agent[:1000],
            details={**({"source": source} if source else {}), **(details or {})},
        )
        event = services.consent_grant(
            contact=contact,
            topic=topic.slug,
            channel=channel,
            proof=proof,
            doi="pending",
            occurred_at=now,
        )
        pending.append({"topic": topic.slug, "channel": channel, "event": event.pk})
    pending += [
        {"topic": c["topic"], "channel": c["channel"], "event": c["event"], "contact": c["contact"]}
        for c in elsewhere
    ]

    if not pending:
        email_enqueue(
            to=address,
            template=ALREADY_TEMPLATE,
            language=contact.locale,
            contact=contact,
            context={"preferences_url": links.preferences_url(contact)},
            unsubscribe_url=links.unsubscribe_url(contact),
        )
        return SignupOutcome.ALREADY_SUBSCRIBED

    signup_pending_create(
        contact=contact,
        choices=pending,
        language=language,
        first_name=first_name,
        phone=phone,
        source=source,
        now=now,
    )
    return SignupOutcome.CONFIRMATION_SENT


def signup_pending_create(
    *,
    contact: Contact,
    choices: list[dict[str, Any]],
    language: str,
    now: datetime,
    first_name: str = "",
    phone: str = "",
    source: str = "",
) -> PendingSignup:
    """The pending state of a double opt-in and its confirmation email (in the outbox).

    ``choices`` are the pending ``opt_in`` events already in the ledger:
    ``[{"topic": slug, "channel": ..., "event": id}, ...]``, with ``"contact": pk`` for an event
    of another contact than ``contact`` (see ``signup_submit``'s ``elsewhere``).
    """
    assert contact.email, "a double opt-in confirms an email address"
    signup = PendingSignup.objects.create(
        contact=contact,
        choices=choices,
        first_name=first_name.strip()[:150],
        phone=phone,
        locale=language,
        source=source[:100],
        created_at=now,
        expires_at=now + settings.DOI_CONFIRM_TTL,
    )
    names = {
        t.slug: (t.name_en if language == "en" else t.name_fr)
        for t in Topic.objects.filter(slug__in=[c["topic"] for c in choices])
    }
    email_enqueue(
        to=contact.email,
        template=CONFIRM_TEMPLATE,
        language=language,
        contact=contact,
        context={
            "confirm_url": links.confirm_url(contact, signup.nonce),
            "first_name": signup.first_name,
            "choices": [{"topic": names[c["topic"]], "channel": c["channel"]} for c in choices],
            "expires_days": settings.DOI_CONFIRM_TTL.days,
        },
        unsubscribe_url=links.unsubscribe_url(contact),
    )
    return signup


def signup_for_token(contact: Contact, nonce: str) -> PendingSignup | None:
    return PendingSignup.objects.filter(contact=contact, nonce=nonce).first()


@transaction.atomic
def signup_confirm(
    *,
    contact: Contact,
    nonce: str,
    token_digest: str,
    ip_address: str | None = None,
    user_agent: str = "",
) -> tuple[ConfirmOutcome, PendingSignup | None]:
    """The person clicked "confirm": record ``doi_confirmed`` for each pending choice, once."""
    signup = PendingSignup.objects.select_for_update().filter(contact=contact, nonce=nonce).first()
    if signup is None:
        return ConfirmOutcome.UNKNOWN, None
    if signup.confirmed_at is not None:
        return ConfirmOutcome.ALREADY_CONFIRMED, signup
    now = clock.now()
    if now > signup.expires_at:
        return ConfirmOutcome.EXPIRED, signup
    # The owner of the address has now confirmed the details they typed.
    services.contact_update_details(
        contact=contact,
        first_name=signup.first_name or None,
        phone=signup.phone or None,
        locale=signup.locale,
    )
    proof = services.Proof(
        method=Method.DOUBLE_OPT_IN,
        actor="person",
        collection_point="confirmation link",
        ip_address=ip_address,
        user_agent=user_agent[:1000],
    )
    others = {
        other.pk: other
        for other in Contact.objects.select_for_update().filter(
            pk__in=[c["contact"] for c in signup.choices if c.get("contact")]
        )
    }
    for choice in signup.choices:
        owner = others.get(choice["contact"]) if choice.get("contact") else contact
        if owner is None:
            continue  # that contact is gone: nothing of theirs to confirm
        services.consent_confirm(
            contact=owner,
            topic=choice["topic"],
            channel=choice["channel"],
            proof=proof,
            token_digest=token_digest,
            occurred_at=now,
        )
    signup.confirmed_at = now
    signup.save(update_fields=["confirmed_at"])
    return ConfirmOutcome.CONFIRMED, signup


@transaction.atomic
def signups_purge() -> int:
    """Forget sign-ups whose link has expired: the pending state and its personal evidence.

    The ledger keeps the ``opt_in`` events: a sign-up happened, and was never confirmed.
    """
    now = clock.now()
    expired = PendingSignup.objects.filter(expires_at__lt=now)
    unconfirmed_events = [
        choice["event"]
        for signup in expired.filter(confirmed_at__isnull=True)
        for choice in signup.choices
    ]
    Evidence.objects.filter(event_id__in=unconfirmed_events, erased_at__isnull=True).update(
        ip_address=None, user_agent="", details={}, erased_at=now
    )
    count, _ = expired.delete()
    return count


def _is_unsubscribed_from_all(contact: Contact) -> bool:
    """True when the latest word of the person is "unsubscribe from everything"."""
    last_out = (
        Event.objects.filter(contact=contact, type=EventType.OPT_OUT, topic=ANY, channel=ANY)
        .order_by("-seq")
        .values_list("seq", flat=True)
        .first()
    )
    if last_out is None:
        return False
    later_yes = Q(type__in=(EventType.OPT_IN, EventType.DOI_CONFIRMED, EventType.CALLBACK_REQUEST))
    return not Event.objects.filter(later_yes, contact=contact, seq__gt=last_out).exists()


@transaction.atomic
def unsubscribe_all(
    *,
    contact: Contact,
    method: str,
    ip_address: str | None = None,
    user_agent: str = "",
    collection_point: str = "",
) -> bool:
    """``opt_out`` of every topic on every channel; False (nothing written) if already out."""
    locked = Contact.objects.select_for_update().get(pk=contact.pk)
    if _is_unsubscribed_from_all(locked):
        return False
    services.consent_withdraw(
        contact=locked,
        topic=ANY,
        channel=ANY,
        proof=services.Proof(
            method=method,
            actor="person",
            collection_point=collection_point,
            ip_address=ip_address,
            user_agent=user_agent[:1000],
        ),
    )
    return True
