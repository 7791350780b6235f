"""The presets: what a row of a Mailchimp, Brevo or Assent export says, as the events it tells
(``consents.bulk``'s event dicts), the contact it is about, and whether the source kept proof.

A row is read on its own (``Mapped``) or refused with a reason (``Refused``); whether it was
imported before, and what is written, is ``importer``'s part.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError

from consents import bulk, ledger, services
from consents.imports.reading import ImportError_, parse_instant, parse_ip, parse_yes
from consents.models import Topic
from consents.vocab import CHANNELS, Channel, Doi, Method

PRESETS = ("mailchimp", "brevo", "assent")


class Refused(Exception):
    """This row cannot be imported; the message says why (never the address itself)."""


@dataclass
class Mapped:
    """One source row, read: who, what happened to them, and how the source knows."""

    email: str
    status: str
    key: str  # the source's id for the row, or its address
    contact: dict[str, Any]
    events: list[dict[str, Any]]
    proven: bool
    content: str  # canonical text of what the row says, to recognise a changed row


@dataclass
class Context:
    preset: str
    topic: str
    sha256: str
    locale: str
    now: datetime
    topics: dict[str, list[str]]

    @cached_property
    def latest(self) -> datetime:
        """Instants later than this are in the future (read once per file, not per value)."""
        return self.now + settings.LEDGER_MAX_CLOCK_SKEW


def _reference(ctx: Context, row: int) -> str:
    return f"import {ctx.preset} sha256:{ctx.sha256} row:{row}"


def _instant(row: dict[str, str], column: str, ctx: Context) -> datetime | None:
    try:
        at = parse_instant(row.get(column, ""))
    except ValueError:
        raise Refused(f"{column}: not a date and time") from None
    if at is not None and at > ctx.latest:
        raise Refused(f"{column}: in the future")
    return at


def _email(value: str) -> str:
    try:
        return services.normalize_email(value)
    except ValidationError:
        raise Refused("email: not a valid address") from None


def _opt_in_events(
    ctx: Context,
    row_number: int,
    *,
    topic: str,
    channel: str,
    at: datetime,
    ip: str | None,
    confirmed_at: datetime | None,
    confirm_ip: str | None,
    proven: bool,
    evidence: dict[str, str],
    reference: str = "",
) -> list[dict[str, Any]]:
    """The opt-in (and its double opt-in confirmation, if the source kept one)."""
    proof = reference or _reference(ctx, row_number)
    opt_in: dict[str, Any] = bulk.opt_in(
        topic,
        channel,
        at,
        method=Method.IMPORT,
        doi=Doi.PENDING if confirmed_at else Doi.NONE,
        actor="system",
        collection_point=f"import:{ctx.preset}",
    )
    if proven:
        opt_in["proof"] = proof[:500]
    if ip:
        opt_in["ip_address"] = ip
    if evidence:
        opt_in["details"] = {"source": ctx.preset, **evidence}
    events = [opt_in]
    if confirmed_at:
        confirm: dict[str, Any] = bulk.doi_confirmed(
            topic,
            channel,
            max(confirmed_at, at),
            method=Method.IMPORT,
            actor="system",
            collection_point=f"import:{ctx.preset}",
            proof=proof[:500],
        )
        if confirm_ip:
            confirm["ip_address"] = confirm_ip
        events.append(confirm)
    return events


def _contact(email: str, first_name: str, collected_at: datetime, ctx: Context) -> dict[str, Any]:
    return {
        "email": email,
        "first_name": first_name[:150],
        "locale": ctx.locale,
        "collected_at": collected_at,
    }


def _canonical(values: dict[str, str]) -> str:
    return ledger.canonical_data(values)  # canonical_json, with the encoder built once


MAILCHIMP_TIMES = ("OPTIN_TIME", "CONFIRM_TIME", "LAST_CHANGED", "UNSUB_TIME", "CLEAN_TIME")


# The columns of a row that make its content (its instants and IP addresses), by header: every
# row of a file has the same columns, in the same order.
_MAILCHIMP_CONTENT: dict[tuple[str, ...], tuple[str, ...]] = {}


def _mailchimp_content_keys(row: dict[str, str]) -> tuple[str, ...]:
    header = tuple(row)
    keys = _MAILCHIMP_CONTENT.get(header)
    if keys is None:
        keys = tuple(k for k in header if k in MAILCHIMP_TIMES or k.endswith("_IP"))
        if len(_MAILCHIMP_CONTENT) < 100:
            _MAILCHIMP_CONTENT[header] = keys
    return keys


def map_mailchimp(row: dict[str, str], n: int, ctx: Context) -> Mapped:
    """A row of a Mailchimp audience export: subscribed, unsubscribed (``UNSUB_TIME``) or
    cleaned (``CLEAN_TIME``, hard-bounced) members. Proven when Mailchimp kept the opt-in's or
    the confirmation's IP address and instant."""
    email = _email(row.get("Email Address", ""))
    optin_at = _instant(row, "OPTIN_TIME", ctx)
    confirm_at = _instant(row, "CONFIRM_TIME", ctx)
    changed_at = _instant(row, "LAST_CHANGED", ctx)
    unsub_at = _instant(row, "UNSUB_TIME", ctx)
    clean_at = _instant(row, "CLEAN_TIME", ctx)
    if "CLEAN_TIME" in row:
        status = "cleaned"
    elif "UNSUB_TIME" in row:
        status = "unsubscribed"
    else:
        status = "subscribed"
    optin_ip, confirm_ip = parse_ip(row.get("OPTIN_IP", "")), parse_ip(row.get("CONFIRM_IP", ""))
    at = optin_at or confirm_at or changed_at
    if at is None:
        raise Refused("OPTIN_TIME, CONFIRM_TIME and LAST_CHANGED: no instant at all")
    evidenced = bool((optin_at and optin_ip) or (confirm_at and confirm_ip))
    evidence = {
        k: row[k]
        for k in ("OPTIN_TIME", "OPTIN_IP", "CONFIRM_TIME", "CONFIRM_IP", "LEID", "EUID")
        if row.get(k)
    }
    events = _opt_in_events(
        ctx,
        n,
        topic=ctx.topic,
        channel=Channel.EMAIL,
        at=at,
        ip=optin_ip,
        # A confirmation with no trace of the person (Mailchimp dates a list added by hand as
        # "confirmed") is no double opt-in.
        confirmed_at=confirm_at if evidenced else None,
        confirm_ip=confirm_ip,
        proven=evidenced,
        evidence=evidence,
    )
    end_proof = {
        "actor": "system",
        "collection_point": "import:mailchimp",
        "proof": _reference(ctx, n),
    }
    if status == "unsubscribed":
        events.append(
            bulk.opt_out(
                ctx.topic,
                Channel.EMAIL,
                max(unsub_at or changed_at or at, at),
                method=Method.IMPORT,
                **end_proof,
            )  # fmt: skip
        )
    elif status == "cleaned":
        events.append(bulk.bounce(True, max(clean_at or changed_at or at, at), **end_proof))
    first = " ".join(p for p in (row.get("First Name", ""), row.get("FNAME", "")) if p)
    content = {k: row[k] for k in _mailchimp_content_keys(row)}
    content.update(email=email.lower(), status=status, topic=ctx.topic)
    return Mapped(
        email=email,
        status=status,
        key=row.get("EUID") or row.get("LEID") or email.lower(),
        contact=_contact(email, first, at, ctx),
        events=events,
        # Whether the consent the row leaves in place has proof (one that ended needs none).
        proven=evidenced or status != "subscribed",
        content=_canonical(content),
    )


