"""What every view of the API shares: the base view (a key, its scopes, its rate limit, problems for
every error), the errors an operation documents, the access log of reads, and contacts found by
reference."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models.functions import Upper
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework.request import Request
from rest_framework.views import APIView

from api import serializers as s
from api import throttles
from api.auth import key_of
from api.problems import PROBLEMS
from consents import clock, rules, services
from consents.models import AccessLog, Contact


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


CONTACT_ID = OpenApiParameter(
    "id", OpenApiTypes.STR, OpenApiParameter.PATH, description="Public id"
)


def contact_or_404(public_id: str) -> Contact:
    return get_object_or_404(Contact, public_id=public_id)


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


def event_seqs(decision: rules.Decision) -> list[int]:
    """The events a decision rests on: the sequence numbers among its facts."""
    return sorted(
        {v for k, v in decision.facts.items() if k.endswith("_seq") and isinstance(v, int)}
    )
