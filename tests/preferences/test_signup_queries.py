"""A sign-up with one choice costs a bounded number of queries, and the form page a few."""

from __future__ import annotations

import re

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.test.signals import template_rendered
from django.test.utils import CaptureQueriesContext

from consents import catalogue, statements
from consents.models import Event, Topic
from tests.preferences.pages import signup_data

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("pages", "topics")]


def committed() -> None:
    """What the commit of the fixtures' transaction does: a new catalogue version, trusted."""
    cache.delete(catalogue.CATALOG_KEY)
    catalogue._untrusted.clear()
    catalogue._checked["version"] = None


def test_a_sign_up_with_one_choice_runs_at_most_14_queries(client: Client) -> None:
    committed()
    client.get("/subscribe/")  # the catalogue and notices are read once per process
    with CaptureQueriesContext(connection) as ctx:
        response = client.post(
            "/subscribe/",
            signup_data(choice=["newsletter:email"]),
            REMOTE_ADDR="203.0.113.7",
            HTTP_USER_AGENT="Mozilla/5.0 (test)",
        )
    assert response.status_code == 302
    assert Event.objects.filter(type="opt_in").count() == 1
    sql = [
        statements.spelt_out(q["sql"])  # the statements executed prepared, read as statements
        for q in ctx.captured_queries
        if not q["sql"].startswith(("SAVEPOINT", "RELEASE"))
    ]
    assert len(sql) <= 14, "\n".join(sql)
    if connection.vendor == "postgresql":
        # Statements sent together (``consents.statements.together``): the lock with the
        # address's reads and the ids a new contact and its first event would take, then the
        # rest, the contact's row included: two round trips. The new contact's chain starts
        # empty: its end is not read.
        assert len(sql) <= 2, "\n\n".join(sql)
        assert "nextval" in sql[0] and sql[1].startswith('INSERT INTO "consents_contact"')
        assert sum(statement.count("INSERT INTO") for statement in sql) >= 7
        assert not any('FROM "consents_chainhead"' in statement for statement in sql)
        # The new contact's facts are written once, with its first event already applied.
        facts = [s for s in "\n".join(sql).split(";\n") if '"consents_contactfacts"' in s]
        assert len(facts) == 1 and facts[0].startswith("INSERT INTO"), facts
    # The sign-up's transaction (a savepoint here: the test runs in a transaction). The contact
    # is created without one (a concurrent creation of the same address makes it write nothing)
    # and the services nested in the sign-up take none of their own (two round trips each).
    savepoints = [q["sql"] for q in ctx.captured_queries if q["sql"].startswith("SAVEPOINT")]
    assert len(savepoints) <= 1, savepoints


def test_the_form_page_reads_no_notice_one_by_one(client: Client) -> None:
    committed()
    client.get("/subscribe/")
    with CaptureQueriesContext(connection) as ctx:
        assert client.get("/subscribe/").status_code == 200
    assert len(ctx.captured_queries) <= 2, [q["sql"] for q in ctx.captured_queries]


def _drawn(client: Client, url: str = "/subscribe/", **extra: str) -> tuple[list[str], str]:
    """The templates drawn for one GET of the form page, and the page."""
    drawn: list[str] = []

    def record(sender: object, template: object, **kwargs: object) -> None:
        drawn.append(getattr(template, "name", ""))

    template_rendered.connect(record)
    try:
        response = client.get(url, **extra)
    finally:
        template_rendered.disconnect(record)
    assert response.status_code == 200
    return drawn, response.content.decode()


CHOICES = "preferences/_subscribe_choices.html"


def test_the_unticked_boxes_are_drawn_once_per_catalogue_and_language(client: Client) -> None:
    committed()
    first, page = _drawn(client)
    again, same = _drawn(client)
    assert first.count(CHOICES) == 1 and CHOICES not in again
    assert same == page.replace(
        _token(page, "csrfmiddlewaretoken"), _token(same, "csrfmiddlewaretoken")
    ).replace(_token(page, "notices"), _token(same, "notices"))
    english, _ = _drawn(client, HTTP_ACCEPT_LANGUAGE="en")
    assert english.count(CHOICES) == 1  # another language: drawn for it
    embedded, _ = _drawn(client, "/subscribe/?embed=1&topics=newsletter")
    assert embedded.count(CHOICES) == 1  # another page: drawn for it


def test_a_changed_topic_is_shown_at_once(client: Client) -> None:
    committed()
    _drawn(client)
    topic = Topic.objects.get(slug="newsletter")
    topic.name_fr = "La lettre du jeudi"
    topic.save()
    committed()  # as the commit does
    drawn, page = _drawn(client)
    assert drawn.count(CHOICES) == 1 and "La lettre du jeudi" in page


def test_a_form_shown_again_with_its_errors_is_drawn_whole(client: Client) -> None:
    committed()
    _drawn(client)
    drawn: list[str] = []

    def record(sender: object, template: object, **kwargs: object) -> None:
        drawn.append(getattr(template, "name", ""))

    template_rendered.connect(record)
    try:
        response = client.post("/subscribe/", signup_data(email="", choice=["newsletter:email"]))
    finally:
        template_rendered.disconnect(record)
    assert response.status_code == 200 and CHOICES in drawn
    assert 'value="newsletter:email" id=' in response.content.decode()
    assert "checked" in response.content.decode()


def _token(page: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert match, name
    return match.group(1)
