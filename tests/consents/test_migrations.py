"""Indexes added to busy tables are built without blocking writes on PostgreSQL."""

from __future__ import annotations

import importlib
import io
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection


def sql_of(app: str, migration: str) -> str:
    out = io.StringIO()
    call_command("sqlmigrate", app, migration, stdout=out)
    return out.getvalue()


# sqlmigrate opens its own schema editor, which cannot run inside the test's transaction.
@pytest.mark.django_db(transaction=True)
def test_the_outbox_address_index_is_built_online() -> None:
    sql = sql_of("consents", "0011")
    if connection.vendor == "postgresql":
        assert 'CREATE INDEX CONCURRENTLY "outbox_upper_to_template"' in sql
        assert "BEGIN;" not in sql  # CONCURRENTLY cannot run in a transaction
    else:
        assert 'CREATE INDEX "outbox_upper_to_template"' in sql


@pytest.mark.postgres
@pytest.mark.django_db
def test_the_index_built_by_the_migration_is_valid() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indisvalid FROM pg_index WHERE indexrelid::regclass::text = %s",
            ["outbox_upper_to_template"],
        )
        assert cursor.fetchone() == (True,)


@pytest.mark.django_db
def test_emails_waiting_at_the_upgrade_keep_their_links_as_intents(make_contact: Any) -> None:
    """Rows written before the outbox held intents carried live links: the migration keeps what
    each link was for and drops it, so that the email gets fresh links when it is sent."""
    from django.apps import apps
    from django.core import signing

    from consents import clock
    from consents.models import Outbox

    migration = importlib.import_module("consents.migrations.0016_outbox_intents_and_retries")
    contact = make_contact(email="paul@example.fr")
    old = {"c": contact.public_id, "v": 1}
    confirm = signing.dumps({**old, "s": "n0nce"}, salt="assent.links.confirm", compress=True)
    unsubscribe = signing.dumps(old, salt="assent.links.unsubscribe", compress=True)
    site = "https://prefs.example"
    context = {
        "confirm_url": f"{site}/confirm/{confirm}/",
        "unsubscribe_url": f"{site}/unsubscribe/{unsubscribe}/",
        "first_name": "Paul",
    }
    pending, sent = (
        Outbox.objects.create(
            contact=contact,
            template="signup-confirm",
            to=contact.email,
            context=context,
            status=status,
            created_at=clock.now(),
        )
        for status in ("pending", "sent")
    )
    migration.pending_links_to_intents(apps, None)
    pending.refresh_from_db()
    assert pending.context == {"first_name": "Paul"}
    assert pending.links == {
        "confirm_url": {"scope": "confirm", "params": {"s": "n0nce"}},
        "unsubscribe_url": {"scope": "unsubscribe", "params": {}},
    }
    sent.refresh_from_db()
    assert sent.links == {} and sent.context == context  # what was sent stays as it was


# The tables written with every event, projection change, imported row or webhook delivery.
WRITTEN_PER_EVENT = [
    "consents_event",
    "consents_chainhead",
    "consents_evidence",
    "consents_contactfacts",
    "consents_consentstate",
    "consents_channelstate",
    "consents_catalogfact",
    "consents_importedrow",
    "consents_webhookdelivery",
    "consents_outbox",
]


@pytest.mark.postgres
@pytest.mark.django_db
def test_no_index_of_the_busiest_tables_repeats_the_start_of_another() -> None:
    """Each index is one more write per row: none may be served whole by another index of the
    same table (its columns, with the same operator classes, leading the other's)."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT a.indexrelid::regclass::text, b.indexrelid::regclass::text
            FROM pg_index a JOIN pg_index b
              ON a.indrelid = b.indrelid AND a.indexrelid <> b.indexrelid
            WHERE a.indrelid::regclass::text = ANY(%s)
              AND NOT a.indisunique AND a.indpred IS NULL AND b.indpred IS NULL
              AND a.indnkeyatts <= b.indnkeyatts
              AND (a.indkey::int2[])[0:a.indnkeyatts - 1] = (b.indkey::int2[])[0:a.indnkeyatts - 1]
              AND (a.indclass::oid[])[0:a.indnkeyatts - 1]
                = (b.indclass::oid[])[0:a.indnkeyatts - 1]
            """,
            [WRITTEN_PER_EVENT],
        )
        assert cursor.fetchall() == []


@pytest.mark.postgres
@pytest.mark.django_db
def test_the_public_id_phone_and_fingerprint_keep_only_their_equality_indexes() -> None:
    from consents.models import Contact, ContactFacts

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tablename, indexdef FROM pg_indexes WHERE tablename IN (%s, %s)",
            [Contact._meta.db_table, ContactFacts._meta.db_table],
        )
        indexes = cursor.fetchall()
    for column in ("public_id", "phone", "rules_fingerprint"):
        on_it = [definition for _, definition in indexes if f"({column}" in definition]
        assert on_it, column  # equality lookups are still served
        assert not [d for d in on_it if "pattern_ops" in d], column
