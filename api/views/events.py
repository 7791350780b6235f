"""``POST /v1/events``: what happened elsewhere, each event recorded alone (in its own transaction)
through ``consents.services``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import serializers as drf
from rest_framework.request import Request
from rest_framework.response import Response

from api import idempotency, problems
from api import serializers as s
from api.auth import key_of
from api.problems import Problem
from api.views.base import ApiView, problem_responses, resolve_contacts
from consents import clock, services
from consents.models import Contact, Erasure, Event, Notice
from consents.vocab import ANY, EventType, Method


class EventsView(ApiView):
    scopes = {"POST": "events:write"}

    @extend_schema(
        operation_id="record_events",
        summary="Record what happened elsewhere (up to 1,000 events, each answered alone)",
        request=s.EventsRequestSerializer,
        responses={200: s.EventsResponseSerializer, **problem_responses(409, 422)},
        parameters=[OpenApiParameter("Idempotency-Key", OpenApiTypes.STR, OpenApiParameter.HEADER)],
        examples=[
            OpenApiExample(
                "A sale in the online shop",
                request_only=True,
                value={
                    "events": [
                        {
                            "type": "purchase",
                            "contact": {"email": "ada@example.com", "informed_at_collection": True},
                            "category": "coffee-machines",
                            "product": "espresso-2000",
                            "occurred_at": "2026-03-12T10:00:00Z",
                        }
                    ]
                },
            )
        ],
    )
    def post(self, request: Request) -> Any:
        return idempotency.idempotent(request, lambda: self.record(request))

    def record(self, request: Request) -> Response:
        batch = s.EventsRequestSerializer(data=request.data)
        batch.is_valid(raise_exception=True)
        key = key_of(request)
        results = []
        for i, raw in enumerate(batch.validated_data["events"]):
            item = s.EventInSerializer(data=raw)
            result: dict[str, Any] = {
                "index": i, "status": "refused", "contact": None, "contact_created": False,
                "events": [], "problem": None,
            }  # fmt: skip
            try:
                item.is_valid(raise_exception=True)
                with transaction.atomic():
                    contact, created, events = record_one(item.validated_data, key.actor)
                result.update(
                    status="recorded",
                    contact=contact.public_id,
                    contact_created=created,
                    events=[{"seq": e.seq, "type": e.type, "hash": e.hash} for e in events],
                )
            except (drf.ValidationError, DjangoValidationError, Problem) as exc:
                if isinstance(exc, drf.ValidationError):
                    exc = drf.ValidationError({"events": {i: exc.detail}})
                result["problem"] = problems.item_body(exc)
            results.append(result)
        recorded = sum(r["status"] == "recorded" for r in results)
        return Response(
            s.EventsResponseSerializer(
                {"results": results, "recorded": recorded, "refused": len(results) - recorded}
            ).data
        )


def find_or_create(ref: dict[str, Any], at: datetime | None) -> tuple[Contact, bool]:
    if ref.get("id"):
        contact = Contact.objects.filter(public_id=ref["id"]).first()
        if contact is None:
            raise Problem("not-found", "No contact with this id.", field="contact.id")
        return contact, False
    found = resolve_contacts([ref])[0]
    if found is not None:
        return found, False
    fields = {
        "email": ref.get("email"),
        "phone": ref.get("phone"),
        "locale": ref.get("locale", "fr"),
        "kind": ref.get("kind", "consumer"),
        "informed_at_collection": ref.get("informed_at_collection", False),
    }
    if at is not None:
        fields["collected_at"] = min(at, clock.now())
    try:
        with transaction.atomic():
            return services.contact_create(**fields), True
    except DjangoValidationError:
        found = resolve_contacts([ref])[0]  # created meanwhile by a concurrent request
        if found is None:
            raise
        return found, False


def record_one(d: dict[str, Any], actor: str) -> tuple[Contact, bool, list[Event]]:
    """One event through ``consents.services``; raises what the services refuse."""
    at = d.get("occurred_at")
    contact, created = find_or_create(d["contact"], at)
    if Erasure.objects.filter(contact=contact).exists():
        raise Problem("contact-erased", field="contact")
    notice = None
    if d.get("notice_version"):
        notice = Notice.objects.filter(
            topic__slug=d.get("topic"),
            language=d.get("notice_language") or contact.locale,
            version=d["notice_version"],
            published_at__isnull=False,
        ).first()
        if notice is None:
            raise Problem(
                "unprocessable", "No published notice with this version.", field="notice_version"
            )
    evidence = d.get("evidence") or {}
    proof_ = services.Proof(
        method=d.get("method") or Method.API,
        actor=actor,
        collection_point=d.get("collection_point", ""),
        notice=notice,
        reference=d.get("proof_reference", ""),
        ip_address=evidence.get("ip_address"),
        user_agent=evidence.get("user_agent", ""),
        details=evidence.get("details", {}),
    )
    kind = d["type"]
    before = Event.objects.filter(contact=contact).order_by("-seq").values_list("seq").first()
    # Only the person, on Assent's own pages, may bring a suppressed address back.
    if kind == EventType.OPT_IN and services.is_suppressed(contact):
        raise Problem(
            "unprocessable",
            "This address is on the suppression list: it opted out and was erased.",
            field="contact",
        )
    common = {"contact": contact, "proof": proof_, "occurred_at": at}
    if kind == "resume":  # the API's name for a pause that ends now
        services.marketing_resume(channel=d["channel"], **common)
    else:
        # The API says "address_change", and an opt-out without topic or channel is from all.
        fields = {"topic": ANY, "channel": ANY} if kind == EventType.OPT_OUT else {}
        fields.update((k, v) for k, v in d.items() if v)
        kind = EventType.ADDRESS_CHANGED if kind == "address_change" else kind
        services.event_record(type=kind, fields=fields, **common)
    after = before[0] if before else 0
    events = list(Event.objects.filter(contact=contact, seq__gt=after).order_by("seq"))
    return contact, created, events
