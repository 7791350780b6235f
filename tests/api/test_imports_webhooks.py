"""Issue 14 through the API: imports (asynchronous, with a status resource) and webhook
endpoints (created with the secret shown once, changed, rotated, replayed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from consents.models import Contact, Event, ImportRun, WebhookEndpoint
from tests.api.conftest import problem

pytestmark = pytest.mark.django_db

FILES = Path(__file__).resolve().parent.parent / "consents" / "imports"


def upload(name: str = "mailchimp_subscribed.csv") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, (FILES / name).read_bytes(), content_type="text/csv")


def test_an_import_is_queued_and_its_status_read(
    api: Any, make_topic: Any, django_capture_on_commit_callbacks: Any
) -> None:
    from tests.workers import celery_publishing

    make_topic("newsletter")
    c = api(["imports:write"], name="migration")
    # The task runs in this process once the request commits (a worker's job in production).
    with (
        celery_publishing("memory://", eager=True),
        django_capture_on_commit_callbacks(execute=True),
    ):  # noqa: E501
        r = c.client.post(
            "/api/v1/imports",
            {"file": upload(), "preset": "mailchimp", "topic": "newsletter"},
            HTTP_IDEMPOTENCY_KEY="import-1",
        )
    assert r.status_code == 202, r.content
    run = r.json()
    assert run["status"] == "queued"
    status = c.get(r["Location"]).json()
    assert status["id"] == run["id"] and status["status"] == "done", status
    assert status["rows"] > 0 and status["counts"]
    assert ImportRun.objects.get(pk=run["id"]).actor == "api:migration"
    assert Event.objects.filter(method="import").exists()
    again = c.client.post(
        "/api/v1/imports",
        {"file": upload(), "preset": "mailchimp", "topic": "newsletter"},
        HTTP_IDEMPOTENCY_KEY="import-1",
    )
    assert again.json() == r.json() and ImportRun.objects.count() == 1


def test_an_import_is_refused_with_the_field(api: Any, make_topic: Any) -> None:
    c = api(["imports:write"])
    r = c.client.post("/api/v1/imports", {"file": upload(), "preset": "mailchimp", "topic": "x"})
    assert problem(r, 422, "unprocessable")["field"] == "topic"
    r = c.client.post("/api/v1/imports", {"preset": "mailchimp"})
    assert problem(r, 400, "validation-error")["field"] == "file"
    bad = SimpleUploadedFile("list.pdf", b"%PDF", content_type="application/pdf")
    r = c.client.post("/api/v1/imports", {"file": bad, "preset": "assent"})
    assert problem(r, 422, "unprocessable")["field"] == "file"
    problem(c.get("/api/v1/imports/999999"), 404, "not-found")
    problem(api(["contacts:read"]).get("/api/v1/imports/1"), 403, "scope-missing")
    assert not Contact.objects.exists()


def test_webhook_endpoints_are_managed_with_the_secret_shown_once(api: Any, settings: Any) -> None:
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True
    settings.WEBHOOK_REQUIRE_HTTPS = False
    c = api(["webhooks:manage"])
    r = c.post(
        "/api/v1/webhooks/endpoints",
        {"url": "http://127.0.0.1:9/hook", "event_types": ["consent.granted"]},
    )  # noqa: E501
    assert r.status_code == 201, r.content
    made = r.json()
    assert made["secret"].startswith("whsec_")
    listed = c.get("/api/v1/webhooks/endpoints").json()["endpoints"]
    assert listed[0]["id"] == made["id"] and "secret" not in listed[0]
    r = c.patch(f"/api/v1/webhooks/endpoints/{made['id']}", {"active": False, "description": "crm"})
    assert r.json()["active"] is False and r.json()["description"] == "crm"
    r = c.patch(f"/api/v1/webhooks/endpoints/{made['id']}", {"event_types": ["nope"]})
    assert problem(r, 422, "unprocessable")["field"] == "event_types"
    c.patch(f"/api/v1/webhooks/endpoints/{made['id']}", {"active": True})
    rotated = c.post(f"/api/v1/webhooks/endpoints/{made['id']}/rotate-secret").json()
    assert rotated["secret"] != made["secret"] and rotated["secret_rotated_until"]
    endpoint = WebhookEndpoint.objects.get(pk=made["id"])
    assert endpoint.previous_secret == made["secret"]
    r = c.post(
        f"/api/v1/webhooks/endpoints/{made['id']}/replay",
        {"start": "2026-01-01T00:00:00Z", "end": "2026-02-01T00:00:00Z"},
    )
    assert r.json() == {"queued": 0}
    r = c.post(
        f"/api/v1/webhooks/endpoints/{made['id']}/replay",
        {"start": "2026-02-01T00:00:00Z", "end": "2026-01-01T00:00:00Z"},
    )
    assert problem(r, 422, "unprocessable")["field"] == "end"


def test_an_endpoint_inside_the_network_is_refused(api: Any, settings: Any) -> None:
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False
    r = api(["webhooks:manage"]).post("/api/v1/webhooks/endpoints", {"url": "https://10.0.0.1/h"})
    assert problem(r, 422, "unprocessable")["field"] == "url"
    assert not WebhookEndpoint.objects.exists()
