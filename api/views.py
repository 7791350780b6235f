"""The integration API, ``/api/v1/``: it calls the services and selectors the pages call, and
never writes the ledger itself."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.db.models.functions import Upper
from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers as drf
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api import explain, idempotency, receipts, throttles
from api import serializers as s
from api.auth import key_of
from api.problems import PROBLEMS, Problem
from consents import audience as audience_sql
from consents import clock, imports, ledger, links, rules, services, webhooks_out
from consents.models import (
    AccessLog,
    Contact,
    Erasure,
    Event,
    ImportRun,
    Notice,
    Topic,
    WebhookEndpoint,
)
from consents.projections import fact_from_row, person_from_contact
from consents.selectors import proof
from consents.vocab import ANY, Channel, Method

# The ``since`` cursor of an audience is this much before the export began: a transaction still
# open then may record events dated a little earlier; a sync that sees a row twice loses nothing.
CURSOR_LAG = timedelta(minutes=1)


def problem_responses(*statuses: int) -> dict[Any, OpenApiResponse]:
    """The errors an operation may answer, each ``application/problem+json`` with its types."""
    out = {}
    for status in (400, 401, 403, 405, 429, 503, *statuses):
        slugs = [slug for slug, p in PROBLEMS.items() if p[0] == status]
        out[(status, "application/problem+json")] = OpenApiResponse(
            s.ProblemSerializer, description="Problem types: " + ", ".join(slugs)
        )
    return out


class ApiView(APIView):
    """Every endpoint: a key, its scopes, its rate limit; problems for every error."""

    scopes: dict[str, str] = {}

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        # Instants are answered in UTC, and an instant sent without an offset is read as UTC.
        timezone.activate(UTC)
        super().initial(request, *args, **kwargs)

    def finalize_response(self, request: Request, response: Any, *args: Any, **kwargs: Any) -> Any:
        response = super().finalize_response(request, response, *args, **kwargs)
        timezone.deactivate()
        for name, value in throttles.headers(request).items():
            response[name] = value
        response.setdefault("Cache-Control", "no-store")
        return response


def log_reads(request: Request, action: str, contacts: list[Contact], detail: str = "") -> None:
    """The access log: one row per person read, with the key's name, before the data leaves."""
    now = clock.now()
    name = key_of(request).actor
    AccessLog.objects.bulk_create(
        [
            AccessLog(at=now, username=name, action=action, contact=c, detail=detail[:2000])
            for c in contacts
        ]
    )


def contact_or_404(public_id: str) -> Contact:
    return get_object_or_404(Contact, public_id=public_id)


# --- Decisions ----------------------------------------------------------------------------------


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
        messages = []
        for i, q in enumerate(questions):
            m = q["message"]
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
            messages.append(message)
        found = {c.pk: c for c in contacts if c is not None}
        histories: dict[int, list[rules.Fact]] = {pk: [] for pk in found}
        rows = (
            Event.objects.filter(contact_id__in=list(found))
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
                    "explanation": explain.explain(decision.reason, language),
                    "events": event_seqs(decision),
                    "as_of": at,
                }
            )
        for answer in answers:
            answer["as_of"] = ledger.iso(answer["as_of"]).replace(".000000Z", "Z")
        return Response({"decisions": answers})


def event_seqs(decision: rules.Decision) -> list[int]:
    return sorted(
        {v for k, v in decision.facts.items() if k.endswith("_seq") and isinstance(v, int)}
    )


