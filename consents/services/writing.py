"""The only code that writes consent facts.

One function per kind of fact, keyword-only and typed. Each validates everything before writing;
a bad value raises ``ValidationError`` naming the field, and nothing is written. Appends take a row
lock on the contact, chain the event to the contact's previous one and rewrite the contact's
projections, all in one transaction.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import phonenumbers
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator
from django.db import IntegrityError, connection, transaction
from django.db.models import Max, OuterRef, QuerySet, Subquery
from django.utils import timezone

from consents import catalogue, clock, ledger, rules, webhooks_out
from consents.models import (
    Category,
    ChainHead,
    Contact,
    ContactFacts,
    Erasure,
    Event,
    Evidence,
    ImportedRow,
    Notice,
    Outbox,
    Store,
    Suppression,
    Topic,
)
from consents.projections import (
    fact_from_event,
    projection_append,
    projection_refresh,
    projection_start,
)
from consents.vocab import (
    ANY,
    CHANNELS,
    LEDGER_METHODS,
    METHODS,
    TOPIC_PURPOSES,
    Channel,
    ContactKind,
    Doi,
    EventType,
    InteractionKind,
    Method,
)

logger = logging.getLogger(__name__)

# --- Addresses ----------------------------------------------------------------------------------

_email_validator = EmailValidator()
EMAIL_MAX_LENGTH = 254  # Contact.email, Outbox.to


def normalize_email(raw: str) -> str:
    """Trim, lower-case the domain (the local part is the mailbox owner's business)."""
    value = (raw or "").strip()
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
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(%s)", [int.from_bytes(digest[:8], "big", signed=True)]
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


# --- Checks -------------------------------------------------------------------------------------


def _check_instant(name: str, value: datetime | None, *, future_ok: bool = False) -> None:
    if value is None:
        raise ValidationError({name: "This field is required."})
    if timezone.is_naive(value):
        raise ValidationError({name: "Give a timezone-aware instant (with an offset)."})
    if not future_ok and value > clock.now() + settings.LEDGER_MAX_CLOCK_SKEW:
        raise ValidationError({name: "This instant is in the future."})


def _check_choice(name: str, value: str, allowed: tuple[str, ...] | frozenset[str]) -> None:
    if value not in allowed:
        raise ValidationError({name: f"Unknown value {value!r}."})


def _topic(slug: str, *, wildcard: bool = False) -> Topic | None:
    if wildcard and slug == ANY:
        return None
    topic = catalogue.snapshot().by_slug.get(slug)
    if topic is None:
        raise ValidationError({"topic": f"Unknown topic {slug!r}."})
    return topic


# --- Proof --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Proof:
    """How a fact was collected: what a compliance officer needs to show it."""

    method: str = ""
    actor: str = "system"
    collection_point: str = ""
    store: Store | None = None
    notice: Notice | None = None
    reference: str = ""
    # Personal evidence, kept beside the event (erasable):
    ip_address: str | None = None
    user_agent: str = ""
    details: dict[str, Any] = field(default_factory=dict)


# --- Contacts, topics, notices, catalog --------------------------------------------------------


@transaction.atomic
def contact_create(
    *,
    email: str | None = None,
    phone: str | None = None,
    kind: str = ContactKind.CONSUMER,
    first_name: str = "",
    postal_address: str = "",
    push_token: str = "",
    locale: str = "fr",
    collected_at: datetime | None = None,
    informed_at_collection: bool = False,
    profession: str = "",
    _looked_up: bool = False,
) -> Contact:
    _check_choice("kind", kind, tuple(ContactKind.values))
    _check_choice("locale", locale, ("fr", "en"))
    email = normalize_email(email) if email else None
    phone = normalize_phone(phone) if phone else ""
    collected_at = collected_at or clock.now()
    _check_instant("collected_at", collected_at)
    # (``_looked_up``: the caller has just looked for the address in this transaction; the
    # unique index still refuses a concurrent creation.)
    if email and not _looked_up and Contact.objects.filter(email__iexact=email).exists():
        raise ValidationError({"email": "A contact with this email already exists."})
    try:
        # A savepoint: a concurrent creation of the same address fails alone, cleanly.
        with transaction.atomic():
            contact = Contact.objects.create(
                email=email,
                phone=phone,
                kind=kind,
                first_name=first_name[:150],
                postal_address=postal_address,
                push_token=push_token,
                locale=locale,
                collected_at=collected_at,
                informed_at_collection=informed_at_collection,
                profession=profession,
            )
    except IntegrityError as exc:
        raise ValidationError({"email": "A contact with this email already exists."}) from exc
    projection_start(contact)
    # Before any other fact: an address that opted out and was erased arrives opted out.
    suppression_record(contact=contact, email=email, phone=phone)
    return contact


@transaction.atomic
def contact_get_or_create(*, email: str, locale: str = "fr") -> tuple[Contact, bool]:
    """The contact with this address, created if new; safe against a concurrent creation."""
    address = normalize_email(email)
    existing = Contact.objects.filter(email__iexact=address).first()
    if existing is not None:
        return existing, False
    try:
        return contact_create(email=address, locale=locale, _looked_up=True), True
    except ValidationError:
        existing = Contact.objects.filter(email__iexact=address).first()
        if existing is None:
            raise
        return existing, False


def contact_find(*, email: str) -> Contact | None:
    try:
        return Contact.objects.filter(email__iexact=normalize_email(email)).first()
    except ValidationError:
        return None


@transaction.atomic
def contact_update_details(
    *,
    contact: Contact,
    first_name: str | None = None,
    phone: str | None = None,
    locale: str | None = None,
) -> Contact:
    """Details the person gave us themselves (their name, phone, language).

    A phone number is added where none is on file, never replaced: the consents given for a
    number belong to the person who controls it, and nothing here proves that the new one is
    theirs (``contact_phone_change`` is the door for a number its owner confirmed)."""
    locked = Contact.objects.select_for_update().get(pk=contact.pk)
    fields = []
    added_phone = ""
    if first_name is not None:
        locked.first_name = first_name.strip()[:150]
        fields.append("first_name")
    if phone is not None:
        number = normalize_phone(phone) if phone else ""
        if number and locked.phone and number != locked.phone:
            raise ValidationError(
                {"phone": "Another number is on file: it changes only when its owner confirms."}
            )
        if number != locked.phone:
            added_phone = number
            locked.phone = number
            fields.append("phone")
    if locale is not None:
        _check_choice("locale", locale, ("fr", "en"))
        locked.locale = locale
        fields.append("locale")
    if fields:
        locked.save(update_fields=fields)
    if added_phone:
        suppression_record(contact=locked, phone=added_phone)
    return locked


@transaction.atomic
def contact_phone_change(*, contact: Contact, new_phone: str, proof: Proof) -> Event:
    """Replace the number on file with one its owner confirmed (a code sent to it, the person in
    front of staff with their phone): ``address_changed`` on sms and on phone, the channels a
    number serves. A number on the suppression list arrives opted out, before the change."""
    number = normalize_phone(new_phone)
    locked = Contact.objects.select_for_update().get(pk=contact.pk)
    if Erasure.objects.filter(contact=locked).exists():
        raise ValidationError({"phone": "This contact is erased."})
    if number == locked.phone:
        raise ValidationError({"phone": "This number is already on file."})
    locked.phone = number
    locked.save(update_fields=["phone"])
    suppression_record(contact=locked, phone=number)
    _append(
        contact=locked,
        type=EventType.ADDRESS_CHANGED,
        occurred_at=None,
        proof=proof,
        channel=Channel.SMS,
    )
    return _append(
        contact=locked,
        type=EventType.ADDRESS_CHANGED,
        occurred_at=None,
        proof=proof,
        channel=Channel.PHONE,
    )


POSTAL_ADDRESS_MAX_LENGTH = 500


@transaction.atomic
def contact_postal_address_set(*, contact: Contact, postal_address: str, proof: Proof) -> Contact:
    """The postal address the person gave us themselves (added, changed or removed). A change
    is ``address_changed`` on the postal channel: what was said about the old address is the
    old address's."""
    text = "\n".join(line.strip() for line in postal_address.strip().splitlines() if line.strip())
    if len(text) > POSTAL_ADDRESS_MAX_LENGTH:
        raise ValidationError({"postal_address": "The address is too long."})
    locked = Contact.objects.select_for_update().get(pk=contact.pk)
    if Erasure.objects.filter(contact=locked).exists():
        raise ValidationError({"postal_address": "This contact is erased."})
    if text == locked.postal_address:
        return locked
    replaced = bool(locked.postal_address)
    locked.postal_address = text
    locked.save(update_fields=["postal_address"])
    if replaced:
        _append(
            contact=locked,
            type=EventType.ADDRESS_CHANGED,
            occurred_at=None,
            proof=proof,
            channel=Channel.POSTAL,
        )
    return locked


@transaction.atomic
def contact_revoke_links(*, contact: Contact) -> Contact:
    """Every link already sent to this contact stops working."""
    locked = Contact.objects.select_for_update().get(pk=contact.pk)
    locked.link_version += 1
    locked.save(update_fields=["link_version"])
    return locked


@transaction.atomic
def topic_create(
    *,
    slug: str,
    purpose: str,
    channels: list[str],
    name_fr: str,
    name_en: str,
    description_fr: str = "",
    description_en: str = "",
    frequencies: list[str] | None = None,
    display_order: int = 0,
    active: bool = True,
) -> Topic:
    _check_choice("purpose", purpose, TOPIC_PURPOSES)
    if not channels:
        raise ValidationError({"channels": "A topic is offered on at least one channel."})
    for channel in channels:
        _check_choice("channels", channel, CHANNELS)
    if slug == ANY or Topic.objects.filter(slug=slug).exists():
        raise ValidationError({"slug": "This slug is taken."})
    topic = Topic(
        slug=slug,
        purpose=purpose,
        channels=list(dict.fromkeys(channels)),
        name_fr=name_fr,
        name_en=name_en,
        description_fr=description_fr,
        description_en=description_en,
        frequencies=list(frequencies or []),
        display_order=display_order,
        active=active,
    )
    topic.full_clean()
    topic.save()
    return topic


def _next_notice_version(topic: Topic | None, language: str) -> int:
    """The version after the latest of this topic and language, drafts included (locked, so two
    writers cannot take the same number)."""
    latest = (
        Notice.objects.select_for_update()
        .filter(topic=topic, language=language)
        .order_by("-version")
        .first()
    )
    return latest.version + 1 if latest else 1


@transaction.atomic
def notice_publish(*, topic: Topic | None, language: str, text: str) -> Notice:
    """Publish a new version of a notice's wording; published versions never change."""
    _check_choice("language", language, ("fr", "en"))
    if not text.strip():
        raise ValidationError({"text": "The wording cannot be empty."})
    notice = Notice.objects.create(
        topic=topic,
        language=language,
        version=_next_notice_version(topic, language),
        text=text,
        sha256=hashlib.sha256(text.encode()).hexdigest(),
        published_at=clock.now(),
    )
    webhooks_out.notice_published(notice=notice)
    return notice


@transaction.atomic
def notice_draft_create(*, topic: Topic | None, language: str, text: str) -> Notice:
    """A draft: the next version number, editable until published, shown to nobody."""
    _check_choice("language", language, ("fr", "en"))
    return Notice.objects.create(
        topic=topic,
        language=language,
        version=_next_notice_version(topic, language),
        text=text,
        published_at=None,
    )


@transaction.atomic
def notice_draft_update(*, notice: Notice, text: str) -> Notice:
    locked = Notice.objects.select_for_update().get(pk=notice.pk)
    if locked.is_published:
        raise ValidationError({"text": "A published notice cannot change: write a new version."})
    locked.text = text
    locked.save(update_fields=["text"])
    return locked


@transaction.atomic
def notice_draft_publish(*, notice: Notice) -> Notice:
    """Publish a draft: its wording and hash are fixed from now on (a trigger guards it)."""
    locked = Notice.objects.select_for_update().get(pk=notice.pk)
    if locked.is_published:
        raise ValidationError({"published_at": "This notice is already published."})
    if not locked.text.strip():
        raise ValidationError({"text": "The wording cannot be empty."})
    newer = Notice.objects.filter(
        topic_id=locked.topic_id,
        language=locked.language,
        version__gt=locked.version,
        published_at__isnull=False,
    )
    if newer.exists():
        raise ValidationError({"version": "A later version is already published."})
    locked.sha256 = hashlib.sha256(locked.text.encode()).hexdigest()
    locked.published_at = clock.now()
    locked.save(update_fields=["sha256", "published_at"])
    webhooks_out.notice_published(notice=locked)
    return locked


@transaction.atomic
def category_set(*, slug: str, family: str, name: str = "", name_en: str = "") -> Category:
    # RULES.md: an empty string is never a value; a category with no family is its own family.
    if not slug:
        raise ValidationError({"slug": "This field is required."})
    if not family:
        raise ValidationError({"family": "This field is required."})
    category, _ = Category.objects.update_or_create(
        slug=slug, defaults={"family": family, "name": name, "name_en": name_en}
    )
    return category


# --- The ledger writer --------------------------------------------------------------------------


def _append(
    *,
    contact: Contact,
    type: str,
    occurred_at: datetime | None,
    proof: Proof,
    topic: str = "",
    channel: str = "",
    data: dict[str, Any] | None = None,
    created_here: bool = False,
) -> Event:
    """Append one event to the contact's chain and rewrite its projections.

    Callers have validated everything; this must run inside ``transaction.atomic``.
    ``created_here``: the caller created the contact in this transaction, so no other
    transaction can see its row yet, and there is nothing to lock.
    """
    recorded_at = clock.now()
    occurred_at = occurred_at or recorded_at
    _check_instant("occurred_at", occurred_at)
    # RULES.md: an event is never dated after the moment it is recorded. A clock a little ahead
    # (an email service's timestamp, within LEDGER_MAX_CLOCK_SKEW) is read as "now"; otherwise
    # ``decide`` as of now and the audience, which reads every recorded fact, would disagree.
    occurred_at = min(occurred_at, recorded_at)
    if proof.method:
        _check_choice("method", proof.method, LEDGER_METHODS)
    if not proof.actor:
        raise ValidationError({"actor": "Who recorded this fact is required."})
    # The row lock serialises appends for one contact; other contacts never wait.
    locked = _lock_with_chain_end(contact, lock=not created_here)
    seq, prev_hash, head_exists = _chain_end(locked)
    digest, salt = ledger.evidence_seal(proof.ip_address, proof.user_agent, proof.details)
    event = Event(
        contact=locked,
        seq=seq,
        type=type,
        topic=topic,
        channel=channel,
        occurred_at=occurred_at,
        recorded_at=recorded_at,
        method=proof.method,
        actor=proof.actor[:128],
        collection_point=ledger.collection_point(proof.collection_point),
        store=proof.store,
        notice=proof.notice,
        proof=proof.reference[:500],
        data=data or {},
        evidence_digest=digest,
        prev_hash=prev_hash,
    )
    event.hash = ledger.event_hash(event)
    event.save(force_insert=True)
    head = {"seq": seq, "hash": event.hash, "recorded_at": event.recorded_at}
    if head_exists:
        ChainHead.objects.filter(contact=locked).update(**head)
    else:
        ChainHead.objects.create(contact=locked, **head)
    if digest:
        Evidence.objects.create(
            event=event,
            ip_address=proof.ip_address,
            user_agent=proof.user_agent,
            details=proof.details,
            salt=salt,
        )
    projection_append(locked, fact_from_event(event), state=locked._fold)
    # Other systems are told through deliveries written in this same transaction.
    webhooks_out.event_recorded(event=event, contact=locked)
    return event


@dataclass
class BatchItem:
    """One fact for ``append_batch``: what ``_append`` takes, for a contact given by its id."""

    contact_id: int
    type: str
    proof: Proof
    occurred_at: datetime | None = None
    topic: str = ""
    channel: str = ""
    data: dict[str, Any] = field(default_factory=dict)


def append_batch(items: list[BatchItem]) -> list[Event]:
    """Append many facts at once, in the order given (per contact, that order is the chain's):
    what ``_append`` does one by one, in a number of queries that depends neither on the batch's
    size nor on the histories. For facts without personal evidence (``Proof`` with no IP address,
    user agent or details), already validated by the caller; runs inside ``transaction.atomic``.

    Contacts are locked in id order (as every other writer of several contacts does, so that two
    batches never deadlock); each chain continues from its recorded head. A contact with events
    but no recorded head (a ledger from before heads were kept) goes through ``_append``.
    """
    from consents import projections

    if not items:
        return []
    recorded_at = clock.now()
    ids = sorted({item.contact_id for item in items})
    contacts = {
        c.pk: c for c in Contact.objects.select_for_update().filter(pk__in=ids).order_by("pk")
    }
    heads = {h.contact_id: h for h in ChainHead.objects.filter(contact_id__in=ids)}
    headless = [i for i in ids if i not in heads]
    if headless:
        # A contact with no event yet starts its chain here; one with events but no recorded
        # head (a ledger from before heads were kept) goes through _append.
        legacy = set(
            Event.objects.filter(contact_id__in=headless).values_list("contact_id", flat=True)
        )
        new_heads = {
            i: ChainHead(contact_id=i, seq=0, hash=ledger.GENESIS)
            for i in headless
            if i not in legacy
        }
        heads.update(new_heads)
    else:
        new_heads = {}
    states = dict(ContactFacts.objects.filter(contact_id__in=ids).values_list("contact_id", "fold"))
    s = rules.RuleSettings.from_django()
    events: list[Event] = []
    single: list[Event] = []  # through _append, after the batch
    slow: list[BatchItem] = []
    for item in items:
        contact = contacts.get(item.contact_id)
        if contact is None:
            raise ValidationError({"contact": f"No contact {item.contact_id}."})
        if item.proof.ip_address or item.proof.user_agent or item.proof.details:
            raise ValidationError({"proof": "A batch holds no personal evidence."})
        head = heads.get(contact.pk)
        if head is None:
            slow.append(item)
            continue
        occurred_at = item.occurred_at or recorded_at
        _check_instant("occurred_at", occurred_at)
        event = Event(
            contact=contact,
            seq=head.seq + 1,
            type=item.type,
            topic=item.topic,
            channel=item.channel,
            occurred_at=min(occurred_at, recorded_at),
            recorded_at=recorded_at,
            method=item.proof.method,
            actor=item.proof.actor[:128],
            collection_point=ledger.collection_point(item.proof.collection_point),
            store=item.proof.store,
            notice=item.proof.notice,
            proof=item.proof.reference[:500],
            data=item.data or {},
            evidence_digest="",
            prev_hash=head.hash,
        )
        event.hash = ledger.event_hash(event)
        head.seq, head.hash, head.recorded_at = event.seq, event.hash, recorded_at
        events.append(event)
    Event.objects.bulk_create(events)
    touched = {event.contact_id for event in events}
    ChainHead.objects.bulk_create([h for i, h in new_heads.items() if i in touched])
    projections.rows_update(
        ChainHead, [heads[i] for i in touched if i not in new_heads], ["seq", "hash", "recorded_at"]
    )
    # The projections: each contact's state folds its new events, or (no usable state, an event
    # dated before the latest) the contact is recomputed from its whole history.
    by_contact: dict[int, list[Event]] = {}
    for event in events:
        by_contact.setdefault(event.contact_id, []).append(event)
    facts_rows: list[ContactFacts] = []
    recompute: list[Contact] = []
    rewrites: dict[str, dict[int, list[dict[str, Any]]]] = {
        name: {} for name, _ in projections._ROWS
    }
    for contact_id, new in by_contact.items():
        contact = contacts[contact_id]
        fold = projections.Fold.load(states.get(contact_id), s)
        facts = [fact_from_event(event) for event in new]
        try:
            if fold is None or not fold.in_order(*facts):
                raise projections.Unfoldable("recompute")
            person = projections.person_from_contact(contact)
            before = fold.projection(person)
            for fact in facts:
                fold.apply(fact)
            after = fold.projection(person)
        except projections.Unfoldable:
            recompute.append(contact)
            continue
        facts_rows.append(ContactFacts(contact=contact, **after.facts, fold=fold.dump()))
        for name, _ in projections._ROWS:
            if getattr(after, name) != getattr(before, name):
                rewrites[name][contact_id] = getattr(after, name)
    if facts_rows:
        projections.rows_update(ContactFacts, facts_rows, projections.FACT_FIELDS)
    for name, model in projections._ROWS:
        changed = rewrites[name]
        if changed:
            model.objects.filter(contact_id__in=list(changed)).delete()
            model.objects.bulk_create(
                [model(contact_id=c, **row) for c, rows in changed.items() for row in rows]
            )
    projections.projections_refresh_many(recompute, s)
    webhooks_out.events_recorded((event, contacts[event.contact_id]) for event in events)
    for item in slow:
        single.append(
            _append(
                contact=contacts[item.contact_id],
                type=item.type,
                occurred_at=item.occurred_at,
                proof=item.proof,
                topic=item.topic,
                channel=item.channel,
                data=item.data,
            )
        )
    return events + single


def _lock_with_chain_end(contact: Contact, *, lock: bool = True) -> Contact:
    """The contact, row-locked, then (in a second statement, whose snapshot sees what a
    concurrent append committed while we waited for the lock) its recorded head, its last event
    (``_chain_end``) and its projections' state."""
    contact_id = contact.pk
    locked = Contact.objects.select_for_update().get(pk=contact_id) if lock else contact
    head = ChainHead.objects.filter(contact=OuterRef("pk"))
    last = Event.objects.filter(contact=OuterRef("pk")).order_by("-seq")
    ends = (
        Contact.objects.filter(pk=contact_id)
        .annotate(
            head_seq=Subquery(head.values("seq")[:1]),
            head_hash=Subquery(head.values("hash")[:1]),
            last_seq=Subquery(last.values("seq")[:1]),
            last_hash=Subquery(last.values("hash")[:1]),
            fold=Subquery(ContactFacts.objects.filter(contact=OuterRef("pk")).values("fold")[:1]),
        )
        .values("head_seq", "head_hash", "last_seq", "last_hash", "fold")
        .get()
    )
    locked._head_seq, locked._head_hash = ends["head_seq"], ends["head_hash"]
    locked._last_seq, locked._last_hash = ends["last_seq"], ends["last_hash"]
    locked._fold = ends["fold"]
    return locked


def _chain_end(contact: Contact) -> tuple[int, str, bool]:
    """(next seq, previous hash, whether a head is recorded) for the contact's next event.

    The chain continues from its recorded head, or from its last event if that is further on:
    after a deleted tail, the next event keeps the number the head implies, so that the gap
    stays in the chain for ``verify_ledger`` to name, instead of being filled with new events.
    ``contact`` comes from ``_lock_with_chain_end``.
    """
    head = (contact._head_seq, contact._head_hash) if contact._head_seq is not None else None
    last = (contact._last_seq, contact._last_hash) if contact._last_seq is not None else None
    if head != last:
        logger.error(
            "the chain of contact %s ends at %s but its recorded head is %s; "
            "run manage.py verify_ledger",
            contact.pk,
            last and f"#{last[0]}",
            head and f"#{head[0]}",
        )
    # The further of the two; the head when they are level (a rewritten last event then shows as
    # a broken link at the next event).
    end = max(filter(None, (head, last)), key=lambda found: found[0], default=None)
    if end is None:
        return 1, ledger.GENESIS, False
    return end[0] + 1, end[1], head is not None


def _check_channel(channel: str, *, wildcard: bool = False) -> None:
    allowed = (*CHANNELS, ANY) if wildcard else CHANNELS
    _check_choice("channel", channel, allowed)


@transaction.atomic
def consent_grant(
    *,
    contact: Contact,
    topic: str,
    channel: str,
    proof: Proof,
    doi: str = Doi.NONE,
    prechecked: bool = False,
    bundled: bool = False,
    frequency: str = "",
    automated: bool = False,
    renewal: bool = False,
    occurred_at: datetime | None = None,
    created_here: bool = False,
) -> Event:
    """``opt_in``: the person said yes to this topic on this channel.

    On the phone, ``automated`` says they also agreed to recorded or automated calls (L34-5
    CPCE: consent "by this means"); consent to live calls alone does not cover them.

    ``renewal``: a yes again to what they already receive (a new frequency, the same consent
    re-confirmed under a new notice); the rules read it as any opt-in, the dashboards do not
    count it as a new subscriber."""
    topic_obj = _topic(topic)
    _check_channel(channel)
    assert topic_obj is not None
    if channel not in topic_obj.channels:
        raise ValidationError({"channel": f"Topic {topic!r} is not offered on {channel!r}."})
    _check_choice("doi", doi, tuple(Doi.values))
    if not proof.method:
        raise ValidationError({"method": "How the consent was collected is required."})
    _check_choice("method", proof.method, METHODS)
    if frequency and frequency not in topic_obj.frequencies:
        raise ValidationError({"frequency": f"Topic {topic!r} does not offer {frequency!r}."})
    if automated and channel != Channel.PHONE:
        raise ValidationError({"automated": "Only a phone call can be automated."})
    if proof.method in SUPPRESSION_CHECKED_METHODS and is_suppressed(contact):
        # An address that once opted out and was erased must not come back as consenting
        # through a file or another system; only the person, on our own forms, can say yes again.
        raise ValidationError(
            {"email": "This address is on the suppression list: it opted out and was erased."}
        )
    data: dict[str, Any] = {"doi": doi, "prechecked": prechecked, "bundled": bundled}
    if frequency:
        data["frequency"] = frequency
    if automated:
        data["automated"] = True
    if renewal:
        data["renewal"] = True
    return _append(
        contact=contact,
        type=EventType.OPT_IN,
        occurred_at=occurred_at,
        proof=proof,
        topic=topic,
        channel=channel,
        data=data,
        created_here=created_here,
    )


@transaction.atomic
def consent_confirm(
    *,
    contact: Contact,
    topic: str,
    channel: str,
    proof: Proof,
    token_digest: str = "",
    occurred_at: datetime | None = None,
) -> Event:
    """``doi_confirmed``: the person clicked the double opt-in confirmation."""
    _topic(topic)
    _check_channel(channel)
    data = {"token_digest": token_digest} if token_digest else {}
    return _append(
        contact=contact,
        type=EventType.DOI_CONFIRMED,
        occurred_at=occurred_at,
        proof=proof,
        topic=topic,
        channel=channel,
        data=data,
    )


@transaction.atomic
def consent_withdraw(
    *,
    contact: Contact,
    topic: str,
    channel: str,
    proof: Proof,
    occurred_at: datetime | None = None,
) -> Event:
    """``opt_out``: refusal, withdrawal, objection or unsubscribe; ``*`` is a wildcard."""
    _topic(topic, wildcard=True)
    _check_channel(channel, wildcard=True)
    if not proof.method:
        raise ValidationError({"method": "How the opt-out was expressed is required."})
    # ``suppression`` is the system's own (``suppression_record``), never a caller's.
    _check_choice("method", proof.method, METHODS)
    return _append(
        contact=contact,
        type=EventType.OPT_OUT,
        occurred_at=occurred_at,
        proof=proof,
        topic=topic,
        channel=channel,
    )


@transaction.atomic
def complaint_record(
    *,
    contact: Contact,
    proof: Proof,
    channel: str = Channel.EMAIL,
    occurred_at: datetime | None = None,
) -> Event:
    _check_channel(channel)
    return _append(
        contact=contact,
        type=EventType.COMPLAINT,
        occurred_at=occurred_at,
        proof=proof,
        channel=channel,
    )


@transaction.atomic
def marketing_pause(
    *,
    contact: Contact,
    channel: str,
    until: datetime,
    proof: Proof,
    occurred_at: datetime | None = None,
) -> Event:
    """``pause``: no marketing on the channel (or ``*``) until ``until``; the latest pause on a
    channel replaces every earlier one. ``until`` equal to the pause's own instant is a resume."""
    _check_channel(channel, wildcard=True)
    _check_instant("until", until, future_ok=True)
    at = occurred_at or clock.now()
    if until < at:
        raise ValidationError({"until": "A pause cannot end before it starts."})
    data: dict[str, Any] = {"until": ledger.iso(until)}
    if until == at:
        data["resume"] = True
    return _append(
        contact=contact,
        type=EventType.PAUSE,
        occurred_at=at,
        proof=proof,
        channel=channel,
        data=data,
    )


@transaction.atomic
def marketing_resume(
    *,
    contact: Contact,
    channel: str,
    proof: Proof,
    occurred_at: datetime | None = None,
) -> Event:
    """End a running pause now: a ``pause`` whose ``until`` is the instant it is recorded.

    RULES.md step 7 reads the latest pause on the channel (or ``*``): one that ends when it starts
    pauses nothing. ``resume: true`` says it in the ledger, for the history and the proof.
    """
    _check_channel(channel, wildcard=True)
    at = occurred_at or clock.now()
    _check_instant("occurred_at", at)
    return _append(
        contact=contact,
        type=EventType.PAUSE,
        occurred_at=at,
        proof=proof,
        channel=channel,
        data={"until": ledger.iso(at), "resume": True},
    )


@transaction.atomic
def purchase_record(
    *,
    contact: Contact,
    category: str,
    product: str,
    proof: Proof,
    warranty_until: datetime | None = None,
    occurred_at: datetime | None = None,
) -> Event:
    if not category:
        raise ValidationError({"category": "This field is required."})
    data: dict[str, Any] = {"category": category, "product": product or ""}
    if warranty_until is not None:
        _check_instant("warranty_until", warranty_until, future_ok=True)
        data["warranty_until"] = ledger.iso(warranty_until)
    return _append(
        contact=contact, type=EventType.PURCHASE, occurred_at=occurred_at, proof=proof, data=data
    )


@transaction.atomic
def contract_start(
    *,
    contact: Contact,
    contract: str,
    category: str,
    proof: Proof,
    occurred_at: datetime | None = None,
) -> Event:
    if not contract:
        raise ValidationError({"contract": "This field is required."})
    if not category:
        raise ValidationError({"category": "This field is required."})
    return _append(
        contact=contact,
        type=EventType.CONTRACT_START,
        occurred_at=occurred_at,
        proof=proof,
        data={"contract": contract, "category": category},
    )


@transaction.atomic
def contract_end(
    *,
    contact: Contact,
    contract: str,
    proof: Proof,
    occurred_at: datetime | None = None,
) -> Event:
    if not contract:
        raise ValidationError({"contract": "This field is required."})
    return _append(
        contact=contact,
        type=EventType.CONTRACT_END,
        occurred_at=occurred_at,
        proof=proof,
        data={"contract": contract},
    )


@transaction.atomic
def interaction_record(
    *,
    contact: Contact,
    kind: str,
    proof: Proof,
    occurred_at: datetime | None = None,
) -> Event:
    _check_choice("kind", kind, tuple(InteractionKind.values))
    return _append(
        contact=contact,
        type=EventType.INTERACTION,
        occurred_at=occurred_at,
        proof=proof,
        data={"kind": kind},
    )


@transaction.atomic
def bounce_record(
    *,
    contact: Contact,
    hard: bool,
    proof: Proof,
    channel: str = Channel.EMAIL,
    occurred_at: datetime | None = None,
) -> Event:
    _check_channel(channel)
    return _append(
        contact=contact,
        type=EventType.BOUNCE,
        occurred_at=occurred_at,
        proof=proof,
        channel=channel,
        data={"hard": bool(hard)},
    )


@transaction.atomic
def address_change_record(
    *,
    contact: Contact,
    channel: str,
    proof: Proof,
    occurred_at: datetime | None = None,
) -> Event:
    _check_channel(channel)
    return _append(
        contact=contact,
        type=EventType.ADDRESS_CHANGED,
        occurred_at=occurred_at,
        proof=proof,
        channel=channel,
    )


@transaction.atomic
def callback_request(
    *,
    contact: Contact,
    proof: Proof,
    channel: str = Channel.PHONE,
    occurred_at: datetime | None = None,
) -> Event:
    """``callback_request``: the person asked to be called back (RULES.md: phone only)."""
    if channel != Channel.PHONE:
        raise ValidationError({"channel": "A callback request is a request for a phone call."})
    return _append(
        contact=contact,
        type=EventType.CALLBACK_REQUEST,
        occurred_at=occurred_at,
        proof=proof,
        channel=channel,
    )


@transaction.atomic
def repermission_record(
    *,
    contact: Contact,
    channel: str,
    proof: Proof,
    occurred_at: datetime | None = None,
) -> Event:
    """``repermission_sent``: we asked whether they still want to hear from us."""
    _check_channel(channel)
    return _append(
        contact=contact,
        type=EventType.REPERMISSION_SENT,
        occurred_at=occurred_at,
        proof=proof,
        channel=channel,
    )


# --- Suppression and erasure ------------------------------------------------------------------

# Consent that does not come from the person on our own pages: a suppressed address is refused.
SUPPRESSION_CHECKED_METHODS = frozenset({Method.IMPORT, Method.API, Method.ADMIN})


def _suppression_key() -> bytes:
    if settings.SUPPRESSION_KEY:
        return settings.SUPPRESSION_KEY.encode()
    # A key of its own, derived from SECRET_KEY: the hashes mean nothing without it.
    return hmac.new(settings.SECRET_KEY.encode(), b"assent.suppression.v1", hashlib.sha256).digest()


def suppression_digest(kind: str, address: str) -> str:
    """HMAC of a normalised address; emails compared case-insensitively, as contacts are."""
    value = normalize_email(address).lower() if kind == "email" else normalize_phone(address)
    message = f"{kind}:{value}".encode()
    return hmac.new(_suppression_key(), message, hashlib.sha256).hexdigest()


def _digests(contact: Contact) -> list[tuple[str, str]]:
    found = []
    if contact.email:
        found.append(("email", suppression_digest("email", contact.email)))
    if contact.phone:
        found.append(("phone", suppression_digest("phone", contact.phone)))
    return found


def is_suppressed(contact: Contact) -> bool:
    digests = [d for _, d in _digests(contact)]
    return bool(digests) and Suppression.objects.filter(digest__in=digests).exists()


def address_is_suppressed(*, email: str | None = None, phone: str | None = None) -> bool:
    digests = []
    if email:
        digests.append(suppression_digest("email", email))
    if phone:
        digests.append(suppression_digest("phone", phone))
    return bool(digests) and Suppression.objects.filter(digest__in=digests).exists()


# The channels an address serves: a suppressed number covers text messages and calls alike.
SUPPRESSED_CHANNELS = {"email": (Channel.EMAIL,), "phone": (Channel.SMS, Channel.PHONE)}
SUPPRESSION_POINT = "suppression list"


def suppression_record(
    *, contact: Contact, email: str | None = None, phone: str | None = None
) -> list[Event]:
    """An address on the suppression list arrives on ``contact`` (a new contact, a number added,
    an email changed): ``opt_out`` of ``*`` on each channel it serves, by the system, so that
    ``decide`` and the audience honour the earlier objection with no special case. A later valid
    opt-in by the person lifts it as it lifts any opt-out.

    Dated when the address was listed (its owner had opted out by then), or at the contact's
    latest fact if that is later: after everything the contact held before (a consent given for
    a former address does not survive the change), before whatever the new address brings, even
    facts of the same capture dated a moment before this call (the rules order events by
    instant, then by recorded order). Callers run it in their transaction, before any other fact
    on the address."""
    wanted: dict[str, str] = {}
    if email:
        wanted[suppression_digest("email", email)] = "email"
    if phone:
        wanted[suppression_digest("phone", phone)] = "phone"
    if not wanted:
        return []
    listed = list(Suppression.objects.filter(digest__in=wanted).order_by("created_at", "pk"))
    if not listed:
        return []
    now = clock.now()
    history = Event.objects.filter(contact=contact)
    latest = history.aggregate(at=Max("occurred_at"))["at"]
    proof = Proof(method=Method.SUPPRESSION, actor="system", collection_point=SUPPRESSION_POINT)
    recorded = []
    for entry in listed:
        for channel in SUPPRESSED_CHANNELS[wanted[entry.digest]]:
            if _suppression_stands(history, channel):
                continue  # recorded already (a sign-up records it before the number joins)
            recorded.append(
                _append(
                    contact=contact,
                    type=EventType.OPT_OUT,
                    occurred_at=min(max(entry.created_at, latest or entry.created_at), now),
                    proof=proof,
                    topic=ANY,
                    channel=channel,
                )
            )
    return recorded


def _suppression_stands(history: Any, channel: str) -> bool:
    """The contact has a suppression opt-out on ``channel`` for the address it has now (none
    recorded for an address replaced since)."""
    last = (
        history.filter(
            type=EventType.OPT_OUT, method=Method.SUPPRESSION, topic=ANY, channel=channel
        )
        .order_by("-seq")
        .values_list("seq", flat=True)
        .first()
    )
    if last is None:
        return False
    return not history.filter(
        type=EventType.ADDRESS_CHANGED, channel=channel, seq__gt=last
    ).exists()


@transaction.atomic
def evidence_erase(*, evidence: QuerySet[Evidence], at: datetime) -> int:
    """Wipe personal evidence beside events, and the key of its digest with it: the chain still
    verifies (it covers the digest only), and the digest can no longer be matched to a guess.

    Every field of the row but its key and the instant of the wipe: a field added later (another
    trace) is wiped too, with no change here."""
    fields = {
        f.attname: _wiped(f)
        for f in Evidence._meta.concrete_fields
        if not f.primary_key and f.name != "erased_at"
    }
    return evidence.filter(erased_at__isnull=True).update(**fields, erased_at=at)


def _has_opted_out(contact: Contact) -> bool:
    return Event.objects.filter(
        contact=contact, type__in=(EventType.OPT_OUT, EventType.COMPLAINT)
    ).exists()


def _wiped(model_field: Any) -> Any:
    """The value a wiped column takes: NULL where allowed, else empty of its type."""
    if model_field.null:
        return None
    default = model_field.get_default()
    return type(default)() if isinstance(default, dict | list | str) else ""


@transaction.atomic
def contact_erase(*, contact: Contact, reason: str, actor: str) -> Erasure:
    """Wipe a contact's personal data; the ledger and its chain stay as they are.

    Wiped (``consents.personal_data`` lists every field and why it is kept or wiped): the
    contact's addresses, name, push token; every field of the personal evidence beside its events;
    its outbox rows' address, context and error, the pending ones cancelled; and, through
    ``signals.contact_erased``, what the other apps keep (sign-ups waiting for a click, open
    preference-center sessions, the rendered page, mail files of the embedded default).
    Events are untouched (they hold no personal data, only the evidence digest), so every chain
    still verifies. An address that opted out is kept as a keyed hash in the suppression list, so
    that it comes back opted out (``suppression_record``).
    """
    from consents.signals import contact_erased

    if not reason.strip():
        raise ValidationError({"reason": "Say why this contact is erased."})
    if not actor:
        raise ValidationError({"actor": "Who erases is required."})
    locked = Contact.objects.select_for_update().get(pk=contact.pk)
    if Erasure.objects.filter(contact=locked).exists():
        raise ValidationError({"contact": "This contact is already erased."})
    now = clock.now()
    suppressed = 0
    if _has_opted_out(locked):
        for kind, digest in _digests(locked):
            _, created = Suppression.objects.get_or_create(
                digest=digest,
                defaults={"kind": kind, "created_at": now, "reason": "opted out, erased"},
            )
            suppressed += int(created)
    outbox = Outbox.objects.filter(contact=locked)
    addresses = {a for a in (locked.email, locked.phone) if a}
    addresses |= {a for a in outbox.values_list("to", flat=True) if a}
    locked.email = None
    locked.phone = ""
    locked.first_name = ""
    locked.postal_address = ""
    locked.push_token = ""
    locked.profession = ""  # free text from integrations: it may say who they are
    locked.link_version += 1  # every link already sent stops working
    locked.save(
        update_fields=[
            "email",
            "phone",
            "first_name",
            "postal_address",
            "push_token",
            "profession",
            "link_version",
        ]
    )
    evidence_erase(evidence=Evidence.objects.filter(event__contact=locked), at=now)
    # An email not sent yet is never sent: to nobody, it would be marked sent to nobody.
    outbox.filter(status=Outbox.Status.PENDING).update(status=Outbox.Status.CANCELLED)
    outbox.update(to="", context={}, links={}, last_error="")
    ImportedRow.objects.filter(contact=locked).delete()
    projection_refresh(locked)
    erasure = Erasure.objects.create(
        contact=locked, erased_at=now, actor=actor[:150], reason=reason, suppressed=suppressed
    )
    contact_erased.send(sender=Contact, contact=locked, addresses=sorted(addresses))
    webhooks_out.contact_erased(contact=locked, erasure_id=erasure.pk)
    return erasure


@transaction.atomic
def contact_email_change(*, contact: Contact, new_email: str, proof: Proof) -> Event:
    """Rectification confirmed by the owner of the new address: ``address_changed`` on email."""
    address = normalize_email(new_email)
    locked = Contact.objects.select_for_update().get(pk=contact.pk)
    if Erasure.objects.filter(contact=locked).exists():
        raise ValidationError({"email": "This contact is erased."})
    if Contact.objects.filter(email__iexact=address).exclude(pk=locked.pk).exists():
        raise ValidationError({"email": "A contact with this email already exists."})
    locked.email = address
    locked.save(update_fields=["email"])
    # Before the change itself: a listed address arrives opted out, as on a new contact.
    suppression_record(contact=locked, email=address)
    return _append(
        contact=locked,
        type=EventType.ADDRESS_CHANGED,
        occurred_at=None,
        proof=proof,
        channel=Channel.EMAIL,
    )


# For callers that hold a generic event description (imports, the case-book runner).
RECORDERS = {
    EventType.OPT_IN: consent_grant,
    EventType.DOI_CONFIRMED: consent_confirm,
    EventType.OPT_OUT: consent_withdraw,
    EventType.COMPLAINT: complaint_record,
    EventType.PAUSE: marketing_pause,
    EventType.PURCHASE: purchase_record,
    EventType.CONTRACT_START: contract_start,
    EventType.CONTRACT_END: contract_end,
    EventType.INTERACTION: interaction_record,
    EventType.BOUNCE: bounce_record,
    EventType.ADDRESS_CHANGED: address_change_record,
    EventType.CALLBACK_REQUEST: callback_request,
    EventType.REPERMISSION_SENT: repermission_record,
}
