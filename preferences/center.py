"""The preference center: what a person sees of their own choices, and the changes they make.

Reads load the person's whole history once and ask ``rules.decide`` per topic x channel, so that
the page costs a constant number of queries whatever the number of topics. Writes are keyword-only
functions, one transaction each, that call ``consents.services`` for every ledger fact; they lock
the contact first and compare the form with the state *at that moment*, so that two tabs saving
one after the other both land, in order, and the later one wins.

The way in (links, sessions) and the person's copy of their data are in ``preferences.access``;
the page's words, from this state, in ``preferences.presenters``.
"""

from __future__ import annotations

import calendar
import collections
import enum
import functools
import itertools
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import CharField, Func, QuerySet

from consents import catalogue, clock, rules, services, statements
from consents.models import ConsentState, Contact, ContactFacts, Event, Notice, Topic
from consents.projections import (
    Fold,
    fact_from_event,
    fact_from_row,
    key_later,
    micros,
    person_from_contact,
)
from consents.vocab import ANY, Channel, ContactKind, Doi, EventType, Method, Purpose, Reason
from preferences.services import notices_for, signup_pending_create, unsubscribe_all

COLLECTION_POINT = "preference center"
PAUSE_MONTHS = (1, 3)
# Channels whose opt-in from the preference center needs the owner of the address to confirm.
CONFIRMED_CHANNELS = (Channel.EMAIL,)
STATUS = ConsentState.Status
# What the person said on a box themselves: no other legal basis is asked about it.
_SAID = frozenset({STATUS.OPTED_IN, STATUS.OPTED_OUT})


# --- Reading ------------------------------------------------------------------------------------


@dataclass
class Cell:
    """One topic on one channel, as the page shows it."""

    topic: Topic
    channel: str
    status: str
    since: datetime | None
    has_address: bool
    # The legal basis that lets us send without consent (RULES.md step 9), if any.
    covered_by: str | None = None

    @property
    def value(self) -> str:
        return f"{self.topic.slug}:{self.channel}"

    @property
    def dom_id(self) -> str:
        return f"cell-{self.topic.slug}-{self.channel}"

    @property
    def receiving(self) -> bool:
        """What the box shows ticked: the person gets (or asked for) these messages."""
        return self.status in (STATUS.OPTED_IN, STATUS.PENDING) or self.covered_by is not None

    @property
    def state(self) -> str:
        """``covered`` or a ``ConsentState.Status`` value."""
        if self.covered_by is not None and self.status not in (STATUS.OPTED_IN, STATUS.PENDING):
            return "covered"
        return self.status


@dataclass
class TopicView:
    topic: Topic
    notice: Notice | None
    cells: list[Cell]
    frequency: str

    @property
    def receiving(self) -> bool:
        return any(c.receiving for c in self.cells)


@dataclass
class CenterState:
    contact: Contact
    topics: list[TopicView]
    history: list[PastEvent]  # newest first
    topic_names: dict[str, Topic]
    # The catalogue the page was read from (what is drawn from it alone is kept with it).
    snapshot: catalogue.Snapshot | None = None
    # The history in the rules' order (``ordered``), the part of it already true (``ordered_now``),
    # as of ``now``, under ``settings``: what the three answers below are read from. They are
    # worked out when first asked: the page shows all three, a save reads at most one.
    ordered: list[rules.Fact] = field(default_factory=list, repr=False)
    ordered_now: list[rules.Fact] = field(default_factory=list, repr=False)
    now: datetime | None = None
    settings: rules.RuleSettings = field(default_factory=rules.RuleSettings, repr=False)

    @functools.cached_property
    def pause_until(self) -> datetime | None:
        """The end of the pause of every channel still to come, if any."""
        pause = next(
            (
                f
                for f in reversed(self.ordered_now)
                if f.type == EventType.PAUSE and f.channel == ANY
            ),
            None,
        )
        if pause is None or pause.until is None or self.now is None or pause.until <= self.now:
            return None
        return pause.until

    @functools.cached_property
    def unsubscribed_all(self) -> bool:
        return rules.unsubscribed_from_everything(self.ordered_now, self.settings)

    @functools.cached_property
    def confirmed_email_topics(self) -> set[str]:
        """Topics the person once validly consented to by email: saying yes again needs no
        email."""
        h, s = self.ordered, self.settings
        return {
            h[i].topic
            for i in range(len(h))
            if h[i].type == EventType.OPT_IN
            and h[i].channel == Channel.EMAIL
            and h[i].topic
            and rules.is_valid_opt_in(h, i, s)
        }

    @property
    def changes_at(self) -> list[datetime | None]:
        """The instants at which this page changes by itself, with no new event: the pause's
        end, the retention expiry (nothing is covered any more), a callback request's end, and
        any event dated in the future (imports) taking effect."""
        facts = getattr(self.contact, "facts", None)
        instants = [self.pause_until]
        if facts is not None:
            instants += [facts.expires_at, facts.callback_until]
        instants += [e.occurred_at for e in self.history]
        return instants

    def cell(self, slug: str, channel: str) -> Cell | None:
        for view in self.topics:
            if view.topic.slug == slug:
                return next((c for c in view.cells if c.channel == channel), None)
        return None

    def topic(self, slug: str) -> TopicView | None:
        return next((v for v in self.topics if v.topic.slug == slug), None)