def resolve_contacts(refs: list[dict[str, Any]]) -> list[Contact | None]:
    """Contacts by public id, email or phone, in three queries whatever the number of refs."""
    ids = {r["id"] for r in refs if r.get("id")}
    emails, phones = {}, {}
    for r in refs:
        if r.get("email"):
            try:
                emails[r["email"]] = services.normalize_email(r["email"]).upper()
            except DjangoValidationError:
                emails[r["email"]] = None
        if r.get("phone"):
            try:
                phones[r["phone"]] = services.normalize_phone(r["phone"])
            except DjangoValidationError:
                phones[r["phone"]] = None
    by_id = {c.public_id: c for c in Contact.objects.filter(public_id__in=ids)} if ids else {}
    wanted = {e for e in emails.values() if e}
    by_email = (
        {c.u: c for c in Contact.objects.annotate(u=Upper("email")).filter(u__in=wanted)}
        if wanted
        else {}
    )
    numbers = {p for p in phones.values() if p}
    by_phone: dict[str, Contact] = {}
    if numbers:
        for c in Contact.objects.filter(phone__in=numbers).order_by("-pk"):
            by_phone[c.phone] = c  # the oldest contact with the number wins
    out: list[Contact | None] = []
    for r in refs:
        if r.get("id"):
            out.append(by_id.get(r["id"]))
        elif r.get("email"):
            out.append(by_email.get(emails[r["email"]] or ""))
        else:
            out.append(by_phone.get(phones[r["phone"]] or ""))
    return out


# --- Events -------------------------------------------------------------------------------------


def _problem_json(exc: Exception) -> dict[str, Any]:
    from api.problems import _django_errors, _item, body, flatten

    if isinstance(exc, Problem):
        errors = [_item(exc.field, str(exc.detail))] if exc.field else None
        return body(exc.slug, str(exc.detail), errors=errors)
    if isinstance(exc, drf.ValidationError):
        errors = flatten(exc.detail)
        return body("validation-error", errors[0]["detail"] if errors else "", errors=errors)
    errors = _django_errors(exc)  # type: ignore[arg-type]
    return body("unprocessable", errors[0]["detail"] if errors else "", errors=errors)


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
                result["problem"] = _problem_json(exc)
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
    common = {"contact": contact, "proof": proof_, "occurred_at": at}
    before = Event.objects.filter(contact=contact).order_by("-seq").values_list("seq").first()
    if kind == "opt_in":
        # Only the person, on Assent's own pages, may bring a suppressed address back.
        if services.is_suppressed(contact):
            raise Problem(
                "unprocessable",
                "This address is on the suppression list: it opted out and was erased.",
                field="contact",
            )
        services.consent_grant(
            topic=d["topic"], channel=d["channel"], doi=d.get("doi", "none"),
            frequency=d.get("frequency", ""), automated=d.get("automated", False), **common,
        )  # fmt: skip
    elif kind == "opt_out":
        services.consent_withdraw(
            topic=d.get("topic") or ANY, channel=d.get("channel") or ANY, **common
        )
    elif kind == "purchase":
        services.purchase_record(
            category=d["category"], product=d.get("product", ""),
            warranty_until=d.get("warranty_until"), **common,
        )  # fmt: skip
    elif kind == "contract_start":
        services.contract_start(contract=d["contract"], category=d["category"], **common)
    elif kind == "contract_end":
        services.contract_end(contract=d["contract"], **common)
    elif kind == "interaction":
        services.interaction_record(kind=d["kind"], **common)
    elif kind == "callback_request":
        services.callback_request(channel=d.get("channel") or Channel.PHONE, **common)
    elif kind == "pause":
        services.marketing_pause(channel=d["channel"], until=d["until"], **common)
    elif kind == "resume":
        services.marketing_resume(channel=d["channel"], **common)
    elif kind == "address_change":
        services.address_change_record(channel=d["channel"], **common)
    after = before[0] if before else 0
    events = list(Event.objects.filter(contact=contact, seq__gt=after).order_by("seq"))
    return contact, created, events


# --- Contacts -----------------------------------------------------------------------------------

CONTACT_ID = OpenApiParameter(
    "id", OpenApiTypes.STR, OpenApiParameter.PATH, description="Public id"
)


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
                    "basis": explain.explain(row.decision.reason, language),
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


