"""The admin of webhook endpoints (secret shown once, addresses inside the network refused,
recent deliveries with latency, replay, rotation, failing endpoints shown) and of imports (upload,
preview that changes nothing, confirm)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from standardwebhooks.webhooks import Webhook

from consents import clock, services, webhooks_out
from consents.models import Contact, Event, ImportRun, WebhookDelivery, WebhookEndpoint
from tests.consents.webhook_receiver import Receiver
from tests.workers import celery_publishing

FILES = Path(__file__).resolve().parent / "imports"


@pytest.fixture(autouse=True)
def local_receivers(settings: Any, tmp_path: Path) -> Any:
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True
    settings.WEBHOOK_REQUIRE_HTTPS = False
    settings.VAR_DIR = tmp_path
    with celery_publishing("memory://", eager=True):
        yield


@pytest.fixture
def receiver() -> Any:
    r = Receiver().start()
    yield r
    r.stop()


def test_a_new_endpoints_secret_is_shown_once(admin_client: Client, receiver: Receiver) -> None:
    response = admin_client.post(
        "/admin/consents/webhookendpoint/add/",
        {
            "url": receiver.url,
            "description": "Brevo",
            "event_types": ["consent.withdrawn"],
            "active": "on",
        },
    )
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.event_types == ["consent.withdrawn"]
    assert endpoint.secret in response.content.decode()
    page = admin_client.get(f"/admin/consents/webhookendpoint/{endpoint.pk}/change/")
    assert page.status_code == 200
    assert endpoint.secret not in page.content.decode()


def test_an_endpoint_inside_the_network_is_refused_by_the_form(
    settings: Any, admin_client: Client
) -> None:
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False
    response = admin_client.post(
        "/admin/consents/webhookendpoint/add/",
        {"url": "http://169.254.169.254/latest/meta-data/", "active": "on"},
    )
    assert response.status_code == 200
    assert "loopback, private, link-local or metadata" in response.content.decode()
    assert not WebhookEndpoint.objects.exists()


def test_the_endpoint_page_shows_recent_deliveries_and_latency_and_replays_a_range(
    admin_client: Client,
    receiver: Receiver,
    make_topic: Callable[..., Any],
    make_contact: Callable[..., Contact],
    django_capture_on_commit_callbacks: Any,
) -> None:
    endpoint, _ = webhooks_out.endpoint_create(url=receiver.url)
    make_topic("newsletter")
    lea = make_contact(email="lea@example.fr")
    with django_capture_on_commit_callbacks(execute=True):
        services.consent_withdraw(
            contact=lea,
            topic="newsletter",
            channel="email",
            proof=services.Proof(method="unsubscribe_link", actor="person"),
        )
    page = admin_client.get(f"/admin/consents/webhookendpoint/{endpoint.pk}/change/")
    text = page.content.decode()
    assert "consent.withdrawn" in text and "recent-deliveries" in text
    assert "1 messages : 1 remis" in text  # the admin speaks French by default
    delivery = WebhookDelivery.objects.get()
    assert str(delivery.latency_ms) in text
    start = (clock.now() - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    end = (clock.now() + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            f"/admin/consents/webhookendpoint/{endpoint.pk}/replay/",
            {"replay-start": start, "replay-end": end},
        )
    assert response.status_code == 302
    assert len(receiver.received) == 2
    assert receiver.received[0].headers["webhook-id"] == receiver.received[1].headers["webhook-id"]


def test_rotating_shows_the_new_secret_once_and_both_sign(
    admin_client: Client, receiver: Receiver
) -> None:
    endpoint, old = webhooks_out.endpoint_create(url=receiver.url)
    assert (
        admin_client.get(f"/admin/consents/webhookendpoint/{endpoint.pk}/rotate/").status_code
        == 405
    )
    response = admin_client.post(f"/admin/consents/webhookendpoint/{endpoint.pk}/rotate/")
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    endpoint.refresh_from_db()
    assert endpoint.secret in response.content.decode()
    assert endpoint.previous_secret == old
    secrets = webhooks_out.signing_secrets(endpoint, clock.now())
    assert secrets == [endpoint.secret, old]
    assert Webhook(endpoint.secret)  # a secret the reference library reads


def test_failing_endpoints_are_shown_on_the_admin_index(admin_client: Client) -> None:
    WebhookEndpoint.objects.create(
        url="https://crm.example.com/", secret="whsec_x", created_at=clock.now(),
        failing_since=clock.now(),
    )  # fmt: skip
    page = admin_client.get("/admin/")
    assert "1 point de réception de webhooks est en échec" in page.content.decode()
    english = admin_client.get("/admin/", HTTP_ACCEPT_LANGUAGE="en")
    assert "1 webhook endpoint is failing" in english.content.decode()


def test_an_import_is_previewed_then_confirmed(
    admin_client: Client, make_topic: Callable[..., Any], django_capture_on_commit_callbacks: Any
) -> None:
    make_topic("newsletter")
    upload = SimpleUploadedFile(
        "subscribed.csv", (FILES / "mailchimp_subscribed.csv").read_bytes(), "text/csv"
    )
    preview = admin_client.post(
        "/admin/import/", {"file": upload, "preset": "mailchimp", "topic": "newsletter"}
    )
    assert preview.status_code == 200
    text = preview.content.decode()
    assert "email: not a valid address" in text and "opt_in newsletter/email" in text
    assert not Contact.objects.exists() and not ImportRun.objects.exists()
    confirm = preview.context["confirm"].initial
    with django_capture_on_commit_callbacks(execute=True):
        done = admin_client.post("/admin/import/", {**confirm, "confirm": "1"})
    assert done.status_code == 302
    run = ImportRun.objects.get()
    assert run.status == "done" and run.counts["recorded"] == 5
    assert Event.objects.filter(method="import").count() == 8
    page = admin_client.get(f"/admin/consents/importrun/{run.pk}/change/")
    assert "ancien" not in page.content.decode()  # addresses only in the download
    csv = admin_client.get(f"/admin/consents/importrun/{run.pk}/unproven.csv")
    assert csv.content.decode().splitlines()[1].endswith("ancien.client@example.fr")


def test_an_upload_in_another_format_is_a_clear_400(
    admin_client: Client, make_topic: Callable[..., Any]
) -> None:
    make_topic("newsletter")
    upload = SimpleUploadedFile("contacts.csv", (FILES / "brevo_contacts.csv").read_bytes())
    response = admin_client.post(
        "/admin/import/", {"file": upload, "preset": "mailchimp", "topic": "newsletter"}
    )
    assert response.status_code == 400
    assert "Missing column" in response.content.decode()
    response = admin_client.post(
        "/admin/import/",
        {
            "file": SimpleUploadedFile("x.pdf", b"%PDF"),
            "preset": "mailchimp",
            "topic": "newsletter",
        },
    )
    assert response.status_code == 400
    assert not ImportRun.objects.exists()


def test_a_confirmation_for_a_file_no_longer_there_changes_nothing(admin_client: Client) -> None:
    response = admin_client.post(
        "/admin/import/",
        {
            "confirm": "1",
            "sha256": "0" * 64,
            "suffix": ".csv",
            "filename": "x.csv",
            "preset": "mailchimp",
        },
    )
    assert response.status_code == 302
    assert not ImportRun.objects.exists()
