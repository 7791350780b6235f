"""Each endpoint: what it answers, what it writes (through the services), what it logs."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from api import receipts
from consents import rules, services
from consents.models import AccessLog, Contact, Erasure, Event
from tests.api.conftest import problem
from tests.conftest import at

pytestmark = pytest.mark.django_db


@pytest.fixture
def news(make_topic: Any) -> Any:
    return make_topic("news", purpose="newsletter", channels=["email", "sms"])


def opt_in(contact: Contact, web_proof: Any, topic: str = "news") -> Event:
    return services.consent_grant(contact=contact, topic=topic, channel="email", proof=web_proof)


def question(contact: Contact, **message: Any) -> dict[str, Any]:
    message.setdefault("channel", "email")
    message.setdefault("purpose", "newsletter")
    message.setdefault("topic", "news")
    return {"contact": {"id": contact.public_id}, "message": message}


# --- Decisions ----------------------------------------------------------------------------------


def test_decisions_answer_as_decide_with_the_events_and_words(
    api: Any, news: Any, make_contact: Any, web_proof: Any
) -> None:
    yes, no = make_contact(), make_contact()
    event = opt_in(yes, web_proof)
    c = api(["decisions:read"])
    r = c.post(
        "/api/v1/decisions",
        {
            "questions": [
                {**question(yes), "language": "fr"},
                question(no),
                {"contact": {"email": yes.email.upper()}, "message": question(yes)["message"]},
                {"contact": {"id": "nobody"}, "message": question(yes)["message"]},
            ]
        },
    )
    assert r.status_code == 200, r.content
    d = r.json()["decisions"]
    assert d[0]["allowed"] and d[0]["reason"] == "OPT_IN" and d[0]["step"] == "8"
    assert d[0]["events"] == [event.seq]
    assert "consentement" in d[0]["explanation"]
    assert not d[1]["allowed"] and d[1]["reason"] == "NO_CONSENT"
    assert d[2]["contact"] == yes.public_id and d[2]["allowed"]
    assert d[3] == {**d[3], "contact": None, "allowed": False, "reason": "UNKNOWN_CONTACT"}
    assert AccessLog.objects.filter(action="api_decision").count() == 2


def test_decisions_load_a_batch_in_a_fixed_number_of_queries(
    api: Any, news: Any, make_contact: Any, web_proof: Any
) -> None:
    c = api(["decisions:read"])

    def queries(n: int) -> int:
        people = [make_contact() for _ in range(n)]
        for p in people[::2]:
            opt_in(p, web_proof)
        with CaptureQueriesContext(connection) as ctx:
            r = c.post("/api/v1/decisions", {"questions": [question(p) for p in people]})
        assert r.status_code == 200
        return len(ctx.captured_queries)

    queries(1)  # the key's last use is written once a minute: not part of the batch's cost
    assert queries(3) == queries(30)


def test_a_batch_over_1000_is_refused(api: Any, news: Any, make_contact: Any) -> None:
    p = make_contact()
    r = api().post("/api/v1/decisions", {"questions": [question(p)] * 1001})
    assert problem(r, 400, "validation-error")["field"] == "questions"


def test_a_marketing_question_without_topic_names_the_field(api: Any, make_contact: Any) -> None:
    p = make_contact()
    r = api().post(
        "/api/v1/decisions",
        {
            "questions": [
                {
                    "contact": {"id": p.public_id},
                    "message": {"channel": "email", "purpose": "promotion"},
                }
            ]
        },  # noqa: E501
    )
    assert problem(r, 400, "validation-error")["field"] == "questions.0.message.topic"


# --- Events -------------------------------------------------------------------------------------


def test_events_record_through_the_services_each_answered_alone(api: Any, news: Any) -> None:
    c = api(["events:write"], name="shop")
    r = c.post(
        "/api/v1/events",
        {
            "events": [
                {
                    "type": "opt_in",
                    "contact": {"email": "ada@example.com", "locale": "en"},
                    "topic": "news",
                    "channel": "email",
                    "method": "web_form",
                    "evidence": {"ip_address": "203.0.113.9", "user_agent": "shop"},
                },
                {"type": "opt_in", "contact": {"email": "ada@example.com"}, "topic": "nope",
                 "channel": "email", "method": "web_form"},
                {"type": "purchase", "contact": {"email": "ada@example.com"}, "category": "books",
                 "product": "p1"},
                {"type": "teleport", "contact": {"email": "ada@example.com"}},
                {"type": "pause", "contact": {"phone": "+33612345678"}, "channel": "sms",
                 "until": "2099-01-01T00:00:00Z"},
            ]
        },
    )  # fmt: skip
    assert r.status_code == 200, r.content
    body = r.json()
    statuses = [x["status"] for x in body["results"]]
    assert statuses == ["recorded", "refused", "recorded", "refused", "recorded"]
    assert body["recorded"] == 3 and body["refused"] == 2
    assert body["results"][0]["contact_created"] is True
    assert body["results"][1]["problem"]["type"] == "/api/v1/problems/unprocessable"
    assert body["results"][1]["problem"]["field"] == "topic"
    assert body["results"][3]["problem"]["field"] == "events.3.type"
    ada = Contact.objects.get(email="ada@example.com")
    events = list(Event.objects.filter(contact=ada).order_by("seq"))
    assert [(e.type, e.actor) for e in events] == [("opt_in", "api:shop"), ("purchase", "api:shop")]
    assert body["results"][2]["events"][0]["seq"] == events[1].seq
    assert "ada@example.com" not in r.content.decode()
    assert Contact.objects.filter(phone="+33612345678").count() == 1


def test_an_opt_in_for_a_suppressed_address_is_refused(
    api: Any, news: Any, make_contact: Any, web_proof: Any
) -> None:
    gone = make_contact(email="gone@example.com")
    services.consent_withdraw(contact=gone, topic="*", channel="*", proof=web_proof)
    services.contact_erase(contact=gone, reason="ticket 1", actor="test")
    r = api().post(
        "/api/v1/events",
        {"events": [{"type": "opt_in", "contact": {"email": "gone@example.com"}, "topic": "news",
                     "channel": "email", "method": "web_form"}]},
    )  # fmt: skip
    result = r.json()["results"][0]
    assert result["status"] == "refused"
    assert "suppression" in result["problem"]["detail"]
    # Nothing half-written: the contact the event would have created is not there either.
    assert not Contact.objects.filter(email="gone@example.com").exists()


def test_events_of_one_contact_are_recorded_in_order(api: Any, news: Any) -> None:
    items = [
        {"type": "interaction", "contact": {"email": "bo@example.com"}, "kind": k}
        for k in ("click", "reply", "open", "contact")
    ]
    assert api().post("/api/v1/events", {"events": items}).status_code == 200
    kinds = list(Event.objects.order_by("seq").values_list("data__kind", flat=True))
    assert kinds == ["click", "reply", "open", "contact"]


# --- Contacts, their events, receipts, links ----------------------------------------------------


def test_contact_shows_addresses_and_state_with_basis(
    api: Any, news: Any, make_contact: Any, web_proof: Any
) -> None:
    p = make_contact(phone="+33612345678")
    opt_in(p, web_proof)
    data = api(["contacts:read"]).get(f"/api/v1/contacts/{p.public_id}?language=en").json()
    assert data["addresses"]["email"] == p.email and data["addresses"]["phone"] == "+33612345678"
    email = next(s for s in data["state"] if s["channel"] == "email")
    assert email["allowed"] and email["reason"] == "OPT_IN" and email["status"] == "opted_in"
    assert email["basis"].startswith("The person gave valid consent")


def test_events_are_paginated_by_sequence(api: Any, news: Any, make_contact: Any) -> None:
    p = make_contact()
    for _ in range(5):
        services.interaction_record(contact=p, kind="click", proof=services.Proof(actor="t"))
    c = api(["contacts:read"])
    seen, cursor = [], None
    while True:
        url = f"/api/v1/contacts/{p.public_id}/events?limit=2" + (
            f"&cursor={cursor}" if cursor else ""
        )  # noqa: E501
        page = c.get(url).json()
        seen += [e["seq"] for e in page["events"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(range(1, 6))
    problem(c.get(f"/api/v1/contacts/{p.public_id}/events?cursor=abc"), 400, "validation-error")
    problem(c.get(f"/api/v1/contacts/{p.public_id}/events?limit=0"), 400, "validation-error")


def test_receipts_are_signed_so_that_anyone_can_check_them(
    api: Any, news: Any, make_contact: Any, web_proof: Any, client: Any
) -> None:
    p = make_contact()
    event = opt_in(p, web_proof)
    r = api(["receipts:read"]).get(f"/api/v1/contacts/{p.public_id}/receipts")
    assert r.status_code == 200
    signed = r.json()["receipts"][0]
    assert signed["receipt"]["ledger"] == {"sequence": event.seq, "hash": event.hash,
                                           "prev_hash": event.prev_hash}  # fmt: skip
    assert signed["receipt"]["state"] == "active"
    key = client.get("/api/v1/receipts/key").json()  # published, no key needed
    assert key["kid"] == signed["signature"]["kid"]
    assert receipts.verify(signed, key)
    tampered = json.loads(json.dumps(signed))
    tampered["receipt"]["state"] = "withdrawn"
    assert not receipts.verify(tampered, key)


def test_links_are_minted_and_logged_and_never_open_a_download(
    api: Any, news: Any, make_contact: Any
) -> None:
    from consents import links

    p = make_contact()
    r = api(["links:create"], name="mailer").get(f"/api/v1/contacts/{p.public_id}/links")
    assert r.status_code == 200
    data = r.json()
    assert "/unsubscribe/" in data["unsubscribe_url"]
    assert data["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    token = data["unsubscribe_url"].rstrip("/").rsplit("/", 1)[1]
    assert links.read("unsubscribe", token).contact == p
    with pytest.raises(links.LinkError):
        links.read("data_download", token)
    log = AccessLog.objects.get(action="api_links")
    assert log.username == "api:mailer" and log.contact == p


# --- Data-subject requests ----------------------------------------------------------------------


def test_erasure_and_access_export_need_dsr_write(api: Any, make_contact: Any) -> None:
    p = make_contact()
    reader = api(["contacts:read"])
    problem(
        reader.post(f"/api/v1/contacts/{p.public_id}/erasure", {"reason": "t"}),
        403,
        "scope-missing",
    )  # noqa: E501
    dsr = api(["dsr:write"], name="tickets")
    export = dsr.post(f"/api/v1/contacts/{p.public_id}/access-export")
    assert export.status_code == 200 and export.json()["contact"]["email"] == p.email
    problem(dsr.post(f"/api/v1/contacts/{p.public_id}/erasure", {}), 400, "validation-error")
    r = dsr.post(f"/api/v1/contacts/{p.public_id}/erasure", {"reason": "ticket 42"})
    assert r.status_code == 200, r.content
    assert Erasure.objects.get(contact=p).actor == "api:tickets"
    again = dsr.post(f"/api/v1/contacts/{p.public_id}/erasure", {"reason": "ticket 42"})
    assert problem(again, 422, "unprocessable")["field"] == "contact"


# --- Audiences ----------------------------------------------------------------------------------


def _audience_people(news: Any, make_contact: Any, web_proof: Any) -> list[Contact]:
    people = [make_contact() for _ in range(4)]
    for p in people[:3]:
        opt_in(p, web_proof)
    return people


def test_audience_streams_ndjson_and_csv_as_the_command_does(
    api: Any, news: Any, make_contact: Any, web_proof: Any
) -> None:
    from django.core.management import call_command

    people = _audience_people(news, make_contact, web_proof)
    c = api(["audience:read"])
    url = "/api/v1/audiences?channel=email&purpose=newsletter&topic=news"
    r = c.get(url)
    assert r.status_code == 200 and r.streaming
    assert r["Content-Type"].startswith("application/x-ndjson")
    rows = [json.loads(line) for line in b"".join(r.streaming_content).decode().splitlines()]
    assert [x["id"] for x in rows] == [p.public_id for p in people[:3]]
    assert all(x["reason"] == "OPT_IN" for x in rows)
    r = c.get(url, HTTP_ACCEPT="text/csv")
    assert r["Content-Type"].startswith("text/csv")
    api_csv = b"".join(r.streaming_content).decode()
    out = io.StringIO()
    call_command("audience", channel="email", purpose="newsletter", topic="news", stdout=out)
    assert list(csv.reader(io.StringIO(api_csv))) == list(csv.reader(io.StringIO(out.getvalue())))
    problem(c.get(url, HTTP_ACCEPT="application/pdf"), 406, "not-acceptable")
    problem(c.get("/api/v1/audiences?channel=email&purpose=newsletter"), 400, "validation-error")
    assert AccessLog.objects.filter(action="api_audience").count() == 2


def test_audience_since_gives_changes_with_leavers(
    api: Any, news: Any, make_contact: Any, web_proof: Any
) -> None:
    people = _audience_people(news, make_contact, web_proof)
    c = api(["audience:read"])
    url = "/api/v1/audiences?channel=email&purpose=newsletter&topic=news"
    cursor = c.get(url)["Audience-Cursor"]
    from consents import clock

    with clock.frozen(
        clock.now() + (clock.now() - clock.now()) + __import__("datetime").timedelta(minutes=5)
    ):  # noqa: E501
        services.consent_withdraw(contact=people[0], topic="news", channel="email", proof=web_proof)
        opt_in(people[3], web_proof)
        r = c.get(url + "&since=" + cursor.replace("+", "%2B"))
    rows = {
        x["id"]: x for x in map(json.loads, b"".join(r.streaming_content).decode().splitlines())
    }
    assert rows[people[0].public_id]["allowed"] is False
    assert rows[people[3].public_id]["allowed"] is True


def test_audience_links_column_needs_links_create(
    api: Any, news: Any, make_contact: Any, web_proof: Any
) -> None:
    _audience_people(news, make_contact, web_proof)
    url = "/api/v1/audiences?channel=email&purpose=newsletter&topic=news&links=true"
    problem(api(["audience:read"]).get(url), 403, "scope-missing")
    r = api(["audience:read", "links:create"], name="mailer").get(url)
    rows = [json.loads(x) for x in b"".join(r.streaming_content).decode().splitlines()]
    assert all("/unsubscribe/" in x["unsubscribe_url"] for x in rows)
    assert AccessLog.objects.filter(action="api_links", username="api:mailer").count() == 3


def test_audience_as_of_follows_decide(
    api: Any, news: Any, make_contact: Any, web_proof: Any
) -> None:  # noqa: E501
    p = make_contact()
    services.marketing_pause(
        contact=p, channel="email", until=at("2099-01-01T00:00"), proof=web_proof
    )  # noqa: E501
    opt_in(p, web_proof)
    r = api().get("/api/v1/audiences?channel=email&purpose=newsletter&topic=news")
    assert b"".join(r.streaming_content) == b""
    assert rules.Message("email", "newsletter", "news")


def test_the_fast_reading_of_questions_answers_as_the_serializer(
    api: Any, news: Any, make_contact: Any, web_proof: Any
) -> None:
    from api import serializers as s

    p = make_contact()
    opt_in(p, web_proof)
    plain = {"questions": [{**question(p), "as_of": "2026-12-31T10:00:00+01:00"}]}
    assert s.fast_questions(plain) is not None
    # A string where a boolean goes: DRF reads it, the fast path leaves it to DRF.
    unusual = {
        "questions": [
            {**plain["questions"][0], "message": {**question(p)["message"], "automated": "false"}}
        ]
    }  # noqa: E501
    assert s.fast_questions(unusual) is None
    c = api(["decisions:read"])
    a = c.post("/api/v1/decisions", plain).json()
    b = c.post("/api/v1/decisions", unusual).json()
    assert a == b and a["decisions"][0]["reason"] == "OPT_IN"
    for bad in (
        {"questions": [{**plain["questions"][0], "language": "de"}]},
        {"questions": [{"contact": {"id": " x "}, "message": question(p)["message"]}]},
    ):
        assert s.fast_questions(bad) is None  # fmt: skip
