"""A bulk import path into the ledger, for PostgreSQL: many contacts and their histories at once.

``services`` is the one door for everyday writes: one event, one row lock, one transaction. An
import of a whole customer base cannot go through that door a million times, so this module does,
per contact and in Python, exactly what ``services._append`` does event by event:

- the chain: ``seq`` from 1, ``prev_hash`` from ``ledger.GENESIS``,
  ``hash = ledger.chain_hash(prev_hash, ledger.canonical_event(...))``, the keyed evidence digest
  and its salt (``ledger.evidence_seal``), the collection point without its query string
  (``ledger.collection_point``), and the chain's recorded head (``ChainHead``);
- the projections: ``projections.Fold`` over the contact's whole history (``derive``'s
  projection, for less), written as the same rows ``projections.projection_refresh`` writes, with
  the state the contact's next append updates them from (``ContactFacts.fold``);

then writes contacts, events, evidence and projections with ``COPY ... FROM STDIN``, one
transaction per batch of contacts, with ids reserved from the tables' own sequences so that rows
can reference each other. ``manage.py verify_ledger`` accepts what it writes, the audience query
reads it, and ``projections.projection_refresh`` recomputes the same projections from it.

Input: an iterable of ``(contact fields, event dicts)``. Contact fields are ``Contact`` field names
(``collected_at`` is required; the rest take the model's defaults). An event dict holds the
``Event`` fields: ``type`` and ``occurred_at`` (required), ``topic``, ``channel``, ``method``,
``actor`` (default ``"system"``), ``collection_point``, ``store_id``, ``notice_id``, ``proof`` (the
reference to the original evidence), ``data`` (exactly as the services store it: build it with the
helpers below), ``recorded_at`` (default: when the batch is written; never at or before the
latest ledger anchor, which covers what was recorded until then), and the personal evidence
``ip_address``, ``user_agent``, ``details``. Events are appended in list order, as the services
would append them one call after another.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import itertools
import multiprocessing
import socket
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from types import SimpleNamespace
from typing import Any, NamedTuple

import psycopg
from django.conf import settings as django_settings
from django.core.exceptions import ValidationError
from django.db import connection, connections, models, transaction
from django.db.models.fields import AutoFieldMixin
from psycopg import postgres
from psycopg.adapt import Dumper
from psycopg.pq import Format

from consents import clock, copying, ledger, projections, rules, validation
from consents.collector import collecting_less
from consents.models import (
    CatalogFact,
    ChainHead,
    ChannelState,
    ConsentState,
    Contact,
    ContactFacts,
    Event,
    Evidence,
    LedgerAnchor,
    Suppression,
    Topic,
)
from consents.services import (
    SUPPRESSED_CHANNELS,
    SUPPRESSION_CHECKED_METHODS,
    SUPPRESSION_POINT,
    address_is_suppressed,
    normalize_email,
    normalize_phone,
    suppression_digest,
)
from consents.vocab import (
    ANY,
    Channel,
    Doi,
    EventType,
    Method,
)

BATCH_CONTACTS = 10_000


class BulkError(Exception):
    """The input cannot be loaded; the message names the contact (by position) and the field."""


# --- Event dicts, with ``data`` exactly as the services store it --------------------------------
# Each mirrors one function of ``consents.services`` (same type, topic, channel and data).


def opt_in(
    topic: str,
    channel: str,
    at: datetime,
    *,
    method: str,
    doi: str = Doi.NONE,
    prechecked: bool = False,
    bundled: bool = False,
    frequency: str = "",
    **proof: Any,
) -> dict[str, Any]:
    """``services.consent_grant``."""
    data: dict[str, Any] = {"doi": doi, "prechecked": prechecked, "bundled": bundled}
    if frequency:
        data["frequency"] = frequency
    return {
        "type": EventType.OPT_IN,
        "topic": topic,
        "channel": channel,
        "occurred_at": at,
        "method": method,
        "data": data,
        **proof,
    }


def doi_confirmed(
    topic: str, channel: str, at: datetime, *, token_digest: str = "", **proof: Any
) -> dict[str, Any]:
    """``services.consent_confirm``."""
    data = {"token_digest": token_digest} if token_digest else {}
    return {
        "type": EventType.DOI_CONFIRMED,
        "topic": topic,
        "channel": channel,
        "occurred_at": at,
        "data": data,
        **proof,
    }


def opt_out(topic: str, channel: str, at: datetime, *, method: str, **proof: Any) -> dict[str, Any]:
    """``services.consent_withdraw``; ``topic`` and ``channel`` may be ``"*"``."""
    return {
        "type": EventType.OPT_OUT,
        "topic": topic,
        "channel": channel,
        "occurred_at": at,
        "method": method,
        **proof,
    }


def complaint(at: datetime, *, channel: str = Channel.EMAIL, **proof: Any) -> dict[str, Any]:
    """``services.complaint_record``."""
    return {"type": EventType.COMPLAINT, "channel": channel, "occurred_at": at, **proof}


def pause(channel: str, until: datetime, at: datetime, **proof: Any) -> dict[str, Any]:
    """``services.marketing_pause``."""
    return {
        "type": EventType.PAUSE,
        "channel": channel,
        "occurred_at": at,
        "data": {"until": ledger.iso(until)},
        **proof,
    }


def purchase(
    category: str,
    product: str,
    at: datetime,
    *,
    warranty_until: datetime | None = None,
    **proof: Any,
) -> dict[str, Any]:
    """``services.purchase_record``."""
    data: dict[str, Any] = {"category": category, "product": product or ""}
    if warranty_until is not None:
        data["warranty_until"] = ledger.iso(warranty_until)
    return {"type": EventType.PURCHASE, "occurred_at": at, "data": data, **proof}


def contract_start(contract: str, category: str, at: datetime, **proof: Any) -> dict[str, Any]:
    """``services.contract_start``."""
    return {
        "type": EventType.CONTRACT_START,
        "occurred_at": at,
        "data": {"contract": contract, "category": category},
        **proof,
    }


def contract_end(contract: str, at: datetime, **proof: Any) -> dict[str, Any]:
    """``services.contract_end``."""
    return {
        "type": EventType.CONTRACT_END,
        "occurred_at": at,
        "data": {"contract": contract},
        **proof,
    }


def interaction(kind: str, at: datetime, **proof: Any) -> dict[str, Any]:
    """``services.interaction_record``."""
    return {"type": EventType.INTERACTION, "occurred_at": at, "data": {"kind": kind}, **proof}


def bounce(
    hard: bool, at: datetime, *, channel: str = Channel.EMAIL, **proof: Any
) -> dict[str, Any]:
    """``services.bounce_record``."""
    return {
        "type": EventType.BOUNCE,
        "channel": channel,
        "occurred_at": at,
        "data": {"hard": bool(hard)},
        **proof,
    }


def address_changed(channel: str, at: datetime, **proof: Any) -> dict[str, Any]:
    """``services.address_change_record``."""
    return {"type": EventType.ADDRESS_CHANGED, "channel": channel, "occurred_at": at, **proof}


def callback_request(at: datetime, *, channel: str = Channel.PHONE, **proof: Any) -> dict[str, Any]:
    """``services.callback_request``."""
    return {"type": EventType.CALLBACK_REQUEST, "channel": channel, "occurred_at": at, **proof}


def repermission_sent(channel: str, at: datetime, **proof: Any) -> dict[str, Any]:
    """``services.repermission_record``."""
    return {"type": EventType.REPERMISSION_SENT, "channel": channel, "occurred_at": at, **proof}


# --- Building one contact's rows, in Python -------------------------------------------------------

# The columns of ``consents_event`` this module writes, in order; checked against the model.
EVENT_COLUMNS = (
    "id",
    "contact_id",
    "seq",
    "type",
    "topic",
    "channel",
    "occurred_at",
    "recorded_at",
    "method",
    "actor",
    "collection_point",
    "store_id",
    "notice_id",
    "proof",
    "data",
    "evidence_digest",
    "prev_hash",
    "hash",
)


class EventRow(NamedTuple):
    """One ``consents_event`` row, without its id (``EVENT_COLUMNS[1:]``)."""

    contact_id: int
    seq: int
    type: str
    topic: str
    channel: str
    occurred_at: datetime
    recorded_at: datetime
    method: str
    actor: str
    collection_point: str
    store_id: int | None
    notice_id: int | None
    proof: str
    data: str  # canonical JSON text
    evidence_digest: str
    prev_hash: str
    hash: str


@dataclass
class Prepared:
    """Everything one contact's import writes, before it is written."""

    contact: dict[str, Any]
    events: list[EventRow]
    # (index in ``events``, ip_address, user_agent, details, salt) for events with personal
    # evidence; the salt keys the event's evidence digest. ``details`` is its canonical JSON text
    # when the digest was computed from that text (it is then written as is).
    evidence: list[tuple[int, str | None, str, dict[str, Any] | str, str]]
    projection: projections.Projection
    # The state the contact's next append updates the projections from (``ContactFacts.fold``),
    # as canonical JSON text; None if the history cannot be folded (recomputed at that append).
    fold: str | None = None