class _Bases:
    """Answers "may we send this topic on this channel without consent?" for one person.

    ``decide`` only looks at a topic through the events that name it on the channel asked about
    (or on every channel: ``rules.pair_state`` over ``Decider.on``): topics with no such event,
    of the same purpose, get the same answer on that channel, so it is asked once. A page of 60
    boxes asks a few questions (``tests/preferences/test_center_bases.py``: the same answers as
    each box asked on its own).
    """

    def __init__(
        self, person: rules.Person, h: list[rules.Fact], now: datetime, s: rules.RuleSettings
    ) -> None:
        self.h = h
        self.person, self.now, self.s = person, now, s
        # What the answers share (the history in order, the retention expiry...) worked out once.
        # Asked outside the pauses, which the page shows on their own: a pause still keeps the
        # person's data as any act of theirs does.
        self.decider = rules.Decider(person, h, now, settings=s, in_order=True, pauses=False)
        # Per channel, the topics named by an event on it or on every channel.
        self.own: dict[str, set[str]] = {}
        # A topic names no product category: for a customer, ask once per category bought,
        # since the soft opt-in only covers analogous products.
        self.categories: list[str | None] = [None] + sorted(
            {
                f.category
                for f in self.h
                if f.type in (EventType.PURCHASE, EventType.CONTRACT_START) and f.category
            }
        )
        self.answers: dict[tuple[str, str, str], str | None] = {}

    def covered_by(self, topic: Topic, channel: str) -> str | None:
        own = self.own.get(channel)
        if own is None:
            own = self.own[channel] = {
                f.topic
                for f in self.h
                if f.topic and f.topic != ANY and f.channel in (channel, ANY)
            }
        key = (topic.slug if topic.slug in own else "", topic.purpose, channel)
        if key not in self.answers:
            self.answers[key] = self._ask(topic, channel)
        return self.answers[key]

    def _ask(self, topic: Topic, channel: str) -> str | None:
        for category in self.categories:
            message = rules.Message(
                channel=channel, purpose=topic.purpose, topic=topic.slug, category=category
            )
            decision = self.decider.decide(message)
            if decision.allowed:
                return None if decision.reason == Reason.OPT_IN else decision.reason
            if decision.reason not in (Reason.NOT_ANALOGOUS, Reason.NO_CONSENT):
                return None
        return None


# A drawing reads the fold state (``_FoldBases``) for a history this long or longer; a shorter
# one costs less to walk than the state costs to read and decode. A save has the state already.
FOLD_FROM_EVENTS = 64


def _fold(stored: Any, s: rules.RuleSettings) -> Fold | None:
    """The fold state as read (the database's JSON text, decoded here as the ORM decodes it, or
    decoded already), if this code and these settings wrote it."""
    if isinstance(stored, str):
        stored = ContactFacts._meta.get_field("fold").from_db_value(stored, None, connection)
    return Fold.load(stored, s)


