"""A person's rights through the API: erasure and the access export (``consents.services``,
``consents.selectors.proof``)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from api import idempotency
from api import serializers as s
from api.auth import key_of
from api.views.base import CONTACT_ID, ApiView, contact_or_404, log_reads, problem_responses
from consents import clock, ledger, services
from consents.selectors import proof


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
