"""The contactability engine: RULES.md, step by step.

``decide`` is a pure function of facts: a person, their history, a message and an instant. Nothing
here reads the database; ``consents.projections`` and the case-book runner adapt models to these
types. The history helpers below are also what the projections are computed from, so that the
set-based audience query (``consents.audience``) only has to compare stored facts and instants.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from consents import rule_defaults
from consents.vocab import (
    ANY,
    CHANNELS,
    METHODS_NEEDING_PROOF,
    PURPOSES,
    Channel,
    ContactKind,
    Doi,
    EventType,
    InteractionKind,
    Method,
    Purpose,
    Reason,
)

# --- Inputs -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Person:
    kind: str
    collected_at: datetime
    informed_at_collection: bool
    email: str | None = None
    phone: str | None = None
    postal_address: str | None = None
    push_token: str | None = None
    profession: str | None = None


@dataclass(frozen=True)
class Fact:
    """One event of the history, as the rules see it. ``seq`` is the recorded order."""

    type: str
    at: datetime
    seq: int
    topic: str | None = None
    channel: str | None = None
    method: str | None = None
    prechecked: bool = False
    bundled: bool = False
    doi: str = Doi.NONE
    proof: str | None = None
    until: datetime | None = None
    category: str | None = None
    product: str | None = None
    warranty_until: datetime | None = None
    contract: str | None = None
    kind: str | None = None
    hard: bool = False
    frequency: str | None = None
    automated: bool = False


@dataclass(frozen=True)
class Message:
    channel: str
    purpose: str
    topic: str | None = None
    category: str | None = None
    product: str | None = None
    professions: tuple[str, ...] = ()
    contains_promotion: bool = False
    automated: bool = False


# The version of RULES.md this module implements; part of every projection's fingerprint, so that
# a new engine marks the projections it did not compute as stale.
RULES_VERSION = "rules/2"

DEFAULT_GENERIC_LOCAL_PARTS = frozenset(rule_defaults.GENERIC_LOCAL_PARTS)


@dataclass(frozen=True)
class RuleSettings:
    retention_years: int = rule_defaults.RETENTION_YEARS
    doi_ttl: timedelta = timedelta(days=rule_defaults.DOI_TTL_DAYS)
    repermission_window: timedelta = timedelta(days=rule_defaults.REPERMISSION_WINDOW_DAYS)
    callback_validity: timedelta = timedelta(days=rule_defaults.CALLBACK_VALIDITY_DAYS)
    generic_local_parts: frozenset[str] = DEFAULT_GENERIC_LOCAL_PARTS

    def fingerprint(self) -> str:
        """Names this engine and these settings: projections computed under another fingerprint
        are stale (``manage.py rebuild_projections --stale``). Computed once per settings object
        (they are frozen): a drain asks it several times per event."""
        cached = self.__dict__.get("_fingerprint")
        if cached is not None:
            return cached
        import hashlib

        spelt = "|".join(
            [
                RULES_VERSION,
                str(self.retention_years),
                str(int(self.doi_ttl.total_seconds())),
                str(int(self.repermission_window.total_seconds())),
                str(int(self.callback_validity.total_seconds())),
                ",".join(sorted(self.generic_local_parts)),
            ]
        )
        fingerprint = hashlib.sha256(spelt.encode()).hexdigest()[:16]
        object.__setattr__(self, "_fingerprint", fingerprint)  # not a field: equality unchanged
        return fingerprint

    @classmethod
    def from_django(cls) -> RuleSettings:
        from django.conf import settings

        return cls(
            retention_years=settings.RETENTION_YEARS,
            doi_ttl=settings.DOI_CONFIRM_TTL,
            repermission_window=settings.REPERMISSION_WINDOW,
            callback_validity=settings.CALLBACK_VALIDITY,
            generic_local_parts=frozenset(p.lower() for p in settings.GENERIC_LOCAL_PARTS),
        )


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str
    step: str
    facts: dict[str, Any] = field(default_factory=dict)


class MalformedMessage(ValueError):
    """A question the rules cannot answer as asked; ``field`` names the part at fault."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field, self.problem = field, problem


