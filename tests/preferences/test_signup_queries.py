"""A sign-up with one choice costs a bounded number of queries, and the form page a few."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from consents import catalogue
from consents.models import Event
from tests.preferences.pages import signup_data

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("pages", "topics")]


def committed() -> None:
    """What the commit of the fixtures' transaction does: a new catalogue version, trusted."""
    cache.delete(catalogue.CATALOG_KEY)
    catalogue._untrusted.clear()
    catalogue._checked["version"] = None


def test_a_sign_up_with_one_choice_runs_at_most_15_queries(client: Client) -> None:
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
        q["sql"] for q in ctx.captured_queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE"))
    ]
    assert len(sql) <= 15, "\n".join(sql)


def test_the_form_page_reads_no_notice_one_by_one(client: Client) -> None:
    committed()
    client.get("/subscribe/")
    with CaptureQueriesContext(connection) as ctx:
        assert client.get("/subscribe/").status_code == 200
    assert len(ctx.captured_queries) <= 2, [q["sql"] for q in ctx.captured_queries]
