"""The ledger as hash partitions by contact (``manage.py partition_ledger``): the services,
``verify_ledger`` and the audience query run unchanged on it, and it stays append-only.

PostgreSQL runs the layout change inside the test's transaction, which rolls it back.
"""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction

from consents import clock, ledger, services
from consents.audience import audience
from consents.models import Event
from consents.rules import Message

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


def test_the_partitioned_ledger_takes_appends_and_verifies(
    make_topic, make_contact, web_proof, capsys
):
    make_topic()
    before = make_contact()
    services.consent_grant(contact=before, topic="promotions", channel="email", proof=web_proof)
    call_command("partition_ledger", partitions=8)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_inherits WHERE inhparent = 'consents_event'::regclass"
        )
        assert cursor.fetchone()[0] == 8
    people = [before] + [make_contact() for _ in range(20)]
    for person in people:
        services.consent_grant(contact=person, topic="promotions", channel="email", proof=web_proof)
        services.interaction_record(contact=person, kind="click", proof=web_proof)
    services.consent_withdraw(contact=people[3], topic="*", channel="*", proof=web_proof)
    assert Event.objects.count() == 1 + 2 * len(people) + 1
    result = ledger.verify_chains(0, 10**9)
    assert result.problems == [] and result.checked == Event.objects.count()
    call_command("verify_ledger", workers=1)
    assert "OK" in capsys.readouterr().out
    message = Message(channel="email", purpose="promotion", topic="promotions")
    reached = {row.contact_id for row in audience(message, clock.now())}
    assert reached == {p.pk for p in people} - {people[3].pk}
    # Still append-only.
    with pytest.raises(DatabaseError), transaction.atomic():
        Event.objects.filter(contact=people[0]).update(topic="x")
