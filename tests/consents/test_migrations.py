"""Indexes added to busy tables are built without blocking writes on PostgreSQL."""

from __future__ import annotations

import io

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