def map_brevo(row: dict[str, str], n: int, ctx: Context) -> Mapped:
    """A row of a Brevo contacts export. ``EMAIL_BLACKLISTED`` (or ``BLACKLISTED``) is an opt-out
    of every email, ``SMS_BLACKLISTED`` of every text message. Brevo exports no IP address: an
    opt-in is proven when Brevo says the contact confirmed a double opt-in."""
    email = _email(row.get("EMAIL", ""))
    added_at = _instant(row, "ADDED_TIME", ctx)
    modified_at = _instant(row, "MODIFIED_TIME", ctx)
    at = added_at or modified_at
    if at is None:
        raise Refused("ADDED_TIME and MODIFIED_TIME: no instant at all")
    email_out = parse_yes(row.get("EMAIL_BLACKLISTED", "") or row.get("BLACKLISTED", ""))
    sms_out = parse_yes(row.get("SMS_BLACKLISTED", ""))
    evidenced = parse_yes(row.get("DOUBLE_OPT-IN", "") or row.get("DOUBLE_OPT_IN", ""))
    evidence = {k: row[k] for k in ("ADDED_TIME", "DOUBLE_OPT-IN", "CONTACT ID") if row.get(k)}
    events = _opt_in_events(
        ctx,
        n,
        topic=ctx.topic,
        channel=Channel.EMAIL,
        at=at,
        ip=None,
        confirmed_at=None,
        confirm_ip=None,
        proven=evidenced,
        evidence=evidence,
    )
    end = max(modified_at or at, at)
    end_proof = {"actor": "system", "collection_point": "import:brevo", "proof": _reference(ctx, n)}
    contact = _contact(email, row.get("FIRSTNAME", "") or row.get("PRENOM", ""), at, ctx)
    phone = ""
    if row.get("SMS"):
        try:
            phone = services.normalize_phone(row["SMS"])
        except ValidationError:
            phone = ""
    if phone:
        contact["phone"] = phone
    if email_out:
        events.append(bulk.opt_out("*", Channel.EMAIL, end, method=Method.IMPORT, **end_proof))
    if sms_out and phone:
        events.append(bulk.opt_out("*", Channel.SMS, end, method=Method.IMPORT, **end_proof))
    status = "blacklisted" if email_out else "subscribed"
    content = {k: v for k, v in row.items() if k.isupper()}
    content.update(email=email.lower(), topic=ctx.topic)
    return Mapped(
        email=email,
        status=status,
        key=row.get("CONTACT ID") or email.lower(),
        contact=contact,
        events=events,
        proven=evidenced or email_out,
        content=_canonical(content),
    )