class ReceiptKeyView(APIView):
    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    throttle_classes: list[Any] = []

    @extend_schema(
        operation_id="receipt_key",
        summary="The public key that verifies receipts (a JWK), for anyone",
        auth=[],
        responses={200: s.JwkSerializer},
    )
    def get(self, request: Request) -> Response:
        return Response(receipts.jwk())


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
        "headers": {
            "List-Unsubscribe": f"<{unsubscribe}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
    }


class ErasureView(ApiView):
    scopes = {"POST": "dsr:write"}

    @extend_schema(
        operation_id="contact_erase",
        summary="Erase a person's personal data (the ledger stays, without it)",
        parameters=[
            CONTACT_ID,
            OpenApiParameter("Idempotency-Key", OpenApiTypes.STR, OpenApiParameter.HEADER),
        ],
        request=s.ErasureRequestSerializer,
        responses={200: s.ErasureSerializer, **problem_responses(404, 409, 422)},
    )
    def post(self, request: Request, public_id: str) -> Any:
        return idempotency.idempotent(request, lambda: self.erase(request, public_id))

    def erase(self, request: Request, public_id: str) -> Response:
        contact = contact_or_404(public_id)
        data = s.ErasureRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        log_reads(request, "api_erase", [contact], detail=data.validated_data["reason"])
        erasure = services.contact_erase(
            contact=contact, reason=data.validated_data["reason"], actor=key_of(request).actor
        )
        return Response(
            {
                "contact": contact.public_id,
                "erased_at": ledger.iso(erasure.erased_at),
                "suppressed": erasure.suppressed,
            }
        )


class AccessExportView(ApiView):
    scopes = {"POST": "dsr:write"}

    @extend_schema(
        operation_id="contact_access_export",
        summary="Everything held about the person (a data-subject access request)",
        parameters=[CONTACT_ID],
        request=None,
        responses={200: OpenApiTypes.OBJECT, **problem_responses(404)},
    )
    def post(self, request: Request, public_id: str) -> Response:
        contact = contact_or_404(public_id)
        log_reads(request, "api_access_export", [contact])
        return Response(proof.access_export(contact, clock.now()))


# --- Catalogue ----------------------------------------------------------------------------------


class TopicsView(ApiView):
    @extend_schema(operation_id="topics", summary="The topics people can consent to",
                   responses={200: s.TopicsSerializer, **problem_responses()})  # fmt: skip
    def get(self, request: Request) -> Response:
        topics = [
            {
                "slug": t.slug,
                "name": {"en": t.name_en, "fr": t.name_fr},
                "description": {"en": t.description_en, "fr": t.description_fr},
                "purpose": t.purpose,
                "channels": list(t.channels),
                "frequencies": list(t.frequencies),
                "active": t.active,
            }
            for t in Topic.objects.order_by("display_order", "slug")
        ]
        return Response(s.TopicsSerializer({"topics": topics}).data)


class NoticesView(ApiView):
    @extend_schema(operation_id="notices", summary="The published notices, every version",
                   responses={200: s.NoticesSerializer, **problem_responses()})  # fmt: skip
    def get(self, request: Request) -> Response:
        notices = [
            {
                "id": n.pk,
                "topic": n.topic.slug if n.topic_id else None,
                "language": n.language,
                "version": n.version,
                "text": n.text,
                "sha256": n.sha256,
                "published_at": n.published_at,
            }
            for n in Notice.objects.filter(published_at__isnull=False)
            .select_related("topic")
            .order_by("topic__slug", "language", "version")
        ]
        return Response(s.NoticesSerializer({"notices": notices}).data)


# --- Audiences ----------------------------------------------------------------------------------


class NdjsonRenderer(BaseRenderer):
    media_type = "application/x-ndjson"
    format = "ndjson"
    charset = "utf-8"

    def render(
        self, data: Any, accepted_media_type: Any = None, renderer_context: Any = None
    ) -> bytes:
        return json.dumps(data).encode() if data is not None else b""


