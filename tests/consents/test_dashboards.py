"""Dashboards: weekly counts from aggregate queries, drawn as SVG, with tables and CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from consents import clock, services
from consents.models import Contact, Outbox, Store, Topic
from consents.selectors import dashboards
from tests.conftest import at

END = at("2026-03-02T00:00")  # a Monday


@pytest.fixture
def activity(make_topic: Callable[..., Topic], make_contact: Callable[..., Contact]) -> None:
    make_topic("promotions", name_fr="Bons plans", name_en="Deals")
    make_topic("newsletter", purpose="newsletter", channels=["email"])
    store = Store.objects.create(code="paris-01", name="Paris")
    web = services.Proof(method="web_form", actor="person")
    tablet = services.Proof(method="store_tablet", actor="staff:a", store=store)
    with clock.frozen(END):
        for i in range(6):
            c = make_contact()
            week = at("2026-02-16T10:00") if i < 4 else at("2026-02-23T10:00")
            services.consent_grant(
                contact=c,
                topic="promotions",
                channel="email",
                proof=web if i % 2 else tablet,
                occurred_at=week,
            )
        # Two double opt-ins, one confirmed after 2 hours; one never.
        for confirmed in (True, False):
            c = make_contact()
            services.consent_grant(
                contact=c,
                topic="newsletter",
                channel="email",
                proof=web,
                doi="pending",
                occurred_at=at("2026-02-17T08:00"),
            )
            if confirmed:
                services.consent_confirm(
                    contact=c,
                    topic="newsletter",
                    channel="email",
                    proof=web,
                    occurred_at=at("2026-02-17T10:00"),
                )
        leaver = Contact.objects.first()
        services.consent_withdraw(
            contact=leaver,
            topic="promotions",
            channel="email",
            proof=services.Proof(method="one_click_unsubscribe", actor="person"),
            occurred_at=at("2026-02-24T10:00"),
        )
        services.complaint_record(contact=leaver, proof=web, occurred_at=at("2026-02-25T10:00"))
        services.bounce_record(
            contact=leaver, hard=True, proof=web, occurred_at=at("2026-02-25T11:00")
        )
        for _ in range(4):
            Outbox.objects.create(
                template="x",
                to="a@b.c",
                status="sent",
                created_at=END,
                sent_at=at("2026-02-24T09:00"),
            )


def charts() -> dict[str, dashboards.Chart]:
    return {c.key: c for c in dashboards.charts(END, 4, timedelta(days=7))}


def test_weekly_opt_ins_opt_outs_and_net(activity: None) -> None:
    weekly = charts()["weekly"]
    rows = {r[0]: r[1:] for r in weekly.rows}
    assert rows["2026-02-16"] == [6, 0, 6]  # 4 opt-ins + 2 pending double opt-ins
    assert rows["2026-02-23"] == [2, 2, 0]  # an opt-out and a complaint
    assert len(weekly.rows) == 4


def test_per_channel_topic_and_store(activity: None) -> None:
    found = charts()
    by_topic = found["topic"].table.rows
    assert ["2026-02-16", "newsletter", 2, 0, 2] in by_topic
    assert ["2026-02-23", "promotions", 2, 1, 1] in by_topic
    by_store = found["store"].table.rows
    assert ["2026-02-16", "paris-01", 2, 0, 2] in by_store
    assert ["2026-02-23", "paris-01", 1, 0, 1] in by_store


def test_double_opt_in_completion_and_median(activity: None) -> None:
    doi = charts()["doi"]
    assert doi.rows == [["sign-ups asked to confirm", 2], ["confirmed within 7 days", 1]]
    assert doi.summary == [["completion rate (%)", 50.0], ["median time to confirm", "2h 0m"]]


def test_unsubscribe_methods_and_deliverability(activity: None) -> None:
    found = charts()
    assert sorted(found["unsubscribe"].rows) == [["complaint", 1], ["one_click_unsubscribe", 1]]
    week = next(r for r in found["deliverability"].rows if r[0] == "2026-02-23")
    assert week == ["2026-02-23", 4, 1, 0, 1, 250.0, 250.0]


def test_the_dashboard_page_draws_svg_and_serves_csv(activity: None, admin_client: Client) -> None:
    with CaptureQueriesContext(connection) as queries:
        page = admin_client.get("/admin/dashboard/", {"until": "2026-03-02", "weeks": "4"})
    assert page.status_code == 200
    body = page.content.decode()
    assert body.count("<svg") >= 7 and "<table" in body
    assert len(queries) < 30  # aggregates, not a query per row
    response = admin_client.get("/admin/dashboard/topic.csv", {"until": "2026-03-02", "weeks": "4"})
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0] == ["week", "topic", "opt-ins", "opt-outs", "net"]
    assert ["2026-02-16", "newsletter", "2", "0", "2"] in rows
    assert admin_client.get("/admin/dashboard/nope.csv").status_code == 404


def test_the_page_speaks_the_officers_language_and_the_csv_stays_english(
    activity: None, admin_client: Client
) -> None:
    window = {"until": "2026-03-02", "weeks": "4"}
    french = admin_client.get("/admin/dashboard/", window, HTTP_ACCEPT_LANGUAGE="fr")
    body = french.content.decode()
    assert "Inscriptions, désinscriptions et solde par semaine" in body
    assert '<th scope="col">semaine</th><th scope="col">inscriptions</th>' in body
    assert "inscriptions à confirmer" in body and "confirmées sous 7 jours" in body
    assert "taux de confirmation (%)" in body and "E-mail : solde" in body
    assert "sign-ups asked to confirm" not in body and "Opt-ins, opt-outs" not in body
    english = admin_client.get("/admin/dashboard/", window, HTTP_ACCEPT_LANGUAGE="en")
    assert "Opt-ins, opt-outs and net per week" in english.content.decode()
    assert "sign-ups asked to confirm" in english.content.decode()
    # The CSV files keep their English identifiers, whatever the officer's language.
    response = admin_client.get("/admin/dashboard/doi.csv", window, HTTP_ACCEPT_LANGUAGE="fr")
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0] == ["measure", "value"] and rows[1] == ["sign-ups asked to confirm", "2"]


def test_labels_translate_names_and_keep_values() -> None:
    from django.utils import translation

    with translation.override("fr"):
        assert dashboards.label("opt-outs") == "désinscriptions"
        assert dashboards.label("confirmed within 3 days") == "confirmées sous 3 jours"
        assert dashboards.label("promotions net") == "promotions : solde"
        assert dashboards.label("one_click_unsubscribe") == "one_click_unsubscribe"
        assert dashboards.label(12) == 12
    with translation.override("en"):
        assert dashboards.label("opt-outs") == "opt-outs"


def test_the_page_names_methods_channels_topics_and_stores_in_its_language(
    activity: None, admin_client: Client
) -> None:
    window = {"until": "2026-03-02", "weeks": "4"}
    french = admin_client.get("/admin/dashboard/", window, HTTP_ACCEPT_LANGUAGE="fr")
    body = french.content.decode()
    # Methods (the bars and the table of "How people leave"), channels, topics, stores.
    assert ">Désinscription en un clic</text>" in body
    assert "<td>Désinscription en un clic</td>" in body
    assert "<td>Plainte (signalement de spam)</td>" in body
    assert "<td>E-mail</td>" in body and ">E-mail : solde</text>" in body
    assert "<td>Bons plans</td>" in body and ">Bons plans : solde</text>" in body
    assert "<td>Paris</td>" in body and ">Paris : solde</text>" in body
    for code in ("one_click_unsubscribe", "complaint", ">email", "promotions", "paris-01"):
        assert code not in body, code
    assert "Deals" not in body and "One-click unsubscribe" not in body
    english = admin_client.get("/admin/dashboard/", window, HTTP_ACCEPT_LANGUAGE="en")
    body = english.content.decode()
    assert "<td>One-click unsubscribe</td>" in body
    assert "<td>Complaint (spam report)</td>" in body
    assert "<td>Email</td>" in body and ">Email net</text>" in body
    assert "<td>Deals</td>" in body and ">Deals net</text>" in body
    assert "<td>Paris</td>" in body
    for code in ("one_click_unsubscribe", ">complaint<", ">email<", "promotions", "paris-01"):
        assert code not in body, code
    assert "Bons plans" not in body and "Désinscription" not in body


def test_the_csv_files_keep_the_codes(activity: None, admin_client: Client) -> None:
    window = {"until": "2026-03-02", "weeks": "4"}

    def csv_rows(chart: str) -> list[list[str]]:
        response = admin_client.get(
            f"/admin/dashboard/{chart}.csv", window, HTTP_ACCEPT_LANGUAGE="fr"
        )
        return list(csv.reader(io.StringIO(response.content.decode())))

    methods = csv_rows("unsubscribe")
    assert methods[0] == ["method", "count"]
    assert sorted(methods[1:]) == [["complaint", "1"], ["one_click_unsubscribe", "1"]]
    channels = csv_rows("channel")
    assert channels[0] == ["week", "channel", "opt-ins", "opt-outs", "net"]
    assert ["2026-02-23", "email", "2", "2", "0"] in channels
    assert ["2026-02-23", "promotions", "2", "1", "1"] in csv_rows("topic")
    assert ["2026-02-16", "paris-01", "2", "0", "2"] in csv_rows("store")


def test_a_code_is_named_only_in_its_own_column() -> None:
    from django.utils import translation

    chart = dashboards.Chart(
        "topic",
        "t",
        ["week", "topic", "net"],
        named="topic",
        names={"complaint": "Réclamations"},
    )
    chart.rows = [["2026-02-16", "complaint", 1], ["2026-02-23", "gone", 2]]
    with translation.override("fr"):
        # A topic whose slug is a measure's identifier is shown by its name, not as the measure;
        # a slug without a topic (deleted since) stays as it is.
        # The weeks as dates in words, never ISO strings.
        assert chart.display_rows == [
            ["16 février 2026", "Réclamations", 1],
            ["23 février 2026", "gone", 2],
        ]
        assert dashboards.Chart("t", "t", ["complaint net"], names=chart.names).display_columns == [
            "Réclamations : solde"
        ]


def test_the_wildcard_series_are_named_by_their_meaning() -> None:
    from django.utils import translation

    from consents.selectors.dashboards import SPECIAL_NAMES

    chart = dashboards.Chart("t", "t", ["week", "* net", "promotions net"])
    chart.names = {**SPECIAL_NAMES["topic"], "promotions": "Bons plans"}
    with translation.override("fr"):
        labels = chart.display_columns
    assert "* : solde" not in labels and not any(label.startswith("*") for label in labels)
    assert labels[2] == "Bons plans : solde"
