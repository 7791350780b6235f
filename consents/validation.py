"""What a fact must be before it is appended to the ledger: each rule written once.

The services check every call with these functions, and the bulk loader every event dict of an
import (``event``; it adds which contact and which event). A broken rule raises
``ValidationError`` naming the field. Nothing here reads the database: the caller passes the
topics it knows (``Offers``) and, for a batch, the latest instant it accepts.
"""

from __future__ import annotations

from collections.abc import Collection, Container, Mapping
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone

from consents import clock
from consents.projections import _when
from consents.vocab import (
    ANY,
    CHANNELS,
    EVENT_TYPES,
    METHODS,
    Channel,
    ContactKind,
    Doi,
    EventType,
    InteractionKind,
)

# The topics a caller knows: slug -> (the channels it is offered on, its frequencies).
Offers = Mapping[str, tuple[Collection[str], Collection[str]]]

# Facts about one topic: the topic must be known (``*`` allowed for an opt-out).
SCOPED = frozenset({EventType.OPT_IN, EventType.DOI_CONFIRMED, EventType.OPT_OUT})
# Facts on one channel; an opt-out and a pause may be on every channel (``*``).
NEEDS_CHANNEL = frozenset(
    {
        EventType.OPT_IN,
        EventType.DOI_CONFIRMED,
        EventType.OPT_OUT,
        EventType.COMPLAINT,
        EventType.PAUSE,
        EventType.BOUNCE,
        EventType.ADDRESS_CHANGED,
        EventType.CALLBACK_REQUEST,
        EventType.REPERMISSION_SENT,
    }
)
WILDCARD_CHANNEL = frozenset({EventType.OPT_OUT, EventType.PAUSE})
# A consent and its withdrawal say how they were expressed.
METHOD_REQUIRED = {
    EventType.OPT_IN: "How the consent was collected is required.",
    EventType.OPT_OUT: "How the opt-out was expressed is required.",
}
# What a commercial fact must name (RULES.md: an empty string is never a value).
REQUIRED_DATA: dict[str, tuple[str, ...]] = {
    EventType.PURCHASE: ("category",),
    EventType.CONTRACT_START: ("contract", "category"),
    EventType.CONTRACT_END: ("contract",),
}
LOCALES = ("fr", "en")
# The choices of the vocabulary's enumerations, spelt once (``.values`` builds a new list each
# time it is read: once per fact, on an import of a million rows).
_DOI_VALUES = tuple(Doi.values)
_INTERACTION_KINDS = tuple(InteractionKind.values)
_CONTACT_KINDS = tuple(ContactKind.values)


def latest_instant() -> datetime:
    """The latest instant a fact may be dated: now, and the clock skew allowed."""
    return clock.now() + settings.LEDGER_MAX_CLOCK_SKEW


def instant(
    name: str, value: Any, *, future_ok: bool = False, latest: datetime | None = None
) -> None:
    """A timezone-aware instant, not in the future (beyond ``latest``, by default the clock skew
    allowed) unless ``future_ok``."""
    if value is None:
        raise ValidationError({name: "This field is required."})
    if not isinstance(value, datetime) or timezone.is_naive(value):
        raise ValidationError({name: "Give a timezone-aware instant (with an offset)."})
    if not future_ok and value > (latest or latest_instant()):
        raise ValidationError({name: "This instant is in the future."})


def choice(name: str, value: Any, allowed: Container[Any]) -> None:
    if value not in allowed:
        raise ValidationError({name: f"Unknown value {value!r}."})


def required(name: str, value: Any) -> None:
    if not value:
        raise ValidationError({name: "This field is required."})


def channel(value: str, *, wildcard: bool = False) -> None:
    choice("channel", value, (*CHANNELS, ANY) if wildcard else CHANNELS)


def method(kind: str, value: str) -> None:
    """How a fact was collected: required for a consent and an opt-out, and one a caller may name
    (``suppression`` is the system's own, ``services.suppression_record``)."""
    if not value:
        if kind in METHOD_REQUIRED:
            raise ValidationError({"method": METHOD_REQUIRED[kind]})
        return
    choice("method", value, METHODS)