class _FoldBases:
    """``_Bases``'s answers read from the person's fold state (``projections.Fold``, stored with
    their projections and updated at each append) instead of their history: the same questions,
    in a time that does not grow with the history. Only for a state that holds every event of
    the history and none later than ``now`` (``usable``); ``_Bases`` answers otherwise.
    ``tests/preferences/test_center_bases.py`` holds the two to the same answers on random
    histories.

    What ``_Bases`` asks of ``rules.decide`` (a marketing purpose, no product, no professions,
    no catalogue: a category is its own family, outside any pause) comes down to: nothing when
    the data has expired, the email is undeliverable or the person opted out (but for a phone
    call they asked for since), nor when they consented; else the first of steps 9.1 to 9.5
    that applies to the message without a category, then to one with a category they bought,
    unless step 10 stops at a reason other than "no consent" or "not analogous".
    """

    def __init__(
        self, person: rules.Person, fold: Fold, now: datetime, s: rules.RuleSettings
    ) -> None:
        self.person, self.fold, self.s = person, fold, s
        self.now_us = micros(now)
        expiry = fold.facts(person)["expires_at"]
        self.expired = expiry is not None and now >= expiry
        callback = fold.callback
        validity_us = s.callback_validity // timedelta(microseconds=1)
        self.callback_valid = callback is not None and self.now_us - callback[0] <= validity_us
        starts = [start for group in fold.active.values() for start in group]
        categories = {category for category, _ in fold.purchases}
        categories |= {category for category, _ in fold.ended}
        categories |= {start[0] for start in starts}
        self.bought = bool(categories - {""})
        self.contract_category = any(start[0] for start in starts)
        self.professional = person.kind == ContactKind.PROFESSIONAL
        self.answers: dict[tuple[str, str, str], str | None] = {}

    @staticmethod
    def usable(fold: Fold | None, last_seq: int, now: datetime) -> bool:
        """Does ``fold`` hold the history up to event ``last_seq``, and nothing after ``now``?"""
        if fold is None or fold.last_seq != last_seq:
            return False
        return fold.last is None or fold.last[0] <= micros(now)

    def covered_by(self, topic: Topic, channel: str) -> str | None:
        key = (topic.slug, topic.purpose, channel)
        if key not in self.answers:
            self.answers[key] = self._ask(topic.slug, topic.purpose, channel)
        return self.answers[key]

    def _ask(self, topic: str, purpose: str, channel: str) -> str | None:
        person, fold = self.person, self.fold
        if rules.address_for(person, channel) is None:
            return None  # step 1
        if self.expired or (channel == Channel.EMAIL and fold.undeliverable):
            return None  # steps 2 and 3
        out, since = fold.pair(topic, channel)
        promotion = purpose == Purpose.PROMOTION
        if out is not None:  # step 6, and its exception
            callback = fold.callback
            lifted = (
                channel == Channel.PHONE
                and promotion
                and callback is not None
                and key_later(callback, out)
                and self.callback_valid
            )
            return Reason.CALLBACK_REQUESTED if lifted else None
        if "cons" in since:
            return None  # step 8: consent, not another basis
        informed, professional = person.informed_at_collection, self.professional
        if (
            professional
            and channel == Channel.EMAIL
            and rules.is_generic_address(person.email, self.s)
        ):
            return Reason.GENERIC_ADDRESS  # 9.1
        if channel == Channel.POSTAL and informed:
            return Reason.LEGITIMATE_INTEREST  # 9.2
        phone_promotion = channel == Channel.PHONE and promotion
        if phone_promotion and self.callback_valid:
            return Reason.CALLBACK_REQUESTED  # 9.4, whatever the category
        # Step 10 for the message without a category: only its last two reasons ask further.
        opt_in = since.get("oi")
        if opt_in is not None and ((opt_in[2] and not opt_in[4]) or not opt_in[3]):
            return None  # pending or invalid consent
        customer = fold.customer
        soft_path = not professional and channel in (Channel.EMAIL, Channel.SMS) and promotion
        if not informed and (channel == Channel.POSTAL or professional or (soft_path and customer)):
            return None
        if professional and informed:
            return None
        # Then once per category bought: a contract in progress of that category (9.4), or the
        # soft opt-in, every category bought being analogous to itself (9.5).
        if phone_promotion and not professional and self.contract_category:
            return Reason.CONTRACT_IN_PROGRESS
        if soft_path and customer and informed and self.bought:
            return Reason.SOFT_OPT_IN
        return None


