"""``POST /v1/decisions``: may these people be contacted with these messages? ``rules.decide``
on each person's history, read for the whole batch at once."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers as drf
from rest_framework.request import Request
from rest_framework.response import Response

from api import serializers as s
from api.views.base import ApiView, event_seqs, log_reads, problem_responses, resolve_contacts
from consents import audience as audience_sql
from consents import clock, labels, ledger, rules
from consents.models import Event
from consents.projections import fact_from_row, person_from_contact
from consents.selectors import proof


class DecisionsView(ApiView):
    scopes = {"POST": "decisions:read"}

    @extend_schema(
        operation_id="decide",
        summary="May these people be contacted with these messages?",
        request=s.DecisionsRequestSerializer,
        responses={200: s.DecisionsResponseSerializer, **problem_responses()},
        examples=[
            OpenApiExample(
                "One question",
                request_only=True,
                value={
                    "questions": [
                        {
                            "contact": {"email": "ada@example.com"},
                            "message": {
                                "channel": "email",
                                "purpose": "newsletter",
                                "topic": "news",
                            },
                            "language": "en",
                        }
                    ]
                },
            )
        ],
    )
    def post(self, request: Request) -> Response:
        questions = s.fast_questions(request.data)
        if questions is None:  # anything unusual: the serializer says what, field by field
            data = s.DecisionsRequestSerializer(data=request.data)
            data.is_valid(raise_exception=True)
            questions = data.validated_data["questions"]
        contacts = resolve_contacts([q["contact"] for q in questions])
        now = clock.now()
        messages = [message_of(i, q["message"]) for i, q in enumerate(questions)]
        found = {c.pk: c for c in contacts if c is not None}
        histories = histories_of(list(found))
        catalog = proof.catalog()
        settings_ = rules.RuleSettings.from_django()
        retired = audience_sql.retired_topics()
        persons = {pk: person_from_contact(c) for pk, c in found.items()}
        log_reads(request, "api_decision", list(found.values()))
        answers = []
        for i, (q, contact, message) in enumerate(zip(questions, contacts, messages, strict=True)):
            at = q.get("as_of") or now
            language = q["language"]
            if contact is None:
                answers.append(
                    {
                        "index": i, "contact": None, "allowed": False, "reason": "UNKNOWN_CONTACT",
                        "step": "0", "events": [], "as_of": at,
                        "explanation": "No such contact." if language == "en"
                        else "Ce contact est inconnu.",
                    }
                )  # fmt: skip
                continue
            decision = rules.decide(
                persons[contact.pk], histories[contact.pk], message, at,
                catalog=catalog, settings=settings_, retired_topics=retired,
            )  # fmt: skip
            answers.append(
                {
                    "index": i,
                    "contact": contact.public_id,
                    "allowed": decision.allowed,
                    "reason": decision.reason,
                    "step": decision.step,
                    "explanation": labels.reason_text(decision.reason, language),
                    "events": event_seqs(decision),
                    "as_of": at,
                }
            )
        for answer in answers:
            answer["as_of"] = ledger.iso(answer["as_of"]).replace(".000000Z", "Z")
        return Response({"decisions": answers})


def message_of(i: int, m: dict[str, Any]) -> rules.Message:
    """The message of the ``i``-th question, checked as ``rules.decide`` needs it."""
    message = rules.Message(
        channel=m["channel"],
        purpose=m["purpose"],
        topic=m.get("topic") or None,
        category=m.get("category") or None,
        product=m.get("product") or None,
        professions=tuple(m.get("professions") or ()),
        contains_promotion=m.get("contains_promotion", False),
        automated=m.get("automated", False),
    )
    try:
        rules.check_message(message)
    except rules.MalformedMessage as exc:
        raise drf.ValidationError(
            {"questions": {i: {"message": {exc.field: [exc.problem]}}}}
        ) from exc
    return message


def histories_of(contact_ids: list[int]) -> dict[int, list[rules.Fact]]:
    """Each contact's ledger as the rules' facts, in order, in one query for the whole batch."""
    histories: dict[int, list[rules.Fact]] = {pk: [] for pk in contact_ids}
    rows = (
        Event.objects.filter(contact_id__in=contact_ids)
        .order_by("contact_id", "seq")
        .values_list(
            "contact_id", "type", "occurred_at", "seq", "topic", "channel", "method", "proof",
            "data",
        )
    )  # fmt: skip
    for cid, type_, at, seq, topic, channel, method, proof_, data_ in rows.iterator(2000):
        histories[cid].append(
            fact_from_row(
                type=type_, occurred_at=at, seq=seq, topic=topic, channel=channel,
                method=method, proof=proof_, data=data_,
            )
        )  # fmt: skip
    return histories