class CsvRenderer(NdjsonRenderer):
    media_type = "text/csv"
    format = "csv"


class AudienceQuery(drf.Serializer):
    channel = drf.ChoiceField(choices=s.CHANNELS)
    purpose = drf.ChoiceField(choices=s.PURPOSES)
    topic = drf.CharField(required=False, max_length=64)
    category = drf.CharField(required=False, max_length=64)
    product = drf.CharField(required=False, max_length=128)
    as_of = s.InstantField(required=False)
    since = s.InstantField(required=False, help_text="The Audience-Cursor of a past export.")
    links = drf.BooleanField(required=False, default=False, help_text="Needs links:create.")


CHUNK = 2000


class AudienceView(ApiView):
    scopes = {"GET": "audience:read"}
    renderer_classes = [NdjsonRenderer, CsvRenderer]

    @extend_schema(
        operation_id="audience",
        summary="The audience of a message, streamed as NDJSON or CSV (by Accept)",
        description="The same query as `manage.py audience`, read through a server-side cursor "
        "and never held in memory. Each row: the public id, the address, the reason. With "
        "`since` (the `Audience-Cursor` header of an earlier export), only the contacts whose "
        "ledger changed since, each with `allowed` (false: remove them). With `links=true` "
        "(scope links:create) each row carries the person's unsubscribe and preference URLs.",
        parameters=[AudienceQuery],
        responses={
            (200, "application/x-ndjson"): OpenApiTypes.STR,
            (200, "text/csv"): OpenApiTypes.STR,
            **problem_responses(406),
        },
    )
    def get(self, request: Request) -> StreamingHttpResponse:
        query = AudienceQuery(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        q = query.validated_data
        message = rules.Message(
            channel=q["channel"], purpose=q["purpose"], topic=q.get("topic"),
            category=q.get("category"), product=q.get("product"),
        )  # fmt: skip
        try:
            rules.check_message(message)
        except rules.MalformedMessage as exc:
            raise Problem("validation-error", exc.problem, field=exc.field) from exc
        key = key_of(request)
        if q["links"] and "links:create" not in key.scopes:
            from api.auth import ScopeMissing

            raise ScopeMissing("The links column needs the scope 'links:create'.")
        started = clock.now()
        at = q.get("as_of") or started
        since = q.get("since")
        fmt = request.accepted_renderer.format
        AccessLog.objects.create(
            at=started, username=key.actor, action="api_audience", contact=None,
            detail=f"{message} as of {ledger.iso(at)} since {ledger.iso(since)} links {q['links']}",
        )  # fmt: skip
        if since is not None:
            rows = audience_sql.changed_since(message, at, since, chunk_size=CHUNK)
        else:
            rows = audience_sql.audience(message, at, chunk_size=CHUNK)
        minter = key.actor if q["links"] else None
        body = stream(rows, fmt, incremental=since is not None, links_for=minter)
        response = StreamingHttpResponse(
            body, content_type=f"{request.accepted_renderer.media_type}; charset=utf-8"
        )
        response["Audience-Cursor"] = ledger.iso(started - CURSOR_LAG)
        return response


def stream(
    rows: Iterator[audience_sql.AudienceRow], fmt: str, *, incremental: bool, links_for: str | None
) -> Iterator[bytes]:
    columns = list(audience_sql.EXPORT_COLUMNS)
    if incremental:
        columns.append("allowed")
    if links_for:
        columns += ["unsubscribe_url", "preferences_url"]
    buffer = io.StringIO()
    writer = csv.writer(buffer) if fmt == "csv" else None
    if writer:
        writer.writerow(columns)
    batch: list[audience_sql.AudienceRow] = []

    def flush() -> bytes:
        minted = mint_for(batch, links_for) if links_for else {}
        for row in batch:
            values: list[Any] = [row.public_id, row.address or None, row.reason or None]
            if incremental:
                values.append(bool(row.reason))
            if links_for:
                pair = minted.get(row.contact_id, (None, None))
                values += list(pair)
            if writer:
                writer.writerow(["" if v is None else v for v in values])
            else:
                buffer.write(json.dumps(dict(zip(columns, values, strict=True))) + "\n")
        batch.clear()
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text.encode()

    for row in rows:
        batch.append(row)
        if len(batch) >= CHUNK:
            yield flush()
    yield flush()


def mint_for(batch: list[audience_sql.AudienceRow], actor: str) -> dict[int, tuple[str, str]]:
    """Links for the rows of a batch (one query), each mint in the access log first."""
    wanted = {r.contact_id: r for r in batch if r.reason}
    contacts = Contact.objects.filter(pk__in=list(wanted)).only(
        "id", "public_id", "link_version", "email"
    )
    now = clock.now()
    out, log = {}, []
    for c in contacts:
        if not c.email:
            continue
        log.append(AccessLog(at=now, username=actor, action="api_links", contact=c,
                             detail="audience export: unsubscribe, preferences"))  # fmt: skip
        out[c.pk] = (
            links.url("unsubscribe", c, to=c.email),
            links.url("preferences", c, to=c.email),
        )
    AccessLog.objects.bulk_create(log)
    return out


# --- Imports ------------------------------------------------------------------------------------


class ImportsView(ApiView):
    scopes = {"POST": "imports:write"}
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        operation_id="import_create",
        summary="Upload a file to import (asynchronous): answers 202 and the import's status",
        request={"multipart/form-data": s.ImportRequestSerializer},
        responses={202: s.ImportSerializer, **problem_responses(409, 415, 422)},
        parameters=[OpenApiParameter("Idempotency-Key", OpenApiTypes.STR, OpenApiParameter.HEADER)],
    )
    def post(self, request: Request) -> Any:
        data = s.ImportRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        upload = v["file"]
        import hashlib

        h = hashlib.sha256()
        for chunk in upload.chunks():
            h.update(chunk)
        upload.seek(0)
        fingerprint = f"{h.hexdigest()}|{v['preset']}|{v.get('topic', '')}|{v['webhooks']}".encode()
        return idempotency.idempotent(request, lambda: self.create(request, v), body=fingerprint)

    def create(self, request: Request, v: dict[str, Any]) -> Response:
        path = imports.import_store(chunks=v["file"].chunks(), filename=v["file"].name)
        try:
            run = imports.import_queue(
                path=path, preset=v["preset"], topic=v.get("topic", ""),
                actor=key_of(request).actor, webhooks=v["webhooks"],
                filename=v["file"].name, locale=v["locale"],
            )  # fmt: skip
        except DjangoValidationError:
            path.unlink(missing_ok=True)
            raise
        run.refresh_from_db()
        response = Response(imports.import_as_dict(run), status=202)
        response["Location"] = reverse("api:import", args=[run.pk])
        return response


