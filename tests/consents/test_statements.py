"""``consents.statements`` writes the rows the ORM would write, on both databases."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from unittest.mock import ANY

import pytest
from django.db import DataError, IntegrityError, ProgrammingError, connection, transaction
from django.forms.models import model_to_dict
from django.test.utils import CaptureQueriesContext

from consents import clock, statements
from consents.models import ChainHead, ConsentState, Contact, ContactFacts, Outbox
from tests.conftest import at

pytestmark = pytest.mark.django_db


def _row(model: Any, pk: Any) -> dict[str, Any]:
    obj = model.objects.get(pk=pk)
    values = {f.attname: getattr(obj, f.attname) for f in model._meta.concrete_fields}
    values.pop(model._meta.pk.attname)
    return values


def test_an_insert_writes_what_the_orm_writes(make_contact: Callable[..., Contact]) -> None:
    contact = make_contact()
    fields: dict[str, Any] = {
        "contact": contact,
        "template": "signup-confirm",
        "to": "Marie@Example.fr",
        "language": "en",
        "context": {"names": ["Lettre", "Offres"], "n": 2, "nested": {"é": None}},
        "links": {"preferences_url": {"scope": "preferences"}},
        "is_service": False,
        "created_at": at("2026-11-30T10:00"),
        "next_attempt_at": at("2026-11-30T10:05"),
    }
    by_orm = Outbox.objects.create(**fields)
    by_statement = statements.insert(Outbox(**fields))
    assert by_statement.pk is not None and by_statement.pk != by_orm.pk
    assert not by_statement._state.adding
    assert _row(Outbox, by_statement.pk) == _row(Outbox, by_orm.pk)
    assert model_to_dict(Outbox.objects.get(pk=by_statement.pk))["context"] == fields["context"]


def test_an_insert_keeps_a_primary_key_that_is_not_generated(
    make_contact: Callable[..., Contact],
) -> None:
    contact = make_contact()
    head = statements.insert(
        ChainHead(contact=contact, seq=7, hash="ab" * 32, recorded_at=clock.now())
    )
    assert head.pk == contact.pk
    assert ChainHead.objects.get(contact=contact).seq == 7


def test_an_update_changes_the_keyed_row_only(make_contact: Callable[..., Contact]) -> None:
    first, second = make_contact(), make_contact()
    before = _row(ContactFacts, second.pk)
    changed = statements.update(
        ContactFacts,
        {"contact": first.pk},
        is_customer=True,
        expires_at=at("2030-01-01T00:00"),
        fold={"v": 1, "state": [1, 2]},
    )
    assert changed == 1
    facts = ContactFacts.objects.get(contact=first)
    assert facts.is_customer is True
    assert facts.expires_at == at("2030-01-01T00:00")
    assert facts.fold == {"v": 1, "state": [1, 2]}
    assert _row(ContactFacts, second.pk) == before
    assert statements.update(ContactFacts, {"contact": 10**9}, is_customer=False) == 0


def test_a_select_builds_the_objects_the_orm_builds(make_contact: Callable[..., Contact]) -> None:
    wanted = make_contact(email="Marie.Curie@example.fr", first_name="Marie")
    make_contact(email="other@example.fr")
    found = statements.select(Contact, "UPPER(email) = UPPER(%s)", ["marie.curie@EXAMPLE.fr"])
    assert len(found) == 1
    by_orm = Contact.objects.get(pk=wanted.pk)
    assert {f.attname: getattr(found[0], f.attname) for f in Contact._meta.concrete_fields} == {
        f.attname: getattr(by_orm, f.attname) for f in Contact._meta.concrete_fields
    }
    assert not found[0]._state.adding
    everyone = statements.select(Contact, "1 = 1", [], order_by="id DESC", limit=2)
    assert [c.pk for c in everyone] == list(
        Contact.objects.order_by("-pk").values_list("pk", flat=True)[:2]
    )
    assert statements.select(Contact, "UPPER(email) = UPPER(%s)", ["nobody@example.fr"]) == []
    assert statements.value("SELECT COUNT(*) FROM consents_contact", []) == Contact.objects.count()


# --- Statements sent together ---------------------------------------------------------------------


def _outbox(contact: Contact, to: str = "a@example.fr") -> Outbox:
    now = clock.now()
    return Outbox(
        contact=contact,
        template="signup-confirm",
        to=to,
        language="fr",
        context={},
        links={},
        created_at=now,
        next_attempt_at=now,
    )


def _sent(ctx: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in ctx.captured_queries]


@pytest.mark.django_db(transaction=True)
def test_together_needs_a_transaction_on_postgres() -> None:
    if connection.vendor != "postgresql":
        with statements.together():  # elsewhere it changes nothing
            pass
        return
    with pytest.raises(RuntimeError, match="transaction"), statements.together():
        pass  # pragma: no cover


@pytest.mark.postgres
def test_writes_go_in_one_round_trip_and_every_later_read_sees_them(
    make_contact: Callable[..., Contact],
) -> None:
    contact = make_contact()
    with transaction.atomic(), CaptureQueriesContext(connection) as ctx:
        with statements.together():
            statements.update(ContactFacts, {"contact": contact.pk}, is_customer=True)
            row = statements.insert(_outbox(contact), later=True)
            statements.insert(_outbox(contact, "b@example.fr"), later=True)
            assert row.pk is None  # not sent yet
            assert ctx.captured_queries == []
            # Any other statement sends the queue first, in order.
            assert ContactFacts.objects.get(contact=contact).is_customer is True
            assert len(ctx.captured_queries) == 2
            assert row.pk is not None and Outbox.objects.filter(pk=row.pk).exists()
            statements.update(Outbox, {"id": row.pk}, to="c@example.fr")
        # The block's end sends what is left.
        assert len(ctx.captured_queries) == 4
        assert Outbox.objects.get(pk=row.pk).to == "c@example.fr"
    first = statements.spelt_out(_sent(ctx)[0])
    assert first.count("UPDATE") == 1 and first.count("INSERT INTO") == 2


def _bare_contact(email: str) -> Contact:
    """A contact row without its facts (``make_contact`` writes them)."""
    return Contact.objects.create(email=email, collected_at=clock.now())


@pytest.mark.postgres
def test_an_update_of_a_row_whose_insert_is_still_queued_is_sent_as_part_of_the_insert(
    db: Any,
) -> None:
    contact = _bare_contact("joined@example.fr")
    with transaction.atomic(), CaptureQueriesContext(connection) as ctx, statements.together():
        statements.insert(ContactFacts(contact=contact, fold={"v": 1}))
        statements.update(ContactFacts, {"contact": contact.pk}, is_customer=True)
        statements.update(ContactFacts, {"contact": contact.pk}, fold={"v": 2})
    sent = statements.spelt_out(_sent(ctx)[0])
    assert sent.count('INSERT INTO "consents_contactfacts"') == 1
    assert "UPDATE" not in sent
    facts = ContactFacts.objects.get(contact=contact)
    assert facts.is_customer is True and facts.fold == {"v": 2}


@pytest.mark.postgres
def test_an_update_is_sent_on_its_own_when_something_between_saw_the_row(db: Any) -> None:
    contact, other = _bare_contact("seen@example.fr"), _bare_contact("other@example.fr")
    with transaction.atomic(), CaptureQueriesContext(connection) as ctx, statements.together():
        # A read after the insert sees the row as inserted, before the update.
        statements.insert(ContactFacts(contact=contact, fold={"v": 1}))
        seen = statements.read(
            "SELECT is_customer FROM consents_contactfacts WHERE contact_id = %s",
            [contact.pk],
        )
        statements.update(ContactFacts, {"contact": contact.pk}, is_customer=True)
        # Another write of the table after the insert: the writes stay in their order.
        statements.insert(ContactFacts(contact=other, fold={"v": 1}))
        statements.update(ContactFacts, {"contact": other.pk}, generic_email=True)
        statements.update(ContactFacts, {"contact": contact.pk}, fold={"v": 3})
        # Not by its primary key: sent as it is.
        statements.update(ContactFacts, {"is_customer": True}, undeliverable_email=True)
    assert seen.result == [(False,)]
    sent = statements.spelt_out(_sent(ctx)[0])
    assert sent.count('UPDATE "consents_contactfacts"') == 3
    facts = ContactFacts.objects.get(contact=contact)
    assert (facts.is_customer, facts.undeliverable_email, facts.fold) == (True, True, {"v": 3})
    assert ContactFacts.objects.get(contact=other).generic_email is True


@pytest.mark.postgres
def test_an_update_after_an_insert_unless_taken_is_sent_on_its_own(db: Any) -> None:
    """The insert may have written nothing: the update is for the row already there."""
    contact = _bare_contact("taken-facts@example.fr")
    ContactFacts.objects.create(contact=contact, fold={"v": 0})
    with transaction.atomic(), statements.together():
        statements.insert(ContactFacts(contact=contact, fold={"v": 1}), unless_taken=True)
        statements.update(ContactFacts, {"contact": contact.pk}, is_customer=True)
    facts = ContactFacts.objects.get(contact=contact)
    assert facts.is_customer is True and facts.fold == {"v": 0}


@pytest.mark.postgres
def test_values_are_spelt_in_an_execute_as_psycopg_binds_them(db: Any) -> None:
    import datetime
    import decimal
    import ipaddress
    import uuid

    from django.db.models import IntegerChoices
    from psycopg.types.json import Jsonb

    from consents.models import EventType

    class Level(IntegerChoices):
        HIGH = 3

    values = [
        "plain", "", "it's", "back\\slash", "per%cent %s", "é ü 日本", None, 0, -7, 2**40, True,
        False, 1.5, decimal.Decimal("12.30"), at("2026-11-30T10:00"), datetime.date(2026, 11, 30),
        ipaddress.ip_address("203.0.113.7"), ipaddress.ip_address("2001:db8::1"),
        uuid.UUID(int=5), Jsonb({"a": ["x'y", 1, None]}), EventType.OPT_IN, Level.HIGH,
    ]  # fmt: skip
    execute = f"EXECUTE some_name({', '.join(['%s'] * len(values))})"
    with connection.cursor() as cursor:
        bound = cursor.cursor.mogrify(execute, values)
    assert statements._executed(execute, values, statements.literals()) == bound
    assert statements._executed("EXECUTE other", [], statements.literals()) == "EXECUTE other"


def _fresh_connection() -> None:
    """As on a connection just opened: this module's statements not yet prepared on it."""
    statements._prepared.pop(connection.connection, None)


