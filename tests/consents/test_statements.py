"""``consents.statements`` writes the rows the ORM would write, on both databases."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.forms.models import model_to_dict

from consents import clock, statements
from consents.models import ChainHead, Contact, ContactFacts, Outbox
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
