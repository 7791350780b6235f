"""One row inserted or updated by a statement built once per model and process.

The ORM builds its SQL again at every ``save``, ``create`` and ``update`` (about a third of the
CPU of a ledger append, which writes four rows). The ledger's writer and the outbox use these
instead, for their own tables only: the values are prepared exactly as the ORM prepares them
(``get_db_prep_save``), but no model signal is sent, so a model that a signal receiver watches
(``Contact``, ``Topic``, ``Notice``, ``WebhookEndpoint``) must keep going through the ORM.

Inside ``together()`` (PostgreSQL), the writes whose answer nobody waits for are queued and sent
in one round trip with whatever statement comes next (``fetch``, an insert whose id is needed
now, any other query the connection runs) or when the block ends: a ledger append writes five to
eight rows, and each round trip to the database was a wait of its own.
"""

from __future__ import annotations

import contextlib
import itertools
import re
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, TypeVar

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, connections, models
from django.db.models import Model
from psycopg.pq import ExecStatus, TransactionStatus

M = TypeVar("M", bound=Model)

_INSERTS: dict[
    tuple[str, type[Model], bool, bool], tuple[str, list[Any], bool, list[type | None]]
] = {}
_UPDATES: dict[
    tuple[str, type[Model], tuple[str, ...], tuple[str, ...]], tuple[str, list[Any]]
] = {}


# Fields whose value of exactly this type the ORM sends as it is (``get_db_prep_save`` returns
# it unchanged, and so does ``pre_save``: no default computed at save time); a foreign key is
# its target's. A value of another type (a lazy text, a choice, a number in a text field) goes
# through the field as the ORM would send it.
_PLAIN_KINDS: dict[type, type] = {
    **dict.fromkeys((models.CharField, models.TextField, models.SlugField, models.EmailField), str),
    **dict.fromkeys(
        (
            models.AutoField,
            models.BigAutoField,
            models.IntegerField,
            models.BigIntegerField,
            models.SmallIntegerField,
            models.PositiveIntegerField,
            models.PositiveBigIntegerField,
            models.PositiveSmallIntegerField,
        ),
        int,
    ),
    models.BooleanField: bool,
}


def plain_kinds(fields: list[Any]) -> list[type | None]:
    """Per field, the type of the values ``insert`` sends without asking the field (the ORM's
    preparation of a row was a tenth of a sign-up's Python), or None (always through it)."""
    kinds: list[type | None] = []
    for f in fields:
        target = f.target_field if isinstance(f, models.ForeignKey) else f
        kinds.append(_PLAIN_KINDS.get(type(target)))
    return kinds


def values_of(
    obj: Any, fields: list[Any], kinds: list[type | None], conn: Any, *, adding: bool = True
) -> list[Any]:
    """``obj``'s values of ``fields`` as the ORM sends them (``get_db_prep_save``, after
    ``pre_save`` for a row being added: ``insert``; as they are for an ``UPDATE``:
    ``projections.rows_update``), the plain ones (``plain_kinds``) as they are."""
    values = []
    for f, kind in zip(fields, kinds, strict=True):
        if kind is None:
            value = f.pre_save(obj, True) if adding else getattr(obj, f.attname)
            values.append(f.get_db_prep_save(value, conn))
            continue
        value = getattr(obj, f.attname)
        values.append(
            value if value is None or type(value) is kind else f.get_db_prep_save(value, conn)
        )
    return values


def _quote(name: str) -> str:
    return connection.ops.quote_name(name)