@pytest.mark.postgres
def test_the_writes_are_prepared_in_their_first_round_trip_and_executed_by_name_after(
    make_contact: Callable[..., Contact], settings: Any
) -> None:
    contact = make_contact()
    connection.ensure_connection()
    _fresh_connection()

    def round_trip(to: str) -> tuple[list[Outbox], str]:
        with (
            transaction.atomic(),
            CaptureQueriesContext(connection) as ctx,
            statements.together(),
        ):
            rows = [
                statements.insert(_outbox(contact, to), later=True),
                statements.insert(_outbox(contact, to.upper()), later=True),
            ]
            statements.update(ContactFacts, {"contact": contact.pk}, is_customer=True)
        [sent] = [q for q in _sent(ctx) if q not in ("BEGIN", "COMMIT")]
        return rows, sent

    rows, first = round_trip("a@example.fr")
    prepared = re.findall(r"PREPARE (assent_w\d+_\d+) AS (INSERT|UPDATE)", first)
    assert sorted(kind for _, kind in prepared) == ["INSERT", "UPDATE"]  # one per text
    assert first.count("EXECUTE ") == 3
    again, second = round_trip("b@example.fr")
    assert "PREPARE" not in second and "INSERT" not in second
    assert {name for name, _ in prepared} == set(re.findall(r"EXECUTE (assent_w\d+_\d+)", second))
    # Each execution wrote its own row, its id returned as the ORM's insert returns it.
    written = [Outbox.objects.get(pk=row.pk) for row in [*rows, *again]]
    assert [row.to for row in written] == [
        "a@example.fr", "A@EXAMPLE.FR", "b@example.fr", "B@EXAMPLE.FR",
    ]  # fmt: skip
    later = {"to": "b@example.fr", "created_at": ANY, "next_attempt_at": ANY}
    assert _row(Outbox, again[0].pk) == {**_row(Outbox, rows[0].pk), **later}
    assert ContactFacts.objects.get(contact=contact).is_customer is True

    settings.DATABASE_PREPARED_STATEMENTS = False
    plain, third = round_trip("c@example.fr")
    assert "EXECUTE" not in third and third.count("INSERT INTO") == 2
    assert Outbox.objects.get(pk=plain[1].pk).to == "C@EXAMPLE.FR"