def check_message(message: Message) -> None:
    """RULES.md, "Message": refuse what is malformed rather than read it as a value.

    Every optional text is absent or non-empty; ``automated`` only on phone; a marketing message
    (every purpose but a service message without promotion, and repermission) needs a topic.
    """
    if message.channel not in CHANNELS:
        raise MalformedMessage("channel", f"unknown channel {message.channel!r}")
    if message.purpose not in PURPOSES:
        raise MalformedMessage("purpose", f"unknown purpose {message.purpose!r}")
    for name in ("topic", "category", "product"):
        if getattr(message, name) == "":
            raise MalformedMessage(name, "an empty string is not a value (leave it out)")
    if any(not isinstance(p, str) or not p for p in message.professions):
        raise MalformedMessage("professions", "every profession is a non-empty string")
    if message.automated and message.channel != Channel.PHONE:
        raise MalformedMessage("automated", "only a phone call can be automated")
    takes_no_topic = message.purpose == Purpose.REPERMISSION or (
        message.purpose == Purpose.SERVICE and not message.contains_promotion
    )
    if not takes_no_topic and not message.topic:
        raise MalformedMessage("topic", f"a {message.purpose} message needs a topic")


# --- Time ---------------------------------------------------------------------------------------


def add_years(at: datetime, years: int) -> datetime:
    """RULES.md: add N to the UTC year; 29 February becomes 28 February."""
    from datetime import UTC

    utc = at.astimezone(UTC)
    try:
        return utc.replace(year=utc.year + years)
    except ValueError:
        return utc.replace(year=utc.year + years, day=28)


# --- Derived facts over a history (a list ordered by (at, seq)) ---------------------------------


def ordered(history: Iterable[Fact], now: datetime | None = None) -> list[Fact]:
    """The events that count as of ``now``, in time order; same instants keep recorded order."""
    events = history if now is None else (e for e in history if e.at <= now)
    return sorted(events, key=lambda e: (e.at, e.seq))


def later(a: Fact, b: Fact) -> bool:
    """RULES.md, "Time": is ``a`` later than ``b``? Instants first, then the recorded order."""
    return (a.at, a.seq) > (b.at, b.seq)


def _lacks_proof(e: Fact) -> bool:
    return e.method in METHODS_NEEDING_PROOF and not e.proof


def _is_clean(e: Fact) -> bool:
    """An opt-in that is neither pre-checked nor bundled, with proof when its method needs it:
    valid at once with ``doi: none``, valid once confirmed in time with ``doi: pending``."""
    return not (e.prechecked or e.bundled or _lacks_proof(e))


def is_person_initiated(e: Fact) -> bool:
    """RULES.md, "Person-initiated event": only acts shown to come from the person."""
    if e.type == EventType.INTERACTION:
        return e.kind in (InteractionKind.CLICK, InteractionKind.REPLY, InteractionKind.CONTACT)
    if e.type == EventType.OPT_IN:
        # A pending double opt-in counts through its doi_confirmed; anyone can type an address
        # into a public form, and a file or another system is not the person.
        return e.method != Method.IMPORT and e.doi == Doi.NONE and _is_clean(e)
    return e.type in (
        EventType.PURCHASE,
        EventType.CONTRACT_START,
        EventType.DOI_CONFIRMED,
        EventType.PAUSE,
        EventType.CALLBACK_REQUEST,
    )


def is_customer(h: Sequence[Fact]) -> bool:
    return any(e.type in (EventType.PURCHASE, EventType.CONTRACT_START) for e in h)


def active_contracts(h: Sequence[Fact]) -> list[Fact]:
    """Contract starts with no later end for the same contract (two starts are both active)."""
    starts: dict[str | None, list[Fact]] = {}
    for e in h:
        if e.type == EventType.CONTRACT_START:
            starts.setdefault(e.contract, []).append(e)
        elif e.type == EventType.CONTRACT_END:
            starts.pop(e.contract, None)
    return sorted((e for group in starts.values() for e in group), key=lambda e: (e.at, e.seq))


def retention_anchor(person: Person, h: Sequence[Fact]) -> datetime:
    initiated = [e.at for e in h if is_person_initiated(e)]
    if is_customer(h):
        candidates = [e.at for e in h if e.type == EventType.PURCHASE]
        candidates += [e.warranty_until for e in h if e.warranty_until is not None]
        candidates += [e.at for e in h if e.type == EventType.CONTRACT_END]
        candidates += initiated
    else:
        candidates = [person.collected_at, *initiated]
    return max(candidates)