@dataclass(frozen=True, slots=True)
class ShownNotice:
    """The wording an event of the history carries, as the page shows it."""

    version: int
    text: str


@dataclass(frozen=True, slots=True)
class PastEvent:
    """One event of the person's history, with what the page reads of it (the attributes of
    ``Event`` it uses): a row, no model built."""

    seq: int
    type: str
    topic: str
    channel: str
    occurred_at: datetime
    method: str
    proof: str
    data: dict[str, Any]
    notice: ShownNotice | None

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> PastEvent:
        *fields, version, text = row
        notice = ShownNotice(version, text) if version is not None else None
        return cls(*fields, notice=notice)


# The page's two reads of the person, spelt into SQL once per process (with the fields'
# converters): building them through the ORM on each read cost more than running them.
class _SinceText(Func):
    """``ConsentState.since`` as text (UTC, with its microseconds), read back by ``_since``:
    the database driver reads a ``timestamptz`` in Python, ten times slower, and a page reads
    one per box the person said something about. SQLite keeps it as such a text already."""

    output_field = CharField()
    template = "CAST(%(expressions)s AS TEXT)"

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        template = "to_char(%(expressions)s AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US')"
        return self.as_sql(compiler, connection, template=template, **extra)


def _since(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text).replace(tzinfo=UTC) if text else None


_QUERIES: dict[str, Callable[[], QuerySet[Any]]] = {
    "states": lambda: (
        ConsentState.objects.filter(contact_id=0)
        .annotate(since_text=_SinceText("since"))
        .values_list("topic", "channel", "status", "since_text", "frequency")
    ),
    # The projections' fold state (``_FoldBases``), decoded by the field's converter.
    "fold": lambda: ContactFacts.objects.filter(contact_id=0).values_list("fold"),
    # From one event on (``seq >=``): the history this process already holds is not read again.
    "history": lambda: (
        Event.objects.filter(contact_id=0, seq__gte=0)
        .order_by("seq")
        .values_list(
            "seq",
            "type",
            "topic",
            "channel",
            "occurred_at",
            "method",
            "proof",
            "data",
            "notice__version",
            "notice__text",
            "hash",
        )
    ),
}


@functools.cache
def _spelt(name: str) -> statements.Read:
    read = statements.spelt(_QUERIES[name]())
    # The contact's id (and the first event's number), nothing else.
    assert read.params == ([0, 0] if name == "history" else [0]), read.params
    return read


def _rows(name: str, *params: int) -> statements.Pending:
    """The rows of one of ``_QUERIES`` for a contact, converted as the ORM converts them, asked
    for with what else is queued (``statements.together``)."""
    return statements.rows(_spelt(name), list(params), later=True, prepare=True)


@dataclass(frozen=True)
class _Kept:
    """A person's history up to one event, as read and parsed: the page's events and the facts
    the rules read, in the ledger's order, and those facts in time order (``rules.ordered``)."""

    seq: int
    hash: str
    events: list[PastEvent]
    facts: list[rules.Fact]
    ordered: list[rules.Fact]

    def then(self, rows: Sequence[Sequence[Any]]) -> _Kept:
        """This history with the events of ``rows`` (the next ones, in the ledger's order)."""
        events, facts = _parsed(rows)
        if _in_time_order(self.ordered[-1:] + facts):
            ordered = self.ordered + facts  # the usual case: each new fact is the latest
        else:
            ordered = rules.ordered(self.facts + facts)
        return _Kept(rows[-1][0], rows[-1][-1], self.events + events, self.facts + facts, ordered)


def _in_time_order(facts: list[rules.Fact]) -> bool:
    """Is each fact later than the one before (``rules.later``)?"""
    return all(rules.later(b, a) for a, b in itertools.pairwise(facts))