_EVENT_KEYS = frozenset(
    {
        "type",
        "occurred_at",
        "recorded_at",
        "topic",
        "channel",
        "method",
        "actor",
        "collection_point",
        "store_id",
        "notice_id",
        "proof",
        "data",
        "ip_address",
        "user_agent",
        "details",
    }
)


@dataclass(frozen=True)
class Checks:
    """What validation needs from the database: the topics, their channels and frequencies."""

    topics: Mapping[str, tuple[frozenset[str], frozenset[str]]]
    latest: datetime  # instants later than this are refused, as the services refuse them
    # Whether the suppression list holds anything (if not, no address needs a look-up).
    suppressions: bool = False

    @classmethod
    def from_db(cls) -> Checks:
        return cls(
            topics={
                slug: (frozenset(channels), frozenset(frequencies))
                for slug, channels, frequencies in Topic.objects.values_list(
                    "slug", "channels", "frequencies"
                )
            },
            latest=clock.now() + django_settings.LEDGER_MAX_CLOCK_SKEW,
            suppressions=Suppression.objects.exists(),
        )


def _refused(where: str, exc: ValidationError) -> BulkError:
    """A rule of ``consents.validation`` broken, said with the contact and event at fault."""
    name, messages = next(iter(exc.message_dict.items()))
    return BulkError(f"{where}, {name}: {messages[0]}")