@pytest.mark.postgres
def test_a_write_prepared_in_a_round_trip_that_failed_is_prepared_again_under_another_name(
    make_contact: Callable[..., Contact],
) -> None:
    contact = make_contact()  # with its facts' row
    connection.ensure_connection()
    _fresh_connection()
    outbox = r"PREPARE (assent_w\d+_\d+) AS INSERT INTO \S*consents_outbox"
    with (
        CaptureQueriesContext(connection) as failing,
        pytest.raises(IntegrityError),
        transaction.atomic(),
        statements.together(),
    ):
        statements.insert(_outbox(contact), later=True)
        statements.insert(ContactFacts(contact=contact, fold={}))  # the same key: refused
    with CaptureQueriesContext(connection) as after, transaction.atomic(), statements.together():
        row = statements.insert(_outbox(contact, "after@example.fr"), later=True)
    failed = [name for sql in _sent(failing) for name in re.findall(outbox, sql)]
    again = [name for sql in _sent(after) for name in re.findall(outbox, sql)]
    assert len(failed) == len(again) == 1 and failed != again
    assert Outbox.objects.get().pk == row.pk


@pytest.mark.postgres
def test_reads_asked_prepared_give_the_rows_they_give_unprepared(
    make_contact: Callable[..., Contact], settings: Any
) -> None:
    one = make_contact(email="one@example.fr")
    connection.ensure_connection()
    _fresh_connection()
    by_id = statements.spelt(Contact.objects.filter(id=0).values_list("email", "created_at"))

    def asked() -> tuple[list[Any], str]:
        with (
            transaction.atomic(),
            CaptureQueriesContext(connection) as ctx,
            statements.together(),
        ):
            statements.run("SELECT pg_advisory_xact_lock(%s)", [42], prepare=True)
            answers = [
                statements.select(Contact, "UPPER(email) = UPPER(%s)", ["ONE@example.fr"],
                                  later=True),
                statements.rows(by_id, [one.pk], later=True, prepare=True),
                statements.value("SELECT COUNT(*) FROM consents_contact WHERE id > %s",
                                 [0], later=True, prepare=True),
                statements.read("SELECT 7", [], prepare=True),
            ]  # fmt: skip
            results = [answer.result for answer in answers]
        [sent] = _sent(ctx)
        return results, sent

    runs = [asked() for _ in range(3)]
    settings.DATABASE_PREPARED_STATEMENTS = False
    unprepared, plain = asked()
    assert "PREPARE" in runs[0][1] and "PREPARE" not in runs[1][1]
    assert runs[1][1].count("EXECUTE ") == 5 and "SELECT" not in runs[1][1]
    assert re.search(r"EXECUTE assent_w\d+_\d+$", runs[1][1])  # no parameter: no brackets
    assert "EXECUTE" not in plain
    for results, _ in [*runs, (unprepared, plain)]:
        [found], rows, count, seven = results
        assert found.pk == one.pk and isinstance(found, Contact)
        assert [tuple(row) for row in rows] == [("one@example.fr", one.created_at)]
        assert count == 1 and seven == [(7,)]


