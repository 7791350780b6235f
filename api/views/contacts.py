"""``/v1/contacts/{id}``: one person's state, ledger, receipts and links
(``consents.selectors.proof``, ``consents.links``), each read written to the access log first."""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from api import receipts
from api import serializers as s
from api.problems import Problem
from api.views.base import (
    CONTACT_ID,
    ApiView,
    contact_or_404,
    event_seqs,
    log_reads,
    problem_responses,
)
from consents import clock, labels, links, outbox
from consents.models import Contact, Erasure, Event
from consents.selectors import proof


class ContactView(ApiView):
    scopes = {"GET": "contacts:read"}

    @extend_schema(
        operation_id="contact",
        summary="A person's addresses and current state per topic and channel, with its basis",
        parameters=[
            CONTACT_ID,
            OpenApiParameter("language", OpenApiTypes.STR, enum=["en", "fr"]),
        ],
        responses={200: s.ContactSerializer, **problem_responses(404)},
    )
    def get(self, request: Request, public_id: str) -> Response:
        contact = contact_or_404(public_id)
        language = request.query_params.get("language", "en")
        if language not in s.LANGUAGES:
            raise Problem("validation-error", "en or fr.", field="language")
        log_reads(request, "api_view_contact", [contact])
        _, facts = proof.history(contact)
        grid = proof.state_grid(contact, facts, clock.now())
        erasure = Erasure.objects.filter(contact=contact).first()
        data = {
            "id": contact.public_id,
            "kind": contact.kind,
            "locale": contact.locale,
            "first_name": contact.first_name,
            "addresses": {
                "email": contact.email or None,
                "phone": contact.phone or None,
                "postal_address": contact.postal_address or None,
                "push_token": contact.push_token or None,
            },
            "collected_at": contact.collected_at,
            "informed_at_collection": contact.informed_at_collection,
            "profession": contact.profession,
            "erased_at": erasure.erased_at if erasure else None,
            "state": [
                {
                    "topic": row.topic.slug,
                    "channel": row.channel,
                    "purpose": row.topic.purpose,
                    "status": row.stored,
                    "allowed": row.decision.allowed,
                    "reason": row.decision.reason,
                    "step": row.decision.step,
                    "basis": labels.reason_text(row.decision.reason, language),
                    "events": event_seqs(row.decision),
                }
                for row in grid
            ],
        }
        return Response(s.ContactSerializer(data).data)


PAGE_SIZE, MAX_PAGE_SIZE = 100, 1000


class ContactEventsView(ApiView):
    scopes = {"GET": "contacts:read"}

    @extend_schema(
        operation_id="contact_events",
        summary="The person's ledger, in order, a page at a time",
        description="Keyset pagination on the per-contact sequence: events are only ever "
        "appended, so a page never shifts, whatever is recorded meanwhile.",
        parameters=[
            CONTACT_ID,
            OpenApiParameter("cursor", OpenApiTypes.STR, description="next_cursor of a page"),
            OpenApiParameter("limit", OpenApiTypes.INT, description="1 to 1000, default 100"),
        ],
        responses={200: s.EventPageSerializer, **problem_responses(404)},
    )
    def get(self, request: Request, public_id: str) -> Response:
        contact = contact_or_404(public_id)
        params = request.query_params
        try:
            after = int(params.get("cursor", "0"))
            if after < 0 or after > 2**31:
                raise ValueError
        except ValueError:
            raise Problem("validation-error", "Not a cursor of this API.", field="cursor") from None
        try:
            limit = int(params.get("limit", PAGE_SIZE))
            if not 1 <= limit <= MAX_PAGE_SIZE:
                raise ValueError
        except ValueError:
            raise Problem("validation-error", "1 to 1000.", field="limit") from None
        log_reads(request, "api_contact_events", [contact])
        events = list(
            Event.objects.filter(contact=contact, seq__gt=after).order_by("seq")[: limit + 1]
        )
        more = len(events) > limit
        events = events[:limit]
        page = {
            "events": [
                {
                    "seq": e.seq, "type": e.type, "topic": e.topic, "channel": e.channel,
                    "occurred_at": e.occurred_at, "recorded_at": e.recorded_at,
                    "method": e.method, "actor": e.actor, "collection_point": e.collection_point,
                    "notice": e.notice_id, "proof": e.proof, "data": e.data,
                    "prev_hash": e.prev_hash, "hash": e.hash,
                }
                for e in events
            ],
            "next_cursor": str(events[-1].seq) if more else None,
        }  # fmt: skip
        return Response(s.EventPageSerializer(page).data)


class ReceiptsView(ApiView):
    scopes = {"GET": "receipts:read"}

    @extend_schema(
        operation_id="contact_receipts",
        summary="Each consent as a signed ISO/IEC TS 27560 receipt",
        parameters=[CONTACT_ID],
        responses={200: s.ReceiptsSerializer, **problem_responses(404)},
    )
    def get(self, request: Request, public_id: str) -> Response:
        contact = contact_or_404(public_id)
        log_reads(request, "api_receipts", [contact])
        now = clock.now()
        signed = [receipts.sign(receipts.receipt(contact, e, now)) for e in proof.receipts(contact)]
        return Response(
            {"receipts": signed, "key_url": request.build_absolute_uri(reverse("api:receipt_key"))}
        )


class LinksView(ApiView):
    scopes = {"GET": "links:create"}

    @extend_schema(
        operation_id="contact_links",
        summary="The person's unsubscribe (RFC 8058) and preference links, for an email to send",
        description="Neither link opens 'download my data'. Each mint is in the access log.",
        parameters=[CONTACT_ID],
        responses={200: s.LinksSerializer, **problem_responses(404, 422)},
    )
    def get(self, request: Request, public_id: str) -> Response:
        contact = contact_or_404(public_id)
        if Erasure.objects.filter(contact=contact).exists() or not contact.email:
            raise Problem("contact-erased" if contact.email is None else "unprocessable",
                          "This contact has no email address.", field="id")  # fmt: skip
        log_reads(request, "api_links", [contact], detail="unsubscribe, preferences")
        return Response(mint_links(contact, contact.email))


def mint_links(contact: Contact, to: str) -> dict[str, Any]:
    unsubscribe = links.url("unsubscribe", contact, to=to)
    return {
        "unsubscribe_url": unsubscribe,
        "preferences_url": links.url("preferences", contact, to=to),
        "headers": outbox.unsubscribe_headers(unsubscribe),
    }