def _is_ip_text(value: Any) -> bool:
    """A str that ``socket.inet_pton`` reads as an IPv4 or IPv6 address: ``ipaddress`` accepts
    each of them (it accepts more: a zone index, an integer, which it is still asked about), for
    a fraction of its cost."""
    if type(value) is not str:
        return False
    try:
        socket.inet_pton(socket.AF_INET, value)
        return True
    except OSError:
        pass
    try:
        socket.inet_pton(socket.AF_INET6, value)
        return True
    except OSError:
        return False


def _check_event(where: str, e: Mapping[str, Any], checks: Checks) -> None:
    """The checks the services make before appending (``consents.validation.event``)."""
    unknown = e.keys() - _EVENT_KEYS
    if unknown:
        raise BulkError(f"{where}: unknown field {sorted(unknown)[0]!r}")
    ip = e.get("ip_address")
    if ip and not _is_ip_text(ip):
        try:
            ipaddress.ip_address(ip)
        except ValueError as exc:
            raise BulkError(f"{where}, ip_address: {exc}") from exc
    try:
        validation.event(
            e.get("type"),
            occurred_at=e.get("occurred_at"),
            recorded_at=e.get("recorded_at"),
            topic_slug=e.get("topic") or "",
            on=e.get("channel") or "",
            how=e.get("method") or "",
            by=e.get("actor", "system"),
            values=e.get("data") or {},
            offers=checks.topics,
            latest=checks.latest,
        )
    except ValidationError as exc:
        raise _refused(where, exc) from exc


# (attname, field) for every column of Contact but its id, in the model's order.
_CONTACT_FIELDS = [(f.attname, f) for f in Contact._meta.concrete_fields if not f.primary_key]
_CONTACT_NAMES = frozenset(name for name, _ in _CONTACT_FIELDS)


@functools.cache
def _contact_plan() -> list[tuple[str, bool, Callable[[], Any] | None, Any]]:
    """(attname, whether its default is the instant of creation, the callable that makes its
    default or None, its default when that is a constant): ``Field.get_default`` asked once per
    column rather than once per column of every contact (a ``uuid4`` is still called each time)."""
    plan = []
    for name, f in _CONTACT_FIELDS:
        when_created = bool(getattr(f, "auto_now_add", False) or getattr(f, "auto_now", False))
        if f.has_default() and callable(f.default):
            plan.append((name, when_created, f.default, None))
        else:
            plan.append((name, when_created, None, f.get_default()))
    return plan


def contact_row(
    fields: Mapping[str, Any],
    *,
    now: datetime,
    checks: Checks | None,
    where: str = "contact",
    email_normalized: bool = False,
) -> dict[str, Any]:
    """The Contact columns, with the model's defaults, normalised as ``contact_create`` does.
    ``email_normalized``: the email is already ``normalize_email``'s result (which it leaves as
    it is), so it is not normalised (and validated) a second time."""
    unknown = fields.keys() - _CONTACT_NAMES
    if unknown:
        raise BulkError(f"{where}: unknown field {sorted(unknown)[0]!r}")
    row: dict[str, Any] = {}
    for name, when_created, make, default in _contact_plan():
        if name in fields:
            row[name] = fields[name]
        elif when_created:
            row[name] = now
        else:
            row[name] = make() if make is not None else default
    # As contact_create stores them: no email is NULL (emails are unique), no phone is "".
    row["email"] = row["email"] or None
    row["phone"] = row["phone"] or ""
    if checks is not None:
        try:
            validation.contact(
                kind=row["kind"],
                locale=row["locale"],
                collected_at=row["collected_at"],
                latest=checks.latest,
            )
        except ValidationError as exc:
            raise _refused(where, exc) from exc
        try:
            if row["email"] and not email_normalized:
                row["email"] = normalize_email(row["email"])
            row["phone"] = normalize_phone(row["phone"]) if row["phone"] else ""
        except ValidationError as exc:
            name = next(iter(exc.message_dict))
            raise BulkError(f"{where}, {name}: {exc.message_dict[name][0]}") from exc
        row["first_name"] = (row["first_name"] or "")[:150]
    return row


