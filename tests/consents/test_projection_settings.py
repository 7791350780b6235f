"""Projections remember the rules and settings they were computed under; decide and the audience
agree on retired topics and on events dated a little ahead of the clock."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.test import override_settings

from consents import clock, projections, retention, rules, services
from consents.audience import audience, retired_topics
from consents.models import Contact, ContactFacts, Erasure, Event, Topic
from consents.projections import fact_from_event, person_from_contact
from consents.vocab import Reason
from tests.conftest import at

NOW = at("2026-11-29T12:00")


def _decide(contact: Contact, message: rules.Message, now=NOW) -> rules.Decision:
    facts = [fact_from_event(e) for e in Event.objects.filter(contact=contact)]
    return rules.decide(
        person_from_contact(contact),
        facts,
        message,
        now,
        settings=rules.RuleSettings.from_django(),
        retired_topics=retired_topics(),
    )


def _in_audience(contact: Contact, message: rules.Message, now=NOW) -> bool:
    return bool(list(audience(message, now, contact_ids=[contact.id])))


@pytest.fixture
def prospect(make_topic: Any, make_contact: Any, web_proof: services.Proof) -> Contact:
    make_topic("promotions")
    with clock.frozen(NOW):
        contact = make_contact(collected_at=at("2024-06-01T10:00"), postal_address="1 rue X")
        services.consent_grant(
            contact=contact,
            topic="promotions",
            channel="email",
            proof=web_proof,
            occurred_at=at("2024-06-01T10:00"),
        )
    return contact


def test_projections_record_the_rules_and_settings_they_were_computed_under(prospect):
    facts = ContactFacts.objects.get(contact=prospect)
    assert facts.rules_fingerprint == rules.RuleSettings.from_django().fingerprint()
    assert projections.stale_contact_ids() == []
    with override_settings(RETENTION_YEARS=1):
        assert projections.stale_contact_ids() == [prospect.id]
    with override_settings(GENERIC_LOCAL_PARTS=["info"]):
        assert projections.stale_contact_ids() == [prospect.id]


def test_rebuild_projections_recomputes_the_stale_ones(prospect):
    before = ContactFacts.objects.get(contact=prospect).expires_at
    with override_settings(RETENTION_YEARS=5):
        out = StringIO()
        call_command("rebuild_projections", "--stale", stdout=out)
        assert "Recomputed the projections of 1 contact(s)" in out.getvalue()
        after = ContactFacts.objects.get(contact=prospect)
        assert after.expires_at == before.replace(year=before.year + 2)
        assert projections.stale_contact_ids() == []
        out = StringIO()
        call_command("rebuild_projections", "--stale", stdout=out)
        assert "of 0 contact(s)" in out.getvalue()
        call_command("rebuild_projections", stdout=out)
        assert "of 1 contact(s)" in out.getvalue()


def test_migrate_recomputes_stale_projections(prospect):
    ContactFacts.objects.filter(contact=prospect).update(rules_fingerprint="", expires_at=None)
    projections.rebuild_stale_after_migrate(verbosity=0)
    facts = ContactFacts.objects.get(contact=prospect)
    assert facts.rules_fingerprint and facts.expires_at is not None


def test_a_longer_retention_never_lets_the_job_erase_on_a_stale_date(prospect):
    # Computed under 1 year, the stored expiry (June 2025) has passed; under 3 years it has not.
    with override_settings(RETENTION_YEARS=1):
        projections.projections_rebuild(stale_only=False)
    assert ContactFacts.objects.get(contact=prospect).expires_at < NOW
    with clock.frozen(NOW):
        done = retention.run(NOW)
    assert done["erased"] == 0
    assert not Erasure.objects.filter(contact=prospect).exists()
    assert ContactFacts.objects.get(contact=prospect).expires_at > NOW


def test_a_shorter_retention_erases_on_the_right_date(prospect):
    with override_settings(RETENTION_YEARS=1), clock.frozen(NOW):
        done = retention.run(NOW)
    assert done["erased"] == 1


def test_a_retired_topic_is_sent_to_nobody_and_decide_says_so(prospect):
    message = rules.Message(channel="email", purpose="promotion", topic="promotions")
    assert _decide(prospect, message).reason == Reason.OPT_IN
    assert _in_audience(prospect, message)
    prospect_topic = Topic.objects.get(slug="promotions")
    prospect_topic.active = False
    prospect_topic.save(update_fields=["active"])
    decision = _decide(prospect, message)
    assert (decision.allowed, decision.reason) == (False, Reason.TOPIC_RETIRED)
    assert not _in_audience(prospect, message)
    # Service messages and the postal path are not about the topic.
    service = rules.Message(channel="email", purpose="service")
    assert _decide(prospect, service).allowed and _in_audience(prospect, service)


def test_a_complaint_dated_ahead_of_the_clock_counts_now(prospect):
    # An email service's clock 3 minutes ahead: the event is dated when it is recorded, so that
    # decide (which reads events up to now) and the audience (every recorded fact) agree.
    with clock.frozen(NOW):
        event = services.complaint_record(
            contact=prospect,
            proof=services.Proof(actor="system"),
            occurred_at=NOW + timedelta(minutes=3),
        )
    assert event.occurred_at == NOW
    message = rules.Message(channel="email", purpose="promotion", topic="promotions")
    assert _decide(prospect, message).reason == Reason.OPTED_OUT
    assert not _in_audience(prospect, message)


@pytest.mark.parametrize(("slug", "family", "field"), [("dvd", "", "family"), ("", "x", "slug")])
def test_an_empty_family_or_category_is_refused(db, slug, family, field):
    # RULES.md v2: an empty string is never a value (a family "" made decide and the audience
    # disagree: one read it as no family, the other as a family).
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as exc:
        services.category_set(slug=slug, family=family)
    assert field in exc.value.message_dict