def insert(obj: M, *, later: bool = False, unless_taken: bool = False) -> M:
    """``obj.save(force_insert=True)`` for a model no signal receiver watches: the row with every
    concrete field's value (the primary key too when it is set or not generated), its id set on
    ``obj``. Inside ``together()`` the row is queued; one whose id the database generates is sent
    at once (with the queue), unless ``later``: the caller reads no ``obj.pk`` before the block
    ends, when the queue is sent and the id set. ``unless_taken``: nothing is written when the
    row would break a unique constraint (PostgreSQL's ``ON CONFLICT DO NOTHING``; a generated
    id is then left None), where a savepoint would have cost two more round trips."""
    # The wrapper itself: each look through the ``connection`` proxy is a thread-local look-up.
    conn = connections[DEFAULT_DB_ALIAS]
    model = type(obj)
    meta = model._meta
    given = meta.auto_field is not None and obj.pk is not None
    key = (conn.vendor, model, given, unless_taken)
    built = _INSERTS.get(key)
    if built is None:
        generated = meta.pk if meta.auto_field is not None and not given else None
        fields = [f for f in meta.concrete_fields if f is not generated]
        returning = generated is not None and conn.features.can_return_columns_from_insert
        text = (
            f"INSERT INTO {_quote(meta.db_table)} ({', '.join(_quote(f.column) for f in fields)})"
            f" VALUES ({', '.join(['%s'] * len(fields))})"
        )
        if unless_taken:
            text += " ON CONFLICT DO NOTHING"
        if returning:
            text += f" RETURNING {_quote(generated.column)}"
        built = _INSERTS[key] = (text, fields, returning, plain_kinds(fields))
    text, fields, returning, kinds = built
    params = values_of(obj, fields, kinds, conn)
    queue = _queue(write=True, conn=conn)
    if queue is not None:
        item = _Queued(text, params, obj if returning else None, name=_name(text))
        item.table = model
        if not unless_taken and obj.pk is not None:
            item.row = (obj.pk, fields)  # an update of it may still join it (``_joined``)
        queue.append(item)
        obj._state.adding, obj._state.db = False, conn.alias
        if returning and not later:
            flush()
        return obj
    wanted = meta.auto_field is not None and not given  # the id the database gives
    # Prepared on this connection, nothing watching: on the kept driver cursor, as
    # ``rows_prepared`` (a webhook's one insert cost more in Django's cursor than in itself).
    direct = _prepared_unwatched(conn, _name(text), params)
    if direct is not None:
        if wanted:
            rows = direct.fetchall()
            obj.pk = rows[0][0] if rows else None
    else:
        with conn.cursor() as cursor:
            execute_prepared(cursor, _name(text), text, params)
            if wanted:
                if returning:
                    row = cursor.fetchone()
                    obj.pk = row[0] if row else None
                else:
                    obj.pk = cursor.lastrowid
    obj._state.adding, obj._state.db = False, conn.alias
    return obj


def update(model: type[Model], where: Mapping[str, Any], **values: Any) -> int | None:
    """``model.objects.filter(**where).update(**values)`` for plain values (no expressions; a
    foreign key by its id), for a model no signal receiver watches; the number of rows changed,
    or None inside ``together()`` (the statement is queued)."""
    conn = connections[DEFAULT_DB_ALIAS]
    names, keys = tuple(values), tuple(where)
    cache_key = (conn.vendor, model, names, keys)
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
        f.get_db_prep_save(value, conn)
        for f, value in zip(fields, [*values.values(), *where.values()], strict=True)
    ]
    queue = _queue(write=True, conn=conn)
    if queue is not None:
        if not _joined(queue, model, where, values):
            queue.append(_Queued(text, params, name=_name(text), table=model))
        return None
    with connection.cursor() as cursor:
        cursor.execute(text, params)
        return cursor.rowcount


def _joined(
    queue: list[_Queued], model: type[Model], where: Mapping[str, Any], values: Mapping[str, Any]
) -> bool:
    """An update of one row, by its primary key, whose insert is still queued with nothing
    after it that reads (a read, a lock) or writes that table: the insert takes the new values,
    and the update is not sent (a new contact's facts, written at its creation and again at its
    first event, one statement instead of two). Nothing can tell the two apart: no statement
    sees the row between them."""
    if len(where) != 1:
        return False
    meta = model._meta
    ((key, pk),) = where.items()
    if key not in (meta.pk.name, meta.pk.attname):
        return False
    for item in reversed(queue):
        if item.answer is not None:
            return False  # a read, a lock or a delete after the insert: it saw the row inserted
        if item.table is not model:
            continue
        if item.row is None or item.row[0] != pk:
            return False  # another write of the table after it: kept in order
        fields = item.row[1]
        for name, value in values.items():
            field = meta.get_field(name)
            item.params[fields.index(field)] = field.get_db_prep_save(value, connection)
        return True
    return False