# The chain hashes ``ledger.canonical_event``'s text. Building that text is most of the cost of
# chaining, so this module spells it with ``ledger.canonical_text``, the template that
# ``verify_ledger`` uses too (the recorded_at spelling is shared by a batch, the data JSON is
# shared with the row). The ledger compares that template with ``canonical_event`` on sample events
# when it is imported (``CANONICAL_TEMPLATE``), and this module does again on the first event of
# every batch: if the ledger's canonical form ever changes, the bulk path falls back to calling
# ``canonical_event`` (slower), so that it never writes a hash the ledger would not.
_json = ledger.canonical_data
_iso = ledger.fast_iso
_template = ledger.canonical_text
CANONICAL_TEMPLATE = ledger.CANONICAL_TEMPLATE
NO_EVIDENCE = ("", "")  # no personal evidence: no digest, no salt
_TEXT_OR_NONE = (str, type(None))
# What the chain keeps of each collection point (``ledger.collection_point``), by the point as
# given: an import names a handful, a million times over.
_points: dict[str, str] = {}


def prepare(
    contact_id: int,
    contact: Mapping[str, Any],
    events: Sequence[Mapping[str, Any]],
    *,
    recorded_at: datetime,
    settings: rules.RuleSettings,
    check_template: bool = False,
    checked: set[tuple] | None = None,
) -> Prepared:
    """One contact's chain and projections, as ``services._append`` would leave them.

    ``contact`` is a full row (``contact_row``); events are appended in the order given.
    ``check_template`` compares the first event's canonical text with ``ledger.canonical_event``.
    A history of the shape a mailing list gives (``projections.fold_simple``) is folded directly;
    that fold is compared with the generic one for each outcome not yet in ``checked`` (which it
    is then added to), for every such history when ``checked`` is None.
    """
    chain_hash, template = ledger.chain_hash, CANONICAL_TEMPLATE
    canonical_json, iso = (_json, _iso) if template else (ledger.canonical_json, ledger.iso)
    prev = ledger.GENESIS
    rows: list[EventRow] = []
    # What the fold reads of each event: (type, occurred_at, seq, topic, channel, method, proof,
    # data).
    folded: list[tuple[str, datetime, int, str, str, str, str, dict[str, Any]]] = []
    evidence: list[tuple[int, str | None, str, dict[str, Any] | str, str]] = []
    last_recorded, recorded_iso = None, ""
    checked_evidence = False
    points = _points if len(_points) < 10_000 else {}
    for seq, e in enumerate(events, 1):
        get = e.get
        data = get("data") or {}
        ip, ua, details = get("ip_address"), get("user_agent") or "", get("details") or {}
        if not (ip or ua or details):
            digest, salt = NO_EVIDENCE
        elif template and type(ip) in _TEXT_OR_NONE and type(ua) is str and type(details) is dict:
            # The details spelt once, for the digest and for the evidence row alike.
            details_json = canonical_json(details)
            digest, salt = ledger.evidence_seal_text(ip, ua, details_json)
            if check_template and not checked_evidence:
                checked_evidence = True
                exact_digest = ledger.evidence_digest(ip, ua, details, salt=salt)
                if exact_digest != digest:
                    raise BulkError(
                        "the evidence digest of consents.bulk differs from "
                        f"ledger.evidence_digest: {digest!r} != {exact_digest!r}"
                    )
            evidence.append((seq - 1, ip, ua, details_json, salt))
        else:
            digest, salt = ledger.evidence_seal(ip, ua, details)
            evidence.append((seq - 1, ip, ua, details, salt))
        kind, topic, channel = e["type"], get("topic") or "", get("channel") or ""
        # As ``services._append``: a clock a little ahead (within the skew allowed) reads as now.
        occurred_at, method = min(e["occurred_at"], recorded_at), get("method") or ""
        actor = (get("actor") or "system")[:128]
        point = get("collection_point") or ""
        collection_point = points.get(point)
        if collection_point is None:
            collection_point = points[point] = ledger.collection_point(point)
        store_id, notice_id = get("store_id"), get("notice_id")
        proof = (get("proof") or "")[:500]
        at = get("recorded_at") or recorded_at
        data_json = canonical_json(data)
        if template:
            if at is not last_recorded:
                last_recorded, recorded_iso = at, iso(at)
            canonical = _template(
                contact_id, seq, kind, topic, channel, iso(occurred_at), recorded_iso, method,
                actor, collection_point, store_id, notice_id, proof, data_json, digest,
            )  # fmt: skip
        if not template or (check_template and seq == 1):
            exact = ledger.canonical_event(
                contact_id=contact_id, seq=seq, type=kind, topic=topic, channel=channel,
                occurred_at=occurred_at, recorded_at=at, method=method, actor=actor,
                collection_point=collection_point, store_id=store_id, notice_id=notice_id,
                proof=proof, data=data, evidence_digest=digest,
            )  # fmt: skip
            if template and exact != canonical:
                raise BulkError(
                    "the canonical form of consents.bulk differs from ledger.canonical_event: "
                    f"{canonical!r} != {exact!r}"
                )
            canonical = exact
        event_hash = chain_hash(prev, canonical)
        rows.append(
            EventRow(
                contact_id,
                seq,
                kind,
                topic,
                channel,
                occurred_at,
                at,
                method,
                actor,
                collection_point,
                store_id,
                notice_id,
                proof,
                data_json,
                digest,
                prev,
                event_hash,
            )
        )
        prev = event_hash
        folded.append((kind, occurred_at, seq, topic, channel, method, proof, data))
    quick = projections.fold_simple(folded, contact["collected_at"], contact["email"], settings)
    if quick is None:
        projection, state = _fold(contact, folded, settings)
    else:
        projection, state = quick[0], quick[1]
        if checked is None or quick[2] not in checked:
            if (projection, state) != _fold(contact, folded, settings):
                raise BulkError(
                    "the fold of projections.fold_simple differs from projections.Fold on "
                    f"contact {contact_id}: {quick!r}"
                )
            if checked is not None:
                checked.add(quick[2])
    return Prepared(
        contact=dict(contact), events=rows, evidence=evidence, projection=projection, fold=state
    )