def retention_expiry(person: Person, h: Sequence[Fact], s: RuleSettings) -> datetime | None:
    """When the person's data expires; None while a contract is active (it never does)."""
    if active_contracts(h):
        return None
    return add_years(retention_anchor(person, h), s.retention_years)


def is_undeliverable(h: Sequence[Fact]) -> bool:
    """A hard email bounce not followed by a confirmation, a click or reply, or a new address."""
    undeliverable = False
    for e in h:
        if e.type == EventType.BOUNCE and e.channel == Channel.EMAIL and e.hard:
            undeliverable = True
        elif (
            (e.type == EventType.DOI_CONFIRMED and e.channel == Channel.EMAIL)
            or (
                e.type == EventType.INTERACTION
                and e.kind in (InteractionKind.CLICK, InteractionKind.REPLY)
            )
            or (e.type == EventType.ADDRESS_CHANGED and e.channel == Channel.EMAIL)
        ):
            undeliverable = False
    return undeliverable


def is_generic_address(email: str | None, s: RuleSettings) -> bool:
    if not email or "@" not in email:
        return False
    local = email.rsplit("@", 1)[0].lower().split("+", 1)[0]
    return local in s.generic_local_parts


def family_of(category: str | None, catalog: Mapping[str, str]) -> str | None:
    """A category missing from the catalog is its own family; no category, no family."""
    if not category:
        return None
    return catalog.get(category) or category


def covers(e: Fact, topic: str | None, channel: str) -> bool:
    """Is ``e`` a covering opt-out for (topic, channel)?

    ``topic=None`` stands for a topic with no event of its own: only wildcard opt-outs cover it.
    """
    if e.type == EventType.OPT_OUT:
        topic_ok = e.topic == ANY or (topic is not None and e.topic == topic)
        return topic_ok and e.channel in (channel, ANY)
    return e.type == EventType.COMPLAINT and e.channel == channel


def consent_marks(h: Sequence[Fact], s: RuleSettings) -> tuple[set[int], set[int]]:
    """The positions in ``h`` of the valid opt-ins, and of the ``doi_confirmed`` events that make
    one valid (RULES.md, "Valid opt-in": a clean opt-in, confirmed within the link lifetime when
    its ``doi`` is pending). Only these lift an objection ("Opted out of")."""
    valid: set[int] = set()
    confirming: set[int] = set()
    waiting: dict[tuple[str | None, str | None], list[int]] = {}
    for i, e in enumerate(h):
        if e.type == EventType.OPT_IN:
            if not _is_clean(e):
                continue
            if e.doi == Doi.PENDING:
                waiting.setdefault((e.topic, e.channel), []).append(i)
            else:
                valid.add(i)
        elif e.type == EventType.DOI_CONFIRMED:
            pending = waiting.get((e.topic, e.channel))
            if not pending:
                continue
            # An opt-in too old for this confirmation is too old for any later one.
            pending[:] = [j for j in pending if e.at - h[j].at <= s.doi_ttl]
            if pending:
                valid.update(pending)
                confirming.add(i)
    return valid, confirming


@dataclass(frozen=True)
class PairState:
    """What the history says of one (topic, channel): RULES.md's derived facts for it."""

    opt_out: Fact | None  # the covering opt-out that decides, when opted out
    consent: Fact | None  # the latest valid opt-in giving consent, when not opted out
    automated_consent: Fact | None  # the same, among opt-ins with ``automated: true``
    blocker: str | None  # step 10's first two reasons, from the latest opt-in since the opt-out
    latest_opt_in: Fact | None  # the latest opt-in since the last covering opt-out