class _Histories:
    """Each person's history as this process last read it. The ledger only grows: the next read
    asks for the events from the last one kept, and that event's hash (the chain's) says whether
    what is kept is still the ledger's (a rolled back write, a contact deleted: read whole
    again). A person who saves again and again no longer costs a read and a parse of their whole
    history each time. At most ``MAX_EVENTS`` events kept, the least recently read forgotten."""

    MAX_EVENTS = 200_000

    def __init__(self) -> None:
        self._kept: collections.OrderedDict[int, _Kept] = collections.OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, contact_id: int) -> _Kept | None:
        with self._lock:
            return self._kept.get(contact_id)

    def put(self, contact_id: int, kept: _Kept) -> None:
        with self._lock:
            old = self._kept.pop(contact_id, None)
            self._size += len(kept.events) - (len(old.events) if old is not None else 0)
            self._kept[contact_id] = kept
            while self._size > self.MAX_EVENTS and self._kept:
                _, dropped = self._kept.popitem(last=False)
                self._size -= len(dropped.events)

    def clear(self) -> None:
        with self._lock:
            self._kept.clear()
            self._size = 0


HISTORIES = _Histories()


def _parsed(rows: Sequence[Sequence[Any]]) -> tuple[list[PastEvent], list[rules.Fact]]:
    events = [PastEvent.from_row(row[:-1]) for row in rows]
    facts = [
        fact_from_row(
            type=e.type,
            occurred_at=e.occurred_at,
            seq=e.seq,
            topic=e.topic,
            channel=e.channel,
            method=e.method,
            proof=e.proof,
            data=e.data,
        )
        for e in events
    ]
    return events, facts


def _history(contact_id: int, asked: statements.Pending, kept: _Kept | None) -> _Kept | None:
    """The person's whole history: ``asked`` (read from ``kept``'s last event on) added to what
    was kept, or read whole again when that event is no longer the ledger's."""
    rows = asked.result
    if kept is not None:
        if rows and rows[0][0] == kept.seq and rows[0][-1] == kept.hash:
            rows = rows[1:]
            if not rows:
                return kept
            found = kept.then(rows)
            HISTORIES.put(contact_id, found)
            return found
        rows = _rows("history", contact_id, 0).result
    if not rows:
        return None
    events, facts = _parsed(rows)
    found = _Kept(rows[-1][0], rows[-1][-1], events, facts, rules.ordered(facts))
    HISTORIES.put(contact_id, found)
    return found


