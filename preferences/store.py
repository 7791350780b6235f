"""Delegated consent: what staff record on a store tablet or on the phone.

Each capture is one transaction, keyed by an idempotency key that the form carries: the key's
``Capture`` row is written first, so that a retry (a lost response, a double tap) finds it and
records nothing twice. Every consent fact goes through ``consents.services``; the "confirm by
email" path goes through the sign-up's double opt-in (``signup_submit``).
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import Group
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils.crypto import constant_time_compare, salted_hmac
from django.utils.translation import gettext_lazy as _

from consents import clock, links, proof, services
from consents.models import Category, Contact, Notice, Store, Topic
from consents.outbox import email_enqueue
from consents.vocab import Channel, Doi, Method
from preferences.models import Capture, Device, StoreMembership
from preferences.services import (
    PHONE_CHANNELS,
    SignupOutcome,
    notice_for,
    signup_submit,
    validate_choices,
)

DEVICE_COOKIE = "assent_device"
RECEIPT_TEMPLATE = "store-receipt"
# Signed like every other credential we hand out (``consents.links``, scope "device").
DEVICE_COOKIE_MAX_AGE = int(links.DEVICE_TTL.total_seconds())


class Confirm(enum.StrEnum):
    HERE = "here"
    EMAIL = "email"


class CaptureOutcome(enum.Enum):
    RECORDED = "recorded"
    CONFIRMATION_SENT = "confirmation_sent"
    ALREADY_DONE = "already_done"  # a retry of a capture already recorded: nothing written


class ConfirmationEmailRefused(Exception):
    """The address has had its share of confirmation emails for now: nothing was recorded."""


class CaptureKeyReused(Exception):
    """This tablet and staff member already sent this form's key with other details (a form
    kept from an earlier customer): nothing was recorded for these."""


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
    return links.make("device", d=device.pk, s=device.secret)


def device_from_cookie(value: str | None) -> Device | None:
    """The enrolled, unrevoked device a cookie names, or None."""
    if not value:
        return None
    try:
        payload = links.read("device", value).payload
    except links.LinkError:
        return None
    if not isinstance(payload.get("d"), int):
        return None
    device = Device.objects.select_related("store").filter(pk=payload["d"]).first()
    if device is None or device.revoked_at is not None:
        return None
    if not constant_time_compare(device.secret, str(payload.get("s", ""))):
        return None
    return device


# --- Captures -----------------------------------------------------------------------------------


def capture_scope(kind: str, device: Device | None, user: AbstractBaseUser) -> str:
    """Where a capture key is unique: one tablet (or the phone) and one staff member. Another
    tablet or colleague that happens to send the same key records its own capture."""
    return f"{kind}:device:{device.pk if device else '-'}:user:{user.pk}"


def capture_digest(**data: Any) -> str:
    """What was submitted, keyed (it holds personal details): a retry sends the same."""
    text = json.dumps(data, sort_keys=True, default=str, ensure_ascii=False)
    return salted_hmac("assent.store.capture", text).hexdigest()


# What a capture's digest becomes once a retry can no longer come: it hashed what the person typed.
DIGEST_FORGOTTEN = "forgotten"
DIGEST_KEPT = timedelta(days=1)


def captures_forget(older_than: timedelta = DIGEST_KEPT) -> int:
    """Forget the digests of captures older than a day (the hourly purge): no retry of the same
    form comes that late, and a key sent again after that is refused, never taken as a retry."""
    return (
        Capture.objects.filter(created_at__lt=clock.now() - older_than)
        .exclude(digest__in=("", DIGEST_FORGOTTEN))
        .update(digest=DIGEST_FORGOTTEN)
    )


def _claim(
    *, key: str, kind: str, device: Device | None, user: AbstractBaseUser, digest: str
) -> tuple[Capture, bool]:
    """Write the capture's key first: (the new row, True), or (the earlier one, False) when this
    tablet and staff member already sent that key with the same details (a retry). The same key
    with other details is refused (``CaptureKeyReused``): never a silent "thank you" that
    dropped the customer."""
    if not key or len(key) > 64:
        raise ValidationError({"key": "This capture has no valid key."})
    scope = capture_scope(kind, device, user)
    try:
        with transaction.atomic():
            capture = Capture.objects.create(
                key=key,
                scope=scope,
                digest=digest,
                kind=kind,
                device=device,
                user=user,
                created_at=clock.now(),
            )
            return capture, True
    except IntegrityError:
        earlier = Capture.objects.get(scope=scope, key=key)
    # Rows written before captures kept a digest cannot be compared: taken as the retry.
    if earlier.digest and not constant_time_compare(earlier.digest, digest):
        raise CaptureKeyReused
    return earlier, False


def _create_contact(
    *, email: str, phone: str, first_name: str, locale: str, informed: bool
) -> Contact:
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
        return contact


@dataclass(frozen=True)
class Owners:
    """Who receives each fact of one capture: the contact that owns the email typed, and the one
    that owns the phone typed. They differ when each address already belongs to its own contact;
    then neither address moves and each fact goes to the owner of the address it uses."""

    by_email: Contact | None
    by_phone: Contact | None

    def of(self, channel: str) -> Contact:
        if channel in PHONE_CHANNELS and self.by_phone is not None:
            return self.by_phone
        contact = self.by_email or self.by_phone
        assert contact is not None
        return contact

    @property
    def primary(self) -> Contact:
        contact = self.by_email or self.by_phone
        assert contact is not None
        return contact


def _phone_owner(phone: str) -> Contact | None:
    return Contact.objects.filter(phone=phone).order_by("id").first() if phone else None


def _owners(*, email: str, phone: str, first_name: str, locale: str, informed: bool) -> Owners:
    """The contacts this capture's facts go to, created when an address is new. Nothing of them
    is shown: the screen is the same whether either address was known."""
    by_email = Contact.objects.filter(email__iexact=email).first() if email else None
    by_phone = _phone_owner(phone)
    person: dict[str, Any] = {"first_name": first_name, "locale": locale, "informed": informed}
    if by_email is None and by_phone is None:
        both = _create_contact(email=email, phone=phone, **person)
        return Owners(both if email else None, both if phone else None)
    if by_email is not None and by_phone is None and phone:
        if by_email.phone:
            # Another number is on file: never replaced from a tablet. The typed number, which
            # nobody owns yet, gets a contact of its own for the facts that use it.
            return Owners(by_email, _create_contact(email="", phone=phone, **person))
        # The person typed it in front of staff; it joins the contact that has no number.
        by_email = services.contact_update_details(contact=by_email, phone=phone)
        return Owners(by_email, by_email)
    if by_email is None and email:
        # The phone is known, the email is not: a contact of its own, the number is not copied.
        by_email = _create_contact(email=email, phone="", **person)
    return Owners(by_email, by_phone)


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
    if device.revoked_at is not None or device.store_id != store.pk:
        raise ValidationError({"device": "This tablet is not enrolled for this store."})
    if not is_member(user, store):
        raise ValidationError({"store": "You do not belong to this store."})
    if confirm not in tuple(Confirm):
        raise ValidationError({"confirm": "Choose how to confirm."})
    language = language if language in ("fr", "en") else "fr"
    email, phone = _addresses(email, phone)
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
    capture, created = _claim(key=key, kind="store", device=device, user=user, digest=digest)
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
        owners = _owners(
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
    if device is not None and (device.revoked_at is not None or device.store_id != store.pk):
        raise ValidationError({"device": "This tablet is not enrolled for this store."})
    if not is_member(user, store):
        raise ValidationError({"store": "You do not belong to this store."})
    email, phone = _addresses(email, phone)
    if not category:
        raise ValidationError({"purchase_category": "This field is required."})
    category = _category(category)
    digest = capture_digest(email=email, phone=phone, category=category, store=store.pk)
    capture, created = _claim(key=key, kind="purchase", device=device, user=user, digest=digest)
    if not created:
        return CaptureResult(CaptureOutcome.ALREADY_DONE, capture)
    contact = (Contact.objects.filter(email__iexact=email).first() if email else None) or (
        _phone_owner(phone)
    )
    if contact is None:
        contact = _create_contact(
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
    by_email = Contact.objects.filter(email__iexact=email).first() or _create_contact(
        email=email, phone="", first_name="", locale=language, informed=True
    )
    by_phone = _phone_owner(phone)
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
    email, phone = _addresses(email, phone)
    first_name = services.normalize_first_name(first_name)
    if callback and not phone:
        raise ValidationError({"phone": "Enter the phone number to call back."})
    chosen = validate_choices(answers, has_phone=bool(phone)) if answers else []
    refused = _refusals(refusals)
    if {(t.slug, c) for t, c in chosen} & {(t.slug, c) for t, c in refused}:
        raise ValidationError({"choices": "An answer cannot be both yes and no."})
    if not chosen and not refused and not callback:
        raise ValidationError({"choices": "Record at least one answer or a callback request."})
    if store is not None and not is_member(user, store):
        raise ValidationError({"store": "You do not belong to this store."})

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
    capture, created = _claim(key=key, kind="phone", device=None, user=user, digest=digest)
    if not created:
        return CaptureResult(CaptureOutcome.ALREADY_DONE, capture)
    now = capture.created_at
    owners = _owners(
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
    result: dict[str, Any] = {
        "events": _record_each(
            services.consent_grant,
            owners=owners,
            chosen=others,
            language=language,
            notices=notices,
            proof_base=proof_base,
            now=now,
            doi=Doi.NONE,
        )
        + _record_each(
            services.consent_grant,
            owners=owners,
            chosen=calls,
            language=language,
            notices=notices,
            proof_base=proof_base,
            now=now,
            doi=Doi.NONE,
            automated=True,
        )
    }
    if refused:
        result["opt_outs"] = _record_each(
            services.consent_withdraw,
            owners=owners,
            chosen=refused,
            language=language,
            notices=notices,
            proof_base=proof_base,
            now=now,
        )
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


# --- Staff accounts, managed by the store managers of their stores ------------------------------

STAFF_GROUP = "Staff"


@dataclass(frozen=True)
class StaffRow:
    """One account as a store manager sees it: only the stores they manage themselves."""

    user: Any
    stores: list[Store]
    manageable: bool
    elsewhere: bool  # also works in a store this manager does not manage (not named)
    addable: list[Store]


def manageable_staff(manager: AbstractBaseUser) -> QuerySet[Any]:
    """The accounts a store manager may act on: plain staff accounts of one of their stores.

    Never the manager themselves, a superuser, an account with admin access (``is_staff``), one in
    any group but "Staff", or one holding a permission of its own: those are for an administrator.
    """
    User = get_user_model()
    return (
        User.objects.filter(store_memberships__store__memberships__user=manager)
        .exclude(pk=manager.pk)
        .filter(is_superuser=False, is_staff=False)
        .exclude(groups__in=Group.objects.exclude(name=STAFF_GROUP))
        .exclude(user_permissions__isnull=False)
        .distinct()
    )


def staff_rows(manager: AbstractBaseUser) -> list[StaffRow]:
    mine = stores_of(manager)
    ids = {s.pk for s in mine}
    manageable = set(manageable_staff(manager).values_list("pk", flat=True))
    memberships: dict[int, list[int]] = {}
    users = (
        get_user_model()
        .objects.filter(store_memberships__store__in=mine)
        .distinct()
        .order_by("username")
    )
    for user_id, store_id in StoreMembership.objects.filter(user__in=users).values_list(
        "user_id", "store_id"
    ):
        memberships.setdefault(user_id, []).append(store_id)
    rows = []
    for user in users:
        theirs = set(memberships.get(user.pk, []))
        rows.append(
            StaffRow(
                user=user,
                stores=[s for s in mine if s.pk in theirs],
                manageable=user.pk in manageable,
                elsewhere=bool(theirs - ids),
                addable=[s for s in mine if s.pk not in theirs],
            )
        )
    return rows


def _check_manages(manager: AbstractBaseUser, user: AbstractBaseUser) -> None:
    if not manageable_staff(manager).filter(pk=user.pk).exists():
        raise ValidationError({"user": _("You do not manage this account.")})


def _check_store(manager: AbstractBaseUser, store: Store) -> None:
    if not is_member(manager, store):
        raise ValidationError({"store": _("You do not belong to this store.")})


def _only_in_stores_of(manager: AbstractBaseUser, user: AbstractBaseUser) -> bool:
    return not (
        StoreMembership.objects.filter(user=user).exclude(store__memberships__user=manager).exists()
    )


@transaction.atomic
def staff_create(
    *,
    manager: AbstractBaseUser,
    store: Store,
    username: str,
    password: str,
    first_name: str = "",
    last_name: str = "",
    email: str = "",
) -> Any:
    """A staff account in one of the manager's stores: the "Staff" group, no admin access, the
    initial password chosen by the manager (checked by the password validators)."""
    _check_store(manager, store)
    User = get_user_model()
    username = username.strip()
    if not username:
        raise ValidationError({"username": _("This field is required.")})
    try:
        User.username_validator(username)
    except ValidationError as exc:
        raise ValidationError({"username": exc.messages}) from None
    # Told apart from existing names case-insensitively: "Alice" and "alice" would be confusing.
    if User.objects.filter(username__iexact=username).exists():
        raise ValidationError({"username": _("This username is already taken.")})
    email = User.objects.normalize_email(email.strip()) if email.strip() else ""
    user = User(
        username=username,
        first_name=" ".join(first_name.split())[:150],
        last_name=" ".join(last_name.split())[:150],
        email=email,
        is_staff=False,
        is_superuser=False,
        is_active=True,
    )
    try:
        validate_password(password, user=user)
    except ValidationError as exc:
        raise ValidationError({"password": exc.messages}) from None
    user.set_password(password)
    try:
        with transaction.atomic():
            user.save(force_insert=True)
    except IntegrityError:
        raise ValidationError({"username": _("This username is already taken.")}) from None
    user.groups.add(Group.objects.get(name=STAFF_GROUP))
    StoreMembership.objects.create(user=user, store=store)
    _log(manager, "staff_create", user, [store])
    return user


@transaction.atomic
def staff_store_add(*, manager: AbstractBaseUser, user: AbstractBaseUser, store: Store) -> None:
    _check_manages(manager, user)
    _check_store(manager, store)
    _membership, created = StoreMembership.objects.get_or_create(user=user, store=store)
    if created:
        _log(manager, "staff_store_add", user, [store])


@transaction.atomic
def staff_store_remove(*, manager: AbstractBaseUser, user: AbstractBaseUser, store: Store) -> None:
    """Out of one of the manager's stores. Never out of the last one: an account in no store
    would be nobody's to manage; deactivate it instead."""
    _check_manages(manager, user)
    _check_store(manager, store)
    # Serialise changes to this account's stores (two managers, two tabs).
    get_user_model().objects.select_for_update().filter(pk=user.pk).first()
    memberships = StoreMembership.objects.filter(user=user)
    if not memberships.exclude(store=store).exists():
        raise ValidationError(
            {"store": _("This is the account’s only store: deactivate the account instead.")}
        )
    deleted, _rows = memberships.filter(store=store).delete()
    if deleted:
        _log(manager, "staff_store_remove", user, [store])


