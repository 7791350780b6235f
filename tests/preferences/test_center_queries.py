"""Rendering the preference page costs the same number of queries whatever the number of topics."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from consents import catalogue, services, statements
from consents.models import Contact
from preferences import center
from tests.preferences.center_fixtures import form_state, open_session

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("pages")]


def person_with_topics(make_topic: Any, make_contact: Any, count: int, tag: str) -> Contact:
    contact = make_contact(email=f"{tag}@example.fr", phone="+33612345678")
    proof = services.Proof(method="web_form", actor="person")
    services.purchase_record(contact=contact, category="books", product="b", proof=proof)
    for i in range(count):
        topic = make_topic(f"{tag}-{i}", channels=["email", "sms", "postal"])
        services.notice_publish(topic=topic, language="fr", text=f"Texte {i}")
        services.consent_grant(contact=contact, topic=topic.slug, channel="email", proof=proof)
        services.consent_withdraw(contact=contact, topic=topic.slug, channel="sms", proof=proof)
    return contact


def queries_for_page(client: Client, contact: Contact) -> int:
    open_session(client, contact)
    with CaptureQueriesContext(connection) as captured:
        response = client.get("/preferences/")
    assert response.status_code == 200
    return len(captured)


def test_page_queries_do_not_grow_with_topics(make_topic: Any, make_contact: Any) -> None:
    few = queries_for_page(Client(), person_with_topics(make_topic, make_contact, 3, "few"))
    many = queries_for_page(Client(), person_with_topics(make_topic, make_contact, 30, "many"))
    assert few == many
    assert few <= 9


def test_a_drawing_reads_the_contact_its_states_and_its_history(
    make_topic: Any, make_contact: Any, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    """Drawn with the catalogue in memory (the page cache off): the contact with its ledger
    position, then the current states and the history with its wordings (in one round trip on
    PostgreSQL, ``statements.reads_together``), with the projections' fold state once the
    history this process holds is long (``center.FOLD_FROM_EVENTS``). The session comes with
    the contact: this process acted for it (``pagecache.prefetch_contact``)."""
    settings.PREFERENCE_PAGE_CACHE_SECONDS = 0
    client = Client()
    with django_capture_on_commit_callbacks(execute=True):  # the catalogue's changes committed
        person = person_with_topics(make_topic, make_contact, 5, "drawn")
    queries_for_page(client, person)
    with CaptureQueriesContext(connection) as captured:
        response = client.get("/preferences/")
    assert response.status_code == 200
    reads = 2 if connection.vendor == "postgresql" else 3
    assert len(captured) == reads, [q["sql"][:80] for q in captured]
    if connection.vendor == "postgresql":
        assert statements.spelt_out(captured[-1]["sql"]).count("SELECT") == 2
    assert "consents_contactfacts" not in statements.spelt_out(captured[-1]["sql"])
    # A long history: its fold state read with the rest.
    proof = services.Proof(method="web_form", actor="person")
    for _ in range(center.FOLD_FROM_EVENTS // 2):
        services.consent_withdraw(contact=person, topic="drawn-0", channel="email", proof=proof)
        services.consent_grant(contact=person, topic="drawn-0", channel="email", proof=proof)
    client.get("/preferences/")  # the process holds the history
    with CaptureQueriesContext(connection) as captured:
        assert client.get("/preferences/").status_code == 200
    assert len(captured) == reads + (connection.vendor != "postgresql")
    assert "consents_contactfacts" in statements.spelt_out(captured[-1]["sql"])


def _writes_session(sql: str) -> bool:
    """A write to the session table (a read may come prepared: ``PREPARE ... AS SELECT``)."""
    return re.search(r'(INSERT INTO|UPDATE|DELETE FROM) "?django_session', sql) is not None


def test_a_save_leaves_its_message_without_writing_the_session(
    make_topic: Any, make_contact: Any
) -> None:
    """The message of a save goes to the next page in a cookie signed for this session, shown
    once: neither the save nor the page that shows it writes the session."""
    person = person_with_topics(make_topic, make_contact, 2, "flash")
    client = Client()
    open_session(client, person)
    page = client.get("/preferences/").content.decode()
    data = form_state(page)
    data["on"] = [v for v in data["on"] if v != "flash-0:email"]
    with CaptureQueriesContext(connection) as saving:
        response = client.post("/preferences/", data)
    assert response.status_code == 302
    assert not [q["sql"] for q in saving.captured_queries if _writes_session(q["sql"])]
    with CaptureQueriesContext(connection) as showing:
        shown = client.get("/preferences/").content.decode()
    assert 'id="saved"' in shown
    assert not [q["sql"] for q in showing.captured_queries if _writes_session(q["sql"])]
    assert 'id="saved"' not in client.get("/preferences/").content.decode()  # once
    # Signed for this session: another browser session cannot show it.
    other = Client()
    open_session(other, person)
    other.cookies["assent_saved"] = (
        client.cookies.get("assent_saved") or response.cookies["assent_saved"].value
    )
    assert 'id="saved"' not in other.get("/preferences/").content.decode()


def test_a_save_of_one_box_sends_its_statements_together(
    make_topic: Any, make_contact: Any
) -> None:
    """On PostgreSQL (``consents.statements.together``): the row lock with the state's reads and
    the chain's end in one round trip, every write of the change in a second."""
    person = person_with_topics(make_topic, make_contact, 3, "together")
    client = Client()
    open_session(client, person)
    data = form_state(client.get("/preferences/").content.decode())
    data["on"] = [v for v in data["on"] if v != "together-1:email"]  # one box unticked
    # What the commit of the fixtures' transaction does: the catalogue trusted, read once.
    cache.delete(catalogue.CATALOG_KEY)
    catalogue._untrusted.clear()
    catalogue._checked["version"] = None
    catalogue.snapshot()
    with CaptureQueriesContext(connection) as saving:
        assert client.post("/preferences/", data).status_code == 302
    sent = [
        statements.spelt_out(q["sql"])
        for q in saving.captured_queries
        if not q["sql"].startswith(("SAVEPOINT", "RELEASE"))
    ]
    assert person.events.filter(type="opt_out", topic="together-1", channel="email").count() == 1
    if connection.vendor != "postgresql":
        return
    # The save's two round trips, from the row lock on.
    locked = next(i for i, sql in enumerate(sent) if "FOR UPDATE" in sql)
    assert len(sent[locked:]) == 2, "\n\n".join(sent)
    assert "consents_event" in sent[locked]  # the history, with the lock
    # The chain's end with the lock, after it (what a concurrent save committed meanwhile).
    lock_at = sent[locked].index("FOR UPDATE")
    assert sent[locked].index('FROM "consents_chainhead"') > lock_at
    assert 'INSERT INTO "consents_event"' in sent[-1]
