"""``field__any_of``: the rows of ``__in``, asked with one array parameter on PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from consents.models import ChainHead, Contact, ContactFacts, Event


@pytest.mark.django_db
def test_any_of_finds_the_rows_in_finds(make_contact: Callable[..., Contact]) -> None:
    people = [make_contact(email=f"p{i}@example.fr") for i in range(6)]
    ids = [p.pk for p in people[:4]]
    assert set(Contact.objects.filter(pk__any_of=ids)) == set(Contact.objects.filter(pk__in=ids))
    assert {p.pk for p in Contact.objects.filter(pk__any_of=ids)} == set(ids)
    # A foreign key, a set, text values, a value nobody has.
    emails = {"p1@example.fr", "p5@example.fr", "nobody@example.fr"}
    assert set(Contact.objects.filter(email__any_of=emails).values_list("pk", flat=True)) == {
        people[1].pk,
        people[5].pk,
    }
    assert set(
        ContactFacts.objects.filter(contact_id__any_of={people[0].pk, people[2].pk}).values_list(
            "contact_id", flat=True
        )
    ) == {people[0].pk, people[2].pk}
    # None matches nothing; an empty collection finds nothing, as with ``__in``.
    assert list(Contact.objects.filter(pk__any_of=[None, people[3].pk])) == [people[3]]
    assert list(Contact.objects.filter(pk__any_of=[])) == []
    assert Contact.objects.exclude(pk__any_of=ids).count() == 2
    # A delete through it.
    ChainHead.objects.filter(contact_id__any_of=ids[:2]).delete()
    assert not ChainHead.objects.filter(contact_id__in=ids[:2]).exists()
    assert (
        Event.objects.filter(contact_id__any_of=ids).count()
        == Event.objects.filter(contact_id__in=ids).count()
    )


@pytest.mark.django_db
def test_any_of_refuses_a_single_value() -> None:
    with pytest.raises(TypeError):
        list(Contact.objects.filter(email__any_of="p1@example.fr"))


@pytest.mark.postgres
@pytest.mark.django_db
def test_on_postgresql_the_values_are_one_array_parameter(
    make_contact: Callable[..., Contact],
) -> None:
    people = [make_contact(email=f"p{i}@example.fr") for i in range(3)]
    ids = [p.pk for p in people]
    sql, params = Contact.objects.filter(pk__any_of=ids).query.sql_with_params()
    assert 'WHERE "consents_contact"."id" = ANY(%s)' in sql
    assert params == (ids,)
    with CaptureQueriesContext(connection) as ctx:
        assert len(Contact.objects.filter(pk__any_of=ids)) == 3
    assert "= ANY(" in ctx.captured_queries[0]["sql"]
    assert " IN (" not in ctx.captured_queries[0]["sql"]