def delete(model: type[Model], where: Mapping[str, Any]) -> None:
    """``model.objects.filter(**where).delete()`` for plain values, for a model no signal
    receiver watches and no other row points to (no cascade): queued inside ``together()``."""
    keys = tuple(where)
    cache_key = (connection.vendor, model, keys)
    built = _DELETES.get(cache_key)
    if built is None:
        meta = model._meta
        targets = [meta.get_field(name) for name in keys]
        match = " AND ".join(f"{_quote(f.column)} = %s" for f in targets)
        built = _DELETES[cache_key] = (
            f"DELETE FROM {_quote(meta.db_table)} WHERE {match}",
            targets,
        )
    text, fields = built
    params = [
        f.get_db_prep_save(value, connection)
        for f, value in zip(fields, where.values(), strict=True)
    ]
    _queued(text, params, write=True)


_DELETES: dict[tuple[str, type[Model], tuple[str, ...]], tuple[str, list[Any]]] = {}


# --- Statements sent together -------------------------------------------------------------------


class Pending:
    """The answer of a statement queued inside ``together()``: ``result`` sends the queue first
    if it has not gone yet. Outside the block the statement has run already."""

    __slots__ = ("_convert", "_result", "_sent")

    def __init__(self, convert: Callable[[list[tuple[Any, ...]]], Any] | None = None) -> None:
        self._convert = convert
        self._sent = False
        self._result: Any = None

    @classmethod
    def done(cls, result: Any) -> Pending:
        """An answer known without asking the database."""
        answer = cls()
        answer._result, answer._sent = result, True
        return answer

    @classmethod
    def then(cls, answer: Pending, convert: Callable[[Any], Any]) -> Pending:
        """``convert`` of ``answer``'s result, once it has come."""
        return _Derived(answer, convert)

    def _set(self, rows: list[tuple[Any, ...]]) -> None:
        self._result = self._convert(rows) if self._convert is not None else rows
        self._sent = True

    @property
    def result(self) -> Any:
        if not self._sent:
            flush()
        if not self._sent:
            raise RuntimeError("this statement was never sent")
        return self._result


class _Derived(Pending):
    __slots__ = ("_source",)

    def __init__(self, source: Pending, convert: Callable[[Any], Any]) -> None:
        super().__init__(convert)
        self._source = source

    @property
    def result(self) -> Any:
        if not self._sent:
            self._result, self._sent = self._convert(self._source.result), True
        return self._result


@dataclass
class _Queued:
    sql: str
    params: list[Any]
    returning: Model | None = None  # the object whose generated id the statement returns
    answer: Pending | None = None  # a read: its rows
    name: str | None = None  # executed prepared under this name (``_name``)
    table: type[Model] | None = None  # the model an insert or update of this module writes
    row: tuple[Any, list[Any]] | None = None  # an insert's primary key and fields


_QUEUE = "_assent_statements_queue"


class _Reads(list):  # type: ignore[type-arg]
    """The queue of ``reads_together``: reads only."""


def _queue(*, write: bool = False, conn: Any = None) -> list[_Queued] | None:
    """The queue of the block being sent together, if any; a write refuses ``reads_together``'s.
    ``conn``: the default connection's wrapper, when the caller holds it already."""
    queue = getattr(conn or connections[DEFAULT_DB_ALIAS], _QUEUE, None)
    if write and isinstance(queue, _Reads):
        raise RuntimeError("only reads are sent together outside a transaction")
    return queue


