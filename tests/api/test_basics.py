from __future__ import annotations

from typing import Any

import pytest

from api import keys
from api.models import ApiKey
from consents.models import AccessLog
from tests.api.conftest import problem

pytestmark = pytest.mark.django_db


def test_a_key_is_stored_hashed_with_a_prefix(make_key: Any) -> None:
    key, raw = make_key(["contacts:read"])
    assert raw.startswith(f"ak_{key.prefix}_")
    stored = ApiKey.objects.get(pk=key.pk)
    assert raw not in (stored.digest, stored.prefix)
    assert stored.digest == keys.digest(raw)
    assert keys.key_find(raw) == stored


def test_no_key_unknown_key_malformed_header_are_401(client: Any, make_topic: Any) -> None:
    for headers in ({}, {"HTTP_AUTHORIZATION": "Bearer ak_0000_nope"}, {"HTTP_AUTHORIZATION": "x"}):
        r = client.get("/api/v1/topics", **headers)
        problem(r, 401, "unauthenticated")
        assert r["WWW-Authenticate"].startswith("Bearer")


def test_topics_and_notices(api: Any, make_topic: Any) -> None:
    make_topic("news", purpose="newsletter")
    c = api(["contacts:read"])
    r = c.get("/api/v1/topics")
    assert r.status_code == 200
    assert [t["slug"] for t in r.json()["topics"]] == ["news"]
    assert c.get("/api/v1/notices").json() == {"notices": []}


def test_unknown_url_and_wrong_method_are_problems(api: Any) -> None:
    c = api()
    problem(c.get("/api/v1/nothing-here"), 404, "not-found")
    problem(c.get("/api/v1/decisions"), 405, "method-not-allowed")
    problem(c.get("/api/v1/contacts/nobody"), 404, "not-found")


def test_bad_json_is_a_problem(api: Any) -> None:
    c = api()
    r = c.post("/api/v1/decisions", data="{not json", content_type="application/json")
    problem(r, 400, "malformed-body")
    r = c.post("/api/v1/decisions", data="a=b", content_type="text/plain")
    problem(r, 415, "unsupported-media-type")


def test_validation_names_the_field(api: Any) -> None:
    c = api()
    r = c.post(
        "/api/v1/decisions",
        {
            "questions": [
                {"contact": {"id": "x"}, "message": {"channel": "fax", "purpose": "promotion"}}
            ]
        },
    )  # noqa: E501
    data = problem(r, 400, "validation-error")
    assert data["field"] == "questions.0.message.channel"
    assert data["errors"][0]["pointer"] == "#/questions/0/message/channel"


def test_schema_and_docs_are_served_without_a_cdn(client: Any) -> None:
    r = client.get("/api/v1/openapi.json")
    assert r.status_code == 200
    schema = r.json()
    assert schema["openapi"].startswith("3.1")
    assert "/api/v1/decisions" in schema["paths"]
    docs = client.get("/api/v1/docs/")
    assert docs.status_code == 200
    html = docs.content.decode()
    assert "swagger-ui" in html
    assert "cdn" not in html.lower() and "https://" not in html


def test_problem_types_are_documented(client: Any) -> None:
    r = client.get("/api/v1/problems/rate-limited")
    assert r.status_code == 200 and r.json()["status"] == 429


def test_access_log_names_the_key(api: Any, make_contact: Any) -> None:
    contact = make_contact()
    c = api(["contacts:read"], name="crm")
    assert c.get(f"/api/v1/contacts/{contact.public_id}").status_code == 200
    log = AccessLog.objects.get(contact=contact, action="api_view_contact")
    assert log.username == "api:crm"


def test_a_body_over_the_limit_is_413_not_500(api: Any, settings: Any) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    r = api().post("/api/v1/events", {"events": [{"type": "x" * 200}]}, HTTP_IDEMPOTENCY_KEY="k")
    problem(r, 413, "payload-too-large")
    r = api().post("/api/v1/decisions", {"questions": [{"x": "y" * 200}]})
    problem(r, 413, "payload-too-large")


def test_instants_are_answered_in_utc(api: Any, make_contact: Any, make_topic: Any) -> None:
    make_topic("news", purpose="newsletter")
    p = make_contact()
    r = api().post(
        "/api/v1/decisions",
        {"questions": [{"contact": {"id": p.public_id}, "as_of": "2026-11-02T10:00:00+01:00",
                        "message": {"channel": "email", "purpose": "newsletter", "topic": "news"}}]},  # noqa: E501
    )  # fmt: skip
    assert r.json()["decisions"][0]["as_of"] == "2026-11-02T09:00:00Z"
