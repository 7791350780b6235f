"""Lay the ledger out as N hash partitions by contact (PostgreSQL declarative partitioning).

The layout a company with tens of millions of contacts moves to (docs/scaling.md): each contact's
chain lives in one partition, so appends, ``verify_ledger``'s walk by contact range and the
audience query's per-contact lookups each touch one partition's indexes, and a partition can be
vacuumed, reindexed or moved on its own. The table keeps its name, columns, indexes, foreign keys
and append-only triggers; what changes is what PostgreSQL requires of a partitioned table: its
primary key and unique constraints include the partition key (``(id, contact_id)``), so the
evidence's foreign key to an event (which names ``id`` alone) becomes the application's rule,
written in the same transaction as the event (``services._append``, ``bulk``).

Run on a database that holds the ledger as migrations create it (empty or not: its rows are
moved). Used by ``bench/ledger_bench.py --partitions 8``. There is no way back but a dump.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction

TABLE = "consents_event"
APPEND_ONLY = """
CREATE TRIGGER consents_event_append_only BEFORE UPDATE OR DELETE ON {table}
    FOR EACH ROW EXECUTE FUNCTION consents_event_append_only();
CREATE TRIGGER consents_event_no_truncate BEFORE TRUNCATE ON {table}
    FOR EACH STATEMENT EXECUTE FUNCTION consents_event_append_only();
"""


def partitioned(cursor: Any) -> bool:
    cursor.execute("SELECT relkind FROM pg_class WHERE oid = %s::regclass", [TABLE])
    return cursor.fetchone()[0] == "p"


class Command(BaseCommand):
    help = "Lay the consent ledger out as N hash partitions by contact (PostgreSQL)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--partitions", type=int, default=8)

    def handle(self, *args: Any, partitions: int, **options: Any) -> None:
        if connection.vendor != "postgresql":
            raise CommandError("Partitioning is a PostgreSQL layout.")
        if partitions < 2:
            raise CommandError("At least 2 partitions.")
        with transaction.atomic(), connection.cursor() as cursor:
            if partitioned(cursor):
                self.stdout.write(f"{TABLE} is already partitioned.")
                return
            # Deferred foreign-key checks of rows written earlier in this transaction (a test's)
            # are pending trigger events, which ALTER TABLE refuses: run them now.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s", [TABLE]
            )
            indexes = [
                definition
                for name, definition in cursor.fetchall()
                if name not in ("consents_event_pkey", "event_chain_position")
            ]
            cursor.execute(
                "SELECT conname, conrelid::regclass::text, pg_get_constraintdef(oid)"
                " FROM pg_constraint WHERE contype = 'f'"
                " AND (conrelid = %s::regclass OR confrelid = %s::regclass)",
                [TABLE, TABLE],
            )
            foreign = cursor.fetchall()
            for name, table, _ in foreign:
                cursor.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
            new = f"{TABLE}_hashed"
            cursor.execute(
                f"CREATE TABLE {new} (LIKE {TABLE} INCLUDING DEFAULTS INCLUDING CONSTRAINTS"
                " INCLUDING IDENTITY) PARTITION BY HASH (contact_id)"
            )
            cursor.execute(f"ALTER TABLE {new} ADD PRIMARY KEY (id, contact_id)")
            for r in range(partitions):
                cursor.execute(
                    f"CREATE TABLE {TABLE}_p{r} PARTITION OF {new}"
                    f" FOR VALUES WITH (MODULUS {partitions}, REMAINDER {r})"
                )
            cursor.execute(f"INSERT INTO {new} OVERRIDING SYSTEM VALUE SELECT * FROM {TABLE}")
            cursor.execute(f"ALTER TABLE {TABLE} DISABLE TRIGGER consents_event_no_truncate")
            cursor.execute(f"DROP TABLE {TABLE}")
            cursor.execute(f"ALTER TABLE {new} RENAME TO {TABLE}")
            cursor.execute(f"ALTER TABLE {TABLE} RENAME CONSTRAINT {new}_pkey TO {TABLE}_pkey")
            cursor.execute(
                f"ALTER TABLE {TABLE} ADD CONSTRAINT event_chain_position UNIQUE (contact_id, seq)"
            )
            for definition in indexes:
                cursor.execute(definition.replace("CREATE INDEX", "CREATE INDEX IF NOT EXISTS"))
            for name, table, definition in foreign:
                if table == TABLE:  # the ledger's own references (contact, store, notice)
                    cursor.execute(f'ALTER TABLE {TABLE} ADD CONSTRAINT "{name}" {definition}')
            cursor.execute(APPEND_ONLY.format(table=TABLE))
            cursor.execute(
                "SELECT setval(pg_get_serial_sequence(%s, 'id'),"
                f" COALESCE((SELECT MAX(id) FROM {TABLE}), 0) + 1, false)",
                [TABLE],
            )
        self.stdout.write(f"{TABLE}: {partitions} hash partitions by contact.")
