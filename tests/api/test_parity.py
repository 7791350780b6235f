"""Parity on a generated population: the decisions endpoint, ``rules.decide``, the admin decision
panel and the audience endpoint give the same answer for every contact and message.

Populations come from the agreement test's strategies (``tests/consents/test_agreement.py``):
people and histories recorded through the services, as of a fixed instant. Bounded in CI;
``ASSENT_API_PARITY_EXAMPLES`` asks for a longer run.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from django.db import transaction
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api import keys
from consents import clock, rules
from consents.models import Category, Event
from consents.projections import fact_from_event, person_from_contact
from consents.services import contact_create
from tests.consents.conftest import verified_login
from tests.consents.test_agreement import (  # noqa: F401  (catalogue: a fixture)
    MESSAGES,
    NOWS,
    _record,
    catalogue,
    events,
    people,
)

EXAMPLES = int(os.environ.get("ASSENT_API_PARITY_EXAMPLES", "3"))


@st.composite
def populations(draw: Any) -> tuple[Any, list[tuple[dict[str, Any], list[Any]]]]:
    now = draw(st.sampled_from(NOWS))
    size = draw(st.integers(min_value=4, max_value=12))
    return now, [(draw(people(now)), draw(st.lists(events(now), max_size=8))) for _ in range(size)]


def message_json(m: rules.Message) -> dict[str, Any]:
    return {
        "channel": m.channel, "purpose": m.purpose, "topic": m.topic, "category": m.category,
        "product": m.product, "professions": list(m.professions), "automated": m.automated,
        "contains_promotion": m.contains_promotion,
    }  # fmt: skip


def audience_query(m: rules.Message, now: Any) -> dict[str, str]:
    q = {"channel": m.channel, "purpose": m.purpose, "as_of": now.isoformat()}
    for name in ("topic", "category", "product"):
        if getattr(m, name):
            q[name] = getattr(m, name)
    return q


# The audience endpoint's query parameters carry no professions, promotion flag or automation;
# the parity with it covers the messages that need none of them.
AUDIENCE_MESSAGES = [
    m for m in MESSAGES if not m.professions and not m.contains_promotion and not m.automated
]


@pytest.mark.django_db
@pytest.mark.usefixtures("catalogue")
@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(population=populations())
def test_decisions_decide_admin_panel_and_audience_agree(admin_user: Any, population: Any) -> None:
    now, crowd = population
    s = rules.RuleSettings.from_django()
    catalog = dict(Category.objects.values_list("slug", "family"))
    admin = Client()
    disagreements: list[Any] = []
    with clock.frozen(now), transaction.atomic():
        try:
            _, raw = keys.key_create(name="parity", scopes=["decisions:read", "audience:read"],
                                     rate_per_minute=100000)  # fmt: skip
            api = Client(HTTP_AUTHORIZATION=f"Bearer {raw}")
            verified_login(admin, admin_user)
            contacts = []
            for i, (person, history) in enumerate(crowd):
                if person["email"]:
                    person = {**person, "email": f"p{i}.{person['email']}"}
                contact = contact_create(**person)
                for recorded in history:
                    _record(contact, recorded)
                contacts.append(contact)
            expected = {}
            for c in contacts:
                facts = [fact_from_event(e) for e in Event.objects.filter(contact=c)]
                who = person_from_contact(c)
                for j, m in enumerate(MESSAGES):
                    d = rules.decide(who, facts, m, now, catalog=catalog, settings=s)
                    expected[(c.public_id, j)] = (d.allowed, d.reason)
            # 1. The decisions endpoint, every contact and message in batches of at most 1,000.
            pairs = [(c, j) for c in contacts for j in range(len(MESSAGES))]
            for start in range(0, len(pairs), 1000):
                chunk = pairs[start : start + 1000]
                body = {"questions": [
                    {"contact": {"id": c.public_id}, "message": message_json(MESSAGES[j]),
                     "as_of": now.isoformat()}
                    for c, j in chunk
                ]}  # fmt: skip
                r = api.post("/api/v1/decisions", body, content_type="application/json")
                assert r.status_code == 200, r.content[:500]
                for (c, j), d in zip(chunk, r.json()["decisions"], strict=True):
                    if (d["allowed"], d["reason"]) != expected[(c.public_id, j)]:
                        disagreements.append(("api", c.public_id, MESSAGES[j], d))
            # 2. The admin's decision panel (a page each, so a sample: a contact per example, a
            # third of the messages, in turn; the longer run asks every contact every message).
            step = 1 if EXAMPLES > 10 else 3
            asked = contacts if EXAMPLES > 10 else contacts[:1]
            for first, j in [(c, j) for c in asked for j in range(0, len(MESSAGES), step)]:
                m = MESSAGES[j]
                form = {
                    f"decide-{k}": v
                    for k, v in message_json(m).items()
                    if v not in (None, False, [])
                }  # noqa: E501
                form["decide-professions"] = ",".join(m.professions)
                form["decide-at"] = now.strftime("%Y-%m-%dT%H:%M:%S")
                page = admin.get(f"/admin/consents/contact/{first.pk}/change/", form)
                decision = page.context["decision"]
                seen = (decision.allowed, decision.reason) if decision else None
                if seen != expected[(first.public_id, j)]:
                    disagreements.append(("admin", first.public_id, m, seen))
            # 3. The audience endpoint: exactly the allowed contacts, with the same reason.
            for m in AUDIENCE_MESSAGES:
                j = MESSAGES.index(m)
                r = api.get("/api/v1/audiences", audience_query(m, now))
                assert r.status_code == 200, r
                rows = [json.loads(x) for x in b"".join(r.streaming_content).splitlines()]
                got = {row["id"]: row["reason"] for row in rows}
                want = {
                    c.public_id: expected[(c.public_id, j)][1]
                    for c in contacts
                    if expected[(c.public_id, j)][0]
                }
                if got != want:
                    disagreements.append(("audience", m, got, want))
        finally:
            transaction.set_rollback(True)
    assert not disagreements, disagreements[:3]
