"""Projections: what the ledger implies, rewritten in the same transaction as each append.

Each append recomputes the contact's projections from the contact's whole history, with the same
helpers that ``rules.decide`` uses, so that the two cannot drift. Questions about one channel are
asked of that channel's sub-history (``_by_channel``), which gives the helpers the same answers for
a fraction of the walking; ``tests/consents/test_projections_equivalence.py`` holds ``derive`` to
the former implementation, which asked every question of the whole history. Instants the rules
derive (expiry, pause end, callback validity) are computed here, in Python and in UTC; the
audience query then only compares stored instants with ``now``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.utils.dateparse import parse_datetime

from consents import rules, statements
from consents.models import CatalogFact, ChannelState, ConsentState, Contact, ContactFacts, Event
from consents.vocab import (
    ANY,
    CHANNELS,
    METHODS_NEEDING_PROOF,
    Channel,
    Doi,
    EventType,
    InteractionKind,
    Method,
)


def _when(value: Any) -> datetime | None:
    return parse_datetime(value) if isinstance(value, str) else None


def fact_from_row(
    *,
    type: str,
    occurred_at: datetime,
    seq: int,
    topic: str,
    channel: str,
    method: str,
    proof: str,
    data: dict[str, Any],
) -> rules.Fact:
    return rules.Fact(
        type=type,
        at=occurred_at,
        seq=seq,
        topic=topic or None,
        channel=channel or None,
        method=method or None,
        proof=proof or None,
        prechecked=bool(data.get("prechecked", False)),
        bundled=bool(data.get("bundled", False)),
        doi=data.get("doi", "none"),
        until=_when(data.get("until")),
        category=data.get("category") or None,
        product=data.get("product") or None,
        warranty_until=_when(data.get("warranty_until")),
        contract=data.get("contract") or None,
        kind=data.get("kind") or None,
        hard=bool(data.get("hard", False)),
        frequency=data.get("frequency") or None,
        automated=bool(data.get("automated", False)),
    )


def fact_from_event(event: Event) -> rules.Fact:
    return fact_from_row(
        type=event.type,
        occurred_at=event.occurred_at,
        seq=event.seq,
        topic=event.topic,
        channel=event.channel,
        method=event.method,
        proof=event.proof,
        data=event.data,
    )


def person_from_contact(contact: Contact) -> rules.Person:
    return rules.Person(
        kind=contact.kind,
        collected_at=contact.collected_at,
        informed_at_collection=contact.informed_at_collection,
        email=contact.email or None,
        phone=contact.phone or None,
        postal_address=contact.postal_address or None,
        push_token=contact.push_token or None,
        profession=contact.profession or None,
    )


@dataclass
class Projection:
    """Everything the projections hold for one contact, before it is written."""

    facts: dict[str, Any]
    channel_states: list[dict[str, Any]] = field(default_factory=list)
    consent_states: list[dict[str, Any]] = field(default_factory=list)
    catalog_facts: list[dict[str, Any]] = field(default_factory=list)


def _topic_channels(h: Sequence[rules.Fact]) -> dict[str, set[str]]:
    """Every (topic, channel) with an event of its own; ``opt_out(T, *)`` reaches every channel."""
    pairs: dict[str, set[str]] = {}
    for e in h:
        if e.type not in (EventType.OPT_IN, EventType.DOI_CONFIRMED, EventType.OPT_OUT):
            continue
        if not e.topic or e.topic == ANY or not e.channel:
            continue
        channels = pairs.setdefault(e.topic, set())
        channels.update(CHANNELS if e.channel == ANY else (e.channel,))
    return pairs


def _consent_state(
    h: Sequence[rules.Fact], topic: str, channel: str, s: rules.RuleSettings
) -> dict[str, Any]:
    pair = rules.pair_state(h, topic, channel, s)
    row: dict[str, Any] = {"automated": False, "callback_lifts": False}
    if pair.opt_out is not None:
        status, since = ConsentState.Status.OPTED_OUT, pair.opt_out.at
        # Only a phone call can be asked for (step 6's exception).
        row["callback_lifts"] = channel == Channel.PHONE and rules.callback_lifts(h, pair.opt_out)
    elif pair.consent is not None:
        status, since = ConsentState.Status.OPTED_IN, pair.consent.at
        row["automated"] = pair.automated_consent is not None
    elif pair.blocker == rules.Reason.CONSENT_PENDING:
        status, since = ConsentState.Status.PENDING, pair.latest_opt_in.at  # type: ignore[union-attr]
    elif pair.blocker == rules.Reason.INVALID_CONSENT:
        status, since = ConsentState.Status.INVALID, pair.latest_opt_in.at  # type: ignore[union-attr]
    else:
        status, since = ConsentState.Status.NONE, None
    return {"status": status, "since": since, **row}


_CHANNEL_SET = frozenset(CHANNELS)


def _by_channel(h: Sequence[rules.Fact]) -> dict[str, list[rules.Fact]]:
    """For each channel, in order, every event of ``h`` that a question about that channel reads.

    The helpers of ``rules`` that answer for a channel C (``opted_out_event``,
    ``valid_consent_event``, ``consent_blocker``, ``pause_until``, ``repermission_opted_out``,
    ``has_valid_consent_on``) only ever look at events on C or on ``*``, plus, for the phone,
    callback requests: given this sub-history instead of the whole one, they give the same
    answers (indices are only compared within the list they are taken from). A channel with no
    such event is absent.
    """
    lists: dict[str, list[rules.Fact]] = {}
    for e in h:
        channel = e.channel
        if channel == ANY:
            for c in CHANNELS:
                lists.setdefault(c, []).append(e)
            continue
        if channel in _CHANNEL_SET:
            lists.setdefault(channel, []).append(e)  # type: ignore[arg-type]
        if e.type == EventType.CALLBACK_REQUEST and channel != Channel.PHONE:
            lists.setdefault(Channel.PHONE, []).append(e)
    return lists


def derive(
    person: rules.Person, history: Iterable[rules.Fact], s: rules.RuleSettings
) -> Projection:
    h = rules.ordered(history)
    callback = rules.latest_callback(h)
    active_contracts = rules.active_contracts(h)
    anchor = rules.retention_anchor(person, h)
    projection = Projection(
        facts={
            "is_customer": rules.is_customer(h),
            "retention_anchor": anchor,
            # rules.retention_expiry, without computing the anchor and the contracts twice.
            "expires_at": (
                None if active_contracts else rules.add_years(anchor, s.retention_years)
            ),
            "undeliverable_email": rules.is_undeliverable(h),
            "generic_email": rules.is_generic_address(person.email, s),
            "repermission_asked": rules.repermission_asked(h),
            "callback_until": callback.at + s.callback_validity if callback else None,
            "last_seq": max((e.seq for e in h), default=0),
            "rules_fingerprint": s.fingerprint(),
        }
    )
    by_channel = _by_channel(h)
    for channel in CHANNELS:
        hc = by_channel.get(channel)
        if not hc:  # every answer below is falsy on an empty history: no row
            continue
        wildcard_opt_out = rules.opted_out_event(hc, None, channel, s)
        state = {
            "channel": channel,
            "opted_out": wildcard_opt_out is not None,
            "callback_lifts": channel == Channel.PHONE
            and rules.callback_lifts(hc, wildcard_opt_out),
            "pause_until": rules.pause_until(hc, channel),
            "repermission_opted_out": rules.repermission_opted_out(hc, channel, s),
            "has_valid_consent": rules.has_valid_consent_on(hc, channel, s),
        }
        if any(v for k, v in state.items() if k != "channel"):
            projection.channel_states.append(state)

    frequencies: dict[str, str] = {}
    purchases: set[tuple[str, str]] = set()
    for e in h:
        if e.type == EventType.OPT_IN and e.topic and e.frequency:
            frequencies[e.topic] = e.frequency
        elif e.type == EventType.PURCHASE:
            purchases.add((e.category or "", e.product or ""))
    for topic, channels in sorted(_topic_channels(h).items()):
        for channel in sorted(channels):
            # A channel outside CHANNELS has no sub-history: the whole history answers for it.
            state = _consent_state(by_channel.get(channel, h), topic, channel, s)
            projection.consent_states.append(
                {
                    "topic": topic,
                    "channel": channel,
                    **state,
                    "frequency": frequencies.get(topic, ""),
                }
            )

    active = {id(e) for e in active_contracts}
    contracts: set[tuple[str, str, bool]] = set()
    for e in h:
        if e.type == EventType.CONTRACT_START:
            contracts.add((e.category or "", e.contract or "", id(e) in active))
    projection.catalog_facts += catalog_rows(purchases, contracts)
    return projection


def catalog_rows(
    purchases: Iterable[tuple[str, str]], contracts: Iterable[tuple[str, str, bool]]
) -> list[dict[str, Any]]:
    """The ``CatalogFact`` rows of a person: purchases (category, product) and contracts
    (category, contract, active), in a stable order; the same for derive and the fold."""
    return [
        {"kind": CatalogFact.Kind.PURCHASE, "category": c, "product": p, "contract": "",
         "active": False}
        for c, p in sorted(purchases)
    ] + [
        {"kind": CatalogFact.Kind.CONTRACT, "category": c, "product": "", "contract": k,
         "active": a}
        for c, k, a in sorted(contracts)
    ]  # fmt: skip


def projection_write(
    contact: Contact, projection: Projection, fold: dict[str, Any] | None = None
) -> None:
    ContactFacts.objects.update_or_create(
        contact=contact, defaults={**projection.facts, "fold": fold}
    )
    ChannelState.objects.filter(contact=contact).delete()
    ConsentState.objects.filter(contact=contact).delete()
    CatalogFact.objects.filter(contact=contact).delete()
    ChannelState.objects.bulk_create(
        [ChannelState(contact=contact, **row) for row in projection.channel_states]
    )
    ConsentState.objects.bulk_create(
        [ConsentState(contact=contact, **row) for row in projection.consent_states]
    )
    CatalogFact.objects.bulk_create(
        [CatalogFact(contact=contact, **row) for row in projection.catalog_facts]
    )


def projection_refresh(contact: Contact, s: rules.RuleSettings | None = None) -> Projection:
    """Recompute and rewrite one contact's projections from its whole ledger history (and the
    state that the next append updates them from)."""
    s = s or rules.RuleSettings.from_django()
    rows = Event.objects.filter(contact=contact).values(
        "type", "occurred_at", "seq", "topic", "channel", "method", "proof", "data"
    )
    history = [fact_from_row(**row) for row in rows]
    projection = derive(person_from_contact(contact), history, s)
    try:
        fold: dict[str, Any] | None = Fold.of(history, s).dump()
    except Unfoldable:
        fold = None
    projection_write(contact, projection, fold)
    return projection


def projection_start(contact: Contact, s: rules.RuleSettings | None = None) -> Projection:
    """A new contact's projections (no history: no row but its facts), and its state."""
    s = s or rules.RuleSettings.from_django()
    projection = derive(person_from_contact(contact), [], s)
    statements.insert(ContactFacts(contact=contact, **projection.facts, fold=Fold(s).dump()))
    return projection