def pair_state(h: Sequence[Fact], topic: str | None, channel: str, s: RuleSettings) -> PairState:
    """Opted out of (T, C), valid consent for (T, C) and why not, in one pass over ``h``.

    ``topic=None`` stands for a topic with no event of its own.
    """
    valid, confirming = consent_marks(h, s) if topic is not None else (set(), set())
    latest: Fact | None = None  # the latest of {covering opt-outs, valid opt-ins, confirmations}
    last_covering = -1
    for i, e in enumerate(h):
        if covers(e, topic, channel):
            latest, last_covering = e, i
        elif (i in valid or i in confirming) and e.topic == topic and e.channel == channel:
            latest = e
    if latest is not None and covers(latest, topic, channel):
        return PairState(latest, None, None, None, None)
    consent = automated = latest_opt_in = None
    for i in range(last_covering + 1, len(h)):
        e = h[i]
        if e.type != EventType.OPT_IN or e.topic != topic or e.channel != channel:
            continue
        latest_opt_in = e
        if i in valid:
            consent = e
            if e.automated:
                automated = e
    blocker = None
    if latest_opt_in is not None:
        if latest_opt_in.doi == Doi.PENDING and not _confirmed_in_time(h, latest_opt_in, s):
            blocker = Reason.CONSENT_PENDING
        elif not _is_clean(latest_opt_in):
            blocker = Reason.INVALID_CONSENT
    return PairState(None, consent, automated, blocker, latest_opt_in)


def _confirmed_in_time(h: Sequence[Fact], opt_in: Fact, s: RuleSettings) -> bool:
    return any(
        e.type == EventType.DOI_CONFIRMED
        and e.topic == opt_in.topic
        and e.channel == opt_in.channel
        and later(e, opt_in)
        and e.at - opt_in.at <= s.doi_ttl
        for e in h
    )


def is_valid_opt_in(h: Sequence[Fact], i: int, s: RuleSettings) -> bool:
    e = h[i]
    if e.type != EventType.OPT_IN or not _is_clean(e):
        return False
    return e.doi != Doi.PENDING or _confirmed_in_time(h, e, s)


def opted_out_event(
    h: Sequence[Fact], topic: str | None, channel: str, s: RuleSettings | None = None
) -> Fact | None:
    """The covering opt-out that decides (T, C), if the person is opted out of it."""
    return pair_state(h, topic, channel, s or RuleSettings()).opt_out


def valid_consent_event(
    h: Sequence[Fact], topic: str, channel: str, s: RuleSettings, *, automated: bool = False
) -> Fact | None:
    """The latest valid opt-in that gives consent for (T, C) now, if any; with ``automated``,
    the latest that also covers automated calls."""
    state = pair_state(h, topic, channel, s)
    return state.automated_consent if automated else state.consent


def consent_blocker(h: Sequence[Fact], topic: str, channel: str, s: RuleSettings) -> str | None:
    """Step 10's first two reasons: why the latest opt-in since the last opt-out does not count."""
    return pair_state(h, topic, channel, s).blocker


def pause_until(h: Sequence[Fact], channel: str) -> datetime | None:
    """The end of the latest pause on this channel or ``*``: it replaces every earlier one."""
    latest = None
    for e in h:
        if e.type == EventType.PAUSE and e.channel in (channel, ANY):
            latest = e
    return latest.until if latest is not None else None


def latest_callback(h: Sequence[Fact]) -> Fact | None:
    latest = None
    for e in h:
        if e.type == EventType.CALLBACK_REQUEST:
            latest = e
    return latest


def callback_lifts(h: Sequence[Fact], opt_out: Fact | None) -> bool:
    """Step 6's exception: the latest callback request is later than the deciding opt-out."""
    callback = latest_callback(h)
    return opt_out is not None and callback is not None and later(callback, opt_out)


def repermission_opted_out(h: Sequence[Fact], channel: str, s: RuleSettings) -> bool:
    """Step 4: the latest opt-out of every topic on C (or a complaint on C) is later than the
    latest valid opt-in on C."""
    valid, _ = consent_marks(h, s)
    state = False
    for i, e in enumerate(h):
        if (e.type == EventType.OPT_OUT and e.topic == ANY and e.channel in (channel, ANY)) or (
            e.type == EventType.COMPLAINT and e.channel == channel
        ):
            state = True
        elif i in valid and e.channel == channel:
            state = False
    return state


def has_valid_consent_on(h: Sequence[Fact], channel: str, s: RuleSettings) -> bool:
    topics = {e.topic for e in h if e.type == EventType.OPT_IN and e.channel == channel}
    return any(valid_consent_event(h, t, channel, s) is not None for t in topics if t)


