"""Case books (``casebook/1``, see CASEBOOK.md): validate a file, then run each case through both
``rules.decide`` and the audience query, inside a transaction that is rolled back.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.test.utils import override_settings
from django.utils.dateparse import parse_datetime

from consents import clock, rules, services
from consents.audience import audience
from consents.models import Category, Event
from consents.projections import fact_from_event, person_from_contact
from consents.vocab import (
    ANY,
    CHANNELS,
    EVENT_TYPES,
    METHODS,
    PURPOSES,
    REASONS,
    TOPIC_PURPOSES,
    Channel,
    ContactKind,
    Doi,
    EventType,
    InteractionKind,
    Purpose,
)

FORMAT = "casebook/1"
SETTING_KEYS = {
    "retention_years",
    "doi_ttl_days",
    "repermission_window_days",
    "callback_validity_days",
    "generic_local_parts",
}


class CasebookError(Exception):
    """The file is malformed; the message names the case and the field."""


@dataclass
class Case:
    id: str
    now: datetime
    contact: dict[str, Any]
    events: list[dict[str, Any]]
    message: rules.Message
    expect_allowed: bool
    expect_reason: str


@dataclass
class Casebook:
    settings: dict[str, Any]
    catalog: dict[str, str]
    topics: dict[str, str]
    cases: list[Case] = field(default_factory=list)


@dataclass
class Result:
    id: str
    allowed: bool | None
    reason: str | None
    audience: bool | None
    audience_reason: str | None
    ok: bool
    expect_allowed: bool
    expect_reason: str
    error: str = ""


# --- Validation -----------------------------------------------------------------------------------


class _Reader:
    """Reads one object of the file, naming the place of any error."""

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, dict):
            raise CasebookError(f"{where}: expected an object")
        self.data, self.where = data, where

    def fail(self, name: str, problem: str) -> CasebookError:
        return CasebookError(f"{self.where}, field {name!r}: {problem}")

    def get(self, name: str, default: Any = ..., *, types: tuple[type, ...] = ()) -> Any:
        if name not in self.data or (self.data[name] is None and default is not ...):
            if default is ...:
                raise self.fail(name, "missing")
            return default
        value = self.data[name]
        if types and not isinstance(value, types):
            raise self.fail(name, f"expected {' or '.join(t.__name__ for t in types)}")
        return value

    def text(self, name: str, default: Any = ...) -> Any:
        value = self.get(name, default, types=(str,))
        if value == "":
            raise self.fail(name, "an empty string is not a value (leave it out, or null)")
        return value

    def boolean(self, name: str, default: Any = ...) -> Any:
        return self.get(name, default, types=(bool,))

    def choice(self, name: str, allowed: Any, default: Any = ...) -> Any:
        value = self.get(name, default)
        if value is not None and value not in allowed:
            raise self.fail(name, f"unknown value {value!r}")
        return value

    def instant(self, name: str, default: Any = ...) -> Any:
        value = self.get(name, default)
        if value is None or (default is not ... and value is default):
            return value
        parsed = parse_datetime(value) if isinstance(value, str) else None
        if parsed is None:
            raise self.fail(name, f"not an ISO 8601 timestamp: {value!r}")
        if parsed.tzinfo is None:
            raise self.fail(name, f"naive timestamp (no offset): {value!r}")
        return parsed


def _parse_settings(raw: Any) -> dict[str, Any]:
    r = _Reader(raw if raw is not None else {}, "settings")
    unknown = set(r.data) - SETTING_KEYS
    if unknown:
        raise r.fail(sorted(unknown)[0], "unknown setting")
    out: dict[str, Any] = {}
    for key in SETTING_KEYS - {"generic_local_parts"}:
        if key in r.data:
            value = r.get(key, types=(int,))
            if isinstance(value, bool) or value < 0:
                raise r.fail(key, "expected a non-negative integer")
            out[key] = value
    if "generic_local_parts" in r.data:
        parts = r.get("generic_local_parts", types=(list,))
        if not all(isinstance(p, str) and p for p in parts):
            raise r.fail("generic_local_parts", "expected a list of non-empty strings")
        out["generic_local_parts"] = parts
    return out


def _parse_event(raw: Any, where: str, topics: dict[str, str], now: datetime) -> dict[str, Any]:
    r = _Reader(raw, where)
    kind = r.choice("type", EVENT_TYPES)
    at = r.instant("at")
    if at > now:
        raise r.fail("at", "later than the case's now")
    event: dict[str, Any] = {"type": kind, "at": at}
    known_topics = set(topics)
    if kind in (EventType.OPT_IN, EventType.DOI_CONFIRMED):
        event["topic"] = r.choice("topic", known_topics)
        event["channel"] = r.choice("channel", CHANNELS)
    if kind == EventType.OPT_IN:
        event["method"] = r.choice("method", METHODS, "web_form")
        event["prechecked"] = r.boolean("prechecked", False)
        event["bundled"] = r.boolean("bundled", False)
        event["doi"] = r.choice("doi", tuple(Doi.values), Doi.NONE)
        event["proof"] = r.text("proof", None)
        event["frequency"] = r.text("frequency", None)
        event["automated"] = r.boolean("automated", False)
        if event["automated"] and event["channel"] != Channel.PHONE:
            raise r.fail("automated", "only a phone opt-in can cover automated calls")
    elif kind == EventType.OPT_OUT:
        event["topic"] = r.choice("topic", known_topics | {ANY})
        event["channel"] = r.choice("channel", (*CHANNELS, ANY))
        event["method"] = r.choice("method", METHODS, "web_form")
    elif kind == EventType.COMPLAINT:
        event["channel"] = r.choice("channel", CHANNELS, "email")
    elif kind == EventType.PAUSE:
        event["channel"] = r.choice("channel", (*CHANNELS, ANY))
        event["until"] = r.instant("until")
        if event["until"] < at:
            raise r.fail("until", "a pause cannot end before it starts (equal to at: a resume)")
    elif kind == EventType.PURCHASE:
        event["category"] = r.text("category")
        event["product"] = r.text("product", None)
        event["warranty_until"] = r.instant("warranty_until", None)
    elif kind == EventType.CONTRACT_START:
        event["contract"] = r.text("contract")
        event["category"] = r.text("category")
    elif kind == EventType.CONTRACT_END:
        event["contract"] = r.text("contract")
    elif kind == EventType.INTERACTION:
        event["kind"] = r.choice("kind", tuple(InteractionKind.values))
    elif kind == EventType.BOUNCE:
        event["channel"] = r.choice("channel", CHANNELS, "email")
        event["hard"] = r.boolean("hard", False)
    elif kind == EventType.CALLBACK_REQUEST:
        event["channel"] = r.choice("channel", (Channel.PHONE,), Channel.PHONE)
    elif kind in (EventType.ADDRESS_CHANGED, EventType.REPERMISSION_SENT):
        event["channel"] = r.choice("channel", CHANNELS)
    return event


def _parse_message(raw: Any, where: str, topics: dict[str, str]) -> rules.Message:
    r = _Reader(raw, where)
    channel = r.choice("channel", CHANNELS)
    purpose = r.choice("purpose", PURPOSES)
    topic = r.choice("topic", set(topics), None)
    promotion = r.boolean("contains_promotion", False)
    takes_no_topic = purpose == Purpose.REPERMISSION or (
        purpose == Purpose.SERVICE and not promotion
    )
    if takes_no_topic and topic is not None:
        raise r.fail("topic", f"a {purpose} message takes no topic")
    if not takes_no_topic:
        if topic is None:
            raise r.fail("topic", "missing (this purpose needs a topic)")
        expected = Purpose.PROMOTION if purpose == Purpose.SERVICE else purpose
        if topics[topic] != expected:
            raise r.fail("purpose", f"differs from topic {topic!r}'s purpose {topics[topic]!r}")
    professions = r.get("professions", [], types=(list,))
    if not all(isinstance(p, str) and p for p in professions):
        raise r.fail("professions", "expected a list of non-empty strings")
    message = rules.Message(
        channel=channel,
        purpose=purpose,
        topic=topic,
        category=r.text("category", None),
        product=r.text("product", None),
        professions=tuple(professions),
        contains_promotion=promotion,
        automated=r.boolean("automated", False),
    )
    try:
        rules.check_message(message)
    except rules.MalformedMessage as exc:
        raise r.fail(exc.field, exc.problem) from exc
    return message


def _parse_contact(raw: Any, where: str) -> dict[str, Any]:
    r = _Reader(raw, where)
    contact = {
        "kind": r.choice("kind", tuple(ContactKind.values)),
        "email": r.text("email", None),
        "phone": r.text("phone", None),
        "postal_address": r.text("postal_address", None),
        "push_token": r.text("push_token", None),
        "collected_at": r.instant("collected_at"),
        "informed_at_collection": r.boolean("informed_at_collection"),
        "profession": r.text("profession", None),
    }
    try:
        if contact["email"]:
            services.normalize_email(contact["email"])
        if contact["phone"] and services.normalize_phone(contact["phone"]) != contact["phone"]:
            raise r.fail("phone", "not in E.164 form")
    except ValidationError as exc:
        name = next(iter(exc.message_dict))
        raise r.fail(name, "; ".join(exc.message_dict[name])) from exc
    return contact


def parse(data: Any) -> Casebook:
    top = _Reader(data, "file")
    if top.get("format") != FORMAT:
        raise top.fail("format", f"expected {FORMAT!r}")
    default_now = top.instant("now", None)
    catalog = top.get("catalog", {}, types=(dict,))
    if not all(isinstance(k, str) and isinstance(v, str) and k and v for k, v in catalog.items()):
        raise top.fail("catalog", "expected an object of category: family non-empty strings")
    topics = top.get("topics", types=(dict,))
    for slug, purpose in topics.items():
        if not slug or slug == ANY:
            raise top.fail("topics", f"{slug!r} is not a topic slug")
        if purpose not in TOPIC_PURPOSES:
            raise top.fail("topics", f"topic {slug!r} has unknown purpose {purpose!r}")
    book = Casebook(
        settings=_parse_settings(top.get("settings", {})), catalog=catalog, topics=topics
    )
    seen: set[str] = set()
    for index, raw in enumerate(top.get("cases", types=(list,))):
        r = _Reader(raw, f"case #{index + 1}")
        case_id = r.text("id")
        if case_id in seen:
            raise r.fail("id", f"duplicate id {case_id!r}")
        seen.add(case_id)
        r.where = f"case {case_id!r}"
        now = r.instant("now", None) or default_now
        if now is None:
            raise r.fail("now", "missing (neither the case nor the file gives one)")
        events = r.get("events", [], types=(list,))
        expect = _Reader(r.get("expect"), f"case {case_id!r} expect")
        book.cases.append(
            Case(
                id=case_id,
                now=now,
                contact=_parse_contact(r.get("contact"), f"case {case_id!r} contact"),
                events=[
                    _parse_event(e, f"case {case_id!r} event #{i + 1}", topics, now)
                    for i, e in enumerate(events)
                ],
                message=_parse_message(r.get("message"), f"case {case_id!r} message", topics),
                expect_allowed=expect.boolean("allowed"),
                expect_reason=expect.choice("reason", REASONS),
            )
        )
    return book


def load(path: str) -> Casebook:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, json.JSONDecodeError) as exc:
        raise CasebookError(f"file: cannot read {path}: {exc}") from exc
    return parse(data)


# --- Running ----------------------------------------------------------------------------------


def rule_settings(book: Casebook) -> dict[str, Any]:
    """The Django settings of RULES.md for this book: its own values, else the defaults."""
    defaults = rules.RuleSettings()
    s = book.settings
    return {
        "RETENTION_YEARS": s.get("retention_years", defaults.retention_years),
        "DOI_CONFIRM_TTL": timedelta(days=s["doi_ttl_days"])
        if "doi_ttl_days" in s
        else defaults.doi_ttl,
        "REPERMISSION_WINDOW": timedelta(days=s["repermission_window_days"])
        if "repermission_window_days" in s
        else defaults.repermission_window,
        "CALLBACK_VALIDITY": timedelta(days=s["callback_validity_days"])
        if "callback_validity_days" in s
        else defaults.callback_validity,
        "GENERIC_LOCAL_PARTS": s.get("generic_local_parts", sorted(defaults.generic_local_parts)),
    }


def _record(contact: Any, event: dict[str, Any]) -> None:
    kind = event["type"]
    proof = services.Proof(
        method=event.get("method") or "", actor="casebook", reference=event.get("proof") or ""
    )
    services.event_record(
        type=kind, contact=contact, proof=proof, occurred_at=event["at"], fields=event
    )


def run_case(book: Casebook, case: Case) -> Result:
    result = Result(
        id=case.id,
        allowed=None,
        reason=None,
        audience=None,
        audience_reason=None,
        ok=False,
        expect_allowed=case.expect_allowed,
        expect_reason=case.expect_reason,
    )
    with override_settings(**rule_settings(book)), clock.frozen(case.now), transaction.atomic():
        try:
            for slug, purpose in book.topics.items():
                services.topic_create(
                    slug=slug, purpose=purpose, channels=list(CHANNELS), name_fr=slug, name_en=slug
                )
            for category, family in book.catalog.items():
                services.category_set(slug=category, family=family)
            contact = services.contact_create(
                **{k: v for k, v in case.contact.items() if k != "profession" and v is not None},
                profession=case.contact["profession"] or "",
            )
            for event in case.events:
                _record(contact, event)
            settings = rules.RuleSettings.from_django()
            history = [fact_from_event(e) for e in Event.objects.filter(contact=contact)]
            catalog = dict(Category.objects.values_list("slug", "family"))
            decision = rules.decide(
                person_from_contact(contact),
                history,
                case.message,
                case.now,
                catalog=catalog,
                settings=settings,
            )
            rows = list(
                audience(case.message, case.now, settings=settings, contact_ids=[contact.id])
            )
        except ValidationError as exc:
            result.error = f"could not load the case: {exc}"
            return result
        finally:
            transaction.set_rollback(True)
    result.allowed, result.reason = decision.allowed, decision.reason
    result.audience = bool(rows)
    result.audience_reason = rows[0].reason if rows else None
    agree = result.audience == decision.allowed and (
        not rows or result.audience_reason == decision.reason
    )
    if not agree:
        result.error = (
            f"decide says {decision.reason} ({'allowed' if decision.allowed else 'denied'}) "
            f"but the audience query says "
            + (f"in, {result.audience_reason}" if rows else "not in")
        )
    result.ok = (
        agree and decision.allowed == case.expect_allowed and decision.reason == case.expect_reason
    )
    return result


def run(book: Casebook) -> Iterator[Result]:
    for case in book.cases:
        yield run_case(book, case)
