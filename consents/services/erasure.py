"""The suppression list (addresses that opted out and were erased come back opted out) and
erasure: a contact's personal data wiped, the ledger and its chains kept."""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max, QuerySet

from consents import clock, statements, webhooks_out
from consents.models import (
    Contact,
    Erasure,
    Event,
    Evidence,
    ImportedRow,
    Outbox,
    Suppression,
)
from consents.projections import projection_refresh
from consents.services.addresses import normalize_email, normalize_phone
from consents.services.writing import Proof, _append
from consents.vocab import ANY, Channel, EventType, Method

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


def suppression_listed(*, email: str | None = None, phone: str | None = None) -> statements.Pending:
    """The suppression list's entries for these addresses, oldest first, each with the kind of
    address it names: a ``Pending`` (queued inside ``statements.together()``)."""
    wanted: dict[str, str] = {}
    if email:
        wanted[suppression_digest("email", email)] = "email"
    if phone:
        wanted[suppression_digest("phone", phone)] = "phone"
    if not wanted:
        return statements.Pending.done([])
    listed = statements.select(
        Suppression,
        f"digest IN ({', '.join(['%s'] * len(wanted))})",
        list(wanted),
        order_by="created_at, id",
        later=True,
    )
    return statements.Pending.then(listed, lambda found: [(e, wanted[e.digest]) for e in found])


def suppression_record(
    *,
    contact: Contact,
    email: str | None = None,
    phone: str | None = None,
    listed: statements.Pending | None = None,
) -> list[Event]:
    """An address on the suppression list arrives on ``contact`` (a new contact, a number added,
    an email changed): ``opt_out`` of ``*`` on each channel it serves, by the system, so that
    ``decide`` and the audience honour the earlier objection with no special case. A later valid
    opt-in by the person lifts it as it lifts any opt-out. ``listed``: the list's entries for
    the addresses, read already (``suppression_listed``), instead of ``email`` and ``phone``.

    Dated when the address was listed (its owner had opted out by then), or at the contact's
    latest fact if that is later: after everything the contact held before (a consent given for
    a former address does not survive the change), before whatever the new address brings, even
    facts of the same capture dated a moment before this call (the rules order events by
    instant, then by recorded order). Callers run it in their transaction, before any other fact
    on the address."""
    if listed is None:
        listed = suppression_listed(email=email, phone=phone)
    entries = listed.result
    if not entries:
        return []
    now = clock.now()
    history = Event.objects.filter(contact=contact)
    latest = history.aggregate(at=Max("occurred_at"))["at"]
    proof = Proof(method=Method.SUPPRESSION, actor="system", collection_point=SUPPRESSION_POINT)
    recorded = []
    for entry, kind in entries:
        for channel in SUPPRESSED_CHANNELS[kind]:
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