def sending_together() -> bool:
    """Is a ``together()`` block open on the connection (what is queued now goes when that
    block sends it, which may be after the caller has returned)?"""
    return _queue() is not None


@contextlib.contextmanager
def reads_together() -> Iterator[None]:
    """``together()`` for reads outside a transaction (a page that only reads): its reads are
    sent in one round trip, when one of their answers is asked for or the block ends; a write
    queued there raises. Inside ``together()`` the outer block sends. Each statement of the
    round trip sees what was committed when it starts, as it would have on its own."""
    conn = connections[DEFAULT_DB_ALIAS]
    if conn.in_atomic_block:
        with together():
            yield
    elif conn.vendor != "postgresql" or getattr(conn, _QUEUE, None) is not None:
        yield
    else:
        with _sending(conn, _Reads()):
            yield


@contextlib.contextmanager
def together() -> Iterator[None]:
    """Within the block, statements are queued and sent in one round trip when an answer is
    needed: the writes of ``insert`` and ``update``, and the reads and locks of ``run``,
    ``read``, ``select`` and ``value``; the queue goes when one of their answers is asked for,
    before any other statement the connection runs (in order: every read sees the writes before
    it, a savepoint or its release covers them as it would have), or when the block ends.

    PostgreSQL only (elsewhere each statement runs at once, as outside the block), inside a
    transaction only. PostgreSQL runs the statements of one round trip one after the other, each
    with its own snapshot: a read queued after a lock sees what the lock waited for. A statement
    that fails raises where the queue is sent; the caller's transaction is undone as for any
    failed statement. Also a decorator, under ``transaction.atomic``."""
    conn = connections[DEFAULT_DB_ALIAS]
    if conn.vendor != "postgresql" or getattr(conn, _QUEUE, None) is not None:
        yield  # elsewhere, or nested: the outer block sends
        return
    if not conn.in_atomic_block:
        raise RuntimeError("statements sent together belong to a transaction")
    with _sending(conn, []):
        yield


@contextlib.contextmanager
def _sending(conn: Any, queue: list[_Queued]) -> Iterator[None]:
    setattr(conn, _QUEUE, queue)
    try:
        with conn.execute_wrapper(_send_first):
            try:
                yield
            except BaseException:
                _send_after_error(conn)
                raise
            flush()
    finally:
        setattr(conn, _QUEUE, None)


def _send_first(
    execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any
) -> Any:
    """Any other statement the connection runs inside ``together()``: the queue goes first."""
    flush()
    return execute(sql, params, many, context)


def _send_after_error(conn: Any) -> None:
    """What was queued before an exception is written, as it would have been at once (a caller
    may catch the exception and commit); unless the transaction is already failed, when nothing
    more can be written and the original exception is the one to see."""
    try:
        flush()
    except Exception:
        conn.needs_rollback = True


def flush() -> None:
    """Send the queue (if any) in one round trip; set the ids and answers it returns."""
    queue = _queue()
    if not queue:
        return
    items = list(queue)
    queue.clear()
    with _round_trip_cursor() as cursor:
        # Each statement's values bound as psycopg binds them (its own text, short, parsed once
        # per process), then the whole sent as it is: a long text with many values would be
        # parsed again at every call. This module's own writes, and the reads asked with
        # ``prepare``, are executed prepared (their parsing and planning were a third of
        # PostgreSQL's work on a sign-up), prepared in the round trip of their first execution
        # on the connection and known as prepared once it has come back.
        bind = cursor.cursor.mogrify
        known = _known_prepared()
        literal = literals() if known is not None else None  # a speller, found once
        texts: list[str] = []
        answers: list[_Queued | None] = []  # per statement sent: its item, None for a PREPARE
        fresh: dict[str, str] = {}
        for item in items:
            if item.name is None or known is None:
                texts.append(bind(item.sql, item.params))
            else:
                execute = known.get(item.name) or fresh.get(item.name)
                if execute is None:
                    prepare, execute = _preparation(item.name, item.sql, len(item.params))
                    fresh[item.name] = execute
                    texts.append(prepare)
                    answers.append(None)
                texts.append(_executed(execute, item.params, literal))
            answers.append(item)
        begin = _begin_due(cursor)
        if begin is not None:
            texts.insert(0, begin)
            answers.insert(0, None)
        with _begun_here(cursor, begin is not None):
            cursor.execute(";\n".join(texts))
        if known is not None:
            known.update(fresh)
        # The answers read from the driver's cursor: the statements have run (an error would
        # have been raised above, as Django's), and Django's wrapping of each call was a tenth
        # of the round trip's cost.
        raw = cursor.cursor
        for i, item in enumerate(answers):
            if i:
                raw.nextset()
            if item is None:
                continue
            if item.returning is not None:
                row = raw.fetchone()
                item.returning.pk = row[0] if row else None
            elif item.answer is not None:
                item.answer._set(raw.fetchall() if _has_rows(raw) else [])