def center_state(
    *,
    contact: Contact,
    language: str,
    locked: statements.Pending | None = None,
    chain_end: statements.Pending | None = None,
) -> CenterState:
    """Everything the page shows, in a constant number of queries: one round trip (with the
    contact's row lock when ``locked`` is that read, queued: the state is then that contact's;
    and with the chain's end when ``chain_end`` is ``services.chain_end_later``'s read, whose
    fold state then answers for the boxes, as it does for a long history this process holds:
    ``_FoldBases``)."""
    now = clock.now()
    s = rules.RuleSettings.from_django()
    snapshot = catalogue.snapshot()
    all_topics = dict(snapshot.by_slug)
    active = [t for t in all_topics.values() if t.active]
    kept = HISTORIES.get(contact.pk)
    with statements.reads_together():
        asked = _rows("states", contact.pk), _rows("history", contact.pk, kept.seq if kept else 0)
        stored: statements.Pending | None = None
        if chain_end is not None:
            stored = statements.Pending.then(chain_end, lambda rows: rows[0][4] if rows else None)
        elif kept is not None and len(kept.facts) >= FOLD_FROM_EVENTS:
            stored = statements.Pending.then(
                _rows("fold", contact.pk), lambda rows: rows[0][0] if rows else None
            )
        if locked is not None:
            found = locked.result
            if not found:
                raise Contact.DoesNotExist(f"No contact {contact.pk}.")
            contact = found[0]
        # (status, since, frequency) per (topic, channel).
        states = {(row[0], row[1]): (row[2], _since(row[3]), row[4]) for row in asked[0].result}
        history = _history(contact.pk, asked[1], kept)
        fold = _fold(stored.result, s) if stored is not None else None
    events = history.events if history is not None else []
    notices = notices_for(active, language, snapshot)
    h = history.ordered if history is not None else []
    # In time order: when the latest fact has happened, they all have.
    h_now = h if not h or h[-1].at <= now else [f for f in h if f.at <= now]
    person = person_from_contact(contact)
    bases: _Bases | _FoldBases
    if _FoldBases.usable(fold, history.seq if history is not None else 0, now):
        assert fold is not None
        bases = _FoldBases(person, fold, now, s)
    else:
        bases = _Bases(person, h_now, now, s)
    views = []
    addressed: dict[str, bool] = {}  # per channel: an address for it
    for topic in active:
        cells = []
        frequency = ""
        for channel in topic.channels:
            state = states.get((topic.slug, channel))
            frequency = frequency or (state[2] if state else "")
            has_address = addressed.get(channel)
            if has_address is None:
                has_address = addressed[channel] = rules.address_for(person, channel) is not None
            # (topic, channel, status, since, has_address): a page has dozens of boxes, and a
            # dataclass's keywords cost twice its positions.
            cell = Cell(
                topic,
                channel,
                state[0] if state else STATUS.NONE,
                state[1] if state else None,
                has_address,
            )
            if has_address and cell.status not in _SAID:
                cell.covered_by = bases.covered_by(topic, channel)
            cells.append(cell)
        # The frequency the page shows chosen: the one recorded, else the topic's first.
        frequency = frequency or (topic.frequencies[0] if topic.frequencies else "")
        views.append(TopicView(topic, notices[topic.slug], cells, frequency))

    return CenterState(
        contact=contact,
        topics=views,
        history=list(reversed(events)),
        topic_names=all_topics,
        snapshot=snapshot,
        ordered=h,
        ordered_now=h_now,
        now=now,
        settings=s,
    )


# --- Writing ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """Who is asking, from where: the evidence every event of the page carries."""

    ip_address: str | None = None
    user_agent: str = ""
    collection_point: str = COLLECTION_POINT
    # The digest of the emailed link that opened the page: it proves control of the address it
    # went to, so a "yes" by email given here needs no confirmation email.
    link_digest: str = ""
    # How the person acted: on this page, or from the unsubscribe link of an email.
    method: str = Method.PREFERENCE_CENTER

    def proof(
        self, notice: Notice | None = None, *, address_proven: bool = False
    ) -> services.Proof:
        details = (
            {"address_proven_by": "preferences_link", "link_sha256": self.link_digest}
            if address_proven and self.link_digest
            else {}
        )
        return services.Proof(
            method=self.method,
            actor="person",
            collection_point=self.collection_point[:500],
            notice=notice,
            ip_address=self.ip_address,
            user_agent=self.user_agent[:1000],
            details=details,
        )


class ChangeKind(enum.StrEnum):
    SUBSCRIBED = "subscribed"
    PENDING = "pending"  # subscribed, waiting for the email confirmation
    UNSUBSCRIBED = "unsubscribed"
    FREQUENCY = "frequency"


@dataclass(frozen=True)
class Change:
    kind: ChangeKind
    topic: str
    channel: str = ""
    frequency: str = ""

    def as_dict(self) -> dict[str, str]:
        return {
            "kind": self.kind.value,
            "topic": self.topic,
            "channel": self.channel,
            "frequency": self.frequency,
        }


def _lock(contact: Contact) -> Contact:
    # Serialises the saves of one person (two tabs): the second reads the state the first left.
    return Contact.objects.select_for_update().get(pk=contact.pk)


def _lock_later(contact: Contact) -> statements.Pending:
    """``_lock``, queued: sent with the state's reads (``center_state``'s ``locked``)."""
    return statements.select(Contact, "id = %s", [contact.pk], later=True, for_update=True)