@pytest.mark.postgres
def test_queued_reads_come_back_with_their_own_answers(
    make_contact: Callable[..., Contact],
) -> None:
    one = make_contact(email="one@example.fr")
    make_contact(email="two@example.fr")
    with transaction.atomic(), CaptureQueriesContext(connection) as ctx:
        with statements.together():
            statements.run("SELECT pg_advisory_xact_lock(%s)", [42])
            count = statements.value("SELECT COUNT(*) FROM consents_contact", [], later=True)
            found = statements.select(
                Contact, "UPPER(email) = UPPER(%s)", ["ONE@example.fr"], later=True
            )
            none = statements.select(
                Contact, "UPPER(email) = UPPER(%s)", ["nobody@example.fr"], later=True
            )
            written = statements.insert(_outbox(one))  # its id is needed: sent with the reads
            assert len(ctx.captured_queries) == 1
            assert count.result == 2
            assert [c.pk for c in found.result] == [one.pk]
            assert none.result == []
            assert written.pk is not None
        assert len(ctx.captured_queries) == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_reads_outside_a_transaction_go_in_one_round_trip_and_writes_are_refused(
    make_contact: Callable[..., Contact],
) -> None:
    one = make_contact(email="one@example.fr")
    assert not connection.in_atomic_block
    with CaptureQueriesContext(connection) as ctx, statements.reads_together():
        count = statements.value("SELECT COUNT(*) FROM consents_contact", [], later=True)
        found = statements.select(Contact, "id = %s", [one.pk], later=True)
        assert ctx.captured_queries == []
        assert count.result == 1 and [c.pk for c in found.result] == [one.pk]
        assert len(ctx.captured_queries) == 1
        for write in (
            lambda: statements.insert(_outbox(one), later=True),
            lambda: statements.update(ContactFacts, {"contact": one.pk}, is_customer=True),
            lambda: statements.delete(Outbox, {"contact": one.pk}),
            lambda: statements.run("SELECT pg_advisory_lock(%s)", [42]),
        ):
            with pytest.raises(RuntimeError, match="only reads"):
                write()
        late = statements.value("SELECT email FROM consents_contact", [], later=True)
    # The block's end sends what is left; nothing was written.
    assert late.result == "one@example.fr" and len(ctx.captured_queries) == 2
    assert not ContactFacts.objects.filter(contact=one, is_customer=True).exists()
    assert not Outbox.objects.exists()
    # Inside a transaction it is ``together()``, writes included.
    with transaction.atomic(), statements.reads_together():
        statements.update(ContactFacts, {"contact": one.pk}, is_customer=True)
    assert ContactFacts.objects.filter(contact=one, is_customer=True).exists()