def actor(value: str) -> None:
    if not value:
        raise ValidationError({"actor": "Who recorded this fact is required."})


def topic(slug: str, known: Container[str], *, wildcard: bool = False) -> None:
    """A topic of the catalogue (``known``), or ``*`` where ``wildcard``."""
    if wildcard and slug == ANY:
        return
    if slug not in known:
        raise ValidationError({"topic": f"Unknown topic {slug!r}."})


def offered(
    slug: str,
    on: str,
    frequency: str,
    offers: tuple[Collection[str], Collection[str]],
) -> None:
    """A consent to a topic on a channel it is offered on, at one of its frequencies."""
    channels, frequencies = offers
    if on not in channels:
        raise ValidationError({"channel": f"Topic {slug!r} is not offered on {on!r}."})
    if frequency and frequency not in frequencies:
        raise ValidationError({"frequency": f"Topic {slug!r} does not offer {frequency!r}."})


def doi(value: Any) -> None:
    choice("doi", value, _DOI_VALUES)


def automated(on: str, value: bool) -> None:
    if value and on != Channel.PHONE:
        raise ValidationError({"automated": "Only a phone call can be automated."})


def callback(on: str) -> None:
    if on != Channel.PHONE:
        raise ValidationError({"channel": "A callback request is a request for a phone call."})


def pause_until(until: Any, at: datetime, *, resume: bool = True) -> None:
    """A pause ends after it starts; at its own instant it is a resume (where ``resume``)."""
    instant("until", until, future_ok=True)
    if until < at:
        raise ValidationError({"until": "A pause cannot end before it starts."})
    if until == at and not resume:
        raise ValidationError({"until": "A pause ends after it starts."})


def data(kind: str, values: Mapping[str, Any]) -> None:
    """What a commercial fact must name, and an interaction's kind."""
    for name in REQUIRED_DATA.get(kind, ()):
        required(name, values.get(name))
    if kind == EventType.INTERACTION:
        choice("kind", values.get("kind"), _INTERACTION_KINDS)


def contact(*, kind: str, locale: str, collected_at: Any, latest: datetime | None = None) -> None:
    choice("kind", kind, _CONTACT_KINDS)
    choice("locale", locale, LOCALES)
    instant("collected_at", collected_at, latest=latest)


def event(
    kind: Any,
    *,
    occurred_at: Any,
    recorded_at: Any = None,
    topic_slug: str = "",
    on: str = "",
    how: str = "",
    by: str = "system",
    values: Mapping[str, Any] | None = None,
    offers: Offers,
    latest: datetime | None = None,
) -> None:
    """One event as stored (its ``data`` as the services write it): the checks each recorder of
    the services makes before appending, for a caller that holds the event, not the call (the
    bulk loader; the suppression list is its own step there)."""
    values = values or {}
    choice("type", kind, EVENT_TYPES)
    instant("occurred_at", occurred_at, latest=latest)
    if recorded_at is not None:
        instant("recorded_at", recorded_at, future_ok=True)
    method(kind, how)
    actor(by)
    if kind in NEEDS_CHANNEL:
        channel(on, wildcard=kind in WILDCARD_CHANNEL)
    if kind in SCOPED:
        topic(topic_slug, offers, wildcard=kind == EventType.OPT_OUT)
    if kind == EventType.OPT_IN:
        doi(values.get("doi"))
        offered(topic_slug, on, values.get("frequency") or "", offers[topic_slug])
        automated(on, bool(values.get("automated")))
    elif kind == EventType.PAUSE:
        # Stored as ISO text; a pause that ends when it starts is a resume, and says so.
        pause_until(_when(values.get("until")), occurred_at, resume=bool(values.get("resume")))
    elif kind == EventType.CALLBACK_REQUEST:
        callback(on)
    else:
        data(kind, values)
