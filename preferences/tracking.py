"""Email-service tracking events, from the webhook's inbox into the ledger, in batches.

The webhook (``preferences.webhooks.tracking_received``) only checks and stores: anymail has
authenticated the request and parsed the payload, the receiver keeps the events that are facts of
RULES.md as ``TrackingInbox`` rows and the service gets its 200. ``drain`` then moves the rows into
the ledger, oldest first, a batch per transaction:

- one drain at a time (a transaction-level advisory lock on PostgreSQL), rows in the order they
  were received, so that each contact's facts are chained in that order;
- the recipients are found in one query, and a fact whose reference (the service's event id) is
  already in the contact's ledger, or earlier in the batch, is not recorded again: a service
  that delivers an event twice, or a drain that stopped before its commit, records it once;
- the facts are appended with ``services.append_batch`` (chained, projections updated from their
  state, webhook deliveries written), and the rows deleted, in the same transaction: a drain
  killed mid-batch leaves every row of the batch in the inbox, and nothing of it in the ledger;
- the cyclic garbage collector runs less often while a batch is built (``consents.collector``).

Opens are counted per message and day (``OpenCount``) unless ``TRACKING_OPENS_PER_PERSON``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import F

from consents import services, statements
from consents.collector import collecting_less
from consents.locks import lock_key
from consents.models import Contact, Event
from consents.vocab import ANY, Channel, EventType, InteractionKind, Method
from preferences.models import OpenCount, TrackingInbox

logger = logging.getLogger(__name__)

OPEN_COUNT = "open_count"  # an inbox row counted, never written to anyone's ledger
INTERACTIONS = {"clicked": InteractionKind.CLICK, "opened": InteractionKind.OPEN}

# What the drain reads of an inbox row, as a named tuple (``row.fact``...): a model instance for
# each row cost as much again, and the service's raw payload (kept for people) is not read.
_READ = ("pk", "esp", "event_type", "fact", "recipient", "reference", "occurred_at", "hard",
         "message")  # fmt: skip
Row = Any  # a named tuple of _READ


def _item(row: Row, contact_id: int) -> services.BatchItem:
    proof = services.Proof(
        method=Method.UNSUBSCRIBE_LINK if row.fact == EventType.OPT_OUT else "",
        actor=f"esp:{row.esp}",
        collection_point=row.esp,
        reference=row.reference,
    )
    item = services.BatchItem(
        contact_id=contact_id, type=row.fact, proof=proof, occurred_at=row.occurred_at
    )
    if row.fact == EventType.BOUNCE:
        item.channel, item.data = Channel.EMAIL, {"hard": row.hard}
    elif row.fact == EventType.COMPLAINT:
        item.channel = Channel.EMAIL
    elif row.fact == EventType.OPT_OUT:
        item.topic, item.channel = ANY, Channel.EMAIL
    else:
        item.data = {"kind": INTERACTIONS[row.event_type]}
    return item


def _contacts(recipients: set[str]) -> dict[str, int]:
    """Recipient as the service spelt it -> contact id, for those that are one contact's."""
    from preferences.webhooks import find_contact

    found: dict[str, int] = {}
    normalised: dict[str, str] = {}
    for recipient in recipients:
        try:
            normalised[recipient] = services.normalize_email(recipient)
        except ValidationError:
            continue
    exact = dict(
        Contact.objects.filter(email__any_of=set(normalised.values())).values_list("email", "pk")
    )
    for recipient, email in normalised.items():
        if email in exact:
            found[recipient] = exact[email]
        else:  # a case the service changed: the slower lookup
            contact = find_contact(recipient)
            if contact is not None:
                found[recipient] = contact.pk
    return found


def _count_opens(rows: list[Row]) -> None:
    counts: dict[tuple, int] = {}
    for row in rows:
        key = (row.occurred_at.date(), row.message)
        counts[key] = counts.get(key, 0) + 1
    for (day, message), n in sorted(counts.items()):
        updated = OpenCount.objects.filter(day=day, message=message).update(opens=F("opens") + n)
        if not updated:
            OpenCount.objects.create(day=day, message=message, opens=n)


def _lock() -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [lock_key("tracking-drain")])