ASSENT_STATUSES = ("opted_in", "pending", "opted_out", "bounced")


def map_assent(row: dict[str, str], n: int, ctx: Context) -> Mapped:
    """Assent's own format, one fact per row: ``email``, ``topic``, ``channel``, ``status``
    (opted_in, pending, opted_out, bounced), ``occurred_at``, ``proof`` (the reference to the
    original evidence), ``ip_address``, ``doi_confirmed_at``, ``first_name``, ``locale``,
    ``source_id``."""
    email = _email(row.get("email", ""))
    status = row.get("status", "")
    if status not in ASSENT_STATUSES:
        raise Refused(f"status: one of {', '.join(ASSENT_STATUSES)}")
    topic = row.get("topic", "") or ctx.topic
    channel = row.get("channel", "") or Channel.EMAIL
    if channel not in CHANNELS:
        raise Refused("channel: unknown channel")
    if status != "bounced" and topic not in ctx.topics:
        raise Refused("topic: unknown topic")
    if status in ("opted_in", "pending") and channel not in ctx.topics[topic]:
        raise Refused("channel: the topic is not offered on this channel")
    at = _instant(row, "occurred_at", ctx)
    if at is None:
        raise Refused("occurred_at: required")
    confirmed_at = _instant(row, "doi_confirmed_at", ctx)
    their_proof = row.get("proof", "")
    proven = bool(their_proof)
    common = {"actor": "system", "collection_point": "import:assent", "proof": _reference(ctx, n)}
    if status in ("opted_in", "pending"):
        events = _opt_in_events(
            ctx,
            n,
            topic=topic,
            channel=channel,
            at=at,
            ip=parse_ip(row.get("ip_address", "")),
            confirmed_at=confirmed_at if status == "opted_in" else None,
            confirm_ip=None,
            proven=proven,
            evidence={"proof": their_proof} if their_proof else {},
            reference=f"{their_proof}; {_reference(ctx, n)}",
        )
        if status == "pending":
            events[0]["data"]["doi"] = Doi.PENDING
    elif status == "opted_out":
        events = [bulk.opt_out(topic, channel, at, method=Method.IMPORT, **common)]
    else:
        events = [bulk.bounce(True, at, channel=Channel.EMAIL, **common)]
    locale = row.get("locale", "") if row.get("locale", "") in ("fr", "en") else ctx.locale
    contact = _contact(email, row.get("first_name", ""), at, ctx) | {"locale": locale}
    content = {k: row.get(k, "") for k in ("email", "topic", "channel", "status", "occurred_at")}
    content.update(proof=their_proof, doi=row.get("doi_confirmed_at", ""), email=email.lower())
    return Mapped(
        email=email,
        status=status,
        key=row.get("source_id") or f"{email.lower()}|{topic}|{channel}|{status}|{at.isoformat()}",
        contact=contact,
        # An opt-in's "proven" flag matters; other facts need no proof.
        events=events,
        proven=proven or status not in ("opted_in", "pending"),
        content=_canonical(content),
    )


MAPPERS: dict[str, Callable[[dict[str, str], int, Context], Mapped]] = {
    "mailchimp": map_mailchimp,
    "brevo": map_brevo,
    "assent": map_assent,
}
REQUIRED_COLUMNS = {"mailchimp": ("Email Address",), "brevo": ("EMAIL",), "assent": ("email",)}


def topic_channels() -> dict[str, list[str]]:
    """Every topic's channels, by slug: what a file's topics are checked against."""
    return {
        slug: list(channels) for slug, channels in Topic.objects.values_list("slug", "channels")
    }


def check_topic(preset: str, topic: str, topics: dict[str, list[str]]) -> None:
    """The file's topic exists and is offered by email (an Assent file may name one per row)."""
    if preset == "assent" and not topic:
        return
    if topic not in topics:
        raise ImportError_(f"Unknown topic {topic!r}: create it first, or name another.")
    if Channel.EMAIL not in topics[topic]:
        raise ImportError_(f"The topic {topic!r} is not offered by email.")
