"""The ledger writer, shared by every service: ``_append`` (one event, row lock, chain, projections)
and ``append_batch`` (many facts at once), and ``Proof``, how a fact was collected.

Appends take a row lock on the contact, chain the event to the contact's previous one and rewrite
the contact's projections, all in the caller's transaction.
"""

from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from django.core.exceptions import ValidationError
from django.db import connection, transaction

from consents import (
    clock,
    copying,
    ledger,
    projections,
    rules,
    statements,
    validation,
    webhooks_out,
)
from consents.models import ChainHead, Contact, ContactFacts, Event, Evidence, Notice, Store
from consents.projections import fact_from_event, projection_append
from consents.vocab import LEDGER_METHODS

logger = logging.getLogger(__name__)

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
    lock_held: bool = False,
) -> Event:
    """Append one event to the contact's chain and rewrite its projections.

    Callers have validated the fact; the event's own checks (its instant, method, actor) come
    first, before any write. It writes in the caller's transaction without a savepoint of its own
    (a sign-up or a save records several facts: a savepoint each was two more round trips), or
    in a transaction of its own when there is none; a failure while writing undoes the caller's
    whole transaction. ``created_here``: the caller created the contact in this transaction, so
    no other transaction can see its row yet, and there is nothing to lock; ``lock_held``: the
    caller took the contact's row lock in this transaction (``contact`` is what it read then).
    """
    recorded_at = clock.now()
    occurred_at = occurred_at or recorded_at
    validation.instant("occurred_at", occurred_at)
    # RULES.md: an event is never dated after the moment it is recorded. A clock a little ahead
    # (an email service's timestamp, within LEDGER_MAX_CLOCK_SKEW) is read as "now"; otherwise
    # ``decide`` as of now and the audience, which reads every recorded fact, would disagree.
    occurred_at = min(occurred_at, recorded_at)
    if proof.method:
        validation.choice("method", proof.method, LEDGER_METHODS)
    validation.actor(proof.actor)
    with transaction.atomic(savepoint=False):
        return _write(
            contact=contact,
            type=type,
            occurred_at=occurred_at,
            recorded_at=recorded_at,
            proof=proof,
            topic=topic,
            channel=channel,
            data=data,
            lock=not (created_here or lock_held),
        )