@transaction.atomic
@statements.together()
def preferences_save(
    *,
    contact: Contact,
    shown: Collection[tuple[str, str]],
    wanted: Collection[tuple[str, str]],
    frequencies: Mapping[str, str],
    notices: Mapping[str, Notice | None],
    language: str,
    request: Request,
) -> list[Change]:
    """Record what changed between the boxes ticked and the ledger's state, nothing else.

    ``shown`` are the (topic, channel) boxes the page showed, ``wanted`` those ticked; a box not
    shown is left alone. ``notices`` is the wording shown per topic. The form has checked that
    every pair and frequency is offered; the services check again.

    Its statements are sent together (``statements.together``): the row lock, the state's reads
    and the chain's end in one round trip, then the writes (a change after the first reads the
    chain's end again).
    """
    lock = _lock_later(contact)
    chain_end = services.chain_end_later(contact.pk)  # after the lock, for the first change
    state = center_state(contact=contact, language=language, locked=lock, chain_end=chain_end)
    locked = state.contact
    services.chain_end_asked(locked, chain_end)
    now = clock.now()
    wanted_set, shown_set = set(wanted), set(shown)
    changes: list[Change] = []
    pending: list[dict[str, object]] = []
    granted_topics: set[str] = set()
    for slug, channel in dict.fromkeys(shown):
        cell = state.cell(slug, channel)
        if cell is None or not cell.has_address:
            continue
        yes = (slug, channel) in wanted_set
        if yes == cell.receiving:
            continue
        view = state.topic(slug)
        assert view is not None
        notice = notices.get(slug, view.notice)
        if yes:
            # A link delivered to the mailbox opened this page: the address is proven, the yes
            # applies at once. Only an address nobody proved needs a confirmation email.
            proven = channel in CONFIRMED_CHANNELS and bool(request.link_digest)
            needs_confirmation = (
                channel in CONFIRMED_CHANNELS
                and not proven
                and slug not in state.confirmed_email_topics
            )
            frequency = frequencies.get(slug) or view.frequency
            event = services.consent_grant(
                contact=locked,
                topic=slug,
                channel=channel,
                proof=request.proof(notice, address_proven=proven),
                doi=Doi.PENDING if needs_confirmation else Doi.NONE,
                frequency=frequency if frequency in view.topic.frequencies else "",
                occurred_at=now,
                lock_held=True,  # ``_lock`` above
            )
            granted_topics.add(slug)
            if needs_confirmation:
                pending.append({"topic": slug, "channel": channel, "event": event.pk})
                changes.append(Change(ChangeKind.PENDING, slug, channel))
            else:
                changes.append(Change(ChangeKind.SUBSCRIBED, slug, channel))
        else:
            services.consent_withdraw(
                contact=locked,
                topic=slug,
                channel=channel,
                proof=request.proof(),
                lock_held=True,
            )
            changes.append(Change(ChangeKind.UNSUBSCRIBED, slug, channel))

    for slug, frequency in frequencies.items():
        view = state.topic(slug)
        if view is None or not frequency or frequency == view.frequency:
            continue
        if slug in granted_topics:
            changes.append(Change(ChangeKind.FREQUENCY, slug, frequency=frequency))
            continue
        # A new frequency is a new "yes" with it, on a channel the person still receives.
        still = [
            c
            for c in view.cells
            if c.has_address
            and c.status in (STATUS.OPTED_IN, STATUS.PENDING)
            and ((slug, c.channel) in wanted_set or (slug, c.channel) not in shown_set)
        ]
        if not still:
            continue
        cell = next((c for c in still if c.status == STATUS.OPTED_IN), still[0])
        services.consent_grant(
            contact=locked,
            topic=slug,
            channel=cell.channel,
            proof=request.proof(notices.get(slug, view.notice)),
            doi=Doi.PENDING if cell.status == STATUS.PENDING else Doi.NONE,
            frequency=frequency,
            renewal=True,  # the same subscription, at another pace: no new subscriber
            occurred_at=now,
            lock_held=True,
        )
        changes.append(Change(ChangeKind.FREQUENCY, slug, frequency=frequency))

    if pending:
        _send_confirmation(contact=locked, choices=pending, language=language, now=now)
    return changes


def _send_confirmation(
    *, contact: Contact, choices: list[dict[str, object]], language: str, now: datetime
) -> None:
    """The double opt-in email, exactly as the sign-up form sends it."""
    signup_pending_create(
        contact=contact,
        choices=choices,
        language=language,
        first_name=contact.first_name,
        phone=contact.phone,
        source="preference-center",
        now=now,
    )


