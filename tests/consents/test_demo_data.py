"""``manage.py demo_data``: what ``make run`` starts with, safe to run on every start."""

from __future__ import annotations

from collections.abc import Callable
from io import StringIO
from typing import Any

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from consents.models import (
    CatalogFact,
    Category,
    ChannelState,
    ConsentState,
    Contact,
    ContactFacts,
    Event,
    Evidence,
    Notice,
    Store,
    Topic,
)

MODELS = [
    Topic,
    Notice,
    Category,
    Store,
    Contact,
    Event,
    Evidence,
    ContactFacts,
    ChannelState,
    ConsentState,
    CatalogFact,
    Group,
]


@pytest.fixture(autouse=True)
def demo_settings(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    settings.DEBUG = True  # the command refuses to run otherwise; pytest-django turns it off
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    monkeypatch.delenv("DEMO_PASSWORD", raising=False)


def demo_data(**options: Any) -> str:
    out = StringIO()
    call_command("demo_data", stdout=out, **options)
    return out.getvalue()


def snapshot() -> dict[str, Any]:
    User = get_user_model()
    state: dict[str, Any] = {m.__name__: m.objects.count() for m in MODELS}
    state["event hashes"] = sorted(Event.objects.values_list("hash", flat=True))
    state["users"] = sorted(User.objects.values_list("username", "password", "is_staff"))
    state["group permissions"] = sorted(Group.objects.values_list("name", "permissions__codename"))
    state["topics"] = sorted(Topic.objects.values_list("slug", "name_fr", "channels"))
    state["notices"] = sorted(Notice.objects.values_list("topic__slug", "language", "version"))
    return state


def test_demo_data_twice_changes_nothing(db: Any) -> None:
    demo_data()
    first = snapshot()
    demo_data()
    assert snapshot() == first


def test_demo_data_creates_bilingual_topics_with_published_notices(db: Any) -> None:
    demo_data()
    slugs = set(Topic.objects.values_list("slug", flat=True))
    assert {"promotions", "new-products", "newsletter", "loyalty", "partners"} <= slugs
    assert Topic.objects.get(slug="loyalty").purpose == "loyalty_enrolment"
    assert Topic.objects.get(slug="partners").purpose == "partner_offer"
    for topic in Topic.objects.all():
        assert topic.name_fr and topic.name_en and topic.name_fr != topic.name_en
        for language in ("fr", "en"):
            notice = Notice.objects.get(topic=topic, language=language)
            assert notice.is_published and notice.version == 1
    assert Store.objects.filter(code="paris-01").exists()
    assert Category.objects.get(slug="sofa").family == "home"


def test_demo_contacts_are_in_the_states_they_show(db: Any) -> None:
    demo_data()

    def state(email: str, topic: str, channel: str) -> str:
        contact = Contact.objects.get(email=email)
        return ConsentState.objects.get(contact=contact, topic=topic, channel=channel).status

    assert state("camille.martin@example.fr", "newsletter", "email") == "opted_in"
    assert state("lucas.bernard@example.com", "newsletter", "email") == "pending"
    assert state("emma.petit@example.fr", "promotions", "email") == "opted_out"
    hugo = Contact.objects.get(phone="+33612345678")
    assert hugo.facts.is_customer
    assert state(hugo.email, "promotions", "sms") == "opted_in"
    assert hugo.events.filter(store__code="paris-01").count() == 2
    out = StringIO()
    call_command("verify_ledger", workers=1, stdout=out)  # children would not see the test data
    assert out.getvalue().startswith("OK")


def test_the_compliance_officer_is_in_the_migrations_group(db: Any) -> None:
    demo_data()
    User = get_user_model()
    officer = User.objects.get(username="compliance")
    assert officer.is_staff and not officer.is_superuser
    assert list(officer.groups.values_list("name", flat=True)) == ["Compliance officer"]
    every_view = Permission.objects.filter(
        content_type__app_label="consents", codename__startswith="view_"
    ).exclude(codename="view_dashboard")
    assert every_view.count() == len(list(apps.get_app_config("consents").get_models()))
    for perm in every_view:
        assert officer.has_perm(f"consents.{perm.codename}")
    for perm in ("change_topic", "add_notice", "export_contact", "erase_contact"):
        assert officer.has_perm(f"consents.{perm}")
    for perm in ("delete_contact", "change_event", "add_event", "delete_event", "change_contact"):
        assert not officer.has_perm(f"consents.{perm}")


def test_demo_users_log_in_with_the_demo_password(db: Any) -> None:
    out = demo_data()
    User = get_user_model()
    admin, store = User.objects.get(username="admin"), User.objects.get(username="store")
    assert admin.is_superuser and admin.is_staff
    assert not store.is_staff and not store.is_superuser
    for username in ("admin", "compliance", "store"):
        assert User.objects.get(username=username).check_password("assent-demo")
    assert "assent-demo" in out and "http://127.0.0.1:8000/admin/" in out


def test_demo_password_comes_from_the_environment(db: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEMO_PASSWORD", "another-secret-9")
    demo_data()
    assert get_user_model().objects.get(username="compliance").check_password("another-secret-9")


def test_the_compliance_officer_reads_the_demo_in_the_admin(
    client: Client, db: Any, settings: Any
) -> None:
    demo_data()  # DEBUG is on here, and the demo turns the second factor off:
    settings.ADMIN_REQUIRE_2FA = False
    assert client.login(username="compliance", password="assent-demo")
    response = client.get(reverse("admin:consents_contact_changelist"), {"q": "06 12 34 56 78"})
    assert [c.email for c in response.context["cl"].result_list] == ["hugo.durand@example.fr"]
    hugo = Contact.objects.get(email="hugo.durand@example.fr")
    page = client.get(reverse("admin:consents_contact_change", args=[hugo.pk]))
    assert page.status_code == 200
    assert hugo.events.get(seq=2).hash in page.content.decode()
    assert client.get(reverse("admin:consents_event_add")).status_code == 403


def test_store_staff_cannot_enter_the_admin(client: Client, db: Any) -> None:
    demo_data()
    assert client.login(username="store", password="assent-demo")
    # Signed in, but no admin access: a plain 403, never the admin.
    response = client.get(reverse("admin:index"))
    assert response.status_code == 403


def test_demo_data_keeps_what_already_exists(
    db: Any, make_topic: Callable[..., Topic], make_contact: Callable[..., Contact]
) -> None:
    make_topic("newsletter", purpose="newsletter", channels=["email"], name_fr="Ma lettre")
    make_contact(email="emma.petit@example.fr")
    demo_data()
    assert Topic.objects.get(slug="newsletter").name_fr == "Ma lettre"
    assert Notice.objects.filter(topic__slug="newsletter").count() == 2
    emma = Contact.objects.get(email="emma.petit@example.fr")
    assert not emma.events.exists()


def test_demo_data_refuses_to_run_with_debug_off(settings: Any, db: Any) -> None:
    settings.DEBUG = False
    with pytest.raises(CommandError, match="DEBUG is off"):
        demo_data()
    assert not get_user_model().objects.filter(username="admin").exists()
    demo_data(allow_production=True)
    assert get_user_model().objects.filter(username="admin").exists()