class ImportView(ApiView):
    scopes = {"GET": "imports:write"}

    @extend_schema(operation_id="import_status", summary="An import's status and report",
                   responses={200: s.ImportSerializer, **problem_responses(404)})  # fmt: skip
    def get(self, request: Request, pk: int) -> Response:
        return Response(imports.import_as_dict(get_object_or_404(ImportRun, pk=pk)))


# --- Webhook endpoints --------------------------------------------------------------------------


class EndpointsView(ApiView):
    scopes = {"*": "webhooks:manage"}

    @extend_schema(operation_id="webhook_endpoints", summary="Every webhook endpoint",
                   responses={200: s.EndpointsSerializer, **problem_responses()})  # fmt: skip
    def get(self, request: Request) -> Response:
        rows = [webhooks_out.endpoint_as_dict(e) for e in WebhookEndpoint.objects.order_by("pk")]
        return Response({"endpoints": rows})

    @extend_schema(
        operation_id="webhook_endpoint_create",
        summary="A new endpoint; its secret is in this answer only",
        request=s.EndpointInSerializer,
        responses={201: s.EndpointWithSecretSerializer, **problem_responses(409, 422)},
        parameters=[OpenApiParameter("Idempotency-Key", OpenApiTypes.STR, OpenApiParameter.HEADER)],
    )
    def post(self, request: Request) -> Any:
        return idempotency.idempotent(request, lambda: self.create(request))

    def create(self, request: Request) -> Response:
        data = s.EndpointInSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        endpoint, secret = webhooks_out.endpoint_create(**data.validated_data)
        return Response({**webhooks_out.endpoint_as_dict(endpoint), "secret": secret}, status=201)