def _write(
    *,
    contact: Contact,
    type: str,
    occurred_at: datetime,
    recorded_at: datetime,
    proof: Proof,
    topic: str,
    channel: str,
    data: dict[str, Any] | None,
    lock: bool,
) -> Event:
    """``_append``'s writes: the row lock, the chained event, its head and evidence, the
    projections, the webhook deliveries."""
    # The row lock serialises appends for one contact; other contacts never wait. The rows are
    # then sent together: with the chain's end (or the contact's row lock), one round trip for
    # what came before; one more for the event, its head, evidence and projections.
    with statements.together():
        locked = _lock_with_chain_end(contact, lock=lock)
        seq, prev_hash, head_exists = _chain_end(locked)
        digest, salt = ledger.evidence_seal(proof.ip_address, proof.user_agent, proof.details)
        event = Event(
            pk=locked._next_event_id,
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
        # The ledger's rows by statements built once (``consents.statements``): the same values.
        statements.insert(event)
        head = {"seq": seq, "hash": event.hash, "recorded_at": event.recorded_at}
        if head_exists:
            statements.update(ChainHead, {"contact": locked.pk}, **head)
        else:
            statements.insert(ChainHead(contact=locked, **head))
        if digest:
            statements.insert(
                Evidence(
                    event=event,
                    ip_address=proof.ip_address,
                    user_agent=proof.user_agent,
                    details=proof.details,
                    salt=salt,
                ),
                later=True,
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


# ContactFacts's columns but the state (``fold``), as ``Fold.facts`` gives them.
_FACT_COLUMNS = [name for name in projections.FACT_FIELDS if name != "fold"]


def append_batch(items: list[BatchItem]) -> list[Event]:
    """Append many facts at once, in the order given (per contact, that order is the chain's):
    what ``_append`` does one by one, in a number of queries that depends neither on the batch's
    size nor on the histories. For facts without personal evidence (``Proof`` with no IP address,
    user agent or details), already validated by the caller; runs inside ``transaction.atomic``.

    Contacts are locked in id order (as every other writer of several contacts does, so that two
    batches never deadlock); each chain continues from its recorded head. A contact with events
    but no recorded head (a ledger from before heads were kept) goes through ``_append``.
    """
    if not items:
        return []
    recorded_at = clock.now()
    ids = sorted({item.contact_id for item in items})
    contacts = {
        c.pk: c for c in Contact.objects.select_for_update().filter(pk__any_of=ids).order_by("pk")
    }
    # The recorded heads, and below the facts' rows, as plain rows for ``rows_update`` (no model
    # instance: thousands per batch).
    heads: dict[int, Any] = {
        contact_id: SimpleNamespace(pk=contact_id, seq=seq, hash=hash_, recorded_at=None)
        for contact_id, seq, hash_ in ChainHead.objects.filter(contact_id__any_of=ids).values_list(
            "contact_id", "seq", "hash"
        )
    }
    headless = [i for i in ids if i not in heads]
    if headless:
        # A contact with no event yet starts its chain here; one with events but no recorded
        # head (a ledger from before heads were kept) goes through _append.
        legacy = set(
            Event.objects.filter(contact_id__any_of=headless).values_list("contact_id", flat=True)
        )
        new_heads = {
            i: ChainHead(contact_id=i, seq=0, hash=ledger.GENESIS)
            for i in headless
            if i not in legacy
        }
        heads.update(new_heads)
    else:
        new_heads = {}
    # Each contact's state and stored facts: only the facts a batch changes are written back.
    stored = {
        row[0]: row[1:]
        for row in ContactFacts.objects.filter(contact_id__any_of=ids).values_list(
            "contact_id", "fold", *_FACT_COLUMNS
        )
    }
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
        validation.instant("occurred_at", occurred_at)
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
    _insert_events(events)
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
    facts_rows: list[SimpleNamespace] = []
    changed: set[str] = set()  # the facts' columns that differ from the stored ones, in some row
    recompute: list[Contact] = []
    rewrites: dict[str, dict[int, list[dict[str, Any]]]] = {
        name: {} for name, _ in projections._ROWS
    }
    for contact_id, new in by_contact.items():
        contact = contacts[contact_id]
        before_facts = stored.get(contact_id, (None,))
        fold = projections.Fold.load(before_facts[0], s)
        facts = [fact_from_event(event) for event in new]
        try:
            if fold is None or not fold.in_order(*facts):
                raise projections.Unfoldable("recompute")
            person = projections.person_from_contact(contact)
            # Facts of other types (clicks, opens...) leave the rows as they were: only the
            # contact's facts are computed then.
            rows = any(fact.type in projections.ROW_TYPES for fact in facts)
            before = fold.projection(person) if rows else None
            for fact in facts:
                fold.apply(fact)
            after = fold.projection(person) if rows else None
            after_facts = after.facts if after is not None else fold.facts(person)
        except projections.Unfoldable:
            recompute.append(contact)
            continue
        facts_rows.append(SimpleNamespace(pk=contact_id, **after_facts, fold=fold.dump()))
        changed.update(
            name
            for name, value in zip(_FACT_COLUMNS, before_facts[1:], strict=True)
            if after_facts[name] != value
        )
        if after is not None:
            for name, _ in projections._ROWS:
                if getattr(after, name) != getattr(before, name):
                    rewrites[name][contact_id] = getattr(after, name)
    if facts_rows:
        # The state always changes; of the other columns, those that changed in some row (a
        # click moves the retention anchor and the expiry, not the rest).
        names = [name for name in projections.FACT_FIELDS if name in changed or name == "fold"]
        projections.rows_update(ContactFacts, facts_rows, names)
    for name, model in projections._ROWS:
        changed = rewrites[name]
        if changed:
            model.objects.filter(contact_id__any_of=list(changed)).delete()
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


_EVENT_TYPES: list[int] = []  # the type oids of the ledger's columns, read once


def _insert_events(events: list[Event]) -> None:
    """The events' rows: on PostgreSQL their ids reserved, then one binary ``COPY`` (as
    ``consents.bulk`` writes them; cheaper than an ``INSERT`` of 18 columns per row), elsewhere
    ``bulk_create``. The rows hold the values their hashes were computed from."""
    if connection.vendor != "postgresql" or not events:
        Event.objects.bulk_create(events)
        return
    fields = Event._meta.concrete_fields
    table = Event._meta.db_table
    columns = [f.column for f in fields]
    with connection.cursor() as cursor:
        ids = copying.reserve_ids(cursor, table, len(events))
        for event, pk in zip(events, ids, strict=True):
            event.pk = pk
            event._state.adding, event._state.db = False, connection.alias
        if not _EVENT_TYPES:
            _EVENT_TYPES[:] = copying.column_types(cursor, table, columns)
        names = [f.attname for f in fields]
        with copying.copy_in(cursor, table, columns, _EVENT_TYPES) as copy:
            for event in events:
                copy.write_row([getattr(event, name) for name in names])


def reserve_event_id() -> statements.Pending:
    """The id of an event still to be written (on PostgreSQL; elsewhere None, the database
    numbers it), asked for with what else is queued (``statements.together``)."""
    if connection.vendor != "postgresql":
        return statements.Pending.done([(None,)])
    table = Event._meta.db_table
    return statements.read(
        f"SELECT nextval(pg_get_serial_sequence('{table}', '{Event._meta.pk.column}'))",
        [],
        prepare=True,
    )


def chain_start(contact: Contact, first_id: statements.Pending) -> None:
    """``contact`` was just created in this transaction with its projections' start
    (``projection_start``), and nothing is chained to it yet: its first append (``created_here``)
    knows its chain's end without reading it (no head, no event, a new state, the id
    ``first_id`` from ``reserve_event_id``). Nobody else sees the contact before the transaction
    commits, so nothing can be chained to it meanwhile."""
    # The state as the chain-end read gives it: the database's JSON text.
    state = json.dumps(projections.Fold(rules.RuleSettings.from_django()).dump())
    chain_end_asked(
        contact, statements.Pending.then(first_id, lambda rows: [(None,) * 4 + (state, rows[0][0])])
    )


def chain_end_later(contact_id: int) -> statements.Pending:
    """The chain's end of a contact (``_lock_with_chain_end``'s read) asked for with what is
    queued (``statements.together``), for ``chain_end_asked``: only after the contact's row lock,
    in the same transaction. Queued after the lock, the read's snapshot sees what a concurrent
    append committed while the lock was awaited (each statement of a round trip takes its own),
    and nothing can be chained to the contact from then on but by this transaction. A caller
    that appends nothing after all reserved an event id for nothing: a gap in the ids, which
    number nothing (the chain is numbered by ``seq``)."""
    sql, _reserves = _chain_end_sql()
    return statements.read(sql, [contact_id] * 5, prepare=True)


def chain_end_asked(contact: Contact, asked: statements.Pending) -> None:
    """The next append to ``contact``, by a caller that holds its lock or created it in this
    transaction, reads its chain's end from ``asked`` (``chain_end_later``, ``chain_start``)
    instead of asking again."""
    contact._chain_end_asked = asked


def _lock_with_chain_end(contact: Contact, *, lock: bool = True) -> Contact:
    """The contact, row-locked, then (in a second statement, whose snapshot sees what a
    concurrent append committed while we waited for the lock) its recorded head, its last event
    (``_chain_end``), its projections' state and, on PostgreSQL, the next event's id; or, for
    the first append of a caller that holds the lock or created the contact, what it asked for
    already (``chain_end_asked``)."""
    asked = contact.__dict__.pop("_chain_end_asked", None)  # the first append only, whichever
    contact_id = contact.pk
    sql, reserves = _chain_end_sql()
    if asked is not None and not lock and connection.in_atomic_block:
        locked, row = contact, asked.result[0]
    else:
        locked = Contact.objects.select_for_update().get(pk=contact_id) if lock else contact
        row = statements.fetch(sql, [contact_id] * 5, prepare=True)[0]
    head_seq, head_hash, last_seq, last_hash, fold = row[:5]
    locked._head_seq, locked._head_hash = head_seq, head_hash
    locked._last_seq, locked._last_hash = last_seq, last_hash
    locked._next_event_id = row[5] if reserves else None
    # As the ORM reads it (the database's JSON text, decoded).
    locked._fold = ContactFacts._meta.get_field("fold").from_db_value(fold, None, connection)
    return locked


@functools.cache
def _chain_end_sql() -> tuple[str, bool]:
    """One statement, written once (the ORM compiled its five subqueries at every append: a
    fifth of a sign-up's time): the head's number and hash, the last event's, the fold state;
    on PostgreSQL the next event's id too (so that the event is written with the rest, its id
    known), and whether it does."""
    quote = connection.ops.quote_name
    head, event, facts = (quote(model._meta.db_table) for model in (ChainHead, Event, ContactFacts))
    last = f"FROM {event} WHERE contact_id = %s ORDER BY seq DESC LIMIT 1"
    sql = (
        f"SELECT (SELECT seq FROM {head} WHERE contact_id = %s), "
        f"(SELECT hash FROM {head} WHERE contact_id = %s), "
        f"(SELECT seq {last}), (SELECT hash {last}), "
        f"(SELECT fold FROM {facts} WHERE contact_id = %s)"
    )
    reserves = connection.vendor == "postgresql"
    if reserves:
        table = Event._meta.db_table
        sql += f", nextval(pg_get_serial_sequence('{table}', '{Event._meta.pk.column}'))"
    return sql, reserves


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
