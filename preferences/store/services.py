"""Delegated consent: what staff record on a store tablet or on the phone.

Each capture is one transaction, keyed by an idempotency key that the form carries
(``preferences.store.keys``): a retry records nothing twice. Its facts go to the contacts that
own the addresses typed (``preferences.store.owners``). Every consent fact goes through
``consents.services``; the "confirm by email" path goes through the sign-up's double opt-in
(``signup_submit``).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction

from consents import links, services
from consents.models import Category, Contact, Notice, Store, Topic
from consents.outbox import email_enqueue
from consents.vocab import Channel, Doi, Method
from preferences.models import Capture, Device
from preferences.services import (
    PHONE_CHANNELS,
    SignupOutcome,
    notice_for,
    signup_submit,
    validate_choices,
)
from preferences.store.devices import device_required, member_required, staff_actor
from preferences.store.keys import capture_digest, claim
from preferences.store.owners import (
    Owners,
    addresses,
    create_contact,
    email_owner,
    owners_for,
    phone_owner,
)

RECEIPT_TEMPLATE = "store-receipt"


class Confirm(enum.StrEnum):
    HERE = "here"
    EMAIL = "email"


class CaptureOutcome(enum.Enum):
    RECORDED = "recorded"
    CONFIRMATION_SENT = "confirmation_sent"
    ALREADY_DONE = "already_done"  # a retry of a capture already recorded: nothing written


class ConfirmationEmailRefused(Exception):
    """The address has had its share of confirmation emails for now: nothing was recorded."""


@dataclass(frozen=True)
class CaptureResult:
    outcome: CaptureOutcome
    capture: Capture


Shown = Mapping[str, Notice | None] | None


def _notice(topic: Topic, language: str, notices: Shown) -> Notice | None:
    """The wording the form showed (signed into it), else the one it shows now."""
    if notices is not None and topic.slug in notices:
        return notices[topic.slug]
    return notice_for(topic, language)


def _record_each(
    record: Callable[..., Any],
    *,
    owners: Owners,
    chosen: Sequence[tuple[Topic, str]],
    language: str,
    notices: Shown,
    proof_base: dict[str, Any],
    now: Any,
    **extra: Any,
) -> list[int]:
    """One ledger fact per (topic, channel), on the contact that owns the channel's address,
    with the wording shown or read: ``record`` is ``consent_grant`` (a yes) or
    ``consent_withdraw`` (a "no" said to the phone script)."""
    return [
        record(
            contact=owners.of(channel),
            topic=topic.slug,
            channel=channel,
            proof=services.Proof(notice=_notice(topic, language, notices), **proof_base),
            occurred_at=now,
            **extra,
        ).pk
        for topic, channel in chosen
    ]


@transaction.atomic
def store_capture(
    *,
    key: str,
    user: AbstractBaseUser,
    store: Store,
    device: Device,
    email: str,
    phone: str,
    choices: Sequence[tuple[str, str]],
    confirm: str,
    language: str = "fr",
    first_name: str = "",
    user_agent: str = "",
    notices: Shown = None,
) -> CaptureResult:
    """A customer's choices on the store tablet, confirmed here (``opt_in``, doi none) or by
    email (pending ``opt_in`` and a confirmation email). ``notices`` is the wording the tablet
    showed per topic.

    Never a purchase: the tablet is in the customer's hands, and a purchase is a fact staff
    attest (it can open the soft opt-in); staff record it on their own screen
    (``store_purchase``).

    Raises ``ConfirmationEmailRefused`` (and writes nothing) when the address may not be sent
    another confirmation email yet, ``CaptureKeyReused`` when the form's key was already sent
    from this tablet by this staff member with other details."""
    device_required(device, store)
    member_required(user, store)
    if confirm not in tuple(Confirm):
        raise ValidationError({"confirm": "Choose how to confirm."})
    language = language if language in ("fr", "en") else "fr"
    email, phone = addresses(email, phone)
    first_name = services.normalize_first_name(first_name)
    if confirm == Confirm.EMAIL and not email:
        raise ValidationError({"email": "Enter an email address to confirm by email."})
    chosen = validate_choices(choices, has_phone=bool(phone))

    digest = capture_digest(
        email=email,
        phone=phone,
        first_name=first_name,
        choices=sorted((t.slug, c) for t, c in chosen),
        confirm=str(confirm),
        language=language,
    )
    capture, created = claim(key=key, kind="store", device=device, user=user, digest=digest)
    if not created:
        return CaptureResult(CaptureOutcome.ALREADY_DONE, capture)
    now = capture.created_at
    actor = staff_actor(user)
    # Where and on which device: in the chained event itself, not only in erasable evidence.
    point = f"store:{store.code} device:{device.pk}"
    details = {
        "collected_by": user.get_username(),
        "store": store.code,
        "device": device.pk,
        "device_name": device.name,
        "capture": key,
        "language": language,
    }
    proof_base = {
        "method": Method.STORE_TABLET,
        "actor": actor,
        "collection_point": point,
        "store": store,
        "user_agent": user_agent[:1000],
        "details": details,
    }
    result: dict[str, Any] = {"confirm": confirm}
    if confirm == Confirm.HERE:
        owners = owners_for(
            email=email, phone=phone, first_name=first_name, locale=language, informed=True
        )
        result["events"] = _record_each(
            services.consent_grant,
            owners=owners,
            chosen=chosen,
            language=language,
            notices=notices,
            proof_base=proof_base,
            now=now,
            doi=Doi.NONE,
        )
        if owners.by_email is not None:
            result["receipt"] = _receipt(
                owners.by_email,
                chosen=chosen,
                language=language,
                store=store,
                first_name=first_name,
            ).pk
        outcome = CaptureOutcome.RECORDED
    else:
        owners, outcome = _confirm_by_email(
            email=email,
            phone=phone,
            chosen=chosen,
            language=language,
            notices=notices,
            first_name=first_name,
            point=point,
            store=store,
            proof_base=proof_base,
            now=now,
            user_agent=user_agent,
            result=result,
        )
    capture.result = result
    capture.save(update_fields=["result"])
    return CaptureResult(outcome, capture)


def _receipt(
    contact: Contact,
    *,
    chosen: Sequence[tuple[Topic, str]],
    language: str,
    store: Store,
    first_name: str,
) -> Any:
    """The customer's receipt of choices confirmed on the tablet, to the email they typed: what
    they chose, where, and a link to their preferences (a service message, in the outbox)."""
    assert contact.email
    return email_enqueue(
        to=contact.email,
        template=RECEIPT_TEMPLATE,
        language=language,
        contact=contact,
        is_service=True,
        context={
            "first_name": first_name,
            "store": store.name,
            "choices": [
                {"topic": t.name_en if language == "en" else t.name_fr, "channel": c}
                for t, c in chosen
            ],
        },
        links={"preferences_url": links.intent("preferences")},
    )


def _confirm_by_email(
    *,
    email: str,
    phone: str,
    chosen: list[tuple[Topic, str]],
    language: str,
    notices: Shown,
    first_name: str,
    point: str,
    store: Store,
    proof_base: dict[str, Any],
    now: Any,
    user_agent: str,
    result: dict[str, Any],
) -> tuple[Owners, CaptureOutcome]:
    """The double opt-in of the sign-up, for the contact that owns the email.

    When the phone typed already belongs to another contact, the choices that use it are
    recorded on that contact as pending (``doi: pending``); the confirmation email lists them
    with the email's own, and confirming it confirms them on that contact. The number is never
    copied onto the email's contact."""
    # The customer was shown the store's information statement: informed at collection.
    by_email = email_owner(email) or create_contact(
        email=email, phone="", first_name="", locale=language, informed=True
    )
    by_phone = phone_owner(phone)
    split = by_phone is not None and by_phone.pk != by_email.pk
    owners = Owners(by_email, by_phone if split else by_email)
    by_mail = [(t, c) for t, c in chosen if not (split and c in PHONE_CHANNELS)]
    elsewhere = [(t, c) for t, c in chosen if split and c in PHONE_CHANNELS]
    pending_elsewhere: list[dict[str, Any]] = []
    if elsewhere:
        # Recorded first, so that the confirmation email lists them and confirms them too.
        ids = _record_each(
            services.consent_grant,
            owners=owners,
            chosen=elsewhere,
            language=language,
            notices=notices,
            proof_base=proof_base,
            now=now,
            doi=Doi.PENDING,
        )
        result["pending"] = ids
        pending_elsewhere = [
            {"topic": t.slug, "channel": c, "event": pk, "contact": owners.of(c).pk}
            for (t, c), pk in zip(elsewhere, ids, strict=True)
        ]
    sent: SignupOutcome | None = None
    if by_mail or pending_elsewhere:
        sent = signup_submit(
            email=email,
            choices=[(t.slug, c) for t, c in by_mail],
            language=language,
            notices={t.slug: _notice(t, language, notices) for t, _c in by_mail},
            first_name=first_name,
            phone="" if split else phone,
            collection_point=point,
            source=f"store:{store.code}",
            user_agent=user_agent,
            method=Method.STORE_TABLET,
            actor=proof_base["actor"],
            store=store,
            details=proof_base["details"],
            elsewhere=pending_elsewhere,
        )
        if sent is SignupOutcome.RATE_LIMITED:
            # Raised, not returned: the whole capture (its key included) is rolled back.
            raise ConfirmationEmailRefused
        result["signup"] = sent.value
    outcome = (
        CaptureOutcome.CONFIRMATION_SENT
        if sent is SignupOutcome.CONFIRMATION_SENT
        else CaptureOutcome.RECORDED
    )
    return owners, outcome


