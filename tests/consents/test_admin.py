"""The compliance admin: finding a person, reading their ledger, and not being able to change it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import Group, Permission
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from consents import anchors, clock, services
from consents.admin.contacts import LatestEventsFormSet
from consents.models import (
    AccessLog,
    CatalogFact,
    Category,
    ChannelState,
    ConsentState,
    Contact,
    ContactFacts,
    Event,
    Evidence,
    LedgerAnchor,
    Notice,
    Store,
    Topic,
)
from tests.consents.conftest import (
    publish_promotions_notice,
    store_tablet_opt_in,
    unsubscribe_link_opt_out,
    verified_login,
    web_form_opt_in,
)

pytestmark = pytest.mark.usefixtures("fast_passwords")

# --- Fixtures -----------------------------------------------------------------------------------


@pytest.fixture
def officer(django_user_model: Any) -> Any:
    """A staff user whose group may view every consents model, and nothing else."""
    group = Group.objects.create(name="Compliance officers")
    group.permissions.set(
        Permission.objects.filter(content_type__app_label="consents", codename__startswith="view_")
    )
    user = django_user_model.objects.create_user(username="officer", is_staff=True)
    user.groups.add(group)
    return user


@pytest.fixture
def officer_client(client: Client, officer: Any) -> Client:
    verified_login(client, officer)
    return client


@pytest.fixture
def store(db: Any) -> Store:
    return Store.objects.create(code="paris-01", name="Paris Rivoli")


@pytest.fixture
def marie(
    make_topic: Callable[..., Topic],
    make_contact: Callable[..., Contact],
    web_proof: services.Proof,
    store: Store,
) -> Contact:
    """Opted in to promotions by email on the web and by SMS in a store, then left email."""
    notice = publish_promotions_notice(make_topic("promotions"))
    contact = make_contact(email="Marie.Dupont@Example.FR", phone="+33612345678")
    web_form_opt_in(contact, notice, user_agent="Mozilla/5.0 (test)")
    store_tablet_opt_in(contact, notice, store, collection_point="store:paris-01")
    unsubscribe_link_opt_out(contact, "email", "2026-03-01T10:00")
    return contact


@pytest.fixture
def other(make_contact: Callable[..., Contact]) -> Contact:
    return make_contact(email="jean.martin@example.com", phone="+33698765432")


def admin_url(model: type, action: str, *args: Any) -> str:
    return reverse(f"admin:consents_{model._meta.model_name}_{action}", args=args)


def found(client: Client, model: type, term: str) -> set[int]:
    response = client.get(admin_url(model, "changelist"), {"q": term})
    assert response.status_code == 200
    return {obj.pk for obj in response.context["cl"].result_list}


def inline_data(response: Any) -> dict[str, Any]:
    """The management forms of a change page's inlines, as a browser would post them back."""
    data: dict[str, Any] = {}
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        data[f"{formset.prefix}-TOTAL_FORMS"] = formset.total_form_count()
        data[f"{formset.prefix}-INITIAL_FORMS"] = formset.initial_form_count()
        for form in formset.initial_forms:
            data[f"{form.prefix}-id"] = form.instance.pk
            data[f"{form.prefix}-contact"] = form.instance.contact_id
    return data


# --- Who may enter --------------------------------------------------------------------------------


def test_anonymous_is_sent_to_the_login_page(client: Client, marie: Contact) -> None:
    for url in (
        admin_url(Contact, "changelist"),
        admin_url(Contact, "change", marie.pk),
        admin_url(Event, "changelist"),
    ):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("admin:login"))


def test_staff_without_permissions_sees_no_consents_data(
    client: Client, django_user_model: Any, marie: Contact
) -> None:
    user = django_user_model.objects.create_user(username="nobody", is_staff=True)
    verified_login(client, user)
    assert client.get(admin_url(Contact, "changelist")).status_code == 403
    assert client.get(admin_url(Event, "changelist")).status_code == 403


# --- Finding a person ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "term",
    [
        "Marie.Dupont@example.fr",  # as stored: domain lower-cased
        "  Marie.Dupont@EXAMPLE.fr ",  # normalised like services do
        "marie.dupont@example.fr",  # the local part's case is unknown to the officer
        "dupont",  # part of the address
    ],
)
def test_officer_finds_a_contact_by_email(
    officer_client: Client, marie: Contact, other: Contact, term: str
) -> None:
    assert found(officer_client, Contact, term) == {marie.pk}


