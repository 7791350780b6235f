"""Delegated consent: what staff record on a store tablet or on the phone.

Each capture is one transaction, keyed by an idempotency key that the form carries: the key's
``Capture`` row is written first, so that a retry (a lost response, a double tap) finds it and
records nothing twice. Every consent fact goes through ``consents.services``; the "confirm by
email" path goes through the sign-up's double opt-in (``signup_submit``).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.core import signing
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils.crypto import constant_time_compare

from consents import clock, services
from consents.models import Category, Contact, Store, Topic
from consents.vocab import Doi, Method
from preferences.models import Capture, Device, StoreMembership
from preferences.services import (
    SignupOutcome,
    notice_for,
    signup_submit,
    validate_choices,
)

DEVICE_COOKIE = "assent_device"
DEVICE_SALT = "assent.store.device"
DEVICE_COOKIE_MAX_AGE = 400 * 24 * 3600  # the longest lifetime browsers keep a cookie


class Confirm(enum.StrEnum):
    HERE = "here"
    EMAIL = "email"


class CaptureOutcome(enum.Enum):
    RECORDED = "recorded"
    CONFIRMATION_SENT = "confirmation_sent"
    ALREADY_DONE = "already_done"  # a retry of a capture already recorded: nothing written


@dataclass(frozen=True)
class CaptureResult:
    outcome: CaptureOutcome
    capture: Capture


# --- Stores and devices -------------------------------------------------------------------------


def stores_of(user: AbstractBaseUser) -> list[Store]:
    return list(Store.objects.filter(memberships__user=user).order_by("name"))


def is_member(user: AbstractBaseUser, store: Store) -> bool:
    return StoreMembership.objects.filter(user=user, store=store).exists()


def staff_actor(user: AbstractBaseUser) -> str:
    return f"staff:{user.get_username()}"


@transaction.atomic
def device_enrol(*, store: Store, name: str, enrolled_by: AbstractBaseUser) -> Device:
    name = " ".join(name.split())[:100]
    if not name:
        raise ValidationError({"name": "This field is required."})
    if not is_member(enrolled_by, store):
        raise ValidationError({"store": "You do not belong to this store."})
    return Device.objects.create(
        store=store, name=name, enrolled_by=enrolled_by, enrolled_at=clock.now()
    )


@transaction.atomic
def device_revoke(*, device: Device) -> Device:
    locked = Device.objects.select_for_update().get(pk=device.pk)
    if locked.revoked_at is None:
        locked.revoked_at = clock.now()
        locked.save(update_fields=["revoked_at"])
    return locked


def device_cookie_value(device: Device) -> str:
    return signing.dumps({"d": device.pk, "s": device.secret}, salt=DEVICE_SALT)


def device_from_cookie(value: str | None) -> Device | None:
    """The enrolled, unrevoked device a cookie names, or None."""
    if not value:
        return None
    try:
        payload = signing.loads(value, salt=DEVICE_SALT, max_age=DEVICE_COOKIE_MAX_AGE)
    except signing.BadSignature:
        return None
    if not isinstance(payload, dict) or not isinstance(payload.get("d"), int):
        return None
    device = Device.objects.select_related("store").filter(pk=payload["d"]).first()
    if device is None or device.revoked_at is not None:
        return None
    if not constant_time_compare(device.secret, str(payload.get("s", ""))):
        return None
    return device


# --- Captures -----------------------------------------------------------------------------------


def _claim(*, key: str, kind: str, device: Device | None, user: AbstractBaseUser) -> Capture | None:
    """Write the capture's key first; None when that key was already used (a retry)."""
    if not key or len(key) > 64:
        raise ValidationError({"key": "This capture has no valid key."})
    try:
        with transaction.atomic():
            return Capture.objects.create(
                key=key, kind=kind, device=device, user=user, created_at=clock.now()
            )
    except IntegrityError:
        return None


def _contact_for(
    *, email: str, phone: str, first_name: str, locale: str, informed: bool
) -> Contact:
    """The contact with this email (else this phone), created if new. Nothing of it is shown."""
    if email:
        contact = Contact.objects.filter(email__iexact=email).first()
    else:
        contact = Contact.objects.filter(phone=phone).order_by("id").first()
    if contact is None:
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
            contact = Contact.objects.filter(email__iexact=email).first() if email else None
            if contact is None:
                raise
    if phone and not contact.phone:
        # The person typed it in front of staff; an existing number is never replaced here.
        contact = services.contact_update_details(contact=contact, phone=phone)
    return contact


def _addresses(email: str, phone: str) -> tuple[str, str]:
    email = services.normalize_email(email) if email else ""
    phone = services.normalize_phone(phone) if phone else ""
    if not email and not phone:
        raise ValidationError({"email": "Enter an email address or a phone number."})
    return email, phone


def _category(slug: str) -> str:
    if not Category.objects.filter(slug=slug).exists():
        raise ValidationError({"purchase_category": f"Unknown category {slug!r}."})
    return slug