def unsubscribed_from_everything(h: Sequence[Fact], s: RuleSettings) -> bool:
    """The person's latest word is "unsubscribe from everything": an ``opt_out`` of ``*`` on
    ``*`` that no valid opt-in or confirmation followed, in the rules' order."""
    valid, confirming = consent_marks(h, s)
    out = False
    for i, e in enumerate(h):
        if e.type == EventType.OPT_OUT and e.topic == ANY and e.channel == ANY:
            out = True
        elif i in valid or i in confirming:
            out = False
    return out


def has_marketing_basis(person: Person, h: Sequence[Fact], channel: str, s: RuleSettings) -> bool:
    informed = person.informed_at_collection
    consumer = person.kind == ContactKind.CONSUMER
    return (
        has_valid_consent_on(h, channel, s)
        or (channel in (Channel.EMAIL, Channel.SMS) and consumer and is_customer(h) and informed)
        or (channel == Channel.POSTAL and informed)
        or (person.kind == ContactKind.PROFESSIONAL and informed)
    )


def repermission_asked(h: Sequence[Fact]) -> bool:
    """A repermission ask was sent since the last person-initiated event (or ever, if none)."""
    asked = False
    for e in h:
        if e.type == EventType.REPERMISSION_SENT:
            asked = True
        elif is_person_initiated(e):
            asked = False
    return asked


def bought_families(h: Sequence[Fact], catalog: Mapping[str, str]) -> set[str]:
    """Families of every purchase and contract, active or not (the soft-opt-in path)."""
    return {
        family_of(e.category, catalog) or ""
        for e in h
        if e.type in (EventType.PURCHASE, EventType.CONTRACT_START) and e.category
    }


def address_for(person: Person, channel: str) -> str | None:
    return {
        Channel.EMAIL: person.email,
        Channel.SMS: person.phone,
        Channel.PHONE: person.phone,
        Channel.POSTAL: person.postal_address,
        Channel.PUSH: person.push_token,
    }[channel] or None


# --- The decision -------------------------------------------------------------------------------


def decide(
    person: Person,
    history: Iterable[Fact],
    message: Message,
    now: datetime,
    *,
    catalog: Mapping[str, str] | None = None,
    settings: RuleSettings | None = None,
    retired_topics: frozenset[str] = frozenset(),
) -> Decision:
    """May we send ``message`` to ``person`` as of ``now``? The first step that applies wins.

    ``retired_topics``: topics the company no longer sends (inactive); a marketing message on one
    is denied ``TOPIC_RETIRED`` after step 5, whatever the person chose (docs/rules.md).
    """
    return Decider(
        person,
        history,
        now,
        catalog=catalog,
        settings=settings,
        retired_topics=retired_topics,
    ).decide(message)


# The events ``pair_state`` reads: the rest of a channel's events never change a pair's state.
_PAIR_TYPES = frozenset(
    {EventType.OPT_IN, EventType.DOI_CONFIRMED, EventType.OPT_OUT, EventType.COMPLAINT}
)


Positioned = list[tuple[int, Fact]]


def _pair_groups(events: Sequence[Fact]) -> tuple[Positioned, dict[str | None, Positioned]]:
    """A channel's events that ``pair_state`` reads, with their positions: those that count for
    every topic (an opt-out of every topic, any complaint on the channel), and the others by
    topic."""
    shared: Positioned = []
    by_topic: dict[str | None, Positioned] = {}
    for i, e in enumerate(events):
        if e.type not in _PAIR_TYPES:
            continue
        if e.topic == ANY or e.type == EventType.COMPLAINT:
            shared.append((i, e))
        else:
            by_topic.setdefault(e.topic, []).append((i, e))
    return shared, by_topic


