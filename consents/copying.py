"""Binary ``COPY`` into a table (PostgreSQL), for the two writers that append many rows at once:
the bulk loader of imports (``consents.bulk``) and the batch append of the tracking drain
(``consents.services.append_batch``). Cheaper than an ``INSERT`` on both sides; the ids are
reserved from the table's sequence first, so that the rows can be chained and referenced before
they are sent."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from psycopg import sql


def reserve_ids(cursor: Any, table: str, n: int, column: str = "id") -> list[int]:
    """``n`` values of the sequence behind ``table.column``, in order, as one array. The sequence
    is named once per call: ``pg_get_serial_sequence`` as ``nextval``'s argument would look it up
    in the catalogue for every value, most of the server's time here."""
    if n == 0:
        return []
    cursor.execute(
        "WITH sequence AS MATERIALIZED (SELECT pg_get_serial_sequence(%s, %s)::regclass AS name)"
        " SELECT array_agg(id ORDER BY id) FROM ("
        "  SELECT nextval(sequence.name) AS id FROM sequence, generate_series(1, %s)"
        " ) AS reserved",
        [table, column, n],
    )
    return cursor.fetchone()[0]


def column_types(cursor: Any, table: str, columns: Sequence[str]) -> list[int]:
    """The type oids of ``columns``, in order: binary COPY sends each value in its column's type."""
    cursor.execute(
        "SELECT attname, atttypid FROM pg_attribute"
        " WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
        [table],
    )
    oids = dict(cursor.fetchall())
    return [oids[column] for column in columns]


@contextlib.contextmanager
def copy_in(cursor: Any, table: str, columns: Sequence[str], types: Sequence[int]) -> Iterator[Any]:
    """``COPY table (columns) FROM STDIN (FORMAT BINARY)``, the values sent as ``types``."""
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        sql.Identifier(table), sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    )
    with cursor.copy(statement) as copy:
        copy.set_types(list(types))
        yield copy