def _grant_all(
    *,
    contact: Contact,
    chosen: list[tuple[Topic, str]],
    language: str,
    proof_base: dict[str, Any],
    now: Any,
) -> list[int]:
    ids = []
    for topic, channel in chosen:
        event = services.consent_grant(
            contact=contact,
            topic=topic.slug,
            channel=channel,
            proof=services.Proof(notice=notice_for(topic, language), **proof_base),
            doi=Doi.NONE,
            occurred_at=now,
        )
        ids.append(event.pk)
    return ids


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
    purchase_category: str = "",
    user_agent: str = "",
) -> CaptureResult:
    """A customer's choices on the store tablet, confirmed here (``opt_in``, doi none) or by
    email (pending ``opt_in`` and a confirmation email), plus an optional purchase today."""
    if device.revoked_at is not None or device.store_id != store.pk:
        raise ValidationError({"device": "This tablet is not enrolled for this store."})
    if not is_member(user, store):
        raise ValidationError({"store": "You do not belong to this store."})
    if confirm not in tuple(Confirm):
        raise ValidationError({"confirm": "Choose how to confirm."})
    language = language if language in ("fr", "en") else "fr"
    email, phone = _addresses(email, phone)
    if confirm == Confirm.EMAIL and not email:
        raise ValidationError({"email": "Enter an email address to confirm by email."})
    chosen = validate_choices(choices, has_phone=bool(phone))
    category = _category(purchase_category) if purchase_category else ""

    capture = _claim(key=key, kind="store", device=device, user=user)
    if capture is None:
        return CaptureResult(CaptureOutcome.ALREADY_DONE, Capture.objects.get(key=key))
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
    result: dict[str, Any] = {"confirm": confirm}
    if confirm == Confirm.HERE:
        contact = _contact_for(
            email=email, phone=phone, first_name=first_name, locale=language, informed=True
        )
        proof_base = {
            "method": Method.STORE_TABLET,
            "actor": actor,
            "collection_point": point,
            "store": store,
            "user_agent": user_agent[:1000],
            "details": details,
        }
        result["events"] = _grant_all(
            contact=contact, chosen=chosen, language=language, proof_base=proof_base, now=now
        )
        outcome = CaptureOutcome.RECORDED
    else:
        # The customer was shown the store's information statement: informed at collection.
        contact = _contact_for(email=email, phone="", first_name="", locale=language, informed=True)
        sent = signup_submit(
            email=email,
            choices=[(t.slug, c) for t, c in chosen],
            language=language,
            first_name=first_name,
            phone=phone,
            collection_point=point,
            source=f"store:{store.code}",
            user_agent=user_agent,
            method=Method.STORE_TABLET,
            actor=actor,
            store=store,
            details=details,
        )
        result["signup"] = sent.value
        outcome = (
            CaptureOutcome.CONFIRMATION_SENT
            if sent is SignupOutcome.CONFIRMATION_SENT
            else CaptureOutcome.RECORDED
        )
    if category:
        event = services.purchase_record(
            contact=contact,
            category=category,
            product="",
            occurred_at=now,
            proof=services.Proof(
                actor=actor,
                collection_point=point,
                store=store,
                details={**details, "source": "store"},
            ),
        )
        result["purchase"] = event.pk
    capture.result = result
    capture.save(update_fields=["result"])
    return CaptureResult(outcome, capture)


@transaction.atomic
def phone_capture(
    *,
    key: str,
    user: AbstractBaseUser,
    call_reference: str,
    email: str,
    phone: str,
    answers: Sequence[tuple[str, str]],
    callback: bool = False,
    language: str = "fr",
    first_name: str = "",
    store: Store | None = None,
) -> CaptureResult:
    """The caller's oral answers, read to them from the notices: ``opt_in`` by ``phone_call``
    for each yes, and ``callback_request`` when they asked to be called back."""
    call_reference = " ".join(call_reference.split())[:200]
    if not call_reference:
        raise ValidationError({"call_reference": "This field is required."})
    language = language if language in ("fr", "en") else "fr"
    email, phone = _addresses(email, phone)
    if callback and not phone:
        raise ValidationError({"phone": "Enter the phone number to call back."})
    chosen = validate_choices(answers, has_phone=bool(phone)) if answers else []
    if not chosen and not callback:
        raise ValidationError({"choices": "Record at least one answer or a callback request."})
    if store is not None and not is_member(user, store):
        raise ValidationError({"store": "You do not belong to this store."})

    capture = _claim(key=key, kind="phone", device=None, user=user)
    if capture is None:
        return CaptureResult(CaptureOutcome.ALREADY_DONE, Capture.objects.get(key=key))
    now = capture.created_at
    contact = _contact_for(
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
    result: dict[str, Any] = {
        "events": _grant_all(
            contact=contact, chosen=chosen, language=language, proof_base=proof_base, now=now
        )
    }
    if callback:
        event = services.callback_request(
            contact=contact, proof=services.Proof(**proof_base), occurred_at=now
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
