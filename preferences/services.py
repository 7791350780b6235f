"""What people do through the public pages: sign up, confirm, leave.

These functions call ``consents.services`` for every consent fact; they own only the pending
sign-up state and which emails go out.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction

from consents import catalogue, clock, links, rules, services, statements
from consents.models import (
    ConsentState,
    Contact,
    Erasure,
    Event,
    Evidence,
    Notice,
    Outbox,
    Store,
    Topic,
)
from consents.outbox import email_enqueue
from consents.projections import fact_from_row
from consents.vocab import ANY, Channel, EventType, Method
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
    return catalogue.snapshot().notice_for(topic, language)


def notices_for(
    topics: Collection[Topic], language: str, snapshot: catalogue.Snapshot | None = None
) -> dict[str, Notice | None]:
    """Per topic, the wording shown: its latest published notice, else the global one.

    From the catalogue kept in the process's memory (``consents.catalogue``): no query.
    """
    snapshot = snapshot or catalogue.snapshot()
    return {t.slug: snapshot.notice_for(t, language) for t in topics}


def notices_recorded(
    topics: Collection[Topic], language: str, shown: Mapping[str, Notice | None] | None
) -> dict[str, Notice | None]:
    """The wording a save of the preference page records per topic: the one the page showed, as
    the server signed it into the page (``shown``), else the topic's current one."""
    notices = notices_for(topics, language)
    notices.update(shown or {})
    return notices


def signup_topics(snapshot: catalogue.Snapshot | None = None) -> list[Topic]:
    return [
        t
        for t in (snapshot or catalogue.snapshot()).active
        if any(channel in SIGNUP_CHANNELS for channel in t.channels)
    ]


def validate_choices(
    choices: Sequence[tuple[str, str]], *, has_phone: bool
) -> list[tuple[Topic, str]]:
    """Each (topic, channel) must be an active topic on a channel it offers on this form."""
    topics = {t.slug: t for t in catalogue.snapshot().active}
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


def _recent_emails(address: str) -> statements.Pending:
    """The sign-up emails sent to ``address`` in the last day (every sign-up asks: a statement
    built once, on the outbox's ``UPPER("to")`` index), asked for with what follows."""
    since = clock.now() - timedelta(hours=24)
    created_at = Outbox._meta.get_field("created_at")
    return statements.value(
        f'SELECT COUNT(*) FROM {Outbox._meta.db_table} WHERE UPPER("to") = UPPER(%s)'
        " AND template IN (%s, %s) AND created_at >= %s",
        [
            address,
            CONFIRM_TEMPLATE,
            ALREADY_TEMPLATE,
            created_at.get_db_prep_value(since, connection),
        ],
        later=True,
        prepare=True,
    )


def signup_submit(**kwargs: Any) -> SignupOutcome:
    """Record a sign-up (``_signup_submit``, whose keywords these are): in one transaction, tried
    once more when another transaction created the address's contact after this one found none
    (a path that does not take the address's lock: the API, a store, an import), whose second
    try then finds it."""
    if statements.sending_together():
        # Inside another block sent together, the contact's row would only go with that
        # block's queue, out of reach of the second try: written in a round trip of its own.
        return _signup_submit(**kwargs, reserve_ids=False)
    try:
        return _signup_submit(**kwargs, reserve_ids=True)
    except IntegrityError as exc:
        if not services.address_taken(exc):
            raise
    return _signup_submit(**kwargs, reserve_ids=True)


