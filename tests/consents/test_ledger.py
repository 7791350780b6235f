from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction

from consents import ledger as hash_chain
from consents import services
from consents.ledger import GENESIS, event_hash, verify_chains, verify_range
from consents.models import ChainHead, Event


@pytest.fixture
def ledger(make_topic, make_contact, web_proof):
    make_topic()
    people = [make_contact() for _ in range(3)]
    for person in people:
        services.consent_grant(contact=person, topic="promotions", channel="email", proof=web_proof)
        services.interaction_record(contact=person, kind="click", proof=web_proof)
        services.consent_withdraw(contact=person, topic="*", channel="*", proof=web_proof)
    return people


def _tamper(sql: str, params: list) -> None:
    """Change a ledger row behind the application's back, as an attacker with SQL access would."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # Deferred foreign-key checks count as pending trigger events: run them first.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("ALTER TABLE consents_event DISABLE TRIGGER consents_event_append_only")
        cursor.execute(sql, params)
        if connection.vendor == "postgresql":
            cursor.execute("ALTER TABLE consents_event ENABLE TRIGGER consents_event_append_only")


@pytest.mark.django_db
def test_stored_hashes_match_their_content(ledger):
    for event in Event.objects.all():
        assert event_hash(event) == event.hash


@pytest.mark.django_db
def test_verify_ledger_passes_on_an_intact_ledger(ledger, capsys):
    call_command("verify_ledger", workers=1)
    assert "OK: 9 events in 3 chains" in capsys.readouterr().out


@pytest.mark.django_db
def test_verify_ledger_names_the_first_altered_event(ledger, capsys):
    victim = Event.objects.get(contact=ledger[1], seq=2)
    _tamper("UPDATE consents_event SET method = %s WHERE id = %s", ["admin", victim.id])
    with pytest.raises(SystemExit) as exc:
        call_command("verify_ledger", workers=1)
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert f"contact {ledger[1].public_id}" in err
    assert "event #2" in err
    assert "altered" in err


@pytest.mark.django_db
def test_verify_ledger_finds_a_removed_event(ledger, capsys):
    victim = Event.objects.get(contact=ledger[0], seq=2)
    victim.evidence.delete()
    _tamper("DELETE FROM consents_event WHERE id = %s", [victim.id])
    with pytest.raises(SystemExit):
        call_command("verify_ledger", workers=1)
    err = capsys.readouterr().err
    assert f"contact {ledger[0].public_id}" in err
    assert "missing" in err


@pytest.mark.django_db
def test_verify_ledger_finds_a_rewritten_chain_link(ledger, capsys):
    victim = Event.objects.get(contact=ledger[2], seq=3)
    _tamper("UPDATE consents_event SET prev_hash = %s WHERE id = %s", ["f" * 64, victim.id])
    with pytest.raises(SystemExit):
        call_command("verify_ledger", workers=1)
    assert "event #3" in capsys.readouterr().err


@pytest.mark.postgres
@pytest.mark.django_db
def test_postgres_refuses_update_of_a_ledger_row(ledger):
    event = Event.objects.first()
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("UPDATE consents_event SET type = 'opt_in' WHERE id = %s", [event.id])
    event.refresh_from_db()
    assert event.type != "opt_in" or event.seq == 1


@pytest.mark.postgres
@pytest.mark.django_db
def test_postgres_refuses_delete_of_a_ledger_row(ledger):
    count = Event.objects.count()
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("DELETE FROM consents_event")
    assert Event.objects.count() == count


@pytest.mark.postgres
@pytest.mark.django_db
def test_postgres_refuses_orm_update_too(ledger):
    with pytest.raises(DatabaseError), transaction.atomic():
        Event.objects.update(actor="someone else")
    assert not Event.objects.filter(actor="someone else").exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_verify_ledger_runs_in_parallel_workers(ledger, capsys):
    call_command("verify_ledger", workers=2)
    assert "OK: 9 events in 3 chains" in capsys.readouterr().out


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_parallel_workers_name_the_first_broken_link_of_the_whole_ledger(ledger, capsys):
    """Each range of contacts stops at its own first break; the command names the earliest."""
    later = Event.objects.get(contact=ledger[2], seq=1)
    first = Event.objects.get(contact=ledger[1], seq=2)
    _tamper("UPDATE consents_event SET actor = %s WHERE id = %s", ["mallory", later.id])
    _tamper("UPDATE consents_event SET prev_hash = %s WHERE id = %s", ["f" * 64, first.id])
    with pytest.raises(SystemExit):
        call_command("verify_ledger", workers=2)
    err = capsys.readouterr().err
    assert f"contact {ledger[1].public_id}" in err
    assert f"event #2 (id {first.id})" in err
    assert "prev_hash" in err


@pytest.mark.django_db
def test_nightly_verification_task_reports_a_broken_chain(ledger, caplog):
    from consents.tasks import ledger_verify

    assert ledger_verify.apply().get() == {
        "checked": 9,
        "broken": None,
        "problems": 0,
        "anchor": None,
    }
    victim = Event.objects.get(contact=ledger[0], seq=1)
    _tamper("UPDATE consents_event SET actor = %s WHERE id = %s", ["mallory", victim.id])
    result = ledger_verify.apply().get()
    assert result["broken"]["event_id"] == victim.id
    assert "ledger verification failed" in caplog.text


@pytest.mark.postgres
@pytest.mark.django_db
def test_postgres_refuses_to_change_a_published_notice(make_topic):
    from consents.models import Notice

    notice = services.notice_publish(topic=make_topic(), language="fr", text="Offres par email")
    with pytest.raises(DatabaseError, match="immutable"), transaction.atomic():
        Notice.objects.filter(pk=notice.pk).update(text="Autre chose")
    with pytest.raises(DatabaseError, match="cannot be deleted"), transaction.atomic():
        Notice.objects.filter(pk=notice.pk).delete()
    notice.refresh_from_db()
    assert notice.text == "Offres par email"


@pytest.mark.django_db
def test_publishing_again_makes_a_new_version_with_its_digest(make_topic):
    import hashlib

    topic = make_topic()
    first = services.notice_publish(topic=topic, language="fr", text="v1")
    second = services.notice_publish(topic=topic, language="fr", text="v2")
    english = services.notice_publish(topic=topic, language="en", text="v1 en")
    assert (first.version, second.version, english.version) == (1, 2, 1)
    assert second.sha256 == hashlib.sha256(b"v2").hexdigest()
    assert first.is_published and second.is_published


# --- The fast path (the canonical text's template, PostgreSQL's spelling of the instants) -----


def _jsonb(sql: str) -> str:
    return sql.replace("%s", "CAST(%s AS jsonb)", 1) if connection.vendor == "postgresql" else sql


ALTERATIONS = [
    ("type", "complaint"),
    ("topic", "newsletter"),
    ("channel", "sms"),
    ("occurred_at", "+1µs"),
    ("recorded_at", "+1µs"),
    ("method", "admin"),
    ("actor", "mallory"),
    ("collection_point", "https://shop.example/subscribe/?"),
    ("proof", "forged"),
    ("data", '{"doi": "none", "bundled": false, "prechecked": true}'),
    ("evidence_digest", "0" * 64),
    ("seq", 7),
]


@pytest.mark.parametrize(("column", "value"), ALTERATIONS, ids=[c for c, _ in ALTERATIONS])
@pytest.mark.django_db
def test_verify_ledger_finds_an_alteration_of_any_hashed_column(ledger, capsys, column, value):
    victim = Event.objects.get(contact=ledger[1], seq=1)
    if value == "+1µs":
        value = getattr(victim, column) + timedelta(microseconds=1)
    sql = f"UPDATE consents_event SET {column} = %s WHERE id = %s"
    _tamper(_jsonb(sql) if column == "data" else sql, [value, victim.id])
    with pytest.raises(SystemExit):
        call_command("verify_ledger", workers=1)
    err = capsys.readouterr().err
    assert f"contact {ledger[1].public_id}" in err
    if column == "seq":  # the chain now starts at #2: the first event is missing
        assert "event #2" in err and "missing" in err
    else:
        assert f"event #1 (id {victim.id})" in err and "altered" in err


def _append_raw(contact, **fields) -> Event:
    """Append an event with ``fields`` behind the services' back, chained (and its head
    recorded) as they would."""
    last = Event.objects.filter(contact=contact).order_by("-seq").first()
    at = fields.pop("occurred_at")
    event = Event(
        contact=contact,
        seq=last.seq + 1 if last else 1,
        prev_hash=last.hash if last else GENESIS,
        occurred_at=at,
        recorded_at=fields.pop("recorded_at", at),
        **{"type": "interaction", "actor": "system", "data": {}, **fields},
    )
    event.hash = event_hash(event)
    event.save(force_insert=True)
    ChainHead.objects.update_or_create(
        contact=contact,
        defaults={"seq": event.seq, "hash": event.hash, "recorded_at": event.recorded_at},
    )
    return event


@pytest.fixture
def unusual(make_contact, make_topic):
    """A chain whose every event the template must spell exactly as ``canonical_event`` does."""
    make_topic()
    contact = make_contact()
    utc = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    paris = timezone(timedelta(hours=2))
    _append_raw(contact, occurred_at=utc, data={"kind": "open"})  # no microseconds
    _append_raw(
        contact,
        occurred_at=datetime(2026, 3, 1, 23, 30, 0, 5, tzinfo=paris),
        recorded_at=datetime(2026, 3, 2, 0, 0, 0, 999999, tzinfo=UTC),
        actor='staff:Zoé "la" \\ \t\n \u2028 \U0001f600',
        collection_point="https://shop.example/a?b=1&c=«d»",
        proof="réf. 1/2",
        evidence_digest="a" * 64,
        data={"z": [1, 1.5, None, True, "é"], "a": {"y": 2, "b": "\u0001"}, "kind": "reply"},
    )
    _append_raw(contact, occurred_at=datetime(987, 6, 5, 4, 3, 2, 1, tzinfo=UTC), data={})
    _append_raw(
        contact,
        type="opt_in",
        topic="promotions",
        channel="email",
        method="web_form",
        occurred_at=utc,
        data={"doi": "none", "prechecked": False, "bundled": False, "frequency": "weekly"},
    )
    return contact


@pytest.mark.django_db
def test_verify_accepts_events_with_unusual_content(unusual):
    assert verify_range(unusual.pk, unusual.pk + 1) == (4, None)
    result = verify_chains(unusual.pk - 10, unusual.pk + 10)
    assert (result.checked, result.chains, result.broken) == (4, 1, None)


@pytest.mark.django_db
def test_verify_without_the_template_gives_the_same_answers(unusual, monkeypatch):
    monkeypatch.setattr(hash_chain, "CANONICAL_TEMPLATE", False)
    assert verify_range(unusual.pk, unusual.pk + 1) == (4, None)
    victim = Event.objects.get(contact=unusual, seq=2)
    _tamper(
        _jsonb("UPDATE consents_event SET data = %s WHERE id = %s"),
        ['{"kind": "click"}', victim.id],
    )
    checked, broken = verify_range(unusual.pk, unusual.pk + 1)
    assert (checked, broken["seq"]) == (1, 2)


@pytest.mark.postgres
@pytest.mark.django_db
def test_a_template_that_disagrees_with_the_ledger_raises_no_false_alarm(unusual, monkeypatch):
    """The first event of every chunk is hashed both ways; on a disagreement the verification goes
    on with ``canonical_event``, and still finds what was altered."""
    monkeypatch.setattr(hash_chain, "canonical_text", lambda *args: "not the canonical form")
    assert verify_range(unusual.pk, unusual.pk + 1, chunk_size=2) == (4, None)
    victim = Event.objects.get(contact=unusual, seq=4)
    _tamper("UPDATE consents_event SET method = %s WHERE id = %s", ["admin", victim.id])
    checked, broken = verify_range(unusual.pk, unusual.pk + 1, chunk_size=2)
    assert (checked, broken["seq"], broken["event_id"]) == (3, 4, victim.id)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_verify_streams_inside_a_transaction_of_its_own(unusual):
    """Out of any transaction (autocommit), verification opens one for its cursor."""
    assert connection.get_autocommit()
    assert verify_range(unusual.pk, unusual.pk + 1) == (4, None)
    assert connection.get_autocommit() and not connection.in_atomic_block


def test_postgresql_spelling_of_an_instant_is_the_ledgers():
    for at in (
        datetime(2026, 3, 1, 12, 0, tzinfo=UTC),
        datetime(987, 6, 5, 4, 3, 2, 1, tzinfo=UTC),
        datetime(5, 1, 1, tzinfo=UTC),
    ):
        # to_char(... 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') pads the year to 4 digits.
        padded = f"{at.year:04d}" + at.strftime("-%m-%dT%H:%M:%S.%fZ")
        assert hash_chain._pg_iso(padded) == hash_chain.iso(at) == hash_chain.fast_iso(at)
    assert hash_chain.CANONICAL_TEMPLATE
