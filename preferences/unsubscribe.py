"""The unsubscribe page's lighter choices: stop one topic, take a break, receive less often.

An unsubscribe link grants only ways to receive less, never more: each choice here is an
``opt_out``, a pause or a slower pace of what the person already receives, recorded as done
with the unsubscribe link (``Method.UNSUBSCRIBE_LINK``).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction

from consents import services
from consents.models import ConsentState, Contact, Topic
from consents.vocab import Channel, Method
from preferences import center

# From the most frequent to the least.
PACE = ("daily", "weekly", "biweekly", "monthly", "quarterly")


@dataclass(frozen=True)
class Received:
    """A topic the person receives by email, and the slowest pace it offers, if slower."""

    topic: Topic
    slower: str


def received_by_email(contact: Contact) -> list[Received]:
    rows = ConsentState.objects.filter(
        contact=contact,
        channel=Channel.EMAIL,
        status__in=(ConsentState.Status.OPTED_IN, ConsentState.Status.PENDING),
    )
    frequencies = {row.topic: row.frequency for row in rows}
    topics = Topic.objects.filter(slug__in=frequencies, active=True)
    received = []
    for topic in topics:
        offered = [f for f in topic.frequencies if f in PACE]
        # The pace the person has, else the one the preference page shows chosen (the first).
        current = frequencies[topic.slug] or (offered[0] if offered else "")
        slowest = max(offered, key=PACE.index, default="")
        slower = (
            slowest
            if slowest and current in PACE and PACE.index(slowest) > PACE.index(current)
            else ""
        )
        received.append(Received(topic, slower))
    return received


def masked(email: str | None) -> str:
    """The address, recognisable by its owner, not readable by whoever the email was forwarded
    to: ``marie@example.fr`` -> ``m•••e@example.fr``."""
    if not email or "@" not in email:
        return ""
    local, domain = email.rsplit("@", 1)
    shown = local[0] + "•••" + (local[-1] if len(local) > 2 else "")
    return f"{shown}@{domain}"


def _request(ip_address: str | None, user_agent: str, collection_point: str) -> center.Request:
    return center.Request(
        ip_address=ip_address,
        user_agent=user_agent,
        collection_point=collection_point,
        method=Method.UNSUBSCRIBE_LINK,
    )


@transaction.atomic
def stop_topic(
    *,
    contact: Contact,
    slug: str,
    ip_address: str | None,
    user_agent: str,
    collection_point: str,
) -> bool:
    """This topic only, by email; False (nothing written) when it is not received."""
    if slug not in {r.topic.slug for r in received_by_email(contact)}:
        return False
    services.consent_withdraw(
        contact=contact,
        topic=slug,
        channel=Channel.EMAIL,
        proof=_request(ip_address, user_agent, collection_point).proof(),
    )
    return True


@transaction.atomic
def less_often(
    *,
    contact: Contact,
    slug: str,
    language: str,
    ip_address: str | None,
    user_agent: str,
    collection_point: str,
) -> str:
    """The slowest pace the topic offers; "" (nothing written) when there is none slower."""
    chosen = next((r for r in received_by_email(contact) if r.topic.slug == slug), None)
    if chosen is None or not chosen.slower:
        return ""
    center.preferences_save(
        contact=contact,
        shown=[],
        wanted=[],
        frequencies={slug: chosen.slower},
        notices={},
        language=language,
        request=_request(ip_address, user_agent, collection_point),
    )
    return chosen.slower


def pause(
    *,
    contact: Contact,
    months: int,
    ip_address: str | None,
    user_agent: str,
    collection_point: str,
) -> object:
    return center.preferences_pause(
        contact=contact,
        months=months,
        request=_request(ip_address, user_agent, collection_point),
    )