def _category(slug: str) -> str:
    if not Category.objects.filter(slug=slug).exists():
        raise ValidationError({"purchase_category": f"Unknown category {slug!r}."})
    return slug


@transaction.atomic
def store_purchase(
    *,
    key: str,
    user: AbstractBaseUser,
    store: Store,
    device: Device | None,
    email: str,
    phone: str,
    category: str,
) -> CaptureResult:
    """A purchase made today in ``store``, recorded by staff on their own screen (never on the
    customer's): the fact that can open the soft opt-in (L34-5 CPCE) is attested by staff.

    It goes to the contact that owns the email (else the phone). An address nobody owns yet gets
    a contact of its own, not informed at collection: staff typed it, the customer was shown no
    information statement. The screen says the same whether the address was known."""
    if device is not None:
        device_required(device, store)
    member_required(user, store)
    email, phone = addresses(email, phone)
    if not category:
        raise ValidationError({"purchase_category": "This field is required."})
    category = _category(category)
    digest = capture_digest(email=email, phone=phone, category=category, store=store.pk)
    capture, created = claim(key=key, kind="purchase", device=device, user=user, digest=digest)
    if not created:
        return CaptureResult(CaptureOutcome.ALREADY_DONE, capture)
    contact = email_owner(email) or phone_owner(phone)
    if contact is None:
        contact = create_contact(
            email=email, phone=phone, first_name="", locale="fr", informed=False
        )
    point = f"store:{store.code}" + (f" device:{device.pk}" if device is not None else "")
    details: dict[str, Any] = {
        "collected_by": user.get_username(),
        "store": store.code,
        "capture": key,
        "source": "store",
    }
    if device is not None:
        details.update(device=device.pk, device_name=device.name)
    event = services.purchase_record(
        contact=contact,
        category=category,
        product="",
        occurred_at=capture.created_at,
        proof=services.Proof(
            actor=staff_actor(user), collection_point=point, store=store, details=details
        ),
    )
    capture.result = {"purchase": event.pk}
    capture.save(update_fields=["result"])
    return CaptureResult(CaptureOutcome.RECORDED, capture)


