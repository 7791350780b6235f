"""Scopes, revocation, IP allow-lists, rate limits and Idempotency-Key."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.db import connection

from api import keys
from api.models import IdempotentRequest
from consents.models import Contact, Event
from tests.api.conftest import ApiClient, problem

pytestmark = pytest.mark.django_db

SALE = {
    "events": [{"type": "purchase", "contact": {"email": "ada@example.com"}, "category": "books"}]
}  # noqa: E501


def test_a_read_only_key_gets_403_on_writes(api: Any, make_contact: Any) -> None:
    reader = api(["contacts:read", "decisions:read", "audience:read", "receipts:read"])
    data = problem(reader.post("/api/v1/events", SALE), 403, "scope-missing")
    assert "events:write" in data["detail"]
    p = make_contact()
    problem(reader.get(f"/api/v1/contacts/{p.public_id}/links"), 403, "scope-missing")
    problem(reader.get("/api/v1/webhooks/endpoints"), 403, "scope-missing")
    assert not Event.objects.exists()


def test_a_revoked_key_is_refused_at_its_next_request(api: Any, make_topic: Any) -> None:
    c = api(["contacts:read"])
    assert c.get("/api/v1/topics").status_code == 200
    keys.key_revoke(key=c.key)
    data = problem(c.get("/api/v1/topics"), 401, "unauthenticated")
    assert "revoked" in data["detail"]


def test_a_key_limited_to_networks(make_key: Any, make_topic: Any) -> None:
    key, raw = make_key(["contacts:read"], allowed_networks=["203.0.113.0/24", "2001:db8::/32"])
    inside = ApiClient(raw, key, REMOTE_ADDR="203.0.113.50")
    outside = ApiClient(raw, key, REMOTE_ADDR="198.51.100.1")
    assert inside.get("/api/v1/topics").status_code == 200
    problem(outside.get("/api/v1/topics"), 403, "network-not-allowed")
    v6 = ApiClient(raw, key, REMOTE_ADDR="2001:db8::1")
    assert v6.get("/api/v1/topics").status_code == 200


def test_networks_are_checked_when_the_key_is_made(make_key: Any) -> None:
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):
        make_key(["contacts:read"], allowed_networks=["not-a-network"])
    with pytest.raises(ValidationError):
        make_key(["no:such"])


def test_rate_limit_headers_and_429_with_retry_after(api: Any, make_topic: Any) -> None:
    c = api(["contacts:read"], rate_per_minute=3)
    first = c.get("/api/v1/topics")
    assert first["RateLimit-Policy"] == '"per-key";q=3;w=60'
    assert first["RateLimit"].startswith('"per-key";r=2;t=')
    c.get("/api/v1/topics")
    c.get("/api/v1/topics")
    r = c.get("/api/v1/topics")
    problem(r, 429, "rate-limited")
    assert 1 <= int(r["Retry-After"]) <= 60
    assert r["RateLimit"].startswith('"per-key";r=0;')
    other = api(["contacts:read"], rate_per_minute=3)  # per key: another is not affected
    assert other.get("/api/v1/topics").status_code == 200


# --- Idempotency-Key ----------------------------------------------------------------------------


def test_the_same_key_and_body_replays_the_first_answer(api: Any) -> None:
    c = api(["events:write"])
    first = c.post("/api/v1/events", SALE, HTTP_IDEMPOTENCY_KEY="sale-1")
    again = c.post("/api/v1/events", SALE, HTTP_IDEMPOTENCY_KEY="sale-1")
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json() and again["Idempotent-Replayed"] == "true"
    assert Event.objects.count() == 1
    other_body = {"events": [{**SALE["events"][0], "category": "dvd"}]}
    data = problem(
        c.post("/api/v1/events", other_body, HTTP_IDEMPOTENCY_KEY="sale-1"),
        422,
        "idempotency-key-reused",
    )  # noqa: E501
    assert data["field"] == "Idempotency-Key"
    # Keys belong to one API key: another system may use the same text.
    assert (
        api(["events:write"])
        .post("/api/v1/events", SALE, HTTP_IDEMPOTENCY_KEY="sale-1")
        .status_code
        == 200
    )  # noqa: E501


def test_a_duplicate_while_the_first_runs_is_409(api: Any) -> None:
    from consents import clock

    c = api(["events:write"])
    IdempotentRequest.objects.create(
        api_key=c.key, key="sale-2", created_at=clock.now(),
        fingerprint=__import__("api.idempotency", fromlist=["x"]).fingerprint("POST", "/api/v1/events", __import__("json").dumps(SALE).encode()),  # noqa: E501
    )  # fmt: skip
    problem(
        c.post("/api/v1/events", SALE, HTTP_IDEMPOTENCY_KEY="sale-2"), 409, "idempotency-conflict"
    )  # noqa: E501
    assert not Event.objects.exists()


def test_idempotency_keys_expire_after_a_day(api: Any) -> None:
    from datetime import timedelta

    from consents import clock

    c = api(["events:write"])
    c.post("/api/v1/events", SALE, HTTP_IDEMPOTENCY_KEY="sale-3")
    with clock.frozen(clock.now() + timedelta(hours=24, minutes=1)):
        again = c.post("/api/v1/events", SALE, HTTP_IDEMPOTENCY_KEY="sale-3")
    assert "Idempotent-Replayed" not in again
    assert Event.objects.count() == 2


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_duplicates_record_once(api: Any) -> None:
    c = api(["events:write"])
    answers: list[int] = []
    barrier = threading.Barrier(4)

    def send() -> None:
        try:
            barrier.wait()
            answers.append(c.post("/api/v1/events", SALE, HTTP_IDEMPOTENCY_KEY="race").status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(set(answers)) <= [200, 409] and 200 in answers
    assert Event.objects.filter(type="purchase").count() == 1
    assert Contact.objects.count() == 1