@pytest.mark.parametrize("term", ["+33612345678", "06 12 34 56 78", "0033 6 12 34 56 78", "612345"])
def test_officer_finds_a_contact_by_phone(
    officer_client: Client, marie: Contact, other: Contact, term: str
) -> None:
    assert found(officer_client, Contact, term) == {marie.pk}


def test_officer_finds_a_contact_by_public_id(
    officer_client: Client, marie: Contact, other: Contact
) -> None:
    assert found(officer_client, Contact, marie.public_id) == {marie.pk}


def test_an_unknown_address_finds_nobody(officer_client: Client, marie: Contact) -> None:
    assert found(officer_client, Contact, "marie.dupont@example.com") == set()
    assert found(officer_client, Contact, "+33611111111") == set()


def test_officer_finds_a_contacts_events_by_email_and_phone(
    officer_client: Client, marie: Contact, other: Contact, web_proof: services.Proof
) -> None:
    services.consent_grant(contact=other, topic="promotions", channel="email", proof=web_proof)
    marie_events = set(marie.events.values_list("pk", flat=True))
    assert len(marie_events) == 3
    assert found(officer_client, Event, "marie.dupont@EXAMPLE.FR") == marie_events
    assert found(officer_client, Event, "06 12 34 56 78") == marie_events


# --- Reading a person's ledger and state ------------------------------------------------------


def test_officer_reads_the_ledger_newest_first_on_the_contact_page(
    officer_client: Client, marie: Contact
) -> None:
    response = officer_client.get(admin_url(Contact, "change", marie.pk))
    assert response.status_code == 200
    page = response.content.decode()
    events = list(marie.events.order_by("seq"))
    positions = [page.index(e.hash) for e in events]
    assert positions == sorted(positions, reverse=True), "newest event first"
    for text in ("store:paris-01", "staff:alice", "https://shop.example/subscribe/"):
        assert text in page
    assert "promotions fr v1" in page  # the notice version each consent was collected under
    assert "Paris Rivoli (paris-01)" in page
    assert "Intacte : 3 événements vérifiés" in page  # in the officer’s language


def test_officer_reads_the_current_state_on_the_contact_page(
    officer_client: Client, marie: Contact
) -> None:
    response = officer_client.get(admin_url(Contact, "change", marie.pk))
    shown = {
        inline.formset.model: list(inline.formset.get_queryset())
        for inline in response.context["inline_admin_formsets"]
    }
    states = {(s.topic, s.channel): s.status for s in shown[ConsentState]}
    assert states[("promotions", "email")] == ConsentState.Status.OPTED_OUT
    assert states[("promotions", "sms")] == ConsentState.Status.OPTED_IN
    assert [f.last_seq for f in shown[ContactFacts]] == [3]
    assert {c.channel for c in shown[ChannelState]} == set(
        marie.channel_states.values_list("channel", flat=True)
    )
    assert ChannelState in shown and CatalogFact in shown


def test_the_contact_page_is_view_only_for_the_officer(
    officer_client: Client, marie: Contact
) -> None:
    page = officer_client.get(admin_url(Contact, "change", marie.pk)).content.decode()
    assert 'name="_save"' not in page
    assert admin_url(Contact, "delete", marie.pk) not in page


def test_the_contact_page_shows_a_broken_chain(officer_client: Client, marie: Contact) -> None:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # As an attacker with SQL access would; the test's transaction undoes it all.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("ALTER TABLE consents_event DISABLE TRIGGER consents_event_append_only")
        cursor.execute(
            "UPDATE consents_event SET actor = %s WHERE contact_id = %s AND seq = 2",
            ["staff:mallory", marie.pk],
        )
        if connection.vendor == "postgresql":
            cursor.execute("ALTER TABLE consents_event ENABLE TRIGGER consents_event_append_only")
    page = officer_client.get(admin_url(Contact, "change", marie.pk)).content.decode()
    assert "ROMPUE" in page and "n° 2" in page