_ROWS = (
    ("channel_states", ChannelState),
    ("consent_states", ConsentState),
    ("catalog_facts", CatalogFact),
)


_READ = object()


def projection_append(
    contact: Contact, fact: rules.Fact, s: rules.RuleSettings | None = None, state: Any = _READ
) -> Projection:
    """The projections after one more event, from their stored state and that event alone.

    The same projections as ``projection_refresh`` (the whole history), in a number of queries
    that does not depend on the history's length: the state is read with the facts, and a table
    of rows is rewritten only when its rows changed. A contact without a usable state, or an
    event dated before the latest one applied, is recomputed from the whole history. The caller
    holds the contact's row lock (``services._append``).
    """
    s = s or rules.RuleSettings.from_django()
    if state is _READ:  # else the caller read it with the contact's row lock
        state = ContactFacts.objects.filter(contact=contact).values_list("fold", flat=True).first()
    fold = Fold.load(state, s)
    try:
        if fold is None or not fold.in_order(fact):
            return projection_refresh(contact, s)
        person = person_from_contact(contact)
        before = fold.projection(person)
        fold.apply(fact)
        after = fold.projection(person)
    except Unfoldable:
        return projection_refresh(contact, s)
    statements.update(ContactFacts, {"contact": contact.pk}, **after.facts, fold=fold.dump())
    for name, model in _ROWS:
        rows = getattr(after, name)
        if rows == getattr(before, name):
            continue
        _rows_change(contact, name, model, getattr(before, name), rows)
    return after