def _fold(
    contact: Mapping[str, Any],
    folded: Sequence[tuple[str, datetime, int, str, str, str, str, dict[str, Any]]],
    settings: rules.RuleSettings,
) -> tuple[projections.Projection, str | None]:
    """The projection and the fold's state (canonical JSON text) of any history."""
    facts = [
        projections.fact_from_row(
            type=kind, occurred_at=occurred_at, seq=seq, topic=topic, channel=channel,
            method=method, proof=proof, data=data,
        )
        for kind, occurred_at, seq, topic, channel, method, proof, data in folded
    ]  # fmt: skip
    # person_from_contact reads attributes only: give it the row we are about to write.
    person = projections.person_from_contact(SimpleNamespace(**contact))  # type: ignore[arg-type]
    # The fold gives derive's projection (tests/consents/test_projections_incremental.py) for less,
    # and the state it leaves is the one the contact's next append starts from.
    try:
        fold = projections.Fold.of(facts, settings)
        return fold.projection(person), _json(fold.dump())
    except projections.Unfoldable:
        return projections.derive(person, facts, settings), None


def _check_after_anchor(
    where: str, events: Sequence[Mapping[str, Any]], now: datetime, anchored: datetime
) -> None:
    """The latest anchor signed the heads of everything recorded until its instant: an event
    recorded at or before it, loaded now, would make that anchor no longer match the ledger."""
    for j, e in enumerate(events):
        if (e.get("recorded_at") or now) <= anchored:
            raise BulkError(
                f"{where} event #{j + 1}, recorded_at: at or before the latest ledger anchor "
                f"({ledger.iso(anchored)}); an import is recorded when it is loaded"
            )


def _check_suppression(
    where: str, contact: Mapping[str, Any], events: Sequence[Mapping[str, Any]]
) -> None:
    """As ``services.consent_grant``: an address that opted out and was erased does not come back
    as consenting through an import, the API or the admin."""
    imported = any(
        e["type"] == EventType.OPT_IN and e.get("method") in SUPPRESSION_CHECKED_METHODS
        for e in events
    )
    if imported and address_is_suppressed(email=contact["email"], phone=contact["phone"]):
        raise BulkError(
            f"{where}, email: this address is on the suppression list: it opted out and was erased"
        )


def _suppression_events(contact: Mapping[str, Any]) -> list[dict[str, Any]]:
    """As ``services.suppression_record`` on a new contact: ``opt_out`` of ``*`` on each channel
    of a listed address, by the system, dated when the address was listed, before the rest."""
    wanted: dict[str, str] = {}
    if contact["email"]:
        wanted[suppression_digest("email", contact["email"])] = "email"
    if contact["phone"]:
        wanted[suppression_digest("phone", contact["phone"])] = "phone"
    if not wanted:
        return []
    listed = Suppression.objects.filter(digest__in=wanted).order_by("created_at", "pk")
    return [
        opt_out(
            ANY,
            channel,
            entry.created_at,
            method=Method.SUPPRESSION,
            actor="system",
            collection_point=SUPPRESSION_POINT,
        )
        for entry in listed
        for channel in SUPPRESSED_CHANNELS[wanted[entry.digest]]
    ]