@contextlib.contextmanager
def _round_trip_cursor() -> Iterator[Any]:
    """A cursor for ``flush``'s round trip: the kept driver cursor (``_unwatched``; the queue
    ``together``'s execute wrapper would send is the one ``flush`` has just taken), else a
    Django cursor."""
    conn = connections[DEFAULT_DB_ALIAS]
    direct = _unwatched(conn, own_wrapper=_send_first)
    if direct is not None:
        yield direct
        return
    with conn.cursor() as cursor:
        yield cursor


def _unwatched(conn: Any, *, own_wrapper: Any = None) -> _Direct | None:
    """The driver cursor kept for the connection (``_kept_cursor``), behind the checks and the
    error wrapping of a Django cursor, while nothing watches the connection's queries: no query
    log (as under ``DEBUG`` or a test's count) and no execute wrapper but ``own_wrapper``; None
    otherwise, or on another database. Creating and wrapping a Django cursor per statement cost
    more than a page served again's one query did."""
    if (
        conn.vendor != "postgresql"
        or conn.queries_logged
        or any(wrapper is not own_wrapper for wrapper in conn.execute_wrappers)
    ):
        return None
    conn.close_if_health_check_failed()
    conn.ensure_connection()
    conn.validate_thread_sharing()
    return _Direct(conn, _kept_cursor(conn))


class _Direct:
    """What ``flush`` and ``rows_prepared`` ask of a Django cursor (``execute`` of a text
    without parameters, ``fetchall``, the driver's cursor as ``cursor``), done on the driver's
    cursor as Django's cursor does it."""

    __slots__ = ("conn", "cursor")

    def __init__(self, conn: Any, cursor: Any) -> None:
        self.conn, self.cursor = conn, cursor

    def execute(self, sql: str) -> None:
        self.conn.validate_no_broken_transaction()
        with self.conn.wrap_database_errors:
            self.cursor.execute(sql)

    def fetchall(self) -> list[tuple[Any, ...]]:
        with self.conn.wrap_database_errors:
            return self.cursor.fetchall()


def _has_rows(raw: Any) -> bool:
    """Did the driver cursor's current statement return rows (``description`` is not None),
    without building its columns' descriptions?"""
    result = raw.pgresult
    return result is not None and (bool(result.nfields) or result.status == ExecStatus.TUPLES_OK)


def _begin_due(cursor: Any) -> str | None:
    """The ``BEGIN`` psycopg is about to send in a round trip of its own before this cursor's
    next statement (the first of a transaction: psycopg opens it then, not when Django's
    ``atomic`` starts), to send with the statement instead; None when no transaction is to
    begin (one is open, or the connection commits each statement), on another database, or
    with a psycopg that does not say."""
    raw = getattr(cursor.cursor, "connection", None)
    start = getattr(raw, "_get_tx_start_command", None)
    if start is None or getattr(raw, "_autocommit", True):
        return None
    if raw.pgconn.transaction_status != TransactionStatus.IDLE:
        return None
    return start().decode()


