"""Proof that holds: receipts name their own confirmation, the panel reads UTC, dashboards count
new subscribers only."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from django.test import Client

from consents import clock, notices, services
from consents.admin.contacts import DecisionForm
from consents.models import Contact, ReconfirmCampaign, ReconfirmRequest, Topic
from consents.selectors import dashboards, proof
from consents.vocab import Method
from preferences import center
from tests.conftest import at

WEB = services.Proof(method=Method.WEB_FORM, actor="person")
CLICK = services.Proof(method=Method.DOUBLE_OPT_IN, actor="person")


@pytest.fixture
def promotions(make_topic: Callable[..., Topic]) -> Topic:
    return make_topic("promotions")


# --- Receipts ---------------------------------------------------------------------------------


def test_each_receipt_shows_its_own_confirmation_and_complaints_withdraw(
    promotions: Topic, make_contact: Callable[..., Contact], admin_client: Client
) -> None:
    contact = make_contact(email="lea@example.fr")
    grant = dict(contact=contact, topic="promotions", channel="email")
    with clock.frozen(at("2026-06-01T12:00")):
        first = services.consent_grant(
            **grant, proof=WEB, doi="pending", occurred_at=at("2026-01-10T10:00")
        )
        first_click = services.consent_confirm(
            **grant, proof=CLICK, occurred_at=at("2026-01-10T11:00")
        )
        services.consent_withdraw(**grant, proof=WEB, occurred_at=at("2026-02-01T10:00"))
        second = services.consent_grant(
            **grant, proof=WEB, doi="pending", occurred_at=at("2026-03-01T10:00")
        )
        second_click = services.consent_confirm(
            **grant, proof=CLICK, occurred_at=at("2026-03-02T10:00")
        )
        services.complaint_record(contact=contact, proof=WEB, occurred_at=at("2026-04-01T10:00"))
        third = services.consent_grant(**grant, proof=WEB, occurred_at=at("2026-05-01T10:00"))
    found = {r["event"].pk: r for r in proof.receipts(contact)}
    assert found[first.pk]["confirmation"].pk == first_click.pk  # not the later click
    assert found[second.pk]["confirmation"].pk == second_click.pk
    assert found[third.pk]["confirmation"] is None  # no double opt-in: nothing to confirm
    assert found[first.pk]["withdrawn"].type == "opt_out"
    assert found[second.pk]["withdrawn"].type == "complaint"  # a spam report takes it back
    assert found[third.pk]["withdrawn"] is None
    page = admin_client.get(f"/admin/consents/contact/{contact.pk}/receipt/").content.decode()
    # Dates shown in the site's time zone: the first click, then the complaint.
    assert "2026-01-10T12:00:00+01:00" in page and "2026-04-01T12:00:00+02:00" in page


# --- The decision panel -----------------------------------------------------------------------


def test_the_decision_panel_reads_its_instant_as_utc(
    promotions: Topic, make_contact: Callable[..., Contact], admin_client: Client
) -> None:
    contact = make_contact(email="lea@example.fr")
    with clock.frozen(at("2026-03-10T12:00")):
        grant = dict(contact=contact, topic="promotions", channel="email")
        services.consent_grant(**grant, proof=WEB, occurred_at=at("2026-02-01T10:00"))
        services.consent_withdraw(**grant, proof=WEB, occurred_at=at("2026-03-01T08:30"))
        query = {
            "decide-channel": "email",
            "decide-purpose": "promotion",
            "decide-topic": "promotions",
            # 09:00 UTC is after the opt-out; 09:00 in Paris (08:00 UTC) would be before it.
            "decide-at": "2026-03-01T09:00",
        }
        response = admin_client.get(f"/admin/consents/contact/{contact.pk}/change/", query)
    assert response.context["decision"].reason == "OPTED_OUT"
    form = DecisionForm({"decide-channel": "email", "decide-purpose": "service",
                         "decide-at": "2026-03-29T02:30"})  # fmt: skip
    # A time that does not exist in Paris (the clocks go forward) is a plain UTC instant.
    assert form.is_valid(), form.errors
    assert form.instant() == at("2026-03-29T02:30")


# --- Dashboards -------------------------------------------------------------------------------

WEEK = "2026-02-16"


def weekly_opt_ins() -> list[int]:
    end = at("2026-03-02T00:00")
    chart = dashboards.charts(end, 4, timedelta(days=7))[0]
    return next(row[1:] for row in chart.rows if row[0] == WEEK)


def test_a_frequency_change_or_a_reconfirmation_is_no_new_opt_in(
    promotions: Topic, make_contact: Callable[..., Contact]
) -> None:
    contact = make_contact(email="lea@example.fr")
    with clock.frozen(at("2026-02-17T10:00")):
        v1 = services.notice_publish(topic=promotions, language="fr", text="v1")
        services.consent_grant(
            contact=contact,
            topic="promotions",
            channel="email",
            proof=services.Proof(method=Method.WEB_FORM, actor="person", notice=v1),
            frequency="weekly",
        )
        center.preferences_save(
            contact=contact,
            shown=[],
            wanted=[],
            frequencies={"promotions": "monthly"},
            notices={"promotions": v1},
            language="fr",
            request=center.Request(),
        )
        v2 = services.notice_publish(topic=promotions, language="fr", text="v2")
        notices.campaign_batch(
            ReconfirmCampaign.objects.create(notice=v2, started_at=clock.now(), started_by="x"),
            10,
        )
        notices.reconfirm(ReconfirmRequest.objects.get(), ip_address=None, user_agent="")
    assert contact.events.filter(type="opt_in").count() == 3
    assert weekly_opt_ins() == [1, 0, 1]  # one new subscriber, not three


def test_a_suppression_is_nobody_leaving(
    promotions: Topic, make_contact: Callable[..., Contact]
) -> None:
    with clock.frozen(at("2026-02-17T10:00")):
        lea = make_contact(email="lea@example.fr")
        services.consent_withdraw(contact=lea, topic="*", channel="*", proof=WEB)
        services.contact_erase(contact=lea, reason="DSR", actor="staff:dpo")
        again = make_contact(email="lea@example.fr")
    assert again.events.filter(method="suppression").exists()
    assert weekly_opt_ins() == [0, 1, -1]  # the one real opt-out, not the suppression
    rows = dict(dashboards.unsubscribe_methods(at("2026-02-01T00:00"), at("2026-03-02")).rows)
    assert rows == {"web_form": 1}
