"""A ledger that shows tampering, deletions included: chain heads, signed anchors, keyed evidence
digests, and nothing personal in the chained fields.

The drill at the top is what an attacker with write access to the database would try, one step
after another; ``verify_ledger`` must name each step. On PostgreSQL it runs against the real
triggers, which the attacker has to switch off first (as the owner of the tables can).
"""

from __future__ import annotations

import hashlib
import hmac
import importlib
import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction

from consents import anchors, clock, ledger, services
from consents.ledger import event_hash
from consents.models import ChainHead, Contact, Event, Evidence, LedgerAnchor
from tests.conftest import at

GUARDED = ("consents_event", "consents_chainhead", "consents_ledgeranchor")


def behind_the_back(sql: str, params: list | None = None) -> None:
    """Run SQL as an attacker who owns the tables: the guarding triggers switched off first."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # Deferred foreign-key checks count as pending trigger events: run them first.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            for table in GUARDED:
                cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
        cursor.execute(sql, params or [])
        if connection.vendor == "postgresql":
            for table in GUARDED:
                cursor.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")


def delete_events(contact: Contact, from_seq: int = 1) -> None:
    where = "contact_id = %s AND seq >= %s"
    behind_the_back(
        f"DELETE FROM consents_evidence WHERE event_id IN (SELECT id FROM consents_event "
        f"WHERE {where})",
        [contact.pk, from_seq],
    )
    behind_the_back(f"DELETE FROM consents_event WHERE {where}", [contact.pk, from_seq])


def verify() -> tuple[int, str, str]:
    """``verify_ledger``: (exit code, standard output, standard error)."""
    out, err = StringIO(), StringIO()
    try:
        call_command("verify_ledger", workers=1, stdout=out, stderr=err)
    except SystemExit as exc:
        return int(exc.code or 0), out.getvalue(), err.getvalue()
    return 0, out.getvalue(), err.getvalue()


def lines_about(contact: Contact, err: str) -> list[str]:
    return [line for line in err.splitlines() if f"contact {contact.public_id} " in line]


@pytest.fixture
def people(make_topic, make_contact, web_proof) -> list[Contact]:
    """Four people with three events each (the first with personal evidence)."""
    make_topic()
    found = []
    for _ in range(4):
        person = make_contact()
        services.consent_grant(contact=person, topic="promotions", channel="email", proof=web_proof)
        services.interaction_record(contact=person, kind="click", proof=services.Proof())
        services.consent_withdraw(
            contact=person, topic="*", channel="*", proof=services.Proof(method="web_form")
        )
        found.append(person)
    return found


@pytest.fixture
def small_buckets(monkeypatch) -> None:
    """One contact id per anchor bucket: a mismatch is then named down to the contact."""
    monkeypatch.setattr(anchors, "MIN_BUCKET", 1)
    monkeypatch.setattr(anchors, "BUCKETS", 10**12)


def anchor_now() -> LedgerAnchor:
    return anchors.anchor_create(at=clock.now())


# --- The drill ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_tampering_drill(people, small_buckets):
    a, b, c, d = people
    anchor = anchor_now()
    code, out, _ = verify()
    assert code == 0, out
    assert "OK: 12 events in 4 chains" in out
    assert f"Anchor: anchor #{anchor.pk} of {ledger.iso(anchor.at)} (4 chains, 12 events)" in out

    # 1. A's tail is deleted, B's whole chain, and one of C's events is altered.
    delete_events(a, from_seq=2)
    delete_events(b)
    victim = Event.objects.get(contact=c, seq=2)
    behind_the_back("UPDATE consents_event SET actor = %s WHERE id = %s", ["mallory", victim.id])

    # 2. TRUNCATE is refused on PostgreSQL, trigger or no row trigger.
    if connection.vendor == "postgresql":
        for statement in ("TRUNCATE consents_event CASCADE", "TRUNCATE consents_contact CASCADE"):
            with (
                pytest.raises(DatabaseError, match="append-only: TRUNCATE"),
                transaction.atomic(),
                connection.cursor() as cursor,
            ):
                cursor.execute(statement)
        assert Event.objects.count() == 12 - 2 - 3

    code, _, err = verify()
    assert code == 1
    assert lines_about(a, err) == [
        f"BROKEN: contact {a.public_id} (id {a.pk}), event #2: the chain ends at event #1 but "
        "its recorded head is #3: its tail (events #2 to #3) was deleted."
    ]
    assert lines_about(b, err) == [
        f"BROKEN: contact {b.public_id} (id {b.pk}), event #1: no events, but its recorded head "
        "is #3: the whole chain was deleted."
    ]
    assert lines_about(c, err) == [
        f"BROKEN: contact {c.public_id} (id {c.pk}), event #2 (id {victim.id}): the event's "
        "content does not match its hash (altered)."
    ]
    assert not lines_about(d, err)
    assert "ANCHOR" not in err  # the heads are as they were anchored: they say it all

    # 3. The attacker covers their tracks: A's head rewound, B's head deleted. The chains and
    # the heads now agree; the anchor, signed with a key the database does not hold, does not.
    first = Event.objects.get(contact=a, seq=1)
    behind_the_back(
        "UPDATE consents_chainhead SET seq = 1, hash = %s, recorded_at = %s WHERE contact_id = %s",
        [first.hash, first.recorded_at, a.pk],
    )
    behind_the_back("DELETE FROM consents_chainhead WHERE contact_id = %s", [b.pk])
    code, _, err = verify()
    assert code == 1
    assert not lines_about(a, err) and not lines_about(b, err)
    assert len(lines_about(c, err)) == 1  # still altered
    name = f"ANCHOR: anchor #{anchor.pk} of {ledger.iso(anchor.at)}"
    assert (
        f"{name}: the ledger as of {ledger.iso(anchor.at)} no longer matches it: anchored "
        "4 chains and 12 events, now 3 chains and 7 events." in err
    )
    assert (
        f"{name}: contacts {a.pk} to {a.pk}: anchored 1 chains and 3 events, "
        "now 1 chains and 1 events." in err
    )
    assert f"{name}: contacts {b.pk} to {b.pk}: anchored 1 chains and 3 events, now none" in err
    assert f"contacts {c.pk} to {c.pk}" not in err  # C's head is intact; its chain says it
    assert f"contacts {d.pk} to {d.pk}" not in err

    # 4. Everything is wiped (TRUNCATE with the triggers off): the anchor still names it all.
    behind_the_back("DELETE FROM consents_evidence")
    behind_the_back("DELETE FROM consents_chainhead")
    behind_the_back("DELETE FROM consents_event")
    code, _, err = verify()
    assert code == 1
    assert "now 0 chains and 0 events" in err
    for person in people:
        assert f"contacts {person.pk} to {person.pk}: anchored 1 chains" in err


# --- Chain heads ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_every_append_records_its_chain_head(people):
    for person in people:
        head = ChainHead.objects.get(contact=person)
        last = Event.objects.filter(contact=person).order_by("-seq").first()
        assert (head.seq, head.hash, head.recorded_at) == (3, last.hash, last.recorded_at)


@pytest.mark.django_db
def test_verify_ledger_says_the_heads_match(people):
    code, out, _ = verify()
    assert code == 0
    assert "Heads: every chain ends at its recorded head (4)." in out
    assert "Anchor: none yet" in out


@pytest.mark.django_db
def test_an_append_after_a_deleted_tail_leaves_the_gap_in_the_chain(people):
    """The next event continues from the recorded head, not from what is left of the chain:
    the deletion stays visible for good."""
    person = people[0]
    head = ChainHead.objects.get(contact=person)
    delete_events(person, from_seq=3)
    event = services.interaction_record(contact=person, kind="open", proof=services.Proof())
    assert (event.seq, event.prev_hash) == (4, head.hash)
    code, _, err = verify()
    assert code == 1
    assert lines_about(person, err) == [
        f"BROKEN: contact {person.public_id} (id {person.pk}), event #4 (id {event.id}): "
        "expected position 3, found 4 (a missing event)."
    ]


@pytest.mark.django_db
def test_verify_ledger_names_a_chain_without_a_recorded_head(people):
    person = people[1]
    behind_the_back("DELETE FROM consents_chainhead WHERE contact_id = %s", [person.pk])
    code, _, err = verify()
    assert code == 1
    assert lines_about(person, err) == [
        f"BROKEN: contact {person.public_id} (id {person.pk}), event #3 (id "
        f"{Event.objects.get(contact=person, seq=3).id}): the chain (events #1 to #3) has no "
        "recorded head."
    ]


@pytest.mark.django_db
def test_verify_ledger_names_events_written_behind_the_writers_back(people):
    """Correctly chained, but not by the writer: the head does not know them."""
    person = people[2]
    last = Event.objects.get(contact=person, seq=3)
    forged = Event(
        contact=person,
        seq=4,
        type="opt_in",
        topic="promotions",
        channel="sms",
        method="import",
        actor="api:crm",
        occurred_at=last.occurred_at,
        recorded_at=last.recorded_at,
        data={"doi": "none", "prechecked": False, "bundled": False},
        prev_hash=last.hash,
    )
    forged.hash = event_hash(forged)
    forged.save(force_insert=True)
    code, _, err = verify()
    assert code == 1
    assert lines_about(person, err) == [
        f"BROKEN: contact {person.public_id} (id {person.pk}), event #4: events #4 to #4 follow "
        "the recorded head #3: they were not written by the ledger's writer."
    ]


@pytest.mark.django_db
def test_verify_ledger_names_a_rewritten_last_event(people):
    """The last event replaced by another, rehashed: the chain holds, the head does not."""
    person = people[3]
    last = Event.objects.get(contact=person, seq=3)
    rewritten = Event.objects.get(pk=last.pk)
    rewritten.topic = "promotions"
    rewritten.hash = event_hash(rewritten)
    behind_the_back(
        "UPDATE consents_event SET topic = %s, hash = %s WHERE id = %s",
        ["promotions", rewritten.hash, last.pk],
    )
    code, _, err = verify()
    assert code == 1
    assert lines_about(person, err) == [
        f"BROKEN: contact {person.public_id} (id {person.pk}), event #3 (id {last.pk}): the last "
        "event, #3, is not the recorded head (another hash): the tail was rewritten."
    ]


@pytest.mark.django_db
def test_verify_ledger_names_every_broken_chain_not_only_the_first(people):
    for person in people:
        victim = Event.objects.get(contact=person, seq=2)
        behind_the_back("UPDATE consents_event SET actor = 'x' WHERE id = %s", [victim.id])
    code, _, err = verify()
    assert code == 1
    for person in people:
        assert len(lines_about(person, err)) == 1


@pytest.mark.django_db
def test_an_append_committed_during_the_verification_is_not_a_problem(people):
    """The ledger and the heads are read in two statements: a head seen one event ahead of its
    chain is read again, in one statement, before it is called a problem."""
    person = people[0]
    result = ledger.Verification()
    result.add({"contact_id": person.pk, "event_id": None, "seq": 4, "kind": "tail", "problem": ""})
    ledger._recheck_heads(result)
    assert (result.problems, result.problem_count) == ([], 0)
    delete_events(person, from_seq=3)
    result.add({"contact_id": person.pk, "event_id": None, "seq": 3, "kind": "tail", "problem": ""})
    ledger._recheck_heads(result)
    assert result.problem_count == 1


@pytest.mark.django_db
def test_the_per_person_verification_names_a_deleted_tail(people):
    person = people[0]
    delete_events(person, from_seq=3)
    checked, broken = ledger.verify_range(person.pk, person.pk + 1)
    assert checked == 2
    assert (broken["seq"], broken["kind"]) == (3, "tail")
    assert "tail (events #3 to #3) was deleted" in broken["problem"]


@pytest.mark.django_db
def test_the_migration_records_the_head_of_every_existing_chain(people):
    behind_the_back("DELETE FROM consents_chainhead")
    migration = importlib.import_module("consents.migrations.0014_ledger_heads_anchors")
    with connection.cursor() as cursor:
        cursor.execute(migration.HEADS)
    code, out, _ = verify()
    assert code == 0, out
    assert ChainHead.objects.count() == 4


@pytest.mark.postgres
@pytest.mark.django_db
def test_postgres_chain_heads_only_move_forward_to_an_event_of_their_chain(people):
    head = ChainHead.objects.get(contact=people[0])
    attempts = [
        ("UPDATE consents_chainhead SET seq = 2 WHERE contact_id = %s", "only moves forward"),
        ("UPDATE consents_chainhead SET seq = 9 WHERE contact_id = %s", "only moves forward"),
        ("DELETE FROM consents_chainhead WHERE contact_id = %s", "append-only: DELETE"),
        ("TRUNCATE consents_chainhead", "append-only: TRUNCATE"),
    ]
    for sql, message in attempts:
        with (
            pytest.raises(DatabaseError, match=message),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            # The test's own inserts leave deferred foreign-key checks, which TRUNCATE minds.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute(sql, [head.contact_id] if "%s" in sql else None)
    assert ChainHead.objects.get(contact=people[0]).seq == 3


@pytest.mark.postgres
@pytest.mark.django_db
def test_postgres_refuses_truncate_of_the_ledger(people):
    with (
        pytest.raises(DatabaseError, match="append-only: TRUNCATE on consents_event"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # the test's own pending FK checks
        cursor.execute("TRUNCATE consents_event CASCADE")
    assert Event.objects.count() == 12


# --- Anchors --------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_anchor_signs_every_head_with_a_key_the_database_does_not_hold(people, settings):
    settings.LEDGER_ANCHOR_KEY = "k" * 48
    anchor = anchor_now()
    assert (anchor.chains, anchor.events) == (4, 12)
    assert anchor.previous == ledger.GENESIS and anchor.key_id == anchors.key_id()
    record = anchors.anchor_record(anchor)
    assert (
        anchor.signature
        == hmac.new(b"k" * 48, ledger.canonical_json(record).encode(), hashlib.sha256).hexdigest()
    )
    stored = json.dumps(LedgerAnchor.objects.filter(pk=anchor.pk).values().get(), default=str)
    assert "k" * 16 not in stored
    # The root is the digest of the buckets, each the digest of its heads, by contact id.
    size = anchor.bucket_size
    buckets: dict[int, list] = {}
    for h in ChainHead.objects.order_by("contact_id"):
        bucket = buckets.setdefault(h.contact_id - h.contact_id % size, [0, 0, ""])
        bucket[0] += 1
        bucket[1] += h.seq
        bucket[2] += f"{h.contact_id}:{h.seq}:{h.hash}\n"
    expected = [
        [first, chains, events, hashlib.sha256(lines.encode()).hexdigest()]
        for first, (chains, events, lines) in sorted(buckets.items())
    ]
    assert anchor.buckets == expected
    lines = "".join(f"{first}:{c}:{e}:{r}\n" for first, c, e, r in expected)
    assert anchor.root == hashlib.sha256(lines.encode()).hexdigest()


@pytest.mark.django_db
def test_without_a_key_the_anchor_key_is_derived_from_the_secret_key(settings):
    settings.LEDGER_ANCHOR_KEY = ""
    derived = anchors.anchor_key()
    settings.SECRET_KEY = "another secret key, at least thirty-two characters"
    assert anchors.anchor_key() != derived
    assert settings.SECRET_KEY.encode() not in anchors.anchor_key()


@pytest.mark.django_db
def test_appends_after_an_anchor_leave_it_intact(people, make_contact, web_proof):
    anchor = anchor_now()
    services.interaction_record(contact=people[0], kind="open", proof=web_proof)
    newcomer = make_contact()
    services.interaction_record(contact=newcomer, kind="open", proof=web_proof)
    check = anchors.anchor_check(anchor)
    assert check.ok, check.problems
    later = anchor_now()
    assert (later.chains, later.events) == (5, 14)
    assert later.previous == anchors.anchor_digest(anchor)
    code, out, _ = verify()
    assert code == 0, out
    assert "2 anchors linked" in out


@pytest.mark.django_db
def test_a_history_rewritten_with_every_hash_and_head_recomputed_is_named_by_the_anchor(
    people, small_buckets, settings
):
    """The one thing a hash chain cannot show by itself: the chain and the heads agree."""
    settings.LEDGER_ANCHOR_LAG = timedelta(0)
    anchor = anchor_now()
    person = people[1]
    prev = ledger.GENESIS
    for event in Event.objects.filter(contact=person).order_by("seq"):
        event.prev_hash = prev
        if event.seq == 1:
            event.data = {**event.data, "prechecked": True}
        event.hash = event_hash(event)
        data = "CAST(%s AS jsonb)" if connection.vendor == "postgresql" else "%s"
        behind_the_back(
            f"UPDATE consents_event SET data = {data}, prev_hash = %s, hash = %s WHERE id = %s",
            [json.dumps(event.data), event.prev_hash, event.hash, event.pk],
        )
        prev = event.hash
    behind_the_back(
        "UPDATE consents_chainhead SET hash = %s WHERE contact_id = %s", [prev, person.pk]
    )
    assert ledger.verify_range(person.pk, person.pk + 1) == (3, None)
    code, _, err = verify()
    assert code == 1
    assert not lines_about(person, err)
    assert (
        f"contacts {person.pk} to {person.pk}: anchored 1 chains and 3 events, now 1 chains and "
        "3 events (as many, but other hashes: rewritten)." in err
    )
    # And the next anchor will not sign over it, unless told to once it is looked into.
    with pytest.raises(anchors.AnchorRefused, match="rewritten"):
        anchor_now()
    err = StringIO()
    with pytest.raises(SystemExit):
        call_command("anchor_ledger", stderr=err)
    assert "No new anchor: it would sign over this change" in err.getvalue()
    out = StringIO()
    call_command("anchor_ledger", "--force", stdout=out)
    forced = LedgerAnchor.objects.latest()
    assert forced.pk != anchor.pk
    assert out.getvalue().startswith(f"Anchor #{forced.pk} of {ledger.iso(forced.at)}: 4 chains")
    assert verify()[0] == 0


@pytest.mark.django_db
def test_an_altered_anchor_is_named(people):
    anchor = anchor_now()
    behind_the_back("UPDATE consents_ledgeranchor SET events = 13 WHERE id = %s", [anchor.pk])
    code, _, err = verify()
    assert code == 1
    assert "its signature does not match its content (altered or forged)" in err
    assert "its buckets do not add up to its root and counts (altered)" in err


@pytest.mark.django_db
def test_an_anchor_signed_with_another_key_is_named(people, settings):
    settings.LEDGER_ANCHOR_KEY = "an old key that was at least thirty-two long"
    anchor = anchor_now()
    settings.LEDGER_ANCHOR_KEY = "a new key that is at least thirty-two characters"
    code, _, err = verify()
    assert code == 1
    assert f"signed with another key (key id {anchor.key_id}; this deployment's is " in err


@pytest.mark.django_db
def test_a_removed_anchor_breaks_the_links_of_the_next(people):
    first = anchors.anchor_create(at=clock.now())
    services.interaction_record(contact=people[0], kind="open", proof=services.Proof())
    middle = anchors.anchor_create(at=clock.now())
    services.interaction_record(contact=people[0], kind="open", proof=services.Proof())
    last = anchors.anchor_create(at=clock.now())
    assert anchors.latest_check().ok
    behind_the_back("DELETE FROM consents_ledgeranchor WHERE id = %s", [middle.pk])
    code, _, err = verify()
    assert code == 1
    assert "its link to the anchor before it does not match anchor #" in err
    assert f"#{first.pk}" in err and f"anchor #{last.pk}" in err


@pytest.mark.django_db
def test_an_anchor_covers_the_past_only_and_moves_forward(people, settings):
    settings.LEDGER_ANCHOR_LAG = timedelta(0)
    with clock.frozen(at("2026-06-01T12:00")):
        anchor = anchors.anchor_create()
        assert anchor.at == at("2026-06-01T12:00")
        with pytest.raises(ValidationError, match="already covers"):
            anchors.anchor_create()
        with pytest.raises(ValidationError, match="not the future"):
            anchors.anchor_create(at=at("2026-06-01T12:01"))
    settings.LEDGER_ANCHOR_LAG = timedelta(minutes=10)
    with clock.frozen(at("2026-06-01T13:00")):
        assert anchors.anchor_create().at == at("2026-06-01T12:50")


@pytest.mark.django_db
def test_the_hourly_task_anchors_and_a_refusal_is_logged(people, settings, caplog):
    from consents.tasks import ledger_anchor

    schedule = settings.CELERY_BEAT_SCHEDULE["ledger-anchor-hourly"]
    assert schedule["task"] == "consents.tasks.ledger_anchor"
    settings.LEDGER_ANCHOR_LAG = timedelta(0)
    done = ledger_anchor.apply().get()
    assert (done["chains"], done["events"]) == (4, 12)
    behind_the_back(
        "UPDATE consents_chainhead SET hash = %s WHERE contact_id = %s", ["f" * 64, people[0].pk]
    )
    refused = ledger_anchor.apply().get()
    assert refused["anchor"] is None and refused["refused"]
    assert "ledger anchor refused" in caplog.text
    assert LedgerAnchor.objects.count() == 1


@pytest.mark.django_db
def test_the_hourly_task_skips_an_instant_already_covered(people, caplog):
    from consents.tasks import ledger_anchor

    anchor_now()  # covers until now; the task covers until LEDGER_ANCHOR_LAG ago
    assert ledger_anchor.apply().get()["skipped"] == [
        f"The latest anchor already covers until {ledger.iso(LedgerAnchor.objects.get().at)}."
    ]
    assert "ledger anchor skipped" in caplog.text


@pytest.mark.django_db
def test_the_nightly_task_checks_the_latest_anchor(people, caplog):
    from consents.tasks import ledger_verify

    anchor = anchor_now()
    assert ledger_verify.apply().get()["anchor"] == {"id": anchor.pk, "problems": []}
    behind_the_back("DELETE FROM consents_chainhead WHERE contact_id = %s", [people[0].pk])
    result = ledger_verify.apply().get()
    assert result["broken"]["kind"] == "no_head"
    assert result["anchor"]["problems"]
    assert "ledger anchor check failed" in caplog.text


@pytest.mark.django_db
def test_export_anchors_writes_every_anchor_for_safekeeping(people, tmp_path):
    first = anchor_now()
    services.interaction_record(contact=people[0], kind="open", proof=services.Proof())
    second = anchor_now()
    out = StringIO()
    call_command("export_anchors", stdout=out)
    data = json.loads(out.getvalue())
    assert data["format"] == "assent.anchors.v1" and data["key_id"] == anchors.key_id()
    exported = data["anchors"]
    assert [a["id"] for a in exported] == [first.pk, second.pk]
    # Whoever keeps them can check the links without the key, and the signatures with it.
    assert exported[1]["previous"] == exported[0]["digest"]
    for item in exported:
        fields = {k: item[k] for k in anchors.anchor_record(first)}
        signed = ledger.canonical_json({**fields, "signature": item["signature"]})
        assert item["digest"] == hashlib.sha256(signed.encode()).hexdigest()
        assert item["signature"] == anchors.sign(fields)
    path = tmp_path / "anchors.json"
    err = StringIO()
    call_command("export_anchors", "--since", str(first.pk), "--output", str(path), stderr=err)
    assert [a["id"] for a in json.loads(path.read_text())["anchors"]] == [second.pk]
    assert "1 anchors written" in err.getvalue()


@pytest.mark.postgres
@pytest.mark.django_db
def test_postgres_anchors_are_append_only(people):
    anchor = anchor_now()
    for sql, message in (
        ("UPDATE consents_ledgeranchor SET root = 'x'", "append-only: UPDATE"),
        ("DELETE FROM consents_ledgeranchor", "append-only: DELETE"),
        ("TRUNCATE consents_ledgeranchor", "append-only: TRUNCATE"),
    ):
        with (
            pytest.raises(DatabaseError, match=message),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute(sql)
    assert LedgerAnchor.objects.get().root == anchor.root


def test_deploy_check_asks_for_a_dedicated_anchor_key_of_32_characters(settings):
    from consents.checks import ledger_anchor_key_check

    settings.LEDGER_ANCHOR_KEY = ""
    assert [m.id for m in ledger_anchor_key_check(None)] == ["assent.W001"]
    settings.LEDGER_ANCHOR_KEY = "short"
    assert [m.id for m in ledger_anchor_key_check(None)] == ["assent.E002"]
    settings.LEDGER_ANCHOR_KEY = "x" * 32
    assert ledger_anchor_key_check(None) == []


# --- Keyed evidence digests -----------------------------------------------------------------------


@pytest.mark.django_db
def test_the_evidence_digest_is_keyed_with_a_salt_kept_beside_the_evidence(people):
    event = Event.objects.get(contact=people[0], seq=1)
    evidence = Evidence.objects.get(event=event)
    assert len(evidence.salt) == 32
    payload = ledger.canonical_json(
        {"ip": "203.0.113.7", "ua": "Mozilla/5.0 (test)", "details": {}}
    )
    keyed = hmac.new(evidence.salt.encode(), payload.encode(), hashlib.sha256).hexdigest()
    assert event.evidence_digest == keyed
    assert event.evidence_digest != hashlib.sha256(payload.encode()).hexdigest()
    others = Evidence.objects.exclude(pk=evidence.pk).values_list("salt", flat=True)
    assert evidence.salt not in set(others)


@pytest.mark.django_db
def test_the_proof_export_lets_an_auditor_check_the_evidence_and_the_head(people):
    from consents.selectors.proof import proof_export

    data = proof_export(people[0])
    first = data["events"][0]
    evidence = first["evidence"]
    digest = ledger.evidence_digest(
        evidence["ip_address"], evidence["user_agent"], evidence["details"], salt=evidence["salt"]
    )
    assert digest == first["evidence_digest"]
    assert data["chain"]["recorded_head"] == {"seq": 3, "hash": data["chain"]["head"]}
    assert data["chain"]["intact"]


@pytest.mark.django_db
def test_after_erasure_the_address_cannot_be_guessed_back_from_the_chain(people):
    person = people[0]
    event = Event.objects.get(contact=person, seq=1)
    services.contact_erase(contact=person, reason="DSR 7", actor="staff:dpo")
    evidence = Evidence.objects.get(event=event)
    assert (evidence.ip_address, evidence.user_agent, evidence.salt) == (None, "", "")
    # An attacker trying every address of 203.0.113.0/24 with the unkeyed digest finds nothing.
    guesses = {
        ledger.evidence_digest(f"203.0.113.{n}", "Mozilla/5.0 (test)", {}) for n in range(256)
    }
    assert event.evidence_digest not in guesses
    assert verify()[0] == 0


@pytest.mark.django_db
def test_events_with_an_unkeyed_digest_from_before_still_verify(make_contact):
    """Events recorded before digests were keyed keep their plain SHA-256 digest, which the
    chain covers as it covers any digest; their evidence still matches it."""
    contact = make_contact()
    digest = ledger.evidence_digest("198.51.100.4", "old browser", {})
    event = Event(
        contact=contact,
        seq=1,
        type="interaction",
        actor="person",
        occurred_at=at("2025-01-01T10:00"),
        recorded_at=at("2025-01-01T10:00"),
        data={"kind": "click"},
        evidence_digest=digest,
        prev_hash=ledger.GENESIS,
    )
    event.hash = event_hash(event)
    event.save(force_insert=True)
    ChainHead.objects.create(contact=contact, seq=1, hash=event.hash, recorded_at=event.recorded_at)
    Evidence.objects.create(event=event, ip_address="198.51.100.4", user_agent="old browser")
    evidence = Evidence.objects.get(event=event)
    assert evidence.salt == ""
    assert (
        ledger.evidence_digest(
            evidence.ip_address, evidence.user_agent, evidence.details, salt=evidence.salt
        )
        == event.evidence_digest
    )
    assert ledger.verify_range(contact.pk, contact.pk + 1) == (1, None)
    event2 = services.interaction_record(
        contact=contact, kind="open", proof=services.Proof(ip_address="198.51.100.4")
    )
    assert event2.evidence.salt  # new events: keyed
    assert verify()[0] == 0


# --- Nothing personal in chained fields -----------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "chained"),
    [
        (
            "https://shop.example/subscribe/?email=marie%40example.fr",
            "https://shop.example/subscribe/",
        ),
        ("https://shop.example/subscribe/#marie@example.fr", "https://shop.example/subscribe/"),
        ("https://marie:secret@shop.example/a/?x=1", "https://shop.example/a/"),
        ("/subscribe/?email=marie@example.fr", "/subscribe/"),
        ("HTTP://Shop.example/p?q", "HTTP://Shop.example/p"),
        ("store:PAR01 device:3", "store:PAR01 device:3"),
        ("call:#4521?", "call:#4521?"),
        ("preference center", "preference center"),
        ("", ""),
    ],
)
def test_collection_points_keep_no_query_string_fragment_or_login(given, chained):
    assert ledger.collection_point(given) == chained


@pytest.mark.django_db
def test_the_writer_strips_the_query_string_from_the_collection_point(make_topic, make_contact):
    make_topic()
    contact = make_contact()
    event = services.consent_grant(
        contact=contact,
        topic="promotions",
        channel="email",
        proof=services.Proof(
            method="web_form",
            actor="person",
            collection_point="https://shop.example/subscribe/?email=person1%40example.fr#top",
        ),
    )
    event.refresh_from_db()
    assert event.collection_point == "https://shop.example/subscribe/"
    assert ledger.verify_range(contact.pk, contact.pk + 1) == (1, None)


@pytest.mark.django_db
def test_anchors_kept_outside_show_a_rewrite_whose_anchors_were_deleted_too(
    people, small_buckets, tmp_path
):
    """The attacker rewrites a chain, its head, and deletes every anchor from the database: the
    database alone no longer knows; the copy kept outside does."""
    anchor = anchor_now()
    kept = tmp_path / "anchors.json"
    call_command("export_anchors", "--output", str(kept), stderr=StringIO())
    code, out, _ = verify_with("--anchors", str(kept))
    assert code == 0, out
    assert f"the latest, anchor #{anchor.pk} of {ledger.iso(anchor.at)}, matches" in out

    person = people[2]
    delete_events(person, from_seq=2)
    first = Event.objects.get(contact=person, seq=1)
    behind_the_back(
        "UPDATE consents_chainhead SET seq = 1, hash = %s, recorded_at = %s WHERE contact_id = %s",
        [first.hash, first.recorded_at, person.pk],
    )
    behind_the_back("DELETE FROM consents_ledgeranchor")
    code, out, _ = verify()
    assert code == 0 and "Anchor: none yet" in out  # what the database alone can tell

    code, _, err = verify_with("--anchors", str(kept))
    assert code == 1
    name = f"anchor #{anchor.pk} of {ledger.iso(anchor.at)}"
    assert f"ANCHOR: {name}, kept outside, is no longer in the database." in err
    assert (
        f"ANCHOR: {name}: contacts {person.pk} to {person.pk}: anchored 1 chains and 3 events, "
        "now 1 chains and 1 events." in err
    )


def verify_with(*args: str) -> tuple[int, str, str]:
    out, err = StringIO(), StringIO()
    try:
        call_command("verify_ledger", "--workers", "1", *args, stdout=out, stderr=err)
    except SystemExit as exc:
        return int(exc.code or 0), out.getvalue(), err.getvalue()
    return 0, out.getvalue(), err.getvalue()


@pytest.mark.django_db
def test_a_file_that_is_not_an_anchor_export_is_a_clear_error(people, tmp_path):
    from django.core.management import CommandError

    bad = tmp_path / "bad.json"
    for content in ("not json", '{"format": "other", "anchors": []}', '{"anchors": [{"id": 1}]}'):
        bad.write_text(content)
        with pytest.raises(CommandError, match="--anchors"):
            call_command("verify_ledger", "--anchors", str(bad))