class EndpointView(ApiView):
    scopes = {"*": "webhooks:manage"}

    @extend_schema(operation_id="webhook_endpoint", summary="One endpoint",
                   responses={200: s.EndpointSerializer, **problem_responses(404)})  # fmt: skip
    def get(self, request: Request, pk: int) -> Response:
        return Response(webhooks_out.endpoint_as_dict(get_object_or_404(WebhookEndpoint, pk=pk)))

    @extend_schema(
        operation_id="webhook_endpoint_update",
        summary="Change an endpoint",
        request=s.EndpointPatchSerializer,
        responses={200: s.EndpointSerializer, **problem_responses(404, 422)},
    )
    def patch(self, request: Request, pk: int) -> Response:
        endpoint = get_object_or_404(WebhookEndpoint, pk=pk)
        data = s.EndpointPatchSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        saved = webhooks_out.endpoint_update(endpoint=endpoint, **data.validated_data)
        return Response(webhooks_out.endpoint_as_dict(saved))


class EndpointRotateView(ApiView):
    scopes = {"POST": "webhooks:manage"}

    @extend_schema(
        operation_id="webhook_endpoint_rotate",
        summary="A new secret (the old one keeps signing during the overlap)",
        request=None,
        responses={200: s.EndpointWithSecretSerializer, **problem_responses(404, 409, 422)},
        parameters=[OpenApiParameter("Idempotency-Key", OpenApiTypes.STR, OpenApiParameter.HEADER)],
    )
    def post(self, request: Request, pk: int) -> Any:
        endpoint = get_object_or_404(WebhookEndpoint, pk=pk)

        def rotate() -> Response:
            secret = webhooks_out.endpoint_rotate_secret(endpoint=endpoint)
            endpoint.refresh_from_db()
            return Response({**webhooks_out.endpoint_as_dict(endpoint), "secret": secret})

        return idempotency.idempotent(request, rotate)


class EndpointReplayView(ApiView):
    scopes = {"POST": "webhooks:manage"}

    @extend_schema(
        operation_id="webhook_endpoint_replay",
        summary="Send again every message of a time range",
        request=s.ReplayRequestSerializer,
        responses={200: s.ReplaySerializer, **problem_responses(404, 409, 422)},
        parameters=[OpenApiParameter("Idempotency-Key", OpenApiTypes.STR, OpenApiParameter.HEADER)],
    )
    def post(self, request: Request, pk: int) -> Any:
        endpoint = get_object_or_404(WebhookEndpoint, pk=pk)
        data = s.ReplayRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return idempotency.idempotent(
            request,
            lambda: Response(
                {"queued": webhooks_out.deliveries_replay(endpoint=endpoint, **data.validated_data)}
            ),
        )


# --- Problem types ------------------------------------------------------------------------------


class ProblemTypeView(APIView):
    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    throttle_classes: list[Any] = []
    renderer_classes = [JSONRenderer]

    @extend_schema(exclude=True)
    def get(self, request: Request, slug: str) -> Response:
        if slug not in PROBLEMS:
            raise Problem("not-found", "No such problem type.")
        status, title, text = PROBLEMS[slug]
        return Response({"type": f"/api/v1/problems/{slug}", "status": status, "title": title,
                         "description": text})  # fmt: skip