# --- Writing with COPY ----------------------------------------------------------------------------


class _Table:
    """A projection table: its columns and, for each, where the value comes from."""

    def __init__(self, model: type[models.Model]) -> None:
        self.model = model
        self.fields = [
            f
            for f in model._meta.concrete_fields
            if not (f.primary_key and isinstance(f, AutoFieldMixin))
        ]
        self.names = frozenset(f.name for f in self.fields)
        self.columns = [f.column for f in self.fields]
        self.table = model._meta.db_table
        # Each row starts from the defaults, in column order; a dict's values go to their index.
        self._defaults = [f.get_default() for f in self.fields]
        self._index = {f.name: i for i, f in enumerate(self.fields)}
        self._contact = self._index.get("contact")

    def rows(self, contact_id: int, dicts: Iterable[Mapping[str, Any]]) -> Iterator[tuple]:
        index, contact = self._index, self._contact
        for d in dicts:
            values = self._defaults.copy()
            try:
                for name, value in d.items():
                    values[index[name]] = value
            except KeyError:
                extra = sorted(d.keys() - self.names)
                raise BulkError(
                    f"{self.table}: the projection has no column {extra[0]!r}"
                ) from None
            if contact is not None:
                values[contact] = contact_id
            yield tuple(values)


def _check_event_columns() -> None:
    columns = {f.column for f in Event._meta.concrete_fields}
    if columns != set(EVENT_COLUMNS):
        raise BulkError(
            "consents_event has changed; bulk.EVENT_COLUMNS must follow it: "
            f"{sorted(columns ^ set(EVENT_COLUMNS))}"
        )


@dataclass
class LoadStats:
    contacts: int = 0
    events: int = 0
    evidence: int = 0
    channel_states: int = 0
    consent_states: int = 0
    catalog_facts: int = 0
    batches: int = 0
    first_contact_id: int | None = None
    last_contact_id: int | None = None
    contact_ids: list[int] = field(default_factory=list)


def _batches(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def load(
    items: Iterable[tuple[Mapping[str, Any], Sequence[Mapping[str, Any]]]],
    *,
    batch_size: int = BATCH_CONTACTS,
    settings: rules.RuleSettings | None = None,
    validate: bool = True,
    keep_ids: bool = False,
    progress: Callable[[LoadStats], None] | None = None,
    on_batch: Callable[[list[int]], None] | None = None,
    emails_normalized: bool = False,
) -> LoadStats:
    """Import contacts with their histories; one transaction per ``batch_size`` contacts.

    Inside an ``atomic`` block each batch is a savepoint of it. A batch that fails (a duplicate
    email, a bad event) is rolled back whole and the error raised; earlier batches stay.
    ``keep_ids`` returns every new contact id in the stats (in input order). ``on_batch`` is
    called in each batch's transaction with the batch's new contact ids (in input order), for
    what must be written with them (an import's row records, its webhooks).
    ``emails_normalized``: every contact's email is already ``services.normalize_email``'s result
    (an import's mapping normalised and validated it), so it is not done twice.
    """
    connection.ensure_connection()
    if connection.vendor != "postgresql":
        raise BulkError(f"the bulk path needs PostgreSQL (COPY); this is {connection.vendor}")
    _check_event_columns()
    s = settings or rules.RuleSettings.from_django()
    checks = Checks.from_db() if validate else None
    tables = {
        "facts": _Table(ContactFacts),
        "channel_states": _Table(ChannelState),
        "consent_states": _Table(ConsentState),
        "catalog_facts": _Table(CatalogFact),
    }
    stats = LoadStats()
    offset = 0
    anchored = LedgerAnchor.objects.order_by("-at").values_list("at", flat=True).first()
    with collecting_less():
        for batch in _batches(items, batch_size):
            try:
                with transaction.atomic():
                    before = len(stats.contact_ids)
                    _load_batch(
                        batch, offset, s, checks, tables, stats, keep_ids or bool(on_batch),
                        anchored, emails_normalized,
                    )  # fmt: skip
                    if on_batch is not None:
                        on_batch(stats.contact_ids[before:])
                        if not keep_ids:
                            del stats.contact_ids[before:]
            except psycopg.Error as exc:
                raise BulkError(
                    f"contacts #{offset + 1} to #{offset + len(batch)} (rolled back): {exc}"
                ) from exc
            offset += len(batch)
            stats.batches += 1
            if progress is not None:
                progress(stats)
    return stats


def _load_part(
    part: Callable[[], Iterable[tuple[Mapping[str, Any], Sequence[Mapping[str, Any]]]]],
    options: dict[str, Any],
) -> LoadStats:
    connections.close_all()  # a forked child opens its own connection
    try:
        return load(part(), **options)
    finally:
        connections.close_all()


def load_parallel(
    parts: Sequence[Callable[[], Iterable[tuple[Mapping[str, Any], Sequence[Mapping[str, Any]]]]]],
    *,
    workers: int | None = None,
    part_options: Sequence[Mapping[str, Any]] | None = None,
    **options: Any,
) -> LoadStats:
    """``load`` over several parts at once, one process (and connection) per part at a time.

    Each part is a picklable callable returning that part's items (e.g. a ``functools.partial``
    reading one slice of a file). Chaining and projections are CPU-bound Python, so on a machine
    with spare cores this is how an import uses them; each part still commits batch by batch.
    Not inside an ``atomic`` block: the parts commit on their own connections.
    ``part_options``: options of ``load`` for each part (its ``on_batch``), over ``options``.
    """
    if connection.in_atomic_block:
        raise BulkError("load_parallel commits on other connections: call it outside atomic()")
    connection.ensure_connection()
    if connection.vendor != "postgresql":
        raise BulkError(f"the bulk path needs PostgreSQL (COPY); this is {connection.vendor}")
    connections.close_all()
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=workers or len(parts), mp_context=context) as pool:
        each = (
            [{**options, **extra} for extra in part_options]
            if part_options is not None
            else itertools.repeat(options)
        )
        results = list(pool.map(_load_part, parts, each))
    total = LoadStats()
    for stats in results:
        for name in (
            "contacts", "events", "evidence", "channel_states", "consent_states",
            "catalog_facts", "batches",
        ):  # fmt: skip
            setattr(total, name, getattr(total, name) + getattr(stats, name))
        total.contact_ids.extend(stats.contact_ids)
    firsts = [r.first_contact_id for r in results if r.first_contact_id is not None]
    lasts = [r.last_contact_id for r in results if r.last_contact_id is not None]
    total.first_contact_id = min(firsts, default=None)
    total.last_contact_id = max(lasts, default=None)
    return total