def drain(
    batch_size: int | None = None, *, stall_after: int | None = None, stall: Callable | None = None
) -> int:
    """Move one batch of the inbox into the ledger; returns how many rows it took (0: empty).

    ``stall_after`` and ``stall``: the batch calls ``stall()`` after building that many of its
    facts, inside its transaction (``manage.py drain_tracking --stall-after``, for the test that
    kills a drain mid-batch).
    """
    batch_size = batch_size or settings.TRACKING_DRAIN_BATCH
    # A batch's thousands of events, states and rows hold no cycle (``collecting_less``).
    with collecting_less(), transaction.atomic():
        _lock()
        inbox = TrackingInbox.objects.select_for_update().order_by("id")
        rows = list(inbox.values_list(*_READ, named=True)[:batch_size])
        if not rows:
            return 0
        opens = [row for row in rows if row.fact == OPEN_COUNT]
        facts = [row for row in rows if row.fact != OPEN_COUNT]
        if opens:
            _count_opens(opens)
        contacts = _contacts({row.recipient for row in facts if row.recipient})
        ids = set(contacts.values())
        references = {row.reference for row in facts if row.reference}
        # A set: without the model's ordering, PostgreSQL need not sort (nor gather the sorts of
        # parallel workers).
        found = Event.objects.filter(contact_id__any_of=ids, proof__any_of=references).order_by()
        seen = set(
            found.values_list("contact_id", "type", "actor", "proof") if ids and references else ()
        )
        items: list[services.BatchItem] = []
        for row in facts:
            contact_id = contacts.get(row.recipient)
            if contact_id is None:
                domain = row.recipient.rpartition("@")[2] or "-"
                logger.info(
                    "%s %s event for an unknown recipient (domain %s) ignored",
                    row.esp, row.event_type, domain,
                )  # fmt: skip
                continue
            item = _item(row, contact_id)
            key = (contact_id, item.type, item.proof.actor, item.proof.reference)
            if item.proof.reference and key in seen:
                logger.info("%s %s event %s already recorded", row.esp, row.event_type, key[3])
                continue
            seen.add(key)
            items.append(item)
            if stall is not None and len(items) == stall_after:
                stall()
        _append(items)
        TrackingInbox.objects.filter(pk__any_of=[row.pk for row in rows]).delete()
    return len(rows)


def _append(items: list[services.BatchItem]) -> None:
    """The batch in one go; if a fact of it is refused, each on its own (the refused ones are
    logged and dropped: the service would only send them again)."""
    try:
        with transaction.atomic():
            services.append_batch(items)
        return
    except ValidationError:
        pass
    for item in items:
        try:
            with transaction.atomic():
                services.append_batch([item])
        except ValidationError as exc:
            logger.warning(
                "%s event for contact %s not recorded: %s", item.type, item.contact_id, exc
            )


def drain_all(batch_size: int | None = None, *, budget_seconds: float | None = None) -> int:
    """Batches until the inbox is empty (or the budget is spent); returns the rows moved."""
    started, moved = time.monotonic(), 0
    while n := drain(batch_size):
        moved += n
        if budget_seconds is not None and time.monotonic() - started > budget_seconds:
            break
    return moved


def received(
    *,
    esp: str,
    event_type: str,
    fact: str,
    recipient: str,
    reference: str,
    occurred_at: datetime,
    hard: bool,
    message: str,
    raw: object,
) -> None:
    """Store one received event (the webhook's only write)."""
    from django.utils import timezone

    opened = fact == EventType.INTERACTION and event_type == "opened"
    if opened and not settings.TRACKING_OPENS_PER_PERSON:
        fact, recipient, reference, raw = OPEN_COUNT, "", "", None

    def text(value: str, limit: int) -> str:
        # NUL is no character of these texts, and PostgreSQL refuses it in text.
        return (value or "").replace("\x00", "")[:limit]

    # Built once per process and prepared on the connection (``statements.insert``: PostgreSQL
    # neither parses nor plans it at each webhook). No signal receiver watches the inbox.
    statements.insert(
        TrackingInbox(
            received_at=timezone.now(),
            esp=text(esp, 32),
            event_type=text(event_type, 16),
            fact=fact,
            recipient=text(recipient, 254),
            reference=text(reference, 500),
            occurred_at=occurred_at,
            hard=hard,
            message=text(message, 200),
            raw=raw,
        )
    )