@transaction.atomic
def staff_set_active(*, manager: AbstractBaseUser, user: AbstractBaseUser, active: bool) -> Any:
    """Deactivate (the account can no longer log in; its sessions end) or reactivate. Only for
    an account that works in none but the manager's stores."""
    _check_manages(manager, user)
    locked = get_user_model().objects.select_for_update().get(pk=user.pk)
    if not _only_in_stores_of(manager, locked):
        raise ValidationError(
            {"user": _("This account also works in another store: remove it from yours instead.")}
        )
    if locked.is_active != active:
        locked.is_active = active
        locked.save(update_fields=["is_active"])
        _log(
            manager, "staff_reactivate" if active else "staff_deactivate", locked, stores_of(locked)
        )
    return locked


@transaction.atomic
def staff_password_set(*, manager: AbstractBaseUser, user: AbstractBaseUser, password: str) -> Any:
    """A new password for a staff member who forgot theirs, checked by the password validators.

    The same reach as deactivation: an account that also works in a store this manager does not
    manage is not theirs to take over. Every session of the account ends: the session keeps a
    hash of the password, which no longer matches."""
    _check_manages(manager, user)
    locked = get_user_model().objects.select_for_update().get(pk=user.pk)
    if not _only_in_stores_of(manager, locked):
        raise ValidationError(
            {
                "user": _(
                    "This account also works in another store: an administrator sets its password."
                )
            }
        )
    _set_password(locked, password)
    _log(manager, "staff_password_set", locked, stores_of(locked))
    return locked