class _SpeltJson:
    """What ``_JsonbDumper`` is registered for on the loader's cursor (never made): the dumper is
    found by its type oid, which a binary ``COPY`` names for each column."""


class _JsonbDumper(Dumper):
    """A ``jsonb`` value in its binary form (``jsonb_recv``: a version byte, 1, then the text),
    from the canonical JSON text this module has already spelt (a dict is spelt here): psycopg's
    own dumper goes through two more calls of Python for each value, and the ledger's events,
    their evidence and the fold state are three or four values a row."""

    format = Format.BINARY
    oid = postgres.types["jsonb"].oid

    def dump(self, obj: Any) -> bytes:
        return b"\x01" + (obj if type(obj) is str else ledger.canonical_json(obj)).encode()


# PostgreSQL's binary form of an inet (``inet_recv``): family (2 for IPv4, 3 for IPv6), prefix
# length, not a CIDR, number of address bytes, then the address; what psycopg's dumper of an
# ``ipaddress`` object sends, without building the object.
_INET4, _INET6 = bytes((2, 32, 0, 4)), bytes((3, 128, 0, 16))
_BYTEA = 17  # the type oid psycopg dumps bytes as: as they are


def _inet(ip: Any) -> bytes:
    if type(ip) is str:
        try:
            return _INET4 + socket.inet_pton(socket.AF_INET, ip)
        except OSError:
            pass
        try:
            return _INET6 + socket.inet_pton(socket.AF_INET6, ip)
        except OSError:
            pass
    address = ipaddress.ip_address(ip)  # a zone index, an integer; raises on what is no address
    return (_INET4 if address.version == 4 else _INET6) + address.packed


@contextlib.contextmanager
def _copy(
    cursor: Any, table: str, columns: Sequence[str], sent_as: Mapping[str, int] | None = None
) -> Iterator[Any]:
    """``COPY table (columns) FROM STDIN (FORMAT BINARY)``: cheaper than text on both sides.
    ``sent_as``: columns whose values are dumped as another type (oid) than the column's."""
    types = copying.column_types(cursor, table, columns)
    if sent_as:
        types = [sent_as.get(column, oid) for column, oid in zip(columns, types, strict=True)]
    with copying.copy_in(cursor, table, columns, types) as copy:
        yield copy