@contextlib.contextmanager
def _begun_here(cursor: Any, begun: bool) -> Iterator[None]:
    """While the round trip that carries its own ``BEGIN`` (``_begin_due``) is sent: psycopg
    told not to open a transaction before it (as it would not on a connection that commits each
    statement). Whatever the round trip's fate, the connection is then as psycopg left it: in
    the transaction begun (or failed) there, or, if nothing ran, with none, opened as usual by
    the next statement."""
    if not begun:
        yield
        return
    raw = cursor.cursor.connection
    raw._autocommit = True
    try:
        yield
    finally:
        raw._autocommit = False


_NAMES: dict[str, str] = {}


def _name(text: str) -> str:
    """The name this process prepares a statement of its own under (per text)."""
    name = _NAMES.get(text)
    if name is None:
        name = _NAMES[text] = f"assent_w{len(_NAMES) + 1}"
    return name


def spelt_out(sql: str) -> str:
    """A round trip as captured, read as the statements it ran: each execution of this module's
    prepared statements (``EXECUTE assent_w<n>_<m>(values)``) given the statement's own text
    before its values, and their preparations (``PREPARE ... AS``) left out. For reading logs
    and for tests; the statements are split where ``flush`` joined them."""
    texts = {name: text for text, name in _NAMES.items()}
    spelt = []
    for statement in sql.split(";\n"):
        if re.match(r"PREPARE assent_w\d+_\d+ AS ", statement):
            continue
        named = re.match(r"EXECUTE (assent_w\d+)_\d+", statement)
        if named and named.group(1) in texts:
            statement = f"{texts[named.group(1)]} /* {statement[named.end() :]} */"
        spelt.append(statement)
    return ";\n".join(spelt)


def _queued(
    sql: str,
    params: Sequence[Any],
    convert: Any = None,
    *,
    write: bool = False,
    prepare: bool = False,
) -> Pending:
    """``prepare``: a statement whose every parameter's type PostgreSQL can infer from where it
    stands (a column it is compared with or written to, a function's argument), executed
    prepared when it is sent with a queue (``flush``)."""
    answer = Pending(convert)
    queue = _queue(write=write)
    if queue is not None:
        queue.append(
            _Queued(sql, list(params), answer=answer, name=_name(sql) if prepare else None)
        )
        return answer
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        answer._set(cursor.fetchall() if cursor.description is not None else [])
    return answer


def run(sql: str, params: Sequence[Any], *, prepare: bool = False) -> None:
    """A statement whose answer nobody reads (a lock): queued inside ``together()``."""
    _queued(sql, params, write=True, prepare=prepare)


def read(sql: str, params: Sequence[Any], *, prepare: bool = False) -> Pending:
    """A read's rows (``.result``); inside ``together()`` queued until they are asked for."""
    return _queued(sql, params, prepare=prepare)


def fetch(sql: str, params: Sequence[Any], *, prepare: bool = False) -> list[tuple[Any, ...]]:
    """The rows of a read; inside ``together()`` sent in the same round trip as the queue."""
    return read(sql, params, prepare=prepare).result


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


def rows(read: Read, params: list[Any], *, later: bool = False, prepare: bool = False) -> Any:
    """The rows of a spelt read with these parameters, converted as the ORM converts them (a
    ``Pending`` of them, ``later``: queued inside ``together()``; ``prepare`` as ``_queued``)."""
    answer = _queued(
        read.sql, params, lambda found: converted(found, read.converters), prepare=prepare
    )
    return answer if later else answer.result


_SELECTS: dict[
    tuple[str, type[Model], str, str, int | None, bool], tuple[str, Converters, list[str]]
] = {}