# The projection tables whose rows have a key per contact: an append changes only the rows that
# changed (a box ticked on the page: one row of 60), the others stay as they are.
_ROW_KEYS = {"channel_states": ("channel",), "consent_states": ("topic", "channel")}


# Beyond this many rows changed, a table is rewritten whole (two statements): "leave everything"
# changes every row at once.
_ROWS_CHANGED_ONE_BY_ONE = 3


def _rows_change(
    contact: Contact,
    name: str,
    model: Any,
    before: list[dict[str, Any]],
    after: list[dict[str, Any]],
) -> None:
    """Rewrite one projection table of ``contact`` from ``before`` (its stored rows) to
    ``after``: the few rows that differ, by key where the table has one, else all of them."""
    keys = _ROW_KEYS.get(name)
    if keys is not None:
        old = {tuple(row[k] for k in keys): row for row in before}
        new = {tuple(row[k] for k in keys): row for row in after}
        gone = old.keys() - new.keys()
        changed = {key: row for key, row in new.items() if old.get(key) != row}
        if len(gone) + len(changed) <= _ROWS_CHANGED_ONE_BY_ONE:
            for key in gone:
                statements.delete(
                    model, {"contact": contact.pk, **dict(zip(keys, key, strict=True))}
                )
            for key, row in changed.items():
                was = old.get(key)
                if was is None:  # a box given an answer for the first time
                    statements.insert(model(contact=contact, **row), later=True)
                    continue
                match = {"contact": contact.pk, **dict(zip(keys, key, strict=True))}
                statements.update(model, match, **{f: v for f, v in row.items() if was.get(f) != v})
            return
    if before:
        model.objects.filter(contact=contact).delete()
    model.objects.bulk_create([model(contact=contact, **row) for row in after])


FACT_FIELDS = [f.name for f in ContactFacts._meta.concrete_fields if not f.primary_key]


def rows_update(model: Any, objs: list[Any], names: list[str], chunk: int = 1000) -> None:
    """Write these fields of these rows (by primary key): on PostgreSQL one ``UPDATE ... FROM
    (VALUES ...)`` per thousand rows (``bulk_update``'s ``CASE WHEN`` costs seconds to build at
    that size), elsewhere one ``UPDATE`` per row."""
    if not objs:
        return
    fields = [model._meta.get_field(name) for name in names]
    # The wrapper itself: each look through the ``connection`` proxy is a thread-local look-up.
    conn = connections[DEFAULT_DB_ALIAS]
    if conn.vendor != "postgresql":
        for obj in objs:
            model.objects.filter(pk=obj.pk).update(
                **{f.name: getattr(obj, f.attname) for f in fields}
            )
        return
    pk = model._meta.pk
    table = connection.ops.quote_name(model._meta.db_table)
    q = connection.ops.quote_name
    key = q(pk.column)
    sets = ", ".join(f"{q(f.column)} = v.{q(f.column)}::{f.db_type(connection)}" for f in fields)
    columns = ", ".join([key, *(q(f.column) for f in fields)])
    # The values spelt in by psycopg's own literals (``statements.literals``): a statement of
    # thousands of placeholders was parsed again at each call (a sixth of a tracking drain).
    literal = statements.literals()
    kinds = statements.plain_kinds(fields)
    with conn.cursor() as cursor:
        for start in range(0, len(objs), chunk):
            rows = [
                statements.spelt_values(
                    [obj.pk, *statements.values_of(obj, fields, kinds, conn, adding=False)], literal
                )
                for obj in objs[start : start + chunk]
            ]
            cursor.execute(
                f"UPDATE {table} SET {sets} FROM (VALUES {', '.join(rows)})"
                f" AS v({columns}) WHERE {table}.{key} = v.{key}::{pk.db_type(connection)}"
            )


def projections_refresh_many(contacts: list[Contact], s: rules.RuleSettings | None = None) -> None:
    """``projection_refresh`` for many contacts, in a few queries: their histories read at once,
    their projections (and states) written at once. The caller holds their row locks."""
    if not contacts:
        return
    s = s or rules.RuleSettings.from_django()
    ids = [c.pk for c in contacts]
    histories: dict[int, list[rules.Fact]] = {i: [] for i in ids}
    rows = Event.objects.filter(contact_id__any_of=ids).values_list(
        "contact_id", "type", "occurred_at", "seq", "topic", "channel", "method", "proof", "data"
    )
    for contact_id, type_, at, seq, topic, channel, method, proof, data in rows:
        histories[contact_id].append(
            fact_from_row(
                type=type_, occurred_at=at, seq=seq, topic=topic, channel=channel,
                method=method, proof=proof, data=data,
            )
        )  # fmt: skip
    facts: list[ContactFacts] = []
    new_rows: dict[str, list[Any]] = {name: [] for name, _ in _ROWS}
    for contact in contacts:
        history = histories[contact.pk]
        projection = derive(person_from_contact(contact), history, s)
        try:
            fold: dict[str, Any] | None = Fold.of(history, s).dump()
        except Unfoldable:
            fold = None
        facts.append(ContactFacts(contact=contact, **projection.facts, fold=fold))
        for name, model in _ROWS:
            new_rows[name] += [model(contact=contact, **row) for row in getattr(projection, name)]
    existing = set(
        ContactFacts.objects.filter(contact_id__any_of=ids).values_list("contact_id", flat=True)
    )
    ContactFacts.objects.bulk_create([f for f in facts if f.contact_id not in existing])
    rows_update(ContactFacts, [f for f in facts if f.contact_id in existing], FACT_FIELDS)
    for name, model in _ROWS:
        model.objects.filter(contact_id__any_of=ids).delete()
        model.objects.bulk_create(new_rows[name])