def _load_batch(
    batch: list[tuple[Mapping[str, Any], Sequence[Mapping[str, Any]]]],
    offset: int,
    s: rules.RuleSettings,
    checks: Checks | None,
    tables: dict[str, _Table],
    stats: LoadStats,
    keep_ids: bool,
    anchored: datetime | None = None,
    emails_normalized: bool = False,
) -> None:
    now = clock.now()
    contacts = []
    for i, (fields, events) in enumerate(batch):
        where = f"contact #{offset + i + 1}"
        contacts.append(
            contact_row(
                fields, now=now, checks=checks, where=where, email_normalized=emails_normalized
            )
        )
        if checks is not None:
            for j, e in enumerate(events):
                _check_event(f"{where} event #{j + 1}", e, checks)
            if checks.suppressions:
                _check_suppression(where, contacts[-1], events)
                listed = _suppression_events(contacts[-1])
                if listed:
                    batch[i] = (fields, [*listed, *events])
        if anchored is not None:
            _check_after_anchor(where, events, now, anchored)
    pg = connection.connection
    contact_table, event_table = Contact._meta.db_table, Event._meta.db_table
    with pg.cursor() as cursor:
        cursor.adapters.register_dumper(_SpeltJson, _JsonbDumper)
        contact_ids = copying.reserve_ids(cursor, contact_table, len(batch))
        event_ids = iter(copying.reserve_ids(cursor, event_table, sum(len(e) for _, e in batch)))

        contact_columns = ["id", *(f.column for _, f in _CONTACT_FIELDS)]
        with _copy(cursor, contact_table, contact_columns) as copy:
            for contact_id, row in zip(contact_ids, contacts, strict=True):
                copy.write_row((contact_id, *row.values()))

        evidence_rows: list[tuple[Any, ...]] = []
        head_rows: list[tuple[int, int, str, datetime]] = []
        projection_rows: dict[str, list[tuple]] = {name: [] for name in tables}
        facts_t, channel_t = tables["facts"], tables["channel_states"]
        consent_t, catalog_t = tables["consent_states"], tables["catalog_facts"]
        facts_rows, channel_rows = projection_rows["facts"], projection_rows["channel_states"]
        consent_rows, catalog_rows = (
            projection_rows["consent_states"],
            projection_rows["catalog_facts"],
        )
        # The events stream to the server while the next contacts are chained and projected.
        with _copy(cursor, event_table, EVENT_COLUMNS) as copy:
            write_row = copy.write_row
            first = True
            # The outcomes of the direct fold compared with the generic one in this batch.
            checked: set[tuple] = set()
            for contact_id, row, (_, events) in zip(contact_ids, contacts, batch, strict=True):
                prepared = prepare(
                    contact_id, row, events, recorded_at=now, settings=s,
                    check_template=first, checked=checked,
                )  # fmt: skip
                first = False
                ids = [next(event_ids) for _ in prepared.events]
                for event_id, event in zip(ids, prepared.events, strict=True):
                    write_row((event_id, *event))
                for index, ip, ua, details, salt in prepared.evidence:
                    evidence_rows.append(
                        (ids[index], _inet(ip) if ip else None, ua, details, salt, None)
                    )
                if prepared.events:
                    end = prepared.events[-1]
                    head_rows.append((contact_id, end.seq, end.hash, end.recorded_at))
                p = prepared.projection
                facts_rows.extend(facts_t.rows(contact_id, ({**p.facts, "fold": prepared.fold},)))
                if p.channel_states:
                    channel_rows.extend(channel_t.rows(contact_id, p.channel_states))
                if p.consent_states:
                    consent_rows.extend(consent_t.rows(contact_id, p.consent_states))
                if p.catalog_facts:
                    catalog_rows.extend(catalog_t.rows(contact_id, p.catalog_facts))
                stats.events += len(prepared.events)

        if evidence_rows:
            evidence_columns = [
                "event_id", "ip_address", "user_agent", "details", "salt", "erased_at",
            ]  # fmt: skip
            # ip_address: the inet's binary form, already spelt (``_inet``), sent as bytes.
            with _copy(
                cursor, Evidence._meta.db_table, evidence_columns, {"ip_address": _BYTEA}
            ) as copy:
                for evidence_row in evidence_rows:
                    copy.write_row(evidence_row)
        # Each chain's head, in the batch's transaction, as ``services._append`` records it.
        if head_rows:
            head_columns = ["contact_id", "seq", "hash", "recorded_at"]
            with _copy(cursor, ChainHead._meta.db_table, head_columns) as copy:
                for head_row in head_rows:
                    copy.write_row(head_row)
        for name, table in tables.items():
            rows = projection_rows[name]
            if not rows:
                continue
            with _copy(cursor, table.table, table.columns) as copy:
                for projection_row in rows:
                    copy.write_row(projection_row)

    stats.contacts += len(batch)
    stats.evidence += len(evidence_rows)
    stats.channel_states += len(projection_rows["channel_states"])
    stats.consent_states += len(projection_rows["consent_states"])
    stats.catalog_facts += len(projection_rows["catalog_facts"])
    if contact_ids:
        if stats.first_contact_id is None:
            stats.first_contact_id = contact_ids[0]
        stats.last_contact_id = contact_ids[-1]
    if keep_ids:
        stats.contact_ids.extend(contact_ids)
