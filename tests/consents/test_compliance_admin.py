"""The compliance officer's admin: roles, second factor, a person's page, exports, the log."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test import Client
from django.urls import reverse
from django_otp.oath import TOTP
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from consents import ledger, services
from consents.admin import twofactor
from consents.models import (
    AccessLog,
    Contact,
    Event,
    Notice,
    Outbox,
    Store,
    Topic,
)
from consents.outbox import render_email
from tests.conftest import at
from tests.consents.conftest import (
    publish_promotions_notice,
    store_tablet_opt_in,
    verified_login,
    web_form_opt_in,
)

pytestmark = pytest.mark.usefixtures("fast_passwords")


@pytest.fixture
def make_user(django_user_model: Any) -> Callable[..., Any]:
    def make(username: str, group: str | None = None, **extra: Any) -> Any:
        extra.setdefault("is_staff", True)
        user = django_user_model.objects.create_user(
            username=username, password="a-long-password-1", **extra
        )
        if group:
            user.groups.add(Group.objects.get(name=group))
        return user

    return make


@pytest.fixture
def marie(
    make_topic: Callable[..., Topic], make_contact: Callable[..., Contact], db: Any
) -> Contact:
    notice = publish_promotions_notice(make_topic("promotions"))
    store = Store.objects.create(code="paris-01", name="Paris Rivoli")
    contact = make_contact(email="marie@example.fr", phone="+33612345678")
    web_form_opt_in(contact, notice, user_agent="Mozilla/5.0 (test)")
    store_tablet_opt_in(contact, notice, store)
    return contact


def url(name: str, *args: Any) -> str:
    return reverse(f"admin:{name}", args=args)


# --- Roles ------------------------------------------------------------------------------------


def test_the_migration_creates_the_three_groups(db: Any) -> None:
    officer = set(
        Group.objects.get(name="Compliance officer").permissions.values_list("codename", flat=True)
    )
    assert {"export_contact", "erase_contact", "run_retention", "view_dashboard"} <= officer
    assert {"change_topic", "add_notice", "view_event", "view_accesslog"} <= officer
    assert not {c for c in officer if c.endswith(("_event", "_evidence")) and "view" not in c}
    assert not {c for c in officer if c.startswith("delete_")}
    for name in ("Store manager", "Staff"):
        codenames = set(
            Group.objects.get(name=name)
            .permissions.filter(content_type__app_label="consents")
            .values_list("codename", flat=True)
        )
        assert codenames <= {"view_store"}


def _pages(contact: Contact, event: Event) -> dict[str, tuple[str, str]]:
    """Every page and action of the compliance admin: (method, url)."""
    return {
        "contact list": ("get", url("consents_contact_changelist")),
        "contact page": ("get", url("consents_contact_change", contact.pk)),
        "proof export": ("get", url("consents_contact_proof", contact.pk)),
        "receipt": ("get", url("consents_contact_receipt", contact.pk)),
        "access export": ("get", url("consents_contact_access", contact.pk)),
        "verify": ("post", url("consents_contact_verify", contact.pk)),
        "erase form": ("get", url("consents_contact_erase", contact.pk)),
        "rectify form": ("get", url("consents_contact_rectify", contact.pk)),
        "event list": ("get", url("consents_event_changelist")),
        "event page": ("get", url("consents_event_change", event.pk)),
        "evidence list": ("get", url("consents_evidence_changelist")),
        "access log": ("get", url("consents_accesslog_changelist")),
        "erasures": ("get", url("consents_erasure_changelist")),
        "suppression list": ("get", url("consents_suppression_changelist")),
        "outbox": ("get", url("consents_outbox_changelist")),
        "topic add": ("get", url("consents_topic_add")),
        "notice add": ("get", url("consents_notice_add")),
        "dashboard": ("get", url("dashboard")),
        "dashboard csv": ("get", url("dashboard_csv", "weekly")),
        "retention report": ("get", url("retention")),
    }


ROLES = {
    # role: (group, is_superuser, expected status on every page)
    "compliance officer": ("Compliance officer", False, 200),
    "store manager": ("Store manager", False, 403),
    "staff": ("Staff", False, 403),
    "staff without group": (None, False, 403),
    "superuser": (None, True, 200),
}


@pytest.mark.parametrize("role", list(ROLES))
def test_permission_matrix(role: str, client: Client, make_user: Any, marie: Contact) -> None:
    group, superuser, expected = ROLES[role]
    user = make_user(role.replace(" ", "-"), group, is_superuser=superuser)
    verified_login(client, user)
    event = marie.events.first()
    for name, (method, page) in _pages(marie, event).items():
        response = getattr(client, method)(page)
        status = 302 if (name == "verify" and expected == 200) else expected
        assert response.status_code == status, (role, name, response.status_code)


def test_anonymous_is_sent_to_the_login_page_everywhere(client: Client, marie: Contact) -> None:
    for name, (method, page) in _pages(marie, marie.events.first()).items():
        response = getattr(client, method)(page)
        assert response.status_code == 302, name
        assert response["Location"].startswith(url("login")), name
    assert not AccessLog.objects.exists()


def test_store_staff_without_admin_access_get_403(
    client: Client, make_user: Any, marie: Contact
) -> None:
    verified_login(client, make_user("till", "Staff", is_staff=False))
    for name, args in (
        ("consents_contact_changelist", ()),
        ("consents_contact_change", (marie.pk,)),
        ("consents_event_changelist", ()),
        ("index", ()),
    ):
        response = client.get(url(name, *args))
        assert response.status_code == 403, name
        assert marie.email.encode() not in response.content


def test_nobody_changes_or_deletes_ledger_rows_through_the_admin(
    client: Client, make_user: Any, marie: Contact
) -> None:
    event = marie.events.get(seq=1)
    before = ledger.event_hash(event)
    for group, superuser in (("Compliance officer", False), (None, True)):
        verified_login(client, make_user(f"u{superuser}", group, is_superuser=superuser))
        page = client.get(url("consents_event_change", event.pk)).content.decode()
        assert 'name="_save"' not in page and "deletelink" not in page
        response = client.post(url("consents_event_change", event.pk), {"topic": "x", "seq": 9})
        assert response.status_code == 403
        response = client.post(url("consents_event_delete", event.pk), {"post": "yes"})
        assert response.status_code == 403
        response = client.post(
            url("consents_event_changelist"),
            {"action": "delete_selected", "_selected_action": [event.pk], "post": "yes"},
        )
        assert Event.objects.filter(pk=event.pk).exists()
    event.refresh_from_db()
    assert ledger.event_hash(event) == before == event.hash


# --- Second factor ----------------------------------------------------------------------------


def test_a_password_alone_does_not_open_the_admin(
    client: Client, make_user: Any, marie: Contact
) -> None:
    make_user("officer", "Compliance officer")
    assert client.login(username="officer", password="a-long-password-1")
    response = client.get(url("consents_contact_changelist"))
    assert response.status_code == 302
    response = client.get(response["Location"])  # the login page sends on to the second factor
    assert response.status_code == 302 and response["Location"].startswith(url("otp_verify"))
    response = client.get(response["Location"])  # no device yet: enrolment
    assert response["Location"] == url("otp_enrol")
    # ... which the password alone does not open: an administrator's enrolment link is needed.
    response = client.get(response["Location"])
    assert response.status_code == 403
    assert not TOTPDevice.objects.exists()


def test_first_login_enrols_a_totp_device_with_recovery_codes(
    client: Client, make_user: Any, marie: Contact
) -> None:
    user = make_user("officer", "Compliance officer")
    token = twofactor.enrolment_link_create(user=user, created_by=None)
    assert client.get(twofactor.enrolment_link_path(token))["Location"] == url("otp_enrol")
    client.post(url("login"), {"username": "officer", "password": "a-long-password-1"})
    page = client.get(url("otp_enrol"))
    assert page.status_code == 200
    assert "<svg" in page.content.decode()
    device = TOTPDevice.objects.get(user=user, confirmed=False)
    response = client.post(url("otp_enrol"), {"token": "000000"})
    assert "pas valide" in response.content.decode()  # the admin speaks French by default
    device.refresh_from_db()
    device.throttle_reset()  # a failure throttles the next try for a second; do not wait for it
    code = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift).token()
    response = client.post(url("otp_enrol"), {"token": f"{code:06d}"})
    assert response.status_code == 200
    codes = response.context["codes"]
    assert len(codes) == 10
    assert StaticToken.objects.filter(device__user=user).count() == 10
    device.refresh_from_db()
    assert device.confirmed
    assert client.get(url("consents_contact_changelist")).status_code == 200

    # Next time: password, then a recovery code (used once).
    client.post(reverse("admin:logout"))
    client.post(url("login"), {"username": "officer", "password": "a-long-password-1"})
    assert client.get(url("consents_contact_changelist")).status_code == 302
    response = client.post(url("otp_verify"), {"token": codes[0]})
    assert response.status_code == 302
    assert client.get(url("consents_contact_changelist")).status_code == 200
    assert StaticToken.objects.filter(device__user=user).count() == 9


def test_a_wrong_code_does_not_verify(client: Client, make_user: Any, db: Any) -> None:
    user = make_user("officer", "Compliance officer")
    TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    client.post(url("login"), {"username": "officer", "password": "a-long-password-1"})
    response = client.post(url("otp_verify"), {"token": "123456"})
    assert response.status_code == 200
    assert client.get(url("consents_contact_changelist")).status_code == 302


def test_the_second_factor_cannot_be_skipped_with_debug_off(
    client: Client, make_user: Any, settings: Any, db: Any
) -> None:
    settings.DEBUG, settings.ADMIN_REQUIRE_2FA = False, False
    make_user("officer", "Compliance officer")
    client.login(username="officer", password="a-long-password-1")
    assert client.get(url("consents_contact_changelist")).status_code == 302
    settings.DEBUG = True  # the embedded default's demo
    assert client.get(url("consents_contact_changelist")).status_code == 200


# --- A person's page ---------------------------------------------------------------------------


@pytest.fixture
def officer_client(client: Client, make_user: Any) -> Client:
    verified_login(client, make_user("officer", "Compliance officer"))
    return client


def test_the_contact_page_shows_the_basis_per_topic_and_channel(
    officer_client: Client, marie: Contact
) -> None:
    response = officer_client.get(url("consents_contact_change", marie.pk))
    grid = {(r.topic.slug, r.channel): r.decision for r in response.context["grid"]}
    assert grid[("promotions", "email")].reason == "OPT_IN"
    assert grid[("promotions", "push")].reason == "NO_ADDRESS"
    assert grid[("promotions", "postal")].reason == "NO_ADDRESS"
    assert "OPT_IN" in response.content.decode()


def test_the_decision_panel_answers_with_the_reason_and_facts(
    officer_client: Client, marie: Contact
) -> None:
    page = url("consents_contact_change", marie.pk)
    services.consent_withdraw(
        contact=marie,
        topic="promotions",
        channel="email",
        proof=services.Proof(method="unsubscribe_link", actor="person"),
        occurred_at=at("2026-03-01T10:00"),
    )
    params = {
        "decide-channel": "email",
        "decide-purpose": "promotion",
        "decide-topic": "promotions",
    }
    response = officer_client.get(page, params)
    assert response.context["decision"].reason == "OPTED_OUT"
    # As of a date before the opt-out, the same message was allowed.
    response = officer_client.get(page, {**params, "decide-at": "2026-02-15T00:00"})
    decision = response.context["decision"]
    assert decision.allowed and decision.reason == "OPT_IN"
    assert "expires_at" in dict(response.context["decision_facts"])
    assert 'id="decision-reason">OPT_IN' in response.content.decode()


def test_every_view_and_export_is_logged_and_visible(
    officer_client: Client, marie: Contact
) -> None:
    officer_client.get(url("consents_contact_change", marie.pk))
    officer_client.get(url("consents_contact_proof", marie.pk))
    officer_client.get(url("consents_contact_receipt", marie.pk))
    officer_client.get(url("consents_contact_access", marie.pk))
    log = list(AccessLog.objects.order_by("id").values_list("username", "action", "contact"))
    assert log == [
        ("officer", "view_contact", marie.pk),
        ("officer", "export_proof", marie.pk),
        ("officer", "export_receipt", marie.pk),
        ("officer", "export_access", marie.pk),
    ]
    listing = officer_client.get(url("consents_accesslog_changelist"))
    assert len(listing.context["cl"].result_list) == 4
    entry = AccessLog.objects.first()
    assert officer_client.post(url("consents_accesslog_change", entry.pk), {}).status_code == 403


def test_the_proof_export_holds_events_notices_and_hashes(
    officer_client: Client, marie: Contact
) -> None:
    response = officer_client.get(url("consents_contact_proof", marie.pk))
    assert response["Content-Disposition"].startswith("attachment")
    data = json.loads(response.content)
    assert data["contact"]["public_id"] == marie.public_id
    assert [e["seq"] for e in data["events"]] == [1, 2]
    first = data["events"][0]
    assert first["method"] == "web_form" and first["evidence"]["ip_address"] == "203.0.113.7"
    assert first["hash"] == marie.events.get(seq=1).hash
    assert data["events"][1]["prev_hash"] == first["hash"]
    notice = Notice.objects.get()
    assert data["notices"] == [
        {
            "id": notice.pk,
            "topic": "promotions",
            "language": "fr",
            "version": 1,
            "text": "J'accepte les promos.",
            "sha256": notice.sha256,
            "published_at": ledger.iso(notice.published_at),
        }
    ]
    assert data["chain"]["intact"] and data["chain"]["head"] == data["events"][1]["hash"]


def test_the_receipt_has_one_page_per_consent(officer_client: Client, marie: Contact) -> None:
    page = officer_client.get(url("consents_contact_receipt", marie.pk)).content.decode()
    assert page.count('class="receipt"') == 2
    assert "J&#x27;accepte les promos." in page
    assert marie.events.get(seq=2).hash in page


def test_the_access_export_holds_state_and_decisions(
    officer_client: Client, marie: Contact
) -> None:
    data = json.loads(officer_client.get(url("consents_contact_access", marie.pk)).content)
    assert data["contact"]["email"] == "marie@example.fr"
    assert {
        "topic": "promotions",
        "channel": "sms",
        "purpose": "promotion",
        "allowed": True,
        "reason": "OPT_IN",
    } in data["decisions"]
    assert len(data["current_state"]) == 2


def test_verify_says_the_chain_is_intact(officer_client: Client, marie: Contact) -> None:
    response = officer_client.post(url("consents_contact_verify", marie.pk), follow=True)
    assert "Chaîne intacte : 2 événements vérifiés." in response.content.decode()
    assert officer_client.get(url("consents_contact_verify", marie.pk)).status_code == 405
    assert AccessLog.objects.filter(action="verify", detail="intact, 2 events").exists()


# --- Erasure and rectification from the admin -------------------------------------------------


def test_erasure_from_the_admin_needs_a_reason_and_is_logged(
    officer_client: Client, marie: Contact
) -> None:
    page = url("consents_contact_erase", marie.pk)
    response = officer_client.post(page, {"confirm": "marie@example.fr", "reason": ""})
    assert response.status_code == 400
    marie.refresh_from_db()
    assert marie.email == "marie@example.fr"
    response = officer_client.post(
        page, {"confirm": "marie@example.fr", "reason": "Request of 12 March, ticket 1234"}
    )
    assert response.status_code == 302
    marie.refresh_from_db()
    assert marie.email is None and marie.phone == ""
    assert marie.erasure.actor == "staff:officer"
    assert AccessLog.objects.filter(
        action="erase", contact=marie, detail="Request of 12 March, ticket 1234"
    ).exists()


def test_rectification_changes_the_email_only_once_the_new_address_confirms(
    officer_client: Client, marie: Contact, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = officer_client.post(
            url("consents_contact_rectify", marie.pk), {"email": "marie.new@example.org"}
        )
    assert response.status_code == 302
    marie.refresh_from_db()
    assert marie.email == "marie@example.fr"
    row = Outbox.objects.get(template="email-confirm")
    assert row.to == "marie.new@example.org" and row.is_service
    # The row holds what to send, not the link: that is minted when the email is rendered.
    assert "http" not in json.dumps([row.context, row.links])
    body = render_email(row).body
    link = re.search(r"http://127\.0\.0\.1:8000(/confirm-email/[^/\s]+/)", body).group(1)
    anonymous = Client()
    assert anonymous.get(link).status_code == 200
    marie.refresh_from_db()
    assert marie.email == "marie@example.fr"  # GET changes nothing
    assert anonymous.post(link).status_code == 200
    marie.refresh_from_db()
    assert marie.email == "marie.new@example.org"
    last = marie.events.order_by("-seq").first()
    assert (last.type, last.channel, last.actor) == ("address_changed", "email", "person")
    assert Client().post(link).status_code == 200  # a second use finds nothing to do
    assert marie.events.filter(type="address_changed").count() == 1


def test_rectification_with_an_invalid_address_shows_the_form_again(
    officer_client: Client, marie: Contact
) -> None:
    response = officer_client.post(
        url("consents_contact_rectify", marie.pk),
        {"email": "not an address"},
        HTTP_ACCEPT_LANGUAGE="fr",
    )
    assert response.status_code == 200  # a form error, not a server error
    assert "Saisissez une adresse e-mail valide." in response.content.decode()
    assert not Outbox.objects.filter(template="email-confirm").exists()


def test_the_receipt_is_in_the_persons_language_whatever_the_officers(
    officer_client: Client, marie: Contact
) -> None:
    page = officer_client.get(
        url("consents_contact_receipt", marie.pk), HTTP_ACCEPT_LANGUAGE="en"
    ).content.decode()
    assert '<html lang="fr">' in page
    assert "<title>Reçus de consentement" in page


@pytest.mark.parametrize("role", ["store manager", "staff", "staff without group"])
def test_actions_are_refused_without_the_right(
    role: str, client: Client, make_user: Any, marie: Contact
) -> None:
    group, _, _ = ROLES[role]
    verified_login(client, make_user(role.replace(" ", "-"), group))
    draft = services.notice_draft_create(topic=None, language="fr", text="Brouillon.")
    published = Notice.objects.filter(published_at__isnull=False).first()
    actions = {
        "erase": (url("consents_contact_erase", marie.pk), {"reason": "x"}),
        "rectify": (url("consents_contact_rectify", marie.pk), {"email": "x@example.org"}),
        "retention run": (url("retention"), {}),
        "publish": (url("consents_notice_publish", draft.pk), {}),
        "reconfirm": (url("consents_notice_reconfirm", published.pk), {}),
        "topic change": (url("consents_topic_change", Topic.objects.get().pk), {"name_fr": "x"}),
    }
    for name, (page, data) in actions.items():
        assert client.post(page, data).status_code == 403, name
    marie.refresh_from_db()
    draft.refresh_from_db()
    assert marie.email == "marie@example.fr" and draft.published_at is None
    assert not Outbox.objects.exists()


# --- The outbox: what was sent, never a key to a person ----------------------------------------


def test_the_outbox_page_shows_no_link_and_no_message_and_each_view_is_logged(
    officer_client: Client, marie: Contact
) -> None:
    from preferences.services import signup_submit

    # Someone signed up and has not confirmed yet: their confirmation email is pending.
    signup_submit(email="paul@example.fr", choices=[("promotions", "email")])
    row = Outbox.objects.get(to="paul@example.fr")
    assert row.status == Outbox.Status.PENDING
    listing = officer_client.get(url("consents_outbox_changelist")).content.decode()
    page = officer_client.get(url("consents_outbox_change", row.pk))
    assert page.status_code == 200
    html = page.content.decode()
    # An officer used to be able to copy the confirmation link here and confirm in the
    # person's name; now the row holds no link at all, and the page shows none.
    for text in (listing, html):
        assert "/confirm/" not in text and "/unsubscribe/" not in text
        assert not re.search(r"[A-Za-z0-9_-]{8,}:[A-Za-z0-9_-]{4,}:[A-Za-z0-9_-]{8,}", text)
    assert "confirm, unsubscribe" in html  # what kind of links the email carries
    assert "signup-confirm" in html
    entry = AccessLog.objects.get(action="view_outbox")
    assert entry.contact == row.contact and entry.username == "officer"
    assert f"#{row.pk}" in entry.detail


# --- The outbox's index for per-address rate limits (preferences) -----------------------------


@pytest.mark.postgres
def test_a_case_insensitive_address_lookup_can_use_the_outbox_index(db: Any) -> None:
    """``to__iexact`` is ``UPPER("to"::text) = UPPER(%s)`` on PostgreSQL: the functional index
    ``outbox_upper_to_template`` must match that expression (the plain one on ``to`` cannot)."""
    lookup = Outbox.objects.filter(
        to__iexact="Marie@Example.fr",
        template__in=("signup-confirm", "signup-already"),
        created_at__gte=at("2026-01-01T00:00"),
    )
    assert 'UPPER("consents_outbox"."to"::text) = UPPER(' in str(lookup.query)
    with connection.cursor() as cursor:
        # A test table is tiny: forbid the sequential scan to see which index could serve it.
        cursor.execute("SET LOCAL enable_seqscan = off")
        plan = lookup.explain()
    assert "outbox_upper_to_template" in plan, plan