def stale_contact_ids(s: rules.RuleSettings | None = None) -> list[int]:
    """Contacts whose projections were computed under other rules or settings (or never)."""
    s = s or rules.RuleSettings.from_django()
    current = ContactFacts.objects.filter(rules_fingerprint=s.fingerprint()).values("contact_id")
    return list(Contact.objects.exclude(pk__in=current).order_by("pk").values_list("pk", flat=True))


def projections_rebuild(
    *,
    stale_only: bool = True,
    s: rules.RuleSettings | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Recompute projections from the ledger: every contact's, or only the stale ones.

    Each contact is recomputed under its row lock, in a transaction of its own, so that an append
    running at the same time (which takes the same lock) is never lost and the job can stop and
    resume. Returns how many contacts were recomputed.
    """
    from django.db import transaction

    s = s or rules.RuleSettings.from_django()
    ids = (
        stale_contact_ids(s)
        if stale_only
        else list(Contact.objects.order_by("pk").values_list("pk", flat=True))
    )
    for done, contact_id in enumerate(ids, start=1):
        with transaction.atomic():
            contact = Contact.objects.select_for_update().filter(pk=contact_id).first()
            if contact is not None:
                projection_refresh(contact, s)
        if progress is not None:
            progress(done, len(ids))
    return len(ids)


def rebuild_stale_after_migrate(*, verbosity: int = 1, **kwargs: Any) -> None:
    """``post_migrate``: projections computed under other rules are wrong; recompute them now when
    there are few, else say which command to run (it may take a while on a large ledger)."""
    from django.conf import settings
    from django.db import DatabaseError

    try:
        stale = stale_contact_ids()
    except DatabaseError:  # a partial migration: the tables are not there yet
        return
    if not stale:
        return
    if len(stale) <= settings.PROJECTIONS_REBUILD_ON_MIGRATE_MAX:
        projections_rebuild(stale_only=True)
        if verbosity:
            print(f"  Recomputed the projections of {len(stale)} contact(s) under {RULES_NOTE}.")
    elif verbosity:
        print(
            f"  {len(stale)} contacts have projections computed under other rules or settings: "
            "run `python manage.py rebuild_projections --stale` before serving decisions."
        )


RULES_NOTE = f"{rules.RULES_VERSION} and the current settings"


# --- Incremental projections ------------------------------------------------------------------
#
# ``derive`` walks the whole history; an append only needs the previous state and the new event.
# ``Fold`` is that state: what every derived fact needs to be answered again, compact (instants as
# integer microseconds, ``(instant, seq)`` pairs for "which is later"), JSON-serialisable, stored
# with the facts (``ContactFacts.fold``). Applied to a history in the rules' order it gives the
# same projection as ``derive`` (``tests/consents/test_projections_incremental.py``, on random
# histories). An event recorded with an instant earlier than the contact's latest one (a
# back-dated import) changes the order of what came before: the contact is then recomputed from
# its whole history, as is a contact whose state is missing or was computed under other rules.

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
FOLD_VERSION = 1
_SEP = "\t"


# The types whose facts ``Fold.apply`` lets change the state the rows (channel and consent states,
# catalogue facts) are computed from: ``wild``, ``complaint``, ``topic_out``, ``pause``,
# ``callback``, ``valid_on``, ``waiting``, ``pairs``, ``topic_channels``, ``frequencies``,
# ``purchases``, ``active``, ``ended``. Any other fact (an interaction, a bounce, a repermission
# ask...) changes the contact's facts alone (``last``, ``initiated``, ``asked``, ``warranty``,
# ``undeliverable``): the rows stay as they were.
ROW_TYPES = frozenset(
    {
        EventType.PURCHASE,
        EventType.CONTRACT_START,
        EventType.CONTRACT_END,
        EventType.CALLBACK_REQUEST,
        EventType.PAUSE,
        EventType.COMPLAINT,
        EventType.OPT_OUT,
        EventType.OPT_IN,
        EventType.DOI_CONFIRMED,
    }
)


class Unfoldable(ValueError):
    """A history the fold cannot hold (an instant without a time zone): recompute it whole."""


def micros(at: datetime) -> int:
    """An instant as the fold's keys hold it: microseconds since the epoch."""
    if at.tzinfo is None:
        raise Unfoldable("naive instant")
    return (at - _EPOCH) // _US


def _at(us: int) -> datetime:
    return _EPOCH + us * _US


def _consent_row(
    topic: str,
    channel: str,
    out: list | None,
    since: dict[str, Any],
    frequency: str,
    *,
    callback_lifts: bool = False,
) -> dict[str, Any]:
    """A pair's ``ConsentState`` row from its state (``Fold.pair``): the covering opt-out
    that decides, else the keys of what came since it."""
    automated = False
    if out is not None:
        status, at = ConsentState.Status.OPTED_OUT, _at(out[0])
    elif "cons" in since:
        status, at = ConsentState.Status.OPTED_IN, _at(since["cons"][0])
        automated = "auto" in since
    elif "oi" in since and since["oi"][2] and not since["oi"][4]:
        status, at = ConsentState.Status.PENDING, _at(since["oi"][0])
    elif "oi" in since and not since["oi"][3]:
        status, at = ConsentState.Status.INVALID, _at(since["oi"][0])
    else:
        status, at = ConsentState.Status.NONE, None
    return {
        "topic": topic,
        "channel": channel,
        "status": status,
        "since": at,
        "automated": automated,
        "callback_lifts": callback_lifts,
        "frequency": frequency,
    }


def key_later(a: list | None, b: list | None) -> bool:
    """Is the key ``a`` (``[us, seq]``) later than ``b``? A missing key is earliest."""
    if a is None:
        return False
    return b is None or (a[0], a[1]) > (b[0], b[1])


def _latest(*keys: list | None) -> list | None:
    best = None
    for key in keys:
        if key is not None and (best is None or (key[0], key[1]) > (best[0], best[1])):
            best = key
    return best


def _max_us(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else max(a, b)


class Fold:
    """One contact's projection state, updated one event at a time (events in the rules' order)."""

    def __init__(self, s: rules.RuleSettings, state: dict[str, Any] | None = None) -> None:
        self.s = s
        self._ttl = s.doi_ttl // _US
        st = state or {}
        self.last: list | None = st.get("last")  # the latest [us, seq] applied
        self.last_seq: int = st.get("last_seq", 0)
        self.customer: bool = st.get("customer", False)
        self.initiated: int | None = st.get("initiated")  # latest person-initiated instant
        self.purchase: int | None = st.get("purchase")
        self.warranty: int | None = st.get("warranty")
        self.contract_end: int | None = st.get("contract_end")
        self.undeliverable: bool = st.get("undeliverable", False)
        self.asked: bool = st.get("asked", False)
        self.callback: list | None = st.get("callback")
        # Covering events: wildcard opt-outs by channel, complaints by channel, opt-outs of one
        # topic by "topic<TAB>channel"; each the latest [us, seq].
        self.wild: dict[str, list] = st.get("wild", {})
        self.complaint: dict[str, list] = st.get("complaint", {})
        self.topic_out: dict[str, list] = st.get("topic_out", {})
        self.pause: dict[str, list] = st.get("pause", {})  # channel -> [us, seq, until_us]
        self.valid_on: dict[str, list] = st.get("valid_on", {})  # latest valid opt-in by channel
        # Clean pending opt-ins that a confirmation could still make valid: [us, seq, automated].
        self.waiting: dict[str, list] = st.get("waiting", {})
        # By "topic<TAB>channel": pos (latest valid opt-in or confirming confirmation), oi (latest
        # opt-in: us, seq, pending, clean, confirmed), cons and auto (latest valid opt-in, and
        # automated one).
        self.pairs: dict[str, dict[str, Any]] = st.get("pairs", {})
        self.topic_channels: dict[str, list[str]] = st.get("topic_channels", {})
        self.frequencies: dict[str, str] = st.get("frequencies", {})
        self.purchases: list[list[str]] = st.get("purchases", [])
        self.active: dict[str, list] = st.get("active", {})  # contract -> [[category, us, seq]]
        self.ended: list[list[str]] = st.get("ended", [])  # [category, contract] no longer active

    # -- state ----------------------------------------------------------------------------------

    def dump(self) -> dict[str, Any]:
        if self.last is not None:  # too old for any later confirmation: forget them
            horizon = self.last[0] - self._ttl
            for key in list(self.waiting):
                kept = [j for j in self.waiting[key] if j[0] >= horizon]
                if kept:
                    self.waiting[key] = kept
                else:
                    del self.waiting[key]
        return {
            "v": FOLD_VERSION,
            "fingerprint": self.s.fingerprint(),
            "last": self.last,
            "last_seq": self.last_seq,
            "customer": self.customer,
            "initiated": self.initiated,
            "purchase": self.purchase,
            "warranty": self.warranty,
            "contract_end": self.contract_end,
            "undeliverable": self.undeliverable,
            "asked": self.asked,
            "callback": self.callback,
            "wild": self.wild,
            "complaint": self.complaint,
            "topic_out": self.topic_out,
            "pause": self.pause,
            "valid_on": self.valid_on,
            "waiting": self.waiting,
            "pairs": self.pairs,
            "topic_channels": self.topic_channels,
            "frequencies": self.frequencies,
            "purchases": self.purchases,
            "active": self.active,
            "ended": self.ended,
        }

    @classmethod
    def load(cls, state: Any, s: rules.RuleSettings) -> Fold | None:
        """The stored state, if it is one this code and these settings computed."""
        if (
            not isinstance(state, dict)
            or state.get("v") != FOLD_VERSION
            or state.get("fingerprint") != s.fingerprint()
        ):
            return None
        return cls(s, state)

    @classmethod
    def of(cls, history: Iterable[rules.Fact], s: rules.RuleSettings) -> Fold:
        fold = cls(s)
        for fact in rules.ordered(history):
            fold.apply(fact)
        return fold

    def in_order(self, *facts: rules.Fact) -> bool:
        """Does each fact come after every event applied so far and the facts before it, in the
        rules' order?"""
        last = None if self.last is None else (self.last[0], self.last[1])
        for fact in facts:
            key = (micros(fact.at), fact.seq)
            if last is not None and key <= last:
                return False
            last = key
        return True

    # -- one event ------------------------------------------------------------------------------

    def apply(self, e: rules.Fact) -> None:
        us = micros(e.at)
        key = [us, e.seq]
        self.last = key
        self.last_seq = max(self.last_seq, e.seq)
        t = e.type
        topic, channel = e.topic or "", e.channel or ""
        if rules.is_person_initiated(e):
            self.initiated = _max_us(self.initiated, us)
            self.asked = False
        if e.warranty_until is not None:
            self.warranty = _max_us(self.warranty, micros(e.warranty_until))
        if t == EventType.PURCHASE:
            self.customer = True
            self.purchase = _max_us(self.purchase, us)
            pair = [e.category or "", e.product or ""]
            if pair not in self.purchases:
                self.purchases.append(pair)
        elif t == EventType.CONTRACT_START:
            self.customer = True
            self.active.setdefault(e.contract or "", []).append([e.category or "", us, e.seq])
        elif t == EventType.CONTRACT_END:
            self.contract_end = _max_us(self.contract_end, us)
            for category, _, _ in self.active.pop(e.contract or "", []):
                ended = [category, e.contract or ""]
                if ended not in self.ended:
                    self.ended.append(ended)
        elif t == EventType.REPERMISSION_SENT:
            self.asked = True
        elif t == EventType.CALLBACK_REQUEST:
            self.callback = key
        elif t == EventType.PAUSE:
            self.pause[channel] = [us, e.seq, None if e.until is None else micros(e.until)]
        elif t == EventType.COMPLAINT:
            self.complaint[channel] = key
        elif t == EventType.OPT_OUT:
            if e.topic == ANY:
                self.wild[channel] = key
            elif topic:
                self.topic_out[topic + _SEP + channel] = key
        elif t == EventType.OPT_IN:
            self._opt_in(e, key, topic, channel)
        elif t == EventType.DOI_CONFIRMED:
            self._confirmed(key, topic, channel)
        # rules.is_undeliverable
        if t == EventType.BOUNCE and e.channel == Channel.EMAIL and e.hard:
            self.undeliverable = True
        elif (
            (t == EventType.DOI_CONFIRMED and e.channel == Channel.EMAIL)
            or (
                t == EventType.INTERACTION
                and e.kind in (InteractionKind.CLICK, InteractionKind.REPLY)
            )
            or (t == EventType.ADDRESS_CHANGED and e.channel == Channel.EMAIL)
        ):
            self.undeliverable = False
        # _topic_channels
        if (
            t in (EventType.OPT_IN, EventType.DOI_CONFIRMED, EventType.OPT_OUT)
            and topic
            and topic != ANY
            and channel
        ):
            known = self.topic_channels.setdefault(topic, [])
            for c in CHANNELS if channel == ANY else (channel,):
                if c not in known:
                    known.append(c)

    def _pair(self, topic: str, channel: str) -> dict[str, Any] | None:
        if not topic or not channel:
            return None
        return self.pairs.setdefault(
            topic + _SEP + channel, {"pos": None, "oi": None, "cons": None, "auto": None}
        )

    def _opt_in(self, e: rules.Fact, key: list, topic: str, channel: str) -> None:
        clean = rules._is_clean(e)
        pending = e.doi == Doi.PENDING
        pair = self._pair(topic, channel)
        if e.topic and e.frequency:
            self.frequencies[e.topic] = e.frequency
        if clean and pending:
            self.waiting.setdefault(topic + _SEP + channel, []).append(
                [key[0], key[1], e.automated]
            )
        elif clean:  # valid at once
            self.valid_on[channel] = key
            if pair is not None:
                pair["pos"] = pair["cons"] = key
                if e.automated:
                    pair["auto"] = key
        if pair is not None:
            pair["oi"] = [key[0], key[1], pending, clean, False]

    def _confirmed(self, key: list, topic: str, channel: str) -> None:
        us = key[0]
        pair = self._pair(topic, channel)
        name = topic + _SEP + channel
        waiting = [j for j in self.waiting.get(name, ()) if us - j[0] <= self._ttl]
        if waiting:
            self.waiting[name] = waiting
        else:
            self.waiting.pop(name, None)
        if pair is not None:
            oi = pair["oi"]
            if oi is not None and oi[2] and us - oi[0] <= self._ttl:
                oi[4] = True  # rules._confirmed_in_time
        if not waiting:
            return
        # A confirming confirmation: every opt-in it confirms is valid from now on.
        latest = _latest(*([j[0], j[1]] for j in waiting))
        self.valid_on[channel] = _latest(self.valid_on.get(channel), latest)
        if pair is not None:
            pair["pos"] = key
            pair["cons"] = _latest(pair["cons"], latest)
            automated = [[j[0], j[1]] for j in waiting if j[2]]
            if automated:
                pair["auto"] = _latest(pair["auto"], *automated)

    # -- the projection -------------------------------------------------------------------------

    def _cover(self, topic: str | None, channel: str) -> list | None:
        """The latest event that covers (topic, channel) (``rules.covers``)."""
        keys = [self.wild.get(channel), self.wild.get(ANY), self.complaint.get(channel)]
        if topic:
            keys += [
                self.topic_out.get(topic + _SEP + channel),
                self.topic_out.get(topic + _SEP + ANY),
            ]
        return _latest(*keys)

    def pair(self, topic: str, channel: str) -> tuple[list | None, dict[str, Any]]:
        """``rules.pair_state`` of (``topic``, ``channel``) in keys: the covering opt-out that
        decides, if opted out; else what came since the last cover, by name: ``cons`` (the
        latest valid opt-in), ``auto`` (the same, automated), ``oi`` (the latest opt-in:
        ``[us, seq, pending, clean, confirmed in time]``)."""
        cover = self._cover(topic, channel)
        pair = self.pairs.get(topic + _SEP + channel) or {}
        if cover is not None and not key_later(pair.get("pos"), cover):
            return cover, {}
        since = {
            name: value
            for name in ("cons", "auto", "oi")
            if (value := pair.get(name)) is not None and key_later(value, cover)
        }
        return None, since

    def facts(self, person: rules.Person) -> dict[str, Any]:
        """The contact's facts (``ContactFacts``'s columns but the state), without the rows."""
        s = self.s
        active = any(self.active.values())
        if self.customer:
            candidates = [self.purchase, self.warranty, self.contract_end, self.initiated]
            anchor = _at(max(c for c in candidates if c is not None))
        else:
            anchor = person.collected_at
            if self.initiated is not None and _at(self.initiated) > anchor:
                anchor = _at(self.initiated)
        return {
            "is_customer": self.customer,
            "retention_anchor": anchor,
            "expires_at": None if active else rules.add_years(anchor, s.retention_years),
            "undeliverable_email": self.undeliverable,
            "generic_email": rules.is_generic_address(person.email, s),
            "repermission_asked": self.asked,
            "callback_until": (
                _at(self.callback[0]) + s.callback_validity if self.callback else None
            ),
            "last_seq": self.last_seq,
            "rules_fingerprint": s.fingerprint(),
        }

    def projection(self, person: rules.Person) -> Projection:
        projection = Projection(facts=self.facts(person))
        consent_on: dict[str, bool] = {}
        for name in self.pairs:
            topic, channel = name.split(_SEP)
            if channel in consent_on and consent_on[channel]:
                continue
            out, since = self.pair(topic, channel)
            consent_on[channel] = out is None and "cons" in since
        # A channel that nothing covers, pauses or consents to has an all-false state: no row.
        quiet = ANY not in self.wild and ANY not in self.pause
        for channel in CHANNELS:
            if (
                quiet
                and not consent_on.get(channel)
                and channel not in self.wild
                and channel not in self.complaint
                and channel not in self.pause
            ):
                continue
            cover = self._cover(None, channel)
            pause = _latest(self.pause.get(channel), self.pause.get(ANY))
            state = {
                "channel": channel,
                "opted_out": cover is not None,
                "callback_lifts": channel == Channel.PHONE
                and cover is not None
                and key_later(self.callback, cover),
                "pause_until": None if pause is None or pause[2] is None else _at(pause[2]),
                "repermission_opted_out": cover is not None
                and key_later(cover, self.valid_on.get(channel)),
                "has_valid_consent": consent_on.get(channel, False),
            }
            if any(v for k, v in state.items() if k != "channel"):
                projection.channel_states.append(state)
        for topic in sorted(self.topic_channels):
            for channel in sorted(self.topic_channels[topic]):
                out, since = self.pair(topic, channel)
                lifts = out is not None and channel == Channel.PHONE
                projection.consent_states.append(
                    _consent_row(
                        topic,
                        channel,
                        out,
                        since,
                        self.frequencies.get(topic, ""),
                        callback_lifts=lifts and key_later(self.callback, out),
                    )
                )
        contracts = {(c, k, False) for c, k in self.ended}
        for contract, starts in self.active.items():
            contracts.update((category, contract, True) for category, _, _ in starts)
        purchases = {(c, p) for c, p in self.purchases}
        projection.catalog_facts += catalog_rows(purchases, contracts)
        return projection


# --- A list's history, folded directly ------------------------------------------------------------
# An import of a mailing list gives each new contact one history shape: an opt-in to one topic on
# one channel, then perhaps its double opt-in confirmation, an opt-out of that topic (or of every
# topic) on that channel, or a bounce. ``fold_simple`` computes what
# ``Fold.of(history).projection(person)`` and ``.dump()`` give for that shape without building a
# ``rules.Fact`` per event nor walking the generic rules: the same lines of ``Fold.apply``,
# ``Fold._opt_in``, ``Fold._confirmed``, ``Fold.dump``, ``Fold.facts`` and ``Fold.projection``,
# kept to the one pair (topic, channel) such a history can touch. Any other history answers None
# (the caller folds it the generic way). ``tests/consents/test_fold_simple.py`` compares the two
# on generated histories, and the bulk loader compares them again on the first contact of each
# outcome in every batch (``bulk.prepare``). A change to ``Fold`` is a change here too.

# The ``data`` keys each type may carry on this path (any other key: the generic fold).
_SIMPLE_DATA = {
    EventType.OPT_IN: frozenset({"doi", "prechecked", "bundled", "frequency", "automated"}),
    EventType.DOI_CONFIRMED: frozenset({"token_digest"}),
    EventType.OPT_OUT: frozenset(),
    EventType.BOUNCE: frozenset({"hard"}),
}
_DOIS = (Doi.NONE, Doi.PENDING)


_encode = json.encoder.encode_basestring  # json.dumps(ensure_ascii=False) of a str
_JSON_BOOL = ("false", "true")


def _key(key: list | None, none: str | None = "null") -> str | None:
    """An ``[us, seq]`` key's JSON text; ``none`` for no key."""
    return none if key is None else f"[{key[0]},{key[1]}]"


def _one(name: str, value: str | None) -> str:
    """The JSON text of a map of one entry (name and value already JSON), or of none."""
    return "{}" if value is None else f"{{{name}:{value}}}"


def _waiting(waited: list[list]) -> str:
    return "[" + ",".join(f"[{j[0]},{j[1]},{_JSON_BOOL[j[2]]}]" for j in waited) + "]"


def fold_simple(
    events: Sequence[tuple[str, datetime, int, str, str, str, str, dict[str, Any]]],
    collected_at: datetime,
    email: str | None,
    s: rules.RuleSettings,
) -> tuple[Projection, str, tuple] | None:
    """For ``events`` given as (type, occurred_at, seq, topic, channel, method, proof, data) in
    recorded order, and the contact's ``collected_at`` and ``email``: ``(Fold.of(history, s)
    .projection(person), canonical_json(.dump()), outcome)``, or None when the history is not
    of the one shape this computes (see above). ``outcome`` names every branch the history took:
    the caller compares the answer with the generic fold's once per outcome."""
    if not events or collected_at.tzinfo is None:
        return None
    kind, at, seq, topic, channel, method, proof, data = events[0]
    if (
        kind != EventType.OPT_IN
        or not topic
        or topic == ANY
        or channel not in _CHANNEL_SET
        or at.tzinfo is None
        or not data.keys() <= _SIMPLE_DATA[EventType.OPT_IN]
    ):
        return None
    doi = data.get("doi", Doi.NONE)
    if doi not in _DOIS:
        return None
    frequency = data.get("frequency") or None
    if frequency is not None and type(frequency) is not str:
        return None
    automated = bool(data.get("automated", False))
    # rules._is_clean, rules.is_person_initiated
    clean = not (
        bool(data.get("prechecked", False))
        or bool(data.get("bundled", False))
        or ((method or None) in METHODS_NEEDING_PROOF and not proof)
    )
    pending = doi == Doi.PENDING
    ttl = s.doi_ttl // _US
    us = (at - _EPOCH) // _US
    key = [us, seq]
    last, last_seq = key, seq
    initiated = us if (method or None) != Method.IMPORT and not pending and clean else None
    name = topic + _SEP + channel
    pair: dict[str, Any] = {"pos": None, "oi": None, "cons": None, "auto": None}
    waiting: dict[str, list] = {}
    valid_on: dict[str, list] = {}
    topic_out: dict[str, list] = {}
    wild: dict[str, list] = {}
    if clean and pending:
        waiting[name] = [[us, seq, automated]]
    elif clean:
        valid_on[channel] = key
        pair["pos"] = pair["cons"] = key
        if automated:
            pair["auto"] = key
    pair["oi"] = [us, seq, pending, clean, False]
    undeliverable = False
    outcome: list[Any] = [clean, pending, automated, initiated is not None]
    for kind, at, seq, topic_e, channel_e, _method, _proof, data in events[1:]:
        allowed = _SIMPLE_DATA.get(kind) if kind != EventType.OPT_IN else None
        if allowed is None or at.tzinfo is None or not data.keys() <= allowed:
            return None
        us = (at - _EPOCH) // _US
        if us < last[0] or (us == last[0] and seq < last[1]):
            return None  # not in the rules' order: the generic fold sorts it
        key = [us, seq]
        last = key
        last_seq = max(last_seq, seq)
        if kind == EventType.DOI_CONFIRMED:
            if topic_e != topic or channel_e != channel:
                return None
            initiated = us if initiated is None else max(initiated, us)
            kept = [j for j in waiting.get(name, ()) if us - j[0] <= ttl]
            if kept:
                waiting[name] = kept
            else:
                waiting.pop(name, None)
            oi = pair["oi"]
            in_time = oi[2] and us - oi[0] <= ttl
            if in_time:
                oi[4] = True
            if kept:
                latest = _latest(*([j[0], j[1]] for j in kept))
                valid_on[channel] = _latest(valid_on.get(channel), latest)
                pair["pos"] = key
                pair["cons"] = _latest(pair["cons"], latest)
                automated_ones = [[j[0], j[1]] for j in kept if j[2]]
                if automated_ones:
                    pair["auto"] = _latest(pair["auto"], *automated_ones)
            if channel == Channel.EMAIL:
                undeliverable = False
            outcome.append((kind, bool(in_time), len(kept)))
        elif kind == EventType.OPT_OUT:
            if channel_e != channel or topic_e not in (topic, ANY):
                return None
            if topic_e == ANY:
                wild[channel] = key
            else:
                topic_out[name] = key
            outcome.append((kind, topic_e == ANY))
        else:  # a bounce
            hard = bool(data.get("hard", False))
            if channel_e == Channel.EMAIL and hard:
                undeliverable = True
            outcome.append((kind, channel_e == Channel.EMAIL, hard))

    # Fold.dump: pending opt-ins too old for any later confirmation are forgotten.
    horizon = last[0] - ttl
    for waited in list(waiting):
        kept = [j for j in waiting[waited] if j[0] >= horizon]
        if kept:
            waiting[waited] = kept
        else:
            del waiting[waited]
    fingerprint = s.fingerprint()
    frequencies = {topic: frequency} if frequency else {}
    # ``canonical_json(Fold.dump())``, spelt directly (keys sorted, no spaces): one pair, each of
    # its maps of at most one entry.
    enc, pair_name, channel_name = _encode, _encode(name), _encode(channel)
    oi, waited = pair["oi"], waiting.get(name)
    state = (
        '{"active":{},"asked":false,"callback":null,"complaint":{},"contract_end":null,'
        f'"customer":false,"ended":[],"fingerprint":{enc(fingerprint)},'
        f'"frequencies":{_one(enc(topic), enc(frequency) if frequency else None)},'
        f'"initiated":{"null" if initiated is None else initiated},'
        f'"last":[{last[0]},{last[1]}],"last_seq":{last_seq},'
        f'"pairs":{{{pair_name}:{{"auto":{_key(pair["auto"])},"cons":{_key(pair["cons"])},'
        f'"oi":[{oi[0]},{oi[1]},{_JSON_BOOL[oi[2]]},{_JSON_BOOL[oi[3]]},{_JSON_BOOL[oi[4]]}],'
        f'"pos":{_key(pair["pos"])}}}}},'
        '"pause":{},"purchase":null,"purchases":[],'
        f'"topic_channels":{{{enc(topic)}:[{channel_name}]}},'
        f'"topic_out":{_one(pair_name, _key(topic_out.get(name), None))},'
        f'"undeliverable":{_JSON_BOOL[undeliverable]},"v":{FOLD_VERSION},'
        f'"valid_on":{_one(channel_name, _key(valid_on.get(channel), None))},'
        f'"waiting":{_one(pair_name, _waiting(waited) if waited else None)},'
        '"warranty":null,'
        f'"wild":{_one(channel_name, _key(wild.get(channel), None))}}}'
    )

    # Fold.facts
    anchor = collected_at
    if initiated is not None:
        initiated_at = _at(initiated)
        if initiated_at > anchor:
            anchor = initiated_at
    facts = {
        "is_customer": False,
        "retention_anchor": anchor,
        "expires_at": rules.add_years(anchor, s.retention_years),
        "undeliverable_email": undeliverable,
        "generic_email": rules.is_generic_address(email or None, s),
        "repermission_asked": False,
        "callback_until": None,
        "last_seq": last_seq,
        "rules_fingerprint": fingerprint,
    }

    # Fold.projection: the pair's state (Fold.pair), its channel's row if it consents or
    # is opted out of, and the pair's consent row.
    wildcard = wild.get(channel)
    cover = _latest(wildcard, topic_out.get(name))
    out = None
    since: dict[str, Any] = {}
    if cover is not None and not key_later(pair["pos"], cover):
        out = cover
    else:
        since = {
            n: value
            for n in ("cons", "auto", "oi")
            if (value := pair[n]) is not None and key_later(value, cover)
        }
    projection = Projection(facts=facts)
    consents = out is None and "cons" in since
    if consents or wildcard is not None:
        projection.channel_states.append(
            {
                "channel": channel,
                "opted_out": wildcard is not None,
                "callback_lifts": False,  # no callback request
                "pause_until": None,
                "repermission_opted_out": wildcard is not None
                and key_later(wildcard, valid_on.get(channel)),
                "has_valid_consent": consents,
            }
        )
    row = _consent_row(topic, channel, out, since, frequencies.get(topic, ""))
    projection.consent_states.append(row)
    outcome += [
        row["status"],
        projection.channel_states[0]["repermission_opted_out"] if wildcard else None,
        row["automated"],
        anchor is collected_at,
        facts["generic_email"],
        len(waiting.get(name, ())),  # the only key waiting can have
    ]
    return projection, state, tuple(outcome)