@transaction.atomic
def staff_password_change(*, user: AbstractBaseUser, old_password: str, password: str) -> Any:
    """A staff member's own new password, given the current one. The caller keeps its own
    session (``update_session_auth_hash``); the account's other sessions end.

    In the compliance access log like a manager's change, by the account itself; a refused
    change (wrong current password, a password the validators refuse) is not."""
    locked = get_user_model().objects.select_for_update().get(pk=user.pk)
    if not locked.check_password(old_password):
        raise ValidationError({"old_password": _("This is not your current password.")})
    _set_password(locked, password)
    _log(locked, "staff_password_change", locked, stores_of(locked))
    return locked


PASSWORD_RATE_SCOPE = "store-password"
PASSWORD_ATTEMPTS = 5  # per account, every 15 minutes


def password_change_allowed(user: AbstractBaseUser) -> bool:
    """A session left open on a shared tablet must not become a way to guess the password."""
    from preferences import ratelimit

    return ratelimit.allow(
        PASSWORD_RATE_SCOPE, f"user:{user.pk}", limit=PASSWORD_ATTEMPTS, window_seconds=900
    )


def _set_password(user: Any, password: str) -> None:
    try:
        validate_password(password, user=user)
    except ValidationError as exc:
        raise ValidationError({"password": exc.messages}) from None
    user.set_password(password)
    user.save(update_fields=["password"])


def _log(manager: AbstractBaseUser, action: str, user: Any, stores: Sequence[Store]) -> None:
    """In the compliance access log: who changed which account, in which of their stores.
    Never a password."""
    where = ", ".join(f"{s.name} ({s.code})" for s in stores) or "-"
    detail = f"account: {user.get_username()} (#{user.pk}); store: {where}"
    proof.access_log(user=manager, action=action, contact=None, detail=detail)
