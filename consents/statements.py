"""One row inserted or updated by a statement built once per model and process.

The ORM builds its SQL again at every ``save``, ``create`` and ``update`` (about a third of the
CPU of a ledger append, which writes four rows). The ledger's writer and the outbox use these
instead, for their own tables only: the values are prepared exactly as the ORM prepares them
(``get_db_prep_save``), but no model signal is sent, so a model that a signal receiver watches
(``Contact``, ``Topic``, ``Notice``, ``WebhookEndpoint``) must keep going through the ORM.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from django.db import connection
from django.db.models import Model

M = TypeVar("M", bound=Model)

_INSERTS: dict[tuple[str, type[Model]], tuple[str, list[Any], bool]] = {}
_UPDATES: dict[
    tuple[str, type[Model], tuple[str, ...], tuple[str, ...]], tuple[str, list[Any]]
] = {}


def _quote(name: str) -> str:
    return connection.ops.quote_name(name)


def insert(obj: M) -> M:
    """``obj.save(force_insert=True)`` for a model no signal receiver watches: the row with every
    concrete field's value (the primary key too when it is not generated), its id set on ``obj``."""
    model = type(obj)
    key = (connection.vendor, model)
    built = _INSERTS.get(key)
    if built is None:
        meta = model._meta
        generated = meta.pk if meta.auto_field is not None else None
        fields = [f for f in meta.concrete_fields if f is not generated]
        returning = generated is not None and connection.features.can_return_columns_from_insert
        text = (
            f"INSERT INTO {_quote(meta.db_table)} ({', '.join(_quote(f.column) for f in fields)})"
            f" VALUES ({', '.join(['%s'] * len(fields))})"
        )
        if returning:
            text += f" RETURNING {_quote(generated.column)}"
        built = _INSERTS[key] = (text, fields, returning)
    text, fields, returning = built
    params = [f.get_db_prep_save(f.pre_save(obj, True), connection) for f in fields]
    with connection.cursor() as cursor:
        cursor.execute(text, params)
        if model._meta.auto_field is not None:
            obj.pk = cursor.fetchone()[0] if returning else cursor.lastrowid
    obj._state.adding, obj._state.db = False, connection.alias
    return obj


def update(model: type[Model], where: Mapping[str, Any], **values: Any) -> int:
    """``model.objects.filter(**where).update(**values)`` for plain values (no expressions; a
    foreign key by its id), for a model no signal receiver watches; the number of rows changed."""
    names, keys = tuple(values), tuple(where)
    cache_key = (connection.vendor, model, names, keys)
    built = _UPDATES.get(cache_key)
    if built is None:
        meta = model._meta
        fields = [meta.get_field(name) for name in names]
        targets = [meta.get_field(name) for name in keys]
        sets = ", ".join(f"{_quote(f.column)} = %s" for f in fields)
        match = " AND ".join(f"{_quote(f.column)} = %s" for f in targets)
        text = f"UPDATE {_quote(meta.db_table)} SET {sets} WHERE {match}"
        built = _UPDATES[cache_key] = (text, [*fields, *targets])
    text, fields = built
    params = [
        f.get_db_prep_save(value, connection)
        for f, value in zip(fields, [*values.values(), *where.values()], strict=True)
    ]
    with connection.cursor() as cursor:
        cursor.execute(text, params)
        return cursor.rowcount


# (column index, column expression, converter functions): what the ORM applies to a row it reads.
Converters = list[tuple[int, Any, list[Any]]]


def converters_for(expressions: list[Any]) -> Converters:
    """The ORM's converters of these columns (the backend's, then the field's), where any."""
    found = []
    for i, expression in enumerate(expressions):
        functions = connection.ops.get_db_converters(expression) + expression.get_db_converters(
            connection
        )
        if functions:
            found.append((i, expression, functions))
    return found


def converted(rows: Iterable[Sequence[Any]], converters: Converters) -> list[list[Any]]:
    """Rows read on a cursor, their values converted as the ORM converts them."""
    out = []
    for row in rows:
        values = list(row)
        for i, expression, functions in converters:
            for convert in functions:
                values[i] = convert(values[i], expression, connection)
        out.append(values)
    return out


@dataclass(frozen=True)
class Read:
    """A read's SQL, the parameters it was built with, and its columns' converters."""

    sql: str
    params: list[Any]
    converters: Converters


def spelt(queryset: Any) -> Read:
    """A queryset spelt into SQL once, to run again with other parameters (``rows``). Build it
    with placeholder values in exact lookups only: a lookup that transforms its value
    (``iexact``, ``contains``) compiles the value into its parameter."""
    compiler = queryset.query.get_compiler(using=queryset.db)
    sql, params = compiler.as_sql()
    converters = compiler.get_converters([column for column, _, _ in compiler.select])
    return Read(
        sql, list(params), [(i, column, functions) for i, (functions, column) in converters.items()]
    )


def rows(read: Read, params: list[Any]) -> list[list[Any]]:
    """The rows of a spelt read with these parameters, converted as the ORM converts them."""
    with connection.cursor() as cursor:
        cursor.execute(read.sql, params)
        return converted(cursor.fetchall(), read.converters)


_SELECTS: dict[
    tuple[str, type[Model], str, str, int | None], tuple[str, Converters, list[str]]
] = {}


def select(
    model: type[M], where: str, params: list[Any], *, order_by: str = "", limit: int | None = None
) -> list[M]:
    """``model``'s rows matching ``where`` (SQL on its columns, ``%s`` for ``params``), as the ORM
    builds them: every concrete field, converted as the ORM converts it. For the few reads on the
    busiest paths (the sign-up's), where building the query costs more than running it."""
    key = (connection.vendor, model, where, order_by, limit)
    built = _SELECTS.get(key)
    if built is None:
        meta = model._meta
        table = _quote(meta.db_table)
        fields = list(meta.concrete_fields)
        columns = ", ".join(f"{table}.{_quote(f.column)}" for f in fields)
        text = f"SELECT {columns} FROM {table} WHERE {where}"
        text += f" ORDER BY {order_by or _quote(meta.pk.column)}"
        if limit is not None:
            text += f" LIMIT {int(limit)}"
        converters = converters_for([f.get_col(meta.db_table) for f in fields])
        built = _SELECTS[key] = (text, converters, [f.attname for f in fields])
    text, converters, names = built
    with connection.cursor() as cursor:
        cursor.execute(text, params)
        found = converted(cursor.fetchall(), converters)
    return [model.from_db(connection.alias, names, values) for values in found]


def value(text: str, params: list[Any]) -> Any:
    """The first column of the first row of a read, or None."""
    with connection.cursor() as cursor:
        cursor.execute(text, params)
        row = cursor.fetchone()
    return row[0] if row else None
