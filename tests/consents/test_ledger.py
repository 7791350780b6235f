from __future__ import annotations

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction

from consents import services
from consents.ledger import event_hash
from consents.models import Event


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
    assert "OK: 9 events" in capsys.readouterr().out


@pytest.mark.django_db
def test_nightly_verification_task_reports_a_broken_chain(ledger, caplog):
    from consents.tasks import ledger_verify

    assert ledger_verify.apply().get() == {"checked": 9, "broken": None}
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
