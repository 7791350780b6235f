"""Consent facts: a yes, its confirmation, a withdrawal, a complaint, a pause and its end, a
callback request, a repermission asked.

Each service checks its fact (reading only), then appends it: ``_append`` is the transaction,
or joins the caller's without a savepoint of its own (a sign-up or a save records several)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError

from consents import catalogue, clock, ledger, validation
from consents.models import Contact, Event, Topic
from consents.services.erasure import SUPPRESSION_CHECKED_METHODS, is_suppressed
from consents.services.writing import Proof, _append
from consents.vocab import Channel, Doi, EventType


def _topic(slug: str, *, wildcard: bool = False) -> Topic | None:
    """The catalogue's topic (None for ``*`` where ``wildcard``)."""
    by_slug = catalogue.snapshot().by_slug
    validation.topic(slug, by_slug, wildcard=wildcard)
    return by_slug.get(slug)


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
    lock_held: bool = False,
) -> Event:
    """``opt_in``: the person said yes to this topic on this channel.

    On the phone, ``automated`` says they also agreed to recorded or automated calls (L34-5
    CPCE: consent "by this means"); consent to live calls alone does not cover them.

    ``renewal``: a yes again to what they already receive (a new frequency, the same consent
    re-confirmed under a new notice); the rules read it as any opt-in, the dashboards do not
    count it as a new subscriber. ``lock_held``: the caller holds the contact's row lock in this
    transaction (a save of several boxes), so the append does not take it again."""
    topic_obj = _topic(topic)
    validation.channel(channel)
    assert topic_obj is not None
    validation.offered(topic, channel, frequency, (topic_obj.channels, topic_obj.frequencies))
    validation.doi(doi)
    validation.method(EventType.OPT_IN, proof.method)
    validation.automated(channel, automated)
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
        lock_held=lock_held,
    )


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
    validation.channel(channel)
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


def consent_withdraw(
    *,
    contact: Contact,
    topic: str,
    channel: str,
    proof: Proof,
    occurred_at: datetime | None = None,
    lock_held: bool = False,
) -> Event:
    """``opt_out``: refusal, withdrawal, objection or unsubscribe; ``*`` is a wildcard."""
    _topic(topic, wildcard=True)
    validation.channel(channel, wildcard=True)
    # ``suppression`` is the system's own (``suppression_record``), never a caller's.
    validation.method(EventType.OPT_OUT, proof.method)
    return _append(
        contact=contact,
        type=EventType.OPT_OUT,
        occurred_at=occurred_at,
        proof=proof,
        topic=topic,
        channel=channel,
        lock_held=lock_held,
    )


def complaint_record(
    *,
    contact: Contact,
    proof: Proof,
    channel: str = Channel.EMAIL,
    occurred_at: datetime | None = None,
) -> Event:
    validation.channel(channel)
    return _append(
        contact=contact,
        type=EventType.COMPLAINT,
        occurred_at=occurred_at,
        proof=proof,
        channel=channel,
    )


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
    validation.channel(channel, wildcard=True)
    at = occurred_at or clock.now()
    validation.pause_until(until, at)
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
    validation.channel(channel, wildcard=True)
    at = occurred_at or clock.now()
    validation.instant("occurred_at", at)
    return _append(
        contact=contact,
        type=EventType.PAUSE,
        occurred_at=at,
        proof=proof,
        channel=channel,
        data={"until": ledger.iso(at), "resume": True},
    )


def callback_request(
    *,
    contact: Contact,
    proof: Proof,
    channel: str = Channel.PHONE,
    occurred_at: datetime | None = None,
) -> Event:
    """``callback_request``: the person asked to be called back (RULES.md: phone only)."""
    validation.callback(channel)
    return _append(
        contact=contact,
        type=EventType.CALLBACK_REQUEST,
        occurred_at=occurred_at,
        proof=proof,
        channel=channel,
    )


def repermission_record(
    *,
    contact: Contact,
    channel: str,
    proof: Proof,
    occurred_at: datetime | None = None,
) -> Event:
    """``repermission_sent``: we asked whether they still want to hear from us."""
    validation.channel(channel)
    return _append(
        contact=contact,
        type=EventType.REPERMISSION_SENT,
        occurred_at=occurred_at,
        proof=proof,
        channel=channel,
    )