def _refusals(refusals: Sequence[tuple[str, str]]) -> list[tuple[Topic, str]]:
    """Each "no" names an active topic on a channel it offers. A refusal needs no phone number:
    without one, it stays with the contact of the email."""
    if not refusals:
        return []
    try:
        return validate_choices(refusals, has_phone=True)
    except ValidationError:
        raise ValidationError({"choices": "This choice is not offered."}) from None


@transaction.atomic
def phone_capture(
    *,
    key: str,
    user: AbstractBaseUser,
    call_reference: str,
    email: str,
    phone: str,
    answers: Sequence[tuple[str, str]],
    refusals: Sequence[tuple[str, str]] = (),
    callback: bool = False,
    automated: bool = False,
    language: str = "fr",
    first_name: str = "",
    store: Store | None = None,
    notices: Shown = None,
) -> CaptureResult:
    """The caller's oral answers, read to them from the notices: ``opt_in`` by ``phone_call``
    for each yes, ``opt_out`` by ``phone_call`` for each no, and ``callback_request`` when they
    asked to be called back. A topic and channel not asked is recorded as nothing.
    ``notices`` is the wording the form showed to read, per topic.

    ``automated``: the caller also agreed to recorded or automated calls; it applies to each yes
    on the phone channel (consent to live calls alone does not cover them)."""
    call_reference = " ".join(call_reference.split())[:200]
    if not call_reference:
        raise ValidationError({"call_reference": "This field is required."})
    language = language if language in ("fr", "en") else "fr"
    email, phone = addresses(email, phone)
    first_name = services.normalize_first_name(first_name)
    if callback and not phone:
        raise ValidationError({"phone": "Enter the phone number to call back."})
    chosen = validate_choices(answers, has_phone=bool(phone)) if answers else []
    refused = _refusals(refusals)
    if {(t.slug, c) for t, c in chosen} & {(t.slug, c) for t, c in refused}:
        raise ValidationError({"choices": "An answer cannot be both yes and no."})
    if not chosen and not refused and not callback:
        raise ValidationError({"choices": "Record at least one answer or a callback request."})
    if store is not None:
        member_required(user, store)

    digest = capture_digest(
        call_reference=call_reference,
        email=email,
        phone=phone,
        first_name=first_name,
        answers=sorted((t.slug, c) for t, c in chosen),
        refusals=sorted((t.slug, c) for t, c in refused),
        callback=bool(callback),
        automated=bool(automated),
        language=language,
        store=store.pk if store is not None else None,
    )
    capture, created = claim(key=key, kind="phone", device=None, user=user, digest=digest)
    if not created:
        return CaptureResult(CaptureOutcome.ALREADY_DONE, capture)
    now = capture.created_at
    owners = owners_for(
        email=email, phone=phone, first_name=first_name, locale=language, informed=True
    )
    proof_base: dict[str, Any] = {
        "method": Method.PHONE_CALL,
        "actor": staff_actor(user),
        "collection_point": f"call:{call_reference}",
        "store": store,
        "reference": call_reference,
        "details": {
            "collected_by": user.get_username(),
            "call_reference": call_reference,
            "capture": key,
            "language": language,
        },
    }
    calls = [(t, c) for t, c in chosen if automated and c == Channel.PHONE]
    others = [(t, c) for t, c in chosen if (t, c) not in calls]
    # Each fact on the owner of its channel's address, with the wording read to the caller.
    record_each = partial(
        _record_each,
        owners=owners,
        language=language,
        notices=notices,
        proof_base=proof_base,
        now=now,
    )
    result: dict[str, Any] = {
        "events": record_each(services.consent_grant, chosen=others, doi=Doi.NONE)
        + record_each(services.consent_grant, chosen=calls, doi=Doi.NONE, automated=True)
    }
    if refused:
        result["opt_outs"] = record_each(services.consent_withdraw, chosen=refused)
    if callback:
        event = services.callback_request(
            contact=owners.of(Channel.PHONE),
            proof=services.Proof(**proof_base),
            occurred_at=now,
        )
        result["callback"] = event.pk
    capture.result = result
    capture.save(update_fields=["result"])
    return CaptureResult(CaptureOutcome.RECORDED, capture)


def capture_rate_allowed(scope_key: str) -> bool:
    from preferences import ratelimit

    return ratelimit.allow(
        "store-capture",
        scope_key,
        limit=settings.CAPTURE_RATE_PER_DEVICE,
        window_seconds=3600,
    )