class Decider:
    """``decide`` for several messages to one person as of one instant (the preference page asks
    once per box): what does not depend on the message (the history in time order, the retention
    expiry, a channel's pause, the purchases and contracts, a topic's state on a channel) is
    worked out once, when first needed. Each answer is the one ``decide`` gives."""

    def __init__(
        self,
        person: Person,
        history: Iterable[Fact],
        now: datetime,
        *,
        catalog: Mapping[str, str] | None = None,
        settings: RuleSettings | None = None,
        retired_topics: frozenset[str] = frozenset(),
        in_order: bool = False,
        pauses: bool = True,
    ) -> None:
        self.person, self.now = person, now
        # ``pauses=False``: the answer outside any pause (step 7 left out; a pause still counts
        # as the person's own act for the retention), as the preference page shows each box
        # beside the pause it shows on its own.
        self.pauses = pauses
        self.s = settings or RuleSettings()
        self.catalog = catalog or {}
        self.retired_topics = retired_topics
        # ``in_order``: the caller's history is already ``ordered(history, now)``'s (not sorted
        # again: a person's page asks with a history it has put in order itself).
        self.h = list(history) if in_order else ordered(history, now)
        self._known: dict[Any, Any] = {}

    def on(self, channel: str) -> list[Fact]:
        """The events that name ``channel`` or every channel, in order: all that ``pair_state``
        reads for a pair on that channel (a long history of one box leaves the others short)."""
        return self._once(
            ("on", channel), lambda: [e for e in self.h if e.channel in (channel, ANY)]
        )

    def pair_events(self, topic: str | None, channel: str) -> list[Fact]:
        """The events ``pair_state`` reads for (``topic``, ``channel``), in order: of those on
        the channel, the opt-ins, confirmations and opt-outs of that topic or of every topic, and
        the complaints. Grouped by topic once per channel, so that a long history of one box
        costs nothing to the questions about the others."""
        shared, by_topic = self._once(
            ("pair-groups", channel), lambda: _pair_groups(self.on(channel))
        )
        own = by_topic.get(topic, [])
        if not own:
            return [e for _, e in shared]
        if not shared:
            return [e for _, e in own]
        return [e for _, e in heapq.merge(shared, own, key=lambda item: item[0])]

    def _once(self, key: Any, compute: Callable[[], Any]) -> Any:
        if key not in self._known:
            self._known[key] = compute()
        return self._known[key]

    def decide(self, message: Message) -> Decision:
        check_message(message)
        person, h, now, s, catalog, once = (
            self.person,
            self.h,
            self.now,
            self.s,
            self.catalog,
            self._once,
        )
        channel, purpose, topic = message.channel, message.purpose, message.topic
        facts: dict[str, Any] = {}

        def allow(reason: str, step: str) -> Decision:
            return Decision(True, reason, step, facts)

        def deny(reason: str, step: str) -> Decision:
            return Decision(False, reason, step, facts)

        # 1. An address for the channel.
        if address_for(person, channel) is None:
            return deny(Reason.NO_ADDRESS, "1")

        # 2. Retention: every purpose, service and repermission included.
        expiry = once("expiry", lambda: retention_expiry(person, h, s))
        facts["expires_at"] = expiry
        if expiry is not None and now >= expiry:
            return deny(Reason.RETENTION_EXPIRED, "2")

        # 3. Undeliverable email.
        if channel == Channel.EMAIL and once("undeliverable", lambda: is_undeliverable(h)):
            return deny(Reason.UNDELIVERABLE, "3")

        # 4. Repermission: one neutral ask, near the end of retention.
        if purpose == Purpose.REPERMISSION:
            if channel == Channel.PHONE:
                return deny(Reason.NO_CONSENT, "4")
            if repermission_opted_out(h, channel, s):
                return deny(Reason.OPTED_OUT, "4")
            if not has_marketing_basis(person, h, channel, s):
                return deny(Reason.NO_CONSENT, "4")
            asked = repermission_asked(h)
            facts["repermission_asked"] = asked
            if expiry is not None and now >= expiry - s.repermission_window and not asked:
                return allow(Reason.REPERMISSION, "4")
            return deny(Reason.REPERMISSION_NOT_DUE, "4")

        # 5. Service messages; one that contains a promotion is a promotion.
        if purpose == Purpose.SERVICE:
            if not message.contains_promotion:
                return allow(Reason.SERVICE, "5")
            purpose = Purpose.PROMOTION

        # Assent's own rule: a retired topic is sent to nobody (the page no longer shows it, so the
        # person could not change their mind about it).
        if topic in self.retired_topics:
            return deny(Reason.TOPIC_RETIRED, "retired")

        # 6. Opted out, with one exception: the call the person asked for.
        pair = once(
            ("pair", topic, channel),
            lambda: pair_state(self.pair_events(topic, channel), topic, channel, s),
        )
        automated_call = channel == Channel.PHONE and message.automated
        if pair.opt_out is not None:
            facts["opt_out_seq"] = pair.opt_out.seq
            callback = once("callback", lambda: latest_callback(h))
            if not (
                channel == Channel.PHONE
                and purpose == Purpose.PROMOTION
                and not automated_call
                and callback is not None
                and later(callback, pair.opt_out)
                and now - callback.at <= s.callback_validity
            ):
                return deny(Reason.OPTED_OUT, "6")
            facts["callback_seq"] = callback.seq
            until = (
                once(("pause", channel), lambda: pause_until(h, channel)) if self.pauses else None
            )
            if until is not None and until > now:
                facts["pause_until"] = until
                return deny(Reason.PAUSED, "7")
            return allow(Reason.CALLBACK_REQUESTED, "6")

        # 7. Paused: the latest pause on the channel or on every channel.
        until = once(("pause", channel), lambda: pause_until(h, channel)) if self.pauses else None
        if until is not None and until > now:
            facts["pause_until"] = until
            return deny(Reason.PAUSED, "7")

        # 8. Valid consent; an automated call needs consent to automated calls.
        consent = pair.automated_consent if automated_call else pair.consent
        if consent is not None:
            facts["opt_in_seq"] = consent.seq
            return allow(Reason.OPT_IN, "8")

        # 9. The paths that need no consent, in order.
        informed = person.informed_at_collection
        professional = person.kind == ContactKind.PROFESSIONAL
        consumer = not professional
        family = family_of(message.category, catalog)
        if professional and channel == Channel.EMAIL and is_generic_address(person.email, s):
            return allow(Reason.GENERIC_ADDRESS, "9.1")
        if channel == Channel.POSTAL and informed:
            return allow(Reason.LEGITIMATE_INTEREST, "9.2")
        if (
            professional
            and not automated_call
            and informed
            and person.profession
            and person.profession in message.professions
        ):
            return allow(Reason.B2B_PROFESSIONAL, "9.3")
        if channel == Channel.PHONE and purpose == Purpose.PROMOTION and not automated_call:
            if consumer:
                for contract in once("contracts", lambda: active_contracts(h)):
                    if family is not None and family_of(contract.category, catalog) == family:
                        facts["contract_seq"] = contract.seq
                        return allow(Reason.CONTRACT_IN_PROGRESS, "9.4")
            callback = once("callback", lambda: latest_callback(h))
            if callback is not None and now - callback.at <= s.callback_validity:
                facts["callback_seq"] = callback.seq
                return allow(Reason.CALLBACK_REQUESTED, "9.4")
        customer = once("customer", lambda: is_customer(h))
        facts["customer"] = customer
        soft_path = (
            consumer and channel in (Channel.EMAIL, Channel.SMS) and purpose == Purpose.PROMOTION
        )
        analogous = family is not None and family in once(
            "families", lambda: bought_families(h, catalog)
        )
        if soft_path and customer and informed and analogous:
            return allow(Reason.SOFT_OPT_IN, "9.5")
        cart_path = (
            consumer
            and channel in (Channel.EMAIL, Channel.SMS)
            and purpose == Purpose.CART_ABANDONMENT
        )
        bought_product = bool(message.product) and any(
            e.type == EventType.PURCHASE and e.product == message.product for e in h
        )
        if cart_path and bought_product and informed:
            return allow(Reason.ALREADY_BOUGHT_PRODUCT, "9.6")

        # 10. Denied, with the first reason that fits.
        if pair.blocker is not None:
            return deny(pair.blocker, "10")
        if not informed and (
            channel == Channel.POSTAL
            or (professional and not automated_call)
            or (soft_path and customer)
            or (cart_path and bought_product)
        ):
            return deny(Reason.NOT_INFORMED, "10")
        if professional and informed and not automated_call:
            return deny(Reason.NOT_PROFESSIONAL_RELEVANT, "10")
        if soft_path and customer and informed:
            return deny(Reason.NOT_ANALOGOUS, "10")
        return deny(Reason.NO_CONSENT, "10")