def _own_commands(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The commands psycopg sends in round trips of their own (``BEGIN``, ``COMMIT``, ...)."""
    from psycopg import _connection_base

    sent: list[bytes] = []
    original = _connection_base.BaseConnection._exec_command

    def recorded(self: Any, command: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append(command if isinstance(command, bytes) else command.as_bytes(self))
        return original(self, command, *args, **kwargs)

    monkeypatch.setattr(_connection_base.BaseConnection, "_exec_command", recorded)
    return sent


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_transaction_begins_in_the_round_trip_of_its_first_statements(
    make_contact: Callable[..., Contact], monkeypatch: pytest.MonkeyPatch
) -> None:
    from psycopg.pq import TransactionStatus

    contact = make_contact()
    own = _own_commands(monkeypatch)
    raw = connection.connection
    with CaptureQueriesContext(connection) as ctx, transaction.atomic(), statements.together():
        row = statements.insert(_outbox(contact), later=True)
        facts = statements.fetch(
            "SELECT is_customer FROM consents_contactfacts WHERE contact_id = %s", [contact.pk]
        )
        assert facts == [(False,)]
        assert raw.pgconn.transaction_status == TransactionStatus.INTRANS
        assert raw.autocommit is False  # psycopg's own setting, as Django's atomic left it
        statements.insert(_outbox(contact, "b@example.fr"), later=True)
    assert own == [b"COMMIT"]  # no BEGIN in a round trip of its own
    # (Django logs its atomic's BEGIN and COMMIT as captured queries: not round trips.)
    first, second = [sql for sql in _sent(ctx) if sql not in ("BEGIN", "COMMIT")]
    assert first.startswith("BEGIN;") and "BEGIN" not in second
    assert Outbox.objects.filter(pk=row.pk).exists() and Outbox.objects.count() == 2
    # A transaction whose first statement is not sent together begins as psycopg begins it.
    own.clear()
    with transaction.atomic():
        Outbox.objects.filter(pk=row.pk).update(to="c@example.fr")
    assert own == [b"BEGIN", b"COMMIT"]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_what_was_sent_with_the_begin_is_undone_with_its_transaction(
    make_contact: Callable[..., Contact],
) -> None:
    contact = make_contact()
    with pytest.raises(RuntimeError), transaction.atomic(), statements.together():
        row = statements.insert(_outbox(contact), later=True)
        statements.flush()
        assert Outbox.objects.filter(pk=row.pk).exists()
        raise RuntimeError("undo")
    assert not Outbox.objects.exists()  # inside the transaction, not committed on its own


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_first_round_trip_that_fails_leaves_the_connection_as_it_was(
    make_contact: Callable[..., Contact], monkeypatch: pytest.MonkeyPatch
) -> None:
    contact = make_contact()
    # A statement refused (the transaction begun, then failed), and one that cannot be read
    # (nothing of the round trip runs, the BEGIN included).
    for failing, error in (
        (lambda: statements.insert(ContactFacts(contact=contact, fold={})), IntegrityError),
        (lambda: statements.run("SELECT pg_advisory_xact_lock(", []), ProgrammingError),
    ):
        with pytest.raises(error), transaction.atomic(), statements.together():
            statements.insert(_outbox(contact), later=True)
            failing()
        assert not Outbox.objects.exists()
        assert connection.connection.autocommit is True  # as Django left it after the block
        own = _own_commands(monkeypatch)
        with transaction.atomic(), statements.together():
            statements.insert(_outbox(contact, "next@example.fr"), later=True)
        assert own == [b"COMMIT"]
        assert list(Outbox.objects.values_list("to", flat=True)) == ["next@example.fr"]
        Outbox.objects.all().delete()
        monkeypatch.undo()


@pytest.mark.postgres
def test_a_savepoint_rolled_back_undoes_only_what_was_queued_inside_it(
    make_contact: Callable[..., Contact],
) -> None:
    contact = make_contact()
    with transaction.atomic():
        with statements.together():
            kept = statements.insert(_outbox(contact, "kept@example.fr"), later=True)
            try:
                with transaction.atomic():
                    statements.insert(_outbox(contact, "undone@example.fr"), later=True)
                    raise RuntimeError("undo")
            except RuntimeError:
                pass
        assert kept.pk is not None
        assert set(Outbox.objects.values_list("to", flat=True)) == {"kept@example.fr"}


@pytest.mark.postgres
def test_what_was_queued_before_an_exception_is_written(
    make_contact: Callable[..., Contact],
) -> None:
    contact = make_contact()
    with transaction.atomic():
        try:
            with statements.together():
                statements.insert(_outbox(contact, "before@example.fr"), later=True)
                raise ValueError("a check failed")
        except ValueError:
            pass  # the caller goes on, and commits what it wrote
        assert list(Outbox.objects.values_list("to", flat=True)) == ["before@example.fr"]


@pytest.mark.postgres
def test_a_failed_queued_write_fails_the_transaction(make_contact: Callable[..., Contact]) -> None:
    contact = make_contact()  # with its facts' row
    with pytest.raises(IntegrityError), transaction.atomic(), statements.together():
        statements.insert(_outbox(contact), later=True)
        statements.insert(ContactFacts(contact=contact, fold={}))  # the same key: refused
    assert ContactFacts.objects.filter(contact=contact).count() == 1
    assert not Outbox.objects.exists()


def test_an_insert_unless_taken_writes_nothing_on_a_taken_address(db: Any) -> None:
    with transaction.atomic():
        now = clock.now()
        first = statements.insert(
            Contact(email="Taken@example.fr", collected_at=now), unless_taken=True
        )
        again = statements.insert(
            Contact(email="taken@EXAMPLE.fr", collected_at=now), unless_taken=True
        )
    assert first.pk is not None
    assert again.pk is None
    assert Contact.objects.filter(email__iexact="taken@example.fr").count() == 1


@pytest.mark.django_db
def test_a_prepared_statement_is_prepared_once_per_connection_and_gives_the_same_rows(
    settings, django_assert_num_queries
):
    Contact.objects.create(email="prep@example.fr", public_id="prep-1", collected_at=clock.now())
    sql = 'SELECT "email" FROM "consents_contact" WHERE "public_id" = %s'

    def run(public_id: str) -> tuple[list[Any], str]:
        with django_assert_num_queries(1) as captured, connection.cursor() as cursor:
            statements.execute_prepared(cursor, "assent_test_prep", sql, [public_id])
            return cursor.fetchall(), captured.captured_queries[0]["sql"]

    # Prepared in the first's round trip, then executed by name.
    sent = [run("prep-1") for _ in range(3)]
    assert [rows for rows, _ in sent] == [[("prep@example.fr",)]] * 3
    assert run("nobody")[0] == []
    if connection.vendor == "postgresql":
        prepared = re.match(r"PREPARE (assent_test_prep_\d+) AS", sent[0][1])
        assert prepared
        assert sent[1][1].startswith(f"EXECUTE {prepared.group(1)}(")
    settings.DATABASE_PREPARED_STATEMENTS = False
    rows, sql_sent = run("prep-1")
    assert rows == [("prep@example.fr",)] and sql_sent.startswith("SELECT")


@pytest.mark.postgres
@pytest.mark.django_db
def test_a_preparation_whose_execution_failed_is_prepared_again_under_another_name():
    sql = "SELECT 1 / %s"
    with connection.cursor() as cursor:
        with pytest.raises(DataError), transaction.atomic():
            statements.execute_prepared(cursor, "assent_test_divide", sql, [0])
        statements.execute_prepared(cursor, "assent_test_divide", sql, [1])
        assert cursor.fetchall() == [(1,)]
        statements.execute_prepared(cursor, "assent_test_divide", sql, [1])
        assert cursor.fetchall() == [(1,)]


def _comparable(values: list[Any]) -> list[Any]:
    """Values with psycopg's JSON wrappers (which compare by identity) unwrapped."""
    return [getattr(v, "obj", v) for v in values]


def test_the_values_sent_as_they_are_are_those_the_orm_would_send(
    make_contact: Callable[..., Contact], make_topic: Callable[..., Any]
) -> None:
    """The plain values an insert sends without asking their field (``plain_kinds``), for every
    model written by this module in a sign-up, and values of other types (a lazy text, a
    choice, a number given as text) that must still go through the field."""
    from django.apps import apps
    from django.utils.functional import lazy

    from consents.vocab import Channel
    from preferences.services import signup_submit

    contact = make_contact(email="marie@example.fr")
    make_topic("promotions")
    signup_submit(email="paul@example.fr", choices=[("promotions", "email")])
    models = ["Contact", "ContactFacts", "Event", "ChainHead", "Evidence", "ConsentState", "Outbox"]
    checked = 0
    for model in [apps.get_model("consents", name) for name in models] + [
        apps.get_model("preferences", "PendingSignup")
    ]:
        # (An instant the field sets at save time differs from one call to the next.)
        fields = [f for f in model._meta.concrete_fields if not getattr(f, "auto_now_add", 0)]
        kinds = statements.plain_kinds(fields)
        for obj in model.objects.all():
            orm = [f.get_db_prep_save(f.pre_save(obj, True), connection) for f in fields]
            assert _comparable(statements.values_of(obj, fields, kinds, connection)) == (
                _comparable(orm)
            ), model
            checked += 1
    assert checked >= 8
    lazy_text = lazy(lambda: "lazy@example.fr", str)()
    odd = Outbox(contact=contact, template="signup-confirm", to=lazy_text, language="fr",
                 context={}, links={}, created_at=clock.now(), next_attempt_at=clock.now(),
                 attempts="2", is_service=1)  # fmt: skip
    fields = list(Outbox._meta.concrete_fields)
    values = statements.values_of(odd, fields, statements.plain_kinds(fields), connection)
    orm = [f.get_db_prep_save(f.pre_save(odd, True), connection) for f in fields]
    assert _comparable(values) == _comparable(orm)
    by_name = dict(zip([f.name for f in fields], values, strict=True))
    assert type(by_name["to"]) is str and by_name["attempts"] == 2 and by_name["is_service"] is True
    state = ConsentState(contact=contact, topic="t", channel=Channel.EMAIL, status="pending")
    fields = list(ConsentState._meta.concrete_fields)
    assert statements.values_of(state, fields, statements.plain_kinds(fields), connection) == [
        f.get_db_prep_save(f.pre_save(state, True), connection) for f in fields
    ]
    # What an update sends (``values_of`` not adding: ``projections.rows_update``): the same.
    for model in (ContactFacts, ChainHead, Outbox):
        fields = [f for f in model._meta.concrete_fields if not f.primary_key]
        kinds = statements.plain_kinds(fields)
        for obj in [*model.objects.all(), odd]:
            if not isinstance(obj, model):
                continue
            orm = [f.get_db_prep_save(getattr(obj, f.attname), connection) for f in fields]
            sent = statements.values_of(obj, fields, kinds, connection, adding=False)
            assert _comparable(sent) == _comparable(orm), model


@pytest.mark.postgres
@pytest.mark.django_db
def test_a_literal_is_spelt_as_psycopg_spells_it() -> None:
    """``literals``: its own spelling of the commonest values (non-negative integers,
    booleans) is psycopg's, and so is that of every other value it hands to psycopg."""
    from datetime import UTC, datetime
    from decimal import Decimal

    from psycopg.adapt import Transformer

    from consents.vocab import Channel

    spelt = statements.literals()
    connection.ensure_connection()
    raw = connection.connection
    theirs = Transformer(raw).as_literal
    values = [0, 1, 7, 2**31, 2**63 - 1, -1, -(2**40), True, False, "l'été", 1.5, Decimal("2.50"),
              datetime(2026, 12, 2, 1, 2, 3, tzinfo=UTC)]  # fmt: skip
    for value in values:
        assert spelt(value) == theirs(value).decode(), value
    assert spelt(None) == "NULL"
    assert spelt(Channel.EMAIL) == theirs("email").decode()


@pytest.mark.postgres
@pytest.mark.django_db
def test_rows_of_a_prepared_statement_come_without_a_django_cursor_once_it_is_prepared(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``rows_prepared``: the rows a Django cursor gives, from the driver cursor kept for the
    connection once the statement is known there, with values converted by the connection's
    loaders as the Django cursor's are."""
    Contact.objects.create(email="kept@example.fr", public_id="kept-1", collected_at=clock.now())
    sql = 'SELECT "email", "collected_at" FROM "consents_contact" WHERE "public_id" = %s'
    first = statements.rows_prepared("assent_test_kept", sql, ["kept-1"])  # prepares it
    with connection.cursor() as cursor:
        statements.execute_prepared(cursor, "assent_test_kept", sql, ["kept-1"])
        by_django = cursor.fetchall()
    assert first == by_django and first[0][0] == "kept@example.fr"
    assert first[0][1].utcoffset() is not None

    def no_cursor(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a Django cursor was created")

    monkeypatch.setattr(connection, "cursor", no_cursor)
    assert statements.rows_prepared("assent_test_kept", sql, ["kept-1"]) == by_django
    assert statements.rows_prepared("assent_test_kept", sql, ["nobody"]) == []


@pytest.mark.postgres
@pytest.mark.django_db
def test_rows_of_a_prepared_statement_are_seen_by_query_logs_and_execute_wrappers() -> None:
    sql = "SELECT %s::int + 1"
    assert statements.rows_prepared("assent_test_seen", sql, [1]) == [(2,)]
    with CaptureQueriesContext(connection) as captured:
        assert statements.rows_prepared("assent_test_seen", sql, [2]) == [(3,)]
    assert len(captured) == 1 and captured[0]["sql"].startswith("EXECUTE assent_test_seen_")
    seen: list[str] = []

    def watch(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        seen.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(watch):
        assert statements.rows_prepared("assent_test_seen", sql, [3]) == [(4,)]
    assert len(seen) == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_rows_of_a_prepared_statement_fail_as_django_fails_and_survive_a_new_connection() -> None:
    sql = "SELECT 10 / %s"
    assert statements.rows_prepared("assent_test_kept_divide", sql, [5]) == [(2,)]
    with pytest.raises(DataError):  # Django's error, not the driver's
        statements.rows_prepared("assent_test_kept_divide", sql, [0])
    assert statements.rows_prepared("assent_test_kept_divide", sql, [2]) == [(5,)]
    with transaction.atomic():
        with pytest.raises(DataError), transaction.atomic(savepoint=False):
            statements.rows_prepared("assent_test_kept_divide", sql, [0])
        with pytest.raises(transaction.TransactionManagementError):  # as a Django cursor's
            statements.rows_prepared("assent_test_kept_divide", sql, [1])
    connection.close()  # a new connection: prepared again, on a cursor of its own
    assert statements.rows_prepared("assent_test_kept_divide", sql, [10]) == [(1,)]
    assert statements.rows_prepared("assent_test_kept_divide", sql, [1]) == [(10,)]


@pytest.fixture
def django_cursors_made(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A 1 for each Django cursor the connection makes from now on."""
    made: list[int] = []
    real = connection.cursor

    def counted(*args: Any, **kwargs: Any) -> Any:
        made.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(connection, "cursor", counted)
    return made


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)  # no test transaction: no savepoint's cursor
def test_a_round_trip_nobody_watches_goes_on_the_kept_driver_cursor(
    make_contact: Callable[..., Contact], django_cursors_made: list[int]
) -> None:
    """``flush`` without a Django cursor while no query log or other execute wrapper watches:
    the same rows written and read, Django's errors raised; watched, through Django's cursor."""
    contact = make_contact()
    made = django_cursors_made
    made.clear()
    with transaction.atomic(), statements.together():
        statements.insert(_outbox(contact), later=True)
        rows = statements.fetch(
            'SELECT count(*) FROM "consents_outbox" WHERE "contact_id" = %s', [contact.pk]
        )
        assert rows == [(1,)]
    assert made == []
    with pytest.raises(IntegrityError), transaction.atomic(), statements.together():
        statements.insert(ContactFacts(contact=contact, fold={}))  # the same key: refused
    assert made == []
    with CaptureQueriesContext(connection) as captured, transaction.atomic(), statements.together():
        statements.insert(_outbox(contact), later=True)
    assert made and any("INSERT" in statements.spelt_out(q["sql"]) for q in captured)
    assert Outbox.objects.filter(contact=contact).count() == 2


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)  # autocommit, as a webhook's one insert
def test_an_insert_alone_goes_on_the_kept_driver_cursor_once_prepared(
    make_contact: Callable[..., Contact], django_cursors_made: list[int]
) -> None:
    """``insert`` outside ``together()``: prepared through a Django cursor the first time, then
    on the kept driver cursor while nothing watches, its id read back; a refused row raises
    Django's error; watched (a query log), through Django's cursor again."""
    contact = make_contact()
    first = statements.insert(_outbox(contact))  # prepares it
    made = django_cursors_made
    made.clear()
    second = statements.insert(_outbox(contact, to="b@example.fr"))
    assert made == []
    assert second.pk is not None and second.pk > first.pk
    assert Outbox.objects.get(pk=second.pk).to == "b@example.fr"
    made.clear()
    facts = ContactFacts(contact=contact, fold={})
    with pytest.raises(IntegrityError):  # the contact has its facts already: the same key
        statements.insert(facts)
    statements.insert(_outbox(contact, to="c@example.fr"))  # the connection is still usable
    assert made == []  # prepared when the contact was made: both on the driver cursor
    made.clear()
    with CaptureQueriesContext(connection) as captured:
        third = statements.insert(_outbox(contact, to="d@example.fr"))
    assert made and len(captured) == 1 and captured[0]["sql"].startswith("EXECUTE ")
    assert Outbox.objects.filter(contact=contact).order_by("pk").last().pk == third.pk