def test_the_contact_page_shows_only_the_latest_events(
    officer_client: Client, marie: Contact, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(LatestEventsFormSet, "limit", 2)
    page = officer_client.get(admin_url(Contact, "change", marie.pk)).content.decode()
    hashes = dict(marie.events.values_list("seq", "hash"))
    assert hashes[3] in page and hashes[2] in page
    assert hashes[1] not in page


def test_officer_reads_an_event_with_its_evidence(officer_client: Client, marie: Contact) -> None:
    event = marie.events.get(seq=1)
    page = officer_client.get(admin_url(Event, "change", event.pk)).content.decode()
    assert event.hash in page and event.prev_hash in page
    assert "203.0.113.7" in page  # the evidence, kept beside the event
    assert 'name="_save"' not in page


@pytest.mark.parametrize(
    "model",
    [
        Contact,
        Event,
        Evidence,
        ContactFacts,
        ChannelState,
        ConsentState,
        CatalogFact,
        Topic,
        Notice,
        Category,
        Store,
    ],
)
def test_officer_can_list_every_consents_model(
    officer_client: Client, marie: Contact, model: type
) -> None:
    response = officer_client.get(admin_url(model, "changelist"))
    assert response.status_code == 200
    assert admin_url(model, "add") not in response.content.decode()


def test_the_contact_page_does_not_grow_queries_with_events(
    officer_client: Client, marie: Contact, other: Contact, web_proof: services.Proof
) -> None:
    def queries(contact: Contact) -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert officer_client.get(admin_url(Contact, "change", contact.pk)).status_code == 200
        return len(ctx.captured_queries)

    services.consent_grant(contact=other, topic="promotions", channel="email", proof=web_proof)
    few = queries(other)
    for channel in ("sms", "push", "phone", "postal", "email", "sms"):
        services.consent_grant(contact=other, topic="promotions", channel=channel, proof=web_proof)
    assert queries(other) == few


@pytest.mark.parametrize(
    "model",
    [Contact, Event, Evidence, ContactFacts, ConsentState, ChannelState, CatalogFact, Notice],
)
def test_lists_do_not_grow_queries_with_rows(
    officer_client: Client,
    marie: Contact,
    make_contact: Callable[..., Contact],
    web_proof: services.Proof,
    store: Store,
    model: type,
) -> None:
    def queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert officer_client.get(admin_url(model, "changelist")).status_code == 200
        return len(ctx.captured_queries)

    few = queries()
    topic = Topic.objects.get(slug="promotions")
    for n in range(4):
        contact = make_contact(email=f"more{n}@example.fr")
        proof = services.Proof(
            method="store_tablet",
            actor="staff:alice",
            store=store,
            notice=services.notice_publish(topic=topic, language="en", text=f"v{n}"),
            ip_address="203.0.113.9",
        )
        services.consent_grant(contact=contact, topic="promotions", channel="sms", proof=proof)
        services.purchase_record(contact=contact, category="sofa", product="", proof=proof)
    assert queries() == few


# --- Nobody changes the ledger ------------------------------------------------------------------


def _objects(marie: Contact) -> dict[type, Any]:
    event = marie.events.get(seq=1)
    return {
        Contact: marie,
        Event: event,
        Evidence: Evidence.objects.get(event=event),
        ContactFacts: ContactFacts.objects.get(contact=marie),
        ConsentState: marie.consent_states.first(),
        ChannelState: marie.channel_states.first(),
        Topic: Topic.objects.get(slug="promotions"),
        Notice: Notice.objects.get(),
        Category: services.category_set(slug="sofa", family="home"),
        Store: Store.objects.get(),
        LedgerAnchor: anchors.anchor_create(at=clock.now()),
    }


def test_officer_can_add_change_or_delete_nothing(officer_client: Client, marie: Contact) -> None:
    for model, obj in _objects(marie).items():
        before = model.objects.filter(pk=obj.pk).values().get()
        assert officer_client.get(admin_url(model, "add")).status_code == 403, model
        assert officer_client.post(admin_url(model, "add"), {}).status_code == 403, model
        response = officer_client.post(admin_url(model, "change", obj.pk), {"name": "x"})
        assert response.status_code == 403, model
        assert officer_client.get(admin_url(model, "delete", obj.pk)).status_code == 403, model
        assert officer_client.post(admin_url(model, "delete", obj.pk)).status_code == 403, model
        assert model.objects.filter(pk=obj.pk).values().get() == before, model


LEDGER_AND_PROJECTIONS = [Event, Evidence, ContactFacts, ConsentState, ChannelState, LedgerAnchor]


@pytest.mark.parametrize("model", LEDGER_AND_PROJECTIONS)
def test_superuser_cannot_add_to_the_ledger_or_its_projections(
    admin_client: Client, marie: Contact, model: type
) -> None:
    assert admin_client.get(admin_url(model, "add")).status_code == 403
    assert admin_client.post(admin_url(model, "add"), {"contact": marie.pk}).status_code == 403


@pytest.mark.parametrize("model", LEDGER_AND_PROJECTIONS)
def test_superuser_cannot_change_the_ledger_or_its_projections(
    admin_client: Client, marie: Contact, model: type
) -> None:
    obj = _objects(marie)[model]
    before = model.objects.filter(pk=obj.pk).values().get()
    tampered = {**before, "actor": "staff:mallory", "user_agent": "x", "status": "opted_in"}
    tampered = {k: v for k, v in tampered.items() if v is not None}
    response = admin_client.post(admin_url(model, "change", obj.pk), tampered)
    assert response.status_code == 403
    assert model.objects.filter(pk=obj.pk).values().get() == before
    page = admin_client.get(admin_url(model, "change", obj.pk)).content.decode()
    assert 'name="_save"' not in page


@pytest.mark.parametrize("model", LEDGER_AND_PROJECTIONS)
def test_superuser_cannot_delete_from_the_ledger_or_its_projections(
    admin_client: Client, marie: Contact, model: type
) -> None:
    obj = _objects(marie)[model]
    assert admin_client.get(admin_url(model, "delete", obj.pk)).status_code == 403
    assert admin_client.post(admin_url(model, "delete", obj.pk), {"post": "yes"}).status_code == 403
    response = admin_client.post(
        admin_url(model, "changelist"),
        {"action": "delete_selected", "_selected_action": [obj.pk], "post": "yes"},
    )
    assert response.status_code in (200, 302)
    assert model.objects.filter(pk=obj.pk).exists()


def test_superuser_sees_no_add_button_or_delete_action_on_the_ledger(
    admin_client: Client, marie: Contact
) -> None:
    response = admin_client.get(admin_url(Event, "changelist"))
    page = response.content.decode()
    assert admin_url(Event, "add") not in page
    assert "delete_selected" not in page
    assert response.context["cl"].show_full_result_count is False


def test_superuser_cannot_add_or_delete_contacts(admin_client: Client, marie: Contact) -> None:
    assert admin_client.get(admin_url(Contact, "add")).status_code == 403
    assert (
        admin_client.post(admin_url(Contact, "delete", marie.pk), {"post": "yes"}).status_code
        == 403
    )
    assert Contact.objects.filter(pk=marie.pk).exists()


def test_superuser_edits_a_contacts_name_but_not_what_the_rules_read(
    admin_client: Client, marie: Contact
) -> None:
    url = admin_url(Contact, "change", marie.pk)
    data = inline_data(admin_client.get(url))
    data.update(
        first_name="Marie",
        locale="en",
        email="someone.else@example.fr",
        phone="+33600000000",
        kind="professional",
    )
    response = admin_client.post(url, data)
    assert response.status_code == 302, response.context and response.context["errors"]
    marie.refresh_from_db()
    assert (marie.first_name, marie.locale) == ("Marie", "en")
    assert (marie.email, marie.phone, marie.kind) == (
        "Marie.Dupont@example.fr",
        "+33612345678",
        "consumer",
    )
    assert marie.events.count() == 3


# --- Notices and topics: through the services ----------------------------------------------------


def test_a_published_notice_cannot_be_changed_or_deleted(
    admin_client: Client, marie: Contact
) -> None:
    notice = Notice.objects.get()
    url = admin_url(Notice, "change", notice.pk)
    response = admin_client.post(url, {"topic": notice.topic_id, "language": "fr", "text": "Autre"})
    assert response.status_code == 403
    assert (
        admin_client.post(admin_url(Notice, "delete", notice.pk), {"post": "yes"}).status_code
        == 403
    )
    notice.refresh_from_db()
    assert notice.text == "J'accepte les promos."


def test_adding_a_notice_writes_a_draft_that_publishing_fixes(
    admin_client: Client, marie: Contact
) -> None:
    first = Notice.objects.get()
    response = admin_client.post(
        admin_url(Notice, "add"),
        {"topic": first.topic_id, "language": "fr", "text": "J'accepte les bons plans."},
    )
    assert response.status_code == 302
    draft = Notice.objects.exclude(pk=first.pk).get()
    assert draft.version == 2 and draft.published_at is None and draft.sha256 == ""
    response = admin_client.post(
        admin_url(Notice, "change", draft.pk),
        {"text": "J'accepte les bons plans de la semaine."},
    )
    assert response.status_code == 302
    draft.refresh_from_db()
    assert draft.text == "J'accepte les bons plans de la semaine."
    assert admin_client.get(admin_url(Notice, "publish", draft.pk)).status_code == 405
    response = admin_client.post(admin_url(Notice, "publish", draft.pk))
    assert response.status_code == 302
    draft.refresh_from_db()
    assert draft.published_at is not None
    assert len(draft.sha256) == 64
    assert draft.sha256 in admin_client.get(admin_url(Notice, "change", draft.pk)).content.decode()
    response = admin_client.post(admin_url(Notice, "change", draft.pk), {"text": "Autre chose."})
    assert response.status_code == 403
    draft.refresh_from_db()
    assert draft.text == "J'accepte les bons plans de la semaine."
    first.refresh_from_db()
    assert first.text == "J'accepte les promos."


def test_adding_a_topic_goes_through_the_service_rules(admin_client: Client, db: Any) -> None:
    url = admin_url(Topic, "add")
    data = {
        "slug": "newsletter",
        "name_fr": "La lettre",
        "name_en": "The newsletter",
        "purpose": "service",  # not a purpose a topic can have
        "channels": ["email"],
        "frequencies": "weekly, monthly",
        "display_order": 0,
        "active": "on",
    }
    assert admin_client.post(url, data).status_code == 200  # the form, with its error
    assert not Topic.objects.exists()
    assert admin_client.post(url, {**data, "purpose": "newsletter"}).status_code == 302
    topic = Topic.objects.get()
    assert (topic.purpose, topic.channels) == ("newsletter", ["email"])
    assert topic.frequencies == ["weekly", "monthly"]


def test_a_topics_slug_and_purpose_cannot_change_and_it_cannot_be_deleted(
    admin_client: Client, marie: Contact
) -> None:
    topic = Topic.objects.get(slug="promotions")
    data = {
        "slug": "renamed",
        "purpose": "newsletter",
        "name_fr": "Promos",
        "name_en": "Deals",
        "channels": ["email", "sms"],
        "frequencies": "weekly",
        "display_order": 1,
        "active": "on",
    }
    assert admin_client.post(admin_url(Topic, "change", topic.pk), data).status_code == 302
    topic.refresh_from_db()
    assert (topic.slug, topic.purpose) == ("promotions", "promotion")
    assert (topic.name_en, topic.channels) == ("Deals", ["email", "sms"])
    assert (
        admin_client.post(admin_url(Topic, "delete", topic.pk), {"post": "yes"}).status_code == 403
    )


# --- Ledger anchors and the chain's verification -------------------------------------------------


def test_officer_reads_the_anchors_and_exports_them_for_safekeeping(
    officer_client: Client, marie: Contact
) -> None:
    anchor = anchors.anchor_create(at=clock.now())
    page = officer_client.get(admin_url(LedgerAnchor, "changelist")).content.decode()
    assert anchor.root in page
    export = reverse("admin:consents_ledgeranchor_export")
    assert f'href="{export}"' in page
    response = officer_client.get(export)
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="ledger-anchors.json"'
    data = response.json()
    assert data["format"] == "assent.anchors.v1"
    assert [a["id"] for a in data["anchors"]] == [anchor.pk]
    assert AccessLog.objects.filter(action="export_anchors", username="officer").exists()


def test_anchor_export_needs_the_view_permission(
    verified_client: Callable[[Any], Client], django_user_model: Any
) -> None:
    clerk = django_user_model.objects.create_user(username="clerk", is_staff=True)
    response = verified_client(clerk).get(reverse("admin:consents_ledgeranchor_export"))
    assert response.status_code == 403


def test_the_verify_button_names_a_deleted_tail(officer_client: Client, marie: Contact) -> None:
    from tests.consents.test_tampering import delete_events

    delete_events(marie, from_seq=3)
    response = officer_client.post(f"/admin/consents/contact/{marie.pk}/verify/", follow=True)
    assert "its tail (events #3 to #3) was deleted" in response.content.decode()