def add_months(at: datetime, months: int) -> datetime:
    """The same day ``months`` later; the month's last day when it has no such day."""
    month = at.month - 1 + months
    year, month = at.year + month // 12, month % 12 + 1
    day = min(at.day, calendar.monthrange(year, month)[1])
    return at.replace(year=year, month=month, day=day)


@transaction.atomic
def preferences_pause(*, contact: Contact, months: int, request: Request) -> datetime:
    """Pause all marketing, on every channel, for ``months`` months; returns the end."""
    if months not in PAUSE_MONTHS:
        raise ValueError(f"A pause lasts {PAUSE_MONTHS} months, not {months}.")
    locked = _lock(contact)
    now = clock.now()
    until = add_months(now, months)
    services.marketing_pause(
        contact=locked, channel=ANY, until=until, proof=request.proof(), occurred_at=now
    )
    return until


@transaction.atomic
def preferences_phone(*, contact: Contact, phone: str, request: Request) -> str:
    """The person's mobile number, added or changed from the page: "added", "changed",
    "removed" or "same". A new number arrives with no consent: what was said for the old one is
    the old number's (``address_changed``), and a number on the suppression list stays out."""
    locked = _lock(contact)
    number = services.normalize_phone(phone) if phone.strip() else ""
    if number == locked.phone:
        return "same"
    if not locked.phone or not number:
        services.contact_update_details(contact=locked, phone=number)
        return "added" if number else "removed"
    # What the person said yes to on the old number is not a yes for the new one: each is
    # withdrawn, and the page asks them to tick again what they want on the new number.
    received = ConsentState.objects.filter(
        contact=locked,
        channel__in=(Channel.SMS, Channel.PHONE),
        status__in=(STATUS.OPTED_IN, STATUS.PENDING),
    ).values_list("topic", "channel")
    for topic, channel in list(received):
        proof = request.proof()
        proof.details["reason"] = "number_changed"
        services.consent_withdraw(contact=locked, topic=topic, channel=channel, proof=proof)
    services.contact_phone_change(contact=locked, new_phone=number, proof=request.proof())
    return "changed"


@transaction.atomic
def preferences_postal_address(*, contact: Contact, postal_address: str, request: Request) -> str:
    """The person's postal address, from the page: "saved" or "same"."""
    locked = _lock(contact)
    before = locked.postal_address
    after = services.contact_postal_address_set(
        contact=locked, postal_address=postal_address, proof=request.proof()
    )
    return "same" if after.postal_address == before else "saved"


@transaction.atomic
def preferences_resume(*, contact: Contact, request: Request) -> bool:
    """End the pause now; False (nothing written) when no pause is running."""
    locked = _lock(contact)
    now = clock.now()
    until = rules.pause_until(
        rules.ordered(
            (
                fact_from_event(e)
                for e in Event.objects.filter(contact=locked, type=EventType.PAUSE, channel=ANY)
            ),
            now,
        ),
        ANY,
    )
    if until is None or until <= now:
        return False
    services.marketing_resume(contact=locked, channel=ANY, proof=request.proof(), occurred_at=now)
    return True


def is_resume(event: Event | PastEvent) -> bool:
    """A pause that ended when it began: ``marketing_resume`` (and, before it existed, a pause of
    one microsecond)."""
    if event.type != EventType.PAUSE:
        return False
    if event.data.get("resume") is True:
        return True
    until = event.data.get("until")
    if not isinstance(until, str):
        return False
    end = datetime.fromisoformat(until.replace("Z", "+00:00"))
    return end - event.occurred_at <= timedelta(seconds=1)


def preferences_unsubscribe_all(*, contact: Contact, request: Request) -> bool:
    return unsubscribe_all(
        contact=contact,
        method=Method.PREFERENCE_CENTER,
        ip_address=request.ip_address,
        user_agent=request.user_agent,
        collection_point=request.collection_point,
    )


@transaction.atomic
def preferences_language(*, contact: Contact, language: str) -> Contact:
    return services.contact_update_details(contact=contact, locale=language)