@transaction.atomic
@statements.together()
def _signup_submit(
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
    reserve_ids: bool = False,
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

    Its statements are sent together (``statements.together``): the address lock, the reads on
    the address (and, with ``reserve_ids``, the ids of a new contact and of its first event:
    ``services.contact_ids_reserved``) in one round trip; then, for a new contact, everything
    else in one more (without ``reserve_ids``, the contact's row first, in a round trip of its
    own); for a known one, its chain's end first.
    """
    address = services.normalize_email(email)
    phone = services.normalize_phone(phone) if phone else ""
    first_name = services.normalize_first_name(first_name)
    chosen = validate_choices(choices, has_phone=bool(phone)) if choices or not elsewhere else []
    language = language if language in ("fr", "en") else "fr"
    # Parallel sign-ups of one address count the emails already sent one after the other.
    services.address_lock(address)
    recent = _recent_emails(address)
    found = services.contact_with_email(address, later=True)
    listed = services.suppression_listed(email=address)
    reserved = services.contact_ids_reserved() if reserve_ids else None
    if recent.result >= settings.SIGNUP_MAX_EMAILS_PER_ADDRESS:
        return SignupOutcome.RATE_LIMITED

    contact, created = services.contact_get_or_create(
        email=address, locale=language, found=found, listed=listed, reserved=reserved
    )
    # A number on file is never replaced by one typed on a form: the choices that use the typed
    # number go to the contact that owns it (created if new), confirmed by the same email.
    by_phone = _phone_owner(contact, phone, language)
    if phone and by_phone is None and contact.phone != phone:
        # The number joins the contact once the email is confirmed, but a listed one arrives
        # opted out now, before the choices that use it (which the confirmation then lifts).
        services.suppression_record(contact=contact, phone=phone)
    owners = [c for c in (contact, by_phone) if c is not None and not (c is contact and created)]
    confirmed = (
        set(
            ConsentState.objects.filter(
                contact__in=owners, status=ConsentState.Status.OPTED_IN
            ).values_list("contact_id", "topic", "channel")
        )
        if owners
        else set()
    )
    now = clock.now()
    pending = []
    for topic, channel in chosen:
        owner = by_phone if by_phone is not None and channel in PHONE_CHANNELS else contact
        if (owner.pk, topic.slug, channel) in confirmed:
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
            contact=owner,
            topic=topic.slug,
            channel=channel,
            proof=proof,
            doi="pending",
            occurred_at=now,
            created_here=created and owner is contact,
        )
        choice = {"topic": topic.slug, "channel": channel, "event": event.pk}
        pending.append(choice if owner is contact else {**choice, "contact": owner.pk})
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
            context={},
            links={"preferences_url": links.intent("preferences")},
        )
        return SignupOutcome.ALREADY_SUBSCRIBED

    signup_pending_create(
        contact=contact,
        choices=pending,
        language=language,
        first_name=first_name,
        phone="" if by_phone is not None else phone,
        source=source,
        now=now,
    )
    return SignupOutcome.CONFIRMATION_SENT


def _phone_owner(contact: Contact, phone: str, language: str) -> Contact | None:
    """The contact that owns ``phone`` when it is not ``contact``'s number and ``contact`` has
    another one on file (the store's rule too); None when the number can join ``contact``."""
    if not phone or not contact.phone or contact.phone == phone:
        return None
    owner = Contact.objects.filter(phone=phone).order_by("id").first()
    return owner or services.contact_create(phone=phone, locale=language)


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
    signup = statements.insert(
        PendingSignup(
            contact=contact,
            choices=choices,
            first_name=first_name.strip()[:150],
            phone=phone,
            locale=language,
            source=source[:100],
            created_at=now,
            expires_at=now + settings.DOI_CONFIRM_TTL,
        ),
        later=True,  # inside statements.together(), its id is set when the block ends
    )
    by_slug = catalogue.snapshot().by_slug
    names = {
        c["topic"]: (t.name_en if language == "en" else t.name_fr)
        for c in choices
        if (t := by_slug.get(c["topic"])) is not None
    }
    email_enqueue(
        to=contact.email,
        template=CONFIRM_TEMPLATE,
        language=language,
        contact=contact,
        context={
            "first_name": signup.first_name,
            "choices": [{"topic": names[c["topic"]], "channel": c["channel"]} for c in choices],
            "expires_days": settings.DOI_CONFIRM_TTL.days,
        },
        links={"confirm_url": links.intent("confirm", s=signup.nonce)},
    )
    return signup


def signup_for_token(contact: Contact, nonce: str) -> PendingSignup | None:
    return PendingSignup.objects.filter(contact=contact, nonce=nonce).first()


def signup_resend(
    *,
    contact: Contact,
    signup: PendingSignup,
    form_address: str,
    ip_address: str | None = None,
    user_agent: str = "",
) -> SignupOutcome:
    """A fresh confirmation email for a sign-up whose link expired: the same choices, rebuilt
    from the ledger rows of its pending opt-ins, with the wording each was shown and where the
    consent was collected (the original form, not this link; ``form_address`` when the ledger
    no longer says). Raises ``ValidationError`` when a topic has closed since."""
    assert contact.email, "a double opt-in confirms an email address"
    first_event = signup.choices[0].get("event") if signup.choices else None
    collection_point = (
        Event.objects.filter(pk=first_event).values_list("collection_point", flat=True).first()
        or form_address
    )
    shown = {
        event.topic: event.notice
        for event in Event.objects.filter(
            pk__in=[c.get("event") for c in signup.choices]
        ).select_related("notice")
    }
    return signup_submit(
        email=contact.email,
        choices=[(c["topic"], c["channel"]) for c in signup.choices],
        language=signup.locale,
        notices=shown,  # the wording they were shown when they signed up
        first_name=_still_a_first_name(signup.first_name),
        phone=signup.phone,
        collection_point=collection_point,
        source=signup.source,
        ip_address=ip_address,
        user_agent=user_agent,
    )


def _still_a_first_name(value: str) -> str:
    """A sign-up kept from before the first-name rules: the new email greets no one instead."""
    try:
        return services.normalize_first_name(value)
    except ValidationError:
        return ""


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
    locked = Contact.objects.select_for_update().get(pk=contact.pk)
    # The owner of the address has now confirmed the details they typed. A number joins the
    # contact only where none is on file: clicking in a mailbox proves nothing about a phone,
    # and the consents given for the number on file stay with it.
    phone = signup.phone if signup.phone and not locked.phone else None
    services.contact_update_details(
        contact=locked,
        first_name=signup.first_name or None,
        phone=phone,
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
        for other in Contact.objects.select_for_update()
        .filter(
            pk__in=[c["contact"] for c in signup.choices if c.get("contact")],
        )
        # An erased contact receives nothing more (a subquery: FOR UPDATE takes no outer join).
        .exclude(pk__in=Erasure.objects.values("contact_id"))
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
    services.evidence_erase(
        evidence=Evidence.objects.filter(event_id__in=unconfirmed_events), at=now
    )
    count, _ = expired.delete()
    return count


def unsubscribed_from_all(contact: Contact) -> bool:
    """The person's latest word is "unsubscribe from everything": the rule
    (``rules.unsubscribed_from_everything``) on their whole history, read from the ledger. The
    preference page asks the same rule on the facts it has already loaded."""
    events = Event.objects.filter(contact=contact).values(
        "type", "occurred_at", "seq", "topic", "channel", "method", "proof", "data"
    )
    h = rules.ordered(fact_from_row(**row) for row in events)
    return rules.unsubscribed_from_everything(h, rules.RuleSettings.from_django())


def unsubscribe_all(
    *,
    contact: Contact,
    method: str,
    ip_address: str | None = None,
    user_agent: str = "",
    collection_point: str = "",
) -> bool:
    """``opt_out`` of every topic on every channel; False (nothing written) if already out."""
    return (
        unsubscribe_all_undoable(
            contact=contact,
            method=method,
            ip_address=ip_address,
            user_agent=user_agent,
            collection_point=collection_point,
        )
        is not None
    )


@transaction.atomic
def unsubscribe_all_undoable(
    *,
    contact: Contact,
    method: str,
    ip_address: str | None = None,
    user_agent: str = "",
    collection_point: str = "",
) -> dict[str, Any] | None:
    """``unsubscribe_all``, returning what ``unsubscribe_undo`` needs to put things back.

    ``{"seq": the opt_out's place in the chain, "choices": [{"topic", "channel", "frequency",
    "notice"}]}``: the subscriptions it ended, with the wording each was given under. None when
    nothing was written.
    """
    locked = Contact.objects.select_for_update().get(pk=contact.pk)
    if unsubscribed_from_all(locked):
        return None
    subscribed = list(
        ConsentState.objects.filter(contact=locked, status=ConsentState.Status.OPTED_IN).order_by(
            "topic", "channel"
        )
    )
    wording: dict[tuple[str, str], int | None] = {}
    for topic, channel, notice in (
        Event.objects.filter(contact=locked, type=EventType.OPT_IN)
        .order_by("seq")
        .values_list("topic", "channel", "notice_id")
    ):
        wording[(topic, channel)] = notice
    event = services.consent_withdraw(
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
    return {
        "seq": event.seq,
        "choices": [
            {
                "topic": state.topic,
                "channel": state.channel,
                "frequency": state.frequency,
                "notice": wording.get((state.topic, state.channel)),
            }
            for state in subscribed
        ],
    }


@transaction.atomic
def unsubscribe_undo(
    *,
    contact: Contact,
    undo: Mapping[str, Any],
    ip_address: str | None = None,
    user_agent: str = "",
    collection_point: str = "",
) -> bool:
    """The person changed their mind at once: say yes again to what the unsubscribe ended.

    Only while the unsubscribe is still the latest thing that happened to them; the ledger keeps
    both (it is append-only): the ``opt_out``, then an ``opt_in`` per subscription it ended,
    under the wording that subscription was given. False when nothing was written.
    """
    locked = Contact.objects.select_for_update().get(pk=contact.pk)
    latest = (
        Event.objects.filter(contact=locked).order_by("-seq").values_list("seq", flat=True).first()
    )
    if latest is None or latest != undo.get("seq"):
        return False
    choices = [c for c in undo.get("choices", []) if isinstance(c, dict)]
    notices = Notice.objects.in_bulk([c["notice"] for c in choices if c.get("notice")])
    topics = {t.slug: t for t in Topic.objects.filter(active=True)}
    restored = False
    for choice in choices:
        topic = topics.get(choice.get("topic", ""))
        channel = choice.get("channel", "")
        if topic is None or channel not in topic.channels:
            continue  # no longer offered: nothing to say yes to
        frequency = choice.get("frequency", "")
        services.consent_grant(
            contact=locked,
            topic=topic.slug,
            channel=channel,
            proof=services.Proof(
                method=Method.UNSUBSCRIBE_LINK,
                actor="person",
                collection_point=f"{collection_point}: undo"[:500],
                notice=notices.get(choice.get("notice")),
                ip_address=ip_address,
                user_agent=user_agent[:1000],
            ),
            frequency=frequency if frequency in topic.frequencies else "",
        )
        restored = True
    return restored