def select(
    model: type[M],
    where: str,
    params: list[Any],
    *,
    order_by: str = "",
    limit: int | None = None,
    later: bool = False,
    for_update: bool = False,
) -> Any:
    """``model``'s rows matching ``where`` (SQL on its columns, ``%s`` for ``params``), as the ORM
    builds them: every concrete field, converted as the ORM converts it. For the few reads on the
    busiest paths (the sign-up's), where building the query costs more than running it. With
    ``later``, a ``Pending`` whose ``result`` is that list (queued inside ``together()``, and
    executed prepared: ``where`` compares columns with its values, whose types PostgreSQL infers);
    ``for_update``: the rows locked (``SELECT ... FOR UPDATE`` where the database has it)."""
    for_update = for_update and connection.features.has_select_for_update
    key = (connection.vendor, model, where, order_by, limit, for_update)
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
        if for_update:
            text += " FOR UPDATE"
        converters = converters_for([f.get_col(meta.db_table) for f in fields])
        built = _SELECTS[key] = (text, converters, [f.attname for f in fields])
    text, converters, names = built

    def objects(rows: list[tuple[Any, ...]]) -> list[M]:
        alias = connection.alias
        return [model.from_db(alias, names, values) for values in converted(rows, converters)]

    answer = _queued(text, params, objects, prepare=True)
    return answer if later else answer.result


def value(text: str, params: list[Any], *, later: bool = False, prepare: bool = False) -> Any:
    """The first column of the first row of a read, or None (a ``Pending`` of it, ``later``)."""
    answer = _queued(text, params, lambda rows: rows[0][0] if rows else None, prepare=prepare)
    return answer if later else answer.result


# --- Statements prepared once per connection ------------------------------------------------------

# Per open PostgreSQL connection (the driver's object: a new connection prepares again), the
# statements known to be prepared on it: {name asked for: its ``EXECUTE``, a ``%s`` per value}.
_prepared: weakref.WeakKeyDictionary[Any, dict[str, str]] = weakref.WeakKeyDictionary()
# Each preparation under a name of its own: one whose outcome is unknown (its round trip raised)
# is never executed by name nor prepared again under the same name.
_preparations = itertools.count(1)


def _known_prepared() -> dict[str, str] | None:
    """The statements prepared on this connection (``_prepared``), or None where statements are
    not prepared (another database, or ``DATABASE_PREPARED_STATEMENTS`` off)."""
    if connection.vendor != "postgresql" or not settings.DATABASE_PREPARED_STATEMENTS:
        return None
    return _prepared.setdefault(connection.connection, {})


def literals() -> Callable[[Any], str]:
    """A value spelt as an SQL literal exactly as psycopg spells it when it binds a statement
    (``mogrify``), by one adaptation context kept for the connection: the dumper of each type
    looked up once per connection rather than once per round trip, and no statement text parsed
    around the values (half of what binding an ``EXECUTE`` cost; most of what binding a
    statement of thousands of values costs). PostgreSQL only. A text built with it is executed
    without parameters (its ``%`` characters are then its own)."""
    conn = connections[DEFAULT_DB_ALIAS]
    raw = conn.connection
    kept = getattr(conn, "_assent_literals", None)
    if kept is None or kept[0] is not raw:
        from psycopg.adapt import Transformer

        as_literal, encoding = Transformer(raw).as_literal, raw.info.encoding

        def spelt(value: Any) -> str:
            if value is None:
                return "NULL"
            kind = type(value)
            # The two spelt most (ids, sequence numbers, flags), as psycopg spells them.
            if kind is int and value >= 0:
                return str(value)
            if kind is bool:
                return "true" if value else "false"
            if isinstance(value, Enum) and isinstance(value, (str, int)):
                value = value.value  # a model's choice: the text psycopg spells for it anyway
            return as_literal(value).decode(encoding)

        # On the connection's wrapper, with the driver's connection it serves: a registry keyed
        # by the driver's connection (as ``_prepared``) would keep it alive through the speller.
        kept = (raw, spelt)
        conn._assent_literals = kept
    return kept[1]


def spelt_values(params: Iterable[Any], literal: Callable[[Any], str] | None = None) -> str:
    """``(v1, v2, ...)``, each value spelt by ``literal`` (``literals()`` when not given)."""
    spell = literal or literals()
    return f"({', '.join([spell(p) for p in params])})"


def _executed(execute: str, params: Sequence[Any], literal: Callable[[Any], str] | None) -> str:
    """``EXECUTE name(%s, ...)`` (``_preparation``'s) with its values spelt in."""
    if not params:
        return execute
    return execute[: execute.index("(")] + spelt_values(params, literal)


def _preparation(name: str, sql: str, count: int) -> tuple[str, str]:
    """``sql`` (a ``%s`` per value, ``%%`` for a ``%``) under a name of its own: its
    ``PREPARE ... AS`` (the values numbered, ready to send as it is) and its ``EXECUTE`` (a
    ``%s`` per value, to bind)."""
    prepared = f"{name}_{next(_preparations)}"
    numbered = sql % tuple(f"${i}" for i in range(1, count + 1))
    arguments = f"({', '.join(['%s'] * count)})" if count else ""
    return f"PREPARE {prepared} AS {numbered}", f"EXECUTE {prepared}{arguments}"


def execute_prepared(cursor: Any, name: str, sql: str, params: Sequence[Any]) -> None:
    """``cursor.execute(sql, params)``, ``sql`` prepared on its connection the first time (in
    the same round trip as its first execution) and executed by name after, on PostgreSQL:
    planning a join of three tables cost it three times what running it did. As it is
    elsewhere, or with ``DATABASE_PREPARED_STATEMENTS`` off. ``sql`` holds a ``%s`` placeholder
    per parameter, in order (and ``%%`` for a ``%``)."""
    known = _known_prepared()
    if known is None:
        cursor.execute(sql, params)
        return
    execute = known.get(name)
    if execute is not None:
        cursor.execute(_executed(execute, params, None))
        return
    # A statement prepared stays prepared whatever becomes of its transaction, even when the
    # EXECUTE after it fails: it is only known once the round trip has come back.
    prepare, execute = _preparation(name, sql, len(params))
    cursor.execute(f"{prepare.replace('%', '%%')}; {execute}", params)
    cursor.nextset()  # the EXECUTE's rows
    known[name] = execute


def rows_prepared(name: str, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    """The rows of ``execute_prepared(cursor, name, sql, params)``.

    Once the statement is prepared on the connection, and while nothing watches the connection's
    queries (no query log, as under ``DEBUG`` or a test's count; no ``execute_wrapper``, as
    inside ``together()``), it runs on the driver cursor ``_unwatched`` gives, with Django's
    checks and error wrapping but not its cursor: creating and wrapping a cursor cost more than
    a served page's one query did (``pagecache``). Otherwise through a Django cursor."""
    conn = connections[DEFAULT_DB_ALIAS]
    direct = _prepared_unwatched(conn, name, params)
    if direct is not None:
        return direct.fetchall()
    with conn.cursor() as cursor:
        execute_prepared(cursor, name, sql, params)
        return cursor.fetchall()


def _prepared_unwatched(conn: Any, name: str, params: Sequence[Any]) -> _Direct | None:
    """The statement ``name``, prepared on this connection, executed with ``params`` on the
    kept driver cursor while nothing watches (``_unwatched``); that cursor, for its rows. None,
    and nothing run, when the statement is not prepared here yet or something watches."""
    direct = _unwatched(conn)
    known = _known_prepared() if direct is not None else None
    execute = known.get(name) if known is not None else None
    if direct is None or execute is None:
        return None
    direct.execute(_executed(execute, params, None))
    return direct


def _kept_cursor(conn: Any) -> Any:
    """A driver cursor kept on the connection's wrapper for ``rows_prepared`` and ``flush``,
    made as Django makes its cursors' (its time zone), with the driver's connection it belongs
    to: a new connection gets a new cursor."""
    raw = conn.connection
    kept = getattr(conn, "_assent_cursor", None)
    if kept is None or kept[0] is not raw or kept[1].closed:
        with conn.wrap_database_errors:
            kept = (raw, conn.create_cursor())
        conn._assent_cursor = kept
    return kept[1]
